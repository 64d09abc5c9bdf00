"""Photo collections: resumable indexing, the collection file, clusters, enrolment and the HTML sheet.

Real files on disk (hashing, walking, decoding are real); a fake analyzer reads its faces from
the pixels, so no model loads except in the one end-to-end CLI test.
"""

from __future__ import annotations

import dataclasses
import html.parser
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import types
import urllib.parse
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceatlas.collection import (
    NOT_CLUSTERED,
    UNASSIGNED,
    CollectionError,
    CollectionStore,
    ModelMismatchError,
    export_html,
    index_folder,
)
from faceatlas.collection.indexer import list_photos
from faceatlas.models.cards import DLIB_RESNET_CARD
from faceatlas.types import Box, Face, Landmarks, Pose, Quality

DIM = 128
DIRECTIONS = np.linalg.qr(np.random.default_rng(1).normal(size=(DIM, DIM)))[0].astype(np.float32)
SIDE = 96  # photo size in pixels


# --- a fake analyzer that reads its answer from the pixels ------------------------------------------


class FakeEmbedder:
    card = DLIB_RESNET_CARD
    dim = DIM


class FakeAnalyzer:
    """A photo's colour says what is in it: red // 50 faces, of people starting at green // 25.

    Face k is 40 - 8k pixels wide (so idx 0 is the largest), of person (who + k) % 16; faces
    from the third on have a low quality.
    """

    embedder = FakeEmbedder()

    def __init__(self) -> None:
        self.calls = 0

    def analyze(self, image: np.ndarray) -> list[Face]:
        self.calls += 1
        red, green, _ = (int(v) for v in image[SIDE // 2, SIDE // 2])
        who = round(green / 25)
        faces = [self._face(k, who) for k in range(round(red / 50))]
        return faces[::-1]  # smallest first: the store must order them largest first

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


class OtherModelAnalyzer(FakeAnalyzer):
    class embedder:  # stands in for the attribute of that name
        card = dataclasses.replace(DLIB_RESNET_CARD, version="2")
        dim = DIM


def photo(path: Path, faces: int, who: int = 0, tag: int = 0) -> Path:
    """A flat-coloured image whose colour encodes its faces; ``tag`` makes equal photos differ."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.zeros((SIDE, SIDE, 3), np.uint8)
    pixels[...] = (50 * faces, 25 * who, tag)
    Image.fromarray(pixels).save(path)
    return path


def make_tree(root: Path) -> dict[str, int]:
    """A small photo folder; returns {relative path: number of faces} of the readable photos."""
    expected = {"a.jpg": 2, "b.png": 1, "trip/c.png": 3, "trip/d.bmp": 0, "trip/deep/e.tif": 1, "trip/deep/f.webp": 2}
    for i, (rel, n) in enumerate(expected.items()):
        photo(root / rel, n, who=i, tag=i)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (root / "notes.txt").write_text("not a photo")
    photo(root / ".hidden" / "x.png", 1)
    photo(root / "._a.jpg", 1)
    return expected


def faces_per_photo(store: CollectionStore) -> dict[str, int]:
    return {p.path: p.n_faces for p in store.photos() if p.status == "ok"}


def face_keys(store: CollectionStore) -> Counter:
    """Every face as (photo path, idx, box): what two indexings of the same folder must agree on."""
    return Counter((p.path, f.idx, f.box) for p in store.photos() for f in store.faces_of_photo(p.id))


def set_mtime(path: Path, seconds: int) -> None:
    os.utime(path, ns=(seconds * 10**9, seconds * 10**9))  # never equal by chance of the clock


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    root = tmp_path / "photos"
    return root, make_tree(root)


@pytest.fixture
def store(collection_target):  # a SQLite file, and a PostgreSQL schema (tests/conftest.py)
    with CollectionStore.open(collection_target) as s:
        yield s


# --- indexing -------------------------------------------------------------------------------------


def test_first_index_stores_every_photo_and_face(tree, store):
    root, expected = tree
    report = index_folder(root, store, FakeAnalyzer())
    assert (report.new, report.unreadable, report.faces_added) == (6, 1, 9)
    assert faces_per_photo(store) == expected  # posix paths relative to the root; hidden files and .txt skipped
    assert {p.root for p in store.photos()} == {str(root.resolve())}
    (broken,) = [p for p in store.photos() if p.status != "ok"]
    assert broken.path == "broken.jpg" and broken.status.startswith("unreadable: ") and broken.n_faces == 0
    assert report.problems == [("broken.jpg", broken.status)] and "broken.jpg" in str(report)
    (c,) = [p for p in store.photos() if p.path == "trip/c.png"]
    assert (c.width, c.height) == (SIDE, SIDE) and len(c.sha256) == 64
    sizes = [f.box[2] - f.box[0] for f in store.faces_of_photo(c.id)]
    assert sizes == sorted(sizes, reverse=True) and [f.idx for f in store.faces_of_photo(c.id)] == [0, 1, 2]

    table = store.face_table()
    assert len(table) == 9 and table.embeddings.shape == (9, DIM) and table.embeddings.dtype == np.float32
    assert np.allclose(np.linalg.norm(table.embeddings, axis=1), 1, atol=1e-5)
    assert (table.clusters == NOT_CLUSTERED).all() and not table.embeddings.flags.writeable
    assert sorted(Counter(table.photo_ids.tolist()).values()) == sorted(n for n in expected.values() if n)


def test_rerun_reads_nothing_that_did_not_change(tree, store):
    root, _ = tree
    index_folder(root, store, FakeAnalyzer())
    before = store.photos()
    analyzer = FakeAnalyzer()
    report = index_folder(root, store, analyzer)
    assert analyzer.calls == 0  # the unreadable file is not retried either
    assert (report.new, report.changed, report.unchanged, report.unreadable, report.problems) == (0, 0, 7, 0, [])
    assert store.photos() == before


def test_changed_touched_moved_deleted_and_new_files(tree, store):
    root, expected = tree
    index_folder(root, store, FakeAnalyzer())
    ids = {p.path: [f.id for f in store.faces_of_photo(p.id)] for p in store.photos()}

    photo(root / "b.png", 3, who=9, tag=99)  # new content
    set_mtime(root / "b.png", 1_000)
    set_mtime(root / "a.jpg", 2_000)  # same bytes, new mtime
    (root / "trip/d.bmp").unlink()
    (root / "moved").mkdir()
    (root / "trip/deep/e.tif").rename(root / "moved/e.tif")
    photo(root / "trip/g.jpg", 1, who=5, tag=7)
    photo(root / "broken.jpg", 2, who=3, tag=8)  # fixed: retried because it changed
    set_mtime(root / "broken.jpg", 3_000)

    analyzer = FakeAnalyzer()
    report = index_folder(root, store, analyzer)
    assert (report.new, report.changed, report.unchanged, report.moved, report.removed) == (1, 2, 3, 1, 1)
    assert (report.unreadable, report.faces_added, analyzer.calls) == (0, 3 + 1 + 2, 3)

    now = faces_per_photo(store)
    assert now == {**{k: v for k, v in expected.items() if k not in ("trip/d.bmp", "trip/deep/e.tif")},
                   "b.png": 3, "moved/e.tif": 1, "trip/g.jpg": 1, "broken.jpg": 2}  # fmt: skip
    after = {p.path: [f.id for f in store.faces_of_photo(p.id)] for p in store.photos()}
    assert after["a.jpg"] == ids["a.jpg"]  # touched: same faces
    assert after["moved/e.tif"] == ids["trip/deep/e.tif"]  # moved: same faces (clusters, constraints kept)
    assert not set(after["b.png"]) & set(ids["b.png"])  # changed: replaced
    (a,) = [p for p in store.photos() if p.path == "a.jpg"]
    assert a.mtime_ns == 2_000 * 10**9
    assert len(store.face_table()) == sum(now.values())


def test_unreadable_file_is_reported_and_not_retried_until_it_changes(tmp_path, store):
    root = tmp_path / "p"
    photo(root / "ok.png", 1)
    (root / "empty.jpg").parent.mkdir(exist_ok=True)
    (root / "empty.jpg").write_bytes(b"")
    (root / "cut.png").write_bytes((root / "ok.png").read_bytes()[:60])
    first = index_folder(root, store, FakeAnalyzer())
    assert first.unreadable == 2 and {p for p, _ in first.problems} == {"empty.jpg", "cut.png"}
    assert all("unreadable" in why for _, why in first.problems)
    second = index_folder(root, store, FakeAnalyzer())
    assert (second.unreadable, second.unchanged, second.problems) == (0, 3, [])


def test_a_subfolder_and_its_parent_share_their_photos(tree, collection_target):
    root, expected = tree
    with CollectionStore.open(collection_target) as store:
        index_folder(root / "trip", store, FakeAnalyzer())
        assert {p.path for p in store.photos()} == {"c.png", "d.bmp", "deep/e.tif", "deep/f.webp"}
        report = index_folder(root, store, FakeAnalyzer())
        assert (report.unchanged, report.new) == (4, 2)  # the subfolder's photos were found, not redone
        (root / "a.jpg").unlink()
        sub = index_folder(root / "trip" / "deep", store, FakeAnalyzer())
        assert (sub.unchanged, sub.removed) == (2, 0)  # a.jpg is outside the subfolder: not forgotten by it
        assert {p.root for p in store.photos()} == {str(root.resolve())}
        assert faces_per_photo(store) == expected


def test_workers_give_the_same_collection(tree, tmp_path):
    root, expected = tree
    with CollectionStore.open(tmp_path / "one.db") as one, CollectionStore.open(tmp_path / "two.db") as two:
        index_folder(root, one, FakeAnalyzer())
        seen = []
        report = index_folder(root, two, FakeAnalyzer, workers=2, progress=lambda done, total: seen.append(done))
        assert (report.new, report.unreadable, report.faces_added) == (6, 1, 9)
        assert face_keys(two) == face_keys(one) and faces_per_photo(two) == expected
        assert np.array_equal(two.face_table().embeddings, one.face_table().embeddings)
        assert seen == list(range(1, 8))
    with pytest.raises(CollectionError, match="factory"):
        index_folder(root, one, FakeAnalyzer(), workers=2)  # an analyzer object is not shipped to workers


def test_heic_only_when_pillow_heif_is_installed(tmp_path, monkeypatch):
    photo(tmp_path / "a.png", 1)
    (tmp_path / "b.HEIC").write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # import fails
    assert [p.name for p in list_photos(tmp_path)] == ["a.png"]
    registered = []
    monkeypatch.setitem(
        sys.modules, "pillow_heif", types.SimpleNamespace(register_heif_opener=lambda: registered.append(1))
    )
    assert [p.name for p in list_photos(tmp_path)] == ["a.png", "b.HEIC"] and registered


# --- atomicity: a photo is fully indexed or absent --------------------------------------------------


def test_one_transaction_per_photo(tree, store, monkeypatch):
    import faceatlas.collection.store as store_module

    root, expected = tree
    real_insert, inserted = store_module._insert_face, []

    def failing_insert(conn, photo_id, idx, values):
        inserted.append(idx)
        if idx == 1 and len(inserted) > 3:  # the second face of the third photo with faces
            raise RuntimeError("disk on fire")
        return real_insert(conn, photo_id, idx, values)

    monkeypatch.setattr(store_module, "_insert_face", failing_insert)
    with pytest.raises(RuntimeError):
        index_folder(root, store, FakeAnalyzer())
    assert faces_per_photo(store) == {"a.jpg": 2, "b.png": 1}  # c.png failed after its first face: none of it
    assert len(store.face_table()) == 3 and "trip/c.png" not in {p.path for p in store.photos()}
    monkeypatch.setattr(store_module, "_insert_face", real_insert)
    index_folder(root, store, FakeAnalyzer())
    assert faces_per_photo(store) == expected


def test_a_batch_of_photos_is_one_transaction_all_or_nothing(store, monkeypatch):
    import faceatlas.collection.store as store_module
    from faceatlas.collection.store import NewPhoto, model_tag

    store.bind_model(model_tag(FakeAnalyzer()))
    faces = [FakeAnalyzer._face(k, who=k) for k in range(3)]
    batch = [NewPhoto(f"p{i}.png", "/r", f"{i:064x}", 10 + i, i, SIDE, SIDE, faces[: i + 1]) for i in range(3)]
    ids = store.add_photos(batch)
    assert [store.photo(i).path for i in ids] == ["p0.png", "p1.png", "p2.png"]
    assert [store.photo(i).n_faces for i in ids] == [1, 2, 3] and len(store.face_table()) == 6

    wide = dataclasses.replace(faces[0], embedding=np.ones(DIM + 1, np.float32) / np.sqrt(DIM + 1))
    again = [batch[0]._replace(faces=faces[:2]), NewPhoto("q.png", "/r", "f" * 64, 1, 1, SIDE, SIDE, [wide])]
    with pytest.raises(ModelMismatchError):
        store.add_photos(again)  # the second photo is refused: the first is not replaced either
    assert store.photo(ids[0]).n_faces == 1 and "q.png" not in {p.path for p in store.photos()}

    real_insert = store_module._insert_face

    def failing_insert(conn, photo_id, idx, values):
        if idx == 1:
            raise RuntimeError("disk on fire")
        return real_insert(conn, photo_id, idx, values)

    monkeypatch.setattr(store_module, "_insert_face", failing_insert)
    with pytest.raises(RuntimeError):
        store.add_photos([NewPhoto("r.png", "/r", "e" * 64, 1, 1, SIDE, SIDE, faces[:1]), batch[1]])
    assert {p.path for p in store.photos()} == {"p0.png", "p1.png", "p2.png"} and len(store.face_table()) == 6
    assert store.add_photos([]) == []


def _index_and_die(db: str, root: str, die_at_face: int) -> None:
    """In a child process: index, and SIGKILL ourselves in the middle of a photo's transaction."""
    import faceatlas.collection.store as store_module

    real_insert, count = store_module._insert_face, [0]

    def dying_insert(conn, photo_id, idx, values):
        count[0] += 1
        if count[0] == die_at_face:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_insert(conn, photo_id, idx, values)

    store_module._insert_face = dying_insert
    with CollectionStore.open(db) as store:
        index_folder(root, store, FakeAnalyzer())


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
def test_kill_9_mid_index_then_rerun_loses_and_duplicates_nothing(tmp_path):
    root = tmp_path / "photos"
    expected = {f"{d}/{i:02d}.png": (i % 4) for d in ("x", "y/z") for i in range(8)}
    for n, (rel, faces) in enumerate(expected.items()):
        photo(root / rel, faces, who=n % 7, tag=n)
    killed_db, clean_db = tmp_path / "killed.db", tmp_path / "clean.db"

    child = multiprocessing.get_context("spawn").Process(target=_index_and_die, args=(str(killed_db), str(root), 12))
    child.start()
    child.join(120)
    assert child.exitcode == -signal.SIGKILL

    with CollectionStore.open(killed_db) as store:
        partial = faces_per_photo(store)
        assert 0 < len(partial) < len(expected)  # killed mid-way ...
        assert all(expected[path] == n for path, n in partial.items())  # ... with no photo half there:
        assert "x/06.png" in partial and "x/07.png" not in partial  # the 12th face was x/07's third
        report = index_folder(root, store, FakeAnalyzer())
        assert report.unchanged == len(partial) and report.new == len(expected) - len(partial)
        resumed, resumed_table = face_keys(store), store.face_table()
    with CollectionStore.open(clean_db) as store:
        index_folder(root, store, FakeAnalyzer())
        clean, clean_table = face_keys(store), store.face_table()
    assert resumed == clean and max(resumed.values()) == 1  # same faces, none twice
    assert len(resumed_table) == len(clean_table) == sum(expected.values())
    assert np.array_equal(np.sort(resumed_table.embeddings, axis=0), np.sort(clean_table.embeddings, axis=0))


# --- the collection file --------------------------------------------------------------------------


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _sqlite_file(path: Path) -> Path:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
        conn.execute("INSERT INTO notes VALUES ('mine')")
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: _written(p, b""), "is empty"),
        (lambda p: _written(p, b"PK\x03\x04 a zip, say" * 20), "not a SQLite database"),
        (_sqlite_file, "not a faceatlas collection"),
    ],
    ids=["empty", "not-sqlite", "other-sqlite"],
)
def test_a_file_that_is_not_a_collection_is_refused_and_left_alone(tmp_path, make, message):
    path = make(tmp_path / "x.db")
    before = path.read_bytes()
    with pytest.raises(CollectionError, match=message) as info:
        CollectionStore.open(path)
    assert str(path) in str(info.value) and path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.db"]  # no journal, no replacement


