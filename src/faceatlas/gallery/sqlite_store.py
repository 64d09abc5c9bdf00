"""The default gallery store: one SQLite file, safe for several processes at once.

- WAL journal + a 30 s busy timeout: readers never block, concurrent writers queue instead of
  failing; every write is one ``BEGIN IMMEDIATE`` transaction, so a killed process leaves either
  a whole batch or none of it.
- The file says what it is: ``PRAGMA application_id`` marks a faceatlas gallery and
  ``PRAGMA user_version`` its schema version, upgraded by ``MIGRATIONS`` on open. A file that is
  not SQLite, fails ``quick_check``, or is SQLite without our schema is a GalleryError naming
  the file, never recreated or overwritten. New files are built aside and linked into place, so
  a half-created gallery is never seen. (This file handling is ``faceatlas/_sqlite.py``, shared
  with the photo collection.)
- Embeddings are float32 BLOBs of the bound model's dimension.
- Every write appends to the ``changes`` log (ids only) in its transaction; ``changes_since``
  reads it, so a reader catches up on what moved instead of re-reading every face.
- Deleting is erasing: ``secure_delete`` zeroes freed bytes, and ``delete_person`` checkpoints
  the WAL so the old pages do not linger in it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from faceatlas._sqlite import Migration, SqliteFile, inserted_rowid
from faceatlas.gallery.store import (
    ADDED,
    FORMAT,
    LOG_VERSIONS,
    MERGED,
    PERSON,
    REMOVED,
    RESET,
    Changes,
    CheckedFace,
    Compaction,
    FaceMatrix,
    FaceNotFoundError,
    FaceRecord,
    GalleryError,
    ModelTag,
    PersonNotFoundError,
    PersonRecord,
    check_faces,
    check_name,
    check_same_model,
    check_tag,
    dump_metadata,
    empty_matrix,
    face_row,
    header_row,
    model_row,
    parse_rows,
    person_row,
    readonly,
    summarise_log,
)

#: marks the file as a faceatlas gallery in the SQLite header ("FAGa")
APPLICATION_ID = 0x46414761


def _migrate_0_to_1(conn: sqlite3.Connection) -> None:
    """The first schema: one settings row, people, faces."""
    conn.execute(
        "CREATE TABLE gallery ("
        " id INTEGER PRIMARY KEY CHECK (id = 1),"
        " format TEXT NOT NULL,"
        " model_name TEXT, model_version TEXT, model_dim INTEGER,"
        " version INTEGER NOT NULL DEFAULT 0)"
    )
    # AUTOINCREMENT: a deleted person's or face's id is never handed out again
    conn.execute(
        "CREATE TABLE people ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " name TEXT NOT NULL UNIQUE,"
        " metadata TEXT NOT NULL DEFAULT '{}')"
    )
    conn.execute(
        "CREATE TABLE faces ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,"
        " embedding BLOB NOT NULL,"
        " quality REAL NOT NULL,"
        " source TEXT NOT NULL,"
        " box TEXT,"
        " metadata TEXT NOT NULL DEFAULT '{}')"
    )
    conn.execute("CREATE INDEX faces_person_source ON faces(person_id, source)")
    conn.execute("INSERT INTO gallery (id, format) VALUES (1, ?)", (FORMAT,))
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """The change log: what each version changed (ids only), from the version of the upgrade on."""
    conn.execute("ALTER TABLE gallery ADD COLUMN log_floor INTEGER NOT NULL DEFAULT 0")
    conn.execute("UPDATE gallery SET log_floor = version")  # older versions were never logged
    conn.execute(
        "CREATE TABLE changes ("
        " version INTEGER NOT NULL, op TEXT NOT NULL, person_id INTEGER, face_id INTEGER, other_id INTEGER)"
    )
    conn.execute("CREATE INDEX changes_version ON changes(version)")


def _migrate_2_to_3(conn: sqlite3.Connection) -> None:
    """Private people: a flag per person (everyone enrolled before is not private)."""
    conn.execute("ALTER TABLE people ADD COLUMN private INTEGER NOT NULL DEFAULT 0 CHECK (private IN (0, 1))")


#: MIGRATIONS[i] turns a schema of version i into version i + 1 (inside the caller's transaction)
MIGRATIONS: list[Migration] = [_migrate_0_to_1, _migrate_1_to_2, _migrate_2_to_3]


class SqliteStore(SqliteFile):
    """A gallery in one SQLite file (or ``":memory:"``). See the module docstring."""

    kind = "gallery"
    application_id = APPLICATION_ID
    tables = frozenset({"gallery", "people", "faces"})
    error = GalleryError
    elsewhere_hint = "move it away to create a new gallery there"
    restore_hint = "restore it from a backup or an export"

    def migrations(self) -> list[Migration]:
        return MIGRATIONS  # the module's list, looked up now: an upgrade test may extend it

    @staticmethod
    def _bump(conn: sqlite3.Connection, *changes: tuple) -> int:
        """The next version, with its log rows ``(op, person_id, face_id, other_id)``; trims old ones."""
        version = int(conn.execute("UPDATE gallery SET version = version + 1 RETURNING version").fetchone()[0])
        conn.executemany(
            "INSERT INTO changes (version, op, person_id, face_id, other_id) VALUES (?, ?, ?, ?, ?)",
            [(version, *change) for change in changes],
        )
        if version % 100 == 0 and version > LOG_VERSIONS:
            conn.execute("DELETE FROM changes WHERE version <= ?", (version - LOG_VERSIONS,))
            conn.execute("UPDATE gallery SET log_floor = MAX(log_floor, ?)", (version - LOG_VERSIONS,))
        return version

    # --- model ---

    def bind_model(self, tag: ModelTag) -> None:
        tag = check_tag(tag)
        with self._transaction(write=True) as conn:
            bound = self._model(conn)
            check_same_model(bound, tag, self.url)
            if bound is None:
                self._set_model(conn, tag)
                self._bump(conn, (RESET, None, None, None))  # the matrix gets its dimension

    def model(self) -> ModelTag | None:
        with self._transaction(write=False) as conn:
            return self._model(conn)

    @staticmethod
    def _set_model(conn: sqlite3.Connection, tag: ModelTag) -> None:
        conn.execute(
            "UPDATE gallery SET model_name = ?, model_version = ?, model_dim = ?", (tag.name, tag.version, tag.dim)
        )

    @staticmethod
    def _model(conn: sqlite3.Connection) -> ModelTag | None:
        name, version, dim = conn.execute("SELECT model_name, model_version, model_dim FROM gallery").fetchone()
        return None if name is None else ModelTag(name, version, int(dim))

    # --- people ---

    _PERSON_SELECT = (
        "SELECT p.id, p.name, p.metadata, (SELECT COUNT(*) FROM faces f WHERE f.person_id = p.id), p.private"
        " FROM people p"
    )

    @staticmethod
    def _person(row: tuple) -> PersonRecord:
        return PersonRecord(int(row[0]), row[1], json.loads(row[2]), int(row[3]), bool(row[4]))

    def _person_named(self, conn: sqlite3.Connection, name: str) -> PersonRecord:
        row = conn.execute(self._PERSON_SELECT + " WHERE p.name = ?", (name,)).fetchone()
        if row is None:
            raise PersonNotFoundError(f"no person named {name!r} in gallery {self.url}")
        return self._person(row)

    def add_person(self, name: str, metadata: dict | None = None) -> int:
        name, meta = check_name(name), dump_metadata(metadata, "person")
        with self._transaction(write=True) as conn:
            return self._insert_person(conn, name, meta)

    def _insert_person(self, conn: sqlite3.Connection, name: str, meta: str, private: bool = False) -> int:
        if conn.execute("SELECT 1 FROM people WHERE name = ?", (name,)).fetchone():
            raise GalleryError(f"a person named {name!r} already exists in gallery {self.url}; pick another name")
        person_id = inserted_rowid(
            conn.execute(
                "INSERT INTO people (name, metadata, private) VALUES (?, ?, ?)", (name, meta, int(bool(private)))
            )
        )
        self._bump(conn, (PERSON, person_id, None, None))
        return person_id

    def get_person(self, name: str) -> PersonRecord:
        with self._transaction(write=False) as conn:
            return self._person_named(conn, name)

    def person_by_id(self, person_id: int) -> PersonRecord:
        with self._transaction(write=False) as conn:
            row = conn.execute(self._PERSON_SELECT + " WHERE p.id = ?", (int(person_id),)).fetchone()
        if row is None:
            raise PersonNotFoundError(f"no person with id {person_id} in gallery {self.url}")
        return self._person(row)

    def list_people(self) -> list[PersonRecord]:
        with self._transaction(write=False) as conn:
            return [self._person(row) for row in conn.execute(self._PERSON_SELECT + " ORDER BY p.name")]

    def rename_person(self, old: str, new: str) -> None:
        new = check_name(new)
        with self._transaction(write=True) as conn:
            person = self._person_named(conn, old)
            if new == old:
                return
            if conn.execute("SELECT 1 FROM people WHERE name = ?", (new,)).fetchone():
                raise GalleryError(f"cannot rename {old!r}: {new!r} already exists in gallery {self.url}")
            conn.execute("UPDATE people SET name = ? WHERE id = ?", (new, person.id))
            self._bump(conn, (PERSON, person.id, None, None))

    def set_private(self, name: str, private: bool) -> None:
        with self._transaction(write=True) as conn:
            person = self._person_named(conn, name)
            if person.private != bool(private):
                conn.execute("UPDATE people SET private = ? WHERE id = ?", (int(bool(private)), person.id))
                self._bump(conn, (PERSON, person.id, None, None))

    def merge_people(self, source: str, target: str) -> None:
        """Move ``source``'s faces to ``target`` and delete ``source``; ``target`` keeps its metadata."""
        with self._transaction(write=True) as conn:
            src, dst = self._person_named(conn, source), self._person_named(conn, target)
            if src.id == dst.id:
                raise GalleryError(f"cannot merge {source!r} into itself")
            conn.execute("UPDATE faces SET person_id = ? WHERE person_id = ?", (dst.id, src.id))
            if src.private:  # the merged person shows the private person's faces: private too
                conn.execute("UPDATE people SET private = 1 WHERE id = ?", (dst.id,))
            conn.execute("DELETE FROM people WHERE id = ?", (src.id,))
            self._bump(conn, (MERGED, src.id, None, dst.id))

    def delete_person(self, name: str) -> int:
        with self._transaction(write=True) as conn:
            person = self._person_named(conn, name)
            gone = [row[0] for row in conn.execute("SELECT id FROM faces WHERE person_id = ?", (person.id,))]
            conn.execute("DELETE FROM faces WHERE person_id = ?", (person.id,))
            conn.execute("DELETE FROM people WHERE id = ?", (person.id,))
            self._forget_in_log(conn, person.id)
            self._bump(conn, *((REMOVED, None, face_id, None) for face_id in gone))
        self.empty_wal()  # the delete committed either way; compact() says whether this worked
        return len(gone)

    @staticmethod
    def _forget_in_log(conn: sqlite3.Connection, person_id: int) -> None:
        """No log row may name a deleted person: readers learn of it through its removed faces."""
        conn.execute("UPDATE changes SET person_id = NULL WHERE op = ? AND person_id = ?", (ADDED, person_id))
        conn.execute("DELETE FROM changes WHERE op = ? AND person_id = ?", (PERSON, person_id))
        conn.execute(  # a merge into or out of them: readers behind it re-read everything
            "UPDATE changes SET op = ?, person_id = NULL, other_id = NULL WHERE op = ? AND ? IN (person_id, other_id)",
            (RESET, MERGED, person_id),
        )

    def compact(self, *, full: bool = True) -> Compaction:
        """secure_delete zeroed the deleted rows in the file's pages; their old versions are left in
        the WAL (and the file, until a checkpoint): empty it. ``full`` changes nothing: nothing here is costly."""
        if self.path is None:
            return Compaction(("the gallery is in memory: nothing of it was on disk",))
        erased = "SQLite's secure_delete zeroed the deleted rows in the gallery file"
        why = self.empty_wal()
        if why is None:
            return Compaction((erased, "the gallery's WAL was checkpointed and emptied"))
        return Compaction((erased,), (why,))

    # --- faces ---

    def add_faces(self, person_id: int, faces: Sequence[FaceRecord]) -> list[int]:
        with self._transaction(write=True) as conn:
            checked = check_faces(faces, self._model(conn), self.url)
            self._require_person(conn, person_id)
            ids = [self._insert_face(conn, int(person_id), face) for face in checked]
            if ids:
                self._bump(conn, *((ADDED, int(person_id), face_id, None) for face_id in ids))
            return ids

    def _require_person(self, conn: sqlite3.Connection, person_id: int) -> None:
        if conn.execute("SELECT 1 FROM people WHERE id = ?", (int(person_id),)).fetchone() is None:
            raise PersonNotFoundError(f"no person with id {person_id} in gallery {self.url}")

    @staticmethod
    def _insert_face(conn: sqlite3.Connection, person_id: int, face: CheckedFace) -> int:
        cursor = conn.execute(
            "INSERT INTO faces (person_id, embedding, quality, source, box, metadata) VALUES (?, ?, ?, ?, ?, ?)",
            (
                person_id,
                face.embedding.tobytes(),
                face.quality,
                face.source,
                None if face.box is None else json.dumps(face.box),
                face.metadata_json,
            ),
        )
        return inserted_rowid(cursor)

    def remove_face(self, face_id: int) -> None:
        with self._transaction(write=True) as conn:
            if conn.execute("DELETE FROM faces WHERE id = ?", (int(face_id),)).rowcount == 0:
                raise FaceNotFoundError(f"no face with id {face_id} in gallery {self.url}")
            self._bump(conn, (REMOVED, None, int(face_id), None))

    def has_source(self, person_id: int, source: str) -> bool:
        with self._transaction(write=False) as conn:
            row = conn.execute(
                "SELECT 1 FROM faces WHERE person_id = ? AND source = ? LIMIT 1", (int(person_id), source)
            ).fetchone()
        return row is not None

    def face_matrix(self) -> FaceMatrix:
        with self._transaction(write=False) as conn:  # one snapshot: the version matches the rows
            version = self._version_in(conn)
            tag = self._model(conn)
            rows = conn.execute("SELECT id, person_id, quality, embedding FROM faces ORDER BY id").fetchall()
        return self._matrix(rows, 0 if tag is None else tag.dim, version)

    def changes_since(self, version: int) -> Changes | None:
        with self._transaction(write=False) as conn:  # one snapshot
            current, floor = conn.execute("SELECT version, log_floor FROM gallery").fetchone()
            if not floor <= version <= current:
                return None
            log = conn.execute(
                "SELECT op, person_id, face_id, other_id FROM changes WHERE version > ? ORDER BY version, rowid",
                (version,),
            ).fetchall()
            summary = summarise_log(log)
            if summary is None:
                return None
            _, removed, merges, people = summary  # the added faces are read by the subquery below
            tag = self._model(conn)
            rows = conn.execute(
                "SELECT id, person_id, quality, embedding FROM faces WHERE id IN"
                " (SELECT face_id FROM changes WHERE version > ? AND op = ?) ORDER BY id",
                (version, ADDED),
            ).fetchall()
            records = [
                self._person(row)
                for person_id in sorted(people)
                for row in conn.execute(self._PERSON_SELECT + " WHERE p.id = ?", (person_id,))
            ]
        return Changes(
            int(current),
            self._matrix(rows, 0 if tag is None else tag.dim, int(current)),
            np.array(removed, dtype=np.int64),
            tuple(merges),
            tuple(records),
        )

    def _matrix(self, rows: list[tuple], dim: int, version: int) -> FaceMatrix:
        """A FaceMatrix from ``(id, person_id, quality, embedding blob)`` rows in id order."""
        if not rows:
            return empty_matrix(dim, version)
        face_ids, person_ids, qualities, blobs = zip(*rows, strict=True)
        if any(len(blob) != 4 * dim for blob in blobs):
            raise GalleryError(f"gallery {self.url} holds embeddings that are not {dim}-d float32; it is damaged")
        embeddings = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(rows), dim)
        return FaceMatrix(
            readonly(np.array(face_ids, dtype=np.int64)),
            readonly(np.array(person_ids, dtype=np.int64)),
            readonly(embeddings),  # frombuffer of bytes is already read-only
            readonly(np.array(qualities, dtype=np.float32)),
            version,
        )

    # --- version ---

    def version(self) -> int:
        with self._transaction(write=False) as conn:
            return self._version_in(conn)

    @staticmethod
    def _version_in(conn: sqlite3.Connection) -> int:
        return int(conn.execute("SELECT version FROM gallery").fetchone()[0])

    # --- export / import ---

    def export_rows(self) -> Iterator[dict]:
        """Stream the gallery from one snapshot, on a connection of its own (the store stays usable)."""
        if self.path is None:  # an in-memory gallery has no second connection: materialise
            with self._transaction(write=False) as conn:
                rows = list(self._rows(conn))
            yield from rows
            return
        self._db  # noqa: B018 - raise if closed
        try:
            conn = sqlite3.connect(
                self.path.as_uri() + "?mode=ro", uri=True, timeout=self._timeout, isolation_level=None
            )
        except sqlite3.Error as exc:
            raise GalleryError(f"cannot read gallery {self.url}: {exc}") from exc
        try:
            conn.execute("BEGIN")
            yield from self._rows(conn)
        except sqlite3.Error as exc:
            raise GalleryError(f"cannot export gallery {self.url}: {exc}") from exc
        finally:
            conn.close()

    def _rows(self, conn: sqlite3.Connection) -> Iterator[dict]:
        yield header_row()
        tag = self._model(conn)
        if tag is not None:
            yield model_row(tag)
        names = {}
        for person_id, name, meta, private in conn.execute(
            "SELECT id, name, metadata, private FROM people ORDER BY id"
        ):
            names[person_id] = name
            yield person_row(person_id, name, json.loads(meta), bool(private))
        query = "SELECT id, person_id, embedding, quality, source, box, metadata FROM faces ORDER BY id"
        for face_id, person_id, blob, quality, source, box, meta in conn.execute(query):
            embedding = np.frombuffer(blob, dtype=np.float32)
            box = None if box is None else json.loads(box)
            yield face_row(face_id, person_id, names[person_id], embedding, quality, source, box, json.loads(meta))

    def import_rows(self, rows: Iterable[dict]) -> None:
        """Add exported rows in one transaction: people are created (an existing name is a conflict),
        faces go to the person of their ``person`` name; ids are assigned afresh."""
        with self._transaction(write=True) as conn:
            tag = self._model(conn)
            ids: dict[str, int] = {}  # person name -> id, so a big import does not look each face's person up
            for kind, item in parse_rows(rows):
                if kind == "model":
                    check_same_model(tag, item, self.url)
                    if tag is None:
                        self._set_model(conn, item)
                        tag = item
                elif kind == "person":
                    self._insert_person(conn, item[0], dump_metadata(item[1], "person"), item[2])
                else:
                    person, face = item
                    (checked,) = check_faces([face], tag, self.url)
                    if person not in ids:
                        ids[person] = self._person_named(conn, person).id
                    self._insert_face(conn, ids[person], checked)
            self._bump(conn, (RESET, None, None, None))

    # --- lifetime ---

    def __repr__(self) -> str:
        return f"SqliteStore({self.url!r})"
