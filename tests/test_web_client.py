"""The web UI's API client (src/faceatlas/server/web/api.js), generated from docs/openapi.json.

The committed file must be what ``scripts/gen_api_client.py`` makes of the committed schema, so a
schema change forces a regeneration; every operation has its function. With Node installed, the
client itself runs against a stub ``fetch``: paths encoded, queries, JSON and multipart bodies,
the key as a Bearer header, errors as ``ApiError``, images as Blobs.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "docs" / "openapi.json"
API_JS = REPO / "src" / "faceatlas" / "server" / "web" / "api.js"


def generator():
    spec = importlib.util.spec_from_file_location("gen_api_client", REPO / "scripts" / "gen_api_client.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def schema() -> dict:
    return json.loads(SCHEMA.read_text(encoding="utf-8"))


def test_committed_client_is_generated_from_the_committed_schema():
    fresh = generator().generate(schema())
    assert API_JS.read_text(encoding="utf-8") == fresh, (
        "src/faceatlas/server/web/api.js is stale: run `python scripts/gen_api_client.py`"
    )
    assert generator().generate(schema()) == fresh  # deterministic


def test_every_operation_has_a_function_and_a_route_entry():
    text = API_JS.read_text(encoding="utf-8")
    functions = set(re.findall(r"^export async function (\w+)\(", text, re.MULTILINE)) - {"request"}
    routes = dict(re.findall(r'^  "([A-Z]+ [^"]+)": (\w+),$', text, re.MULTILINE))
    operations = {
        f"{method.upper()} {re.sub(r'{[^}]*}', '{}', path)}"
        for path, item in schema()["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    assert set(routes) == operations
    assert set(routes.values()) == functions and len(functions) == len(operations)
    for name in ("listPeople", "identify", "enroll", "rename", "merge", "deletePerson", "personFaces", "analyze"):
        assert name in functions


def test_every_endpoint_the_ui_calls_is_in_the_client():
    app_js = (API_JS.parent / "app.js").read_text(encoding="utf-8")
    used = set(re.findall(r'call\(\s*"([A-Z]+ /[^"]*)"', app_js))
    routes = set(re.findall(r'^  "([A-Z]+ [^"]+)": \w+,$', API_JS.read_text(encoding="utf-8"), re.MULTILINE))
    assert len(used) >= 15
    assert used <= routes, f"app.js calls endpoints the API does not have: {sorted(used - routes)}"


def test_names_bodies_and_responses_of_a_synthetic_schema():
    gen = generator()
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}
    spec = {
        "info": {"title": "t", "version": "1"},
        "components": {"schemas": {"ErrorResponse": {"type": "object", "properties": {"error": {"type": "object"}}}}},
        "paths": {
            "/v1/a/{a_id}/merge": {
                "post": {
                    "operationId": "merge_v1_a__a_id__merge_post",
                    "parameters": [{"in": "path", "name": "a_id", "required": True, "schema": {"type": "integer"}}],
                    "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}, "required": True},
                    "responses": {"200": {"content": {"application/json": {}}}, "422": error},
                }
            },
            "/v1/b/{b_id}/merge": {
                "post": {
                    "operationId": "merge_v1_b__b_id__merge_post",
                    "parameters": [{"in": "path", "name": "b_id", "required": True, "schema": {"type": "integer"}}],
                    "responses": {"200": {"content": {"application/json": {}}}},
                }
            },
            "/v1/faces/{face_id}/thumbnail": {
                "get": {
                    "operationId": "faceThumbnail",
                    "parameters": [
                        {"in": "path", "name": "face_id", "required": True, "schema": {"type": "integer"}},
                        {"in": "query", "name": "size", "schema": {"type": "integer"}},
                    ],
                    "responses": {"200": {"content": {"image/jpeg": {}}}},
                }
            },
            "/v1/things/{id}": {
                "parameters": [{"in": "path", "name": "id", "required": True, "schema": {"type": "string"}}],
                "delete": {"responses": {"204": {"description": "gone"}}},
            },
        },
    }
    text = gen.generate(spec)
    # two FastAPI functions called merge: each named from its method and path instead
    assert "export async function postAByAIdMerge(aId, options = {})" in text
    assert "export async function postBByBIdMerge(bId, options = {})" in text
    assert "export async function faceThumbnail(faceId, options = {})" in text
    assert "export async function delete(" not in text and "export async function deleteThingsById(id, " in text
    assert 'expect: "blob"' in text.split("function faceThumbnail")[1].split("\n}\n")[0]
    assert 'expect: "none"' in text.split("function deleteThingsById")[1]
    assert '"GET /v1/faces/{}/thumbnail": faceThumbnail,' in text
    assert gen.generate(spec) == text


NODE_CHECKS = r"""
import * as api from "API_URL";