def test_a_gallery_is_not_a_collection(tmp_path):
    from faceatlas.gallery.sqlite_store import SqliteStore

    SqliteStore(tmp_path / "g.db").close()
    before = (tmp_path / "g.db").read_bytes()
    with pytest.raises(CollectionError, match="not a faceatlas collection"):
        CollectionStore.open(tmp_path / "g.db")
    assert (tmp_path / "g.db").read_bytes() == before


def test_a_damaged_collection_is_refused_and_left_alone(tree, tmp_path):
    root, _ = tree
    path = tmp_path / "c.db"
    with CollectionStore.open(path) as store:
        index_folder(root, store, FakeAnalyzer())
    data = bytearray(path.read_bytes())
    page = 4096
    data[page * 2 : page * 4] = b"\xa5" * (2 * page)  # garbage over table pages
    path.write_bytes(bytes(data))
    with pytest.raises(CollectionError, match=str(path)):
        CollectionStore.open(path)
    assert path.read_bytes() == bytes(data)


def test_missing_collection_is_not_created_when_asked_not_to(tmp_path):
    with pytest.raises(CollectionError, match="no collection"):
        CollectionStore.open(tmp_path / "none.db", create=False)
    assert not (tmp_path / "none.db").exists()


def test_the_collection_file_says_what_it_is(tmp_path):
    CollectionStore.open(tmp_path / "c.db").close()
    with sqlite3.connect(tmp_path / "c.db") as conn:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == 0x46414343
        assert conn.execute("PRAGMA user_version").fetchone()[0] >= 1
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_another_model_is_refused(tree, store):
    root, _ = tree
    index_folder(root, store, FakeAnalyzer())
    before = face_keys(store)
    with pytest.raises(ModelMismatchError, match="dlib_resnet v1"):
        index_folder(root, store, OtherModelAnalyzer())
    assert face_keys(store) == before
    assert store.model().version == "1"


