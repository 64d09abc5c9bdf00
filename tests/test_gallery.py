"""The Gallery on a fake face system (no models): enrol, identify open-set, people operations."""

from __future__ import annotations

import ast
import dataclasses

import numpy as np
import pytest
from conftest import PG_MISSING

from faceatlas.gallery.gallery import Gallery, open_set_threshold, template_open_set_threshold
from faceatlas.gallery.store import ModelMismatchError, PersonNotFoundError
from faceatlas.models.cards import DLIB_RESNET_CARD
from faceatlas.types import Box, Face, Landmarks, Quality

DIM = 128
DIRECTIONS = np.linalg.qr(np.random.default_rng(1).normal(size=(DIM, DIM)))[0].astype(np.float32)


def person_vector(identity: int, seed: int, noise: float = 0.15) -> np.ndarray:
    v = DIRECTIONS[identity] + noise * np.random.default_rng(seed).normal(size=DIM) / np.sqrt(DIM)
    return (v / np.linalg.norm(v)).astype(np.float32)


class FakeEmbedder:
    card = DLIB_RESNET_CARD
    dim = DIM


class FakeAnalyzer:
    """An "image" is a list of (identity, seed, size, quality) tuples: one face each."""

    embedder = FakeEmbedder()

    def analyze(self, image):
        if isinstance(image, str) and image == "corrupt":
            from faceatlas.errors import InvalidImageError

            raise InvalidImageError("not an image")
        faces = []
        for identity, seed, size, quality in image:
            faces.append(
                Face(
                    box=Box(0, 0, size, size),
                    score=0.99,
                    landmarks=Landmarks(np.zeros((5, 2))),
                    quality=Quality(quality, 1, 1, 1, 1, 1),
                    embedding=person_vector(identity, seed),
                )
            )
        return faces


@pytest.fixture(autouse=True)
def no_pixels(monkeypatch):
    """The fake images are lists: load_image returns a stable array derived from them."""
    import faceatlas.image

    def fake_load(image, **_):
        if image == "corrupt":
            from faceatlas.errors import InvalidImageError

            raise InvalidImageError("not an image")
        return np.frombuffer(repr(image).encode(), dtype=np.uint8).copy()

    monkeypatch.setattr(faceatlas.image, "load_image", fake_load)


class PassThroughAnalyzer(FakeAnalyzer):
    def analyze(self, image):  # Gallery hands over load_image's output: recover the list
        if isinstance(image, np.ndarray):
            image = ast.literal_eval(image.tobytes().decode())
        return super().analyze(image)


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.skipif(bool(PG_MISSING), reason=PG_MISSING))]


@pytest.fixture(params=BACKENDS)
def url(request, tmp_path):
    """The same tests run on an SQLite file and on a real PostgreSQL + pgvector server."""
    return str(tmp_path / "g.db") if request.param == "sqlite" else request.getfixturevalue("pg_url")


@pytest.fixture
def gallery(url):
    with Gallery.open(url, analyzer=PassThroughAnalyzer()) as g:
        yield g


def img(identity, seed, size=100, quality=0.9):
    return [(identity, seed, size, quality)]


def test_enroll_and_identify_known_and_unknown(gallery):
    report = gallery.enroll("ada", [img(1, 1), img(1, 2)])
    assert len(report.added) == 2 and not report.skipped
    gallery.enroll("bob", [img(2, 1)])
    (hit,) = gallery.identify(img(1, 99))
    assert hit.person == "ada" and hit.candidates[0].person == "ada" and hit.score > hit.threshold
    (stranger,) = gallery.identify(img(7, 5))
    assert stranger.person is None and stranger.candidates  # ranked, but unknown
    assert stranger.score < stranger.threshold


def test_enroll_reports_what_it_skips(gallery):
    two_faces = [(1, 3, 100, 0.9), (2, 3, 50, 0.9)]
    report = gallery.enroll("ada", [img(1, 1), [], two_faces, img(1, 4, quality=0.1), img(1, 1), "corrupt"])
    reasons = [why for _, why in report.skipped]
    assert len(report.added) == 1
    assert any("no face" in r for r in reasons) and any("2 faces" in r for r in reasons)
    assert any("below the floor" in r for r in reasons) and any("already enrolled" in r for r in reasons)
    assert any("unreadable" in r for r in reasons)
    chosen = gallery.enroll("ada", [two_faces], face=0)
    assert len(chosen.added) == 1


