"""`faceatlas reembed`: a gallery or a collection moves to another embedder in place, resumably,
keeping every face's id and so people, names and corrections; spaces never mix (issue 13, item 5).

Real detection (the default detector) and dlib_resnet on photos every machine has (Grace Hopper,
the astronaut), and a toy 512-d ArcFace-style ONNX embedder (tests/byo_graphs.py) as the other model."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import byo_graphs
import numpy as np
import pytest
from PIL import Image

from faceatlas.collection.corrections import merge_clusters
from faceatlas.collection.grouping import cluster_collection
from faceatlas.collection.indexer import index_folder
from faceatlas.collection.store import CollectionStore
from faceatlas.errors import ModelError, ModelMismatchError
from faceatlas.gallery.gallery import Gallery
from faceatlas.gallery.store import ModelTag, open_store
from faceatlas.pipeline import FaceAnalyzer
from faceatlas.reembed import (
    MissingPhotosError,
    NotAStoreError,
    UnmatchedFacesError,
    label_figures,
    plan_collection,
    plan_gallery,
    reembed_collection,
    reembed_gallery,
    store_kind,
)
from faceatlas.reembed.staging import TABLE

DLIB = ModelTag("dlib_resnet", "1", 128)


# -- fixtures: photos, the two models, a clustered and named collection ------------------------------


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory, grace_hopper: np.ndarray, astronaut: np.ndarray) -> Path:
    """Three photos of Grace Hopper, three of the astronaut, one of both."""
    root = tmp_path_factory.mktemp("photos")
    small = np.asarray(Image.fromarray(grace_hopper).resize((384, 409)))
    both = np.concatenate([np.asarray(Image.fromarray(grace_hopper).resize((480, 512))), astronaut], axis=1)
    images = {
        "grace/a.jpg": grace_hopper,
        "grace/b.png": grace_hopper[:, ::-1],
        "grace/c.png": small,
        "astro/a.png": astronaut,
        "astro/b.png": astronaut[:, ::-1],
        "astro/c.png": astronaut[20:400, 60:460],
        "both.png": both,
    }
    for name, pixels in images.items():
        (root / name).parent.mkdir(exist_ok=True)
        Image.fromarray(np.ascontiguousarray(pixels)).save(root / name, quality=95)
    return root


@pytest.fixture(scope="module")
def toy_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return byo_graphs.arcface(tmp_path_factory.mktemp("byo") / "toy512.onnx")


@pytest.fixture(scope="module")
def toy(toy_path: Path) -> FaceAnalyzer:
    return FaceAnalyzer(embedder=str(toy_path)).load()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, photos: Path, analyzer: FaceAnalyzer) -> Path:
    """A dlib collection of the photos, clustered, both people named, with a must- and a cannot-link."""
    db = tmp_path_factory.mktemp("built") / "c.db"
    with CollectionStore.open(db) as store:
        index_folder(photos, store, analyzer)
        cluster_collection(store)
        named: dict[str, int] = {}
        for info in store.clusters():  # largest first: it takes the name, the others are merged into it
            names = {Path(f.path).parts[0] for f in store.cluster_faces(info.id)} - {"both.png"}
            if names not in ({"grace"}, {"astro"}):
                continue
            name = names.pop()
            if name in named:
                merge_clusters(store, info.id, named[name])  # a correction of the user's (a must-link)
            else:
                store.name_cluster(info.id, name)
                named[name] = info.id
        faces = store.face_table().face_ids.tolist()
        store.add_constraint(faces[0], faces[1], "must")
        store.add_constraint(faces[0], faces[-1], "cannot")
    return db


def copy_collection(built: Path, photos: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The built collection and its photos, copied (photos' times kept, their root re-pointed)."""
    root = tmp_path / "photos"
    shutil.copytree(photos, root, copy_function=shutil.copy2)
    db = tmp_path / "c.db"
    shutil.copy(built, db)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE photos SET root = ?", (str(root.resolve()),))
    return db, root


def snapshot(store: CollectionStore) -> dict:
    """Everything a re-embedding must keep: faces (id, photo, box, cluster), names, constraints."""
    table = store.face_table()
    faces = {f: store.face(f) for f in table.face_ids.tolist()}
    must, cannot = store.constraints()
    return {
        "faces": {f: (info.photo_id, info.path, info.box, info.idx, info.cluster) for f, info in faces.items()},
        "clusters": sorted((c.id, c.name, c.n_faces) for c in store.clusters()),
        "constraints": (must.tolist(), cannot.tolist()),
        "photos": [(p.id, p.path, p.sha256) for p in store.photos()],
    }


