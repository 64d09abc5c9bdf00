"""The photo collection over HTTP: index and cluster jobs, clusters, photos, thumbnails, and the
corrections (name, merge, split, not this person) as later cluster jobs see them.

Real photo files and a real collection file; a fake analyzer reads its faces from the pixels (as
in test_collection.py), so no model loads. Three people by colour: A in four photos, B in three,
C in three, and one group photo with A and B.
"""

from __future__ import annotations

import io
import os
import re
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from faceatlas.models.cards import DLIB_RESNET_CARD
from faceatlas.server.app import create_app
from faceatlas.server.settings import Settings
from faceatlas.types import Box, Face, Landmarks, Pose, Quality

DIM = 128
DIRECTIONS = np.linalg.qr(np.random.default_rng(1).normal(size=(DIM, DIM)))[0].astype(np.float32)
SIDE = 96  # photo size in pixels
TIMEOUT = 10.0  # seconds; every wait takes far less when things work
WHO = {"A": 1, "B": 2, "C": 5}  # person -> colour code (green // 25)


# --- a fake analyzer that reads its answer from the pixels (as in test_collection.py) ----------------


class FakeEmbedder:
    card = DLIB_RESNET_CARD
    dim = DIM


class FakeAnalyzer:
    """A photo's colour says what is in it: red // 50 faces, of people starting at green // 25.

    Face k is 40 - 8k pixels wide (so idx 0 is the largest), of person (who + k) % 16. With
    ``gate``, each analysis first sets ``entered`` and waits for the gate to open.
    """

    embedder = FakeEmbedder()

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.gate, self.entered = gate, threading.Event()

    def analyze(self, image: np.ndarray) -> list[Face]:
        if self.gate is not None:
            self.entered.set()
            assert self.gate.wait(TIMEOUT)
        red, green, _ = (int(v) for v in image[SIDE // 2, SIDE // 2])
        who = round(green / 25)
        faces = [self._face(k, who) for k in range(round(red / 50))]
        return faces[::-1]  # smallest first: the store orders them largest first

    @staticmethod
    def _face(k: int, who: int) -> Face:
        size = 40 - 8 * k
        x, y = 4 + 20 * k, 10 + 5 * k
        vector = DIRECTIONS[(who + k) % 16] + 0.05 * DIRECTIONS[16 + k]
        return Face(
            box=Box(x, y, x + size, y + size),
            score=0.99,
            landmarks=Landmarks(np.full((5, 2), x + size / 2)),
            pose=Pose(0.0, 0.0, 0.0),
            quality=Quality(0.9 if k < 2 else 0.2, 1, 1, 1, 1, 1),
            embedding=(vector / np.linalg.norm(vector)).astype(np.float32),
        )


def photo(path: Path, faces: int, who: int, tag: int) -> Path:
    """A flat-coloured image whose colour encodes its faces; ``tag`` makes equal photos differ."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.zeros((SIDE, SIDE, 3), np.uint8)
    pixels[...] = (50 * faces, 25 * who, tag)
    Image.fromarray(pixels).save(path, quality=95)
    return path


def make_photos(root: Path) -> None:
    tag = 0
    for person, count in (("A", 4), ("B", 3), ("C", 3)):
        for i in range(count):
            tag += 1
            photo(root / f"{person.lower()}{i}.png", 1, WHO[person], tag)
    photo(root / "trip" / "group.jpg", 2, WHO["A"], 200)  # A (the larger face) and B


# --- the service --------------------------------------------------------------------------------------


class Service:
    def __init__(self, client: TestClient, tokens: dict[str, str], root: Path) -> None:
        self.client, self.tokens, self.root = client, tokens, root
        self.person: dict[int, str] = {}  # face id -> "A", "B" or "C", once indexed
        self.photo_of: dict[int, int] = {}  # face id -> photo id

    def call(self, method: str, url: str, scope: str | None = "write", **kwargs):
        headers = kwargs.pop("headers", {})
        if scope is not None:
            headers["Authorization"] = f"Bearer {self.tokens[scope]}"
        return self.client.request(method, url, headers=headers, **kwargs)

    def ok(self, method: str, url: str, status: int = 200, **kwargs) -> dict:
        response = self.call(method, url, **kwargs)
        assert response.status_code == status, response.text
        return response.json()

    def wait(self, job: dict) -> dict:
        deadline = time.monotonic() + TIMEOUT
        while job["state"] not in ("done", "failed", "cancelled"):
            assert time.monotonic() < deadline, f"job {job['id']} did not finish: {job}"
            time.sleep(0.01)
            job = self.ok("GET", f"/v1/jobs/{job['id']}", scope="read")
        return job

    def index(self, folder: str | Path | None = None) -> dict:
        job = self.ok("POST", "/v1/jobs/index", 202, json={"folder": str(folder or self.root)})
        assert job["kind"] == "index" and job["state"] in ("queued", "running")
        return self.wait(job)

    def cluster(self, full: bool = False) -> dict:
        job = self.wait(self.ok("POST", "/v1/jobs/cluster", 202, json={"full": full}))
        assert job["state"] == "done", job
        return job

    def learn_faces(self) -> None:
        """Who each face is, from the photos' names (the group photo: A is face 0, B face 1)."""
        for p in self.ok("GET", "/v1/collection/photos", scope="read")["photos"]:
            faces = self.ok("GET", f"/v1/collection/photos/{p['id']}", scope="read")["faces"]
            for idx, face in enumerate(faces):
                name = Path(p["path"]).name
                self.photo_of[face["id"]] = p["id"]
                self.person[face["id"]] = ("A", "B")[idx] if name == "group.jpg" else name[0].upper()

    def faces_of(self, person: str) -> list[int]:
        return sorted(f for f, who in self.person.items() if who == person)

    def clusters(self) -> dict[int, dict]:
        return {c["id"]: c for c in self.ok("GET", "/v1/collection/clusters", scope="read")["clusters"]}

    def groups(self) -> set[frozenset[int]]:
        """Every cluster as the set of its face ids."""
        return {
            frozenset(f["id"] for f in self.ok("GET", f"/v1/collection/clusters/{cid}", scope="read")["faces"])
            for cid in self.clusters()
        }

    def cluster_of(self, face_id: int) -> int | None:
        for cid in self.clusters():
            faces = self.ok("GET", f"/v1/collection/clusters/{cid}", scope="read")["faces"]
            if face_id in {f["id"] for f in faces}:
                return cid
        return None


def make_service(tmp_path: Path, analyzer: FakeAnalyzer | None = None, roots: bool = True):
    root = tmp_path / "photos"
    make_photos(root)
    analyzer = analyzer or FakeAnalyzer()
    settings = Settings(data_dir=tmp_path / "data", rate_limit_per_minute=0, photo_roots=[root] if roots else [])
    app = create_app(settings, analyzer_factory=lambda: analyzer)
    tokens = {scope: app.state.keys.create(f"test {scope}", scope)[1] for scope in ("read", "write", "admin")}
    return Service(TestClient(app, raise_server_exceptions=False), tokens, root)


@pytest.fixture
def service(tmp_path):
    svc = make_service(tmp_path)
    with svc.client:
        yield svc


@pytest.fixture
def clustered(service):
    """The photos indexed and clustered: A, B and C are one cluster each."""
    service.index()
    service.cluster()
    service.learn_faces()
    assert service.groups() == {frozenset(service.faces_of(p)) for p in "ABC"}
    return service


def constraints(svc: Service) -> tuple[int, int]:
    """(must-links, cannot-links) stored in the collection."""
    from faceatlas.collection import CollectionStore

    with CollectionStore.open(svc.client.app.state.settings.collection_path, create=False) as store:
        must, cannot = store.constraints()
    return len(must), len(cannot)


def cluster_id(svc: Service, person: str) -> int:
    (cid,) = {svc.cluster_of(f) for f in svc.faces_of(person)}
    return cid


# --- jobs -----------------------------------------------------------------------------------------


def test_index_and_cluster_jobs_end_to_end(service):
    (service.root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    job = service.index()
    assert job["state"] == "done" and job["error"] is None and job["params"] == {"folder": str(service.root)}
    result = job["result"]
    assert (result["new"], result["unreadable"], result["faces_added"]) == (11, 1, 12)
    assert [p["path"] for p in result["problems"]] == ["broken.jpg"] and job["done"] == job["total"] == 12
    assert job["started_at"] >= job["created_at"] and job["finished_at"] >= job["started_at"]

    waiting = service.ok("GET", "/v1/collection/clusters", scope="read")
    assert waiting == {"clusters": [], "total": 0}  # nothing clustered yet

    job = service.cluster()
    assert job["params"] == {"full": False} and job["result"]["clusters"] == 3
    assert job["result"]["faces"] == 12 and job["result"]["unassigned"] == 0
    listed = service.ok("GET", "/v1/jobs", scope="read")["jobs"]
    assert [j["kind"] for j in listed] == ["cluster", "index"]  # newest first

    service.learn_faces()
    clusters = service.ok("GET", "/v1/collection/clusters", scope="read")
    assert clusters["total"] == 3 and [c["faces"] for c in clusters["clusters"]] == [5, 4, 3]
    for summary in clusters["clusters"]:
        detail = service.ok("GET", f"/v1/collection/clusters/{summary['id']}", scope="read")
        assert detail["id"] == summary["id"] and detail["name"] is None and summary["name"] is None
        assert len(detail["faces"]) == summary["faces"]
        assert summary["cover_face_id"] == detail["faces"][0]["id"]  # the best face
        qualities = [f["quality"] for f in detail["faces"]]
        assert qualities == sorted(qualities, reverse=True)
        assert {f["cluster_id"] for f in detail["faces"]} == {summary["id"]}
        assert len({service.person[f["id"]] for f in detail["faces"]}) == 1  # one person per cluster
        x1, y1, x2, y2 = detail["faces"][0]["box"]
        assert 0 <= x1 < x2 <= SIDE and 0 <= y1 < y2 <= SIDE
    page = service.ok("GET", "/v1/collection/clusters?limit=1&offset=1", scope="read")
    assert [c["id"] for c in page["clusters"]] == [clusters["clusters"][1]["id"]] and page["total"] == 3
    assert service.call("GET", "/v1/collection/clusters?limit=0", scope="read").status_code == 422
    assert service.call("GET", "/v1/collection/clusters?limit=1001", scope="read").status_code == 422

    again = service.index()["result"]
    assert (again["new"], again["unchanged"], again["faces_added"]) == (
        0,
        12,
        0,
    )  # the unreadable file too: not retried until it changes
    assert service.cluster()["result"]["new_clusters"] == 0


def test_cancel_a_queued_and_a_running_job(tmp_path):
    gate = threading.Event()
    analyzer = FakeAnalyzer(gate)
    svc = make_service(tmp_path, analyzer)
    with svc.client:
        running = svc.ok("POST", "/v1/jobs/index", 202, json={"folder": str(svc.root)})
        assert analyzer.entered.wait(TIMEOUT)  # analysing its first photo
        queued = svc.ok("POST", "/v1/jobs/cluster", 202)  # no body: an incremental run
        assert queued["state"] == "queued" and queued["params"] == {"full": False}
        cancelled = svc.ok("DELETE", f"/v1/jobs/{queued['id']}", 202)
        assert cancelled["state"] == "cancelled" and "before it started" in cancelled["message"]
        asked = svc.ok("DELETE", f"/v1/jobs/{running['id']}", 202)
        assert asked["state"] == "running" and asked["cancel_requested"] is True
        gate.set()
        ended = svc.wait(asked)
        assert ended["state"] == "cancelled" and "cancelled after 1 of 11 files" in ended["message"]
        assert svc.ok("DELETE", f"/v1/jobs/{running['id']}", 202)["state"] == "cancelled"  # finished: left as is
        photos = svc.ok("GET", "/v1/collection/photos", scope="read")
        assert photos["total"] == 1  # the photo stored before the cancel is kept
        for method in ("GET", "DELETE"):
            missing = svc.call(method, "/v1/jobs/nope")
            assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_index_jobs_only_inside_the_photo_roots(service, tmp_path):
    outside = tmp_path / "elsewhere"
    photo(outside / "x.png", 1, 1, 1)
    (service.root / "escape").symlink_to(outside, target_is_directory=True)
    for folder in (outside, service.root / ".." / "elsewhere", service.root / "escape", "../elsewhere", "/"):
        refused = service.call("POST", "/v1/jobs/index", json={"folder": str(folder)})
        assert refused.status_code == 403, (folder, refused.text)
        assert "FACEATLAS_PHOTO_ROOTS" in refused.json()["error"]["message"]
    assert service.ok("GET", "/v1/jobs", scope="read")["jobs"] == []  # nothing was submitted
    missing = service.call("POST", "/v1/jobs/index", json={"folder": str(service.root / "nope")})
    assert missing.status_code == 404
    assert service.call("POST", "/v1/jobs/index", json={}).status_code == 422
    sub = service.wait(service.ok("POST", "/v1/jobs/index", 202, json={"folder": "trip"}))  # relative: in a root
    assert sub["params"] == {"folder": str((service.root / "trip").resolve())} and sub["result"]["new"] == 1


def test_index_jobs_are_off_without_photo_roots(tmp_path):
    svc = make_service(tmp_path, roots=False)
    with svc.client:
        refused = svc.call("POST", "/v1/jobs/index", json={"folder": str(svc.root)})
        assert refused.status_code == 403
        assert refused.json()["error"]["message"] == "index jobs are off: set FACEATLAS_PHOTO_ROOTS"


# --- photos, images, thumbnails ---------------------------------------------------------------------


def test_photos_images_and_thumbnails(clustered):
    svc = clustered
    listed = svc.ok("GET", "/v1/collection/photos", scope="read")
    assert listed["total"] == 11 and len(listed["photos"]) == 11
    by_path = {p["path"]: p for p in listed["photos"]}
    group = by_path["trip/group.jpg"]
    assert (group["width"], group["height"], group["faces"], group["status"]) == (SIDE, SIDE, 2, "ok")
    assert by_path["a0.png"]["faces"] == 1
    page = svc.ok("GET", "/v1/collection/photos?limit=2&offset=10", scope="read")
    assert [p["id"] for p in page["photos"]] == [listed["photos"][10]["id"]] and page["total"] == 11

    a = cluster_id(svc, "A")
    of_a = svc.ok("GET", f"/v1/collection/photos?cluster={a}", scope="read")
    assert sorted(p["path"] for p in of_a["photos"]) == ["a0.png", "a1.png", "a2.png", "a3.png", "trip/group.jpg"]
    assert svc.ok("GET", "/v1/collection/photos?cluster=-1", scope="read")["total"] == 0
    assert svc.call("GET", "/v1/collection/photos?cluster=999", scope="read").status_code == 404

    detail = svc.ok("GET", f"/v1/collection/photos/{group['id']}", scope="read")
    assert detail["path"] == "trip/group.jpg" and [f["cluster_id"] for f in detail["faces"]] == [
        a,
        cluster_id(svc, "B"),
    ]
    big, small = detail["faces"]
    assert big["box"][2] - big["box"][0] > small["box"][2] - small["box"][0]  # largest first
    assert {f["photo_id"] for f in detail["faces"]} == {group["id"]} and big["cluster_name"] is None

    image = svc.call("GET", f"/v1/collection/photos/{group['id']}/image", scope="read")
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert image.content == (svc.root / "trip" / "group.jpg").read_bytes()
    assert image.headers["cache-control"] == "private, max-age=3600"
    png = svc.call("GET", f"/v1/collection/photos/{by_path['a0.png']['id']}/image", scope="read")
    assert png.headers["content-type"] == "image/png" and png.content == (svc.root / "a0.png").read_bytes()

    thumb = svc.call("GET", f"/v1/collection/faces/{big['id']}/thumbnail", scope="read")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert thumb.headers["cache-control"] == "private, max-age=3600"
    with Image.open(io.BytesIO(thumb.content)) as decoded:
        assert decoded.format == "JPEG" and decoded.size == (160, 160)
        centre = np.asarray(decoded.convert("RGB"))[80, 80]
    assert abs(int(centre[0]) - 100) <= 8 and abs(int(centre[1]) - 25) <= 8  # the photo's colour, not padding
    small_thumb = svc.call("GET", f"/v1/collection/faces/{small['id']}/thumbnail?size=48", scope="read")
    with Image.open(io.BytesIO(small_thumb.content)) as decoded:
        assert decoded.size == (48, 48)
    unchanged = svc.call(
        "GET",
        f"/v1/collection/faces/{big['id']}/thumbnail",
        scope="read",
        headers={"If-None-Match": thumb.headers["etag"]},
    )
    assert unchanged.status_code == 304 and not unchanged.content
    for size in (16, 513):
        assert svc.call("GET", f"/v1/collection/faces/{big['id']}/thumbnail?size={size}", scope="read").status_code == (
            422
        )
    for url in (
        "/v1/collection/photos/999",
        "/v1/collection/photos/999/image",
        "/v1/collection/faces/999/thumbnail",
        "/v1/collection/clusters/999",
    ):
        missing = svc.call("GET", url, scope="read")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found", url


def test_a_photo_gone_from_disk_or_leading_outside_its_folder_is_404(service, tmp_path):
    service.index(service.root / "trip")  # filed under the folder trip/ (the photo root is its parent)
    (group,) = service.ok("GET", "/v1/collection/photos", scope="read")["photos"]
    face = service.ok("GET", f"/v1/collection/photos/{group['id']}", scope="read")["faces"][0]
    (service.root / "trip" / "group.jpg").unlink()
    (service.root / "trip" / "group.jpg").symlink_to(service.root / "a0.png")  # inside the root, not trip/
    for url in (f"/v1/collection/photos/{group['id']}/image", f"/v1/collection/faces/{face['id']}/thumbnail"):
        refused = service.call("GET", url, scope="read")
        assert refused.status_code == 404 and "outside the folder" in refused.json()["error"]["message"]
        assert (service.root / "a0.png").read_bytes() != refused.content

    service.index()
    photos = {p["path"]: p["id"] for p in service.ok("GET", "/v1/collection/photos", scope="read")["photos"]}

    (service.root / "b1.png").unlink()
    face = service.ok("GET", f"/v1/collection/photos/{photos['b1.png']}", scope="read")["faces"][0]
    for url in (f"/v1/collection/photos/{photos['b1.png']}/image", f"/v1/collection/faces/{face['id']}/thumbnail"):
        gone = service.call("GET", url, scope="read")
        assert gone.status_code == 404 and "no longer on disk" in gone.json()["error"]["message"]
        assert "Traceback" not in gone.text


# --- photos are read only inside FACEATLAS_PHOTO_ROOTS ---------------------------------------------


def index_directly(svc: Service, folder: Path) -> None:
    """Index ``folder`` into the service's collection as the CLI would (no roots apply to it)."""
    from faceatlas.collection.indexer import index_folder

    with svc.client.app.state.engine.collection() as store:
        index_folder(folder, store, FakeAnalyzer())


def photo_ids(svc: Service) -> dict[str, int]:
    return {p["path"]: p["id"] for p in svc.ok("GET", "/v1/collection/photos", scope="read")["photos"]}


def assert_not_served(svc: Service, photo_id: int, secret: bytes) -> None:
    """The photo's image and its faces' thumbnails (even revalidated by ETag) are refused with 403."""
    faces = svc.ok("GET", f"/v1/collection/photos/{photo_id}", scope="read")["faces"]
    assert faces, "the photo has a face to crop"
    urls = [f"/v1/collection/photos/{photo_id}/image"] + [f"/v1/collection/faces/{f['id']}/thumbnail" for f in faces]
    for url in urls:
        for headers in ({}, {"If-None-Match": "*"}):
            refused = svc.call("GET", url, scope="read", headers=headers)
            assert refused.status_code == 403, (url, refused.status_code, refused.text[:200])
            error = refused.json()["error"]
            assert error["code"] == "photo_not_allowed" and "FACEATLAS_PHOTO_ROOTS" in error["message"], error
            assert secret not in refused.content


def test_index_jobs_skip_file_links_that_lead_outside_the_roots(service, tmp_path):
    secret = photo(tmp_path / "secret" / "s.png", 1, 3, 9)
    (service.root / "link.png").symlink_to(secret)
    (service.root / "trip" / "copy.png").symlink_to(service.root / "a0.png")  # inside the roots: indexed
    (service.root / "loop.png").symlink_to(service.root / "loop.png")
    job = service.index()
    assert job["state"] == "done", job
    problems = {p["path"]: p["reason"] for p in job["result"]["problems"]}
    assert set(problems) == {"link.png", "loop.png"} and "outside" in problems["link.png"], problems
    assert str(secret) not in problems["link.png"]  # where the link leads is not told
    photos = photo_ids(service)
    assert "link.png" not in photos and "trip/copy.png" in photos and len(photos) == 12
    with service.client.app.state.engine.collection() as store:
        embeddings = store.face_table().embeddings
    assert len(embeddings) == 13 and float(np.max(embeddings @ DIRECTIONS[3])) < 0.5  # no face of the secret's

    secret.unlink()  # the job refused the link; it did not merely fail to read it later
    (service.root / "a1.png").unlink()
    (service.root / "a1.png").symlink_to(photo(tmp_path / "secret" / "t.png", 1, 3, 10))  # swapped since indexed
    again = service.index()["result"]
    assert {p["path"] for p in again["problems"]} >= {"link.png", "a1.png"} and again["removed"] == 1
    assert "a1.png" not in photo_ids(service)  # a photo that now leads outside is forgotten


def test_photos_indexed_outside_the_roots_are_never_served(service, tmp_path):
    outside = tmp_path / "outside"
    secret = photo(outside / "s.png", 1, 3, 9).read_bytes()
    index_directly(service, outside)  # the CLI, into the collection the service serves
    (photo_id,) = photo_ids(service).values()
    assert_not_served(service, photo_id, secret)

    service.index()
    inside = photo_ids(service)["a0.png"]
    served = service.call("GET", f"/v1/collection/photos/{inside}/image", scope="read")
    assert served.status_code == 200 and served.content == (service.root / "a0.png").read_bytes()
    assert served.headers["content-length"] == str(len(served.content))
    (service.root / "a0.png").unlink()  # a file swapped for a link after indexing: resolved at every read
    (service.root / "a0.png").symlink_to(outside / "s.png")
    assert_not_served(service, inside, secret)


def test_without_photo_roots_no_photo_is_served(tmp_path):
    svc = make_service(tmp_path, roots=False)
    with svc.client:
        index_directly(svc, svc.root)
        photo_id = photo_ids(svc)["a0.png"]
        assert_not_served(svc, photo_id, (svc.root / "a0.png").read_bytes())
        message = svc.call("GET", f"/v1/collection/photos/{photo_id}/image", scope="read").json()["error"]["message"]
        assert "none is set" in message


def test_a_fifo_named_like_a_photo_is_refused_not_waited_on(service):
    service.index()
    photo_id = photo_ids(service)["a2.png"]
    (service.root / "a2.png").unlink()
    os.mkfifo(service.root / "a2.png")
    gone = service.call("GET", f"/v1/collection/photos/{photo_id}/image", scope="read")
    assert gone.status_code == 404 and "no longer on disk" in gone.json()["error"]["message"]
    job = service.index()
    assert job["state"] == "done" and "a2.png" in {p["path"] for p in job["result"]["problems"]}


# --- corrections ------------------------------------------------------------------------------------


def test_naming_a_cluster_enrols_it_into_the_gallery(clustered):
    svc = clustered
    a, b = cluster_id(svc, "A"), cluster_id(svc, "B")
    named = svc.ok("PATCH", f"/v1/collection/clusters/{a}", json={"name": " Ada "})
    assert (named["id"], named["name"], named["enrolled"], named["gallery_faces"]) == (a, "Ada", 5, 5)
    assert sorted(f["id"] for f in named["faces"]) == svc.faces_of("A")
    people = svc.ok("GET", "/v1/people", scope="read")["people"]
    assert [(p["name"], p["faces"]) for p in people] == [("Ada", 5)]
    assert svc.clusters()[a]["name"] == "Ada"
    group = next(p for p in svc.ok("GET", "/v1/collection/photos", scope="read")["photos"] if p["faces"] == 2)
    faces = svc.ok("GET", f"/v1/collection/photos/{group['id']}", scope="read")["faces"]
    assert [f["cluster_name"] for f in faces] == ["Ada", None]

    again = svc.ok("PATCH", f"/v1/collection/clusters/{a}", json={"name": "Ada"})
    assert (again["enrolled"], again["gallery_faces"]) == (0, 5)  # nothing enrolled twice
    taken = svc.call("PATCH", f"/v1/collection/clusters/{b}", json={"name": "Ada"})
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "conflict"
    assert "already named" in taken.json()["error"]["message"] and svc.clusters()[b]["name"] is None

    renamed = svc.ok("PATCH", f"/v1/collection/clusters/{a}", json={"name": "Ada Lovelace"})
    assert renamed["name"] == "Ada Lovelace" and renamed["gallery_faces"] == 5
    people = svc.ok("GET", "/v1/people", scope="read")["people"]
    assert [(p["name"], p["faces"]) for p in people] == [("Ada Lovelace", 5)]  # the gallery person renamed too

    unnamed = svc.ok("PATCH", f"/v1/collection/clusters/{a}", json={"name": None})
    assert (unnamed["name"], unnamed["enrolled"], unnamed["gallery_faces"]) == (None, 0, None)
    for body in ({"name": "   "}, {"name": ""}, {"name": "x" * 201}, {}, {"name": "Bo", "extra": 1}):
        assert svc.call("PATCH", f"/v1/collection/clusters/{b}", json=body).status_code == 422, body
    assert svc.call("PATCH", "/v1/collection/clusters/999", json={"name": "Zed"}).status_code == 404


def test_merge_moves_the_faces_and_later_cluster_jobs_keep_them_together(clustered):
    svc = clustered
    a, b, c = (cluster_id(svc, p) for p in "ABC")
    merged = svc.ok("POST", f"/v1/collection/clusters/{c}/merge", json={"into": b})
    assert merged["id"] == b and merged["name"] is None and merged["enrolled"] == 0
    assert sorted(f["id"] for f in merged["faces"]) == sorted(svc.faces_of("B") + svc.faces_of("C"))
    assert svc.call("GET", f"/v1/collection/clusters/{c}", scope="read").status_code == 404  # gone
    together = frozenset(svc.faces_of("B") + svc.faces_of("C"))
    assert svc.groups() == {frozenset(svc.faces_of("A")), together}
    assert constraints(svc) == (6, 0)  # the seven faces chained: one must-link component

    svc.cluster()  # incremental
    assert svc.groups() == {frozenset(svc.faces_of("A")), together}
    svc.cluster(full=True)  # from scratch: B and C apart by their faces, together by the user's word
    assert svc.groups() == {frozenset(svc.faces_of("A")), together}

    a, b = (svc.cluster_of(svc.faces_of(p)[0]) for p in "AB")  # a full run numbers unnamed clusters anew
    shared = svc.call("POST", f"/v1/collection/clusters/{b}/merge", json={"into": a})
    assert shared.status_code == 409 and "both have a face in photo" in shared.json()["error"]["message"]
    assert svc.call("POST", f"/v1/collection/clusters/{a}/merge", json={"into": a}).status_code == 422
    assert svc.call("POST", f"/v1/collection/clusters/{a}/merge", json={"into": 999}).status_code == 404
    assert svc.call("POST", "/v1/collection/clusters/999/merge", json={"into": a}).status_code == 404
    assert svc.call("POST", f"/v1/collection/clusters/{a}/merge", json={}).status_code == 422


def test_merging_named_clusters(clustered):
    svc = clustered
    a, b, c = (cluster_id(svc, p) for p in "ABC")
    svc.ok("PATCH", f"/v1/collection/clusters/{a}", json={"name": "Ada"})
    svc.ok("PATCH", f"/v1/collection/clusters/{c}", json={"name": "Cy"})
    refused = svc.call("POST", f"/v1/collection/clusters/{c}/merge", json={"into": b})  # fine: b has no name
    assert refused.status_code == 200
    merged = refused.json()
    assert (merged["id"], merged["name"], merged["enrolled"], merged["gallery_faces"]) == (b, "Cy", 4, 7)
    people = {p["name"]: p["faces"] for p in svc.ok("GET", "/v1/people", scope="read")["people"]}
    assert people == {"Ada": 5, "Cy": 7}
    two_names = svc.call("POST", f"/v1/collection/clusters/{b}/merge", json={"into": a})
    assert two_names.status_code == 409 and "differently named" in two_names.json()["error"]["message"]
    assert {c["name"] for c in svc.clusters().values()} == {"Ada", "Cy"}


def test_split_moves_faces_to_a_new_cluster_that_later_cluster_jobs_keep(clustered):
    svc = clustered
    a = cluster_id(svc, "A")
    svc.ok("PATCH", f"/v1/collection/clusters/{a}", json={"name": "Ada"})
    faces_a = svc.faces_of("A")
    moved, stayed = frozenset(faces_a[-2:]), frozenset(faces_a[:-2])
    new = svc.ok("POST", f"/v1/collection/clusters/{a}/split", json={"faces": sorted(moved)})
    assert new["id"] not in (a, cluster_id(svc, "B"), cluster_id(svc, "C")) and new["name"] is None
    assert frozenset(f["id"] for f in new["faces"]) == moved and {f["cluster_id"] for f in new["faces"]} == {new["id"]}
    old = svc.ok("GET", f"/v1/collection/clusters/{a}", scope="read")
    assert frozenset(f["id"] for f in old["faces"]) == stayed and old["name"] == "Ada"
    expected = {stayed, moved, frozenset(svc.faces_of("B")), frozenset(svc.faces_of("C"))}
    assert svc.groups() == expected
    assert constraints(svc) == (1, 3)  # moved faces chained; the best of them cannot-linked with each of the rest

    svc.cluster()
    assert svc.groups() == expected
    svc.ok("PATCH", f"/v1/collection/clusters/{a}", json={"name": None})  # nothing named: all re-clustered
    svc.cluster(full=True)
    assert svc.groups() == expected  # the faces are identical, yet the split holds

    # the user changes their mind: merged back, the two parts stay together from then on
    back = svc.cluster_of(min(moved))
    svc.ok("POST", f"/v1/collection/clusters/{back}/merge", json={"into": svc.cluster_of(min(stayed))})
    svc.cluster(full=True)
    assert svc.groups() == {frozenset(faces_a), frozenset(svc.faces_of("B")), frozenset(svc.faces_of("C"))}

    a = cluster_id(svc, "A")
    for body, status in (
        ({"faces": []}, 422),
        ({"faces": faces_a}, 422),  # all of them
        ({"faces": [faces_a[0], svc.faces_of("B")[0]]}, 422),  # one is not in the cluster
        ({}, 422),
    ):
        response = svc.call("POST", f"/v1/collection/clusters/{a}/split", json=body)
        assert response.status_code == status, (body, response.text)
    assert svc.call("POST", "/v1/collection/clusters/999/split", json={"faces": [1]}).status_code == 404
    assert svc.groups() == {frozenset(faces_a), frozenset(svc.faces_of("B")), frozenset(svc.faces_of("C"))}


def test_not_this_person_keeps_the_face_out_in_later_cluster_jobs(clustered):
    svc = clustered
    a = cluster_id(svc, "A")
    face = svc.faces_of("A")[1]
    out = svc.ok("POST", f"/v1/collection/faces/{face}/not-this-person")
    assert out == {"face_id": face, "former_cluster_id": a, "unenrolled": 0}  # not named: nothing enrolled
    rest = frozenset(svc.faces_of("A")) - {face}
    assert frozenset(f["id"] for f in svc.ok("GET", f"/v1/collection/clusters/{a}", scope="read")["faces"]) == rest
    (seen,) = svc.ok("GET", f"/v1/collection/photos/{svc.photo_of[face]}", scope="read")["faces"]
    assert seen["cluster_id"] == -1 and seen["cluster_name"] is None
    assert svc.ok("GET", "/v1/collection/photos?cluster=-1", scope="read")["total"] == 1
    again = svc.call("POST", f"/v1/collection/faces/{face}/not-this-person")
    assert again.status_code == 409 and "unassigned" in again.json()["error"]["message"]

    svc.cluster()  # the face gets another chance: with nobody else, it is a person of its own
    assert svc.groups() == {rest, frozenset({face}), frozenset(svc.faces_of("B")), frozenset(svc.faces_of("C"))}
    svc.cluster(full=True)
    assert rest in svc.groups() and svc.cluster_of(face) not in {svc.cluster_of(f) for f in rest}  # kept out

    assert svc.call("POST", "/v1/collection/faces/999/not-this-person").status_code == 404


def test_corrections_of_a_named_cluster_follow_into_the_gallery(clustered):
    svc = clustered
    a = cluster_id(svc, "A")
    faces_a = svc.faces_of("A")
    assert svc.ok("PATCH", f"/v1/collection/clusters/{a}", json={"name": "Ada"})["enrolled"] == 5

    def gallery() -> dict[str, int]:
        return {p["name"]: p["faces"] for p in svc.ok("GET", "/v1/people", scope="read")["people"]}

    def identify(path: str) -> str | None:
        image = (svc.root / path).read_bytes()
        found = svc.ok("POST", "/v1/identify", scope="read", files={"image": (path, image)})["results"]
        return found[0]["person"]

    assert identify("a0.png") == "Ada" and identify("c0.png") is None  # a named cluster is a person
    out = svc.ok("POST", f"/v1/collection/faces/{faces_a[0]}/not-this-person")
    assert out["unenrolled"] == 1 and gallery() == {"Ada": 4}
    split = svc.ok("POST", f"/v1/collection/clusters/{a}/split", json={"faces": faces_a[1:3]})
    assert split["unenrolled"] == 2 and gallery() == {"Ada": 2}
    assert svc.ok("PATCH", f"/v1/collection/clusters/{a}", json={"name": "Ada"})["enrolled"] == 0  # not re-added
    unnamed = svc.ok("PATCH", f"/v1/collection/clusters/{a}", json={"name": None})
    assert unnamed["unenrolled"] == 2 and gallery() == {}  # no face left: no person
    assert identify("a0.png") is None


# --- keys -------------------------------------------------------------------------------------------

ENDPOINTS = [
    ("GET", "/v1/collection/clusters", "read"),
    ("GET", "/v1/collection/clusters/0", "read"),
    ("PATCH", "/v1/collection/clusters/0", "write"),
    ("POST", "/v1/collection/clusters/0/merge", "write"),
    ("POST", "/v1/collection/clusters/0/split", "write"),
    ("POST", "/v1/collection/faces/1/not-this-person", "write"),
    ("GET", "/v1/collection/photos", "read"),
    ("GET", "/v1/collection/photos/1", "read"),
    ("GET", "/v1/collection/photos/1/image", "read"),
    ("GET", "/v1/collection/faces/1/thumbnail", "read"),
    ("POST", "/v1/jobs/index", "write"),
    ("POST", "/v1/jobs/cluster", "write"),
    ("GET", "/v1/jobs", "read"),
    ("GET", "/v1/jobs/abc", "read"),
    ("DELETE", "/v1/jobs/abc", "write"),
]


@pytest.fixture(scope="module")
def shared_service(tmp_path_factory):
    """One service for the key checks: every request they make is refused, so nothing changes."""
    svc = make_service(tmp_path_factory.mktemp("keys"))
    with svc.client:
        yield svc


@pytest.mark.parametrize(("method", "url", "needs"), ENDPOINTS)
def test_every_collection_endpoint_refuses_a_missing_or_weaker_key(shared_service, method, url, needs):
    service = shared_service
    missing = service.call(method, url, scope=None)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "unauthorized"
    wrong = service.call(method, url, scope=None, headers={"Authorization": "Bearer fa_00000000_nope"})
    assert wrong.status_code == 401
    if needs == "write":
        refused = service.call(method, url, scope="read", json={})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert service.ok("GET", "/v1/jobs", scope="read")["jobs"] == []  # nothing ran


# --- errors: one table maps the library's refusals -----------------------------------------------


def test_the_error_table_maps_every_collection_refusal():
    from faceatlas.collection.corrections import (
        DifferentPeopleError,
        InvalidClusterNameError,
        SharedPhotoError,
        WholeClusterError,
    )
    from faceatlas.collection.store import (
        ClusterInfo,
        ClusterNotFoundError,
        CollectionError,
        CorrectionConflictError,
        FaceNotFoundError,
        InvalidCorrectionError,
        ModelMismatchError,
        NameTakenError,
        PhotoNotFoundError,
    )
    from faceatlas.server.errors import rule_for

    ada, bob = ClusterInfo(1, "Ada", 3), ClusterInfo(2, "Bob", 2)
    cases = [
        (ClusterNotFoundError("no cluster 7 in collection x.db", 7), 404, "not_found", "no cluster 7"),
        (PhotoNotFoundError("no photo 7 in collection x.db", 7), 404, "not_found", "no photo 7"),
        (FaceNotFoundError("no face 7 in collection x.db", 7), 404, "not_found", "no face 7"),
        (NameTakenError("library words", 1, "Ada", 2), 409, "conflict", "POST /v1/collection/clusters/1/merge"),
        (DifferentPeopleError("library words", ada, bob), 409, "conflict", "PATCH with name null"),
        (SharedPhotoError("library words", 1, 2, 9, (3, 4)), 409, "conflict", "POST /v1/collection/faces/"),
        (CorrectionConflictError("face 3 is in no cluster"), 409, "conflict", "face 3 is in no cluster"),
        (WholeClusterError("library words", 4), 422, "invalid_request", "use PATCH"),
        (InvalidCorrectionError("cluster 4 cannot be merged into itself"), 422, "invalid_request", "itself"),
        (InvalidClusterNameError("cluster 4 cannot be named so"), 422, "invalid_name", "named so"),
        (ModelMismatchError("the collection holds other embeddings"), 409, "model_mismatch", "other embeddings"),
        (CollectionError("damaged"), 409, "conflict", "damaged"),
    ]
    for exc, status, code, said in cases:
        rule = rule_for(exc)
        message = rule.message(exc) if rule.message is not None else str(exc)
        assert (rule.status, rule.code) == (status, code) and said in message, (type(exc).__name__, rule, message)
        assert "library words" not in message and "merge_clusters" not in message


def test_collection_errors_never_name_the_servers_files(service):
    path = service.client.app.state.settings.collection_path
    missing = service.call("GET", "/v1/collection/clusters/5", scope="read")
    assert missing.status_code == 404 and missing.json()["error"] == {
        "code": "not_found",
        "message": "no cluster 5 in the collection",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not a database " * 100)  # a damaged collection: refused, and the file is not named
    for url in ("/v1/collection/clusters", "/v1/collection/photos", "/v1/collection/clusters/5"):
        refused = service.call("GET", url, scope="read")
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "conflict", refused.text
        assert str(path) not in refused.text and path.name not in refused.text, refused.text


# --- the page ---------------------------------------------------------------------------------------


def test_the_page_answers_head_and_every_link_of_it_leads_somewhere(service):
    page = service.call("GET", "/", scope=None)
    head = service.call("HEAD", "/", scope=None)
    assert head.status_code == 200 and head.content == b""
    for header in ("content-type", "content-length", "content-security-policy", "cache-control"):
        assert head.headers[header] == page.headers[header], header
    noscript = re.search(r"<noscript>(.*?)</noscript>", page.text, re.DOTALL)
    assert noscript is not None and re.search(r'href="([^"#]+)"', noscript.group(1))
    targets = set(re.findall(r'(?:href|src)="([^"#][^"]*)"', page.text)) - {"data:,"}
    assert targets, "the page links to its assets"
    for target in targets:
        url = urllib.parse.urljoin("http://testserver/", target)
        assert service.call("GET", url, scope=None).status_code == 200, target


def test_no_error_names_the_servers_gallery_or_collection_file(service, tmp_path):
    """A client learns what went wrong, never where the server keeps its files."""
    answers = [
        service.call("GET", "/v1/people/nobody", scope="read"),
        service.call("DELETE", "/v1/people/nobody", scope="admin"),
        service.call("PATCH", "/v1/people/nobody", json={"name": "somebody"}, scope="write"),
        service.call("GET", "/v1/collection/clusters/12345", scope="read"),
    ]
    for answer in answers:
        assert answer.status_code == 404, answer.text
        message = answer.json()["error"]["message"]
        assert str(tmp_path) not in message and ".db" not in message, message
    assert "the gallery" in answers[0].json()["error"]["message"]


def test_an_index_job_on_several_processes_indexes_like_one(tmp_path):
    """FACEATLAS_INDEX_WORKERS=2: the job analyses in this process and a spawned one, with the real
    models (the settings' factory), and stores what a one-process index stores."""
    from face_photos import varied_photos

    from faceatlas.collection import CollectionStore, index_folder

    root = tmp_path / "photos"
    varied_photos(root, 18)
    settings = Settings(data_dir=tmp_path / "data", rate_limit_per_minute=0, photo_roots=[root], index_workers=2)
    app = create_app(settings)
    token = app.state.keys.create("test", "write")[1]
    svc = Service(TestClient(app, raise_server_exceptions=False), {"write": token, "read": token}, root)
    with svc.client:
        job = svc.index()
    assert job["state"] == "done", job
    with CollectionStore.open(tmp_path / "one.db") as alone:
        index_folder(root, alone, workers=1)
        expected = alone.face_table()
    with CollectionStore.open(settings.collection_path, create=False) as served:
        got = served.face_table()
    assert len(got.face_ids) == len(expected.face_ids) >= 17
    assert np.allclose(got.embeddings, expected.embeddings, atol=1e-5)


def test_birth_dates_and_life_stages(clustered):
    svc = clustered
    a, b, c = (cluster_id(svc, p) for p in "ABC")
    svc.ok("PATCH", f"/v1/collection/clusters/{a}", json={"name": "Ada"})
    born = svc.ok("PUT", f"/v1/collection/clusters/{a}/born", json={"born": "2010-01-01"})
    assert (born["id"], born["born"], born["person"]) == (a, "2010-01-01", None)
    for body in ({"born": "2010-13-01"}, {"born": "3000-01-01"}, {}, {"born": "2010-01-01", "x": 1}):
        assert svc.call("PUT", f"/v1/collection/clusters/{a}/born", json=body).status_code == 422, body
    assert svc.clusters()[a]["born"] == "2010-01-01"
    assert svc.call("PUT", "/v1/collection/clusters/999/born", json={"born": None}).status_code == 404
    reader = svc.call("PUT", f"/v1/collection/clusters/{a}/born", json={"born": None}, scope="read")
    assert reader.status_code == 403 and svc.clusters()[a]["born"] == "2010-01-01"

    stage = svc.ok("PUT", f"/v1/collection/clusters/{c}/person", json={"person": a})
    assert (stage["name"], stage["born"], stage["person"], stage["enrolled"]) == ("Ada", "2010-01-01", a, 3)
    assert svc.clusters()[c]["person"] == a
    shared = svc.call("PUT", f"/v1/collection/clusters/{b}/person", json={"person": a})  # the group photo
    assert shared.status_code == 409 and svc.clusters()[b]["person"] is None
    assert svc.call("PUT", f"/v1/collection/clusters/{a}/person", json={"person": a}).status_code == 422
    svc.cluster(full=True)
    assert svc.groups() == {frozenset(svc.faces_of(p)) for p in "ABC"}  # the stage stays its own template
    unlinked = svc.ok("PUT", f"/v1/collection/clusters/{c}/person", json={"person": None})
    assert (unlinked["name"], unlinked["person"], unlinked["unenrolled"]) == (None, None, 3)
