"""Tests for faceatlas.eval.identification: hand cases, brute-force references, split rules, plots."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceatlas.eval.identification import (
    CMC_MAX_RANK,
    GallerySearch,
    build_templates,
    gallery_open_set_report,
    open_set_report,
    plot_det,
    split_gallery_probes,
)


def unit(*rows: tuple[float, float], dim: int = 4) -> np.ndarray:
    """Unit vectors whose scores against e0 and e1 are the given pairs (the rest goes to e2)."""
    out = np.zeros((len(rows), dim))
    for i, (x, y) in enumerate(rows):
        out[i, :3] = x, y, np.sqrt(1 - x * x - y * y)
    return out.astype(np.float32)


GALLERY = np.eye(4, dtype=np.float32)[:2]  # A = e0, B = e1: a probe's scores are its first two coordinates


# --- hand-computed cases -------------------------------------------------------


def test_hand_case_nonmated_outscores_a_mate():
    # mated:     m1 A (0.9, 0.1) rank 1, hit 0.9 | m2 B (0.2, 0.6) rank 1, hit 0.6 | m3 A (0.5, 0.7) rank 2
    # non-mated top scores: 0.8, 0.7, 0.2, 0.05   (N = 4)
    probes = unit((0.9, 0.1), (0.2, 0.6), (0.5, 0.7), (0.8, 0.1), (0.3, 0.7), (0.1, 0.2), (0.05, 0.0))
    labels = ["A", "B", "A", "C", "D", "E", "F"]
    mated = [True, True, True, False, False, False, False]
    r = open_set_report(GALLERY, ["A", "B"], probes, labels, mated, ranks=(1, 2), fpirs=(0.25, 0.5, 0.1))
    # CMC: ranks 1, 1, 2 -> rank-1 = 2/3, rank-2 = 1
    assert r.rank_rates == pytest.approx({"1": 2 / 3, "2": 1.0})
    assert r.cmc[0] == pytest.approx(2 / 3) and r.cmc[1:] == [1.0] * (CMC_MAX_RANK - 1)
    # FPIR 0.25 allows 1 of 4 false positives: t just above 0.7 (the 2nd highest), so the
    # non-mated 0.7 outranks mate m2 (0.6): misses m2 and m3 -> FNIR 2/3
    assert r.fnir_at_fpir["0.25"] == pytest.approx(2 / 3)
    assert r.threshold_at_fpir["0.25"] == pytest.approx(0.7, abs=1e-6)  # 0.7 in float32
    # FPIR 0.5 allows 2: t just above 0.2 -> only m3 (rank 2) is missed -> FNIR 1/3
    assert r.fnir_at_fpir["0.5"] == pytest.approx(1 / 3)
    # FPIR 0.1 * 4 non-mated < 1: not measurable
    assert r.fnir_at_fpir["0.1"] is None and r.threshold_at_fpir["0.1"] is None
    assert any("0.1" in n for n in r.notes)
    # DET at the threshold 0.6 (a distinct score): FPIR = 2/4 (0.8, 0.7), FNIR = 1/3 (m3)
    k = int(np.flatnonzero(np.isclose(r.det_thresholds, 0.6))[0])
    assert (r.det_fpir[k], r.det_fnir[k]) == pytest.approx((0.5, 1 / 3))
    assert (r.n_mated, r.n_nonmated, r.n_gallery) == (3, 4, 2)


def test_perfect_system():
    rng = np.random.default_rng(0)
    gallery = np.eye(64, dtype=np.float32)[:10]  # identities 0..9 along e0..e9
    mated_ids = rng.integers(0, 10, 50)
    mated = np.eye(64)[mated_ids] + 0.05 * rng.normal(size=(50, 64)) * (np.arange(64) >= 10)
    nonmated = np.eye(64)[rng.integers(10, 64, 2000)] + 0.05 * rng.normal(size=(2000, 64)) * (np.arange(64) >= 10)
    probes = np.vstack([mated, nonmated])
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    labels = [int(i) for i in mated_ids] + [f"other{i}" for i in range(2000)]
    is_mated = np.r_[np.ones(50, bool), np.zeros(2000, bool)]
    r = open_set_report(gallery, list(range(10)), probes, labels, is_mated)
    assert r.rank_rates == {"1": 1.0, "5": 1.0}
    assert r.fnir_at_fpir == {"0.1": 0.0, "0.01": 0.0, "0.001": 0.0}
    assert r.det_fnir.min() == 0.0


def test_no_face_probes():
    # m1 A hit 0.9; m2 B without a face; n1 top 0.8; n2 without a face; n3 top 0.1
    probes = unit((0.9, 0.1), (0.0, 0.0), (0.8, 0.1), (0.0, 0.0), (0.1, 0.0))
    probes[[1, 3]] = np.nan
    r = open_set_report(GALLERY, ["A", "B"], probes, ["A", "B", "C", "D", "E"], [1, 1, 0, 0, 0], fpirs=(1 / 3, 1.0))
    assert (r.n_no_face_mated, r.n_no_face_nonmated, r.n_mated, r.n_nonmated) == (1, 1, 2, 3)
    assert r.rank_rates["1"] == 0.5 and r.cmc[-1] == 0.5  # the faceless mate is never found
    # FPIR 1/3 allows 1 of 3: t just above 0.1 -> m1 found, m2 missed -> FNIR 1/2
    assert r.fnir_at_fpir["0.333333"] == pytest.approx(0.5)
    # FPIR 1 accepts every real score; the faceless non-mated can never be accepted, the mate is still lost
    assert r.fnir_at_fpir["1"] == pytest.approx(0.5)
    assert r.det_fpir.max() == pytest.approx(2 / 3)


def test_mated_probe_of_unenrolled_identity_is_a_miss_and_leaks_are_refused():
    probes = unit((0.9, 0.1), (0.9, 0.1))
    r = open_set_report(GALLERY, ["A", "B"], probes, ["A", "Z"], [True, True], fpirs=())
    assert r.rank_rates["1"] == 0.5 and r.n_mated_not_enrolled == 1
    with pytest.raises(ValueError, match="non-mated probes of enrolled identities"):
        open_set_report(GALLERY, ["A", "B"], probes, ["A", "B"], [True, False])


def test_duplicate_gallery_entries_are_fused_by_identity():
    # two A entries both outscoring B must not push B's mate to rank 3
    gallery = unit((1.0, 0.0), (0.95, 0.0), (0.0, 1.0))
    probe = unit((0.6, 0.5))
    r = open_set_report(gallery, ["A", "A", "B"], probe, ["B"], [True], ranks=(1, 2), fpirs=())
    assert r.rank_rates == {"1": 0.0, "2": 1.0}
    assert r.n_gallery == 2


# --- brute-force reference -----------------------------------------------------------


def brute_force(gallery, gallery_labels, probes, probe_labels, mated, fpir):
    """Ranks by sorting each probe's candidate list; FNIR@FPIR by trying every score as threshold."""
    ranks, hits, tops = [], [], []
    for p, label, m in zip(probes, probe_labels, mated):
        scores = {g: float(np.dot(p.astype(np.float64), v.astype(np.float64))) for g, v in zip(gallery_labels, gallery)}
        if not m:
            tops.append(max(scores.values()))
            continue
        others = sorted((s for g, s in scores.items() if g != label), reverse=True)
        rank = 1 + sum(s >= scores[label] for s in others)
        ranks.append(rank)
        hits.append(scores[label] if rank == 1 else -np.inf)
    candidates = sorted(set(tops) | {h for h in hits if np.isfinite(h)} | {np.inf})
    best = None
    for t in candidates:
        fp = np.mean([z >= t for z in tops])
        fn = np.mean([h < t for h in hits])
        if fp <= fpir and (best is None or fn < best):
            best = fn
    return np.array(ranks), float(best)


