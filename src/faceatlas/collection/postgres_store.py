"""A photo collection in PostgreSQL with pgvector: the one store the machines of a cluster share.

The collection's SQL and checks are ``store.CollectionStore``'s, the very ones the SQLite file
runs; this module gives them a PostgreSQL connection and the few statements PostgreSQL spells
differently (``_Sql`` takes their ``?`` placeholders and returns results in binary).

- Tables live in one schema (``?schema=name`` in the URL, default ``faceatlas_collection``), so a
  database holds several collections and galleries. A schema that exists but is not a collection
  (a gallery, another application's tables) is a CollectionError and is never touched;
  ``create=False`` on a missing one is a CollectionError too. Paths compare and sort bytewise
  (``COLLATE "C"``), as in SQLite.
- Embeddings are a ``vector(dim)`` column, added by ``bind_model`` with an HNSW index
  (``vector_cosine_ops``) for searches on the server; ``face_table`` reads every face with one
  binary ``COPY`` that numpy parses whole (no Python object per face).
- Concurrency: several processes (a Ray driver, the service, a second ``faceatlas index``) may
  write one collection at once. Each method is one transaction, as in SQLite; what SQLite's single
  writer gave is kept with advisory locks:

  * reads: ``REPEATABLE READ, READ ONLY`` (one snapshot per method, never blocked);
  * photo writes (``add_photo``, ``touch_photo``, ``move_photo``, ``remove_photos``):
    ``READ COMMITTED``, the collection's lock in *shared* mode plus one lock per (root, path),
    taken in key order (no deadlock): writers of different photos run side by side, two writers
    of one photo queue and the later one's version stands;
  * every other write (``bind_model``, ``rebase_root``, clusters, names, constraints): the
    collection's lock in *exclusive* mode, so it runs alone, as every SQLite write does.

  A killed client's open transaction is rolled back by the server: a killed index job loses at
  most the photo in flight, and the next run resumes.
- Deleting: PostgreSQL keeps dead row versions until a VACUUM; ``forget_name`` rewrites the
  clusters table (``VACUUM FULL``) and says what the write-ahead log still keeps.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
import psycopg
from psycopg import sql
from psycopg.adapt import Dumper, Loader
from psycopg.pq import Format
from psycopg.types import TypeInfo

from faceatlas.collection.store import (
    FORMAT,
    LIBRARY_SCHEMA,
    LIFE_SCHEMA,
    NOT_CLUSTERED,
    REVIEW_SCHEMA,
    VIDEO_COLUMNS,
    CollectionError,
    CollectionStore,
    FaceMatrix,
    FaceNotFoundError,
    ModelTag,
    face_matrix,
)
from faceatlas.errors import GalleryError
from faceatlas.gallery.postgres_store import WAL_KEPT, create_vector_extension, migrate_schema, redact, split_schema

DEFAULT_SCHEMA = "faceatlas_collection"
TABLES = frozenset({"collection", "photos", "faces", "clusters", "constraints"})
_CREATE_LOCK = 0x46414343  # advisory lock serialising schema creation across processes ("FACC")
_LOCK_SPACE = 0x4641436C  # first key of the two-key advisory lock a collection's writers take ("FACl")
_MAX_HNSW_DIM = 2000  # pgvector cannot index wider vectors: a search is then a sequential scan
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00"


def _migrate_0_to_1(cur: psycopg.Cursor, s: str) -> None:
    """The SQLite store's first schema, in PostgreSQL types (the embedding column comes with bind_model)."""
    cur.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
    cur.execute(
        f"CREATE TABLE {s}.collection ("
        " id int PRIMARY KEY CHECK (id = 1), format text NOT NULL, schema_version int NOT NULL,"
        " model_name text, model_version text, model_dim int)"
    )
    # identity ids are never handed out again, as SQLite's AUTOINCREMENT: a stale id never lands on another face
    cur.execute(
        f"CREATE TABLE {s}.photos ("
        " id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        ' root text COLLATE "C" NOT NULL, path text COLLATE "C" NOT NULL, sha256 text NOT NULL,'
        " size bigint NOT NULL, mtime_ns bigint NOT NULL, width int, height int,"
        " status text NOT NULL, indexed_at text NOT NULL,"
        " UNIQUE (root, path))"
    )
    cur.execute(f"CREATE INDEX photos_sha256 ON {s}.photos (sha256)")
    cur.execute(f"CREATE TABLE {s}.clusters (id bigint PRIMARY KEY, name text UNIQUE)")
    cur.execute(
        f"CREATE TABLE {s}.faces ("
        " id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        f" photo_id bigint NOT NULL REFERENCES {s}.photos(id) ON DELETE CASCADE,"
        " idx int NOT NULL, box text NOT NULL, score double precision NOT NULL, landmarks text NOT NULL,"
        " yaw double precision, pitch double precision, roll double precision, quality double precision,"
        " cluster bigint,"  # NULL = not clustered yet, -1 = unassigned; no FK: -1 is no row
        " UNIQUE (photo_id, idx))"
    )
    cur.execute(f"CREATE INDEX faces_cluster ON {s}.faces (cluster)")
    cur.execute(
        f"CREATE TABLE {s}.constraints ("
        f" face_a bigint NOT NULL REFERENCES {s}.faces(id) ON DELETE CASCADE,"
        f" face_b bigint NOT NULL REFERENCES {s}.faces(id) ON DELETE CASCADE,"
        " kind text NOT NULL CHECK (kind IN ('must', 'cannot')),"
        " PRIMARY KEY (face_a, face_b), CHECK (face_a < face_b))"
    )
    cur.execute(f"CREATE INDEX constraints_b ON {s}.constraints (face_b)")
    cur.execute(f"INSERT INTO {s}.collection (id, format, schema_version) VALUES (1, %s, 0)", (FORMAT,))


