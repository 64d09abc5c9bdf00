"""Private people: hidden from keys without the private permission, everywhere the service names
people (lists, a photo's faces, identifications, thumbnails), and the flag kept in both stores.

The service is test_server_collection's (real photo files, a real collection, a fake analyzer
that reads faces from the pixels): A, B and C are one cluster each; A is named "Ada" and made private.
"""

from __future__ import annotations

import sqlite3
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
from conftest import PG_MISSING
from fastapi.testclient import TestClient
from test_server_collection import FakeAnalyzer, cluster_id, clustered, make_service, service  # noqa: F401
from typer.testing import CliRunner

from faceatlas.gallery import sqlite_store
from faceatlas.gallery.store import FaceRecord, ModelTag, PersonNotFoundError, open_store
from faceatlas.server.app import create_app
from faceatlas.server.keys import APPLICATION_ID, KeyStore, hash_token
from faceatlas.server.settings import Settings

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.skipif(bool(PG_MISSING), reason=PG_MISSING or "-"))]


@pytest.fixture
def private_ada(clustered):  # noqa: F811
    """A named "Ada" and made private (by an admin); keys: read, write, admin, and read/write + private."""
    svc = clustered
    keys = svc.client.app.state.keys
    svc.tokens["read+private"] = keys.create("private reader", "read", private=True)[1]
    svc.tokens["write+private"] = keys.create("private writer", "write", private=True)[1]
    svc.ada = cluster_id(svc, "A")
    named = svc.ok("PATCH", f"/v1/collection/clusters/{svc.ada}", json={"name": "Ada"})
    assert named["enrolled"] > 0
    svc.ok("PATCH", f"/v1/collection/clusters/{cluster_id(svc, 'B')}", json={"name": "Bob"})
    # a write key that may not see private people may not mark them either (before any lookup)
    refused = svc.call("PUT", f"/v1/collection/clusters/{svc.ada}/private", json={"private": True})
    assert refused.status_code == 403, refused.text
    marked = svc.ok("PUT", f"/v1/collection/clusters/{svc.ada}/private", scope="admin", json={"private": True})
    assert marked == {"name": "Ada", "private": True, "clusters": [svc.ada], "gallery": True}
    return svc


def a_photo(svc) -> bytes:
    return (svc.root / "a0.png").read_bytes()


def test_a_read_key_without_the_permission_sees_no_private_person(private_ada):
    svc, ada = private_ada, private_ada.ada
    a_faces, group = svc.faces_of("A"), svc.photo_of[svc.faces_of("B")[-1]]  # B's last face: the group photo's
    assert svc.photo_of[a_faces[-1]] == group

    # lists
    clusters = svc.ok("GET", "/v1/collection/clusters", scope="read")
    assert ada not in {c["id"] for c in clusters["clusters"]} and clusters["total"] == 2
    assert [p["name"] for p in svc.ok("GET", "/v1/people", scope="read")["people"]] == ["Bob"]
    # its own URLs: the same 404 as for something that never existed
    for url in (f"/v1/collection/clusters/{ada}", "/v1/people/Ada", "/v1/people/Ada/faces"):
        answer = svc.call("GET", url, scope="read")
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found", (url, answer.text)
    missing = svc.call("GET", "/v1/collection/clusters/999", scope="read").json()["error"]["message"]
    hidden = svc.call("GET", f"/v1/collection/clusters/{ada}", scope="read").json()["error"]["message"]
    assert hidden == missing.replace("999", str(ada))
    assert svc.call("GET", f"/v1/collection/photos?cluster={ada}", scope="read").status_code == 404
    # a photo's faces, and its count of faces
    detail = svc.ok("GET", f"/v1/collection/photos/{group}", scope="read")
    assert [f["id"] for f in detail["faces"]] == [svc.faces_of("B")[-1]]
    assert all(f["cluster_name"] != "Ada" for f in detail["faces"])
    listed = {p["id"]: p for p in svc.ok("GET", "/v1/collection/photos", scope="read")["photos"]}
    assert listed[group]["faces"] == 1 and listed[svc.photo_of[a_faces[0]]]["faces"] == 0
    # thumbnails
    for face in a_faces:
        assert svc.call("GET", f"/v1/collection/faces/{face}/thumbnail", scope="read").status_code == 404
    assert svc.call("GET", f"/v1/collection/faces/{svc.faces_of('B')[0]}/thumbnail", scope="read").status_code == 200
    # identification: answered as unknown, the name nowhere in the answer
    answer = svc.call("POST", "/v1/identify", scope="read", files={"image": ("a0.png", a_photo(svc), "image/png")})
    assert answer.status_code == 200 and "Ada" not in answer.text
    (result,) = answer.json()["results"]
    assert result["person"] is None and result["score"] is None
    assert all(c["score"] < result["threshold"] for c in result["candidates"])
    # verifying against a private person's enrolled face: as if there were no such face
    gallery = svc.client.app.state.engine.gallery()
    ada_face, _ = gallery.faces_of("Ada")[0]
    bob_face, _ = gallery.faces_of("Bob")[0]
    form = {"face_a": str(ada_face), "face_b": str(bob_face)}
    refused = svc.call("POST", "/v1/verify", scope="read", data=form)
    assert refused.status_code == 404, refused.text
    assert refused.json()["error"]["message"] == f"no face with id {ada_face} in the gallery"
    assert svc.call("POST", "/v1/verify", scope="read+private", data=form).status_code == 200
    # corrections by a write key without the permission: as if the cluster did not exist
    write = svc.call("PATCH", f"/v1/collection/clusters/{ada}", json={"name": "Someone"})
    assert write.status_code == 404
    assert svc.call("POST", f"/v1/collection/faces/{a_faces[0]}/not-this-person").status_code == 404
    assert svc.call("PATCH", "/v1/people/Ada", json={"name": "Eve"}).status_code == 404
    assert svc.call("DELETE", "/v1/people/Ada").status_code == 404