@pytest.mark.parametrize("seed", range(4))
def test_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    k, d = 12, 6
    gallery = rng.normal(size=(k, d))
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    m = 300
    mated = rng.random(m) < 0.4
    labels = [int(rng.integers(k)) if is_m else 100 + i for i, is_m in enumerate(mated)]
    # mated probes lean towards their template so that scores are informative
    probes = rng.normal(size=(m, d)) + np.where(mated[:, None], 1.5 * gallery[[lab % k for lab in labels]], 0)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    fpirs = (0.3, 0.1, 0.02)
    r = open_set_report(gallery, list(range(k)), probes, labels, mated, ranks=(1, 3), fpirs=fpirs)
    for f in fpirs:
        ranks, fnir = brute_force(gallery, list(range(k)), probes, labels, mated, f)
        assert r.fnir_at_fpir[f"{f:g}"] == pytest.approx(fnir)
    expected_cmc = [float(np.mean(ranks <= q)) for q in range(1, CMC_MAX_RANK + 1)]
    assert r.cmc == pytest.approx(expected_cmc)
    assert r.rank_rates == pytest.approx({"1": expected_cmc[0], "3": expected_cmc[2]})
    assert r.cmc[k - 1] == 1.0  # every mate is somewhere in a gallery of k identities


# --- split and templates ------------------------------------------------------------


