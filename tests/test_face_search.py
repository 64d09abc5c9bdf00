"""Search by example over every face of a collection (faceatlas.collection.search): filters, the
open-set answer, recall of filtered search against exact, catching up with the store, CLI, REST."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from faceatlas.collection.search import (
    EmptyCollectionError,
    FaceFilter,
    FaceSearcher,
    SearchFilterError,
    search_faces,
)
from faceatlas.collection.store import ClusterNotFoundError, CollectionStore, FaceNotFoundError, NewPhoto
from faceatlas.errors import InvalidArgumentError, NoFaceError
from faceatlas.gallery.gallery import open_set_threshold
from faceatlas.gallery.store import ModelTag
from faceatlas.models.cards import DLIB_RESNET_CARD
from faceatlas.types import Box, Face, Landmarks, Pose, Quality

DIM = 128
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "face_recognition_examples" / "examples"
PEOPLE = 12
ROOT = "/photos"
FOLDERS = ("2019/trip", "2019/home", "2020", "2021/party/late")


# --- a synthetic collection in a real SQLite store -----------------------------------------------


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def fake_face(vector: np.ndarray, k: int = 0) -> Face:
    size = 60 - 10 * k
    return Face(
        box=Box(5 + 70 * k, 5, 5 + 70 * k + size, 5 + size),
        score=0.99,
        landmarks=Landmarks(np.full((5, 2), 30.0)),
        pose=Pose(0.0, 0.0, 0.0),
        quality=Quality(0.9, 1, 1, 1, 1, 1),
        embedding=vector,
    )


class Truth:
    """What each stored face is, to compute every filter's answer by brute force."""

    def __init__(self) -> None:
        self.person: dict[int, int] = {}
        self.vector: dict[int, np.ndarray] = {}
        self.folder: dict[int, str] = {}
        self.taken: dict[int, str | None] = {}


def fill(store: CollectionStore, rng: np.random.Generator, photos: int, centers: np.ndarray, start: int = 0) -> dict:
    """Photos of 1-2 faces of random people in FOLDERS, most with a capture time; returns per face
    (person, vector, folder, taken_at)."""
    batch, meta = [], []
    for i in range(start, start + photos):
        folder = FOLDERS[i % len(FOLDERS)]
        who = rng.choice(PEOPLE, size=1 + (i % 3 == 0), replace=False)
        vectors = [unit(centers[p] + 0.015 * rng.standard_normal(DIM)) for p in who]
        taken = None if i % 7 == 0 else f"20{19 + i % 3}-{1 + i % 12:02d}-{1 + i % 28:02d}T12:00:{i % 60:02d}"
        faces = [fake_face(v, k) for k, v in enumerate(vectors)]
        batch.append(NewPhoto(f"{folder}/p{i:04d}.jpg", ROOT, f"{i:064x}", 1, i, 200, 100, faces, taken_at=taken))
        meta.append([(int(p), v, folder, taken) for p, v in zip(who, vectors, strict=True)])
    ids = store.add_photos(batch)
    found = {}
    for photo_id, faces in zip(ids, meta, strict=True):
        for info, (person, vector, folder, taken) in zip(store.faces_of_photo(photo_id), faces, strict=True):
            found[info.id] = (person, vector, folder, taken)
    return found


@pytest.fixture
def collection(tmp_path):
    """120 photos, ~160 faces of 12 people; clustered by person except people 10 and 11 (unassigned
    and never clustered); people 0 and 1 named."""
    rng = np.random.default_rng(7)
    centers = unit(rng.standard_normal((PEOPLE + 5, DIM)))  # the last five are strangers
    store = CollectionStore.open(tmp_path / "c.db")
    store.bind_model(ModelTag(DLIB_RESNET_CARD.name, DLIB_RESNET_CARD.version, DIM))
    faces = fill(store, rng, 120, centers)
    labels = {fid: (p if p < 10 else -1) for fid, (p, *_rest) in faces.items() if p != 11}
    store.set_clusters(list(labels), list(labels.values()))
    store.name_cluster(0, "Ada")
    store.name_cluster(1, "Bob")
    yield store, faces, centers, rng
    store.close()