const calls = [];
let reply = () => new Response(JSON.stringify({ ok: true }), { headers: { "content-type": "application/json" } });
api.configure({
  baseUrl: "http://test",
  apiKey: "fa_secret",
  fetch: async (url, init) => {
    calls.push({ url, init });
    return reply(url, init);
  },
});
const last = () => calls[calls.length - 1];
const check = (ok, what) => {
  if (!ok) throw new Error(`failed: ${what} (last call ${JSON.stringify(last())})`);
};

// path parameters are encoded, the key goes in a header and never in the URL
await api.getPerson("Ada Lovelace/#1?");
check(last().url === "http://test/v1/people/Ada%20Lovelace%2F%231%3F", "path encoded");
check(last().init.method === "GET" && last().init.headers.Authorization === "Bearer fa_secret", "bearer header");
check(!last().url.includes("fa_secret"), "key not in URL");

// JSON bodies
await api.rename("Ada", { body: { name: "Ada L." } });
check(last().init.method === "PATCH" && last().init.headers["Content-Type"] === "application/json", "json type");
check(last().init.body === JSON.stringify({ name: "Ada L." }), "json body");

// multipart: one file, several files, plain fields; query parameters
const image = new Blob([new Uint8Array([1, 2, 3])], { type: "image/png" });
await api.identify({ query: { k: 3, fpir: null }, body: { image } });
check(last().url === "http://test/v1/identify?k=3", "query, null left out");
check(last().init.body instanceof FormData && last().init.body.getAll("image").length === 1, "form file");
check(!("Content-Type" in last().init.headers), "multipart boundary left to fetch");
await api.enroll("Ada", { query: { face: 0 }, body: { images: [image, image] } });
check(last().url === "http://test/v1/people/Ada/faces?face=0" && last().init.body.getAll("images").length === 2, "files");
await api.verify({ body: { image_a: image, face_b: 7 } });
check(last().init.body.get("face_b") === "7", "form value");

// mistakes are caught before any request
let thrown = null;
try { await api.identify({ query: { kk: 1 }, body: { image } }); } catch (e) { thrown = e; }
check(thrown instanceof TypeError && /unknown query parameter kk/.test(thrown.message), "unknown query");
thrown = null;
try { await api.getPerson(""); } catch (e) { thrown = e; }
check(thrown instanceof TypeError, "missing path parameter");
thrown = null;
try { await api.identify(); } catch (e) { thrown = e; }
check(thrown instanceof TypeError && /needs a body/.test(thrown.message), "missing body");

// errors: ApiError with the server's code and message
reply = () => new Response(JSON.stringify({ error: { code: "not_found", message: "no person 'Bob'" } }), {
  status: 404, headers: { "content-type": "application/json" },
});
thrown = null;
try { await api.getPerson("Bob"); } catch (e) { thrown = e; }
check(thrown instanceof api.ApiError && thrown.status === 404 && thrown.code === "not_found", "api error");
check(thrown.message === "no person 'Bob'", "api error message");
reply = () => new Response("<html>bad gateway</html>", { status: 502, statusText: "Bad Gateway" });
thrown = null;
try { await api.listPeople(); } catch (e) { thrown = e; }
check(thrown instanceof api.ApiError && thrown.status === 502 && thrown.code === "http_502", "non-JSON error");
reply = () => { throw new TypeError("connection refused"); };
thrown = null;
try { await api.listPeople(); } catch (e) { thrown = e; }
check(thrown instanceof api.ApiError && thrown.status === 0 && thrown.code === "network_error", "network error");

// responses: images as Blobs, text as text, 204 as null
reply = () => new Response(new Uint8Array([255, 216, 255]), { headers: { "content-type": "image/jpeg" } });
const blob = await api.request("GET", "/v1/collection/faces/1/thumbnail");
check(blob instanceof Blob && blob.size === 3 && blob.type === "image/jpeg", "image as blob");
reply = () => new Response("# metrics\n", { headers: { "content-type": "text/plain" } });
check((await api.metrics()) === "# metrics\n", "text");
reply = () => new Response(null, { status: 204 });
check((await api.removeFace(3)) === null, "204");
for (const [key, fn] of Object.entries(api.routes)) check(typeof fn === "function" && key.includes(" /"), key);
console.log(`ok ${calls.length}`);
"""


def test_client_runs_against_a_stub_fetch(tmp_path):
    node = shutil.which("node")
    if node is None:
        pytest.skip("needs Node.js (node) to run the generated client")
    script = tmp_path / "check.mjs"
    script.write_text(textwrap.dedent(NODE_CHECKS).replace("API_URL", API_JS.as_uri()), encoding="utf-8")
    done = subprocess.run([node, str(script)], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr or done.stdout
    assert done.stdout.startswith("ok ")