def test_several_faces_in_a_probe_largest_first(gallery):
    gallery.enroll("ada", [img(1, 1)])
    gallery.enroll("bob", [img(2, 1)])
    results = gallery.identify([(2, 8, 40, 0.9), (1, 8, 120, 0.9)])
    assert [r.person for r in results] == ["ada", "bob"]


@pytest.mark.parametrize("scoring", ["max", "template", "topk"])
def test_scoring_rules_rank_the_right_person(url, scoring):
    with Gallery.open(url, analyzer=PassThroughAnalyzer(), scoring=scoring) as g:
        for person in range(5):
            g.enroll(f"p{person}", [img(person, s) for s in range(3)])
        for person in range(5):
            (result,) = g.identify(img(person, 50))
            assert result.person == f"p{person}" and len(result.candidates) == 5


def test_identify_by_embedding_and_k(gallery):
    gallery.enroll_embeddings("ada", np.stack([person_vector(1, s) for s in range(3)]))
    gallery.enroll_embeddings("bob", person_vector(2, 0)[None])
    results = gallery.identify(np.stack([person_vector(1, 9), person_vector(2, 9)]), k=1)
    assert [r.person for r in results] == ["ada", "bob"] and all(len(r.candidates) == 1 for r in results)


def test_threshold_grows_with_gallery_size():
    small, _ = open_set_threshold(DLIB_RESNET_CARD, 1e-2, 1)
    large, _ = open_set_threshold(DLIB_RESNET_CARD, 1e-2, 1000)
    assert small == pytest.approx(DLIB_RESNET_CARD.threshold_for(1e-2)) and large > small
    capped, notes = open_set_threshold(DLIB_RESNET_CARD, 1e-2, 10**7)
    assert capped == pytest.approx(DLIB_RESNET_CARD.threshold_for(1e-6)) and "capped" in notes[0]


def test_people_operations(gallery):
    gallery.enroll("ada", [img(1, 1)])
    gallery.enroll("ad", [img(1, 2)])
    gallery.merge("ad", "ada")
    assert [p.name for p in gallery.people()] == ["ada"] and gallery.people()[0].n_faces == 2
    gallery.rename("ada", "Ada Lovelace")
    (result,) = gallery.identify(img(1, 3))
    assert result.person == "Ada Lovelace"
    assert gallery.delete_person("Ada Lovelace") == 2
    assert gallery.identify(img(1, 3))[0].person is None
    with pytest.raises(PersonNotFoundError):
        gallery.delete_person("nobody")


def test_model_mismatch_is_refused(url):
    from faceatlas.gallery.store import ModelTag

    with Gallery.open(url, analyzer=PassThroughAnalyzer()) as g:
        g.enroll("ada", [img(1, 1)])
        g.store.bind_model(ModelTag(DLIB_RESNET_CARD.name, DLIB_RESNET_CARD.version, DIM))  # same: fine
        with pytest.raises(ModelMismatchError):
            g.store.bind_model(ModelTag("other_model", "1", 512))


def test_export_import_round_trip(tmp_path, gallery):
    gallery.enroll("ada", [img(1, 1), img(1, 2)])
    gallery.enroll("bob", [img(2, 1)])
    gallery.export(tmp_path / "export.jsonl")
    with Gallery.open(tmp_path / "copy.db", analyzer=PassThroughAnalyzer()) as copy:  # SQLite, whatever the source
        copy.import_(tmp_path / "export.jsonl")
        assert sorted((p.name, p.n_faces) for p in copy.people()) == [("ada", 2), ("bob", 1)]
        assert copy.identify(img(2, 7))[0].person == "bob"


def test_another_connection_enrolment_is_seen(url):
    with Gallery.open(url, analyzer=PassThroughAnalyzer()) as a, Gallery.open(url, analyzer=PassThroughAnalyzer()) as b:
        a.enroll("ada", [img(1, 1)])
        assert b.identify(img(1, 2))[0].person == "ada"
        a.enroll("bob", [img(2, 1)])  # b's cached matrix is stale now: it must notice
        assert b.identify(img(2, 2))[0].person == "bob"


