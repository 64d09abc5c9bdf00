"""Videos in the photo collection (issue 15): a video's faces are tracks with a time, they join the
clusters of the same people's photos, crops come from the frame at that time, and the service and
the web UI play the moment a face appears.

A real folder: a 3.5 s clip (320x240, OpenCV's mp4v) of a real face moving, a photo of the same
person, another person's photo and clip (VP8 WebM, which Chromium plays), and a corrupt video. The
faces are LFW's when /work/shared/data holds it (two different photos of one person), else
scikit-image's astronaut and matplotlib's Grace Hopper. The real models run (``analyzer`` fixture).
"""

from __future__ import annotations

import io
import re
import shutil
import socket
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_data
from PIL import Image

from faceatlas.collection import CollectionStore, index_folder
from faceatlas.collection.grouping import cluster_collection
from faceatlas.collection.store import NewPhoto, VideoMoment
from faceatlas.gallery.store import ModelTag
from faceatlas.types import Box, Face, Landmarks, Pose, Quality

cv2 = pytest.importorskip("cv2")

W, H, FPS, FRAMES = 320, 240, 10, 35  # 3.5 s
CLIP, OTHER_CLIP = "clips/walk.mp4", "clips/other.webm"


# --- the folder -----------------------------------------------------------------------------------


def _people() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(face for the clip, another photo of that person, another person's photo, a face for the second clip)."""
    for part in ("source", "tracker", "tracking"):  # what indexing a video runs (the store tests need none)
        pytest.importorskip(f"faceatlas.video.{part}", reason=f"faceatlas.video.{part} is not there yet")
    lfw = shared_data("lfw_devtest", "images")
    if (lfw / "Donald_Rumsfeld").is_dir() and (lfw / "John_Bolton").is_dir():
        one, other = (
            [np.asarray(Image.open(path).convert("RGB")) for path in sorted((lfw / name).iterdir())[:2]]
            for name in ("Donald_Rumsfeld", "John_Bolton")
        )
        head, photo = (slice(40, 210), slice(50, 200)), (slice(25, 225), slice(25, 225))  # 250x250, face centred
        return one[0][head], one[1][photo], other[0][photo], other[1][head]
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image provides the test face")
    import matplotlib.cbook

    astronaut = skimage_data.astronaut()
    hopper = np.asarray(Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    return astronaut[20:260, 120:330], astronaut[:300, 60:400], hopper[:480, 20:500], hopper[40:420, 60:460]


def _resized(image: np.ndarray, height: int) -> np.ndarray:
    width = round(image.shape[1] * height / image.shape[0])
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))


