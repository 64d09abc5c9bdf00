"""Marking people private over HTTP: a gallery person by name, a collection cluster by id.

Either call marks both sides a name links (``faceatlas.collection.privacy``). It takes a write key
that may see private people, or an admin key: a key that may not see them may not change who is
hidden either (403, answered before any lookup, so it tells nothing of who exists).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Annotated

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from faceatlas.server.auth import Writer
from faceatlas.server.errors import ServiceError
from faceatlas.server.privacy import can_see_private
from faceatlas.server.schemas import MAX_ID
from faceatlas.server.state import engine_of

router = APIRouter(prefix="/v1", tags=["people"])


class PrivateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    private: bool = Field(description="true: shown only to keys allowed to see private people; false: to every key")


class PrivacyOut(BaseModel):
    name: str | None = Field(description="the person's name (null: an unnamed cluster)")
    private: bool
    clusters: list[int] = Field(description="the collection clusters marked")
    gallery: bool = Field(description="whether a gallery person of that name was marked")


def _permitted(request: Request) -> None:
    if not can_see_private(request):
        raise ServiceError(
            403,
            "forbidden",
            "this key may not see private people, so it may not mark them either: use an admin key or one "
            "made with --private",
        )


@router.put("/people/{name}/private", response_model=PrivacyOut, summary="Mark a person private (or not)")
def set_person_private(
    request: Request,
    _: Writer,
    name: Annotated[str, Path(min_length=1, max_length=200, description="the person's name")],
    body: PrivateRequest,
) -> PrivacyOut:
    """Marks the gallery person and the collection cluster of that name, whichever exist (404 if
    neither). A private person is left out of every answer to a key that may not see them."""
    from faceatlas.collection.privacy import set_person_private as mark

    _permitted(request)
    engine = engine_of(request)
    where = engine.settings.collection_location
    has_collection = isinstance(where, str) or where.exists()  # no file yet: none is created
    collection = engine.collection() if has_collection else nullcontext()
    with engine.collection_lock, collection as store, engine.gallery_lock:  # the order corrections take
        change = mark(name, body.private, engine.gallery(), store)
    return PrivacyOut(name=change.name, private=change.private, clusters=list(change.clusters), gallery=change.gallery)


@router.put(
    "/collection/clusters/{cluster_id}/private",
    response_model=PrivacyOut,
    tags=["collection"],
    summary="Mark a cluster (a person) private (or not)",
)
def set_cluster_private(
    request: Request,
    _: Writer,
    cluster_id: Annotated[int, Path(ge=0, le=MAX_ID, description="a cluster id")],
    body: PrivateRequest,
) -> PrivacyOut:
    """Marks the cluster and, when it is named, the gallery person of its name."""
    from faceatlas.collection.privacy import set_cluster_private as mark

    _permitted(request)
    engine = engine_of(request)
    with engine.collection_lock, engine.collection() as store, engine.gallery_lock:
        change = mark(cluster_id, body.private, store, engine.gallery())
    return PrivacyOut(name=change.name, private=change.private, clusters=list(change.clusters), gallery=change.gallery)
