"""Errors as JSON: ``{"error": {"code": ..., "message": ...}}`` with the right status, never a traceback.

The library's typed errors map to 4xx with their own message (it says what arrived and the fix);
anything unexpected is logged with its traceback and answered with a plain 500.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from faceatlas.errors import (
    FaceAtlasError,
    ImageTooLargeError,
    InvalidImageError,
    ModelError,
    NoFaceError,
    UnsupportedImageError,
)

log = logging.getLogger("faceatlas.server")


class ServiceError(FaceAtlasError):
    """An HTTP answer other than success, raised anywhere in a request."""

    def __init__(self, status: int, code: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.retry_after = status, code, retry_after


def problem(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def _status_of(exc: FaceAtlasError) -> tuple[int, str]:
    from faceatlas.collection.store import CollectionError
    from faceatlas.gallery.store import FaceNotFoundError, GalleryError, ModelMismatchError, PersonNotFoundError
    from faceatlas.server.engine import Overloaded
    from faceatlas.server.jobs import JobManagerClosedError, QueueFullError

    table: list[tuple[type, int, str]] = [
        (Overloaded, 503, "overloaded"),
        (QueueFullError, 503, "overloaded"),
        (JobManagerClosedError, 503, "shutting_down"),
        (ImageTooLargeError, 413, "too_large"),
        (UnsupportedImageError, 415, "unsupported_media_type"),
        (InvalidImageError, 400, "invalid_image"),
        (NoFaceError, 422, "no_face"),
        (PersonNotFoundError, 404, "not_found"),
        (FaceNotFoundError, 404, "not_found"),
        (ModelMismatchError, 409, "model_mismatch"),
        (GalleryError, 409, "conflict"),
        (CollectionError, 409, "conflict"),
        (ModelError, 500, "model_error"),
    ]
    for kind, status, code in table:
        if isinstance(exc, kind):
            return status, code
    return 400, "bad_request"


def install(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service(request: Request, exc: ServiceError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        if exc.status == 401:
            headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
        return problem(exc.status, exc.code, str(exc), headers)

    @app.exception_handler(FaceAtlasError)
    async def _library(request: Request, exc: FaceAtlasError) -> JSONResponse:
        status, code = _status_of(exc)
        if code == "model_error":
            log.error("model error on %s %s", request.method, request.url.path, exc_info=exc)
            return problem(status, code, "the face models failed on this request (see the server log)")
        headers = {"Retry-After": str(getattr(exc, "retry_after", 1))} if status == 503 else None
        if code == "overloaded":
            request.app.state.metrics.refused.labels("overload").inc()
        return problem(status, code, str(exc), headers)

    @app.exception_handler(ValueError)
    async def _value(request: Request, exc: ValueError) -> JSONResponse:
        return problem(422, "invalid_value", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for error in exc.errors()[:10]:
            where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "request"
            parts.append(f"{where}: {error.get('msg', 'invalid')}")
        return problem(422, "invalid_request", "; ".join(parts))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(exc.status_code, "http_error")
        return problem(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem(500, "internal_error", "internal error (see the server log)")