@pytest.mark.parametrize("scoring", ["template", "max", "topk"])
def test_a_gallery_that_catches_up_answers_like_a_fresh_one(url, scoring):
    """One gallery stays open while another connection writes every kind of change; after each,
    its answers (candidates, scores, threshold) equal a freshly opened gallery's, and it caught up
    from the change log rather than re-reading the store."""
    probes = np.stack([person_vector(p, 500 + p, noise=0.5) for p in range(12)])
    with (
        Gallery.open(url, analyzer=PassThroughAnalyzer(), scoring=scoring) as reader,
        Gallery.open(url, analyzer=PassThroughAnalyzer()) as writer,
    ):
        for person in range(10):
            writer.enroll_embeddings(f"p{person}", np.stack([person_vector(person, s, noise=0.5) for s in range(3)]))
        reader.identify(probes)
        full_reads = []
        reader.store.face_matrix = _counting(reader.store.face_matrix, full_reads)
        changes = [
            lambda: writer.enroll_embeddings("p10", person_vector(10, 1, noise=0.5)[None]),
            lambda: writer.enroll_embeddings("p2", person_vector(2, 9, noise=0.5)[None]),
            lambda: writer.rename("p4", "four"),
            lambda: writer.merge("p5", "p6"),
            lambda: writer.remove_face(int(writer.store.face_matrix().face_ids[0])),
            lambda: writer.delete_person("p7"),
            lambda: writer.store.add_person("nobody-yet"),
            lambda: writer.enroll_embeddings("nobody-yet", person_vector(11, 1, noise=0.5)[None]),
        ]
        for change in changes:
            change()
            with Gallery.open(url, analyzer=PassThroughAnalyzer(), scoring=scoring) as fresh:
                expected = fresh.identify(probes, k=4)
            got = reader.identify(probes, k=4)
            assert [(r.candidates, r.person, r.threshold) for r in got] == [
                (r.candidates, r.person, r.threshold) for r in expected
            ]
        assert not full_reads
        assert "p7" not in reader._names.values()  # a deleted person's name is not kept in memory


def _counting(method, calls: list):
    def wrapper(*args, **kwargs):
        calls.append(1)
        return method(*args, **kwargs)

    return wrapper


def test_template_calibration_is_kept_while_the_gallery_grows_a_little(tmp_path, monkeypatch):
    import faceatlas.gallery.gallery as gallery_module

    monkeypatch.setattr(gallery_module, "CHEAP_CALIBRATION_PAIRS", 0)  # as if the gallery were large
    monkeypatch.setattr(gallery_module, "SELF_CALIBRATION_TAIL", 0)  # its own scores, not the card's
    with Gallery.open(tmp_path / "g.db", analyzer=PassThroughAnalyzer()) as g:
        for person in range(100):
            g.enroll_embeddings(f"p{person}", np.stack([person_vector(person % DIM, s, noise=0.6) for s in range(3)]))
        probe = person_vector(0, 999, noise=0.6)
        g.identify(probe)
        calibrated = g._impostors
        g.enroll_embeddings("p100", person_vector(1, 5, noise=0.6)[None])  # 1 % more people: kept
        g.identify(probe)
        assert g._impostors is calibrated
        for person in range(101, 104):  # 4 % more: recalibrated
            g.enroll_embeddings(f"p{person}", person_vector(person % DIM, 5, noise=0.6)[None])
        g.identify(probe)
        assert g._impostors is not calibrated
        calibrated = g._impostors
        g.remove_face(int(g.store.face_matrix().face_ids[0]))  # any removal: recalibrated
        g.identify(probe)
        assert g._impostors is not calibrated