def staged_rows(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (TABLE,)).fetchone() is None:
            return -1  # no staging table
        return int(conn.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0])


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# -- collections -------------------------------------------------------------------------------------


def test_collection_moves_to_another_model_and_back(built, photos, tmp_path, analyzer, toy):
    db, root = copy_collection(built, photos, tmp_path)
    with CollectionStore.open(db) as store:
        kept = snapshot(store)
        original = np.array(store.face_table().embeddings)
        assert store.model() == DLIB and len(kept["faces"]) == 8
        assert {name for _, name, _ in kept["clusters"]} >= {"grace", "astro"}

        report = reembed_collection(store, toy)
        assert report.switched and report.embedded == 8 and report.resumed == 0 and not report.removed
        assert store.model() == ModelTag(toy.embedder.card.name, toy.embedder.card.version, 512)
        assert snapshot(store) == kept  # ids, photos, boxes, clusters, names, constraints
        table = store.face_table()
        assert table.embeddings.shape == (8, 512)
        np.testing.assert_allclose(np.linalg.norm(table.embeddings, axis=1), 1.0, atol=1e-5)
        # each face embedded at its own landmarks: what the new analyzer gives the same photo, detected afresh
        face = store.face(int(table.face_ids[0]))
        fresh = max(toy.analyze(root / face.path), key=lambda f: f.box.iou(type(f.box)(*face.box)))
        assert cosine_rows(table.embeddings[:1], fresh.embedding[None])[0] > 0.999
        assert staged_rows(db) == -1  # the staging table went with the switch
        # the figures: on the named faces, both spaces; dlib tells these two people apart perfectly
        assert report.before is not None and report.after is not None
        assert report.before.faces == report.after.faces >= 6 and report.before.labels == 2
        assert report.before.rank1 == 1.0 and report.before.d_prime is not None and report.before.d_prime > 2
        assert report.before.threshold is not None and report.after.threshold is None  # a toy model: no card thresholds
        text = "\n".join(report.lines())
        assert "now holds onnx:toy512" in text and "before (dlib_resnet v1" in text and "rank-1 100.0%" in text
        assert "faceatlas cluster --full" in text

        back = reembed_collection(store, analyzer)
        assert back.switched and back.source == report.target and store.model() == DLIB
        assert snapshot(store) == kept
        # back where it started: the same crops (dlib's shape predictor on the stored boxes), the same vectors
        np.testing.assert_allclose(store.face_table().embeddings, original, atol=1e-4)
        assert reembed_collection(store, analyzer).switched is False  # nothing to do


def test_a_killed_collection_run_resumes_and_the_store_stays_usable(
    built, photos, tmp_path, analyzer, toy, monkeypatch
):
    db, root = copy_collection(built, photos, tmp_path)
    calls: list[int] = []
    real = toy.embed_faces

    def dies_on_the_third_photo(image, faces):
        calls.append(len(faces))
        if len(calls) == 3:
            raise KeyboardInterrupt  # as Ctrl-C, or a kill, mid-run
        return real(image, faces)

    with CollectionStore.open(db) as store:
        kept = snapshot(store)
        monkeypatch.setattr(toy, "embed_faces", dies_on_the_third_photo)
        with pytest.raises(KeyboardInterrupt):
            reembed_collection(store, toy)
        staged = sum(calls[:2])
        assert staged_rows(db) == staged  # the two photos done before are kept
        assert store.model() == DLIB and store.face_table().embeddings.shape[1] == 128  # still the old space
        assert index_folder(root, store, analyzer).unchanged == 7  # and still usable with the old model
        plan = plan_collection(store, toy)
        assert plan.staged == staged and plan.todo == 8 - staged and "resuming" in "\n".join(plan.lines())

        calls.clear()
        monkeypatch.setattr(toy, "embed_faces", lambda image, faces: calls.append(len(faces)) or real(image, faces))
        report = reembed_collection(store, toy)
        assert report.resumed == staged and report.embedded == 8 - staged == sum(calls)
        assert store.model().dim == 512 and snapshot(store) == kept
    # the resumed vectors are those of an uninterrupted run
    db2, _ = copy_collection(built, photos, tmp_path / "again")
    monkeypatch.setattr(toy, "embed_faces", real)
    with CollectionStore.open(db) as resumed, CollectionStore.open(db2) as whole:
        reembed_collection(whole, toy)
        np.testing.assert_allclose(resumed.face_table().embeddings, whole.face_table().embeddings, atol=1e-6)


