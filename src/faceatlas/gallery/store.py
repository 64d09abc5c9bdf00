"""Where a gallery lives: the ``GalleryStore`` protocol, its records, and ``open_store``.

A store keeps people and their face embeddings, bound to one embedding space (``ModelTag``),
and nothing else: searching is an index's job (except on PostgreSQL, where the database is the
index). Two backends implement the protocol with the same semantics:

- ``SqliteStore`` (``sqlite_store.py``): one file, the default; safe for several processes.
- ``PostgresStore`` (``postgres_store.py``): PostgreSQL + pgvector, for shared or large galleries.

Every write is one transaction and bumps ``version()`` inside it, so an index that remembers the
version it was built from knows when it is stale. The same transaction appends to a change log
(ids only, never embeddings or names), so a reader that is a few versions behind asks
``changes_since(version)`` for what moved instead of re-reading every face. Records are plain
data, JSON-safe except the embedding array.

>>> store = open_store("people.db")              # or "postgresql://user@host/db?schema=faces"
>>> store.bind_model(ModelTag("dlib_resnet", "1", 128))
>>> pid = store.add_person("ada")
>>> store.add_faces(pid, [FaceRecord(embedding, quality=0.9, source=sha256)])
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Self, runtime_checkable

import numpy as np

from faceatlas._connection import ConnectionLifecycle  # noqa: F401 - re-exported: its old home
from faceatlas.errors import FaceNotFoundError, GalleryError, ModelMismatchError  # noqa: F401 - also importable here
from faceatlas.types import FaceMatrix  # the gallery's and the collection's one type of face matrix

#: the ``format`` every export starts with, and the marker a store keeps to recognise itself
FORMAT = "faceatlas-gallery"
#: version of the export row layout (not of a backend's schema)
EXPORT_VERSION = 1
# an embedding whose norm is further than this from 1 was not L2-normalised
_NORM_TOLERANCE = 1e-3


class PersonNotFoundError(GalleryError, KeyError):
    """No person with that name (or id) in the gallery."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True, slots=True)
class ModelTag:
    """The embedding space a gallery is bound to: embeddings of different tags never mix."""

    name: str  # e.g. "dlib_resnet"
    version: str  # e.g. "1"
    dim: int

    def __str__(self) -> str:
        return f"{self.name} v{self.version} ({self.dim}-d)"


@dataclass(frozen=True, slots=True)
class PersonRecord:
    """One enrolled identity as stored; ``n_faces`` counts its faces when read."""

    id: int
    name: str
    metadata: dict  # JSON-serialisable
    n_faces: int
    private: bool = False  # shown only to those allowed to see private people (the service's keys)


@dataclass(frozen=True, slots=True)
class FaceRecord:
    """One face to enrol; the store assigns its id."""

    embedding: np.ndarray  # (dim,) float32, L2-normalised
    quality: float  # [0, 1]
    source: str  # e.g. the image's sha256 or path: lets an enrolment resume (``has_source``)
    box: tuple[float, float, float, float] | None = None  # xyxy pixels in the source image
    metadata: dict = field(default_factory=dict)


#: versions of change log a store keeps; a reader further behind re-reads the whole face matrix
LOG_VERSIONS = 10_000

# change log operations (the ``op`` column): what one row records
ADDED, REMOVED, PERSON, MERGED, RESET = "face+", "face-", "person", "merge", "reset"


@dataclass(frozen=True)
class Changes:
    """What changed in a store after some version, as ``changes_since`` reads it in one snapshot.

    Applied to a matrix of that version (``apply_changes``) it gives the matrix of ``version``.
    """

    version: int  # the store's version now
    added: FaceMatrix  # faces added since that still exist, with their person as it is now
    removed_faces: np.ndarray  # ids of faces removed (a deleted person's too: the log keeps no person id)
    merges: tuple[tuple[int, int], ...]  # (source, target) person ids, oldest first
    people: tuple[PersonRecord, ...]  # people added, renamed, merged into or given faces, as they are now

    @property
    def empty(self) -> bool:
        return not (len(self.added) or len(self.removed_faces) or self.merges or self.people)


@dataclass(frozen=True)
class Compaction:
    """What ``GalleryStore.compact`` did to erase the bytes deleted rows left on disk (``erased``),
    and what it could not erase, with why (``kept``): sentences that name no file or URL."""

    erased: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()


LogSummary = tuple[list[int], list[int], list[tuple[int, int]], set[int]]


