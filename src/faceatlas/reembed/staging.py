"""Where new embeddings wait until every face has one: a staging table inside the store itself.

``reembed_staging`` holds one row per face (its id, the target model's tag, the new embedding),
with a foreign key to the face, so a face deleted meanwhile (a person forgotten, a photo replaced
by an index run) takes its staged row with it. Rows are written a photo or an image at a time, so a
killed run loses at most the one it was on, and the next run starts from what is staged (rows of
another target are discarded first). The store stays bound to its old model, and fully usable,
until ``swap``: one transaction that removes the faces given up on, checks that every other face
has a staged row for the target, writes them over the old embeddings, binds the store to the
target and drops the table. A store never holds embeddings of two models.

The stores' own transactions and change log are used (private to them: a re-embedding is the one
operation that changes a store's model, so it lives here, next to both backends, not in each).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from faceatlas._sqlite import SqliteFile
from faceatlas.gallery.store import RESET, ModelTag

TABLE = "reembed_staging"
_CHUNK = 500  # ids per IN (...) list


class Unstaged(Exception):
    """Faces without a staged embedding at swap time (added meanwhile): embed them, then swap again."""

    def __init__(self, face_ids: Sequence[int]) -> None:
        super().__init__(f"{len(face_ids)} face(s) not staged")
        self.face_ids = tuple(int(f) for f in face_ids)


class Staging(Protocol):
    def staged(self, tag: ModelTag) -> set[int]:
        """Ids of the faces staged for ``tag`` (reads only: none when there is no staging table)."""
        ...

    def open(self, tag: ModelTag) -> tuple[set[int], int]:
        """Create the table if need be, discard rows of other targets; (face ids staged for ``tag``, rows discarded)."""
        ...

    def stage(self, tag: ModelTag, face_ids: Sequence[int], vectors: np.ndarray) -> None: ...

    def swap(self, tag: ModelTag, drop_faces: Sequence[int] = (), drop_photos: Sequence[int] = ()) -> None:
        """Remove the faces (or photos) given up on, then switch every face to its staged embedding and
        bind the store to ``tag``, in one transaction; Unstaged (and nothing changed) if a face has none."""
        ...

    def discard(self) -> None:
        """Drop the staging table (the store keeps its model)."""
        ...


def _chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    ids = [int(i) for i in ids]
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


class SqliteStaging:
    """Staging in a gallery or collection SQLite file. ``settings``: the table holding the model
    columns (``gallery``, ``collection``); ``after_swap(conn)`` runs last in the swap transaction
    (the gallery logs a reset for its readers, the collection drops emptied unnamed clusters)."""

    def __init__(
        self, store: SqliteFile, settings: str, gone: type[Exception], after_swap: Callable[[Any], None]
    ) -> None:
        self.store, self.settings, self.gone, self.after_swap = store, settings, gone, after_swap

    @staticmethod
    def _exists(conn: sqlite3.Connection) -> bool:
        return (
            conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)).fetchone()
            is not None
        )

    @staticmethod
    def _tag_args(tag: ModelTag) -> tuple[str, str, int]:
        return tag.name, tag.version, int(tag.dim)

    _SAME_TAG = "model_name = ? AND model_version = ? AND model_dim = ?"

    def staged(self, tag: ModelTag) -> set[int]:
        with self.store._transaction(write=False) as conn:
            if not self._exists(conn):
                return set()
            rows = conn.execute(f"SELECT face_id FROM {TABLE} WHERE {self._SAME_TAG}", self._tag_args(tag))
            return {int(row[0]) for row in rows}

    def open(self, tag: ModelTag) -> tuple[set[int], int]:
        with self.store._transaction(write=True) as conn:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} ("
                " face_id INTEGER PRIMARY KEY REFERENCES faces(id) ON DELETE CASCADE,"
                " model_name TEXT NOT NULL, model_version TEXT NOT NULL, model_dim INTEGER NOT NULL,"
                " embedding BLOB NOT NULL)"
            )
            discarded = conn.execute(f"DELETE FROM {TABLE} WHERE NOT ({self._SAME_TAG})", self._tag_args(tag)).rowcount
            staged = {int(row[0]) for row in conn.execute(f"SELECT face_id FROM {TABLE}")}
        return staged, int(discarded)

    def stage(self, tag: ModelTag, face_ids: Sequence[int], vectors: np.ndarray) -> None:
        rows = [
            (int(face), *self._tag_args(tag), np.ascontiguousarray(vec, dtype=np.float32).tobytes(), int(face))
            for face, vec in zip(face_ids, vectors, strict=True)
        ]
        with self.store._transaction(write=True) as conn:
            if not self._exists(conn):
                raise self.gone(self._gone_message())
            conn.executemany(  # a face deleted since it was read is skipped, not an error
                f"INSERT OR REPLACE INTO {TABLE} (face_id, model_name, model_version, model_dim, embedding)"
                " SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM faces WHERE id = ?)",
                rows,
            )

    def _gone_message(self) -> str:
        return (
            f"the staged embeddings of {self.store.url} are gone: another run switched or discarded them meanwhile; "
            "run `faceatlas reembed` again"
        )

    def swap(self, tag: ModelTag, drop_faces: Sequence[int] = (), drop_photos: Sequence[int] = ()) -> None:
        with self.store._transaction(write=True) as conn:
            if not self._exists(conn):
                raise self.gone(self._gone_message())
            for part in _chunks(drop_photos):  # their faces, constraints and staged rows follow (cascade)
                conn.execute(f"DELETE FROM photos WHERE id IN ({', '.join('?' * len(part))})", part)
            for part in _chunks(drop_faces):
                conn.execute(f"DELETE FROM faces WHERE id IN ({', '.join('?' * len(part))})", part)
            missing = conn.execute(
                f"SELECT f.id FROM faces f WHERE NOT EXISTS (SELECT 1 FROM {TABLE} s WHERE s.face_id = f.id"
                " AND s.model_name = ? AND s.model_version = ? AND s.model_dim = ?) ORDER BY f.id LIMIT 10000",
                self._tag_args(tag),
            ).fetchall()
            if missing:
                raise Unstaged([row[0] for row in missing])  # rolls the whole transaction back
            conn.execute(f"UPDATE faces SET embedding = (SELECT s.embedding FROM {TABLE} s WHERE s.face_id = faces.id)")
            conn.execute(
                f"UPDATE {self.settings} SET model_name = ?, model_version = ?, model_dim = ?", self._tag_args(tag)
            )
            conn.execute(f"DROP TABLE {TABLE}")
            self.after_swap(conn)

    def discard(self) -> None:
        with self.store._transaction(write=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {TABLE}")


def sqlite_gallery_staging(store: Any) -> SqliteStaging:
    """Staging in a ``SqliteStore`` gallery: the swap logs a reset, so every reader re-reads the faces."""
    from faceatlas.errors import GalleryError

    return SqliteStaging(store, "gallery", GalleryError, lambda conn: store._bump(conn, (RESET, None, None, None)))


def collection_staging(store: Any) -> SqliteStaging:
    """Staging in a ``CollectionStore``: the swap drops unnamed clusters its removed photos emptied."""
    from faceatlas.errors import CollectionError

    def tidy(conn: sqlite3.Connection) -> None:  # as CollectionStore.set_clusters does
        conn.execute(
            "DELETE FROM clusters WHERE name IS NULL AND id NOT IN (SELECT cluster FROM faces WHERE cluster >= 0)"
        )

    return SqliteStaging(store, "collection", CollectionError, tidy)


class PostgresStaging:
    """Staging in a PostgreSQL gallery's schema. The swap replaces the ``vector(dim)`` column (its
    dimension may change) and rebuilds the HNSW index; it holds the faces table's exclusive lock
    while it runs, so searches wait for it."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.table = f"{store._s}.{TABLE}"

    def _exists(self, cur: Any) -> bool:
        query = "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = %s"
        return cur.execute(query, (self.store.schema, TABLE)).fetchone() is not None

    _SAME_TAG = "model_name = %s AND model_version = %s AND model_dim = %s"

    def staged(self, tag: ModelTag) -> set[int]:
        with self.store._transaction() as cur:
            if not self._exists(cur):
                return set()
            query = f"SELECT face_id FROM {self.table} WHERE {self._SAME_TAG}"
            return {int(row[0]) for row in cur.execute(query, (tag.name, tag.version, tag.dim)).fetchall()}

    def open(self, tag: ModelTag) -> tuple[set[int], int]:
        from faceatlas.gallery.postgres_store import _LOCK_KEY

        faces = f"{self.store._s}.faces"
        with self.store._transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))  # two runs must not both create it
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} ("
                f" face_id bigint PRIMARY KEY REFERENCES {faces}(id) ON DELETE CASCADE,"
                " model_name text NOT NULL, model_version text NOT NULL, model_dim int NOT NULL,"
                " embedding vector NOT NULL)"
            )
            query = f"DELETE FROM {self.table} WHERE NOT ({self._SAME_TAG})"
            discarded = cur.execute(query, (tag.name, tag.version, tag.dim)).rowcount
            staged = {int(row[0]) for row in cur.execute(f"SELECT face_id FROM {self.table}").fetchall()}
        return staged, int(discarded)

    def stage(self, tag: ModelTag, face_ids: Sequence[int], vectors: np.ndarray) -> None:
        from faceatlas.errors import GalleryError

        faces = f"{self.store._s}.faces"
        rows = [
            (int(face), tag.name, tag.version, int(tag.dim), np.ascontiguousarray(vec, dtype=np.float32), int(face))
            for face, vec in zip(face_ids, vectors, strict=True)
        ]
        if not rows:
            return
        with self.store._transaction() as cur:
            if not self._exists(cur):
                raise GalleryError(self._gone_message())
            cur.executemany(  # a face deleted since it was read is skipped, not an error
                f"INSERT INTO {self.table} (face_id, model_name, model_version, model_dim, embedding)"
                f" SELECT %s, %s, %s, %s, %s WHERE EXISTS (SELECT 1 FROM {faces} WHERE id = %s)"
                " ON CONFLICT (face_id) DO UPDATE SET model_name = excluded.model_name,"
                " model_version = excluded.model_version, model_dim = excluded.model_dim,"
                " embedding = excluded.embedding",
                rows,
            )

    def _gone_message(self) -> str:
        from faceatlas.gallery.postgres_store import redact

        return (
            f"the staged embeddings of {redact(self.store.url)} are gone: another run switched or discarded them "
            "meanwhile; run `faceatlas reembed` again"
        )

    def swap(self, tag: ModelTag, drop_faces: Sequence[int] = (), drop_photos: Sequence[int] = ()) -> None:
        from faceatlas.errors import GalleryError
        from faceatlas.gallery.postgres_store import _MAX_HNSW_DIM, HNSW_EF_CONSTRUCTION, HNSW_M

        s = self.store._s
        with self.store._transaction() as cur:
            if not self._exists(cur):
                raise GalleryError(self._gone_message())
            # first: writers that started before finish, later ones wait (no face added unstaged meanwhile)
            cur.execute(f"LOCK TABLE {s}.faces IN ACCESS EXCLUSIVE MODE")
            cur.execute(f"SELECT 1 FROM {s}.gallery FOR UPDATE")
            if drop_faces:
                cur.execute(f"DELETE FROM {s}.faces WHERE id = ANY(%s::bigint[])", ([int(f) for f in drop_faces],))
            missing = cur.execute(
                f"SELECT f.id FROM {s}.faces f WHERE NOT EXISTS (SELECT 1 FROM {self.table} t WHERE t.face_id = f.id"
                " AND t.model_name = %s AND t.model_version = %s AND t.model_dim = %s) ORDER BY f.id LIMIT 10000",
                (tag.name, tag.version, tag.dim),
            ).fetchall()
            if missing:
                raise Unstaged([row[0] for row in missing])
            cur.execute(f"ALTER TABLE {s}.faces DROP COLUMN embedding")  # its HNSW index goes with it
            cur.execute(f"ALTER TABLE {s}.faces ADD COLUMN embedding vector({int(tag.dim)})")
            cur.execute(f"UPDATE {s}.faces f SET embedding = t.embedding FROM {self.table} t WHERE t.face_id = f.id")
            cur.execute(f"ALTER TABLE {s}.faces ALTER COLUMN embedding SET NOT NULL")
            if tag.dim <= _MAX_HNSW_DIM:
                cur.execute(
                    f"CREATE INDEX faces_embedding_hnsw ON {s}.faces USING hnsw (embedding vector_cosine_ops)"
                    f" WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})"
                )
            cur.execute(
                f"UPDATE {s}.gallery SET model_name = %s, model_version = %s, model_dim = %s",
                (tag.name, tag.version, int(tag.dim)),
            )
            cur.execute(f"DROP TABLE {self.table}")
            self.store._bump(cur, (RESET, None, None, None))

    def discard(self) -> None:
        with self.store._transaction() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {self.table}")