def lfw_like_labels(seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    sizes = np.where(rng.random(300) < 0.7, 1, rng.integers(2, 30, 300))  # most have 1 image
    labels = [f"person{i}" for i, s in enumerate(sizes) for _ in range(s)]
    return [labels[i] for i in rng.permutation(len(labels))]


@pytest.mark.parametrize("n_enrol", [1, 2])
def test_split_rules(n_enrol):
    labels = lfw_like_labels()
    split = split_gallery_probes(labels, n_enrol=n_enrol, nonmated_fraction=0.5, seed=3)
    gallery, probes, mated = split
    assert sorted(np.r_[gallery, probes].tolist()) == list(range(len(labels)))  # a partition
    counts = Counter(labels)
    enrolled = {labels[i] for i in gallery}
    for identity in enrolled:  # its first n_enrol images, in the given order
        assert [i for i in gallery if labels[i] == identity] == [i for i, x in enumerate(labels) if x == identity][
            :n_enrol
        ]
    # no leakage: non-mated identities are never enrolled, mated ones always are
    assert not {labels[i] for i in probes[~mated]} & enrolled
    assert {labels[i] for i in probes[mated]} == enrolled
    assert all(counts[x] > n_enrol for x in enrolled)
    # identities with at most n_enrol images are all non-mated probes
    small = {x for x, c in counts.items() if c <= n_enrol}
    assert small <= {labels[i] for i in probes[~mated]}
    # half of the enrollable identities are held out
    enrollable = sum(c > n_enrol for c in counts.values())
    assert len(enrolled) == enrollable - round(0.5 * enrollable)


def test_split_is_deterministic_and_seeded():
    labels = lfw_like_labels(1)
    a, b = split_gallery_probes(labels, seed=5), split_gallery_probes(labels, seed=5)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    c = split_gallery_probes(labels, seed=6)
    assert not np.array_equal(a.gallery, c.gallery)
    everyone = split_gallery_probes(labels, nonmated_fraction=0.0)
    assert len({labels[i] for i in everyone.gallery}) == sum(c > 1 for c in Counter(labels).values())
    with pytest.raises(ValueError):
        split_gallery_probes(labels, n_enrol=0)
    with pytest.raises(ValueError):
        split_gallery_probes(labels, nonmated_fraction=1.5)


def test_build_templates():
    x = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [np.nan, np.nan, np.nan], [np.nan] * 3], dtype=np.float32)
    templates, names = build_templates(x, ["a", "a", "b", "b", "c"])
    assert names == ["a", "b"]  # c has no usable embedding: not enrolled
    np.testing.assert_allclose(templates, [[2**-0.5, 2**-0.5, 0], [0, 0, 1]], atol=1e-6)
    assert templates.dtype == np.float32


def test_split_templates_report_end_to_end(tmp_path: Path):
    rng = np.random.default_rng(2)
    labels = lfw_like_labels(2)
    ids = sorted(set(labels))
    centres = rng.normal(size=(len(ids), 32))
    centre_of = dict(zip(ids, centres))
    x = np.array([centre_of[x] for x in labels]) + 0.3 * rng.normal(size=(len(labels), 32))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    split = split_gallery_probes(labels)
    templates, names = build_templates(x[split.gallery], [labels[i] for i in split.gallery])
    r = open_set_report(templates, names, x[split.probes], [labels[i] for i in split.probes], split.probe_mated)
    assert r.rank_rates["1"] > 0.95 and r.n_probes == len(split.probes)
    assert "rank-1" in r.table() and "FNIR @ FPIR=0.01" in r.table()
    d = r.to_dict()
    assert "det_fpir" not in d and "det" in r.to_dict(include_det=True)
    out = plot_det(r, tmp_path / "plots" / "det.png")
    with Image.open(out) as image:
        assert image.format == "PNG" and image.width > image.height


# --- the protocol searches a real gallery ---------------------------------------------------------


class _Embedder:
    def __init__(self, dim: int) -> None:
        import dataclasses

        from faceatlas.models.cards import DLIB_RESNET_CARD

        self.card = dataclasses.replace(DLIB_RESNET_CARD, embedding_dim=dim)
        self.dim = dim