def expected(faces: dict, query: np.ndarray, allowed) -> list[int]:
    """Every face the filter allows, best first (ties by id), by brute force."""
    chosen = [fid for fid, info in faces.items() if allowed(fid, *info)]
    return sorted(chosen, key=lambda fid: (-float(faces[fid][1] @ query), fid))


def cluster_of(person: int) -> int | None:
    return None if person == 11 else (person if person < 10 else -1)


FILTERS = [
    (FaceFilter(), lambda fid, p, v, folder, taken: True),
    (FaceFilter(folder="2019"), lambda fid, p, v, folder, taken: folder.startswith("2019/")),
    (FaceFilter(folder="/photos/2021/party"), lambda fid, p, v, folder, taken: folder == "2021/party/late"),
    (
        FaceFilter(taken_from="2020-03-01", taken_to="2020-06-30"),
        lambda fid, p, v, folder, taken: taken is not None and "2020-03-01" <= taken <= "2020-06-30T23:59:59",
    ),
    (FaceFilter(taken_from="2021-01-01"), lambda fid, p, v, folder, taken: taken is not None and taken >= "2021"),
    (FaceFilter(person="ada"), lambda fid, p, v, folder, taken: p == 0),
    (FaceFilter(clusters=(2, 3)), lambda fid, p, v, folder, taken: p in (2, 3)),
    (FaceFilter(clusters=(-1,)), lambda fid, p, v, folder, taken: p == 10),
    (FaceFilter(unnamed=True), lambda fid, p, v, folder, taken: p not in (0, 1)),
    (
        FaceFilter(unnamed=True, folder="2020", taken_to="2020-08-01"),
        lambda fid, p, v, folder, taken: (
            p not in (0, 1) and folder == "2020" and taken is not None and taken <= "2020-08-01T23:59:59"
        ),
    ),
]


@pytest.mark.parametrize(("wanted", "allowed"), FILTERS)
def test_each_filter_returns_exactly_the_faces_it_allows_best_first(collection, wanted, allowed):
    store, faces, centers, _ = collection
    searcher = FaceSearcher(store)
    query = centers[4]
    result = searcher.search(query, k=1000, filter=wanted)
    want = expected(faces, query, allowed)
    assert [h.face.id for h in result.hits] == want
    assert result.searched == len(want) and result.total == len(faces)
    assert result.strategy == ("exact" if not wanted.active else "exact-prefilter")
    for hit in result.hits:
        assert hit.similarity == pytest.approx(float(faces[hit.face.id][1] @ query), abs=1e-5)
        assert hit.taken_at == faces[hit.face.id][3]
        assert hit.person == {0: "Ada", 1: "Bob"}.get(faces[hit.face.id][0])


def test_a_known_face_matches_and_a_stranger_is_no_match_calibrated_by_fpir(collection):
    store, faces, centers, _ = collection
    searcher = FaceSearcher(store)
    known = searcher.search(unit(centers[3] + 0.01), k=5, fpir=0.01)
    threshold, _ = open_set_threshold(DLIB_RESNET_CARD, 0.01, len(faces))
    assert known.matched and known.threshold == pytest.approx(threshold)
    assert all(h.above_threshold for h in known.hits) and {faces[h.face.id][0] for h in known.hits} == {3}
    stranger = searcher.search(centers[PEOPLE], k=5)
    assert not stranger.matched and len(stranger.hits) == 5  # the nearest faces, all the same
    assert not any(h.above_threshold for h in stranger.hits)
    assert "no match at FPIR 0.01" in stranger.describe()
    # fewer faces searched: fewer comparisons, so a looser threshold for the same FPIR
    narrow = searcher.search(centers[3], k=5, filter=FaceFilter(folder="2020"))
    assert narrow.threshold == pytest.approx(open_set_threshold(DLIB_RESNET_CARD, 0.01, narrow.searched)[0])
    assert narrow.threshold <= known.threshold


