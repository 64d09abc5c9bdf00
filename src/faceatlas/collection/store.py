"""A photo collection: every photo of some folders, the faces in them, and how they cluster.

``CollectionStore`` holds what a collection does (the SQL, the checks); two backends keep it:
``SqliteCollectionStore`` (a file, below; one machine) and ``PostgresCollectionStore``
(``postgres_store.py``: a PostgreSQL schema with pgvector, shared by the machines of a cluster).
``CollectionStore.open(target)`` picks one: a ``postgresql://`` URL or a file path.

The SQLite file is kept the way gallery files are (see ``gallery/sqlite_store.py``):

- WAL journal + a busy timeout, and every write is one ``BEGIN IMMEDIATE`` transaction. A photo
  and all of its faces are written in one transaction, so a killed index job leaves each photo
  either fully indexed or absent, and the next run resumes where it stopped.
- ``PRAGMA application_id`` ("FACC") says the file is a collection and ``PRAGMA user_version``
  its schema version (``MIGRATIONS``). Anything else — not SQLite, damaged, another application's
  database, a gallery — is a CollectionError naming the file; it is never recreated or overwritten.
- The collection is bound to one embedding model (name, version, dimension); faces of another
  model are refused, never mixed.
- Paths are stored relative to their indexed root (posix), so (root, path) names a file.
- A video is a photo row of ``kind`` "video" (with its ``duration``): one face per track, the
  track's best frame's box and pose, its quality-weighted template as embedding, and its
  ``time`` (that frame's, seconds), ``start_time``/``end_time`` and ``track`` id (schema 2).
- Deleting a face deletes its user constraints (foreign keys, ``ON DELETE CASCADE``);
  ``secure_delete`` zeroes what was deleted, as faces are biometric data.
- Photo libraries (schema 3): a photo's capture time (``taken_at``, EXIF), a face's ``origin``
  ("detected", "manual": drawn by the user, "region": from a named region of the photo's metadata
  that no detection matched), the boxes of detections the user removed (``rejected``: later
  analyses drop detections there), the sidecars faceatlas wrote (``sidecars``, so forgetting a
  person can take them out), and private people (``clusters.private``). A photo analysed again
  (its bytes changed, its size did not: an edit of its metadata, a re-save) keeps what the user
  did to it: its drawn faces, its removed detections, and, for each new detection that is the old
  face again (same place, same look), the cluster and constraints of the old one.
- People's lives (schema 4): a cluster's person's birth date (``clusters.born``, "YYYY-MM-DD"),
  and life stages (``clusters.person``: the cluster is a life stage of that cluster's person, its
  own template, shown under the person's name and dated by the person's birth date). Clustering
  keeps a face out of a person it cannot be at its photo's date (``clustering/lifespan.py``).
- Review answers (schema 5): each yes or no the review queue was given, as (question kind, the
  similarity it showed, same person or not, the model it was asked under), so the queue learns
  how this library's similarities map to answers (``clustering.questions.Calibration``). No face
  ids: they hold nothing of anyone, and outlive the faces they were about.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple, Self, cast

import numpy as np

from faceatlas._connection import ConnectionLifecycle
from faceatlas._sqlite import Migration, SqliteFile
from faceatlas.errors import CollectionError, FaceNotFoundError, ModelMismatchError  # also importable from here
from faceatlas.gallery.store import ModelTag, embedder_option, reembed_hint  # the same tag as galleries
from faceatlas.types import Box, Face, FaceMatrix

#: marks the file as a faceatlas collection in the SQLite header ("FACC")
APPLICATION_ID = 0x46414343
FORMAT = "faceatlas-collection"
UNASSIGNED = -1  # a face the clusterer placed in no cluster
NOT_CLUSTERED = -2  # FaceTable.clusters for a face never clustered (NULL in the file)
_NORM_TOLERANCE = 1e-3  # as the gallery: further from 1 means the vector was not L2-normalised

ConstraintKind = Literal["must", "cannot"]
MediaKind = Literal["photo", "video"]
FaceOrigin = Literal["detected", "manual", "region"]
FACE_ORIGINS: tuple[str, ...] = ("detected", "manual", "region")
#: a new detection is the old face again (its cluster and constraints carry over) at this overlap
#: and cosine: an unchanged image gives ~1.0 for both, a re-encoded one > 0.95; another person, far less
CARRY_IOU, CARRY_COSINE = 0.7, 0.9
#: a detection overlapping a removed detection or a drawn face this much is that face again
SAME_FACE_IOU = 0.5


class ClusterNotFoundError(CollectionError, KeyError):
    """No cluster of that id in the collection."""

    def __init__(self, message: str, cluster_id: int) -> None:
        super().__init__(message)
        self.cluster_id = int(cluster_id)

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class PhotoNotFoundError(CollectionError, KeyError):
    """No photo of that id in the collection."""

    def __init__(self, message: str, photo_id: int) -> None:
        super().__init__(message)
        self.photo_id = int(photo_id)

    def __str__(self) -> str:
        return str(self.args[0])


class CorrectionConflictError(CollectionError):
    """A correction the collection's state refuses (two names, a shared photo, a face in no cluster)."""


class NameTakenError(CorrectionConflictError):
    """Another cluster already has the name (names are unique: one person, one cluster)."""

    def __init__(self, message: str, cluster_id: int, name: str, other_id: int) -> None:
        super().__init__(message)
        self.cluster_id, self.name, self.other_id = int(cluster_id), name, int(other_id)


class FaceExistsError(CollectionError):
    """A face added by hand where the photo already has one (their boxes overlap)."""

    def __init__(self, message: str, face_id: int) -> None:
        super().__init__(message)
        self.face_id = face_id


class InvalidCorrectionError(CollectionError, ValueError):
    """A correction's arguments are wrong (a cluster merged into itself, faces that are not the
    cluster's, a split that would leave nothing, a blank name)."""


def model_tag(analyzer: Any) -> ModelTag:
    """The tag of an analyzer's embedder (its card, as ``Gallery._bind`` reads it)."""
    card = analyzer.embedder.card
    return ModelTag(card.name, card.version, int(card.embedding_dim or analyzer.embedder.dim))


class PhotoState(NamedTuple):
    """What says whether a file changed: its hash, and the cheap (size, mtime) check before it."""

    sha256: str
    size: int
    mtime_ns: int
    indexed_at: str = ""  # ISO 8601, UTC: when its faces (and its metadata's names) were last read


class VideoMoment(NamedTuple):
    """Where in a video a face is: the track it stands for (seconds from the video's start)."""

    time: float  # of the track's best frame, whose box, landmarks and pose the face row holds
    start: float  # the track's first detection
    end: float  # and its last
    track: int  # the tracker's id, unique within the video


class NewPhoto(NamedTuple):
    """A photo to store (``add_photos``): ``add_photo``'s arguments. A video is a "photo" of
    ``kind`` "video": one face per track, ``moments[i]`` saying where ``faces[i]`` is."""

    rel_path: str  # relative to root, posix
    root: str
    sha256: str
    size: int
    mtime_ns: int
    width: int | None
    height: int | None
    faces: Sequence[Face]
    status: str = "ok"
    kind: MediaKind = "photo"
    duration: float | None = None  # seconds (videos)
    moments: Sequence[VideoMoment] | None = None  # one per face (videos)
    taken_at: str | None = None  # capture time, "YYYY-MM-DDTHH:MM:SS" as the camera's clock said (EXIF)
    origins: Sequence[FaceOrigin] | None = None  # one per face; None: all "detected"


@dataclass(frozen=True, slots=True)
class PhotoRecord:
    id: int
    root: str
    path: str  # relative to root, posix
    sha256: str
    size: int
    mtime_ns: int
    width: int | None
    height: int | None
    status: str  # "ok" or "unreadable: <reason>"
    indexed_at: str  # ISO 8601, UTC
    n_faces: int
    kind: MediaKind = "photo"  # or "video": its faces are tracks, each with a time
    duration: float | None = None  # seconds (videos)
    taken_at: str | None = None  # capture time, "YYYY-MM-DDTHH:MM:SS" (camera clock; EXIF), None: unknown

    @property
    def file(self) -> Path:
        return Path(self.root, self.path)


class ClusterInfo(NamedTuple):
    id: int
    name: str | None  # None = not named yet (a life stage: its person's name, see ``person``)
    n_faces: int
    private: bool = False  # a private person: shown only to those allowed to see private people
    born: str | None = None  # the person's birth date, "YYYY-MM-DD" (a life stage: its person's)
    person: int | None = None  # a life stage: the cluster of the person it is a stage of; None: its own person


class NameForgotten(NamedTuple):
    """What ``CollectionStore.forget_name`` did."""

    clusters: tuple[int, ...]  # the clusters that carried the name, now unnamed
    photo_paths: int  # photos whose folder or file name contains the name: kept (they are the files' names)
    wal_kept: str | None  # why the WAL could not be emptied (the old page may linger), or None
    erased: str = ""  # how the name was erased from the store's files (a sentence), when clusters carried it


