"""Photo libraries (issue 16): faces drawn by hand, detections removed, and what a photo analysed
again keeps of the user's work; capture times. Store tests run on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from faceatlas.collection import CollectionStore, NewPhoto
from faceatlas.collection.store import FaceExistsError, InvalidCorrectionError, PhotoNotFoundError
from faceatlas.errors import InvalidArgumentError
from faceatlas.gallery.store import ModelTag
from faceatlas.types import Box, Face, Landmarks, Pose, Quality

DIM = 16
ROOT = "/photos"


def face(x: float, direction: int, *, size: float = 40.0, noise: float = 0.0, seed: int = 0) -> Face:
    vector = np.zeros(DIM, np.float32)
    vector[direction] = 1.0
    vector += noise * np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return Face(
        box=Box(x, 10.0, x + size, 10.0 + size),
        score=0.99,
        landmarks=Landmarks(np.full((5, 2), x + size / 2)),
        pose=Pose(0.0, 0.0, 0.0),
        quality=Quality(0.9, 1, 1, 1, 1, 1),
        embedding=vector / np.linalg.norm(vector),
    )


def new_photo(path: str, faces: list[Face], *, sha: str = "a", width: int = 400, **kw) -> NewPhoto:
    return NewPhoto(path, ROOT, sha * 64, 100, 1, width, 300, faces, **kw)


@pytest.fixture
def store(collection_target):
    with CollectionStore.open(collection_target) as s:
        s.bind_model(ModelTag("fake", "1", DIM))
        yield s


def test_capture_time_and_origin_are_stored(store):
    (pid,) = store.add_photos([new_photo("a.jpg", [face(0, 0), face(100, 1)], taken_at="2019-07-14T10:30:05",
                                         origins=["detected", "region"])])  # fmt: skip
    assert store.photo(pid).taken_at == "2019-07-14T10:30:05"
    assert sorted(f.origin for f in store.faces_of_photo(pid)) == ["detected", "region"]
    with pytest.raises(Exception, match="capture time"):
        store.add_photos([new_photo("b.jpg", [], taken_at="last summer")])
    with pytest.raises(Exception, match="origin"):
        store.add_photos([new_photo("b.jpg", [face(0, 0)], origins=["guessed"])])


def test_a_drawn_face_is_added_refused_where_one_is_and_kept_by_a_new_analysis(store):
    (pid,) = store.add_photos([new_photo("a.jpg", [face(0, 0)])])
    drawn = store.add_face(pid, face(200, 3), origin="manual")
    assert (drawn.origin, drawn.photo_id, drawn.idx) == ("manual", pid, 1)
    with pytest.raises(FaceExistsError) as refused:
        store.add_face(pid, face(5, 4))  # on top of the detected face
    assert refused.value.face_id == store.faces_of_photo(pid)[0].id
    with pytest.raises(PhotoNotFoundError):
        store.add_face(pid + 99, face(200, 3))
    with pytest.raises(InvalidCorrectionError):
        store.add_face(pid, face(300, 3), origin="detected")

    # the bytes change (a metadata edit), the size does not: the analysis runs again
    (again,) = store.add_photos([new_photo("a.jpg", [face(0, 0), face(201, 5)], sha="b")])
    faces = store.faces_of_photo(again)
    assert [f.origin for f in faces] == ["detected", "manual"]  # the detection on the drawn face is dropped
    assert faces[1].box == drawn.box
    # a photo now of another size: the boxes would point elsewhere, so nothing is kept
    (resized,) = store.add_photos([new_photo("a.jpg", [face(0, 0)], sha="c", width=800)])
    assert [f.origin for f in store.faces_of_photo(resized)] == ["detected"]


def test_a_removed_detection_stays_removed(store):
    (pid,) = store.add_photos([new_photo("a.jpg", [face(0, 0), face(100, 1)])])
    false = next(f for f in store.faces_of_photo(pid) if f.box[0] == 100)
    assert store.remove_face(false.id).id == false.id
    assert store.rejected_boxes(pid) == [false.box]
    (again,) = store.add_photos([new_photo("a.jpg", [face(0, 0), face(102, 1)], sha="b")])
    assert [f.box[0] for f in store.faces_of_photo(again)] == [0]
    assert store.rejected_boxes(again) == [false.box]
    # drawing a face where a detection was removed takes the removal back
    store.add_face(again, face(101, 2))
    assert store.rejected_boxes(again) == []


def test_a_new_analysis_keeps_clusters_and_constraints_of_the_same_faces(store):
    (pid, other) = store.add_photos([new_photo("a.jpg", [face(0, 0), face(100, 1)]),
                                     new_photo("b.jpg", [face(0, 0)], sha="z")])  # fmt: skip
    a0, a1 = store.faces_of_photo(pid)
    (b0,) = store.faces_of_photo(other)
    store.set_clusters([a0.id, a1.id, b0.id], [7, 8, 7])
    store.name_cluster(7, "Ada")
    store.add_constraint(a0.id, b0.id, "must")
    store.add_constraint(a1.id, b0.id, "cannot")

    # re-encoded: the same faces at the same places, slightly other embeddings; plus a new face
    (again,) = store.add_photos([new_photo("a.jpg", [face(1, 0, noise=0.05), face(100, 1, noise=0.05, seed=1),
                                                     face(250, 6)], sha="b")])  # fmt: skip
    new = {f.box[0]: f for f in store.faces_of_photo(again)}
    assert (new[1].cluster, new[100].cluster, new[250].cluster) == (7, 8, None)
    must, cannot = store.constraints()
    assert sorted(map(tuple, must.tolist())) == [tuple(sorted((new[1].id, b0.id)))]
    assert sorted(map(tuple, cannot.tolist())) == [tuple(sorted((new[100].id, b0.id)))]
    assert store.cluster(7).name == "Ada"

    # another picture under the same name and size: other people, nothing carried over
    (other_pic,) = store.add_photos([new_photo("a.jpg", [face(0, 9), face(100, 10)], sha="c")])
    assert [f.cluster for f in store.faces_of_photo(other_pic)] == [None, None]
    assert store.constraints()[0].size == 0


def test_new_cluster_and_move_faces(store):
    (pid,) = store.add_photos([new_photo("a.jpg", [face(0, 0), face(100, 1)])])
    a0, a1 = store.faces_of_photo(pid)
    cid = store.new_cluster("Grace")
    assert store.cluster(cid).name == "Grace" and store.cluster(cid).n_faces == 0
    assert store.move_faces([a0.id], cid) == 1
    assert store.face(a0.id).cluster == cid
    with pytest.raises(Exception, match="already named"):
        store.new_cluster("Grace")
    with pytest.raises(Exception, match="no cluster"):
        store.move_faces([a1.id], cid + 50)
    store.set_private(cid, True)
    assert store.cluster(cid).private and next(c for c in store.clusters() if c.id == cid).private


def test_a_schema_2_file_is_upgraded(tmp_path):
    from faceatlas.collection.store import MIGRATIONS

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    MIGRATIONS[0](conn)
    MIGRATIONS[1](conn)
    conn.execute("PRAGMA user_version = 2")
    conn.execute("UPDATE collection SET model_name = 'fake', model_version = '1', model_dim = ?", (DIM,))
    conn.execute(
        "INSERT INTO photos (root, path, sha256, size, mtime_ns, width, height, status, indexed_at)"
        " VALUES ('/r', 'old.jpg', ?, 1, 1, 64, 64, 'ok', 'then')",
        ("c" * 64,),
    )
    conn.execute(
        "INSERT INTO faces (photo_id, idx, box, score, landmarks, quality, embedding)"
        " VALUES (1, 0, '[10, 10, 50, 50]', 0.9, '[]', 0.8, ?)",
        (face(0, 0).embedding.tobytes(),),
    )
    conn.execute("INSERT INTO clusters (id, name) VALUES (3, 'Ada')")
    conn.close()
    with CollectionStore.open(path) as store:
        (old,) = store.photos()
        assert old.taken_at is None and store.face(1).origin == "detected"
        assert store.cluster(3).private is False
        assert store.rejected_boxes(1) == [] and store.sidecars() == []


# --- a face drawn in a real photo ---------------------------------------------------------------


@pytest.fixture(scope="module")
def analyzer():
    from faceatlas.pipeline import FaceAnalyzer

    return FaceAnalyzer()


def test_face_at_finds_the_landmarks_of_the_face_drawn(analyzer):
    from skimage import data

    image = data.astronaut()
    (detected,) = analyzer.analyze(image)
    x1, y1, x2, y2 = detected.box.as_xyxy()
    loose = (x1 - 12, y1 + 6, x2 + 10, y2 - 4)  # drawn by hand: not the detector's box
    drawn = analyzer.face_at(image, loose)
    assert drawn.box.as_xyxy() == pytest.approx(loose)
    assert drawn.score > 0.9  # a detection was found in the box
    assert np.abs(drawn.landmarks.points - detected.landmarks.points).max() < 4
    assert float(drawn.embedding @ detected.embedding) > 0.95


def test_face_at_without_a_detection_aligns_from_the_box(analyzer):
    from skimage import data

    image = data.astronaut()
    (detected,) = analyzer.analyze(image)
    # a face turned into the dark: half the face, which the detector does not find
    dark = image.copy()
    x1, y1, x2, y2 = (int(v) for v in detected.box.as_xyxy())
    dark[y1:y2, x1 : (x1 + x2) // 2] = 0
    drawn = analyzer.face_at(dark, detected.box.as_xyxy())
    assert drawn.embedding is not None and drawn.embedding.shape == detected.embedding.shape
    assert drawn.quality is not None and drawn.pose is not None
    pts = drawn.landmarks.points
    assert np.all((pts[:, 0] > x1) & (pts[:, 0] < x2) & (pts[:, 1] > y1) & (pts[:, 1] < y2))


@pytest.mark.parametrize(
    "box", [(0, 0, 2, 2), (5000, 5000, 6000, 6000), (1, 2, 3), ("a", 1, 2, 3), (0, 0, float("nan"), 9)]
)
def test_face_at_refuses_a_box_with_no_face_sized_area(analyzer, box):
    from skimage import data

    with pytest.raises(InvalidArgumentError):
        analyzer.face_at(data.astronaut(), box)


# --- the CLI and the service -----------------------------------------------------------------------


@pytest.fixture
def photos(tmp_path, astronaut, grace_hopper):
    from PIL import Image

    root = tmp_path / "photos"
    root.mkdir()
    Image.fromarray(astronaut).save(root / "eileen.jpg", quality=92)
    Image.fromarray(grace_hopper).save(root / "grace.jpg", quality=92)
    return root


def test_faces_add_remove_and_list_on_the_command_line(photos, tmp_path, analyzer):
    from typer.testing import CliRunner

    from faceatlas.cli import app
    from faceatlas.collection import index_folder

    db = tmp_path / "c.db"
    with CollectionStore.open(db) as store:
        index_folder(photos, store, analyzer)
        (face,) = store.faces_of_photo(next(p.id for p in store.photos() if p.path == "eileen.jpg"))
    box = ",".join(f"{v:.1f}" for v in face.box)
    run = CliRunner().invoke
    result = run(app, ["faces", "remove", str(face.id), "--db", str(db)])
    assert result.exit_code == 0 and f"face {face.id} removed" in result.output
    result = run(app, ["faces", "add", str(photos / "eileen.jpg"), "--box", box, "--person", "Eileen Collins",
                       "--db", str(db)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "landmarks found in the box" in result.output and "'Eileen Collins'" in result.output
    again = run(app, ["faces", "add", str(photos / "eileen.jpg"), "--box", box, "--db", str(db)])
    assert again.exit_code == 3 and "already there" in again.output
    listed = run(app, ["faces", "list", str(photos / "eileen.jpg"), "--db", str(db)])
    assert "manual" in listed.output and "Eileen Collins" in listed.output
    assert run(app, ["faces", "add", str(photos / "eileen.jpg"), "--box", "1,2,3", "--db", str(db)]).exit_code == 2
    missing = run(app, ["faces", "add", str(tmp_path / "nope.jpg"), "--box", box, "--db", str(db)])
    assert missing.exit_code == 3 and "not a photo of collection" in missing.output
    # the drawn face, and the removed detection, hold when the photo is analysed again
    from PIL import Image

    Image.open(photos / "eileen.jpg").save(photos / "eileen.jpg", quality=80)  # new bytes, same size
    with CollectionStore.open(db) as store:
        index_folder(photos, store, analyzer)
        (kept,) = store.faces_of_photo(next(p.id for p in store.photos() if p.path == "eileen.jpg"))
        assert kept.origin == "manual" and store.cluster(kept.cluster).name == "Eileen Collins"


def test_faces_by_hand_over_http(photos, tmp_path, analyzer):
    from fastapi.testclient import TestClient

    from faceatlas.collection import index_folder
    from faceatlas.server.app import create_app
    from faceatlas.server.settings import Settings

    settings = Settings(data_dir=tmp_path / "data", rate_limit_per_minute=0, photo_roots=[photos])
    app = create_app(settings, analyzer_factory=lambda: analyzer)
    keys = {scope: app.state.keys.create(f"test {scope}", scope)[1] for scope in ("read", "write")}
    with CollectionStore.open(settings.collection_path) as store:
        index_folder(photos, store, analyzer)
        pid = next(p.id for p in store.photos() if p.path == "grace.jpg")
        (face,) = store.faces_of_photo(pid)
    auth = {scope: {"Authorization": f"Bearer {token}"} for scope, token in keys.items()}
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.delete(f"/v1/collection/faces/{face.id}", headers=auth["read"]).status_code == 403
        assert client.delete(f"/v1/collection/faces/{face.id}", headers=auth["write"]).status_code == 204
        assert client.delete(f"/v1/collection/faces/{face.id}", headers=auth["write"]).status_code == 404
        assert client.get(f"/v1/collection/photos/{pid}", headers=auth["read"]).json()["faces"] == []
        body = {"box": list(face.box), "person": "Grace Hopper"}
        drawn = client.post(f"/v1/collection/photos/{pid}/faces", json=body, headers=auth["write"])
        assert drawn.status_code == 201, drawn.text
        out = drawn.json()
        assert (out["origin"], out["cluster_name"]) == ("manual", "Grace Hopper")
        twice = client.post(f"/v1/collection/photos/{pid}/faces", json=body, headers=auth["write"])
        assert twice.status_code == 409 and twice.json()["error"]["code"] == "face_exists"
        outside = client.post(f"/v1/collection/photos/{pid}/faces", json={"box": [9000, 9000, 9100, 9100]},
                              headers=auth["write"])  # fmt: skip
        assert outside.status_code == 400 and "no face-sized area" in outside.json()["error"]["message"]
        assert client.post("/v1/collection/photos/999/faces", json=body, headers=auth["write"]).status_code == 404
        assert client.post(f"/v1/collection/photos/{pid}/faces", json={"box": [1, 2]},
                           headers=auth["write"]).status_code == 422  # fmt: skip
        (photos / "grace.jpg").write_bytes((photos / "eileen.jpg").read_bytes())  # another file now
        changed = client.post(f"/v1/collection/photos/{pid}/faces", json={"box": [10, 10, 60, 60]},
                              headers=auth["write"])  # fmt: skip
        assert changed.status_code == 409 and changed.json()["error"]["code"] == "photo_changed"


def test_takeout_names_of_group_photos_go_to_the_cluster_recurring_across_them(tmp_path):
    import json as _json

    from PIL import Image

    from faceatlas.collection.names_import import import_takeout

    folder = tmp_path / "Takeout"
    folder.mkdir()
    people = {"g1.jpg": ["Ada"], "g2.jpg": ["Ada"], "g3.jpg": ["Ada"], "solo.jpg": ["Bob"], "t1.jpg": ["Cy"],
              "t2.jpg": ["Cy"]}  # fmt: skip
    for name, names in people.items():
        Image.new("RGB", (400, 300)).save(folder / name)
        meta = {"title": name, "photoTakenTime": {"timestamp": "1"}, "people": [{"name": n} for n in names]}
        (folder / f"{name}.json").write_text(_json.dumps(meta))
    with CollectionStore.open(tmp_path / "c.db") as store:
        store.bind_model(ModelTag("fake", "1", DIM))
        rows = [NewPhoto(f"g{i}.jpg", str(folder), f"{i}" * 64, 1, 1, 400, 300, [face(0, 0), face(100, 1 + i)])
                for i in (1, 2, 3)]  # Ada beside a different stranger in each
        rows.append(NewPhoto("solo.jpg", str(folder), "4" * 64, 1, 1, 400, 300, [face(0, 8)]))
        rows += [NewPhoto(f"t{i}.jpg", str(folder), f"{5 + i}" * 64, 1, 1, 400, 300, [face(0, 9), face(100, 10)])
                 for i in (1, 2)]  # two people in both photos: a tie, never guessed  # fmt: skip
        ids = store.add_photos(rows)
        labels = {0: 5, 2: 6, 3: 7, 4: 8, 9: 10, 10: 11}
        faces = [f for pid in ids for f in store.faces_of_photo(pid)]
        direction = {f.id: int(np.argmax(store.face_table().embeddings[list(store.face_table().face_ids).index(f.id)]))
                     for f in faces}  # fmt: skip
        store.set_clusters([f.id for f in faces if direction[f.id] in labels],
                           [labels[direction[f.id]] for f in faces if direction[f.id] in labels])  # fmt: skip
        report = import_takeout(store, folder)
        assert (report.tagged, report.resolved_by_clusters) == (2, 1)  # Bob (one face), Ada (cluster 5)
        assert store.cluster(5).name == "Ada"
        assert {c.name for c in store.clusters() if c.name} == {"Ada", "Bob"}
        assert report.unresolved == 2  # Cy's two photos: two clusters tie