@pytest.mark.parametrize("scope", ["read+private", "admin"])
def test_a_permitted_key_sees_private_people(private_ada, scope):
    svc, ada = private_ada, private_ada.ada
    clusters = {c["id"]: c for c in svc.ok("GET", "/v1/collection/clusters", scope=scope)["clusters"]}
    assert clusters[ada]["private"] is True and clusters[ada]["name"] == "Ada"
    people = {p["name"]: p for p in svc.ok("GET", "/v1/people", scope=scope)["people"]}
    assert people["Ada"]["private"] is True and people["Bob"]["private"] is False
    assert svc.ok("GET", f"/v1/collection/clusters/{ada}", scope=scope)["private"] is True
    assert svc.call("GET", f"/v1/collection/faces/{svc.faces_of('A')[0]}/thumbnail", scope=scope).status_code == 200
    group = svc.photo_of[svc.faces_of("B")[-1]]
    assert len(svc.ok("GET", f"/v1/collection/photos/{group}", scope=scope)["faces"]) == 2
    answer = svc.ok("POST", "/v1/identify", scope=scope, files={"image": ("a0.png", a_photo(svc), "image/png")})
    assert answer["results"][0]["person"] == "Ada"


def test_unmarking_by_name_with_a_permitted_write_key_shows_the_person_again(private_ada):
    svc = private_ada
    assert svc.call("PUT", "/v1/people/Ada/private", json={"private": False}).status_code == 403
    assert (
        svc.call("PUT", "/v1/people/Nobody/private", scope="write+private", json={"private": True}).status_code == 404
    )
    done = svc.ok("PUT", "/v1/people/Ada/private", scope="write+private", json={"private": False})
    assert done == {"name": "Ada", "private": False, "clusters": [svc.ada], "gallery": True}
    assert "Ada" in {p["name"] for p in svc.ok("GET", "/v1/people", scope="read")["people"]}
    assert svc.ok("GET", f"/v1/collection/clusters/{svc.ada}", scope="read")["private"] is False


def test_a_private_gallery_person_hides_the_cluster_of_that_name_too(private_ada):
    """Fail safe: the flags out of step (the cluster unmarked alone) still hide the person."""
    svc = private_ada
    with svc.client.app.state.engine.collection() as store:
        store.set_private(svc.ada, False)  # the gallery person stays private
    assert svc.ada not in {c["id"] for c in svc.ok("GET", "/v1/collection/clusters", scope="read")["clusters"]}
    assert svc.call("GET", f"/v1/collection/clusters/{svc.ada}", scope="read").status_code == 404