@dataclass(frozen=True, slots=True)
class FaceInfo:
    """One stored face, with where it was found (enough to crop or enrol it)."""

    id: int
    photo_id: int
    root: str
    path: str
    sha256: str  # of the photo file
    idx: int  # 0 = the largest face in its photo
    box: tuple[float, float, float, float]  # xyxy pixels in the EXIF-rotated photo
    score: float
    quality: float | None
    cluster: int | None  # None = not clustered yet, -1 = unassigned
    time: float | None = None  # seconds into the video of the frame the box is in (None: a photo's face)
    start: float | None = None  # a video face's track: first and last detection (seconds)
    end: float | None = None
    track: int | None = None
    origin: FaceOrigin = "detected"  # "manual": drawn by the user; "region": from the photo's metadata

    @property
    def file(self) -> Path:
        return Path(self.root, self.path)

    def same_moment(self, other: FaceInfo) -> bool:
        """Whether the two faces were seen together, so they cannot be one person: two faces of one
        photo, or two tracks of one video that overlap in time (tracks apart in time may be one person)."""
        if self.photo_id != other.photo_id or self.id == other.id:
            return False
        if None in (self.start, self.end, other.start, other.end):
            return True
        return self.start <= other.end and other.start <= self.end  # type: ignore[operator]


#: what ``face_table`` returns: the one face matrix type, with ``photo_ids`` and ``clusters`` filled
FaceTable = FaceMatrix


@dataclass
class EnrollSummary:
    """What ``enroll_named`` did: faces added per person, and faces passed over."""

    added: dict[str, int] = field(default_factory=dict)
    already_enrolled: int = 0
    below_quality: int = 0

    def __str__(self) -> str:
        people = ", ".join(f"{name} +{n}" for name, n in self.added.items()) or "nobody"
        return (
            f"enrolled: {people}; {self.already_enrolled} face(s) already enrolled, "
            f"{self.below_quality} below the gallery's quality floor"
        )


# --- schema ---------------------------------------------------------------------------------------


def _migrate_0_to_1(conn: sqlite3.Connection) -> None:
    """The first schema: settings row, photos, faces, clusters, constraints."""
    conn.execute(
        "CREATE TABLE collection ("
        " id INTEGER PRIMARY KEY CHECK (id = 1), format TEXT NOT NULL,"
        " model_name TEXT, model_version TEXT, model_dim INTEGER)"
    )
    # AUTOINCREMENT: a deleted photo's or face's id is never handed out again, so a stale id
    # (a clusterer's labels, a constraint) can never land on another face
    conn.execute(
        "CREATE TABLE photos ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " root TEXT NOT NULL, path TEXT NOT NULL, sha256 TEXT NOT NULL,"
        " size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, width INTEGER, height INTEGER,"
        " status TEXT NOT NULL, indexed_at TEXT NOT NULL,"
        " UNIQUE (root, path))"
    )
    conn.execute("CREATE INDEX photos_sha256 ON photos(sha256)")
    conn.execute("CREATE TABLE clusters (id INTEGER PRIMARY KEY, name TEXT UNIQUE)")
    conn.execute(
        "CREATE TABLE faces ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,"
        " idx INTEGER NOT NULL, box TEXT NOT NULL, score REAL NOT NULL, landmarks TEXT NOT NULL,"
        " yaw REAL, pitch REAL, roll REAL, quality REAL, embedding BLOB NOT NULL,"
        " cluster INTEGER,"  # NULL = not clustered yet, -1 = unassigned; no FK: -1 is no row
        " UNIQUE (photo_id, idx))"
    )
    conn.execute("CREATE INDEX faces_cluster ON faces(cluster)")
    conn.execute(
        "CREATE TABLE constraints ("
        " face_a INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,"
        " face_b INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,"
        " kind TEXT NOT NULL CHECK (kind IN ('must', 'cannot')),"
        " PRIMARY KEY (face_a, face_b), CHECK (face_a < face_b))"
    )
    conn.execute("CREATE INDEX constraints_b ON constraints(face_b)")  # the cascade looks face_b up
    conn.execute("INSERT INTO collection (id, format) VALUES (1, ?)", (FORMAT,))
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """Videos: a photo row may be a video (``kind``, ``duration``), its faces tracks with a time."""
    for statement in VIDEO_COLUMNS:
        conn.execute(statement.format(s="", real="REAL", int="INTEGER"))


#: the columns videos added (schema 2), for either backend: ``s`` the schema prefix, then SQL types
VIDEO_COLUMNS = (
    "ALTER TABLE {s}photos ADD COLUMN kind TEXT NOT NULL DEFAULT 'photo' CHECK (kind IN ('photo', 'video'))",
    "ALTER TABLE {s}photos ADD COLUMN duration {real}",
    "ALTER TABLE {s}faces ADD COLUMN time {real}",  # NULL for a photo's face
    "ALTER TABLE {s}faces ADD COLUMN start_time {real}",
    "ALTER TABLE {s}faces ADD COLUMN end_time {real}",
    "ALTER TABLE {s}faces ADD COLUMN track {int}",
)

#: what photo libraries added (schema 3), for either backend (see the module doc)
LIBRARY_SCHEMA = (
    "ALTER TABLE {s}photos ADD COLUMN taken_at TEXT",
    (
        "ALTER TABLE {s}faces ADD COLUMN origin TEXT NOT NULL DEFAULT 'detected'"
        " CHECK (origin IN ('detected', 'manual', 'region'))"
    ),
    "ALTER TABLE {s}clusters ADD COLUMN private {int} NOT NULL DEFAULT 0",
    (
        "CREATE TABLE {s}rejected ("
        " photo_id {int} NOT NULL REFERENCES {s}photos(id) ON DELETE CASCADE, box TEXT NOT NULL)"
    ),
    "CREATE INDEX rejected_photo ON {s}rejected (photo_id)",
    (
        "CREATE TABLE {s}sidecars ("
        " photo_id {int} NOT NULL REFERENCES {s}photos(id) ON DELETE CASCADE, path TEXT NOT NULL,"
        " PRIMARY KEY (photo_id, path))"
    ),
)


def _migrate_2_to_3(conn: sqlite3.Connection) -> None:
    """Photo libraries: capture times, drawn and metadata faces, removed detections, sidecars, privacy."""
    for statement in LIBRARY_SCHEMA:
        conn.execute(statement.format(s="", real="REAL", int="INTEGER"))


#: what people's lives added (schema 4), for either backend: birth dates and life stages
LIFE_SCHEMA = (
    "ALTER TABLE {s}clusters ADD COLUMN born TEXT",
    "ALTER TABLE {s}clusters ADD COLUMN person {int}",  # no FK: a person's cluster may go; readers check
)


def _migrate_3_to_4(conn: sqlite3.Connection) -> None:
    """People's lives: birth dates, life stages."""
    for statement in LIFE_SCHEMA:
        conn.execute(statement.format(s="", real="REAL", int="INTEGER"))


#: what the review queue's memory added (schema 5), for either backend (see the module doc)
REVIEW_SCHEMA = (
    (
        "CREATE TABLE {s}review_answers ("
        " kind TEXT NOT NULL CHECK (kind IN ('merge', 'member', 'group')), similarity {real} NOT NULL,"
        " same {int} NOT NULL CHECK (same IN (0, 1)), model TEXT NOT NULL, answered_at TEXT NOT NULL)"
    ),
    "CREATE INDEX review_answers_model ON {s}review_answers (model, answered_at)",
)
#: the answers the review queue learns from: the latest, so a library that changes is followed
REVIEW_MEMORY = 2000
REVIEW_KINDS = ("merge", "member", "group")  # question kinds answers are kept for (REVIEW_SCHEMA checks them)


def _migrate_4_to_5(conn: sqlite3.Connection) -> None:
    """The review queue's memory: the answers it was given."""
    for statement in REVIEW_SCHEMA:
        conn.execute(statement.format(s="", real="REAL", int="INTEGER"))


#: MIGRATIONS[i] turns a schema of version i into version i + 1 (inside the caller's transaction)
MIGRATIONS: list[Migration] = [_migrate_0_to_1, _migrate_1_to_2, _migrate_2_to_3, _migrate_3_to_4, _migrate_4_to_5]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --- the store ------------------------------------------------------------------------------------


#: a connection as the shared SQL sees it: sqlite3's, or ``postgres_store``'s adapter of a psycopg
#: one; both take ``?`` placeholders and return cursors with fetchone/fetchall/rowcount
Sql = Any

#: the URL schemes that name a PostgreSQL collection; anything else is a file path
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(target: str | os.PathLike[str]) -> bool:
    return isinstance(target, str) and target.startswith(POSTGRES_SCHEMES)