def summarise_log(rows: Iterable[tuple[str, Any, Any, Any]]) -> LogSummary | None:
    """Change log rows ``(op, person_id, face_id, other_id)`` in order, as (added face ids, removed
    face ids, merges, people to re-read); None if a row asks for a full re-read."""
    added: list[int] = []
    removed: list[int] = []
    merges: list[tuple[int, int]] = []
    people: set[int] = set()
    for op, person_id, face_id, other_id in rows:
        if op == ADDED:
            added.append(int(face_id))
            if person_id is not None:  # None: the person was deleted since, and the face with them
                people.add(int(person_id))
        elif op == REMOVED:
            removed.append(int(face_id))
        elif op == PERSON:
            people.add(int(person_id))
        elif op == MERGED:
            merges.append((int(person_id), int(other_id)))
            people.add(int(other_id))
        else:  # RESET, or an op a newer faceatlas wrote
            return None
    return added, removed, merges, people


def apply_changes(matrix: FaceMatrix, changes: Changes) -> tuple[FaceMatrix, np.ndarray]:
    """(The matrix at ``changes.version``, ids of people whose faces changed) from an older matrix.

    Ids are never reused, so the order is simple: follow merges oldest first, drop removed faces,
    then add the new faces (already with their current person). Each array is copied once.
    """
    person_ids = matrix.person_ids
    for source, target in changes.merges:
        person_ids = np.where(person_ids == source, target, person_ids)
    moved = person_ids != matrix.person_ids
    keep = ~(np.isin(matrix.face_ids, changes.removed_faces) | np.isin(matrix.face_ids, changes.added.face_ids))
    touched = np.unique(
        np.concatenate([matrix.person_ids[~keep | moved], person_ids[moved & keep], changes.added.person_ids])
    )
    added = changes.added
    dim = matrix.embeddings.shape[1] if len(matrix) else added.embeddings.shape[1]
    parts = [
        _kept_then_added(old, keep, new)
        for old, new in (
            (matrix.face_ids, added.face_ids),
            (person_ids, added.person_ids),
            (matrix.embeddings.reshape(-1, dim), added.embeddings.reshape(-1, dim)),
            (matrix.qualities, added.qualities),
        )
    ]
    if len(parts[0]) > 1 and (np.diff(parts[0]) < 0).any():  # a late commit of an earlier id (PostgreSQL)
        order = np.argsort(parts[0], kind="stable")
        parts = [part[order] for part in parts]
    faces, people, vectors, qualities = (readonly(part) for part in parts)
    return FaceMatrix(faces, people, vectors, qualities, changes.version), touched


def _kept_then_added(old: np.ndarray, keep: np.ndarray, new: np.ndarray) -> np.ndarray:
    """``old[keep]`` followed by ``new``, written once into a new array."""
    kept = int(keep.sum())
    out = np.empty((kept + len(new), *old.shape[1:]), dtype=old.dtype)
    if kept == len(old):
        out[:kept] = old
    else:
        np.compress(keep, old, axis=0, out=out[:kept])
    out[kept:] = new
    return out


@runtime_checkable
class GalleryStore(Protocol):
    """What a gallery needs from where it is kept. Both backends share these semantics."""

    url: str

    def bind_model(self, tag: ModelTag) -> None:
        """Record the embedding space on first call; a different tag later raises ModelMismatchError."""
        ...

    def model(self) -> ModelTag | None: ...

    def add_person(self, name: str, metadata: dict | None = None) -> int:
        """A new person's id; GalleryError if the name is taken."""
        ...

    def get_person(self, name: str) -> PersonRecord: ...

    def person_by_id(self, person_id: int) -> PersonRecord: ...

    def list_people(self) -> list[PersonRecord]: ...

    def rename_person(self, old: str, new: str) -> None: ...

    def set_private(self, name: str, private: bool) -> None:
        """Mark a person private or not (PersonNotFoundError if there is none); a merge keeps the
        target private if either was."""
        ...

    def merge_people(self, source: str, target: str) -> None:
        """Move every face of ``source`` to ``target`` and delete ``source``, in one transaction."""
        ...

    def delete_person(self, name: str) -> int:
        """Delete the person and every row of theirs; returns how many faces went."""
        ...

    def compact(self, *, full: bool = True) -> Compaction:
        """Erase what deleted rows left on disk (SQLite: empty the WAL; PostgreSQL: VACUUM FULL).
        ``full=False`` skips rewriting the faces table where that is costly (PostgreSQL)."""
        ...

    def add_faces(self, person_id: int, faces: Sequence[FaceRecord]) -> list[int]:
        """Store all faces or none (one transaction); returns their new ids in order."""
        ...

    def remove_face(self, face_id: int) -> None: ...

    def has_source(self, person_id: int, source: str) -> bool: ...

    def face_matrix(self) -> FaceMatrix: ...

    def changes_since(self, version: int) -> Changes | None:
        """What changed after ``version``; None when the log cannot say (too old, or an import),
        and the caller re-reads ``face_matrix()``."""
        ...

    def version(self) -> int: ...

    def export_rows(self) -> Iterator[dict]: ...

    def import_rows(self, rows: Iterable[dict]) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


