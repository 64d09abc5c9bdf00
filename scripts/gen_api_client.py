"""Generate the web UI's API client, ``src/faceatlas/server/web/api.js``, from ``docs/openapi.json``.

    python scripts/gen_api_client.py            # write api.js
    python scripts/gen_api_client.py --check    # exit 1 if the committed api.js is stale

One exported async function per operation, plus ``routes`` (the same functions keyed by
``"METHOD /path/{}"``), ``configure({apiKey, baseUrl, fetch})``, ``request`` and ``ApiError``.
Every function takes its path parameters positionally, in path order, then one options object:
``{query, body, signal}``. ``body`` is the JSON body, or for multipart operations an object of
form fields (a ``Blob``/``File``, an array of them, or a plain value) that becomes a ``FormData``.

Names: a FastAPI operation id (``list_people_v1_people_get``) gives its route function's name
(``listPeople``); any other operation id is camel-cased as it is; names that two operations would
share, or that are reserved words, fall back to one made of the method and path
(``postCollectionClustersByIdMerge``). The output depends on the schema alone (sorted, no dates),
so ``tests/test_web_client.py`` can require the committed file to equal a fresh generation.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "docs" / "openapi.json"
OUTPUT = REPO / "src" / "faceatlas" / "server" / "web" / "api.js"
METHODS = ("get", "post", "put", "patch", "delete", "head", "options")
JSON_TYPES = ("application/json",)
BINARY_PREFIXES = ("image/", "audio/", "video/", "application/octet-stream", "application/pdf", "application/zip")
_RESERVED_WORDS = """
await break case catch class const continue debugger default delete do else enum export extends false finally
for function if implements import in instanceof interface let new null package private protected public return
static super switch this throw true try typeof var void while with yield
routes request configure ApiError config pathPart queryString formData errorOf read
"""  # JavaScript's reserved words, and the names this module defines itself
RESERVED = frozenset(_RESERVED_WORDS.split())


# --- names ------------------------------------------------------------------------------------------------


def camel(text: str) -> str:
    words = [w for w in re.split(r"[^0-9A-Za-z]+", text) if w]
    if not words:
        return ""
    head, *rest = words
    name = head[0].lower() + head[1:] + "".join(w[0].upper() + w[1:] for w in rest)
    return name if not name[0].isdigit() else "op" + name[0].upper() + name[1:]


def path_name(method: str, path: str) -> str:
    """``post /v1/collection/clusters/{id}/merge`` -> ``postCollectionClustersByIdMerge``."""
    words = [method]
    for segment in path.strip("/").split("/"):
        if re.fullmatch(r"v\d+", segment) or not segment:
            continue
        words += ["by", segment[1:-1]] if segment.startswith("{") else [segment]
    return camel(" ".join(words))


def preferred_name(method: str, path: str, operation_id: str | None) -> str:
    if not operation_id:
        return path_name(method, path)
    fastapi_suffix = re.sub(r"\W", "_", path) + "_" + method  # FastAPI's generate_unique_id
    if operation_id.endswith(fastapi_suffix) and len(operation_id) > len(fastapi_suffix):
        operation_id = operation_id[: -len(fastapi_suffix)]
    return camel(operation_id) or path_name(method, path)


def route_key(method: str, path: str) -> str:
    return f"{method.upper()} {re.sub(r'{[^}]*}', '{}', path)}"


# --- types (for JSDoc) ------------------------------------------------------------------------------------


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        *_, name = node["$ref"].split("/")
        node = schema["components"]["schemas"][name]
    return node


def is_binary(node: dict[str, Any]) -> bool:
    return node.get("type") == "string" and (
        node.get("format") == "binary" or node.get("contentMediaType") == "application/octet-stream"
    )


def js_type(node: dict[str, Any] | None, depth: int = 0) -> str:
    if not node:
        return "*"
    if "$ref" in node:
        return node["$ref"].split("/")[-1]
    for key in ("anyOf", "oneOf"):
        if key in node:
            return "|".join(dict.fromkeys(js_type(n, depth) for n in node[key]))
    if "allOf" in node and len(node["allOf"]) == 1:
        return js_type(node["allOf"][0], depth)
    if "enum" in node:
        return "|".join(json.dumps(v) for v in node["enum"])
    if "const" in node:
        return json.dumps(node["const"])
    kind = node.get("type")
    if is_binary(node):
        return "Blob"
    if kind in ("integer", "number"):
        return "number"
    if kind in ("string", "boolean", "null"):
        return kind
    if kind == "array":
        inner = js_type(node.get("items"), depth)
        return f"Array<{inner}>"
    if kind == "object" or "properties" in node:
        props = node.get("properties") or {}
        if not props or depth > 1:
            extra = node.get("additionalProperties")
            return f"Object<string, {js_type(extra, depth + 1)}>" if isinstance(extra, dict) else "Object"
        required = set(node.get("required") or ())
        fields = [f"{json_key(k)}{'' if k in required else '?'}: {js_type(v, depth + 1)}" for k, v in props.items()]
        return "{" + ", ".join(fields) + "}"
    return "*"


def json_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z_$][0-9A-Za-z_$]*", key) else json.dumps(key)


def doc_line(text: str) -> str:
    return " ".join(text.replace("*/", "* /").split())


# --- operations -------------------------------------------------------------------------------------------


def operations(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """Every operation, sorted by path then method, with what the generator needs to know about it."""
    found = []
    for path in sorted(schema.get("paths", {})):
        item = schema["paths"][path]
        shared = item.get("parameters", [])
        for method in METHODS:
            if method not in item:
                continue
            op = item[method]
            params = [resolve(schema, p) for p in [*shared, *op.get("parameters", [])]]
            path_params = re.findall(r"{([^}]+)}", path)
            declared = {p["name"] for p in params if p.get("in") == "path"}
            missing = [p for p in path_params if p not in declared]
            if missing:
                raise ValueError(f"{method.upper()} {path}: path parameter(s) {missing} not declared")
            body = op.get("requestBody")
            body_kind, body_node, body_fields = None, None, {}
            if body:
                content = body.get("content", {})
                if "application/json" in content:
                    body_kind, body_node = "json", content["application/json"].get("schema")
                elif "multipart/form-data" in content or "application/x-www-form-urlencoded" in content:
                    media = "multipart/form-data" if "multipart/form-data" in content else next(iter(content))
                    body_kind, body_node = "form", content[media].get("schema")
                    body_fields = {
                        name: field_kind(schema, node)
                        for name, node in sorted(resolve(schema, body_node or {}).get("properties", {}).items())
                    }
                else:
                    body_kind, body_node = "raw", None
            found.append(
                {
                    "schema": schema,
                    "method": method,
                    "path": path,
                    "id": op.get("operationId"),
                    "summary": op.get("summary") or "",
                    "description": op.get("description") or "",
                    "deprecated": bool(op.get("deprecated")),
                    "path_params": path_params,
                    "param_docs": {p["name"]: p for p in params},
                    "query": sorted(p["name"] for p in params if p.get("in") == "query"),
                    "query_required": sorted(p["name"] for p in params if p.get("in") == "query" and p.get("required")),
                    "body": body_kind,
                    "body_required": bool(body and body.get("required")),
                    "body_node": body_node,
                    "body_fields": body_fields,
                    **response_of(op),
                }
            )
    return found


def field_kind(schema: dict[str, Any], node: dict[str, Any]) -> str:
    """How a multipart field is sent: ``files`` (several), ``file`` or ``value``."""
    node = resolve(schema, node)
    options = [resolve(schema, n) for n in node.get("anyOf", [node])]
    if any(n.get("type") == "array" for n in options):
        return "files" if any(is_binary(resolve(schema, n.get("items", {}))) for n in options) else "values"
    return "file" if any(is_binary(n) for n in options) else "value"


def response_of(op: dict[str, Any]) -> dict[str, Any]:
    """The success response: how to read it (json, blob, text, none) and its JSDoc type."""
    codes = sorted(c for c in op.get("responses", {}) if c.startswith("2"))
    if not codes:
        return {"expect": "auto", "returns": "*"}
    response = op["responses"][codes[0]]
    content = response.get("content") or {}
    if not content:
        return {"expect": "none", "returns": "null"}
    for media in JSON_TYPES:
        if media in content:
            return {"expect": "json", "returns": js_type(content[media].get("schema"))}
    media = min(content)
    if media.startswith(BINARY_PREFIXES):
        return {"expect": "blob", "returns": "Blob"}
    if media.startswith("text/"):
        return {"expect": "text", "returns": "string"}
    return {"expect": "auto", "returns": "*"}


def assign_names(ops: list[dict[str, Any]]) -> None:
    wanted: dict[str, list[dict[str, Any]]] = {}
    for op in ops:
        wanted.setdefault(preferred_name(op["method"], op["path"], op["id"]), []).append(op)
    for name, group in wanted.items():
        for op in group:
            op["name"] = name if len(group) == 1 and name not in RESERVED else path_name(op["method"], op["path"])
    names = [op["name"] for op in ops]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise ValueError(f"operations would share the function name(s) {clashes}")


# --- output -----------------------------------------------------------------------------------------------

RUNTIME = r"""
/** An API error: the HTTP status, and the code and message of the server's {"error": {...}} body. */
export class ApiError extends Error {
  /**
   * @param {number} status HTTP status (0: the server could not be reached)
   * @param {string} code a stable machine-readable code, e.g. "unauthorized", "not_found"
   * @param {string} message what went wrong, as the server said it
   * @param {*} [body] the parsed error body, if any
   */
  constructor(status, code, message, body = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

const config = { baseUrl: "", apiKey: null, fetch: null };

/**
 * Set the API key (sent as "Authorization: Bearer ..."; null: none), the base URL the paths are
 * relative to ("" = this origin), and optionally a fetch implementation.
 * @param {{apiKey?: string|null, baseUrl?: string, fetch?: typeof fetch}} options
 */
export function configure(options) {
  for (const key of ["apiKey", "baseUrl", "fetch"]) {
    if (options && key in options) config[key] = options[key];
  }
}

function pathPart(name, value) {
  if (value === undefined || value === null || value === "") {
    throw new TypeError(`path parameter ${name} is required`);
  }
  return encodeURIComponent(String(value));
}

function queryString(query, names, required) {
  const params = new URLSearchParams();
  const given = query || {};
  for (const key of Object.keys(given)) {
    if (!names.includes(key)) throw new TypeError(`unknown query parameter ${key}`);
  }
  for (const name of names) {
    const value = given[name];
    if (value === undefined || value === null) {
      if (required.includes(name)) throw new TypeError(`query parameter ${name} is required`);
      continue;
    }
    for (const item of Array.isArray(value) ? value : [value]) params.append(name, String(item));
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

function formData(body, fields) {
  if (body instanceof FormData) return body;
  const form = new FormData();
  for (const key of Object.keys(body || {})) {
    if (!(key in fields)) throw new TypeError(`unknown form field ${key}`);
  }
  for (const [name, kind] of Object.entries(fields)) {
    const value = body ? body[name] : undefined;
    if (value === undefined || value === null) continue;
    const items = kind === "files" || kind === "values" ? (Array.isArray(value) ? value : [value]) : [value];
    for (const item of items) {
      if (item instanceof Blob) form.append(name, item, item.name || name);
      else form.append(name, String(item));
    }
  }
  return form;
}

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const detail = body && typeof body === "object" && body.error && typeof body.error === "object" ? body.error : {};
  const code = typeof detail.code === "string" ? detail.code : `http_${response.status}`;
  const message =
    typeof detail.message === "string" && detail.message
      ? detail.message
      : `${response.status} ${response.statusText || "error"}`.trim();
  return new ApiError(response.status, code, message, body);
}

async function read(response, expect) {
  if (response.status === 204 || response.status === 205 || expect === "none") return null;
  const type = (response.headers.get("content-type") || "").toLowerCase();
  if (expect === "blob") return response.blob();
  if (type.includes("json")) return response.json();
  if (expect === "json") {
    const text = await response.text();
    return text ? JSON.parse(text) : null;
  }
  if (expect === "text" || type.startsWith("text/")) return response.text();
  return response.blob();
}

/**
 * One call: what every generated function does, usable for paths the schema does not list.
 * @param {string} method
 * @param {string} path already encoded, with its query string
 * @param {{json?: *, form?: FormData, body?: BodyInit, expect?: string, signal?: AbortSignal}} [options]
 */
export async function request(method, path, options = {}) {
  const headers = { Accept: "application/json, */*;q=0.5" };
  if (config.apiKey) headers.Authorization = `Bearer ${config.apiKey}`;
  let body;
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.json);
  } else if (options.form !== undefined) {
    body = options.form; // the browser sets the multipart boundary
  } else if (options.body !== undefined) {
    body = options.body;
  }
  const send = config.fetch || globalThis.fetch.bind(globalThis);
  let response;
  try {
    response = await send(config.baseUrl + path, { method, headers, body, signal: options.signal });
  } catch (error) {
    if (error && error.name === "AbortError") throw error;
    throw new ApiError(0, "network_error", `could not reach the server (${error && error.message ? error.message : error})`);
  }
  if (!response.ok) throw await errorOf(response);
  return read(response, options.expect || "auto");
}
""".strip("\n")


def function_source(op: dict[str, Any]) -> str:
    name, method, path = op["name"], op["method"].upper(), op["path"]
    lines = ["/**", f" * {doc_line(op['summary'] or name)}"]
    if op["description"]:
        lines.append(f" * {doc_line(op['description'])}")
    lines.append(f" * `{method} {path}`")
    if op["deprecated"]:
        lines.append(" * @deprecated")
    for param in op["path_params"]:
        doc = op["param_docs"].get(param, {})
        described = doc_line(doc.get("description", ""))
        lines.append(
            f" * @param {{{js_type(doc.get('schema')) or 'string'}}} {camel(param) or param}{' ' + described if described else ''}"
        )
    option_fields = []
    if op["query"]:
        query_type = ", ".join(
            f"{json_key(q)}{'' if q in op['query_required'] else '?'}: {js_type(op['param_docs'][q].get('schema'))}"
            for q in op["query"]
        )
        option_fields.append(f"query{'' if op['query_required'] else '?'}: {{{query_type}}}")
    if op["body"] == "json":
        option_fields.append(f"body{'' if op['body_required'] else '?'}: {js_type(op['body_node'])}")
    elif op["body"] == "form":
        form_type = js_type(resolve(op["schema"], op["body_node"] or {}))
        option_fields.append(f"body{'' if op['body_required'] else '?'}: {form_type}|FormData")
    elif op["body"] == "raw":
        option_fields.append("body: BodyInit")
    option_fields.append("signal?: AbortSignal")
    optional = not (op["query_required"] or op["body_required"])
    options_name = "[options]" if optional else "options"
    lines.append(f" * @param {{{{{', '.join(option_fields)}}}}} {options_name}")
    lines.append(f" * @returns {{Promise<{op['returns']}>}}")
    lines.append(" */")

    args = [camel(p) or f"p{i}" for i, p in enumerate(op["path_params"])]
    url = re.sub(
        r"{([^}]+)}",
        lambda m: "${" + f"pathPart({json.dumps(m.group(1))}, {camel(m.group(1)) or m.group(1)})" + "}",
        path.replace("`", "\\`"),
    )
    lines.append(f"export async function {name}({', '.join([*args, 'options = {}'])}) {{")
    if op["query"]:
        lines.append(
            f"  const qs = queryString(options.query, {json.dumps(op['query'])}, {json.dumps(op['query_required'])});"
        )
        url_expr = f"`{url}${{qs}}`"
    else:
        url_expr = f"`{url}`"
    call_options = [f'expect: "{op["expect"]}"', "signal: options.signal"]
    if op["body"] == "json":
        call_options.insert(0, "json: options.body")
    elif op["body"] == "form":
        call_options.insert(0, f"form: formData(options.body, {json.dumps(op['body_fields'], sort_keys=True)})")
    elif op["body"] == "raw":
        call_options.insert(0, "body: options.body")
    if op["body_required"]:
        lines.append("  if (options.body === undefined || options.body === null) {")
        lines.append(f'    throw new TypeError("{name} needs a body");')
        lines.append("  }")
    lines.append(f'  return request("{method}", {url_expr}, {{ {", ".join(call_options)} }});')
    lines.append("}")
    return "\n".join(lines)


def typedefs(schema: dict[str, Any]) -> str:
    out = []
    for name, node in sorted(schema.get("components", {}).get("schemas", {}).items()):
        if name.startswith("Body_"):
            continue  # form bodies are documented on their functions
        props = node.get("properties")
        if node.get("type") == "object" and props:
            required = set(node.get("required") or ())
            out.append("/**")
            out.append(
                f" * @typedef {{Object}} {name}{' ' + doc_line(node['description']) if node.get('description') else ''}"
            )
            for key, prop in props.items():
                label = key if key in required else f"[{key}]"
                described = doc_line(prop.get("description", ""))
                out.append(f" * @property {{{js_type(prop, 1)}}} {label}{' ' + described if described else ''}")
            out.append(" */")
        else:
            out.append(f"/** @typedef {{{js_type(node, 1)}}} {name} */")
    return "\n".join(out)


def generate(schema: dict[str, Any]) -> str:
    ops = operations(schema)
    assign_names(ops)
    info = schema.get("info", {})
    header = (
        f"// {info.get('title', 'API')} {info.get('version', '')} client: GENERATED from docs/openapi.json by\n"
        "// scripts/gen_api_client.py. Do not edit; run `python scripts/gen_api_client.py` after the schema changes."
    )
    parts = [header, RUNTIME, typedefs(schema)]
    parts += [function_source(op) for op in ops]
    routes = [
        "/** Every operation, by method and path (path parameters as {}). */",
        "export const routes = Object.freeze({",
    ]
    routes += [f"  {json.dumps(route_key(op['method'], op['path']))}: {op['name']}," for op in ops]
    routes.append("});")
    parts.append("\n".join(routes))
    return "\n\n".join(p for p in parts if p) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schema", type=Path, default=SCHEMA, help="the OpenAPI schema (default docs/openapi.json)")
    parser.add_argument("--out", type=Path, default=OUTPUT, help="where to write (default the web UI's api.js)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if the output is stale")
    args = parser.parse_args(argv)
    schema = json.loads(args.schema.read_text(encoding="utf-8"))
    text = generate(schema)
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else None
        if current != text:
            print(f"{args.out} is stale: run `python scripts/gen_api_client.py`", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({len(operations(schema))} operations)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