def _migrate_1_to_2(cur: psycopg.Cursor, s: str) -> None:
    """Videos, as in the SQLite store: a photo's ``kind`` and ``duration``, a face's time in its video."""
    for statement in VIDEO_COLUMNS:
        cur.execute(statement.format(s=f"{s}.", real="double precision", int="bigint"))


def _migrate_2_to_3(cur: psycopg.Cursor, s: str) -> None:
    """Photo libraries, as in the SQLite store: capture times, face origins, removed detections,
    sidecars written, private people."""
    for statement in LIBRARY_SCHEMA:
        cur.execute(statement.format(s=f"{s}.", real="double precision", int="bigint"))


def _migrate_3_to_4(cur: psycopg.Cursor, s: str) -> None:
    """People's lives, as in the SQLite store: birth dates, life stages."""
    for statement in LIFE_SCHEMA:
        cur.execute(statement.format(s=f"{s}.", real="double precision", int="bigint"))


def _migrate_4_to_5(cur: psycopg.Cursor, s: str) -> None:
    """The review queue's memory, as in the SQLite store: the answers it was given."""
    for statement in REVIEW_SCHEMA:
        cur.execute(statement.format(s=f"{s}.", real="double precision", int="bigint"))


#: MIGRATIONS[i] turns schema version i into i + 1 (inside the caller's transaction)
MIGRATIONS = [_migrate_0_to_1, _migrate_1_to_2, _migrate_2_to_3, _migrate_3_to_4, _migrate_4_to_5]