def test_with_auth_off_private_people_are_hidden_unless_show_private(tmp_path):
    svc = make_service(tmp_path)
    with svc.client:
        svc.index()
        svc.cluster()
        svc.learn_faces()
        ada = cluster_id(svc, "A")
        svc.ok("PATCH", f"/v1/collection/clusters/{ada}", json={"name": "Ada"})
        svc.ok("PUT", f"/v1/collection/clusters/{ada}/private", scope="admin", json={"private": True})
    for show, seen in ((False, False), (True, True)):
        settings = Settings(data_dir=tmp_path / "data", rate_limit_per_minute=0, auth=False, show_private=show)
        with TestClient(create_app(settings, analyzer_factory=FakeAnalyzer), raise_server_exceptions=False) as client:
            ids = {c["id"] for c in client.get("/v1/collection/clusters").json()["clusters"]}
            assert (ada in ids) is seen
            assert ("Ada" in {p["name"] for p in client.get("/v1/people").json()["people"]}) is seen
            # the anonymous admin may mark people private only where it may see them
            status = client.put(f"/v1/collection/clusters/{ada}/private", json={"private": True}).status_code
            assert status == (200 if show else 403)


def test_video_job_results_and_stream_events_name_no_private_person(private_ada):
    from faceatlas.server.routes.video import _visible
    from faceatlas.server.streams import Event

    svc = private_ada
    tracks = [
        {"track": 1, "person": "Ada", "score": 0.9, "threshold": 0.5,
         "candidates": [{"person": "Ada", "score": 0.9}, {"person": "Bob", "score": 0.6}, {"person": "Cy", "score": 0.2}]},
        {"track": 2, "person": "Bob", "score": 0.8, "threshold": 0.5, "candidates": [{"person": "Ada", "score": 0.3}]},
    ]  # fmt: skip
    job = svc.client.app.state.jobs.submit("video", {}, lambda ctx: {"tracks": tracks, "people": ["Ada", "Bob"]})
    deadline = time.monotonic() + 10
    while svc.ok("GET", f"/v1/jobs/{job.id}", scope="read")["state"] != "done":
        assert time.monotonic() < deadline
    hidden = svc.ok("GET", f"/v1/jobs/{job.id}", scope="read")["result"]
    assert "Ada" not in str(hidden) and hidden["people"] == ["Bob"]
    first, second = hidden["tracks"]
    assert (first["person"], first["score"], first["candidates"]) == (None, None, [{"person": "Cy", "score": 0.2}])
    assert second["person"] == "Bob" and second["candidates"] == []
    assert "Ada" not in str(svc.ok("GET", "/v1/jobs", scope="read"))
    assert svc.ok("GET", f"/v1/jobs/{job.id}", scope="read+private")["result"]["tracks"] == tracks

    seen = Event(7, "person_seen", {"id": 7, "kind": "person_seen", "person": "Ada", "score": 0.9, "track": 3})
    shown = _visible(seen, frozenset({"Ada"}))
    assert (shown.kind, shown.data["person"], shown.data["score"]) == ("unknown_person", None, None)
    assert "Ada" not in shown.sse() and _visible(seen, frozenset()) is seen


# --- the stores ---------------------------------------------------------------------------------------


def unit(seed: int, dim: int = 8) -> np.ndarray:
    vec = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return vec / np.linalg.norm(vec)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gallery_private_flag_set_merged_exported_and_imported(backend, tmp_path, request):
    url = str(tmp_path / "g.db") if backend == "sqlite" else request.getfixturevalue("pg_url")
    with open_store(url) as store:
        store.bind_model(ModelTag("m", "1", 8))
        for seed, name in enumerate(("ada", "bob", "cy")):
            store.add_faces(store.add_person(name), [FaceRecord(unit(seed), 0.9, f"s{seed}")])
        assert not store.get_person("ada").private
        version = store.version()
        store.set_private("ada", True)
        assert store.get_person("ada").private and store.version() == version + 1
        store.set_private("ada", True)  # no change: no new version
        assert store.version() == version + 1
        with pytest.raises(PersonNotFoundError):
            store.set_private("nobody", True)
        store.merge_people("ada", "bob")  # the merged person shows ada's faces: private too
        assert store.get_person("bob").private and not store.get_person("cy").private
        rows = list(store.export_rows())
    assert [r.get("private", False) for r in rows if r["kind"] == "person"] == [True, False]
    with open_store(tmp_path / "copy.db") as copy:
        copy.import_rows(rows)
        assert {p.name: p.private for p in copy.list_people()} == {"bob": True, "cy": False}


