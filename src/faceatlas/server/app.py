"""The ASGI app: ``create_app(settings)`` wires settings, keys, the shared engine and the routers."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import faceatlas
from faceatlas.server import errors
from faceatlas.server.engine import Analyzer, Engine
from faceatlas.server.metrics import Metrics
from faceatlas.server.settings import Settings

if TYPE_CHECKING:  # imported inside create_app at run time
    from faceatlas.server.keys import KeyStore

log = logging.getLogger("faceatlas.server")
MULTIPART_OVERHEAD = 64 * 1024  # form boundaries and small fields around the image bytes
API_DESCRIPTION = """Faces, people and search over HTTP, over the faceatlas Python API.

Every `/v1` call needs an API key (`Authorization: Bearer fa_...` or `X-API-Key`), created with
`faceatlas keys create NAME --scope read|write|admin`. Errors are `{"error": {"code", "message"}}`.
"""


class BodyLimit:
    """Refuse request bodies over the upload limit before they are parsed or spooled to disk:
    by Content-Length at once; a chunked body that announces no length is read up to the limit
    (refused as soon as it passes it) and then handed on."""

    def __init__(self, app: ASGIApp, limit: int, paths: dict[str, tuple[int, str]] | None = None) -> None:
        self.app, self.limit = app, limit
        self.paths = paths or {}  # path -> (its own limit, the message refusing it): video clips

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")  # under a root_path (a proxy's prefix) too
        limit, text = next(
            (own for end, own in self.paths.items() if path.endswith(end)), (self.limit, _too_large_text(self.limit))
        )
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) > limit:
                await _too_large(send, text)
                return
            await self.app(scope, receive, send)
            return
        parts, seen = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([message]), send)
                return
            seen += len(message.get("body", b""))
            if seen > limit:
                await _too_large(send, text)
                return
            parts.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = {"type": "http.request", "body": b"".join(parts), "more_body": False}
        await self.app(scope, _replay([body], receive), send)


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    """A receive() that hands out ``messages`` first, then defers to ``then`` (disconnects)."""
    queue = list(messages)

    async def receive() -> Message:
        if queue:
            return queue.pop(0)
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive


def _too_large_text(limit: int) -> str:
    return (
        f"the request body is over {limit / 1024 / 1024:.1f} MB (room for two images of FACEATLAS_MAX_UPLOAD_MB); "
        "send a smaller image"
    )


async def _too_large(send: Send, text: str) -> None:
    response = errors.problem(413, "too_large", text)
    await send({"type": "http.response.start", "status": 413, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


def create_app(
    settings: Settings | None = None,
    *,
    analyzer_factory: Callable[[], Analyzer] | None = None,
    keys: KeyStore | None = None,
) -> FastAPI:
    """The service; ``analyzer_factory`` replaces the default models (tests), ``keys`` the key store."""
    settings = settings or Settings()
    from faceatlas.server.jobs import JobManager
    from faceatlas.server.keys import KeyStore
    from faceatlas.server.ratelimit import RateLimiter
    from faceatlas.server.streams import StreamManager, service_tracker

    engine = Engine(settings, analyzer_factory)

    def stream_manager() -> StreamManager:  # live streams: a thread each, on the engine's models and gallery
        return StreamManager(
            make_tracker=service_tracker(engine), max_streams=settings.max_streams, hosts=settings.stream_hosts
        )

    metrics = Metrics()
    engine.on_model_load = metrics.model_load.set
    engine.on_faces = metrics.faces.inc

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.auth and app.state.keys.count_active() == 0:
            log.warning("no API keys yet: create one with `faceatlas keys create NAME --scope admin`")
        if app.state.jobs_stopped:  # served before (tests serve one app several times)
            app.state.jobs, app.state.jobs_stopped = JobManager(), False
            app.state.streams = stream_manager()
        yield
        app.state.streams.shutdown()  # each stream's open tracks are closed and published first
        app.state.jobs.shutdown(timeout=10)  # a running index job stops between photos: nothing is lost
        app.state.jobs_stopped = True
        engine.close()  # the gallery reopens if the app serves again; the key store lives with the app

    app = FastAPI(
        title="faceatlas",
        version=faceatlas.__version__,
        description=API_DESCRIPTION,
        lifespan=lifespan,
        # FastAPI's /docs and /redoc pages load their scripts from a CDN: offline they are blank
        # pages, and anywhere they would make the service fetch from the internet. The schema is
        # at /openapi.json (and docs/openapi.json); the web UI at / is the human interface.
        docs_url=None,
        redoc_url=None,
        responses={
            401: {"model": errors_model(), "description": "missing or invalid API key"},
            422: {"model": errors_model(), "description": "invalid request"},
        },
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.metrics = metrics
    app.state.keys = keys or KeyStore.open(settings.keys_path)
    app.state.limiter = RateLimiter(settings.rate_limit_per_minute)
    app.state.jobs = JobManager()
    app.state.jobs_stopped = False
    app.state.streams = stream_manager()
    from faceatlas.collection.search import FaceSearcherCache

    app.state.face_searchers = FaceSearcherCache()  # one index per collection store, caught up before each search
    errors.install(app)

    from faceatlas.server.routes import collection, images, people, search, system, video

    app.include_router(system.router)
    app.include_router(images.router)
    app.include_router(people.router)
    app.include_router(collection.router)
    app.include_router(video.router)
    app.include_router(search.router)
    from faceatlas.server.routes import faces

    app.include_router(faces.router)
    from faceatlas.server.routes import private

    app.include_router(private.router)
    from faceatlas.server.routes import privacy

    app.include_router(privacy.router)
    from faceatlas.server.routes import review

    app.include_router(review.router)
    from faceatlas.server.web import mount_web

    mount_web(app)

    @app.middleware("http")
    async def observe(request: Request, call_next):  # metrics by route template, and safe headers
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
        finally:
            route = request.scope.get("route")
            metrics.observe(request.method, getattr(route, "path", "unmatched"), status, time.perf_counter() - started)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
        )
    video_limit = settings.max_video_bytes + MULTIPART_OVERHEAD
    video_text = (
        f"the request body is over {video_limit / 1024 / 1024:.1f} MB (FACEATLAS_MAX_VIDEO_MB); send a shorter "
        "or smaller clip"
    )
    app.add_middleware(
        BodyLimit,
        limit=settings.max_upload_bytes * 2 + MULTIPART_OVERHEAD,
        paths={"/v1/videos": (video_limit, video_text)},
    )
    return app


def errors_model() -> type:
    from faceatlas.server.schemas import ErrorResponse

    return ErrorResponse