def split_collection_url(url: str) -> tuple[str, str]:
    """(libpq URL, schema) of a collection URL; no ``schema`` parameter means ``DEFAULT_SCHEMA``."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if not any(key == "schema" for key, _ in query):
        url = urlunsplit(parts._replace(query=urlencode([*query, ("schema", DEFAULT_SCHEMA)], safe="/")))
    try:
        return split_schema(url)
    except GalleryError as exc:  # the gallery's rule for schema names, said as a collection's error
        raise CollectionError(str(exc)) from exc


def _scrubbed(exc: BaseException, url: str) -> str:
    """An error's message without the URL's password, should a driver ever repeat it."""
    text = str(exc).strip()
    password = urlsplit(url).password
    secrets = [password] if password else []
    secrets += [value for key, value in parse_qsl(urlsplit(url).query) if key == "password" and value]
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _lock_key(*parts: str, bits: int = 64) -> int:
    """A signed advisory-lock key of ``bits`` bits naming ``parts`` (a collision only makes two writers queue)."""
    digest = hashlib.blake2b("\0".join(parts).encode(), digest_size=bits // 8).digest()
    return int.from_bytes(digest, "big", signed=True)


@lru_cache(maxsize=256)
def _dialect(query: str) -> str:
    """The shared SQL for psycopg: ``?`` placeholders become ``%s`` (the SQL holds no literal ``?``)."""
    return query.replace("%", "%%").replace("?", "%s")


class _Sql:
    """A psycopg connection that runs the shared SQL as sqlite3's does: ``?`` placeholders, one
    cursor per statement, results in binary (so embeddings arrive as float32 bytes, as SQLite's blobs)."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.raw = conn

    def execute(self, query: str, params: Sequence[Any] = ()) -> psycopg.Cursor:
        return self.raw.cursor(binary=True).execute(_dialect(query), params)

    def executemany(self, query: str, params: Iterable[Sequence[Any]]) -> psycopg.Cursor:
        cur = self.raw.cursor(binary=True)
        cur.executemany(_dialect(query), list(params))
        return cur


class _EmbeddingDumper(Dumper):
    """float32 bytes (the shared code's embeddings, as SQLite stores them) sent as a binary pgvector.
    Registered for ``bytes`` on a collection's connection: its only bytes parameters are embeddings."""

    format = Format.BINARY

    def dump(self, obj: bytes) -> bytes:
        vec = np.frombuffer(obj, dtype="<f4")
        return vec.shape[0].to_bytes(2, "big") + b"\0\0" + vec.astype(">f4").tobytes()


class _EmbeddingLoader(Loader):
    """A binary pgvector (uint16 dim, uint16 unused, big-endian float32s) read as float32 bytes."""

    format = Format.BINARY

    def load(self, data: Any) -> bytes:
        return np.frombuffer(bytes(data), dtype=">f4", offset=4).astype("<f4").tobytes()


class PostgresCollectionStore(CollectionStore):
    """A photo collection in a PostgreSQL schema with pgvector; see the module docstring.
    Open it as ``CollectionStore.open("postgresql://user@host/db?schema=photos")``."""

    _contains_sql = "strpos({text}, ?) > 0"

    def __init__(self, url: str, create: bool = True, *, connect_timeout: int = 10) -> None:
        self.url, self.path = url, None
        self._lock = threading.RLock()  # one connection, shared by threads: one transaction at a time
        self._conn: psycopg.Connection | None = None
        conninfo, self.schema = split_collection_url(url)
        self._s = f'"{self.schema}"'  # validated, so quoting is enough
        self._write_key = (_LOCK_SPACE, _lock_key(self.schema, bits=32))
        self._conninfo, self._connect_timeout = conninfo, connect_timeout
        self._conn = self._connect()
        try:
            self._initialise(create)
            self._configure()
        except psycopg.Error as exc:
            self.close()
            raise CollectionError(f"cannot open collection {self.location}: {_scrubbed(exc, url)}") from exc
        except BaseException:
            self.close()
            raise

    @property
    def location(self) -> str:
        return redact(self.url)

    def __repr__(self) -> str:
        return f"PostgresCollectionStore({self.location!r})"

    # --- opening ---

    def _connect(self) -> psycopg.Connection:
        try:
            return psycopg.connect(self._conninfo, autocommit=True, connect_timeout=self._connect_timeout)
        except psycopg.Error as exc:
            raise CollectionError(
                f"cannot connect to collection {self.location}: {_scrubbed(exc, self.url)}; check the URL, and "
                "that the server runs and takes connections"
            ) from exc

    def _initialise(self, create: bool) -> None:
        conn = self._db
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_CREATE_LOCK,))
            query = "SELECT tablename FROM pg_tables WHERE schemaname = %s"
            tables = {row[0] for row in cur.execute(query, (self.schema,)).fetchall()}
            if not tables:
                exists = cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,)).fetchone()
                if not create:
                    raise CollectionError(
                        f"no collection at {self.location} (create=False): schema {self.schema!r} "
                        f"{'is empty' if exists else 'does not exist'}; check the URL or --db"
                    )
                create_vector_extension(conn, cur, self.location, CollectionError)
            elif not TABLES <= tables:
                raise self._not_ours(f"holds tables {sorted(tables)}")
            migrate_schema(
                cur, self.schema, "collection", FORMAT, MIGRATIONS, bool(tables), self.location, CollectionError
            )

    def _not_ours(self, what: str) -> CollectionError:
        return CollectionError(
            f"schema {self.schema!r} at {self.location} {what} but is not a faceatlas collection; it was left "
            "untouched (pick another ?schema=)"
        )

    def _configure(self) -> None:
        """Unqualified names mean this collection's tables (and pgvector's type); embeddings travel in binary."""
        conn = self._db
        row = conn.execute(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
            " WHERE e.extname = 'vector'"
        ).fetchone()
        if row is None:
            raise CollectionError(f"{self.location} has no pgvector extension; CREATE EXTENSION vector")
        conn.execute(sql.SQL("SET search_path TO {}, {}").format(sql.Identifier(self.schema), sql.Identifier(row[0])))
        info = TypeInfo.fetch(conn, "vector")
        if info is None:
            raise CollectionError(f"{self.location} has no pgvector 'vector' type; CREATE EXTENSION vector")
        conn.adapters.register_dumper(bytes, type("EmbeddingDumper", (_EmbeddingDumper,), {"oid": info.oid}))
        conn.adapters.register_loader(info.oid, _EmbeddingLoader)

    # --- transactions ---

    @property
    def _db(self) -> psycopg.Connection:
        if self._conn is None:
            raise CollectionError(f"collection {self.location} is closed")
        if self._conn.broken:  # the server restarted or the network dropped: the call that saw it failed,
            self._conn = self._connect()  # the next one connects again (a long-lived service's store)
            self._configure()
        return self._conn

    @contextmanager
    def _session(self, write: bool) -> Iterator[psycopg.Connection]:
        """One transaction: READ COMMITTED for a write (each statement sees what the locks it waited
        for let commit), one read-only snapshot for a read. psycopg's errors become CollectionErrors."""
        with self._lock:
            conn = self._db
            try:
                with conn.transaction():
                    if not write:
                        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    yield conn
            except psycopg.errors.ForeignKeyViolation as exc:  # a face deleted meanwhile
                detail = exc.diag.message_detail or exc
                raise FaceNotFoundError(f"collection {self.location}: {detail}") from exc
            except psycopg.Error as exc:
                raise CollectionError(f"collection {self.location}: {_scrubbed(exc, self.url)}") from exc

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[_Sql]:
        with self._session(write) as conn:
            if write:  # alone: no other collection-wide write, no photo write, runs meanwhile
                conn.execute("SELECT pg_advisory_xact_lock(%s::int4, %s::int4)", self._write_key)
            yield _Sql(conn)

    @contextmanager
    def _photo_transaction(self, photos: Sequence[tuple[str, str]]) -> Iterator[_Sql]:
        with self._session(write=True) as conn:
            conn.execute("SELECT pg_advisory_xact_lock_shared(%s::int4, %s::int4)", self._write_key)
            keys = sorted({_lock_key(self.schema, root, path) for root, path in photos})  # in order: no deadlock
            with conn.cursor() as cur:
                cur.executemany("SELECT pg_advisory_xact_lock(%s::int8)", [(key,) for key in keys])
            yield _Sql(conn)

    # --- what PostgreSQL does its own way ---

    def _bind_embeddings(self, conn: _Sql, tag: ModelTag) -> None:
        # no face is stored before the model is bound, so NOT NULL needs no default
        conn.execute(f"ALTER TABLE faces ADD COLUMN embedding vector({int(tag.dim)}) NOT NULL")
        if tag.dim <= _MAX_HNSW_DIM:  # pgvector's default graph: cheap to keep up to date while indexing
            conn.execute("CREATE INDEX faces_embedding_hnsw ON faces USING hnsw (embedding vector_cosine_ops)")

    def _update_clusters(self, conn: _Sql, pairs: list[tuple[int, int]]) -> int:
        """One statement for every face (not one per face: a clustering sets them all)."""
        if not pairs:
            return 0
        latest = {face: label for label, face in pairs}  # a face listed twice: the last label, as in SQLite
        cur = conn.raw.cursor()
        cur.execute(
            "UPDATE faces f SET cluster = v.label FROM unnest(%s::int8[], %s::int8[]) AS v(id, label) WHERE f.id = v.id",
            (list(latest), list(latest.values())),
        )
        return cur.rowcount

    def face_table(self) -> FaceMatrix:
        """Every face, in one snapshot, ascending by id: one binary COPY, parsed by numpy."""
        with self._transaction(write=False) as conn:
            tag = self._model(conn)
            if tag is None:  # no model, no embedding column, no face
                return face_matrix([], [], [], [], np.zeros((0, 0), np.float32))
            data = bytearray()
            query = (
                "COPY (SELECT id, photo_id, COALESCE(quality, 1.0)::float8,"
                f" COALESCE(cluster, {NOT_CLUSTERED})::int8, embedding FROM faces ORDER BY id)"
                " TO STDOUT (FORMAT BINARY)"
            )
            with conn.raw.cursor() as cur, cur.copy(query) as copy:
                for block in copy:
                    data += block
        return _parse_face_copy(memoryview(data), tag.dim, self.location)

    def _erase_forgotten(self) -> tuple[str, str | None]:
        """Rewrite the clusters table, so the name's dead row version leaves its file."""
        with self._lock:  # autocommit, no transaction open: VACUUM cannot run inside one
            try:
                self._db.execute("VACUUM (FULL) clusters")
            except psycopg.Error as exc:
                return "", (
                    f"the clusters table could not be rewritten ({_scrubbed(exc, self.url)}): the old name stays "
                    f"in its free space until a VACUUM FULL; {WAL_KEPT}"
                )
        return "VACUUM FULL rewrote the collection's clusters table without the old names", WAL_KEPT