# --- clusters, constraints, names -----------------------------------------------------------------


def test_clusters_are_stored_listed_and_named(tree, store):
    root, _ = tree
    index_folder(root, store, FakeAnalyzer())
    table = store.face_table()
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, -1])
    assert store.set_clusters(table.face_ids, labels) == 9
    assert np.array_equal(store.face_table().clusters, labels)
    assert [(c.id, c.n_faces) for c in store.clusters()] == [(0, 3), (2, 3), (1, 2)]
    assert [f.id for f in store.cluster_faces(UNASSIGNED)] == [table.face_ids[-1]]
    assert store.cluster_faces(None) == []
    store.name_cluster(1, "Ada")
    with pytest.raises(CollectionError, match="already named"):
        store.name_cluster(2, "Ada")
    with pytest.raises(CollectionError, match="no cluster 7"):
        store.name_cluster(7, "Bob")
    # re-clustered: the named cluster keeps its name even when emptied; an empty unnamed one goes
    store.set_clusters(table.face_ids, np.where(labels == 2, 0, np.where(labels == 1, 3, labels)))
    assert {c.id: (c.name, c.n_faces) for c in store.clusters()} == {0: (None, 6), 1: ("Ada", 0), 3: (None, 2)}
    with pytest.raises(CollectionError, match="one label per face"):
        store.set_clusters(table.face_ids, labels[:3])


