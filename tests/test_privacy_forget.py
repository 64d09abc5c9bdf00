"""Forgetting a person everywhere (issue 16, item 4), and exporting everything stored about one.

A small real collection: photos on disk, indexed with the fake analyzer of test_collection.py
(its faces' embeddings are known), clustered by who is in them, one person named with a
distinctive name, corrections on their faces, a sidecar faceatlas wrote, enrolled into a gallery.
Then ``forget_person``: faces, clusters and constraints are gone, a re-index does not bring the
person back, and the bytes on disk (SQLite file + WAL; PostgreSQL's relation files after VACUUM
FULL) hold neither the name nor any of the person's embeddings. Each byte check first sees the
bytes while they are there, so it cannot pass by reading the wrong place.
"""

from __future__ import annotations

import json
import uuid
import zipfile
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from conftest import PG_MISSING
from test_collection import DIRECTIONS, FakeAnalyzer, photo

from faceatlas.collection import CollectionStore, index_folder
from faceatlas.collection.export_person import ArchiveExistsError, export_person
from faceatlas.collection.forget import forget_person
from faceatlas.gallery.gallery import Gallery
from faceatlas.gallery.store import PersonNotFoundError, open_store

PERSON, OTHER, KEEP = 3, 4, 7  # who: FakeAnalyzer's people (face k of a photo is person who + k)


def unique_name() -> str:
    """A name no other test's rows contain (the PostgreSQL server is shared by the session)."""
    return f"Quenby Thistlewood-Ximenes {uuid.uuid4().hex[:8]}"