def _parse_face_copy(data: memoryview, dim: int, where: str) -> FaceMatrix:
    """A FaceMatrix from ``COPY ... (FORMAT BINARY)`` of (id, photo_id, quality, cluster, embedding)
    rows: every field is of fixed size, so the rows are one numpy record array."""
    row = np.dtype(
        [("n", ">i2"), ("l0", ">i4"), ("id", ">i8"), ("l1", ">i4"), ("photo", ">i8"), ("l2", ">i4"),
         ("quality", ">f8"), ("l3", ">i4"), ("cluster", ">i8"), ("l4", ">i4"), ("dim", ">u2"), ("pad", ">u2"),
         ("embedding", ">f4", (dim,))]
    )  # fmt: skip
    if bytes(data[: len(_COPY_HEADER)]) != _COPY_HEADER:
        raise CollectionError(f"collection {where}: the server's COPY output is not PostgreSQL's binary format")
    start = len(_COPY_HEADER) + 8 + int.from_bytes(data[len(_COPY_HEADER) + 4 : len(_COPY_HEADER) + 8], "big")
    body = data[start:-2]  # the trailer is one int16, -1
    if len(body) % row.itemsize:
        raise CollectionError(f"collection {where}: unexpected layout of the faces' COPY output")
    rows = np.frombuffer(body, dtype=row)
    if rows.size and not ((rows["n"] == 5).all() and (rows["l4"] == 4 + 4 * dim).all() and (rows["dim"] == dim).all()):
        raise CollectionError(f"collection {where}: faces of another dimension than the bound model's {dim}")
    return face_matrix(
        rows["id"], rows["photo"], rows["quality"], rows["cluster"], rows["embedding"].astype(np.float32)
    )