def test_constraints_are_stored_and_go_with_their_faces(tree, store):
    root, _ = tree
    index_folder(root, store, FakeAnalyzer())
    faces = {p.path: [f.id for f in store.faces_of_photo(p.id)] for p in store.photos()}
    a0, a1 = faces["a.jpg"]
    (b0,) = faces["b.png"]
    c0 = faces["trip/c.png"][0]
    store.add_constraint(a1, a0, "cannot")  # stored smaller id first
    store.add_constraint(b0, c0, "must")
    store.add_constraint(a0, c0, "must")
    store.add_constraint(c0, a0, "cannot")  # the user changed their mind: replaced
    must, cannot = store.constraints()
    assert must.tolist() == [[min(b0, c0), max(b0, c0)]]
    assert cannot.tolist() == sorted([[a0, a1], [min(a0, c0), max(a0, c0)]])
    for bad, match in [((a0, a0, "must"), "two different"), ((a0, b0, "maybe"), "must' or 'cannot"),
                       ((a0, 10_000, "must"), "no face 10000")]:  # fmt: skip
        with pytest.raises(CollectionError, match=match):
            store.add_constraint(*bad)

    (root / "a.jpg").unlink()  # its faces go, and every constraint naming them
    photo(root / "b.png", 2, who=4, tag=50)  # new content: new faces, old constraints gone
    set_mtime(root / "b.png", 5_000)
    index_folder(root, store, FakeAnalyzer())
    must, cannot = store.constraints()
    assert must.shape == (0, 2) and cannot.shape == (0, 2)