@pytest.mark.parametrize("exact_below", [0, 10**9])
def test_filtered_hnsw_search_has_the_recall_of_exact_on_random_filters(collection, exact_below):
    store, _faces, centers, rng = collection
    exact = FaceSearcher(store, kind="exact")
    approximate = FaceSearcher(store, kind="hnsw")
    len(approximate)  # builds the index
    index = approximate._index  # force the graph walk, or the pre-filter
    index.filter_exact_below, index.filter_exact_fraction = exact_below, (0.0 if exact_below == 0 else 1.0)
    strategies, agree, total = set(), 0, 0
    for trial in range(25):
        wanted = FaceFilter(
            folder=rng.choice([None, "2019", "2020", "2021"]),
            clusters=tuple(int(c) for c in rng.choice(10, size=rng.integers(0, 4), replace=False)),
            taken_from=rng.choice([None, "2019-06-01", "2020-01-01"]),
        )
        query = unit(centers[trial % PEOPLE] + 0.05 * rng.standard_normal(DIM))
        try:
            truth = exact.search(query, k=10, filter=wanted)
        except SearchFilterError:  # a folder no photo is under is refused by both
            continue
        got = approximate.search(query, k=10, filter=wanted)
        strategies.add(got.strategy)
        assert got.searched == truth.searched
        assert [h.face.id for h in got.hits][:1] == [h.face.id for h in truth.hits][:1]
        agree += len({h.face.id for h in got.hits} & {h.face.id for h in truth.hits})
        total += len(truth.hits)
    assert agree / total >= 0.98
    assert strategies <= {"ann", "ann-filtered", "exact-prefilter"}
    assert ("ann-filtered" in strategies) == (exact_below == 0) and ("exact-prefilter" in strategies) != (
        exact_below == 0
    )


def test_the_searcher_catches_up_with_new_faces_clusters_names_and_deletions(collection):
    store, faces, centers, rng = collection
    searcher = FaceSearcher(store, kind="hnsw")
    assert searcher.search(centers[5], k=3).searched == len(faces)
    index, reads = searcher._index, searcher.refreshes
    assert not searcher.refresh() and searcher.refreshes == reads  # nothing changed: nothing re-read
    more = fill(store, rng, 10, centers, start=1000)
    result = searcher.search(centers[5], k=1000)
    assert result.searched == len(faces) + len(more) and searcher._index is index  # added to, not rebuilt
    new_face = next(iter(more))
    store.set_clusters([new_face], [7])
    assert new_face in {h.face.id for h in searcher.search(centers[5], k=1000, filter=FaceFilter(clusters=(7,))).hits}
    store.name_cluster(7, "Cy")  # names are read at every search
    assert searcher.search(centers[5], k=1000, filter=FaceFilter(person="CY")).searched >= 1
    gone = store.faces_of_photo(store.face(new_face).photo_id)
    store.remove_photos([store.face(new_face).path], ROOT)
    ids = {h.face.id for h in searcher.search(centers[5], k=1000).hits}
    assert not ids & {f.id for f in gone}
    before = searcher.search(centers[5], k=1000).searched
    with CollectionStore.open(store.path) as other:  # another connection (another process, as the CLI)
        added = fill(other, rng, 3, centers, start=2000)
    assert searcher.search(centers[5], k=1000).searched == before + len(added)


def test_search_by_a_stored_face_leaves_that_face_out(collection):
    store, faces, _, _ = collection
    face_id = next(fid for fid, info in faces.items() if info[0] == 2)
    result = search_faces(store, face_id, k=5)
    assert face_id not in {h.face.id for h in result.hits}
    assert result.matched and {faces[h.face.id][0] for h in result.hits} == {2}
    with pytest.raises(FaceNotFoundError, match="no face 99999"):
        search_faces(store, 99999)