def open_store(path_or_url: str | os.PathLike, create: bool = True) -> GalleryStore:
    """Open (or create) a gallery store.

    ``postgresql://…`` or ``postgres://…`` opens a PostgreSQL store (needs the ``postgres``
    extra; ``?schema=name`` picks the schema, default ``faceatlas``); anything else is the path
    of a SQLite file. With ``create=False`` a missing store is a GalleryError. An existing file or
    schema that is not a gallery is a GalleryError too: it is never overwritten.
    """
    target = os.fspath(path_or_url)
    if isinstance(target, str) and target.startswith(("postgresql://", "postgres://")):
        try:
            from faceatlas.gallery.postgres_store import PostgresStore
        except ImportError as exc:  # psycopg missing
            raise GalleryError(f"{exc}; a PostgreSQL gallery needs psycopg: pip install 'faceatlas[postgres]'") from exc
        return PostgresStore(target, create=create)
    from faceatlas.gallery.sqlite_store import SqliteStore

    return SqliteStore(target, create=create)


# --- validation shared by the backends: bad input fails before any transaction starts ---


def check_tag(tag: ModelTag) -> ModelTag:
    if not isinstance(tag, ModelTag):
        raise TypeError(f"expected a ModelTag, got {type(tag).__name__}")
    if not (isinstance(tag.name, str) and tag.name and isinstance(tag.version, str) and tag.version):
        raise GalleryError(f"a model tag needs a non-empty name and version, got {tag!r}")
    if isinstance(tag.dim, bool) or not isinstance(tag.dim, (int, np.integer)) or tag.dim <= 0:
        raise GalleryError(f"a model tag needs a positive integer dim, got {tag.dim!r}")
    return ModelTag(tag.name, tag.version, int(tag.dim))


def check_same_model(bound: ModelTag | None, tag: ModelTag, where: str) -> None:
    if bound is not None and bound != tag:
        raise ModelMismatchError(
            f"{where} holds embeddings of {bound}, not {tag}: two models' embeddings never mix. "
            + reembed_hint(where, bound, tag)
        )


def reembed_hint(where: str, bound: ModelTag, tag: ModelTag) -> str:
    """What to do when a store of ``bound`` meets an embedder of ``tag`` (a sentence for a ModelMismatchError)."""
    return (
        f"Move it to {tag.name} with `faceatlas reembed {where} --embedder {embedder_option(tag)}` (faces, people, "
        f"names and corrections are kept), or use it with its own model: --embedder {embedder_option(bound)} "
        "(in Python, FaceAnalyzer(embedder=...))"
    )


def embedder_option(tag: ModelTag) -> str:
    """What ``--embedder`` takes for a tag's model: a registered model's name, else its file (a store records none)."""
    from faceatlas.models.catalog import registered

    if tag.name in registered("embedding"):
        return tag.name
    return f"PATH/{tag.name.removeprefix('onnx:')}.onnx"


def check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise GalleryError(f"a person's name must be a non-empty string, got {name!r}")
    return name