def test_named_clusters_are_enrolled_into_a_gallery(tree, store, tmp_path):
    from faceatlas.gallery.gallery import Gallery

    root, _ = tree
    index_folder(root, store, FakeAnalyzer())
    table = store.face_table()
    c = next(p for p in store.photos() if p.path == "trip/c.png")
    c_faces = [f.id for f in store.faces_of_photo(c.id)]  # three people; the third face has a low quality
    labels = [0 if fid == c_faces[0] else 1 if fid == c_faces[2] else 2 for fid in table.face_ids]
    store.set_clusters(table.face_ids, labels)
    store.name_cluster(0, "Cleo")
    store.name_cluster(1, "Dora <low quality>")
    with Gallery.open(tmp_path / "g.db", analyzer=FakeAnalyzer()) as gallery:
        summary = store.enroll_named(gallery)
        assert summary.added == {"Cleo": 1, "Dora <low quality>": 0} and summary.below_quality == 1
        assert {p.name: p.n_faces for p in gallery.people()} == {"Cleo": 1}  # nobody without a face
        again = store.enroll_named(gallery)
        assert again.added == {"Cleo": 0, "Dora <low quality>": 0} and again.already_enrolled == 1
        probe = table.embeddings[list(table.face_ids).index(c_faces[0])]
        (hit,) = gallery.identify(probe)
        assert hit.person == "Cleo"
        record = gallery.store.face_matrix()
        assert len(record) == 1
    with Gallery.open(tmp_path / "other.db", analyzer=OtherModelAnalyzer()) as other:
        other._bind()
        from faceatlas.gallery.store import ModelMismatchError as GalleryMismatch

        with pytest.raises(GalleryMismatch):
            store.enroll_named(other)