@pytest.mark.parametrize(
    ("wanted", "error", "said"),
    [
        (FaceFilter(person="Nobody"), SearchFilterError, "no person named 'Nobody'"),
        (FaceFilter(taken_from="last tuesday"), SearchFilterError, "YYYY-MM-DD"),
        (FaceFilter(taken_to="2020-13-01"), SearchFilterError, "is not a date"),
        (FaceFilter(taken_from="2021-01-01", taken_to="2020-01-01"), SearchFilterError, "swap them"),
        (FaceFilter(folder="2018"), SearchFilterError, "no photo of the collection is under folder '2018'"),
        (FaceFilter(folder="../etc"), SearchFilterError, "'..'"),
        (FaceFilter(clusters=(77,)), ClusterNotFoundError, "no cluster 77"),
        (FaceFilter(clusters=(-5,)), SearchFilterError, "-1 for unassigned"),
    ],
)
def test_bad_filters_are_typed_errors_that_say_what_is_accepted(collection, wanted, error, said):
    store, _, centers, _ = collection
    with pytest.raises(error, match=said.replace("(", r"\(").replace(".", r"\.")):
        FaceSearcher(store).search(centers[0], filter=wanted)


def test_bad_probes_and_an_empty_collection(collection, tmp_path):
    store, _, centers, _ = collection
    searcher = FaceSearcher(store)
    with pytest.raises(InvalidArgumentError, match=r"\(128,\) float array"):
        searcher.search(np.ones(64, np.float32))
    with pytest.raises(InvalidArgumentError, match="k must be"):
        searcher.search(centers[0], k=0)
    with pytest.raises(InvalidArgumentError, match="fpir"):
        searcher.search(centers[0], fpir=1.5)
    with CollectionStore.open(tmp_path / "empty.db") as empty:
        with pytest.raises(EmptyCollectionError, match="holds no face yet"):
            FaceSearcher(empty).search(centers[0])
        with pytest.raises(EmptyCollectionError, match="index photos first"):
            search_faces(empty, np.zeros((8, 8, 3), np.uint8))


def test_an_image_without_a_face_is_a_typed_error(collection):
    store, _, _, _ = collection

    class NoFaces:
        class embedder:
            card = DLIB_RESNET_CARD
            dim = DIM

        def analyze(self, image):
            return []

    with pytest.raises(NoFaceError, match="no face found"):
        search_faces(store, np.zeros((32, 32, 3), np.uint8), analyzer=NoFaces())


def test_the_index_layer_filters_every_kind_alike():
    """``search(..., allowed=)`` on the shared index: exact, HNSW (both strategies), IVF-PQ."""
    from faceatlas.vector_index import ExactIndex, HNSWIndex, IVFPQIndex

    rng = np.random.default_rng(3)
    centers = unit(rng.standard_normal((300, DIM)))
    x = unit(centers[rng.integers(0, 300, 3000)] + 0.05 * rng.standard_normal((3000, DIM)))
    ids = rng.permutation(100_000)[:3000].astype(np.int64)
    queries = unit(centers[:20] + 0.05 * rng.standard_normal((20, DIM)))
    allowed = np.concatenate([ids[rng.random(3000) < 0.2], [999_999]])  # an id not stored is ignored
    exact = ExactIndex(DIM)
    exact.add(ids, x)
    mask = np.isin(ids, allowed)
    brute = ids[mask][np.argsort(-(queries @ x[mask].T), axis=1, kind="stable")[:, :5]]
    assert (exact.search(queries, 5, allowed=allowed)[1] == brute).all()
    assert (exact.search(queries, 5, allowed=np.zeros(0, np.int64))[1] == -1).all()
    hnsw = HNSWIndex(DIM, filter_exact_below=0)
    hnsw.add(ids, x)
    ivf = IVFPQIndex(DIM, min_train=1000, nlist=16, nprobe=16)
    ivf.add(ids, x)
    for index in (hnsw, ivf):
        got = index.search(queries, 5, allowed=allowed)[1]
        assert np.isin(got, allowed).all()
        assert (got[:, 0] == brute[:, 0]).mean() >= 0.95
    hnsw.remove(brute[:, 0])  # removed ids never come back, filtered or not
    assert not np.isin(hnsw.search(queries, 5, allowed=allowed)[1], brute[:, 0]).any()
    assert np.allclose(exact.vectors(ids[[5, 2]]), x[[5, 2]]) and np.allclose(ivf.vectors(ids[[7]]), x[[7]])