def test_missing_or_changed_photos_stop_the_run_or_are_dropped(built, photos, tmp_path, toy, astronaut):
    db, root = copy_collection(built, photos, tmp_path)
    (root / "grace" / "b.png").unlink()
    Image.fromarray(astronaut[::-1].copy()).save(root / "astro" / "b.png")  # other bytes under the same name
    with CollectionStore.open(db) as store:
        kept = snapshot(store)
        plan = plan_collection(store, toy)
        assert sorted((Path(u.where).name, u.reason.split(" ")[0]) for u in plan.unusable) == [
            ("b.png", "changed"),
            ("b.png", "missing"),
        ]
        with pytest.raises(MissingPhotosError) as caught:
            reembed_collection(store, toy)
        message = str(caught.value)
        assert "grace/b.png: missing" in message and "astro/b.png: changed" in message and "--drop-missing" in message
        assert len(caught.value.unusable) == 2
        assert store.model() == DLIB and snapshot(store) == kept and staged_rows(db) == -1  # nothing written

        report = reembed_collection(store, toy, drop_missing=True)
        assert store.model().dim == 512 and len(report.removed) == 2 and report.faces == 6
        after = snapshot(store)
        gone = {f for u in report.removed for f in u.face_ids}
        assert set(after["faces"]) == set(kept["faces"]) - gone
        assert all(after["faces"][f] == kept["faces"][f] for f in after["faces"])
        assert {p[1] for p in after["photos"]} == {p[1] for p in kept["photos"]} - {"grace/b.png", "astro/b.png"}
        assert "removed 2 face(s)" in "\n".join(report.lines())


def test_an_embedder_whose_output_is_not_its_declared_dimension_is_refused(built, photos, tmp_path, toy, monkeypatch):
    db, _ = copy_collection(built, photos, tmp_path)
    real = toy.embed_faces

    def half(image, faces):
        vectors = real(image, faces)[:, :256]
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    monkeypatch.setattr(toy, "embed_faces", half)
    with CollectionStore.open(db) as store:
        with pytest.raises(ModelMismatchError, match=r"returned 256-d embeddings .* not 512-d ones as its card says"):
            reembed_collection(store, toy)
        assert store.model() == DLIB and staged_rows(db) == 0 and store.face_table().embeddings.shape == (8, 128)


# -- galleries ---------------------------------------------------------------------------------------


def enrol_people(gallery: Gallery, photos: Path) -> None:
    gallery.enroll("grace", sorted((photos / "grace").iterdir()), {"role": "admiral"})
    gallery.enroll("astro", sorted((photos / "astro").iterdir()))


def people_of(store) -> list[tuple]:
    return sorted((p.id, p.name, p.metadata, p.n_faces) for p in store.list_people())


def faces_of(store) -> list[tuple]:
    return [
        (r["id"], r["person"], r["source"], r["box"], r["quality"]) for r in store.export_rows() if r["kind"] == "face"
    ]