# --- the contact sheet ----------------------------------------------------------------------------


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.srcs: list[str] = []
        self.sections = 0
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a":
            self.hrefs.append(attrs["href"])
        elif tag == "img":
            self.srcs.append(attrs["src"])
        elif tag == "section":
            self.sections += 1

    def handle_data(self, data):
        self.text.append(data)


def test_html_sheet_rows_links_and_escaping(tmp_path, store):
    root = tmp_path / "my photos"
    photo(root / "a & b <1>.png", 2, who=1, tag=1)
    photo(root / "sub dir" / "ü#2.jpg", 1, who=2, tag=2)
    photo(root / "c.png", 3, who=3, tag=3)
    photo(root / "gone.png", 1, who=4, tag=4)
    index_folder(root, store, FakeAnalyzer())
    table = store.face_table()
    labels = np.array([0, 0, 1, 1, 1, -1, 2])
    store.set_clusters(table.face_ids, labels)
    store.name_cluster(2, "<script>alert('x')</script> & Co")
    (root / "gone.png").unlink()  # disappeared since indexing

    out = tmp_path / "sheet"
    result = export_html(store, out, max_faces=2)
    page = (out / "index.html").read_text("utf-8")
    assert "<script>" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; Co" in page
    assert "a &amp; b &lt;1&gt;.png" in page
    parsed = _Links()
    parsed.feed(page)
    assert parsed.sections == 4  # three clusters and Unassigned
    titles = [t.strip() for t in parsed.text if t.strip().startswith(("Person", "<script>", "Unassigned"))]
    assert titles == ["<script>alert('x')</script> & Co", "Person 1", "Person 0", "Unassigned"]
    assert "and 1 more" in page  # cluster 1 has three faces, two shown
    targets = {Path(os.path.normpath(out / urllib.parse.unquote(h))) for h in parsed.hrefs}
    assert all(t.is_file() for t in targets) and root / "a & b <1>.png" in targets
    assert root / "sub dir" / "ü#2.jpg" in targets
    for src in parsed.srcs:
        with Image.open(out / urllib.parse.unquote(src)) as thumb:
            assert thumb.size == (112, 112) and thumb.format == "JPEG"
    assert result.missing == [str(root / "gone.png")] and "missing" in page
    assert len(parsed.srcs) == result.thumbnails == 5  # 2 + 2 + 1 shown; the missing one has no image

    again = export_html(store, out, max_faces=2)
    assert again.thumbnails == 0  # cached by content
    assert (out / "index.html").read_text("utf-8") == page