def test_a_gallery_file_of_the_previous_schema_is_upgraded(tmp_path, monkeypatch):
    path = tmp_path / "old.db"
    with monkeypatch.context() as patch:
        patch.setattr(sqlite_store, "MIGRATIONS", sqlite_store.MIGRATIONS[:2])  # as faceatlas wrote it before
        with open_store(path) as old:
            old.bind_model(ModelTag("m", "1", 8))
    with sqlite3.connect(path) as raw:  # a person and a face, in the rows of that schema
        raw.execute("INSERT INTO people (name) VALUES ('ada')")
        raw.execute(
            "INSERT INTO faces (person_id, embedding, quality, source) VALUES (1, ?, 0.9, 's')", (unit(1).tobytes(),)
        )
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 2
    with open_store(path) as store:
        (ada,) = store.list_people()
        assert (ada.name, ada.n_faces, ada.private) == ("ada", 1, False)
        store.set_private("ada", True)
        assert store.get_person("ada").private
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 3


def test_a_key_file_of_the_previous_schema_is_upgraded(tmp_path):
    path, token = tmp_path / "keys.db", "fa_0123abcd_" + "x" * 43
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE api_keys (key_id TEXT PRIMARY KEY, name TEXT NOT NULL, scope TEXT NOT NULL"
        " CHECK (scope IN ('read', 'write', 'admin')), token_sha256 BLOB NOT NULL CHECK (length(token_sha256) = 32),"
        " created_at TEXT NOT NULL, last_used_at TEXT, revoked_at TEXT)"
    )
    conn.execute("INSERT INTO api_keys VALUES ('0123abcd', 'old', 'read', ?, '2026-01-01T00:00:00+00:00', NULL, NULL)",
                 (hash_token(token),))  # fmt: skip
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with KeyStore.open(path) as keys:
        old = keys.verify(token)
        assert old is not None and (old.name, old.private, old.sees_private) == ("old", False, False)
        record, new = keys.create("new", "read", private=True)
        assert record.private and keys.verify(new).sees_private
        admin, _ = keys.create("boss", "admin")
        assert not admin.private and admin.sees_private
        with pytest.raises(sqlite3.IntegrityError), sqlite3.connect(path) as raw:  # only 0 and 1
            raw.execute("UPDATE api_keys SET private = 2")


# --- the command line -----------------------------------------------------------------------------


def test_people_private_cli_marks_both_stores_and_refuses_an_unknown_name(tmp_path):
    from faceatlas.cli import app
    from faceatlas.collection.store import CollectionStore
    from faceatlas.server.keys_cli import app as keys_app

    gallery, db = tmp_path / "g.db", tmp_path / "c.db"
    with open_store(gallery) as store:
        store.bind_model(ModelTag("m", "1", 8))
        store.add_person("Ada")
    with CollectionStore.open(db) as collection:
        cid = collection.new_cluster("Ada")
    runner = CliRunner()
    where = ["--db", str(db), "--gallery", str(gallery)]
    result = runner.invoke(app, ["people", "private", "Ada", *where])
    assert result.exit_code == 0, result.output
    assert "private" in result.stdout and f"cluster {cid}" in result.stdout
    with open_store(gallery) as store, CollectionStore.open(db) as collection:
        assert store.get_person("Ada").private and collection.cluster(cid).private
    listed = runner.invoke(app, ["people", "list", "--db", str(gallery)])
    assert listed.exit_code == 0 and listed.stdout.splitlines() == ["Ada\t0\tprivate"]
    assert runner.invoke(app, ["people", "private", "Ada", "--off", *where]).exit_code == 0
    with open_store(gallery) as store:
        assert not store.get_person("Ada").private
    unknown = runner.invoke(app, ["people", "private", "Nobody", *where])
    assert unknown.exit_code != 0 and "Nobody" in unknown.output

    data = ["--data-dir", str(tmp_path / "data")]
    assert runner.invoke(keys_app, ["create", "viewer", "--scope", "read", "--private", *data]).exit_code == 0
    listed = runner.invoke(keys_app, ["list", *data])
    assert "read+private" in listed.stdout