def test_gallery_moves_with_its_images(photos, tmp_path, analyzer, toy, built):
    db = tmp_path / "g.db"
    with Gallery.open(db, analyzer) as gallery:
        enrol_people(gallery, photos)
        vector = gallery.embedding_of(gallery.faces_of("grace")[0][0]).copy()
        gallery.enroll_embeddings("only-an-embedding", vector[None])
    with CollectionStore.open(built) as collection, Gallery.open(tmp_path / "named.db", analyzer) as named:
        collection.enroll_named(named)  # faces from a collection: "<photo sha256>#<idx>"
    with open_store(db) as store:
        plan = plan_gallery(store, toy, photos)
        assert plan.faces == 7 and [u.reason for u in plan.unusable] == ["enrolled from an embedding, not an image"]
        with pytest.raises(UnmatchedFacesError, match="only-an-embedding.*enrolled from an embedding"):
            reembed_gallery(store, toy, photos)
        assert store.model() == DLIB
        without = plan_gallery(store, toy, None)
        assert len(without.unusable) == 7 and "--images" in without.unusable[-1].reason

        people, faces = people_of(store), faces_of(store)
        report = reembed_gallery(store, toy, photos, drop_missing=True)
        assert report.switched and report.embedded == 6 and [u.face_ids for u in report.removed] == [(faces[-1][0],)]
        assert store.model().dim == 512 and store.face_matrix().embeddings.shape == (6, 512)
        assert faces_of(store) == faces[:-1]  # ids, people, sources, boxes, qualities
        assert people_of(store) == [p if p[1] != "only-an-embedding" else (*p[:3], 0) for p in people]
        assert report.before is not None and report.before.rank1 == 1.0 and report.after is not None
        assert "people left without a face: only-an-embedding" in "\n".join(report.lines())
    # the moved gallery answers with the new model: an enrolled image is its own best match
    with Gallery.open(db, toy, scoring="max") as gallery:
        (probe,) = toy.analyze(photos / "grace" / "a.jpg")  # (identify needs card thresholds: a toy model has none)
        scores, names = gallery.scores(probe.embedding)
        assert names[int(np.argmax(scores[0]))] == "grace" and scores[0].max() > 0.999
    # a gallery enrolled from a collection's named clusters: matched by the photos' own bytes
    with open_store(tmp_path / "named.db") as named:
        assert {r["source"].partition("#")[1] for r in named.export_rows() if r["kind"] == "face"} == {"#"}
        report = reembed_gallery(named, toy, photos)
        assert report.switched and not report.removed and report.embedded == report.faces >= 6


def test_postgres_gallery_moves_and_resumes(pg_url, photos, analyzer, toy, monkeypatch):
    with Gallery.open(pg_url, analyzer) as gallery:
        enrol_people(gallery, photos)
    with open_store(pg_url) as store:
        people, faces = people_of(store), faces_of(store)
        real, calls = toy.embed_faces, []

        def dies_on_the_third_image(image, chosen):
            calls.append(len(chosen))
            if len(calls) == 3:
                raise RuntimeError("killed")
            return real(image, chosen)

        monkeypatch.setattr(toy, "embed_faces", dies_on_the_third_image)
        with pytest.raises(RuntimeError, match="killed"):
            reembed_gallery(store, toy, photos)
        assert store.model() == DLIB and plan_gallery(store, toy, photos).staged == 2
        monkeypatch.setattr(toy, "embed_faces", real)
        report = reembed_gallery(store, toy, photos)
        assert report.resumed == 2 and report.embedded == 4 and report.faces == 6
        assert store.model().dim == 512 and people_of(store) == people and faces_of(store) == faces
        matrix = store.face_matrix()
        scores, ids = store.search(matrix.embeddings[0], k=2)  # the HNSW index was rebuilt for 512-d
        assert ids[0] == matrix.face_ids[0] and scores[0] > 0.999
        assert any("VACUUM FULL" in note for note in report.notes)


# -- never a mixed space: what opening a store with another model says ----------------------------------


def test_another_model_is_refused_with_what_to_do(photos, tmp_path, analyzer, toy, built, toy_path):
    db = tmp_path / "g.db"
    with Gallery.open(db, analyzer) as gallery:
        gallery.enroll("grace", [photos / "grace" / "a.jpg"])
    with Gallery.open(db, toy) as gallery, pytest.raises(ModelMismatchError) as caught:
        gallery.enroll("astro", [photos / "astro" / "a.png"])
    message = str(caught.value)
    assert "holds embeddings of dlib_resnet v1 (128-d), not onnx:toy512" in message
    assert f"faceatlas reembed {db} --embedder PATH/toy512.onnx" in message and "--embedder dlib_resnet" in message
    with CollectionStore.open(built) as store, pytest.raises(ModelMismatchError) as caught:
        index_folder(photos, store, toy)
    message = str(caught.value)
    assert "dlib_resnet v1" in message and "onnx:toy512" in message
    assert f"faceatlas reembed {built} --embedder PATH/toy512.onnx" in message and "--embedder dlib_resnet" in message
    with Gallery.open(db, analyzer) as gallery, pytest.raises(ModelMismatchError, match="faceatlas reembed"):
        gallery.store.add_faces(gallery.store.get_person("grace").id, [_face(256)])


def _face(dim: int):
    from faceatlas.gallery.store import FaceRecord

    return FaceRecord(np.ones(dim, np.float32) / np.sqrt(dim), 1.0, "x")


# -- the command ---------------------------------------------------------------------------------------