def sqlite_bytes(path: Path) -> bytes:
    files = (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
    return b"".join(f.read_bytes() for f in files if f.exists())


class Library:
    """Photos of the person (p0, p1, and p2 with OTHER beside them) and of KEEP (k0, k1), indexed,
    clustered by person (cluster id = FakeAnalyzer's person), the person named ``name``, KEEP named
    "keep"; corrections on the person's faces; a sidecar faceatlas wrote for p0."""

    def __init__(self, root: Path, store: CollectionStore, name: str, gallery: Gallery | None = None) -> None:
        self.root, self.name = root, name
        photo(root / "p0.png", 1, who=PERSON, tag=1)
        photo(root / "p1.png", 1, who=PERSON, tag=2)
        photo(root / "p2.png", 2, who=PERSON, tag=3)
        photo(root / "k0.png", 1, who=KEEP, tag=4)
        photo(root / "k1.png", 1, who=KEEP, tag=5)
        index_folder(root, store, FakeAnalyzer())
        table = store.face_table()
        labels = np.argmax(table.embeddings @ DIRECTIONS[:16].T, axis=1)
        store.set_clusters(table.face_ids, labels)
        store.name_cluster(PERSON, name)
        store.name_cluster(KEEP, "keep")
        self.faces = [f.id for f in store.cluster_faces(PERSON)]
        self.kept_faces = [f.id for f in store.cluster_faces(KEEP)]
        self.other_face = store.cluster_faces(OTHER)[0].id
        assert len(self.faces) == 3 and len(self.kept_faces) == 2
        rows = {int(i): row for i, row in zip(table.face_ids, table.embeddings, strict=True)}
        self.embeddings = [rows[f].tobytes() for f in self.faces]  # float32, as stored
        store.add_constraint(self.faces[0], self.faces[1], "must")
        store.add_constraint(self.faces[2], self.kept_faces[0], "cannot")
        store.add_constraint(self.kept_faces[0], self.kept_faces[1], "must")  # not the person's: stays
        self.sidecar: Path | None = None
        try:
            from faceatlas.xmp import Region, write_sidecar
        except ImportError:
            pass
        else:
            p0 = next(p for p in store.photos() if p.path == "p0.png")
            self.sidecar = write_sidecar(
                root / "p0.png",
                [Region((4, 10, 44, 50), name), Region((60, 60, 90, 90), "keep")],
                size=(96, 96),
            )
            store.record_sidecar(p0.id, str(self.sidecar))
        if gallery is not None:
            assert store.enroll_named(gallery).added == {name: 3, "keep": 2}


def faces_by_photo(store: CollectionStore) -> dict[str, int]:
    return {p.path: p.n_faces for p in store.photos()}


# --- the library, SQLite --------------------------------------------------------------------------


def test_forget_removes_the_person_everywhere_and_no_byte_of_them_stays(tmp_path: Path) -> None:
    name = unique_name()
    collection_path, gallery_path = tmp_path / "collection.db", tmp_path / "gallery.db"
    with CollectionStore.open(collection_path) as store, Gallery(open_store(gallery_path)) as gallery:
        lib = Library(tmp_path / "photos", store, name, gallery)
        store._db.execute("PRAGMA wal_checkpoint(PASSIVE)")  # in the file and in the WAL
        before = sqlite_bytes(collection_path)
        assert name.encode() in before and all(e in before for e in lib.embeddings)  # the check sees them
        assert name.encode() in sqlite_bytes(gallery_path)

        report = forget_person(f"  {name.upper()} ", gallery, store)  # case and spaces are ignored

        assert report.matched == (name,) and report.clusters == (PERSON,)
        assert (report.faces, report.collection_faces, report.constraints) == (3, 3, 2)
        assert [c.name for c in store.clusters() if c.name] == ["keep"]
        assert PERSON not in {c.id for c in store.clusters()}
        remaining = {int(f) for f in store.face_table().face_ids}
        assert not remaining & set(lib.faces) and set(lib.kept_faces) | {lib.other_face} <= remaining
        must, cannot = store.constraints()
        assert must.tolist() == [sorted(lib.kept_faces)] and cannot.tolist() == []
        assert [p.name for p in gallery.people()] == ["keep"]
        p0 = next(p for p in store.photos() if p.path == "p0.png")
        assert len(store.rejected_boxes(p0.id)) == 1  # a box, so a re-analysis does not bring them back
        on_disk = sqlite_bytes(collection_path) + sqlite_bytes(gallery_path)
        assert name.encode() not in on_disk
        assert [e for e in lib.embeddings if e in on_disk] == []
        assert store._db.execute("PRAGMA freelist_count").fetchone()[0] == 0  # vacuumed: no free page left
        if lib.sidecar is not None:
            assert report.sidecars == (str(lib.sidecar),)
            text = lib.sidecar.read_text(encoding="utf-8")
            assert name not in text and "keep" in text  # only the person's region went
        lines = report.lines()
        assert f"removed cluster(s) {PERSON} from collection {collection_path}: 3 face(s) with their embeddings, " \
            "2 correction(s)" in lines  # fmt: skip
        assert f"matched {name!r} (stored in another case or form than {f'  {name.upper()} '!r})" in lines
        kept = " ".join(report.kept)
        assert "no biometric data" in kept and "your photos" in kept and "max-age=3600" in kept
        assert not [line for line in report.kept if str(tmp_path) in line]  # kept sentences name no file

        with pytest.raises(PersonNotFoundError, match="nobody named"):
            forget_person(name, gallery, store)  # done: nobody of that name is left


def test_indexing_again_does_not_bring_the_person_back(tmp_path: Path) -> None:
    name = unique_name()
    path = tmp_path / "collection.db"
    with CollectionStore.open(path) as store:
        lib = Library(tmp_path / "photos", store, name)
        forget_person(name, None, store)
        counts = faces_by_photo(store)
        assert counts == {"k0.png": 1, "k1.png": 1, "p0.png": 0, "p1.png": 0, "p2.png": 1}
        again = index_folder(lib.root, store, FakeAnalyzer())  # unchanged photos: nothing is analysed
        assert (again.changed, again.faces_added) == (0, 0) and faces_by_photo(store) == counts
        photo(lib.root / "p1.png", 1, who=PERSON, tag=9)  # changed bytes, same size: analysed again
        photo(lib.root / "p2.png", 2, who=PERSON, tag=9)
        changed = index_folder(lib.root, store, FakeAnalyzer())
        assert changed.changed == 2
        assert faces_by_photo(store) == counts  # the person's detections fell on removed boxes: dropped
        table = store.face_table()
        person = DIRECTIONS[PERSON]
        assert float(np.max(table.embeddings @ person)) < 0.9  # no face of the person is stored again
        assert name.encode() not in sqlite_bytes(path)


def test_keep_faces_is_the_older_narrower_delete(tmp_path: Path) -> None:
    name = unique_name()
    with CollectionStore.open(tmp_path / "c.db") as store:
        lib = Library(tmp_path / "photos", store, name)
        report = forget_person(name, None, store, keep_faces=True)
        assert report.clusters == (PERSON,) and report.collection_faces is None
        assert {f.id for f in store.cluster_faces(PERSON)} == set(lib.faces)  # faces stay, unnamed
        assert report.lines()[0].startswith(f"unnamed cluster {PERSON}")


def test_a_sidecar_that_cannot_be_changed_is_reported_and_the_rest_goes_on(tmp_path: Path) -> None:
    pytest.importorskip("faceatlas.xmp")
    name = unique_name()
    with CollectionStore.open(tmp_path / "c.db") as store:
        lib = Library(tmp_path / "photos", store, name)
        broken = tmp_path / "photos" / "k0.png.xmp"
        broken.write_text("<x:xmpmeta this is not XML", encoding="utf-8")
        k0 = next(p for p in store.photos() if p.path == "k0.png")
        store.record_sidecar(k0.id, str(broken))
        report = forget_person(name, None, store)
        assert [path for path, _ in report.sidecar_problems] == [str(broken)]
        assert report.sidecars == (str(lib.sidecar),) and report.collection_faces == 3
        assert any(line.startswith(f"could not change sidecar {broken}: ") for line in report.lines())


# --- PostgreSQL: VACUUM FULL, and the tables' own files -------------------------------------------


def relation_bytes(url: str, schema: str) -> bytes:
    """Every file of every relation of the schema (tables, indexes, TOAST), pages written out first."""
    import psycopg

    from faceatlas.collection.postgres_store import split_collection_url

    with psycopg.connect(split_collection_url(url)[0], autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        data_dir = Path(conn.execute("SHOW data_directory").fetchone()[0])
        rows = conn.execute(
            "SELECT pg_relation_filepath(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relkind IN ('r', 'i', 't', 'm')"
            " UNION SELECT pg_relation_filepath(c.reltoastrelid) FROM pg_class c JOIN pg_namespace n"
            " ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.reltoastrelid != 0"
            " UNION SELECT pg_relation_filepath(i.indexrelid) FROM pg_class c JOIN pg_namespace n"
            " ON n.oid = c.relnamespace JOIN pg_index i ON i.indrelid = c.reltoastrelid WHERE n.nspname = %s",
            (schema, schema, schema),
        ).fetchall()
    paths = [data_dir / row[0] for row in rows if row[0]]
    if not paths or not paths[0].parent.is_dir():
        pytest.skip(f"the test server's data directory {data_dir} is not readable here")
    found = b""
    for path in paths:  # the main fork and its segments (.1, .2 ...); fsm/vm hold no row
        for part in [path, *sorted(path.parent.glob(path.name + ".[0-9]*"))]:
            if part.exists():
                found += part.read_bytes()
    return found


@pytest.mark.skipif(bool(PG_MISSING), reason=PG_MISSING or "testable")
def test_postgres_forget_rewrites_the_tables_and_their_files_hold_nothing_of_the_person(
    tmp_path: Path, pg_url: str
) -> None:
    name = unique_name()
    with CollectionStore.open(pg_url) as store:
        lib = Library(tmp_path / "photos", store, name)
        schema = store.schema
        before = relation_bytes(pg_url, schema)
        assert name.encode() in before and all(e in before for e in lib.embeddings)  # the check sees them

        report = forget_person(name, None, store)

        assert report.collection_faces == 3 and report.constraints == 2
        assert any("VACUUM FULL rewrote the collection's faces, constraints, clusters" in e for e in report.erased)
        assert any("write-ahead log" in k for k in report.kept)  # what it cannot erase, it says
        after = relation_bytes(pg_url, schema)
        assert name.encode() not in after
        assert [e for e in lib.embeddings if e in after] == []
        kept_embedding = store.face_table().embeddings[0].tobytes()
        assert kept_embedding in after  # the other people's faces are still there (the files were read)


# --- export-person --------------------------------------------------------------------------------


def test_export_person_writes_everything_stored_about_them(tmp_path: Path) -> None:
    name = unique_name()
    with CollectionStore.open(tmp_path / "c.db") as store, Gallery(open_store(tmp_path / "g.db")) as gallery:
        lib = Library(tmp_path / "photos", store, name, gallery)
        out = export_person(name.lower(), gallery, store, tmp_path / "ada.zip")
        with zipfile.ZipFile(out) as archive:
            names = set(archive.namelist())
            doc = json.loads(archive.read("person.json"))
            embeddings = np.load(BytesIO(archive.read("embeddings.npy")))
            gallery_embeddings = np.load(BytesIO(archive.read("gallery_embeddings.npy")))
            readme = archive.read("README.txt").decode()
        assert {"person.json", "embeddings.npy", "gallery_embeddings.npy", "README.txt"} <= names
        assert {f"faces/{f}.jpg" for f in lib.faces} <= names and doc["missing_crops"] == []
        assert doc["matched_names"] == [name] and doc["private"] is False
        assert [c["id"] for c in doc["clusters"]] == [PERSON]
        assert [f["id"] for f in doc["faces"]] == sorted(lib.faces)
        assert embeddings.dtype == np.float32 and embeddings.shape == (3, store.model().dim)
        by_id = dict(zip(lib.faces, lib.embeddings, strict=True))
        for face in doc["faces"]:
            assert embeddings[face["embedding_row"]].tobytes() == by_id[face["id"]]
            stored = store.face(face["id"])
            assert tuple(face["box_xyxy"]) == stored.box and face["photo"]["file"] == str(stored.file)
            assert len(face["landmarks"]) == 5 and face["origin"] == "detected" and face["pose"]["yaw"] == 0.0
        assert doc["collection_model"]["dim"] == embeddings.shape[1]
        pairs = {(c["face_a"], c["face_b"], c["kind"]) for c in doc["constraints"]}
        assert pairs == {(*sorted(lib.faces[:2]), "must"), (*sorted((lib.faces[2], lib.kept_faces[0])), "cannot")}
        (person,) = doc["gallery"]
        assert person["name"] == name and len(person["faces"]) == 3 == len(gallery_embeddings)
        assert all(np.isclose(np.linalg.norm(v), 1.0) for v in gallery_embeddings)
        assert "embeddings.npy" in readme and "biometric" in readme
        assert oct(out.stat().st_mode & 0o777) == "0o600"

        with pytest.raises(ArchiveExistsError, match="--force"):
            export_person(name, gallery, store, out)
        assert export_person(name, gallery, store, out, overwrite=True) == out
        with pytest.raises(PersonNotFoundError, match="nobody named 'Nobody'"):
            export_person("Nobody", gallery, store, tmp_path / "n.zip")
        assert not (tmp_path / "n.zip").exists() and not list(tmp_path.glob(".*.part"))


# --- the CLI and the API --------------------------------------------------------------------------


def test_cli_forget_asks_first_and_export_person(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from faceatlas.cli import app

    name = unique_name()
    collection_path, gallery_path = tmp_path / "c.db", tmp_path / "g.db"
    with CollectionStore.open(collection_path) as store, Gallery(open_store(gallery_path)) as gallery:
        Library(tmp_path / "photos", store, name, gallery)
    monkeypatch.delenv("FACEATLAS_GALLERY", raising=False)
    monkeypatch.delenv("FACEATLAS_COLLECTION", raising=False)
    where = ["--db", str(collection_path), "--gallery", str(gallery_path)]
    runner = CliRunner()
    archive = tmp_path / "out" / "p.zip"
    (tmp_path / "out").mkdir()
    exported = runner.invoke(app, ["export-person", name, "-o", str(archive), *where])
    assert exported.exit_code == 0, exported.output
    assert exported.output.strip() == f"wrote {archive}" and zipfile.is_zipfile(archive)
    again = runner.invoke(app, ["export-person", name, "-o", str(archive), *where])
    assert again.exit_code == 3 and "--force" in again.output
    assert runner.invoke(app, ["export-person", name, "-o", str(archive), "--force", *where]).exit_code == 0

    refused = runner.invoke(app, ["forget", name, *where], input="n\n")
    assert refused.exit_code == 0 and "nothing was changed" in refused.output
    assert f"cluster {PERSON} ({name!r}) with its faces" in refused.output
    done = runner.invoke(app, ["forget", name, *where, "--yes"])
    assert done.exit_code == 0, done.output
    assert done.output.splitlines()[0] == f"removed {name!r} from gallery {gallery_path}: 3 face(s)"
    assert any(line.startswith("kept: ") for line in done.output.splitlines())
    assert name.encode() not in sqlite_bytes(collection_path) + sqlite_bytes(gallery_path)
    nobody = runner.invoke(app, ["forget", name, *where, "--yes"])
    assert nobody.exit_code == 3 and "nobody named" in nobody.output and "Traceback" not in nobody.output


def test_api_forget_and_export(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from faceatlas.server.app import create_app
    from faceatlas.server.routes.collection import CACHE
    from faceatlas.server.settings import Settings

    assert "max-age=3600" in CACHE  # what the report tells of browsers' caches (forget.BROWSER_CACHE)
    name = unique_name()
    data = tmp_path / "data"
    data.mkdir()
    with CollectionStore.open(data / "collection.db") as store, Gallery(open_store(data / "gallery.db")) as gallery:
        lib = Library(tmp_path / "photos", store, name, gallery)
    settings = Settings(data_dir=data, rate_limit_per_minute=0, photo_roots=[tmp_path / "photos"])
    app = create_app(settings, analyzer_factory=lambda: None)
    tokens = {scope: app.state.keys.create(scope, scope)[1] for scope in ("write", "admin")}

    def auth(scope: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[scope]}"}

    thumbnail = f"/v1/collection/faces/{lib.faces[0]}/thumbnail"
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get(thumbnail, headers=auth("admin")).status_code == 200
        assert client.get(f"/v1/people/{name}/export", headers=auth("write")).status_code == 403
        exported = client.get(f"/v1/people/{name}/export", headers=auth("admin"))
        assert exported.status_code == 200 and exported.headers["content-type"] == "application/zip"
        with zipfile.ZipFile(BytesIO(exported.content)) as archive:
            doc = json.loads(archive.read("person.json"))
            assert {f"faces/{f}.jpg" for f in lib.faces} <= set(archive.namelist())
        assert [f["id"] for f in doc["faces"]] == sorted(lib.faces)

        assert client.post(f"/v1/people/{name}/forget", headers=auth("write")).status_code == 403
        forgot = client.post(f"/v1/people/{name}/forget", headers=auth("admin"))
        assert forgot.status_code == 200, forgot.text
        body = forgot.json()
        assert (body["gallery_faces"], body["clusters"], body["collection_faces"]) == (3, [PERSON], 3)
        assert client.get(thumbnail, headers=auth("admin")).status_code == 404  # gone at once
        assert client.post(f"/v1/people/{name}/forget", headers=auth("admin")).status_code == 404
        assert client.get(f"/v1/people/{name}/export", headers=auth("admin")).status_code == 404
    assert name.encode() not in sqlite_bytes(data / "collection.db") + sqlite_bytes(data / "gallery.db")
