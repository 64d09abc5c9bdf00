"""Deleting a person removes their name everywhere faceatlas stored it, byte for byte: the gallery
(SQLite and PostgreSQL), the collection's cluster names, through the library, the CLI and the API;
and what it cannot erase it says, with why.

The byte checks read the files themselves: the SQLite file with its -wal and -shm, and for
PostgreSQL every file of the database's directory on the test server (after a CHECKPOINT, so the
pages are on disk). Each check first sees the bytes while they are there, so it cannot pass by
reading the wrong place. The deleted person is the one enrolled last: their rows are the lowest on
their pages, where a plain VACUUM leaves them (no live row is moved over them).
"""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import numpy as np
import pytest
from conftest import PG_MISSING

from faceatlas.collection.forget import forget_person
from faceatlas.collection.store import CollectionStore
from faceatlas.gallery.gallery import Gallery
from faceatlas.gallery.store import FaceRecord, ModelTag, PersonNotFoundError, open_store
from faceatlas.types import Box, Face, Landmarks, Pose, Quality

DIM = 32
TAG = ModelTag("test_model", "1", DIM)
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.skipif(bool(PG_MISSING), reason=PG_MISSING))]


def unit(seed: int) -> np.ndarray:
    vec = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return vec / np.linalg.norm(vec)


def fake_face(seed: int) -> Face:
    return Face(
        box=Box(10, 10, 50, 50),
        score=0.99,
        landmarks=Landmarks(np.full((5, 2), 30.0)),
        pose=Pose(0.0, 0.0, 0.0),
        quality=Quality(0.9, 1, 1, 1, 1, 1),
        embedding=unit(seed),
    )


class Photos:
    """A collection of two people, one face per photo, clustered and named: ``keep`` (3 photos,
    cluster 8) and ``name`` (2 photos, cluster 7); both enrolled into ``gallery`` if one is given,
    ``keep`` first."""

    def __init__(self, store: CollectionStore, gallery: Gallery | None, name: str, seed: int) -> None:
        store.bind_model(TAG)
        faces: dict[str, list[int]] = {"keep": [], name: []}
        for n, who in enumerate(["keep"] * 3 + [name] * 2):
            photo = store.add_photo(
                f"p{n}.jpg", "/photos", f"{seed:032x}{n:032x}", 100, n, 64, 64, [fake_face(seed + n)]
            )
            faces[who] += [f.id for f in store.faces_of_photo(photo)]
        self.cluster, self.kept_cluster = 7, 8
        store.set_clusters(faces[name] + faces["keep"], [7] * 2 + [8] * 3)
        store.name_cluster(8, "keep")
        store.name_cluster(7, name)
        self.embedding = unit(seed + 3)  # a face of the deleted person
        self.source = f"{seed:032x}{3:032x}#0"  # how enroll_named names where a gallery face came from
        if gallery is not None:
            summary = store.enroll_named(gallery)
            assert summary.added == {"keep": 3, name: 2}


def unique_name() -> str:
    """A name no other test's leftovers contain (the PostgreSQL server is shared by the session)."""
    return f"Zelda Quixote-Marmaduke {uuid.uuid4().hex[:10]}"


