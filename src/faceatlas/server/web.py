"""The web UI: ``index.html`` at ``/``, its scripts and styles under ``/ui/``, from ``server/web/``.

Plain files, no build step: ES modules, one stylesheet, and ``api.js``, the API client generated
from ``docs/openapi.json`` by ``scripts/gen_api_client.py``. The page holds no secret: it asks for
an API key and sends it as ``Authorization: Bearer`` on every ``/v1`` call, like any client.

Every answer carries a strict Content-Security-Policy (scripts, styles and connections from this
origin only; images also from ``blob:`` and ``data:`` URLs, which is how photos fetched with the
key are shown), and ``Cache-Control: no-cache`` so a new version is picked up at once (the files
are revalidated by ETag, answered 304 when unchanged).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import Scope

WEB_DIR = Path(__file__).with_name("web")
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-cache",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


class _UiFiles(StaticFiles):
    """Static files with the UI's security and caching headers on every answer."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(HEADERS)
        return response


def mount_web(app: FastAPI) -> None:
    """Serve the UI on ``app``: ``GET /`` (and ``HEAD /``) is the page, ``/ui/...`` its assets. Idempotent."""
    if getattr(app.state, "web_mounted", False):
        return
    index = WEB_DIR / "index.html"
    if not index.is_file():
        raise RuntimeError(f"the web UI's files are missing: no {index}")

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)  # HEAD: headers only, as for any page
    def web_index() -> FileResponse:
        return FileResponse(index, media_type="text/html; charset=utf-8", headers=HEADERS)

    app.mount("/ui", _UiFiles(directory=WEB_DIR), name="ui")
    app.state.web_mounted = True