class _EmbeddingsOnly:
    """Lets Gallery.identify bind and calibrate; probes are embeddings, so nothing is analysed."""

    def __init__(self, dim: int) -> None:
        self.embedder = _Embedder(dim)


def _people(rng: np.random.Generator, n_people: int, per_person: int, dim: int = 24) -> tuple[np.ndarray, list[str]]:
    centres = rng.normal(size=(n_people, dim))
    x = np.repeat(centres, per_person, axis=0) + 0.8 * rng.normal(size=(n_people * per_person, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), [f"id{i // per_person}" for i in range(n_people * per_person)]


def test_gallery_search_scores_are_what_gallery_identify_ranks():
    from faceatlas.gallery.gallery import Gallery
    from faceatlas.gallery.store import open_store

    rng = np.random.default_rng(5)
    x, labels = _people(rng, 12, 3)
    qualities = rng.uniform(0.2, 1.0, size=len(x))
    probes, _ = _people(rng, 12, 1)
    with Gallery(open_store(":memory:"), _EmbeddingsOnly(x.shape[1])) as gallery:
        for name in sorted(set(labels)):
            rows = [i for i, label in enumerate(labels) if label == name]
            gallery.enroll_embeddings(name, x[rows], qualities[rows])
        results = gallery.identify(probes, k=12)
    with GallerySearch(x, labels, qualities) as search:
        scores = search.scores(probes)
    assert scores.shape == (len(probes), 12) and sorted(search.labels) == sorted(set(labels))
    for row, result in zip(scores, results, strict=True):
        assert {c.person: c.score for c in result.candidates} == dict(zip(search.labels, row.tolist(), strict=True))


def test_gallery_search_weights_templates_by_quality_as_the_gallery_does():
    # two enrolment faces of A: the good one along e0, a poor one along e1 (quality 0.1)
    x = np.float32([[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    with GallerySearch(x, ["A", "A", "B"], [1.0, 0.1, 1.0]) as search:
        (a, b) = search.scores(np.float32([[1, 0, 0]]))[0]
    weighted = np.float32([1.0, 0.1, 0]) / np.linalg.norm([1.0, 0.1])
    assert search.labels == ["A", "B"] and a == pytest.approx(weighted[0]) and b == 0
    assert a > build_templates(x, ["A", "A", "B"])[0][0] @ [1, 0, 0]  # the plain mean (every quality 1) is lower


def test_gallery_open_set_report_matches_the_reference_on_one_image_templates():
    rng = np.random.default_rng(8)
    x, labels = _people(rng, 30, 3)
    split = split_gallery_probes(labels, seed=1)
    gallery_labels = [labels[i] for i in split.gallery]
    probe_labels = [labels[i] for i in split.probes]
    x[split.probes[0]] = np.nan  # a probe without a face
    templates, names = build_templates(x[split.gallery], gallery_labels)
    reference = open_set_report(templates, names, x[split.probes], probe_labels, split.probe_mated)
    with GallerySearch(x[split.gallery], gallery_labels) as search:
        measured = gallery_open_set_report(search, x[split.probes], probe_labels, split.probe_mated)
    assert measured.rank_rates == reference.rank_rates and measured.cmc == reference.cmc
    assert measured.fnir_at_fpir == reference.fnir_at_fpir
    assert measured.n_no_face_mated + measured.n_no_face_nonmated == 1
    for key, t in reference.threshold_at_fpir.items():  # float32 gallery scores: equal to float32 precision
        assert measured.threshold_at_fpir[key] == pytest.approx(t, abs=1e-6)


def test_gallery_search_skips_identities_without_an_embedding():
    x = np.float32([[1, 0], [np.nan, np.nan]])
    with GallerySearch(x, ["A", "B"]) as search:
        assert search.labels == ["A"]
        r = gallery_open_set_report(search, np.float32([[1, 0], [0, 1]]), ["A", "B"], [True, True], fpirs=())
    assert r.n_mated_not_enrolled == 1 and r.rank_rates["1"] == 0.5
    with GallerySearch(np.zeros((2, 0), np.float32), ["A", "B"]) as nobody:  # no image had a face at all
        r = gallery_open_set_report(nobody, np.zeros((2, 0), np.float32), ["A", "C"], [True, False], fpirs=())
    assert nobody.labels == [] and r.rank_rates["1"] == 0.0 and r.n_mated_not_enrolled == 1