# --- the command line ---------------------------------------------------------------------------


def test_cli_search_by_face_id_with_filters_and_json(collection):
    from faceatlas.cli import app

    store, faces, _, _ = collection
    face_id = next(fid for fid, info in faces.items() if info[0] == 0)
    db = str(store.path)
    runner = CliRunner()
    out = runner.invoke(app, ["search", "--face-id", str(face_id), "--db", db, "-k", "3", "--json"])
    assert out.exit_code == 0, out.output
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(lines) == 4 and lines[-1]["summary"]["matched"] is True
    assert all(line["person"] == "Ada" and line["match"] for line in lines[:3])
    assert set(lines[0]) >= {"face_id", "photo", "box", "similarity", "cluster", "taken_at"}
    table = runner.invoke(app, ["search", "--face-id", str(face_id), "--db", db, "--folder", "2020", "--unnamed"])
    assert table.exit_code == 1 and "no match at FPIR 0.01" in table.stdout  # Ada is named: only others
    bad = runner.invoke(app, ["search", "--face-id", str(face_id), "--db", db, "--person", "Zed"])
    assert bad.exit_code == 3 and "no person named 'Zed'" in bad.output
    date = runner.invoke(app, ["search", "--face-id", str(face_id), "--db", db, "--from", "yesterday"])
    assert date.exit_code == 3 and "YYYY-MM-DD" in date.output
    neither = runner.invoke(app, ["search", "--db", db])
    assert neither.exit_code == 2 and "--face-id" in neither.output


# --- real faces ---------------------------------------------------------------------------------

REAL = ("obama.jpg", "obama2.jpg", "biden.jpg", "two_people.jpg", "alex-lacamoire.png")


@pytest.fixture(scope="module")
def real_collection(tmp_path_factory):
    if not all((DATA / name).exists() for name in (*REAL, "obama-480p.jpg", "lin-manuel-miranda.png")):
        pytest.skip(f"the face_recognition example photos are not in {DATA}")
    from faceatlas.collection.indexer import index_folder

    root = tmp_path_factory.mktemp("real") / "photos"
    for k, name in enumerate(REAL):
        (root / ("old" if k % 2 else "new")).mkdir(parents=True, exist_ok=True)
        shutil.copy(DATA / name, root / ("old" if k % 2 else "new") / name)
    store = CollectionStore.open(root.parent / "c.db")
    index_folder(root, store)
    yield store, root
    store.close()


def test_real_faces_are_found_and_a_stranger_is_no_match(real_collection):
    store, _root = real_collection
    from faceatlas.pipeline import FaceAnalyzer

    analyzer = FaceAnalyzer()
    found = search_faces(store, DATA / "obama-480p.jpg", k=10, analyzer=analyzer)
    names = [Path(h.face.path).name for h in found.hits if h.above_threshold]
    assert found.matched and names and set(names) <= {"obama.jpg", "obama2.jpg", "two_people.jpg"}
    assert {"obama.jpg", "obama2.jpg"} <= set(names)
    stranger = search_faces(store, DATA / "lin-manuel-miranda.png", k=3, analyzer=analyzer)
    assert not stranger.matched and stranger.hits and not any(h.above_threshold for h in stranger.hits)
    only_old = search_faces(store, DATA / "obama-480p.jpg", k=10, analyzer=analyzer, filter=FaceFilter(folder="old"))
    assert {Path(h.face.path).parent.name for h in only_old.hits} == {"old"}
    assert only_old.searched < found.searched
    from faceatlas.cli import app

    out = CliRunner().invoke(app, ["search", str(DATA / "lin-manuel-miranda.png"), "--db", str(store.path), "-k", "2"])
    assert out.exit_code == 1 and "no match at FPIR 0.01" in out.stdout and "the nearest faces are listed" in out.stdout
    out = CliRunner().invoke(app, ["search", str(DATA / "obama-480p.jpg"), "--db", str(store.path), "--json"])
    assert out.exit_code == 0 and json.loads(out.stdout.splitlines()[0])["photo"].endswith(("obama.jpg", "obama2.jpg"))