def test_large_gallery_search_through_the_index_agrees_with_brute_force(url, monkeypatch):
    import faceatlas.gallery.gallery as gallery_module

    with Gallery.open(url, analyzer=PassThroughAnalyzer(), scoring="max") as g:
        for person in range(20):
            g.enroll_embeddings(f"p{person}", np.stack([person_vector(person, s, noise=0.5) for s in range(5)]))
        probes = np.stack([person_vector(p, 100 + p, noise=0.5) for p in range(20)])
        brute = g.identify(probes, k=3)
        monkeypatch.setattr(gallery_module, "ANN_FACES", 10)  # force the index path
        indexed = g.identify(probes, k=3)
        assert [[c.person for c in r.candidates] for r in indexed] == [[c.person for c in r.candidates] for r in brute]
        for got, want in zip(indexed, brute, strict=True):  # float32 dot products both, summed in other orders
            np.testing.assert_allclose([c.score for c in got.candidates], [c.score for c in want.candidates], atol=1e-6)
        # PostgreSQL searches with pgvector's own HNSW: no index over every face in this process
        assert (g._index is None) == url.startswith("postgresql")
        g.delete_person("p3")  # the index follows the store
        assert all(c.person != "p3" for r in g.identify(probes, k=3) for c in r.candidates)


def test_template_threshold_is_calibrated_on_the_gallerys_own_impostors(tmp_path, monkeypatch):
    import faceatlas.gallery.gallery as gallery_module
    from faceatlas.templates import fuse

    # 20 impostors above the cut: below SELF_CALIBRATION_TAIL the card would decide, so lower it
    monkeypatch.setattr(gallery_module, "SELF_CALIBRATION_TAIL", gallery_module.MIN_TAIL)
    with Gallery.open(tmp_path / "g.db", analyzer=PassThroughAnalyzer()) as g:
        assert g.scoring == "template"  # the default
        for person in range(40):
            g.enroll_embeddings(f"p{person}", np.stack([person_vector(person, s, noise=0.6) for s in range(5)]))
        (result,) = g.identify(person_vector(0, 999, noise=0.6), fpir=0.1)
        # brute force: every face against every other person's template; the threshold lets through
        # at most floor(f * n) of them, f the per-comparison FAR for FPIR 0.1 over 40 templates
        templates = {}
        for person in range(40):
            faces = np.stack([person_vector(person, s, noise=0.6) for s in range(5)])
            templates[person] = fuse(faces).astype(np.float64)  # equal qualities; the default fusion
        impostor = [
            float(person_vector(p, s, noise=0.6) @ templates[q])
            for p in range(40)
            for s in range(5)
            for q in range(40)
            if q != p
        ]
        f = 1 - (1 - 0.1) ** (1 / 40)
        passing = sum(score >= result.threshold for score in impostor)
        # ±1: this recomputation is float64, the gallery's float32, and one score sits at the cut
        assert abs(passing - int(np.floor(f * len(impostor)))) <= 1
        assert not result.notes


def test_a_small_template_gallery_uses_the_cards_template_statistics(gallery):
    gallery.enroll("ada", [img(1, 1)])
    gallery.enroll("bob", [img(2, 1)])
    (result,) = gallery.identify(img(1, 5))
    assert result.person == "ada" and not result.notes  # no fallback: the card knows templates of 1 face
    assert result.threshold == template_open_set_threshold(DLIB_RESNET_CARD, 1e-2, [1, 1])[0]


def test_template_calibration_falls_back_with_a_note_without_template_statistics(gallery, monkeypatch):
    monkeypatch.setattr(FakeEmbedder, "card", dataclasses.replace(DLIB_RESNET_CARD, template_thresholds=()))
    gallery.enroll("ada", [img(1, 1)])
    gallery.enroll("bob", [img(2, 1)])
    (result,) = gallery.identify(img(1, 5))
    assert result.person == "ada" and any("card" in note for note in result.notes)


def _enrol_many(url: str, prefix: str, n: int) -> None:
    """Run in a separate process: enrol n people, one transaction each."""
    with Gallery.open(url, analyzer=PassThroughAnalyzer()) as g:
        for i in range(n):
            g.enroll_embeddings(f"{prefix}{i}", person_vector(i % DIM, i)[None])


def test_two_processes_enrolling_at_once_lose_nothing(url):
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_enrol_many, args=(url, prefix, 40)) for prefix in ("a", "b")]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
        assert w.exitcode == 0
    with Gallery.open(url, analyzer=PassThroughAnalyzer()) as g:
        names = {p.name for p in g.people()}
        assert names == {f"{prefix}{i}" for prefix in ("a", "b") for i in range(40)}
        assert sum(p.n_faces for p in g.people()) == 80
