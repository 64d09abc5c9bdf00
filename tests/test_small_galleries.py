"""Small template galleries: the card's face-versus-template statistics and the FPIR solver over them."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest
from conftest import shared_data

from faceatlas.errors import InvalidArgumentError, ModelError
from faceatlas.gallery.gallery import Gallery, template_open_set_threshold
from faceatlas.models.cards import DLIB_RESNET_CARD, CalibratedThreshold, ModelCard, TemplateThresholds

FARS = (1e-2, 1e-3, 1e-4, 1e-5)


def synthetic_card(shift: dict[int, float] | None = None) -> ModelCard:
    """Thresholds 0.90 + 0.01 per decade of FAR, raised by ``shift[k]`` for templates of k faces."""
    shift = shift if shift is not None else {1: 0.0, 3: 0.02, 10: 0.03}

    def points(extra: float) -> tuple[CalibratedThreshold, ...]:
        return tuple(CalibratedThreshold(f, 0.90 + 0.01 * (-2 - math.log10(f)) + extra) for f in FARS)

    return dataclasses.replace(
        DLIB_RESNET_CARD,
        name="synthetic",
        thresholds=points(0.0),
        template_thresholds=tuple(TemplateThresholds(k, points(s)) for k, s in shift.items()),
    )


def far_of(card: ModelCard, t: float, faces: int) -> float:
    """The per-comparison FAR at threshold t, from the curve the solver uses."""
    ts, log_far = card.template_far_curve(faces)
    return math.exp(float(np.interp(t, ts, log_far)))


def fpir_of(card: ModelCard, t: float, sizes: list[int]) -> float:
    return 1.0 - math.prod(1.0 - far_of(card, t, n) for n in sizes)


# -- the card: thresholds by template size -----------------------------------------------------------


def test_template_thresholds_at_calibrated_sizes_between_and_beyond():
    card = synthetic_card()
    assert card.template_threshold_for(1e-3, 3) == pytest.approx(0.93)
    assert card.template_threshold_for(1e-3, 1) == pytest.approx(0.91)
    # between 3 and 10 faces: linear in 1/faces
    w = (1 / 3 - 1 / 5) / (1 / 3 - 1 / 10)
    assert card.template_threshold_for(1e-3, 5) == pytest.approx(0.93 + w * 0.01)
    # beyond the largest calibrated size, the largest
    assert card.template_threshold_for(1e-3, 50) == pytest.approx(card.template_threshold_for(1e-3, 10))
    # log-linear in FAR within a size, as threshold_for
    assert card.template_threshold_for(10**-2.5, 3) == pytest.approx(0.925)
    sizes = [card.template_threshold_for(1e-4, n) for n in range(1, 25)]
    assert all(b >= a for a, b in itertools.pairwise(sizes))  # monotone in the size
    with pytest.raises(InvalidArgumentError, match="outside the range"):
        card.template_threshold_for(1e-6, 3)
    with pytest.raises(InvalidArgumentError):
        card.template_threshold_for(1e-3, 0)


def test_far_curve_inverts_the_thresholds():
    card = synthetic_card()
    for n in (1, 2, 3, 7, 10, 40):
        for far in (1e-2, 3e-3, 1e-3, 2e-5, 1e-5):
            assert far_of(card, card.template_threshold_for(far, n), n) == pytest.approx(far, rel=1e-9)


def test_a_card_without_template_statistics_says_so():
    card = dataclasses.replace(DLIB_RESNET_CARD, template_thresholds=())
    with pytest.raises(ModelError, match="no face-versus-template"):
        card.template_threshold_for(1e-3, 3)


# -- the solver ------------------------------------------------------------------------------------


def test_one_size_matches_the_per_comparison_far():
    card = synthetic_card()
    for people, faces in ((1, 3), (2, 3), (10, 1), (50, 10), (7, 5)):
        t, notes = template_open_set_threshold(card, 1e-2, [faces] * people)
        per_comparison = min(1.0 - (1.0 - 1e-2) ** (1.0 / people), 1e-2)  # one person: 0.01 + rounding
        assert not notes
        assert t == pytest.approx(card.template_threshold_for(per_comparison, faces), abs=1e-6)


def test_mixed_sizes_give_the_target_fpir_between_the_pure_galleries():
    card = synthetic_card()
    sizes = [1, 1, 3, 3, 3, 10, 2, 5]
    t, notes = template_open_set_threshold(card, 1e-2, sizes)
    assert not notes
    assert fpir_of(card, t, sizes) == pytest.approx(1e-2, rel=1e-4)
    # one template of 1 face each is the loosest answer, all of 10 faces the strictest
    only_ones, _ = template_open_set_threshold(card, 1e-2, [1] * len(sizes))
    only_tens, _ = template_open_set_threshold(card, 1e-2, [10] * len(sizes))
    assert only_ones < t < only_tens
    assert template_open_set_threshold(card, 1e-2, sizes[::-1])[0] == t  # the order of people does not matter


def test_threshold_rises_with_people_template_size_and_a_stricter_fpir():
    card = synthetic_card()
    by_people = [template_open_set_threshold(card, 1e-2, [3] * n)[0] for n in (1, 2, 5, 10, 50, 100)]
    by_size = [template_open_set_threshold(card, 1e-2, [n] * 5)[0] for n in (1, 2, 3, 5, 10, 20)]
    by_fpir = [template_open_set_threshold(card, f, [3] * 5)[0] for f in (1e-2, 5e-3, 1e-3, 1e-4)]
    for series in (by_people, by_fpir, by_size[:-1]):
        assert all(b > a for a, b in itertools.pairwise(series))
    assert by_size[-1] == by_size[-2]  # 20 faces: beyond the largest calibrated size (10), the same


def test_fpir_outside_the_calibrated_range():
    card = synthetic_card()
    # too strict: 10,000 people at FPIR 1e-3 need 1e-7 per comparison; capped at the strictest point
    t, notes = template_open_set_threshold(card, 1e-3, [3] * 10_000)
    assert t == pytest.approx(card.template_threshold_for(1e-5, 3)) and "capped" in notes[0]
    # mixed sizes: capped at the strictest calibrated threshold of any size present
    t, notes = template_open_set_threshold(card, 1e-3, [1] * 5000 + [10] * 5000)
    assert t == pytest.approx(card.template_threshold_for(1e-5, 10)) and notes
    # too loose: one person at FPIR 0.2 would need 0.2 per comparison; the loosest calibrated (1e-2)
    t, notes = template_open_set_threshold(card, 0.2, [3])
    assert t == pytest.approx(card.template_threshold_for(1e-2, 3)) and not notes
    for bad in (0.0, 1.0, -0.1, float("nan")):
        with pytest.raises(InvalidArgumentError):
            template_open_set_threshold(card, bad, [3])
    with pytest.raises(InvalidArgumentError, match="none were given"):
        template_open_set_threshold(card, 1e-2, [])


def test_the_default_card_has_monotone_template_statistics():
    card = DLIB_RESNET_CARD
    assert card.template_thresholds, "dlib_resnet's card carries face-versus-template statistics"
    for far in (1e-2, 1e-3, 1e-4, 1e-5):
        by_size = [card.template_threshold_for(far, n) for n in range(1, 30)]
        assert all(b >= a for a, b in itertools.pairwise(by_size))
        assert by_size[0] == pytest.approx(card.threshold_for(far), abs=0.003)  # 1 face: about face to face
    for n in (1, 3, 20):
        card.template_far_curve(n)  # rises with the threshold, else ModelError


# -- the gallery -----------------------------------------------------------------------------------


class _Embedder:
    card = DLIB_RESNET_CARD
    dim = 128


class _Analyzer:
    embedder = _Embedder()


def _unit(rng: np.random.Generator, n: int, around: np.ndarray | None = None) -> np.ndarray:
    v = rng.normal(size=(n, 128)) if around is None else around + 0.3 * rng.normal(size=(n, 128)) / np.sqrt(128)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def test_a_small_gallery_decides_with_the_cards_template_statistics(tmp_path):
    rng = np.random.default_rng(0)
    centres = _unit(rng, 3)
    with Gallery.open(tmp_path / "g.db", analyzer=_Analyzer()) as g:
        for i, size in enumerate((1, 3, 5)):
            g.enroll_embeddings(f"p{i}", _unit(rng, size, centres[i]))
        (result,) = g.identify(_unit(rng, 1, centres[1])[0])
    expected, _ = template_open_set_threshold(DLIB_RESNET_CARD, 1e-2, [1, 3, 5])
    assert result.threshold == expected and not result.notes
    assert result.threshold > DLIB_RESNET_CARD.threshold_for(1 - 0.99 ** (1 / 3))  # stricter than face to face


def test_without_template_statistics_a_small_gallery_keeps_the_note(tmp_path):
    analyzer = _Analyzer()
    analyzer.embedder = _Embedder()
    analyzer.embedder.card = dataclasses.replace(DLIB_RESNET_CARD, template_thresholds=())
    rng = np.random.default_rng(1)
    with Gallery.open(tmp_path / "g.db", analyzer=analyzer) as g:
        for i in range(3):
            g.enroll_embeddings(f"p{i}", _unit(rng, 3))
        (result,) = g.identify(_unit(rng, 1)[0])
    assert result.threshold == pytest.approx(DLIB_RESNET_CARD.threshold_for(1 - 0.99 ** (1 / 3)))
    assert any("face-to-face" in note for note in result.notes)


def test_three_lfw_people_with_the_default_pipeline(tmp_path):
    root = shared_data("lfw_devtest", "images")
    people = [p for p in sorted(root.iterdir()) if p.is_dir() and len(list(p.glob("*.jpg"))) >= 4][:3]
    if len(people) < 3:
        pytest.skip(f"fewer than 3 people with 4 photos under {root}")
    from faceatlas.pipeline import FaceAnalyzer

    with Gallery.open(tmp_path / "g.db", analyzer=FaceAnalyzer()) as g:
        for person in people:
            g.enroll(person.name, sorted(person.glob("*.jpg"))[:3])
        sizes = [len(g.faces_of(p.name)) for p in people]
        results = [g.identify(sorted(p.glob("*.jpg"))[3])[0] for p in people]
    expected, _ = template_open_set_threshold(g.card, 1e-2, sizes)
    assert all(r.threshold == expected and not r.notes for r in results)
    assert sum(r.person == p.name for r, p in zip(results, people, strict=True)) >= 2