def write_clip(path: Path, face: np.ndarray, fourcc: str) -> Path:
    """The face sliding left to right over a grey gradient (it moves 4 px a frame)."""
    face = _resized(face, 136)
    fh, fw = face.shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), FPS, (W, H))
    assert writer.isOpened(), f"OpenCV cannot write {fourcc}"
    for i in range(FRAMES):
        canvas = np.full((H, W, 3), 100, np.uint8)
        canvas[:, :, 1] = np.linspace(70, 130, W, dtype=np.uint8)[None, :]
        x = min(10 + 4 * i, W - fw)
        canvas[50 : 50 + fh, x : x + fw] = face
        writer.write(cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("videos") / "photos"
    walker, still, other, other_walker = _people()
    write_clip(root / CLIP, walker, "mp4v")
    write_clip(root / OTHER_CLIP, other_walker, "VP80")
    Image.fromarray(still).save(root / "still.jpg")
    Image.fromarray(other).save(root / "other.jpg")
    (root / "clips" / "broken.mov").write_bytes(b"\x00\x00\x00\x18ftypqt  " + b"not a movie" * 50)
    return root


class Counting:
    """The analyzer, counting the frames and photos it is given."""

    def __init__(self, analyzer) -> None:
        self.inner, self.embedder, self.calls = analyzer, analyzer.embedder, 0

    def analyze(self, image):
        self.calls += 1
        return self.inner.analyze(image)


@pytest.fixture(scope="module")
def indexed(folder, analyzer, tmp_path_factory):
    """(store, first report) of the folder indexed and clustered once."""
    with CollectionStore.open(tmp_path_factory.mktemp("db") / "c.db") as store:
        report = index_folder(folder, store, analyzer)
        cluster_collection(store)
        yield store, report


def _faces_of(store, path: str):
    photo = next(p for p in store.photos() if p.path == path)
    return photo, store.faces_of_photo(photo.id)


# --- indexing -------------------------------------------------------------------------------------


def test_a_video_is_one_row_its_tracks_are_faces_with_times(indexed):
    store, report = indexed
    assert (report.new, report.unreadable, report.videos) == (4, 1, 3)
    assert report.tracks == 2  # one person walking in each clip
    assert "videos: 3, with 2 face track(s)" in str(report)
    video, faces = _faces_of(store, CLIP)
    assert (video.kind, video.width, video.height, video.status) == ("video", W, H, "ok")
    assert video.duration == pytest.approx(FRAMES / FPS, abs=0.15)
    assert len(faces) == 1
    face = faces[0]
    assert face.start is not None and face.end is not None and face.time is not None
    assert 0 <= face.start <= face.time <= face.end <= video.duration
    assert face.end - face.start >= 2.5  # followed the whole walk: one track, not one face per frame
    photo, (still,) = _faces_of(store, "still.jpg")
    assert photo.kind == "photo" and still.time is None and still.start is None and photo.duration is None


def test_a_video_face_joins_the_cluster_of_the_same_persons_photo(indexed):
    store, _ = indexed
    (_, (walker,)), (_, (still,)) = _faces_of(store, CLIP), _faces_of(store, "still.jpg")
    (_, (other_walker,)), (_, others) = _faces_of(store, OTHER_CLIP), _faces_of(store, "other.jpg")
    assert walker.cluster is not None and walker.cluster >= 0
    assert walker.cluster == still.cluster
    assert other_walker.cluster == others[0].cluster != walker.cluster


def test_a_corrupt_video_is_kept_as_unreadable_and_an_unchanged_folder_reads_nothing(indexed, folder, analyzer):
    store, report = indexed
    broken, faces = _faces_of(store, "clips/broken.mov")
    assert broken.kind == "video" and broken.status.startswith("unreadable: ") and faces == []
    assert "broken.mov" in broken.status and "/proc/" not in broken.status  # names the file, not a descriptor
    assert [path for path, _ in report.problems] == ["clips/broken.mov"]
    counting = Counting(analyzer)
    again = index_folder(folder, store, counting)
    assert (again.new, again.changed, again.unchanged, again.faces_added, counting.calls) == (0, 0, 5, 0, 0)


def test_a_changed_video_is_indexed_again_and_a_moved_one_keeps_its_faces(folder, analyzer, tmp_path):
    root = tmp_path / "photos"
    shutil.copytree(folder / "clips", root)
    with CollectionStore.open(tmp_path / "c.db") as store:
        index_folder(root, store, analyzer)
        (_, (before,)) = _faces_of(store, "walk.mp4")
        (root / "walk.mp4").rename(root / "renamed.mp4")
        moved = index_folder(root, store, analyzer)
        (_, (after,)) = _faces_of(store, "renamed.mp4")
        assert moved.moved == 1 and (after.id, after.time) == (before.id, before.time)
        walker, *_ = _people()
        write_clip(root / "renamed.mp4", walker[:, ::-1].copy(), "mp4v")  # other bytes: analysed again
        changed = index_folder(root, store, analyzer)
        assert (changed.changed, changed.videos, changed.tracks) == (1, 1, 1)


def test_a_video_cut_short_keeps_the_faces_before_the_damage_and_says_so(analyzer, tmp_path):
    walker, *_ = _people()
    clip = write_clip(tmp_path / "photos" / "cut.avi", walker, "MJPG")
    data = clip.read_bytes()
    clip.write_bytes(data[: len(data) * 2 // 3])  # a copy that stopped two thirds in
    with CollectionStore.open(tmp_path / "c.db") as store:
        report = index_folder(clip.parent, store, analyzer)
        video, faces = _faces_of(store, "cut.avi")
        assert video.status == "ok" and len(faces) == 1 and faces[0].end < 2.8
        ((path, why),) = report.problems
        assert path == "cut.avi" and why.startswith("partly read: ") and "truncated" in why


def test_a_video_analysed_downscaled_keeps_its_boxes_in_its_own_pixels(analyzer, tmp_path, monkeypatch):
    """Frames over max_pixels are analysed smaller (4K, 8K): boxes are stored at the video's size."""
    from faceatlas.video import source

    walker, *_ = _people()
    clip = write_clip(tmp_path / "photos" / "walk.mp4", walker, "mp4v")
    real = source.open_video
    monkeypatch.setattr(source, "open_video", lambda path, **kw: real(path, max_pixels=W * H // 4, **kw))
    with CollectionStore.open(tmp_path / "c.db") as store:
        index_folder(clip.parent, store, analyzer)
        video, (face,) = _faces_of(store, "walk.mp4")
    assert (video.width, video.height) == (W, H)
    x1, y1, x2, y2 = face.box
    width = _resized(walker, 136).shape[1]
    left = min(10 + 4 * round(face.time * FPS), W - width)  # where write_clip put the face then
    assert abs((x1 + x2) / 2 - (left + width / 2)) < 25 and 50 < (y1 + y2) / 2 < 186 and x2 - x1 > 50


def test_the_frame_of_a_video_face_is_read_back_for_crops_and_the_contact_sheet(indexed, tmp_path):
    from faceatlas.collection.html import export_html
    from faceatlas.collection.video import read_frame

    store, _ = indexed
    video, (face,) = _faces_of(store, CLIP)
    frame = read_frame(video.file, face.time)
    assert frame.shape == (H, W, 3) and frame.dtype == np.uint8
    x1, y1, x2, y2 = (round(v) for v in face.box)
    assert frame[y1:y2, x1:x2].std() > 20  # a face there, not the flat background
    export = export_html(store, tmp_path / "sheet")
    assert not export.missing and export.thumbnails >= 5
    assert f"walk.mp4#t={face.time:.2f}" in export.index.read_text()  # the link starts the video there


# --- clustering: once per photo, once per moment of a video ---------------------------------------

DIM = 8


def _face(direction: int) -> Face:
    vector = np.zeros(DIM, np.float32)
    vector[direction] = 1.0
    return Face(
        box=Box(10, 10, 50, 50),
        score=0.99,
        landmarks=Landmarks(np.full((5, 2), 30.0)),
        pose=Pose(0.0, 0.0, 0.0),
        quality=Quality(0.9, 1, 1, 1, 1, 1),
        embedding=vector,
    )


def test_reembed_moves_video_faces_to_another_model_from_their_frames(folder, analyzer, tmp_path):
    """`faceatlas reembed` re-embeds a video's faces in the frames they were seen at: none is
    listed as unreadable, none would be dropped."""
    import byo_graphs

    from faceatlas.pipeline import FaceAnalyzer
    from faceatlas.reembed.collection import plan_collection, reembed_collection

    toy = FaceAnalyzer(embedder=str(byo_graphs.arcface(tmp_path / "toy512.onnx"))).load()
    clips = tmp_path / "photos"
    shutil.copytree(folder / "clips", clips / "clips", ignore=shutil.ignore_patterns("broken.*"))
    with CollectionStore.open(tmp_path / "c.db") as store:
        index_folder(clips, store, analyzer)
        video_faces = [f for p in store.photos() for f in store.faces_of_photo(p.id)]
        assert video_faces and all(f.time is not None for f in video_faces)
        assert not plan_collection(store, toy).unusable
        report = reembed_collection(store, toy)
        assert report.switched and report.embedded == len(video_faces) and not report.removed
        table = store.face_table()
        assert table.embeddings.shape == (len(video_faces), 512)
        np.testing.assert_allclose(np.linalg.norm(table.embeddings, axis=1), 1.0, atol=1e-5)
        # each face embedded in its own frame: what the new model gives that frame's face
        face = store.face(int(table.face_ids[0]))
        photo = next(p for p in store.photos() if p.id == face.photo_id)
        from faceatlas.collection.video import read_frame

        frame = read_frame(clips / photo.path, face.time)
        fresh = max(toy.analyze(frame), key=lambda f: f.box.iou(Box(*face.box)))
        assert float(table.embeddings[0] @ fresh.embedding) > 0.99


def test_tracks_seen_together_are_two_people_tracks_apart_in_time_may_be_one(collection_target):
    """One person in three tracks of one video: the first two overlap (on screen together: two
    people, whatever their faces say), the third comes later; a photo of them too."""
    from faceatlas.clustering import FaceClusterer
    from faceatlas.collection.corrections import SharedPhotoError, merge_clusters

    moments = [VideoMoment(0.5, 0.0, 1.0, 1), VideoMoment(1.0, 0.8, 2.0, 2), VideoMoment(4.0, 3.0, 5.0, 3)]
    with CollectionStore.open(collection_target) as store:
        store.bind_model(ModelTag("fake", "1", DIM))
        video, _photo = store.add_photos(
            [
                NewPhoto("v.mp4", "/r", "a" * 64, 1, 1, 64, 64, [_face(0)] * 3, "ok", "video", 6.0, moments),
                NewPhoto("p.jpg", "/r", "b" * 64, 1, 1, 64, 64, [_face(0)]),
            ]
        )
        faces = store.faces_of_photo(video)
        assert [(f.idx, f.start, f.track) for f in faces] == [(0, 0.0, 1), (1, 0.8, 2), (2, 3.0, 3)]
        assert store.photo(video).kind == "video" and store.photo(video).duration == 6.0
        assert [t[0] for t in store.video_tracks()] == [f.id for f in faces]
        cluster_collection(store, FaceClusterer(threshold=0.5, min_quality=None))
        labels = [store.face(f.id).cluster for f in faces]
        assert labels[0] != labels[1]  # seen together
        assert labels[2] in labels[:2]  # later: the same person as one of them
        first, second = (store.face(f.id).cluster for f in faces[:2])
        with pytest.raises(SharedPhotoError):
            merge_clusters(store, second, first)  # they overlap in time: refused, as two faces of one photo


def test_occasions_give_video_faces_their_own_group_and_link_overlapping_tracks():
    from faceatlas.collection.grouping import occasions

    face_ids, photo_ids = np.array([1, 2, 3, 4, 5]), np.array([7, 7, 9, 9, 9])
    tracks = [(3, 9, 0.0, 2.0), (4, 9, 1.0, 1.5), (5, 9, 2.5, 3.0)]
    groups, pairs = occasions(face_ids, photo_ids, tracks, {int(f): i for i, f in enumerate(face_ids)})
    assert groups[0] == groups[1] == 7 and len(set(groups[2:].tolist())) == 3 and 7 not in groups[2:]
    assert pairs.tolist() == [[2, 3]]


# --- an old collection ----------------------------------------------------------------------------


def test_a_schema_1_sqlite_collection_is_upgraded_in_place(tmp_path):
    from faceatlas.collection.store import APPLICATION_ID, MIGRATIONS

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    MIGRATIONS[0](conn)  # the schema before videos
    conn.execute("PRAGMA user_version = 1")
    conn.execute("UPDATE collection SET model_name = 'fake', model_version = '1', model_dim = ?", (DIM,))
    conn.execute(
        "INSERT INTO photos (root, path, sha256, size, mtime_ns, width, height, status, indexed_at)"
        " VALUES ('/r', 'old.jpg', ?, 1, 1, 64, 64, 'ok', 'then')",
        ("c" * 64,),
    )
    conn.execute(
        "INSERT INTO faces (photo_id, idx, box, score, landmarks, quality, embedding)"
        " VALUES (1, 0, '[10, 10, 50, 50]', 0.9, '[]', 0.8, ?)",
        (_face(1).embedding.tobytes(),),
    )
    conn.close()
    with CollectionStore.open(path) as store:
        (old,) = store.photos()
        assert (old.kind, old.duration, old.n_faces) == ("photo", None, 1)
        assert store.face(1).time is None
        (video,) = store.add_photos([NewPhoto("v.mp4", "/r", "d" * 64, 1, 1, 64, 64, [_face(2)], "ok", "video", 2.0,
                                              [VideoMoment(1.0, 0.5, 1.5, 1)])])  # fmt: skip
        assert [f.time for f in store.faces_of_photo(video)] == [1.0]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) == 5
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    conn.close()


def test_a_schema_1_postgres_collection_is_upgraded_in_place(pg_url):
    import psycopg

    from faceatlas.collection.postgres_store import MIGRATIONS, split_collection_url

    conninfo, schema = split_collection_url(pg_url)
    with psycopg.connect(conninfo, autocommit=True) as conn, conn.transaction(), conn.cursor() as cur:
        cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
        MIGRATIONS[0](cur, f'"{schema}"')
        cur.execute(f'UPDATE "{schema}".collection SET schema_version = 1')
        cur.execute(
            f'INSERT INTO "{schema}".photos (root, path, sha256, size, mtime_ns, status, indexed_at)'
            " VALUES ('/r', 'old.jpg', %s, 1, 1, 'ok', 'then')",
            ("c" * 64,),
        )
    with CollectionStore.open(pg_url) as store:
        (old,) = store.photos()
        assert (old.kind, old.duration) == ("photo", None)
        store.bind_model(ModelTag("fake", "1", DIM))
        (video,) = store.add_photos([NewPhoto("v.mp4", "/r", "d" * 64, 1, 1, 64, 64, [_face(2)], "ok", "video", 2.0,
                                              [VideoMoment(1.0, 0.5, 1.5, 7)])])  # fmt: skip
        (face,) = store.faces_of_photo(video)
        assert (face.time, face.start, face.end, face.track) == (1.0, 0.5, 1.5, 7)
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(f'SELECT schema_version FROM "{schema}".collection').fetchone()
        assert row[0] == len(MIGRATIONS) == 5


# --- the service ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def service(folder, analyzer, tmp_path_factory):
    """(TestClient, read key, app) of a service that indexed and clustered the folder."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from faceatlas.server.app import create_app
    from faceatlas.server.settings import Settings

    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), rate_limit_per_minute=0, photo_roots=[folder])
    app = create_app(settings, analyzer_factory=lambda: analyzer)
    _, write = app.state.keys.create("test write", "write")
    _, read = app.state.keys.create("test read", "read")
    with TestClient(app, raise_server_exceptions=False) as client:
        auth = {"Authorization": f"Bearer {write}"}
        for kind, body in (("index", {"folder": str(folder)}), ("cluster", None)):
            job = client.post(f"/v1/jobs/{kind}", json=body, headers=auth).json()
            deadline = time.monotonic() + 60
            while job["state"] not in ("done", "failed", "cancelled"):
                assert time.monotonic() < deadline
                time.sleep(0.05)
                job = client.get(f"/v1/jobs/{job['id']}", headers=auth).json()
            assert job["state"] == "done", job
        yield client, read, app


def _video_id(client, key: str, path: str = CLIP) -> int:
    photos = client.get("/v1/collection/photos", headers={"Authorization": f"Bearer {key}"}).json()["photos"]
    return next(p["id"] for p in photos if p["path"] == path)


def test_the_service_describes_videos_and_crops_their_faces_from_the_frame(service):
    client, key, _ = service
    auth = {"Authorization": f"Bearer {key}"}
    photos = {p["path"]: p for p in client.get("/v1/collection/photos", headers=auth).json()["photos"]}
    assert photos[CLIP]["kind"] == "video" and photos[CLIP]["duration"] > 3 and photos["still.jpg"]["kind"] == "photo"
    detail = client.get(f"/v1/collection/photos/{photos[CLIP]['id']}", headers=auth).json()
    (face,) = detail["faces"]
    assert detail["kind"] == "video" and face["start"] <= face["time"] <= face["end"]
    cluster = client.get(f"/v1/collection/clusters/{face['cluster_id']}", headers=auth).json()
    assert {f["photo_id"] for f in cluster["faces"]} == {photos[CLIP]["id"], photos["still.jpg"]["id"]}
    thumb = client.get(f"/v1/collection/faces/{face['id']}/thumbnail", headers=auth)
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(thumb.content)).size == (160, 160)
    assert client.get(f"/v1/collection/photos/{photos[CLIP]['id']}/image", headers=auth).status_code == 415


def test_the_video_is_served_in_ranges_to_a_key_or_a_signed_link(service, folder):
    import hashlib
    import hmac

    client, key, app = service
    auth = {"Authorization": f"Bearer {key}"}
    video = _video_id(client, key)
    data = (folder / CLIP).read_bytes()
    whole = client.get(f"/v1/collection/photos/{video}/video", headers=auth)
    assert whole.status_code == 200 and whole.content == data and whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-type"] == "video/mp4"
    part = client.get(f"/v1/collection/photos/{video}/video", headers={**auth, "Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}" and part.headers["content-length"] == "100"
    tail = client.get(f"/v1/collection/photos/{video}/video", headers={**auth, "Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == data[-10:]
    open_ended = client.get(f"/v1/collection/photos/{video}/video", headers={**auth, "Range": "bytes=5-"})
    assert open_ended.status_code == 206 and open_ended.content == data[5:]
    beyond = client.get(f"/v1/collection/photos/{video}/video", headers={**auth, "Range": f"bytes={len(data)}-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(data)}"
    assert beyond.json()["error"]["code"] == "range_not_satisfiable"
    backwards = client.get(f"/v1/collection/photos/{video}/video", headers={**auth, "Range": "bytes=20-10"})
    assert backwards.status_code == 200 and backwards.content == data  # not a valid range: ignored

    assert client.get(f"/v1/collection/photos/{video}/video").status_code == 401  # neither key nor link
    link = client.get(f"/v1/collection/photos/{video}/video-link", headers=auth).json()
    assert link["url"].startswith(f"/v1/collection/photos/{video}/video?") and link["expires"] > time.time()
    signed = client.get(link["url"], headers={"Range": "bytes=0-15"})
    assert signed.status_code == 206 and signed.content == data[:16]
    assert client.get(link["url"].replace("sig=", "sig=0")).status_code == 401  # tampered
    assert client.get(f"/v1/collection/photos/{video}/video?expires={link['expires']}&sig=%C3%A9").status_code == 401
    past = int(time.time()) - 1
    old = hmac.new(app.state.video_link_key, f"{video}:{past}".encode(), hashlib.sha256).hexdigest()
    assert client.get(f"/v1/collection/photos/{video}/video?expires={past}&sig={old}").status_code == 401  # expired
    other = _video_id(client, key, OTHER_CLIP)
    assert client.get(link["url"].replace(f"photos/{video}/", f"photos/{other}/")).status_code == 401  # one video
    still = _video_id(client, key, "still.jpg")
    assert client.get(f"/v1/collection/photos/{still}/video", headers=auth).status_code == 404
    assert client.get(f"/v1/collection/photos/{still}/video-link", headers=auth).status_code == 404


# --- the web UI -----------------------------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")


def test_the_web_ui_plays_the_video_from_the_moment_a_face_appears(service):
    """A video's page starts at ?t= (a media fragment on a signed link), and a face's button seeks there."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")
    if not CHROMIUM.exists():
        pytest.skip(f"needs Chromium at {CHROMIUM} (apt-get install chromium)")
    import uvicorn

    from faceatlas.server.web import mount_web

    client, key, app = service
    mount_web(app)
    video = _video_id(client, key, OTHER_CLIP)  # VP8: what Chromium plays
    face = client.get(f"/v1/collection/photos/{video}", headers={"Authorization": f"Bearer {key}"}).json()["faces"][0]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox"])
            page = browser.new_context().new_page()
            page.set_default_timeout(10_000)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.add_init_script(f"sessionStorage.setItem('faceatlas.apiKey', {key!r})")
            page.goto(f"{url}#/photos/{video}?t=1.50")
            player = page.locator("video")
            sync_api.expect(player).to_have_attribute("src", re.compile(r"/video\?expires=\d+&sig=\w+#t=1\.50$"))
            page.wait_for_function("() => document.querySelector('video').readyState >= 1")
            assert page.evaluate("document.querySelector('video').currentTime") == pytest.approx(1.5, abs=0.05)
            assert page.evaluate("document.querySelector('video').duration") == pytest.approx(3.5, abs=0.2)
            page.get_by_role("button", name="Play from").first.click()
            page.wait_for_function(
                f"() => Math.abs(document.querySelector('video').currentTime - {face['time']}) < 0.3"
            )
            page.goto(f"{url}#/people/{face['cluster_id']}")
            page.get_by_role("link", name="Video 0:").click()  # the cluster's face links to its moment
            sync_api.expect(page.locator("video")).to_be_visible()
            assert page.evaluate("location.hash").startswith(f"#/photos/{video}?t=")
            browser.close()
        assert errors == []
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