def test_the_command(built, photos, tmp_path, toy_path):
    from typer.testing import CliRunner

    from faceatlas.cli import app

    runner = CliRunner()
    db, root = copy_collection(built, photos, tmp_path)
    asked = runner.invoke(app, ["reembed", str(db), "--embedder", str(toy_path)])  # no terminal to ask on
    assert asked.exit_code == 2 and "--yes" in asked.output
    wrong = runner.invoke(app, ["reembed", str(db), "--embedder", str(toy_path), "--images", str(root)])
    assert wrong.exit_code == 2 and "--images is for a gallery" in wrong.output
    (root / "both.png").unlink()
    missing = runner.invoke(app, ["reembed", str(db), "--embedder", str(toy_path), "--yes"])
    assert missing.exit_code == 3 and "both.png: missing" in missing.output and "nothing was switched" in missing.output
    done = runner.invoke(app, ["reembed", str(db), "--embedder", str(toy_path), "--yes", "--drop-missing"])
    assert done.exit_code == 0, done.output
    assert "now holds onnx:toy512" in done.output and "removed 2 face(s)" in done.output and "after (" in done.output
    again = runner.invoke(app, ["reembed", str(db), "--embedder", str(toy_path), "--yes"])
    assert again.exit_code == 0 and "nothing to do" in again.output
    (tmp_path / "notes.db").write_bytes(b"not a database at all" * 10)
    for target in (tmp_path / "notes.db", tmp_path / "none.db"):
        refused = runner.invoke(app, ["reembed", str(target), "--embedder", "dlib_resnet", "--yes"])
        assert refused.exit_code == 3 and "gallery" in refused.output


def test_store_kind(built, tmp_path):
    assert store_kind(built) == "collection"
    with open_store(tmp_path / "g.db"):
        pass
    assert store_kind(tmp_path / "g.db") == "gallery" and store_kind("postgresql://host/db") == "gallery"
    sqlite3.connect(tmp_path / "other.db").execute("CREATE TABLE t (x)").connection.commit()
    for other in (tmp_path / "other.db", tmp_path, tmp_path / "missing.db"):
        with pytest.raises(NotAStoreError):
            store_kind(other)


# -- the figures ----------------------------------------------------------------------------------------


def test_label_figures_exact_and_sampled():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(30, 64))
    labels = np.repeat(np.arange(30), 20)
    x = centres[labels] + 0.6 * rng.normal(size=(600, 64))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    exact = label_figures(x, labels, threshold=0.5)
    assert exact.faces == 600 and exact.labels == 30 and exact.probes == 600 and exact.rank1 is not None
    assert 0.9 < exact.rank1 <= 1.0 and exact.same is not None and exact.different is not None
    assert exact.same > exact.different and exact.d_prime is not None and exact.d_prime > 2
    assert exact.precision is not None and exact.recall is not None and 0 < exact.recall <= 1
    sampled = label_figures(x, labels, threshold=0.5, max_pairs=5_000, max_probes=200)
    assert (
        sampled.probes == 200
        and abs(sampled.same - exact.same) < 0.02
        and abs(sampled.different - exact.different) < 0.02
    )
    assert abs(sampled.recall - exact.recall) < 0.05 and abs(sampled.precision - exact.precision) < 0.1
    lone = label_figures(x[:3], np.array([0, 1, 2]))
    assert lone.rank1 is None and lone.same is None and lone.d_prime is None and "3 faces of 3 people" in lone.line()


def test_a_gallery_open_during_the_move_refuses_to_answer_with_the_old_model(photos, tmp_path, analyzer, toy):
    db = tmp_path / "g.db"
    with Gallery.open(db, analyzer) as gallery:
        enrol_people(gallery, photos)
        (probe,) = analyzer.analyze(photos / "grace" / "a.jpg")
        scores, names = gallery.scores(probe.embedding)  # reads the store under dlib's model
        with open_store(db) as store:
            assert reembed_gallery(store, toy, photos).switched  # another process moves it
        with pytest.raises(ModelMismatchError, match="moved to .*--embedder onnx:"):
            gallery.scores(probe.embedding)  # never dlib probes against the new model's embeddings


def test_identifying_with_an_uncalibrated_model_says_how_to_calibrate(photos, tmp_path, toy):
    with Gallery.open(tmp_path / "toy.db", toy) as gallery:
        gallery.enroll("grace", [photos / "grace" / "a.jpg"])
        with pytest.raises(ModelError, match="faceatlas models calibrate"):
            gallery.identify(photos / "grace" / "a.jpg")