def dump_metadata(metadata: dict | None, what: str) -> str:
    """Metadata as JSON text; a GalleryError names what could not be serialised."""
    if metadata is None:
        return "{}"
    if not isinstance(metadata, dict):
        raise GalleryError(f"{what} metadata must be a dict, got {type(metadata).__name__}")
    try:
        return json.dumps(metadata, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise GalleryError(f"{what} metadata must be JSON-serialisable: {exc}") from exc


def check_embedding(embedding: object, tag: ModelTag) -> np.ndarray:
    """A contiguous (dim,) float32 copy, or an error saying what is wrong with it."""
    vec = np.asarray(embedding)
    if vec.ndim != 1:
        raise GalleryError(f"an embedding must be one vector of shape ({tag.dim},), got shape {vec.shape}")
    if vec.shape[0] != tag.dim:
        raise ModelMismatchError(
            f"the gallery holds {tag} embeddings, got a {vec.shape[0]}-d vector: another model's (or a model whose "
            f"output is not what its card says); embed with --embedder {embedder_option(tag)}, or move the gallery "
            "to the other model with `faceatlas reembed`"
        )
    if not np.issubdtype(vec.dtype, np.floating):
        raise GalleryError(f"an embedding must be floating point, got dtype {vec.dtype}")
    vec = np.ascontiguousarray(vec, dtype=np.float32)
    if not np.all(np.isfinite(vec)):
        raise GalleryError("an embedding contains NaN or infinity")
    norm = float(np.linalg.norm(vec))
    if abs(norm - 1.0) > _NORM_TOLERANCE:
        raise GalleryError(f"embeddings must be L2-normalised (norm 1), got norm {norm:.4f}; use v / np.linalg.norm(v)")
    return vec


@dataclass(frozen=True, slots=True)
class CheckedFace:
    """A FaceRecord after validation, in the types the backends write."""

    embedding: np.ndarray
    quality: float
    source: str
    box: list[float] | None
    metadata_json: str


def check_face(face: FaceRecord, tag: ModelTag) -> CheckedFace:
    if not isinstance(face, FaceRecord):
        raise TypeError(f"expected a FaceRecord, got {type(face).__name__}")
    quality = float(face.quality)
    if not 0.0 <= quality <= 1.0:  # also rejects NaN
        raise GalleryError(f"a face's quality must be in [0, 1], got {face.quality!r}")
    if not isinstance(face.source, str):
        raise GalleryError(f"a face's source must be a string (sha256 or path), got {type(face.source).__name__}")
    box = None
    if face.box is not None:
        box = [float(v) for v in face.box]
        if len(box) != 4 or not all(math.isfinite(v) for v in box):
            raise GalleryError(f"a face's box must be 4 finite numbers (x1, y1, x2, y2), got {face.box!r}")
    return CheckedFace(
        check_embedding(face.embedding, tag), quality, face.source, box, dump_metadata(face.metadata, "face")
    )


def check_faces(faces: Sequence[FaceRecord], tag: ModelTag | None, where: str) -> list[CheckedFace]:
    faces = list(faces)
    if faces and tag is None:
        raise GalleryError(f"{where} is bound to no model yet; call bind_model(ModelTag(...)) before adding faces")
    return [check_face(face, tag) for face in faces]  # type: ignore[arg-type]


def readonly(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def empty_matrix(dim: int, version: int) -> FaceMatrix:
    ints = readonly(np.zeros(0, np.int64))
    return FaceMatrix(ints, ints, readonly(np.zeros((0, dim), np.float32)), readonly(np.zeros(0, np.float32)), version)


# --- export rows: one layout for both backends, so a gallery moves between them ---


def header_row() -> dict:
    return {"kind": "gallery", "format": FORMAT, "export_version": EXPORT_VERSION}


def model_row(tag: ModelTag) -> dict:
    return {"kind": "model", "name": tag.name, "version": tag.version, "dim": tag.dim}


def person_row(person_id: int, name: str, metadata: dict, private: bool = False) -> dict:
    row = {"kind": "person", "id": int(person_id), "name": name, "metadata": metadata}
    if private:  # only when set: an export of a gallery with no private person reads as before
        row["private"] = True
    return row


def face_row(
    face_id: int, person_id: int, person: str, embedding: np.ndarray, quality: float, source: str, box, metadata: dict
) -> dict:
    return {
        "kind": "face",
        "id": int(face_id),
        "person_id": int(person_id),
        "person": person,
        "embedding": [float(v) for v in embedding],
        "quality": float(quality),
        "source": source,
        "box": None if box is None else [float(v) for v in box],
        "metadata": metadata,
    }


def parse_rows(rows: Iterable[dict]) -> Iterator[tuple[str, Any]]:
    """Import rows as ("model", ModelTag) | ("person", (name, metadata, private)) | ("face", (person, FaceRecord))."""
    for number, row in enumerate(rows):
        try:
            kind = row["kind"]
            if kind == "gallery":
                if row.get("format") != FORMAT or int(row.get("export_version", 0)) > EXPORT_VERSION:
                    found = f"{row.get('format')!r} v{row.get('export_version')}"
                    raise GalleryError(f"rows are {found}; this faceatlas reads {FORMAT} up to v{EXPORT_VERSION}")
            elif kind == "model":
                yield "model", check_tag(ModelTag(row["name"], row["version"], row["dim"]))
            elif kind == "person":
                yield "person", (check_name(row["name"]), dict(row.get("metadata") or {}), row.get("private") is True)
            elif kind == "face":
                box = row.get("box")
                face = FaceRecord(
                    embedding=np.asarray(row["embedding"], dtype=np.float32),
                    quality=float(row["quality"]),
                    source=row["source"],
                    box=None if box is None else tuple(box),
                    metadata=dict(row.get("metadata") or {}),
                )
                yield "face", (row["person"], face)
            else:
                raise GalleryError(f"unknown row kind {kind!r}")
        except (KeyError, TypeError, ValueError) as exc:
            raise GalleryError(f"import row {number} is malformed ({exc!r}): {str(row)[:200]}") from exc
        except GalleryError as exc:
            raise type(exc)(f"import row {number}: {exc}") from exc
