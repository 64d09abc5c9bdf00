"""Private people in the service: who a request may not see, for every route to leave out.

A caller sees private people when its principal has the permission (``Principal.private``: a key
made with ``--private``, an admin key, or with auth off ``FACEATLAS_SHOW_PRIVATE=true``); the
principal is the one ``auth.require`` kept in ``request.state`` (none there: nothing private is
shown, fail closed). For any other caller, routes leave private people out of lists, leave their
faces out of a photo's faces and of searches, answer identifications of them as unknown, and
answer a private person's, cluster's or face's own URL with the very 404 a missing one gets (a
403, or another wording, would say that it exists).

The helpers here are what a route calls:

- ``can_see_private(request)``: whether the caller may.
- ``hidden_for(request)``: a ``Hidden`` (names and cluster ids) to leave out; empty when the
  caller may see everything, so a route may filter unconditionally.
- ``hidden_clusters(request)`` / ``hidden_names(request)``: the two halves.
- ``visible_faces(request, faces)``: collection faces (anything with ``cluster``) less hidden ones.
- ``check_visible_face(request, face)`` / ``check_visible_cluster`` / ``check_visible_person``:
  404 for a hidden one.
- ``redact_people(data, names)``: JSON-like data (video job results, stream events) with no
  hidden person named.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from fastapi import Request

from faceatlas.collection.privacy import NOTHING, Hidden
from faceatlas.server.state import engine_of

__all__ = [
    "can_see_private",
    "check_visible_cluster",
    "check_visible_face",
    "check_visible_person",
    "hidden_clusters",
    "hidden_for",
    "hidden_names",
    "redact_people",
    "visible_faces",
]

T = TypeVar("T")


def can_see_private(request: Request) -> bool:
    """Whether this request's caller may see private people (False when no principal was checked)."""
    principal = getattr(request.state, "principal", None)
    return bool(getattr(principal, "private", False))


def hidden_for(request: Request, store: Any | None = None) -> Hidden:
    """Who this caller may not see (``Hidden.empty`` for one who may see everything).

    ``store``: the collection store the route already holds; else the engine's, when the service
    has a collection (none yet: nothing hidden there, and none is created)."""
    if can_see_private(request):
        return NOTHING
    from faceatlas.collection.privacy import hidden

    engine = engine_of(request)
    if store is not None:
        return hidden(engine.gallery(), store)
    where = engine.settings.collection_location
    if isinstance(where, str) or where.exists():
        with engine.collection() as opened:
            return hidden(engine.gallery(), opened)
    return hidden(engine.gallery(), None)


def hidden_clusters(request: Request, store: Any | None = None) -> frozenset[int]:
    """Ids of the clusters this caller may not see (searches of faces leave their faces out)."""
    return hidden_for(request, store).clusters


def hidden_names(request: Request, store: Any | None = None) -> frozenset[str]:
    """Names of the people this caller may not see (identifications answer them as unknown)."""
    return hidden_for(request, store).names


def visible_faces(request: Request, faces: Iterable[T], store: Any | None = None) -> list[T]:
    """Collection faces (with a ``cluster`` attribute) less those of people hidden from the caller."""
    faces = list(faces)
    if not faces or can_see_private(request):
        return faces
    hide = hidden_clusters(request, store)
    return [face for face in faces if getattr(face, "cluster", None) not in hide]


def check_visible_face(request: Request, face: Any, store: Any, hide: Hidden | None = None) -> None:
    """FaceNotFoundError, worded as the store words it, when the collection face belongs to a person
    hidden from the caller: the answer does not tell a hidden face from a missing one."""
    if can_see_private(request):
        return
    hide = hide if hide is not None else hidden_for(request, store)
    if getattr(face, "cluster", None) in hide.clusters:
        from faceatlas.errors import FaceNotFoundError

        raise FaceNotFoundError(f"no face {face.id} in collection {store.location}", int(face.id))


def check_visible_cluster(request: Request, info: Any, store: Any, hide: Hidden | None = None) -> None:
    """ClusterNotFoundError (as the store words it) when the cluster is a person hidden from the caller."""
    if can_see_private(request):
        return
    hide = hide if hide is not None else hidden_for(request, store)
    if info.id in hide.clusters or (info.name is not None and info.name in hide.names):
        from faceatlas.collection.store import ClusterNotFoundError

        raise ClusterNotFoundError(f"no cluster {info.id} in collection {store.location}", int(info.id))


def check_visible_person(request: Request, name: str, hide: Hidden | None = None) -> None:
    """PersonNotFoundError (as the gallery words it) when the person ``name`` is hidden from the caller."""
    if can_see_private(request):
        return
    hide = hide if hide is not None else hidden_for(request)
    if name in hide.names:
        from faceatlas.gallery.store import PersonNotFoundError

        url = engine_of(request).gallery().store.url
        if url.startswith(("postgresql://", "postgres://")):  # worded as PostgresStore words it
            from faceatlas.gallery.postgres_store import redact

            url = redact(url)
        raise PersonNotFoundError(f"no person named {name!r} in gallery {url}")


def redact_people(value: Any, hide: frozenset[str]) -> Any:
    """JSON-like data (a video job's result, a stream event) with no hidden person named.

    Wherever a mapping names a hidden ``person``, it becomes ``None`` and its ``score`` too (an
    unknown face, as identify answers it); ``candidates`` lose their hidden entries, and lists of
    names (``people``) their hidden names. Anything else is kept as it is; ``hide`` empty: ``value``.
    """
    if not hide:
        return value
    if isinstance(value, list):
        return [redact_people(item, hide) for item in value]
    if not isinstance(value, dict):
        return value
    out = {key: redact_people(item, hide) for key, item in value.items() if key != "candidates"}
    if isinstance(value.get("candidates"), list):  # filtered as given, before their names are redacted
        candidates = [c for c in value["candidates"] if not (isinstance(c, dict) and c.get("person") in hide)]
        if value.get("person") in hide:  # nothing above the threshold next to "unknown"
            threshold = value.get("threshold")
            candidates = [c for c in candidates if isinstance(threshold, (int, float)) and _below(c, threshold)]
        out["candidates"] = redact_people(candidates, hide)
    elif "candidates" in value:
        out["candidates"] = value["candidates"]
    if value.get("person") in hide:
        out["person"] = None
        if "score" in out:
            out["score"] = None
        if out.get("kind") == "person_seen":
            out["kind"] = "unknown_person"
    if isinstance(out.get("people"), list):
        out["people"] = [name for name in out["people"] if name not in hide]
    return out


def _below(candidate: Any, threshold: float) -> bool:
    score = candidate.get("score") if isinstance(candidate, dict) else None
    return isinstance(score, (int, float)) and score < threshold