def sqlite_bytes(path: Path) -> bytes:
    files = (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
    return b"".join(f.read_bytes() for f in files if f.exists())


def postgres_bytes(url: str) -> bytes:
    """Every file of the gallery's database on the server, pages written out first."""
    import psycopg

    from faceatlas.gallery.postgres_store import split_schema

    with psycopg.connect(split_schema(url)[0], autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        data_dir = Path(conn.execute("SHOW data_directory").fetchone()[0])
        oid = conn.execute("SELECT oid FROM pg_database WHERE datname = current_database()").fetchone()[0]
    folder = data_dir / "base" / str(oid)
    if not folder.is_dir():
        pytest.skip(f"the test server's data directory {folder} is not readable here")
    return b"".join(f.read_bytes() for f in folder.iterdir() if f.is_file())


def postgres_wal(url: str) -> bytes:
    import psycopg

    from faceatlas.gallery.postgres_store import split_schema

    with psycopg.connect(split_schema(url)[0], autocommit=True) as conn:
        data_dir = Path(conn.execute("SHOW data_directory").fetchone()[0])
    return b"".join(f.read_bytes() for f in (data_dir / "pg_wal").iterdir() if f.is_file())


@pytest.fixture(params=BACKENDS)
def gallery_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "gallery.db")
    return request.getfixturevalue("pg_url")


def gallery_bytes(url: str) -> bytes:
    return postgres_bytes(url) if "://" in url else sqlite_bytes(Path(url))


# --- the library ----------------------------------------------------------------------------------


def test_delete_leaves_no_trace_in_the_gallery_or_the_collection(gallery_url: str, tmp_path: Path) -> None:
    name = unique_name()
    collection_path = tmp_path / "collection.db"
    with CollectionStore.open(collection_path) as collection, Gallery(open_store(gallery_url)) as gallery:
        photos = Photos(collection, gallery, name, seed=11)
        collection._db.execute("PRAGMA wal_checkpoint(PASSIVE)")  # the name in the file and in the WAL
        traces = (name.encode(), photos.embedding.tobytes(), photos.source.encode())
        before = gallery_bytes(gallery_url)
        assert all(trace in before for trace in traces)  # the test sees them while they are there
        assert name.encode() in collection_path.read_bytes()
        assert name.encode() in collection_path.with_name("collection.db-wal").read_bytes()

        report = forget_person(name, gallery, collection, keep_faces=True)

        assert (report.faces, report.clusters) == (2, (photos.cluster,))
        assert [p.name for p in gallery.people()] == ["keep"] and gallery.store.get_person("keep").n_faces == 3
        assert collection.cluster(photos.cluster).name is None and collection.cluster(photos.cluster).n_faces == 2
        assert collection.cluster(photos.kept_cluster).name == "keep"
        on_disk = gallery_bytes(gallery_url)
        assert [trace for trace in traces if trace in on_disk] == []
        assert name.encode() not in sqlite_bytes(collection_path)
        assert photos.embedding.tobytes() in sqlite_bytes(collection_path)  # the faces stay in the collection
    if "://" in gallery_url:
        from faceatlas.gallery.postgres_store import WAL_KEPT

        assert report.kept == (WAL_KEPT,)  # what it cannot erase, it says
        assert name.encode() in postgres_wal(gallery_url)  # and that is true: the WAL still has it
        assert any("VACUUM FULL rewrote people, changes, faces" in line for line in report.erased)
    else:
        assert report.kept == ()
    lines = report.lines()
    assert lines[0] == f"removed {name!r} from gallery {report.gallery}: 2 face(s)"
    assert f"unnamed cluster {photos.cluster} in collection {collection_path} (its faces stay clustered)" in lines


def test_a_name_only_in_the_collection_or_nowhere(tmp_path: Path) -> None:
    with CollectionStore.open(tmp_path / "c.db") as collection, Gallery(open_store(tmp_path / "g.db")) as gallery:
        Photos(collection, None, "only clustered", seed=3)  # named, never enrolled
        report = forget_person("only clustered", gallery, collection, keep_faces=True)
        assert (report.faces, report.clusters) == (None, (7,))
        assert report.lines()[0] == f"'only clustered' was not in gallery {tmp_path / 'g.db'}"
        with pytest.raises(PersonNotFoundError, match="no person named 'nobody'"):
            forget_person("nobody", gallery, collection, keep_faces=True)
        with pytest.raises(PersonNotFoundError, match="no cluster of collection"):
            forget_person("nobody", None, collection, keep_faces=True)
        alone = forget_person("keep", None, collection, keep_faces=True)  # no gallery: the collection alone
        assert alone.clusters == (8,)


def test_photo_paths_that_contain_the_name_are_kept_and_said(tmp_path: Path) -> None:
    with CollectionStore.open(tmp_path / "c.db") as collection:
        Photos(collection, None, "Ada", seed=5)
        collection.add_photo("Ada/beach.jpg", "/photos", "ab" * 32, 1, 1, 64, 64, [fake_face(99)])
        report = forget_person("Ada", None, collection, keep_faces=True)
    assert report.clusters == (7,)
    assert report.kept == (
        (
            "1 photo path(s) in the collection contain 'Ada': they are the names of your files or folders, which "
            "faceatlas does not change (rename them, then index again)"
        ),
    )


def test_a_busy_collection_wal_is_said(tmp_path: Path) -> None:
    """Another connection reading an older snapshot keeps the WAL: the delete says so, and a later
    checkpoint (once the reader is done) erases the name."""
    path = tmp_path / "c.db"
    with CollectionStore.open(path) as collection:
        Photos(collection, None, "Ada", seed=7)
    with CollectionStore(path, timeout=0.2) as collection:
        reader = sqlite3.connect(path, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM clusters").fetchone()  # holds its snapshot
        report = forget_person("Ada", None, collection, keep_faces=True)
        assert report.clusters == (7,) and len(report.kept) == 1
        assert "kept its WAL in use" in report.kept[0] and str(tmp_path) not in report.kept[0]
        reader.execute("COMMIT")
        reader.close()
        assert collection.empty_wal() is None
        assert b"Ada" not in sqlite_bytes(path)


# --- PostgreSQL: what compaction erases, and what it says it kept -----------------------------------

postgres = pytest.mark.skipif(bool(PG_MISSING), reason=PG_MISSING)


@postgres
def test_postgres_without_full_compaction_the_name_goes_and_the_faces_wait(pg_url: str, tmp_path: Path) -> None:
    name = unique_name()
    with CollectionStore.open(tmp_path / "c.db") as collection, Gallery(open_store(pg_url)) as gallery:
        photos = Photos(collection, gallery, name, seed=21)
        report = forget_person(name, gallery, collection, full=False, keep_faces=True)
        on_disk = postgres_bytes(pg_url)
        assert name.encode() not in on_disk  # people were rewritten
        assert photos.embedding.tobytes() in on_disk  # the faces table was not: as the report says
        assert any("faces table was not rewritten" in line for line in report.kept)
        later = gallery.store.compact()
        assert later.kept == (report.kept[-1],)  # only the WAL sentence
        assert photos.embedding.tobytes() not in postgres_bytes(pg_url)


@postgres
def test_postgres_compaction_says_what_an_older_transaction_kept(pg_url: str, tmp_path: Path) -> None:
    import psycopg

    from faceatlas.gallery.postgres_store import split_schema

    name = unique_name()
    with CollectionStore.open(tmp_path / "c.db") as collection, Gallery(open_store(pg_url)) as gallery:
        Photos(collection, gallery, name, seed=31)
        with psycopg.connect(split_schema(pg_url)[0], autocommit=True) as other, other.transaction():
            other.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            other.execute("SELECT 1").fetchone()  # a snapshot from before the delete (no table touched)
            report = forget_person(name, gallery, collection, keep_faces=True)
            assert any("could still see them" in line and "people" in line for line in report.kept)
            assert name.encode() in postgres_bytes(pg_url)  # the report was right
        assert len(gallery.store.compact().kept) == 1  # that transaction has ended: only the WAL remains
        assert name.encode() not in postgres_bytes(pg_url)


@postgres
def test_postgres_compaction_gives_up_on_a_table_in_use(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    from faceatlas.gallery import postgres_store

    monkeypatch.setattr(postgres_store, "COMPACT_LOCK_TIMEOUT_MS", 200)
    name = unique_name()
    with Gallery(open_store(pg_url)) as gallery:
        gallery.store.bind_model(TAG)
        gallery.store.add_faces(gallery.store.add_person(name), [FaceRecord(unit(41), 0.9, "x.jpg")])
        other = psycopg.connect(postgres_store.split_schema(pg_url)[0], autocommit=True)
        with other, other.transaction():
            other.execute(f'SELECT COUNT(*) FROM "{gallery.store.schema}".faces').fetchone()  # holds its lock
            report = forget_person(name, gallery, keep_faces=True)
        assert report.kept[0] == (
            "the faces table was not rewritten: another session held it for over 0.2 s; the next compaction "
            "erases its deleted rows"
        )
        assert report.erased == ("VACUUM FULL rewrote people, changes (and their indexes) without the deleted rows",)


# --- the CLI and the API --------------------------------------------------------------------------


def test_cli_people_delete_says_what_it_did_in_each_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from faceatlas.cli import app

    gallery_path, collection_path = tmp_path / "g.db", tmp_path / "c.db"
    with CollectionStore.open(collection_path) as collection, Gallery(open_store(gallery_path)) as gallery:
        Photos(collection, gallery, "Ada Lovelace", seed=51)
    monkeypatch.delenv("FACEATLAS_GALLERY", raising=False)
    monkeypatch.setenv("FACEATLAS_COLLECTION", str(collection_path))  # found by default, not named
    runner = CliRunner()
    done = runner.invoke(app, ["people", "delete", "Ada Lovelace", "--db", str(gallery_path)])
    assert done.exit_code == 0, done.output
    assert done.output.splitlines() == [
        f"removed 'Ada Lovelace' from gallery {gallery_path}: 2 face(s)",
        f"unnamed cluster 7 in collection {collection_path} (its faces stay clustered)",
        "erased: SQLite's secure_delete zeroed the deleted rows in the gallery file",
        "erased: the gallery's WAL was checkpointed and emptied",
        "erased: SQLite's secure_delete zeroed the cluster names in the collection file; its WAL was emptied",
    ]
    assert b"Ada Lovelace" not in sqlite_bytes(gallery_path) + sqlite_bytes(collection_path)

    monkeypatch.setenv("FACEATLAS_COLLECTION", str(tmp_path / "none.db"))  # a default that is not there
    keep = runner.invoke(app, ["people", "delete", "keep", "--db", str(gallery_path)])
    assert keep.exit_code == 0 and keep.output.splitlines()[-1] == (
        f"no collection at {tmp_path / 'none.db'}: no cluster names to clear"
    )
    named = runner.invoke(
        app, ["people", "delete", "x", "--db", str(gallery_path), "--collection", str(tmp_path / "no")]
    )
    assert named.exit_code == 3 and "no collection" in named.output and "Traceback" not in named.output
    again = runner.invoke(app, ["people", "delete", "Ada Lovelace", "--db", str(gallery_path)])
    assert again.exit_code == 3 and "no person named 'Ada Lovelace'" in again.output


def test_api_delete_unnames_the_cluster_and_says_so(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from faceatlas.server.app import create_app
    from faceatlas.server.settings import Settings

    name = "Grace Brewster Hopper"
    with CollectionStore.open(tmp_path / "collection.db") as collection:
        with Gallery(open_store(tmp_path / "gallery.db")) as gallery:
            Photos(collection, gallery, name, seed=61)
        collection.set_clusters([1], [9])  # one face of "keep" into a cluster named, never enrolled
        collection.name_cluster(9, "only clustered")
    app = create_app(Settings(data_dir=tmp_path, rate_limit_per_minute=0), analyzer_factory=lambda: None)
    token = {"Authorization": f"Bearer {app.state.keys.create('test', 'admin')[1]}"}
    with TestClient(app, raise_server_exceptions=False) as client:
        deleted = client.delete(f"/v1/people/{name}", headers=token)
        assert deleted.status_code == 200, deleted.text
        assert deleted.json() == {"deleted": name, "faces": 2, "clusters": [7], "kept": []}  # old fields first
        assert client.get("/v1/collection/clusters/7", headers=token).json()["name"] is None
        assert name.encode() not in sqlite_bytes(tmp_path / "collection.db") + sqlite_bytes(tmp_path / "gallery.db")
        only = client.delete("/v1/people/only clustered", headers=token).json()
        assert only == {"deleted": "only clustered", "faces": 0, "clusters": [9], "kept": []}
        assert client.delete("/v1/people/nobody", headers=token).status_code == 404