# --- the service --------------------------------------------------------------------------------


@pytest.fixture
def service(tmp_path):
    from test_server_collection import make_service

    svc = make_service(tmp_path)
    with svc.client:
        yield svc


def _png(path: Path, faces: int, who: int) -> bytes:
    from test_server_collection import photo

    return photo(path, faces, who, 77).read_bytes()


def test_rest_search_by_image_and_by_face_with_filters(service, tmp_path):
    from test_server_collection import WHO

    empty = service.call("POST", "/v1/search/faces", scope="read", data={"face_id": "1"})
    assert empty.status_code == 404  # no face 1 yet
    probe = {"image": ("a.png", _png(tmp_path / "probe" / "a.png", 1, WHO["A"]), "image/png")}
    nothing = service.call("POST", "/v1/search/faces", scope="read", files=probe)
    assert nothing.status_code == 409 and "holds no face yet" in nothing.json()["error"]["message"]
    assert str(tmp_path) not in nothing.text  # the server's files are not named
    service.index()
    service.cluster()
    service.learn_faces()
    a_faces = set(service.faces_of("A"))
    found = service.ok("POST", "/v1/search/faces", scope="read", files=probe, data={"k": "10"})
    assert found["matched"] and found["searched"] == len(service.person) and found["strategy"] == "exact"
    assert {h["face_id"] for h in found["hits"] if h["match"]} == a_faces
    assert set(found["hits"][0]) >= {"path", "box", "similarity", "cluster_id", "person", "taken_at"}
    by_face = service.ok("POST", "/v1/search/faces", scope="read", data={"face_id": str(min(a_faces)), "k": "3"})
    assert min(a_faces) not in {h["face_id"] for h in by_face["hits"]} and by_face["matched"]
    in_trip = service.ok("POST", "/v1/search/faces", scope="read", files=probe, data={"folder": "trip"})
    assert {h["path"] for h in in_trip["hits"]} == {"trip/group.jpg"} and in_trip["strategy"] == "exact-prefilter"
    cid = next(iter({service.cluster_of(f) for f in a_faces}))
    service.ok("PATCH", f"/v1/collection/clusters/{cid}", json={"name": "Ada"})
    named = service.ok("POST", "/v1/search/faces", scope="read", files=probe, data={"person": "ada"})
    assert {h["face_id"] for h in named["hits"]} == a_faces and all(h["person"] == "Ada" for h in named["hits"])
    unnamed = service.ok("POST", "/v1/search/faces", scope="read", files=probe, data={"unnamed": "true"})
    assert not unnamed["matched"] and not {h["face_id"] for h in unnamed["hits"]} & a_faces
    by_cluster = service.ok("POST", "/v1/search/faces", scope="read", files=probe, data={"cluster": [str(cid)]})
    assert {h["face_id"] for h in by_cluster["hits"]} == a_faces
    # a later index job: the service's searcher catches up
    from test_server_collection import photo

    photo(service.root / "later" / "a9.png", 1, WHO["A"], 99)
    service.index()
    again = service.ok("POST", "/v1/search/faces", scope="read", files=probe, data={"k": "20"})
    assert again["searched"] == found["searched"] + 1
    assert sum(h["match"] for h in again["hits"]) == len(a_faces) + 1


