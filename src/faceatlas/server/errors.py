"""Errors as JSON: ``{"error": {"code": ..., "message": ...}}`` with the right status, never a traceback.

The library's typed errors map to 4xx with their own message (it says what arrived and the fix),
by one table (``rules``): routes raise the library's errors, or a ``ServiceError`` for what only
the service refuses, and never map them themselves. Anything unexpected is logged with its
traceback and answered with a plain 500.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from faceatlas.errors import (
    FaceAtlasError,
    ImageTooLargeError,
    InvalidImageError,
    InvalidNameError,
    ModelError,
    NoFaceError,
    NothingEnrolledError,
    UnsupportedImageError,
)
from faceatlas.server.state import metrics_of

log = logging.getLogger("faceatlas.server")


class ServiceError(FaceAtlasError):
    """An HTTP answer other than success, raised anywhere in a request."""

    def __init__(self, status: int, code: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.retry_after = status, code, retry_after


def problem(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


@dataclass(frozen=True, slots=True)
class Rule:
    """How the service answers one kind of the library's errors. ``message``: the service's own
    wording, where the library's names Python calls (the service names the endpoint to use); None
    keeps the library's message."""

    kind: type[FaceAtlasError]
    status: int
    code: str
    message: Callable[[Any], str] | None = None


@functools.cache
def rules() -> tuple[Rule, ...]:
    """The one table from error to HTTP answer, most specific first: the first rule whose kind the
    error is an instance of answers it; an error in none is 400 ``bad_request``. (Imported here,
    not at the top: the stores and the engine import this module's ``ServiceError``.)"""
    from faceatlas.collection.corrections import DifferentPeopleError, SharedPhotoError, WholeClusterError
    from faceatlas.collection.store import (
        ClusterNotFoundError,
        CollectionError,
        CorrectionConflictError,
        FaceExistsError,
        InvalidCorrectionError,
        NameTakenError,
        PhotoNotFoundError,
    )
    from faceatlas.gallery.store import FaceNotFoundError, GalleryError, ModelMismatchError, PersonNotFoundError
    from faceatlas.server.engine import Overloaded
    from faceatlas.server.jobs import JobManagerClosedError, QueueFullError

    return (
        Rule(Overloaded, 503, "overloaded"),
        Rule(QueueFullError, 503, "overloaded"),
        Rule(JobManagerClosedError, 503, "shutting_down"),
        Rule(ImageTooLargeError, 413, "too_large"),
        Rule(UnsupportedImageError, 415, "unsupported_media_type"),
        Rule(InvalidImageError, 400, "invalid_image"),
        Rule(NoFaceError, 422, "no_face"),
        Rule(InvalidNameError, 422, "invalid_name"),  # before InvalidCorrectionError: a cluster's name too
        Rule(NothingEnrolledError, 422, "nothing_enrolled"),
        Rule(PersonNotFoundError, 404, "not_found"),
        Rule(FaceNotFoundError, 404, "not_found"),  # the gallery's or the collection's (face ids of each)
        Rule(ClusterNotFoundError, 404, "not_found"),
        Rule(PhotoNotFoundError, 404, "not_found"),
        Rule(ModelMismatchError, 409, "model_mismatch"),  # the gallery's model is not the collection's
        Rule(NameTakenError, 409, "conflict", _name_taken),
        Rule(DifferentPeopleError, 409, "conflict", _different_people),
        Rule(SharedPhotoError, 409, "conflict", _shared_photo),
        Rule(CorrectionConflictError, 409, "conflict"),
        Rule(FaceExistsError, 409, "face_exists"),  # a face drawn where the photo has one
        Rule(WholeClusterError, 422, "invalid_request", _whole_cluster),
        Rule(InvalidCorrectionError, 422, "invalid_request"),  # before CollectionError, which it also is
        Rule(GalleryError, 409, "conflict"),
        Rule(CollectionError, 409, "conflict"),
        Rule(ModelError, 500, "model_error"),
    )


def rule_for(exc: FaceAtlasError) -> Rule:
    return next((rule for rule in rules() if isinstance(exc, rule.kind)), Rule(FaceAtlasError, 400, "bad_request"))


def _name_taken(exc: Any) -> str:
    return (
        f"cluster {exc.other_id} is already named {exc.name!r}; if both show one person, merge them "
        f"(POST /v1/collection/clusters/{exc.cluster_id}/merge with into={exc.other_id}), or pick another name"
    )


def _different_people(exc: Any) -> str:
    source, into = exc.source, exc.into
    return (
        f"cluster {source.id} is {source.name!r} and cluster {into.id} is {into.name!r}: differently "
        "named clusters are different people; remove one name first (PATCH with name null) if they are one"
    )


def _shared_photo(exc: Any) -> str:
    a, b = exc.faces
    return (
        f"clusters {exc.source_id} and {exc.into_id} both have a face in photo {exc.photo_id} (faces {a} and "
        f"{b}); a person appears once per photo: take the wrong face out first (POST /v1/collection/faces/"
        "{id}/not-this-person), then merge"
    )


def _whole_cluster(exc: Any) -> str:
    return f"a split must leave at least one face in cluster {exc.cluster_id}; to rename the person use PATCH"


def _without_store_paths(message: str, request: Request) -> str:
    """The stores' messages name their files (or a PostgreSQL URL, which may hold a password),
    which are the server's business: a client reads "the collection" ("no cluster 7 in the
    collection"), "the gallery" ("no person named 'x' in the gallery")."""
    settings = getattr(request.app.state, "settings", None)
    if settings is None:
        return message
    places = [("collection", settings.collection_location), ("gallery", settings.gallery_location)]
    for kind, where in places:
        shown_as = []
        if isinstance(where, str) and "://" in where:
            from faceatlas.gallery.postgres_store import redact  # as the PostgreSQL stores name themselves

            shown_as = [redact(where), where]
        path = Path(where)
        shown_as += [str(path.absolute()), str(path)]
        for shown in dict.fromkeys(shown_as):
            message = message.replace(f"{kind} {shown}", f"the {kind}").replace(shown, f"the {kind} file")
    return message


def install(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service(request: Request, exc: ServiceError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        if exc.status == 401:
            headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
        return problem(exc.status, exc.code, str(exc), headers)

    @app.exception_handler(FaceAtlasError)
    async def _library(request: Request, exc: FaceAtlasError) -> JSONResponse:
        rule = rule_for(exc)
        status, code = rule.status, rule.code
        if code == "model_error":
            log.error("model error on %s %s", request.method, request.url.path, exc_info=exc)
            return problem(status, code, "the face models failed on this request (see the server log)")
        headers = {"Retry-After": str(getattr(exc, "retry_after", 1))} if status == 503 else None
        if code == "overloaded":
            metrics_of(request).refused.labels("overload").inc()
        message = rule.message(exc) if rule.message is not None else str(exc)
        return problem(status, code, _without_store_paths(message, request), headers)

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