def test_html_sheet_of_an_unclustered_collection(tree, store, tmp_path):
    root, _ = tree
    index_folder(root, store, FakeAnalyzer())
    export_html(store, tmp_path / "sheet")
    page = (tmp_path / "sheet" / "index.html").read_text("utf-8")
    assert "Not clustered yet" in page and "Unassigned" in page and page.count("<img") == 9


# --- the command line -----------------------------------------------------------------------------


def test_cli_index_and_export(tree, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import faceatlas.pipeline
    from faceatlas.cli import app

    root, _ = tree
    monkeypatch.setattr(faceatlas.pipeline, "FaceAnalyzer", FakeAnalyzer)
    db = tmp_path / "c.db"
    runner = CliRunner()
    first = runner.invoke(app, ["index", str(root), "--db", str(db)])
    assert first.exit_code == 3 and "6 new" in first.output and "broken.jpg" in first.output  # one unreadable
    again = runner.invoke(app, ["index", str(root), "--db", str(db)])
    assert again.exit_code == 0 and "7 unchanged" in again.output
    monkeypatch.setenv("FACEATLAS_COLLECTION", str(db))
    export = runner.invoke(app, ["export", "--html", str(tmp_path / "sheet")])
    assert export.exit_code == 0 and (tmp_path / "sheet" / "index.html").is_file()
    assert runner.invoke(app, ["export"]).exit_code == 2
    missing = runner.invoke(app, ["export", "--html", str(tmp_path / "x"), "--db", str(tmp_path / "none.db")])
    assert missing.exit_code == 3 and "no collection" in missing.output
    (tmp_path / "junk.db").write_bytes(b"junk" * 10)
    junk = runner.invoke(app, ["index", str(root), "--db", str(tmp_path / "junk.db")])
    assert junk.exit_code == 3 and "not a SQLite database" in junk.output


def test_cli_end_to_end_with_the_real_models(tmp_path):
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image provides the test photo")
    root = tmp_path / "photos"
    root.mkdir()
    Image.fromarray(skimage_data.astronaut()).save(root / "astronaut.jpg")
    db, sheet = tmp_path / "c.db", tmp_path / "sheet"

    def cli(*args: object) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "faceatlas.cli", *map(str, args)], capture_output=True, text=True, check=False
        )

    index = cli("index", root, "--db", db)
    assert index.returncode == 0, index.stderr
    assert "1 new" in index.stdout
    with CollectionStore.open(db) as store:
        assert store.model().name == "dlib_resnet"
        (astronaut,) = store.photos()
        faces = store.faces_of_photo(astronaut.id)
        assert (astronaut.width, astronaut.height) == (512, 512) and faces
    x1, y1, x2, y2 = faces[0].box  # the largest face is hers (the detector may add a small one on the suit)
    assert 170 < (x1 + x2) / 2 < 280 and 50 < (y1 + y2) / 2 < 180
    export = cli("export", "--html", sheet, "--db", db)
    assert export.returncode == 0, export.stderr
    thumbs = list((sheet / "faces").iterdir())
    assert len(thumbs) == len(faces) and "Not clustered yet" in (sheet / "index.html").read_text("utf-8")
    with Image.open(thumbs[0]) as image:
        assert image.size == (112, 112)