def test_rest_search_leaves_private_people_out_for_keys_that_may_not_see_them(service, tmp_path):
    from test_server_collection import WHO

    service.index()
    service.cluster()
    service.learn_faces()
    a_faces = set(service.faces_of("A"))
    cid = next(iter({service.cluster_of(f) for f in a_faces}))
    service.ok("PATCH", f"/v1/collection/clusters/{cid}", json={"name": "Ada"})
    service.ok("PUT", f"/v1/collection/clusters/{cid}/private", scope="admin", json={"private": True})
    probe = {"image": ("a.png", _png(tmp_path / "probe" / "a.png", 1, WHO["A"]), "image/png")}
    seen = service.ok("POST", "/v1/search/faces", scope="admin", files=probe)
    assert {h["face_id"] for h in seen["hits"] if h["match"]} == a_faces
    unseen = service.ok("POST", "/v1/search/faces", scope="read", files=probe)
    assert not {h["face_id"] for h in unseen["hits"]} & a_faces and not unseen["matched"]
    assert unseen["searched"] == seen["searched"] - len(a_faces) and unseen["total"] == unseen["searched"]
    for data, status in (
        ({"person": "Ada"}, 400),
        ({"cluster": [str(cid)]}, 404),
        ({"face_id": str(min(a_faces))}, 404),
    ):
        response = service.call(
            "POST", "/v1/search/faces", scope="read", files=None if "face_id" in data else probe, data=data
        )
        assert response.status_code == status and "Ada" not in response.text.replace("'Ada'", ""), response.text


def test_rest_search_refuses_bad_input_with_messages(service, tmp_path):
    from test_server_collection import WHO

    service.index()
    service.cluster()
    probe = {"image": ("a.png", _png(tmp_path / "probe" / "a.png", 1, WHO["A"]), "image/png")}

    def refused(status: int, said: str, **kwargs) -> None:
        response = service.call("POST", "/v1/search/faces", scope="read", **kwargs)
        assert response.status_code == status and said in response.json()["error"]["message"], response.text

    refused(400, "no person named 'Zed'", files=probe, data={"person": "Zed"})
    refused(400, "YYYY-MM-DD", files=probe, data={"taken_from": "soon"})
    refused(400, "no photo of the collection is under folder", files=probe, data={"folder": "nowhere"})
    refused(404, "no cluster 999", files=probe, data={"cluster": ["999"]})
    refused(400, "exactly one of image", files=probe, data={"face_id": "1"})
    refused(400, "exactly one of image", data={})
    faceless = {"image": ("n.png", _png(tmp_path / "probe" / "n.png", 0, 1), "image/png")}
    refused(422, "no face found", files=faceless)
    refused(415, "not an image", files={"image": ("x.png", b"not an image", "image/png")})
    assert service.call("POST", "/v1/search/faces", scope=None, files=probe).status_code == 401


def test_the_searcher_reads_either_backend_and_catches_up(collection_target):
    """The fingerprint and name queries are portable SQL: SQLite and PostgreSQL alike."""
    rng = np.random.default_rng(11)
    centers = unit(rng.standard_normal((PEOPLE, DIM)))
    with CollectionStore.open(collection_target) as store:
        store.bind_model(ModelTag(DLIB_RESNET_CARD.name, DLIB_RESNET_CARD.version, DIM))
        faces = fill(store, rng, 20, centers)
        searcher = FaceSearcher(store)
        first = searcher.search(centers[1], k=100, filter=FaceFilter(folder="2019", taken_from="2019-01-01"))
        assert [h.face.id for h in first.hits] == expected(
            faces, centers[1], lambda fid, p, v, folder, taken: folder.startswith("2019/") and taken is not None
            and taken >= "2019-01-01"
        )  # fmt: skip
        assert not searcher.refresh()
        ids = list(faces)
        store.set_clusters(ids, [faces[f][0] for f in ids])
        store.name_cluster(3, "Dee")
        named = searcher.search(centers[3], k=100, filter=FaceFilter(person="dee"))
        assert {h.face.id for h in named.hits} == {f for f in ids if faces[f][0] == 3}
        assert all(h.person == "Dee" for h in named.hits)


def test_the_benchmark_runs_in_quick_mode():
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "face_search.py"
    run = subprocess.run(
        [sys.executable, str(script), "--quick"], check=False, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    auto = [line for line in run.stdout.splitlines() if line.startswith("| 5,000 |") and "| auto |" in line]
    assert len(auto) == 5 and all(float(line.split("|")[5]) >= 0.99 for line in auto)