class CollectionStore(ConnectionLifecycle):
    """A photo collection; see the module docstring. ``CollectionStore(target)`` and
    ``CollectionStore.open(target)`` give the backend that ``target`` names: a ``postgresql://``
    URL opens a ``PostgresCollectionStore``, anything else is the path of a ``SqliteCollectionStore``.

    >>> with CollectionStore.open("collection.db") as store:   # or "postgresql://host/db?schema=photos"
    ...     table = store.face_table()          # what a clusterer consumes
    ...     store.set_clusters(table.face_ids, labels)

    A backend gives the transactions (``_transaction``, ``_photo_transaction``) and the few
    statements SQL dialects spell differently; every method is written here, once.
    """

    url: str  # the file's path, or the URL as given (with its password: ``location`` is for messages)
    path: Path | None  # the SQLite file; None in memory and on PostgreSQL
    #: SQL true when the parameter occurs in the text ``{text}`` (PostgreSQL has no instr)
    _contains_sql: ClassVar[str] = "instr({text}, ?) > 0"

    def __new__(cls, target: str | os.PathLike[str], *args: Any, **kwargs: Any) -> Self:
        backend = _backend(target) if cls is CollectionStore else cls  # a backend class opens its own kind
        return cast(Self, object.__new__(backend))

    @classmethod
    def open(cls, target: str | os.PathLike[str], create: bool = True) -> CollectionStore:
        """Open a collection (a file path, or a ``postgresql://`` URL), creating it if missing
        (unless ``create=False``)."""
        return cls(target, create=create)

    @property
    def location(self) -> str:
        """Where the collection is, for a person to read (never a password)."""
        return str(self.path)

    # --- what a backend gives ---

    def _transaction(self, write: bool) -> AbstractContextManager[Sql]:
        """One transaction; a write one excludes every other write to the collection."""
        raise NotImplementedError

    def _photo_transaction(self, photos: Sequence[tuple[str, str]]) -> AbstractContextManager[Sql]:
        """A write transaction that changes only these ``(root, path)`` photos (and their faces):
        PostgreSQL runs those of different photos side by side; SQLite has one writer anyway."""
        return self._transaction(write=True)

    def _bind_embeddings(self, conn: Sql, tag: ModelTag) -> None:
        """The collection was just bound to ``tag``: make room for its embeddings (SQLite: a blob, nothing to do)."""

    def _update_clusters(self, conn: Sql, pairs: list[tuple[int, int]]) -> int:
        """Set ``(label, face id)`` pairs; returns how many faces there were."""
        return sum(conn.execute("UPDATE faces SET cluster = ? WHERE id = ?", pair).rowcount for pair in pairs)

    def _erase_forgotten(self) -> tuple[str, str | None]:
        """After a name was deleted: erase what still holds it. (what was erased, what may still keep
        it or None), both sentences naming no path."""
        raise NotImplementedError

    # --- model ---

    def bind_model(self, tag: ModelTag) -> None:
        """Record the embedding model on first call; another model later raises ModelMismatchError."""
        if not (tag.name and tag.version and int(tag.dim) > 0):
            raise CollectionError(f"a model tag needs a name, a version and a positive dim, got {tag!r}")
        with self._transaction(write=True) as conn:
            bound = self._model(conn)
            if bound is None:
                conn.execute(
                    "UPDATE collection SET model_name = ?, model_version = ?, model_dim = ?",
                    (tag.name, tag.version, int(tag.dim)),
                )
                self._bind_embeddings(conn, tag)
            elif bound != tag:
                raise ModelMismatchError(
                    f"collection {self.location} holds faces embedded by {bound}, not {tag}: two models' embeddings "
                    f"never mix. {reembed_hint(self.location, bound, tag)}; or index these photos into another "
                    "collection (--db)"
                )

    def model(self) -> ModelTag | None:
        with self._transaction(write=False) as conn:
            return self._model(conn)

    @staticmethod
    def _model(conn: Sql) -> ModelTag | None:
        name, version, dim = conn.execute("SELECT model_name, model_version, model_dim FROM collection").fetchone()
        return None if name is None else ModelTag(name, version, int(dim))

    # --- photos ---

    def photo_state(self, rel_path: str, root: str) -> PhotoState | None:
        """(sha256, size, mtime_ns) of a stored photo, or None if it is not in the collection."""
        with self._transaction(write=False) as conn:
            row = conn.execute(
                "SELECT sha256, size, mtime_ns FROM photos WHERE root = ? AND path = ?", (root, rel_path)
            ).fetchone()
        return None if row is None else PhotoState(*row)

    def photo_states(self, root: str, prefix: str = "") -> dict[str, PhotoState]:
        """Every stored photo of ``root`` whose path starts with ``prefix``: one read for a whole folder."""
        with self._transaction(write=False) as conn:
            rows = conn.execute(
                "SELECT path, sha256, size, mtime_ns, indexed_at FROM photos WHERE root = ? AND substr(path, 1, ?) = ?",
                (root, len(prefix), prefix),
            ).fetchall()
        return {path: PhotoState(sha, size, mtime, when) for path, sha, size, mtime, when in rows}

    def mark_read(self, photo_id: int) -> None:
        """The photo's metadata was read again (its sidecar changed): now is its ``indexed_at``."""
        with self._transaction(write=True) as conn:
            conn.execute("UPDATE photos SET indexed_at = ? WHERE id = ?", (_now(), int(photo_id)))

    def add_photo(
        self,
        rel_path: str,
        root: str,
        sha256: str,
        size: int,
        mtime_ns: int,
        width: int | None,
        height: int | None,
        faces: Sequence[Face],
        status: str = "ok",
    ) -> int:
        """Store a photo and all its faces in one transaction; returns the photo id.

        A photo already stored at (root, rel_path) is replaced, with its faces (and so their
        clusters and constraints), in the same transaction. Faces are numbered largest first.
        """
        (photo_id,) = self.add_photos([NewPhoto(rel_path, root, sha256, size, mtime_ns, width, height, faces, status)])
        return photo_id

    def add_photos(self, photos: Sequence[NewPhoto]) -> list[int]:
        """``add_photo`` for several photos in one transaction, so one commit (a commit, not the rows,
        is most of a photo's cost): all of them are stored or, if one is refused, none. Returns their
        ids, in order; a photo listed twice ends as the later one."""
        rows = [self._face_rows(photo.faces, photo.moments, photo.origins) for photo in photos]  # checked first
        if not photos:
            return []
        ids = []
        with self._photo_transaction([(photo.root, photo.rel_path) for photo in photos]) as conn:
            if any(rows):
                self._check_dim(conn, [row for face_rows in rows for row in face_rows])
            for photo, face_rows in zip(photos, rows, strict=True):
                where = (photo.root, photo.rel_path)
                carried = _UserWork.read(conn, where, photo)
                conn.execute("DELETE FROM photos WHERE root = ? AND path = ?", where)
                photo_id = int(
                    conn.execute(
                        "INSERT INTO photos (root, path, sha256, size, mtime_ns, width, height, status, indexed_at,"
                        " kind, duration, taken_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                        (*where, photo.sha256, int(photo.size), int(photo.mtime_ns), photo.width, photo.height,
                         photo.status, _now(), _media_kind(photo.kind), _seconds(photo.duration),
                         _taken_at(photo.taken_at)),
                    ).fetchone()[0]
                )  # fmt: skip
                if carried is not None:
                    face_rows = carried.keep_detections(face_rows)
                new_ids = [_insert_face(conn, photo_id, idx, row) for idx, row in enumerate(face_rows)]
                if carried is not None:
                    carried.restore(conn, photo_id, list(zip(new_ids, face_rows, strict=True)))
                ids.append(photo_id)
        return ids

    def touch_photo(self, rel_path: str, root: str, size: int, mtime_ns: int) -> None:
        """The file's bytes are unchanged (same hash) but its size/mtime moved: remember the new ones."""
        with self._photo_transaction([(root, rel_path)]) as conn:
            conn.execute(
                "UPDATE photos SET size = ?, mtime_ns = ? WHERE root = ? AND path = ?",
                (int(size), int(mtime_ns), root, rel_path),
            )

    def refresh_photo(self, rel_path: str, root: str, sha256: str, size: int, mtime_ns: int) -> None:
        """faceatlas itself changed the file's metadata only (``export --xmp`` into an original):
        record its new bytes, so the next index does not analyse it again."""
        with self._photo_transaction([(root, rel_path)]) as conn:
            conn.execute(
                "UPDATE photos SET sha256 = ?, size = ?, mtime_ns = ? WHERE root = ? AND path = ?",
                (sha256, int(size), int(mtime_ns), root, rel_path),
            )

    def move_photo(self, old_path: str, new_path: str, root: str, size: int, mtime_ns: int) -> None:
        """A file moved within ``root`` (same bytes): keep its faces, clusters and constraints."""
        with self._photo_transaction([(root, old_path), (root, new_path)]) as conn:
            conn.execute("DELETE FROM photos WHERE root = ? AND path = ?", (root, new_path))
            conn.execute(
                "UPDATE photos SET path = ?, size = ?, mtime_ns = ? WHERE root = ? AND path = ?",
                (new_path, int(size), int(mtime_ns), root, old_path),
            )

    def remove_photos(self, rel_paths: Iterable[str], root: str) -> int:
        """Forget photos (their faces and constraints go with them) in one transaction; returns how many."""
        paths = list(rel_paths)
        if not paths:
            return 0
        with self._photo_transaction([(root, path) for path in paths]) as conn:
            return sum(
                conn.execute("DELETE FROM photos WHERE root = ? AND path = ?", (root, p)).rowcount for p in paths
            )

    _PHOTO_SELECT = (
        "SELECT p.id, p.root, p.path, p.sha256, p.size, p.mtime_ns, p.width, p.height, p.status,"
        " p.indexed_at, (SELECT COUNT(*) FROM faces f WHERE f.photo_id = p.id), p.kind, p.duration, p.taken_at"
        " FROM photos p"
    )

    def photos(self, root: str | None = None) -> list[PhotoRecord]:
        """Stored photos (of one root, or all), by root and path."""
        where, args = ("WHERE p.root = ?", (root,)) if root is not None else ("", ())
        with self._transaction(write=False) as conn:
            rows = conn.execute(f"{self._PHOTO_SELECT} {where} ORDER BY p.root, p.path", args).fetchall()
        return [PhotoRecord(*row) for row in rows]

    def photo(self, photo_id: int) -> PhotoRecord:
        """One photo by id; PhotoNotFoundError if the collection has none of that id."""
        with self._transaction(write=False) as conn:
            row = conn.execute(f"{self._PHOTO_SELECT} WHERE p.id = ?", (int(photo_id),)).fetchone()
        if row is None:
            raise PhotoNotFoundError(f"no photo {photo_id} in collection {self.location}", photo_id)
        return PhotoRecord(*row)

    def roots(self) -> list[str]:
        with self._transaction(write=False) as conn:
            return [row[0] for row in conn.execute("SELECT DISTINCT root FROM photos ORDER BY root")]

    def rebase_root(self, old_root: str, new_root: str, prefix: str) -> None:
        """Re-file ``old_root``'s photos under ``new_root`` (its ancestor) as ``prefix + path``:
        indexing a parent folder then finds them instead of indexing them twice."""
        with self._transaction(write=True) as conn:
            conn.execute("UPDATE photos SET root = ?, path = ? || path WHERE root = ?", (new_root, prefix, old_root))

    # --- faces ---

    @staticmethod
    def _face_rows(
        faces: Sequence[Face],
        moments: Sequence[VideoMoment] | None = None,
        origins: Sequence[FaceOrigin] | None = None,
    ) -> list[tuple]:
        """Faces as row values (their moment's, then their origin, last), largest first, a video's
        by time; validated before any transaction starts."""
        kinds = [_origin(origin) for origin in origins] if origins is not None else ["detected"] * len(faces)
        if len(kinds) != len(faces):
            raise CollectionError(f"faces need one origin each, got {len(faces)} faces, {len(kinds)} origins")
        if moments is None:
            ordered = sorted(zip(faces, kinds, strict=True), key=lambda pair: -pair[0].box.area)  # stable
            return [(*_face_values(face), None, None, None, None, kind) for face, kind in ordered]
        if len(moments) != len(faces):
            raise CollectionError(
                f"a video's faces need one moment each, got {len(faces)} faces, {len(moments)} moments"
            )
        triples = sorted(zip(faces, moments, kinds, strict=True), key=lambda t: (t[1].start, t[1].track))
        return [(*_face_values(face), *_moment_values(moment), kind) for face, moment, kind in triples]

    def _check_dim(self, conn: Sql, rows: list[tuple]) -> None:
        tag = self._model(conn)
        if tag is None:
            raise CollectionError(f"collection {self.location} is bound to no model yet; call bind_model first")
        for row in rows:
            if len(row[_EMBEDDING]) != 4 * tag.dim:
                raise ModelMismatchError(
                    f"collection {self.location} holds {tag} embeddings, but the embedder returned a "
                    f"{len(row[_EMBEDDING]) // 4}-d one: it is not the model its card says; check the model file, or pass "
                    f"the collection's model: --embedder {embedder_option(tag)}"
                )

    def face_table(self) -> FaceMatrix:
        """Every face, in one snapshot, ascending by id."""
        with self._transaction(write=False) as conn:
            tag = self._model(conn)
            rows = conn.execute("SELECT id, photo_id, quality, cluster, embedding FROM faces ORDER BY id").fetchall()
        dim = 0 if tag is None else tag.dim
        ids, photos, qualities, clusters, blobs = zip(*rows, strict=True) if rows else ((), (), (), (), ())
        return face_matrix(
            ids,
            photos,
            [1.0 if q is None else q for q in qualities],
            [NOT_CLUSTERED if c is None else c for c in clusters],
            np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(rows), dim),
        )

    _FACE_COLUMNS = (
        "f.id, f.photo_id, p.root, p.path, p.sha256, f.idx, f.box, f.score, f.quality, f.cluster,"
        " f.time, f.start_time, f.end_time, f.track, f.origin"
    )
    _FACE_SELECT = f"SELECT {_FACE_COLUMNS} FROM faces f JOIN photos p ON p.id = f.photo_id"

    def cluster_faces(self, cluster_id: int | None) -> list[FaceInfo]:
        """The faces of a cluster (``-1``: unassigned, ``None``: not clustered yet), best quality first."""
        where, args = ("f.cluster IS NULL", ()) if cluster_id is None else ("f.cluster = ?", (int(cluster_id),))
        with self._transaction(write=False) as conn:
            rows = conn.execute(
                f"{self._FACE_SELECT} WHERE {where} ORDER BY COALESCE(f.quality, 1.0) DESC, f.id", args
            ).fetchall()
        return [_face_info(row) for row in rows]

    def face(self, face_id: int) -> FaceInfo:
        """One face by id, with its photo and cluster; FaceNotFoundError if there is none."""
        with self._transaction(write=False) as conn:
            row = conn.execute(f"{self._FACE_SELECT} WHERE f.id = ?", (int(face_id),)).fetchone()
        if row is None:
            raise FaceNotFoundError(f"no face {face_id} in collection {self.location}", face_id)
        return _face_info(row)

    def video_tracks(self) -> list[tuple[int, int, float, float]]:
        """(face id, video's photo id, track start, track end) of every face found in a video, by
        video and start: what clustering needs to tell tracks seen together from tracks apart in time."""
        with self._transaction(write=False) as conn:
            rows = conn.execute(
                "SELECT id, photo_id, start_time, end_time FROM faces WHERE start_time IS NOT NULL"
                " ORDER BY photo_id, start_time, id"
            ).fetchall()
        return [(int(f), int(p), float(s), float(e)) for f, p, s, e in rows]

    def faces_of_photo(self, photo_id: int) -> list[FaceInfo]:
        with self._transaction(write=False) as conn:
            rows = conn.execute(f"{self._FACE_SELECT} WHERE f.photo_id = ? ORDER BY f.idx", (int(photo_id),))
            return [_face_info(row) for row in rows]

    def add_face(self, photo_id: int, face: Face, origin: FaceOrigin = "manual") -> FaceInfo:
        """Add a face the detector missed (``origin`` "manual": drawn by the user; "region": a named
        region of the photo's metadata) to a stored photo; it is kept in every later analysis of the
        photo. Refused: PhotoNotFoundError, FaceExistsError (a face of the photo is already there),
        ModelMismatchError (an embedding of another size). A face drawn where a detection had been
        removed takes the removal back."""
        if _origin(origin) == "detected":
            raise InvalidCorrectionError("a face added by hand is 'manual' or 'region', not 'detected'")
        row = (*_face_values(face), None, None, None, None, origin)
        box = json.loads(row[_BOX])
        with self._transaction(write=True) as conn:
            photo = conn.execute("SELECT width, height, kind FROM photos WHERE id = ?", (int(photo_id),)).fetchone()
            if photo is None:
                raise PhotoNotFoundError(f"no photo {photo_id} in collection {self.location}", int(photo_id))
            if photo[2] == "video":
                raise InvalidCorrectionError(f"photo {photo_id} is a video: its faces are tracks, not drawn boxes")
            self._check_dim(conn, [row])
            for other_id, other_box in conn.execute("SELECT id, box FROM faces WHERE photo_id = ?", (int(photo_id),)):
                if _iou(box, json.loads(other_box)) >= SAME_FACE_IOU:
                    raise FaceExistsError(
                        f"face {other_id} of photo {photo_id} is already there (the boxes overlap); "
                        "correct that face instead of adding it again",
                        int(other_id),
                    )
            rejected = conn.execute("SELECT box FROM rejected WHERE photo_id = ?", (int(photo_id),)).fetchall()
            for (taken,) in rejected:
                if _iou(box, json.loads(taken)) >= SAME_FACE_IOU:
                    conn.execute("DELETE FROM rejected WHERE photo_id = ? AND box = ?", (int(photo_id), taken))
            (idx,) = conn.execute(
                "SELECT COALESCE(MAX(idx), -1) + 1 FROM faces WHERE photo_id = ?", (int(photo_id),)
            ).fetchone()
            face_id = _insert_face(conn, int(photo_id), int(idx), row)
        return self.face(face_id)

    def remove_face(self, face_id: int) -> FaceInfo:
        """Remove a face: a false detection, or a drawn face drawn wrong. Its constraints go with it;
        a detection's box is remembered (no embedding, no name), so analysing the photo again does
        not bring it back. Returns the face as it was; FaceNotFoundError if there is none."""
        face = self.face(face_id)
        with self._transaction(write=True) as conn:
            if not conn.execute("DELETE FROM faces WHERE id = ?", (int(face_id),)).rowcount:
                raise FaceNotFoundError(f"no face {face_id} in collection {self.location}", int(face_id))
            if face.origin == "detected" and face.time is None:  # a video's tracks are found anew each time
                conn.execute(
                    "INSERT INTO rejected (photo_id, box) VALUES (?, ?)", (face.photo_id, json.dumps(list(face.box)))
                )
            conn.execute(
                "DELETE FROM clusters WHERE name IS NULL AND id NOT IN (SELECT cluster FROM faces WHERE cluster >= 0)"
            )
        return face

    def rejected_boxes(self, photo_id: int) -> list[tuple[float, float, float, float]]:
        """The boxes of detections removed from a photo (``remove_face``), which later analyses drop."""
        with self._transaction(write=False) as conn:
            rows = conn.execute("SELECT box FROM rejected WHERE photo_id = ?", (int(photo_id),)).fetchall()
        return [tuple(json.loads(row[0])) for row in rows]

    def record_sidecar(self, photo_id: int, path: str) -> None:
        """Remember that faceatlas wrote the sidecar at ``path`` for this photo (forgetting a person
        takes their regions out of it again)."""
        with self._transaction(write=True) as conn:
            conn.execute(
                "INSERT INTO sidecars (photo_id, path) VALUES (?, ?) ON CONFLICT DO NOTHING", (int(photo_id), str(path))
            )

    def sidecars(self) -> list[tuple[int, str]]:
        """(photo id, sidecar path) of every sidecar faceatlas wrote, by photo."""
        with self._transaction(write=False) as conn:
            rows = conn.execute("SELECT photo_id, path FROM sidecars ORDER BY photo_id, path").fetchall()
        return [(int(photo), str(path)) for photo, path in rows]

    # --- clusters ---

    def set_clusters(self, face_ids: Sequence[int] | np.ndarray, labels: Sequence[int] | np.ndarray) -> int:
        """Store a clustering (label per face: a cluster id, or -1 for unassigned) in one transaction.

        Labels are cluster ids as given: a name stays with its cluster id, so a caller that
        re-clusters keeps the ids of named clusters stable. Faces not listed keep their cluster;
        ids of faces deleted since the table was read are ignored. Unnamed clusters left with no
        face are dropped. Returns how many faces were updated.
        """
        ids = np.asarray(face_ids, dtype=np.int64).ravel()
        labs = np.asarray(labels).ravel()
        if ids.shape != labs.shape:
            raise CollectionError(f"set_clusters needs one label per face, got {len(ids)} faces and {len(labs)} labels")
        if labs.size and (not np.issubdtype(labs.dtype, np.integer) or int(labs.min()) < UNASSIGNED):
            raise CollectionError("cluster labels must be integers >= -1 (-1 = unassigned)")
        pairs = [(int(label), int(face)) for face, label in zip(ids, labs, strict=True)]
        with self._transaction(write=True) as conn:
            new = sorted({label for label, _ in pairs if label >= 0})
            conn.executemany("INSERT INTO clusters (id) VALUES (?) ON CONFLICT DO NOTHING", [(label,) for label in new])
            updated = self._update_clusters(conn, pairs)
            conn.execute(
                "DELETE FROM clusters WHERE name IS NULL AND id NOT IN (SELECT cluster FROM faces WHERE cluster >= 0)"
            )
        return updated

    #: a cluster as ClusterInfo reads it: a life stage takes its person's name and birth date (and is
    #: its own person again when the person's cluster is gone)
    _CLUSTER_SELECT = (
        "SELECT c.id, COALESCE(h.name, c.name), (SELECT COUNT(*) FROM faces f WHERE f.cluster = c.id) AS n,"
        " c.private, COALESCE(h.born, c.born), h.id FROM clusters c LEFT JOIN clusters h ON h.id = c.person"
    )

    def clusters(self) -> list[ClusterInfo]:
        """Every cluster with its number of faces, largest first (named clusters with no face too)."""
        with self._transaction(write=False) as conn:
            rows = conn.execute(f"{self._CLUSTER_SELECT} ORDER BY n DESC, c.id").fetchall()
        return [_cluster_info(row) for row in rows]

    def cluster(self, cluster_id: int) -> ClusterInfo:
        """One cluster by id; ClusterNotFoundError if there is none."""
        with self._transaction(write=False) as conn:
            row = conn.execute(f"{self._CLUSTER_SELECT} WHERE c.id = ?", (int(cluster_id),)).fetchone()
        if row is None:
            raise ClusterNotFoundError(f"no cluster {cluster_id} in collection {self.location}", cluster_id)
        return _cluster_info(row)

    def set_birth_date(self, cluster_id: int, born: date | str | None) -> str | None:
        """Record when a cluster's person was born (``None`` forgets it); on a life stage, its
        person's. Returns the date stored ("YYYY-MM-DD"). Clustering then keeps out of the person
        faces of photos dated before that day (see ``clustering/lifespan.py``). A date that is not
        one, or in the future: InvalidCorrectionError; no such cluster: ClusterNotFoundError."""
        from faceatlas.clustering.lifespan import parse_birth_date
        from faceatlas.errors import InvalidArgumentError

        try:
            value = None if born is None else parse_birth_date(born).isoformat()
        except InvalidArgumentError as exc:
            raise InvalidCorrectionError(str(exc)) from None
        with self._transaction(write=True) as conn:
            target = self._person_cluster(conn, cluster_id)
            conn.execute("UPDATE clusters SET born = ? WHERE id = ?", (value, target))
        return value

    def link_life_stage(self, stage_id: int, person_id: int) -> ClusterInfo:
        """Make cluster ``stage_id`` a life stage of ``person_id``'s person: one person, with the stage
        kept as a template of its own (a child's faces and the adult's are far apart in any
        embedding, so merging them would blur both). The stage shows the person's name and birth
        date; clustering never merges it with another cluster, and keeps dated faces in the stage
        whose ages fit them. A stage of a stage is linked to that stage's person; the stage's own
        stages move with it. Refused: the same cluster, a stage with a name of its own
        (InvalidCorrectionError), a photo that holds faces of both (CorrectionConflictError: one
        person appears once per photo). Returns the stage as it is now."""
        with self._transaction(write=True) as conn:
            person = self._person_cluster(conn, person_id)
            stage = int(stage_id)
            row = conn.execute("SELECT name FROM clusters WHERE id = ?", (stage,)).fetchone()
            if row is None:
                raise ClusterNotFoundError(f"no cluster {stage_id} in collection {self.location}", stage)
            if stage == person:
                raise InvalidCorrectionError(f"cluster {stage_id} is already {person_id}'s person, not a stage of it")
            if row[0] is not None:
                raise InvalidCorrectionError(
                    f"cluster {stage_id} is named {row[0]!r}: a life stage carries its person's name; take the name "
                    "off first (or merge the clusters, if they are one template)"
                )
            family = [person, *[int(c) for (c,) in conn.execute("SELECT id FROM clusters WHERE person = ?", (person,))]]
            marks = ", ".join("?" * len(family))
            shared = conn.execute(
                f"SELECT f.photo_id FROM faces f JOIN faces g ON g.photo_id = f.photo_id WHERE f.cluster = ?"
                f" AND g.cluster IN ({marks}) AND g.cluster != f.cluster LIMIT 1",
                (stage, *family),
            ).fetchone()
            if shared is not None:
                raise CorrectionConflictError(
                    f"photo {shared[0]} has a face in cluster {stage_id} and another in person {person}'s clusters: "
                    "one person appears once per photo, so they are two people"
                )
            conn.execute(
                "UPDATE clusters SET person = ?, born = NULL WHERE id = ? OR person = ?", (person, stage, stage)
            )
        return self.cluster(stage)

    def unlink_life_stage(self, stage_id: int) -> ClusterInfo:
        """Make a life stage its own (unnamed) person again; ClusterNotFoundError if there is no such cluster."""
        with self._transaction(write=True) as conn:
            if not conn.execute("UPDATE clusters SET person = NULL WHERE id = ?", (int(stage_id),)).rowcount:
                raise ClusterNotFoundError(f"no cluster {stage_id} in collection {self.location}", int(stage_id))
        return self.cluster(stage_id)

    def _person_cluster(self, conn: Sql, cluster_id: int) -> int:
        """The cluster that holds ``cluster_id``'s person: itself, or the person a life stage is of."""
        row = conn.execute(
            "SELECT c.id, h.id FROM clusters c LEFT JOIN clusters h ON h.id = c.person WHERE c.id = ?",
            (int(cluster_id),),
        ).fetchone()
        if row is None:
            raise ClusterNotFoundError(f"no cluster {cluster_id} in collection {self.location}", int(cluster_id))
        return int(row[0] if row[1] is None else row[1])

    def face_dates(self) -> dict[int, str]:
        """Face id -> its photo's capture time (EXIF, "YYYY-MM-DDTHH:MM:SS"), for the faces of dated photos."""
        with self._transaction(write=False) as conn:
            rows = conn.execute(
                "SELECT f.id, p.taken_at FROM faces f JOIN photos p ON p.id = f.photo_id WHERE p.taken_at IS NOT NULL"
            ).fetchall()
        return {int(face): str(taken) for face, taken in rows}

    def set_private(self, cluster_id: int, private: bool) -> None:
        """Mark a cluster (a person) private or not: private people are shown only to readers allowed
        to see them (the service's ``private`` permission); ClusterNotFoundError if there is none."""
        with self._transaction(write=True) as conn:
            if not conn.execute(
                "UPDATE clusters SET private = ? WHERE id = ?", (int(bool(private)), int(cluster_id))
            ).rowcount:
                raise ClusterNotFoundError(f"no cluster {cluster_id} in collection {self.location}", cluster_id)

    def new_cluster(self, name: str | None = None) -> int:
        """A new, empty cluster (named ``name``: NameTakenError if another has it); its id. It lasts
        while a face is in it or it has a name (``set_clusters`` drops unnamed empty clusters)."""
        with self._transaction(write=True) as conn:
            if name is not None:
                other = conn.execute("SELECT id FROM clusters WHERE name = ?", (name,)).fetchone()
                if other is not None:
                    raise NameTakenError(f"cluster {other[0]} is already named {name!r}", -1, name, int(other[0]))
            (top,) = conn.execute("SELECT COALESCE(MAX(id), -1) FROM clusters").fetchone()
            (face_top,) = conn.execute("SELECT COALESCE(MAX(cluster), -1) FROM faces").fetchone()
            cluster_id = max(int(top), int(face_top)) + 1
            conn.execute("INSERT INTO clusters (id, name) VALUES (?, ?)", (cluster_id, name))
        return cluster_id

    def move_faces(self, face_ids: Iterable[int], cluster_id: int | None) -> int:
        """Put faces into a cluster (``None``: not clustered yet), in one transaction; how many moved.
        The caller records the correction (``update_constraints``) that makes it hold."""
        ids = [int(face) for face in face_ids]
        with self._transaction(write=True) as conn:
            missing = _missing_faces(conn, sorted(set(ids)))
            if missing:
                raise FaceNotFoundError(f"no face {missing[0]} in collection {self.location}", missing[0])
            if (
                cluster_id is not None
                and conn.execute("SELECT 1 FROM clusters WHERE id = ?", (int(cluster_id),)).fetchone() is None
            ):
                raise ClusterNotFoundError(f"no cluster {cluster_id} in collection {self.location}", int(cluster_id))
            moved = conn.executemany(
                "UPDATE faces SET cluster = ? WHERE id = ?", [(cluster_id, face) for face in ids]
            ).rowcount
            conn.execute(
                "DELETE FROM clusters WHERE name IS NULL AND id NOT IN (SELECT cluster FROM faces WHERE cluster >= 0)"
            )
        return int(moved)

    def name_cluster(self, cluster_id: int, name: str | None) -> None:
        """Name a cluster (the person it shows); ``None`` clears the name. Names are unique
        (NameTakenError). This only names: ``corrections.name_cluster`` also enrols into a gallery."""
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise CollectionError(f"a cluster's name must be a non-empty string, got {name!r}")
        with self._transaction(write=True) as conn:
            if self._person_cluster(conn, cluster_id) != int(cluster_id):
                raise InvalidCorrectionError(
                    f"cluster {cluster_id} is a life stage of cluster {self._person_cluster(conn, cluster_id)}: name "
                    "that person, or unlink the stage first (unlink_life_stage)"
                )
            other = conn.execute(
                "SELECT id FROM clusters WHERE name = ? AND id != ?", (name, int(cluster_id))
            ).fetchone()
            if other is not None and name is not None:  # no row matches a NULL name
                raise NameTakenError(
                    f"cluster {other[0]} is already named {name!r}; if both show one person, merge cluster "
                    f"{cluster_id} into it (collection.corrections.merge_clusters), or pick another name",
                    cluster_id,
                    name,
                    other[0],
                )
            conn.execute("UPDATE clusters SET name = ? WHERE id = ?", (name, int(cluster_id)))

    def forget_name(self, name: str) -> NameForgotten:
        """Take the name ``name`` off every cluster (the faces stay clustered; a cluster left with no
        face and no name goes) and erase it from the file: secure_delete zeroes the old row, and the
        WAL, which still holds the page from before, is emptied. The name is stored nowhere else in
        a collection (constraints and clusters are ids); photo paths are the files' own names and
        are left as they are, only counted. Nothing named so is no error (no cluster is returned)."""
        with self._transaction(write=True) as conn:
            rows = conn.execute("SELECT id FROM clusters WHERE name = ? ORDER BY id", (name,)).fetchall()
            clusters = [int(row[0]) for row in rows]
            if clusters:
                marks = ", ".join("?" * len(clusters))  # the person goes whole: birth date, life stages
                conn.execute(f"UPDATE clusters SET person = NULL, born = NULL WHERE person IN ({marks})", clusters)
                conn.execute("UPDATE clusters SET name = NULL, born = NULL WHERE name = ?", (name,))
                conn.execute(  # as set_clusters: an unnamed cluster with no face is no cluster
                    "DELETE FROM clusters WHERE name IS NULL"
                    " AND id NOT IN (SELECT cluster FROM faces WHERE cluster >= 0)"
                )
            query = "SELECT COUNT(*) FROM photos WHERE " + self._contains_sql.format(text="root || '/' || path")
            paths = int(conn.execute(query, (name,)).fetchone()[0])
        erased, kept = self._erase_forgotten() if clusters else ("", None)
        return NameForgotten(tuple(clusters), paths, kept, erased)

    # --- constraints ---

    def add_constraint(self, face_a: int, face_b: int, kind: ConstraintKind) -> None:
        """A user correction: two faces are (``"must"``) or are not (``"cannot"``) the same person.
        A later constraint on the same pair replaces the earlier one."""
        self.add_constraints([(face_a, face_b)], kind)

    def add_constraints(self, pairs: Iterable[tuple[int, int]], kind: ConstraintKind) -> int:
        """``add_constraint`` for many pairs, in one transaction: all of them are stored or, if one
        is refused (a face that is not there, a face paired with itself), none. Returns how many."""
        if kind not in ("must", "cannot"):
            raise CollectionError(f"a constraint's kind is 'must' or 'cannot', got {kind!r}")
        must, cannot = (pairs, ()) if kind == "must" else ((), pairs)
        return self.update_constraints(must=must, cannot=cannot)[0]

    def remove_constraint(self, face_a: int, face_b: int) -> bool:
        return self.remove_constraints([(face_a, face_b)]) > 0

    def remove_constraints(self, pairs: Iterable[tuple[int, int]]) -> int:
        """Forget the constraints on these pairs (either kind), in one transaction; returns how many went."""
        return self.update_constraints(remove=pairs)[1]

    def update_constraints(
        self,
        *,
        must: Iterable[tuple[int, int]] = (),
        cannot: Iterable[tuple[int, int]] = (),
        remove: Iterable[tuple[int, int]] = (),
    ) -> tuple[int, int]:
        """Add must-links and cannot-links and remove constraints, all in one transaction (what one
        correction changes): every change is made, or none. An added pair replaces a constraint of
        the other kind on it; removing a pair that has none is no error; one pair in two of the
        lists is refused. Returns (pairs added, constraints removed)."""
        rows = [(*_pair(a, b), "must") for a, b in must] + [(*_pair(a, b), "cannot") for a, b in cannot]
        gone = [_pair(a, b) for a, b in remove]
        pairs = [row[:2] for row in rows] + gone
        if len(set(pairs)) < len(pairs):
            twice = next(pair for pair, n in Counter(pairs).items() if n > 1)
            raise CollectionError(f"the pair of faces {twice} is given twice; give each pair one change")
        faces = sorted({face for a, b, _ in rows for face in (a, b)})
        with self._transaction(write=True) as conn:
            missing = _missing_faces(conn, faces)
            if missing:
                raise FaceNotFoundError(f"no face {missing[0]} in collection {self.location}", missing[0])
            removed = 0
            if gone:
                removed = conn.executemany("DELETE FROM constraints WHERE face_a = ? AND face_b = ?", gone).rowcount
            if rows:
                conn.executemany(
                    "INSERT INTO constraints (face_a, face_b, kind) VALUES (?, ?, ?)"
                    " ON CONFLICT (face_a, face_b) DO UPDATE SET kind = excluded.kind",
                    rows,
                )
        return len(rows), removed

    def record_review_answers(self, answers: Iterable[tuple[str, float, bool]], model: str) -> int:
        """Remember review answers ((question kind: "merge", "member" or "group"; the similarity
        the question showed; whether the user said "same person"), given under ``model`` (its card's
        name-version): the review queue's calibration learns from them. Returns how many."""
        rows = [(str(kind), float(sim), int(bool(same)), str(model), _now()) for kind, sim, same in answers]
        bad = sorted({kind for kind, *_ in rows} - set(REVIEW_KINDS))
        if bad or any(not math.isfinite(sim) for _, sim, *_ in rows):
            raise InvalidCorrectionError(
                f"a review answer is a kind ({', '.join(REVIEW_KINDS)}) and a finite similarity, got {bad or 'a NaN'}"
            )
        if rows:
            with self._transaction(write=True) as conn:
                conn.executemany(
                    "INSERT INTO review_answers (kind, similarity, same, model, answered_at) VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
        return len(rows)

    def review_answers(self, model: str, limit: int = REVIEW_MEMORY) -> list[tuple[str, float, bool]]:
        """The latest ``limit`` review answers given under ``model``, oldest first (see
        ``record_review_answers``)."""
        with self._transaction(write=False) as conn:
            rows = conn.execute(
                "SELECT kind, similarity, same FROM review_answers WHERE model = ? ORDER BY answered_at DESC LIMIT ?",
                (str(model), int(limit)),
            ).fetchall()
        return [(str(kind), float(sim), bool(same)) for kind, sim, same in reversed(rows)]

    def constraints(self) -> tuple[np.ndarray, np.ndarray]:
        """(must-link pairs, cannot-link pairs): ``(n, 2)`` int64 face ids, smaller id first."""
        with self._transaction(write=False) as conn:
            rows = conn.execute("SELECT face_a, face_b, kind FROM constraints ORDER BY face_a, face_b").fetchall()

        def pairs(kind: str) -> np.ndarray:
            return _readonly(np.array([(a, b) for a, b, k in rows if k == kind], dtype=np.int64).reshape(-1, 2))

        return pairs("must"), pairs("cannot")

    # --- into a gallery ---

    def enroll_named(self, gallery: Any) -> EnrollSummary:
        """Enrol every named cluster's faces into ``gallery`` (a ``Gallery``) as the person of that name.

        Resumable: faces already enrolled for the person (source ``"<photo sha256>#<idx>"``) are
        skipped, so running it again after naming more clusters adds only what is new. Faces below
        the gallery's ``min_quality`` are skipped, as ``Gallery.enroll`` would. One transaction per person.
        """
        from faceatlas.gallery.store import FaceRecord

        tag = self.model()
        summary = EnrollSummary()
        named = [(c.id, c.name) for c in self.clusters() if c.name is not None and c.n_faces]
        if tag is None or not named:
            return summary
        store = gallery.store
        store.bind_model(tag)  # a gallery of another model refuses
        floor = float(getattr(gallery, "min_quality", 0.0))
        for cluster_id, name in named:
            person_id = _gallery_person(store, name)  # None: not in the gallery yet
            records: list[FaceRecord] = []
            for face, embedding in self._faces_with_embeddings(cluster_id):
                quality = 1.0 if face.quality is None else face.quality
                source = f"{face.sha256}#{face.idx}"
                if quality < floor:
                    summary.below_quality += 1
                elif any(r.source == source for r in records) or (
                    person_id is not None and store.has_source(person_id, source)
                ):
                    summary.already_enrolled += 1  # a copy of a photo in the same cluster counts once too
                else:
                    meta: dict[str, Any] = {"photo": str(face.file)}
                    if face.time is not None:
                        meta["time"] = face.time  # the moment of the video it was seen at
                    records.append(FaceRecord(embedding, quality, source, face.box, meta))
            if records:  # a person is created only with faces: no empty people in the gallery
                if person_id is None:
                    person_id = store.add_person(name)
                store.add_faces(person_id, records)
            summary.added[name] = len(records)
        return summary

    def _faces_with_embeddings(self, cluster_id: int) -> list[tuple[FaceInfo, np.ndarray]]:
        with self._transaction(write=False) as conn:
            rows = conn.execute(
                f"SELECT {self._FACE_COLUMNS}, f.embedding FROM faces f JOIN photos p ON p.id = f.photo_id"
                " WHERE f.cluster = ? ORDER BY f.id",
                (int(cluster_id),),
            ).fetchall()
        return [(_face_info(row[:-1]), np.frombuffer(row[-1], dtype=np.float32)) for row in rows]


class SqliteCollectionStore(SqliteFile, CollectionStore):
    """A photo collection in one SQLite file; see the module docstring."""

    kind = "collection"
    application_id = APPLICATION_ID
    tables = frozenset({"collection", "photos", "faces", "clusters", "constraints"})
    error = CollectionError
    missing_hint = "check the path or --db"
    elsewhere_hint = "move it away, or pass another --db"
    restore_hint = "restore it from a backup, or index the photos into a new collection"

    def migrations(self) -> list[Migration]:
        return MIGRATIONS

    def _erase_forgotten(self) -> tuple[str, str | None]:
        kept = self.empty_wal()  # secure_delete zeroed the row; the WAL still holds the page from before
        erased = "SQLite's secure_delete zeroed the cluster names in the collection file"
        return (erased if kept else erased + "; its WAL was emptied"), kept

    def __repr__(self) -> str:
        return f"CollectionStore({str(self.path)!r})"


def _backend(target: str | os.PathLike[str]) -> type[CollectionStore]:
    """The store class for a collection at ``target``: a ``postgresql://`` URL, or a file path."""
    if is_postgres_url(target):
        try:
            from faceatlas.collection.postgres_store import PostgresCollectionStore
        except ImportError as exc:  # psycopg missing
            raise CollectionError(
                f"{exc}; a PostgreSQL collection needs psycopg: pip install 'faceatlas[postgres]'"
            ) from exc
        return PostgresCollectionStore
    return SqliteCollectionStore


# --- rows ---------------------------------------------------------------------------------------


def _face_values(face: Face) -> tuple:
    """(box, score, landmarks, yaw, pitch, roll, quality, embedding bytes) of a face, checked."""
    if face.embedding is None:
        raise CollectionError("a face to store needs an embedding; use FaceAnalyzer.analyze, not detect")
    vec = np.ascontiguousarray(face.embedding, dtype=np.float32).ravel()
    norm = float(np.linalg.norm(vec))
    if not np.all(np.isfinite(vec)) or abs(norm - 1.0) > _NORM_TOLERANCE:
        raise CollectionError(f"face embeddings must be finite and L2-normalised, got norm {norm:.4f}")
    box = [float(v) for v in face.box.as_xyxy()]
    if not all(math.isfinite(v) for v in box):
        raise CollectionError(f"a face's box must be finite, got {box}")
    pose = face.pose
    return (
        json.dumps(box),
        float(face.score),
        json.dumps(np.asarray(face.landmarks.points, dtype=float).round(2).tolist()),
        None if pose is None else float(pose.yaw),
        None if pose is None else float(pose.pitch),
        None if pose is None else float(pose.roll),
        None if face.quality is None else float(face.quality.score),
        vec.tobytes(),
    )


_EMBEDDING = 7  # the embedding's place in a face row (``_face_values``); the moment's four values follow


def _moment_values(moment: VideoMoment) -> tuple:
    """(time, start, end, track) of a video face, checked."""
    time, start, end = (_seconds(v) for v in (moment.time, moment.start, moment.end))
    if time is None or start is None or end is None or not start <= end:
        raise CollectionError(f"a video face's times must be finite seconds with start <= end, got {moment}")
    return time, start, end, int(moment.track)


def _seconds(value: float | None) -> float | None:
    if value is None:
        return None
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise CollectionError(f"a time in a video must be finite seconds >= 0, got {value!r}")
    return seconds


def _media_kind(kind: str) -> str:
    if kind not in ("photo", "video"):
        raise CollectionError(f"a photo's kind is 'photo' or 'video', got {kind!r}")
    return kind


def _insert_face(conn: Sql, photo_id: int, idx: int, values: tuple) -> int:
    """Insert one face row (``_face_rows``' values: the face's, its moment's, its origin); its id."""
    cursor = conn.execute(
        "INSERT INTO faces (photo_id, idx, box, score, landmarks, yaw, pitch, roll, quality, embedding,"
        " time, start_time, end_time, track, origin) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " RETURNING id",
        (photo_id, idx, *values),
    )
    return int(cursor.fetchone()[0])


def _origin(origin: str) -> str:
    if origin not in FACE_ORIGINS:
        raise CollectionError(f"a face's origin is one of {', '.join(FACE_ORIGINS)}, got {origin!r}")
    return origin


def _taken_at(value: str | None) -> str | None:
    """A capture time as stored: "YYYY-MM-DDTHH:MM:SS" (checked), or None."""
    if value is None:
        return None
    try:
        return datetime.fromisoformat(str(value)).replace(tzinfo=None).isoformat(timespec="seconds")
    except ValueError:
        raise CollectionError(f"a capture time is an ISO date and time, got {value!r}") from None


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two stored boxes (xyxy lists, as their JSON holds them)."""
    return Box(*a).iou(Box(*b))


_BOX, _ORIGIN = 0, 12  # places in a face row (``_face_rows``): the box's JSON, the origin


@dataclass
class _UserWork:
    """What the user did to a photo that is about to be analysed again (``add_photos``), read before
    its old row goes: drawn faces, removed detections, written sidecars, and the old detections
    with their clusters and constraints. Kept only when the new version has the old one's size
    (boxes point at the same place); a photo now unreadable keeps nothing."""

    old_faces: list[tuple[int, list[float], np.ndarray, int | None]]  # detected: (id, box, embedding, cluster)
    drawn: list[tuple[tuple, int | None]]  # manual and region faces: (row values, cluster)
    rejected: list[str]  # box JSON
    sidecars: list[str]
    constraints: list[tuple[int, int, str]]

    @classmethod
    def read(cls, conn: Sql, where: tuple[str, str], photo: NewPhoto) -> _UserWork | None:
        old = conn.execute("SELECT id, width, height FROM photos WHERE root = ? AND path = ?", where).fetchone()
        if old is None or photo.status != "ok" or (old[1], old[2]) != (photo.width, photo.height):
            return None
        rows = conn.execute(
            "SELECT id, box, score, landmarks, yaw, pitch, roll, quality, embedding, time, start_time, end_time,"
            " track, origin, cluster FROM faces WHERE photo_id = ? ORDER BY idx",
            (old[0],),
        ).fetchall()
        old_faces, drawn = [], []
        for face_id, *values, origin, cluster in rows:
            if origin == "detected":
                old_faces.append((int(face_id), json.loads(values[0]), np.frombuffer(values[7], np.float32), cluster))
            else:
                drawn.append(((*values, origin), cluster))
        ids = [face for face, *_ in old_faces]
        constraints: list[tuple[int, int, str]] = []
        if ids:
            marks = ", ".join("?" * len(ids))
            constraints = [
                (int(a), int(b), kind)
                for a, b, kind in conn.execute(
                    f"SELECT face_a, face_b, kind FROM constraints WHERE face_a IN ({marks}) OR face_b IN ({marks})",
                    ids + ids,
                )
            ]
        rejected = [row[0] for row in conn.execute("SELECT box FROM rejected WHERE photo_id = ?", (old[0],))]
        sidecars = [row[0] for row in conn.execute("SELECT path FROM sidecars WHERE photo_id = ?", (old[0],))]
        if not (rows or rejected or sidecars):
            return None
        return cls(old_faces, drawn, rejected, sidecars, constraints)

    def keep_detections(self, rows: list[tuple]) -> list[tuple]:
        """The new rows, less detections where the user removed one or drew a face; drawn faces after them."""
        taken = [json.loads(box) for box in self.rejected] + [json.loads(row[_BOX]) for row, _ in self.drawn]
        kept = [row for row in rows if all(_iou(json.loads(row[_BOX]), box) < SAME_FACE_IOU for box in taken)]
        return kept + [row for row, _ in self.drawn]

    def restore(self, conn: Sql, photo_id: int, faces: list[tuple[int, tuple]]) -> None:
        """Put the user's work back on the photo's new row and faces (``faces``: (new id, row values))."""
        conn.executemany("INSERT INTO rejected (photo_id, box) VALUES (?, ?)", [(photo_id, b) for b in self.rejected])
        conn.executemany("INSERT INTO sidecars (photo_id, path) VALUES (?, ?)", [(photo_id, p) for p in self.sidecars])
        drawn = [(new_id, cluster) for (new_id, _), (_, cluster) in zip(faces[-len(self.drawn) :], self.drawn)]
        detected = faces[: len(faces) - len(self.drawn)]
        moved: dict[int, int] = {}  # old face id -> new face id
        clusters = [pair for pair in drawn if pair[1] is not None]
        unmatched = list(self.old_faces)
        for new_id, row in detected:
            box, vec = json.loads(row[_BOX]), np.frombuffer(row[_EMBEDDING], np.float32)
            best = max(unmatched, key=lambda old: _iou(box, old[1]), default=None)
            if best is None or _iou(box, best[1]) < CARRY_IOU or float(vec @ best[2]) < CARRY_COSINE:
                continue
            unmatched.remove(best)
            moved[best[0]] = new_id
            if best[3] is not None:
                clusters.append((new_id, best[3]))
        conn.executemany("UPDATE faces SET cluster = ? WHERE id = ?", [(c, f) for f, c in clusters])
        old_ids = {face for face, *_ in self.old_faces}
        kept = []
        for a, b, kind in self.constraints:
            a, b = moved.get(a, a), moved.get(b, b)
            if a not in old_ids and b not in old_ids and a != b:  # both ends are faces that still exist
                kept.append((*_pair(a, b), kind))
        conn.executemany(
            "INSERT INTO constraints (face_a, face_b, kind) VALUES (?, ?, ?) ON CONFLICT (face_a, face_b) DO NOTHING",
            kept,
        )


def _pair(face_a: int, face_b: int) -> tuple[int, int]:
    """A constraint's key: the smaller face id first."""
    a, b = sorted((int(face_a), int(face_b)))
    if a == b:
        raise CollectionError(f"a constraint needs two different faces, got {face_a} twice")
    return a, b


def _missing_faces(conn: Sql, faces: list[int], chunk: int = 500) -> list[int]:
    """Those of ``faces`` (ascending) that the collection does not hold."""
    found: set[int] = set()
    for start in range(0, len(faces), chunk):
        part = faces[start : start + chunk]
        marks = ", ".join("?" * len(part))
        found.update(row[0] for row in conn.execute(f"SELECT id FROM faces WHERE id IN ({marks})", part))
    return [face for face in faces if face not in found]


def _cluster_info(row: tuple) -> ClusterInfo:
    cluster, name, n, private, born, person = row
    return ClusterInfo(int(cluster), name, int(n), bool(private), born, None if person is None else int(person))


def _face_info(row: tuple) -> FaceInfo:
    face_id, photo_id, root, path, sha, idx, box, score, quality, cluster, time, start, end, track, origin = row
    return FaceInfo(
        face_id, photo_id, root, path, sha, idx, tuple(json.loads(box)), score, quality, cluster,
        time=time, start=start, end=end, track=track, origin=origin,
    )  # fmt: skip


def _gallery_person(store: Any, name: str) -> int | None:
    from faceatlas.gallery.store import PersonNotFoundError

    try:
        return int(store.get_person(name).id)
    except PersonNotFoundError:
        return None


def face_matrix(
    face_ids: Sequence[int] | np.ndarray,
    photo_ids: Sequence[int] | np.ndarray,
    qualities: Sequence[float] | np.ndarray,
    clusters: Sequence[int] | np.ndarray,
    embeddings: np.ndarray,
) -> FaceMatrix:
    """``face_table``'s answer from its columns (None quality as 1.0, None cluster as NOT_CLUSTERED already)."""
    return FaceMatrix(
        face_ids=_readonly(np.array(face_ids, dtype=np.int64)),
        person_ids=_readonly(np.full(len(face_ids), -1, dtype=np.int64)),  # a collection has no gallery people
        embeddings=_readonly(embeddings),
        qualities=_readonly(np.array(qualities, dtype=np.float32)),
        photo_ids=_readonly(np.array(photo_ids, dtype=np.int64)),
        clusters=_readonly(np.array(clusters, dtype=np.int64)),
    )


def _readonly(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array
