"""The threshold at a target false-accept rate: its definition, and the four places that use it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from faceatlas._thresholds import false_accepts_allowed, observed_far, threshold_at_far
from faceatlas.errors import InvalidArgumentError
from faceatlas.eval.edc import threshold_at_fmr
from faceatlas.eval.identification import open_set_report
from faceatlas.verification import FARCalibrator

# few distinct values, so ties are common; -inf is what a missing comparison scores
SCORES = st.lists(st.sampled_from([-np.inf, -0.5, 0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]), min_size=1, max_size=60)
RATES = st.one_of(
    st.floats(0.0, 1.0),
    st.builds(lambda k, n: k / n, st.integers(0, 60), st.integers(1, 60)).filter(lambda r: r <= 1.0),
    st.sampled_from([0.0, 1e-3, 1e-2, 0.1, 0.29, 0.57, 1.0]),  # 0.29 * 100 and 0.57 * 100 round down
)


def count_at_or_above(scores: np.ndarray, t: float) -> int:
    return int((scores >= t).sum())


@settings(max_examples=500, deadline=None)
@given(SCORES, RATES, st.sampled_from([np.float64, np.float32]))
def test_the_smallest_threshold_whose_observed_far_is_at_most_the_target(values, far, dtype):
    scores = np.array(values, dtype=dtype)
    n = len(scores)
    t = threshold_at_far(scores, far)
    assert count_at_or_above(scores, t) / n <= far  # never above the target, ties included
    if t != -np.inf:  # smallest: the next number below (in the scores' precision) lets too many through
        below = float(np.nextafter(dtype(t), dtype(-np.inf)))
        assert count_at_or_above(scores, below) / n > far
        assert dtype(t) == t  # representable in the scores' own precision: compares exactly
    else:
        assert false_accepts_allowed(n, far) == n  # -inf only when every impostor may pass
    assert observed_far(scores, t) == count_at_or_above(scores, t) / n


def test_hand_computed_cases() -> None:
    ten = np.arange(1, 11) / 10.0  # 0.1 … 1.0
    t = threshold_at_far(ten, 0.2)  # two may pass (0.9, 1.0): just above 0.8
    assert t == np.nextafter(0.8, 1.0)
    assert threshold_at_far(ten, 0.25) == t  # 2.5 impostors: still two
    assert threshold_at_far(ten, 0.0) == np.nextafter(1.0, 2.0)  # none may pass: above the highest
    assert threshold_at_far(ten, 1.0) == -np.inf  # all may pass
    # 2 may pass, but 3 are tied at 0.5: the threshold goes above all three (observed FAR 0)
    assert threshold_at_far([0.5, 0.5, 0.5, 0.1], 0.5) == np.nextafter(0.5, 1.0)
    assert threshold_at_far(np.float32([0.5, 0.1]), 0.0) == float(np.nextafter(np.float32(0.5), np.float32(1)))


def test_rounding_of_far_times_n_does_not_lose_an_impostor() -> None:
    # 0.29 * 100 is 28.999999999999996 in floating point: a plain floor allowed 28
    assert false_accepts_allowed(100, 0.29) == 29 and 29 / 100 <= 0.29
    assert false_accepts_allowed(100, 0.57) == 57
    assert false_accepts_allowed(3, 1 / 3) == 1 and false_accepts_allowed(10, 0.05) == 0
    scores = np.arange(100) / 100.0
    assert observed_far(scores, threshold_at_far(scores, 0.29)) == 0.29


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_bad_rates_and_scores_are_refused(bad: float) -> None:
    with pytest.raises(InvalidArgumentError, match="far must be a rate"):
        threshold_at_far([0.1, 0.2], bad)
    with pytest.raises(InvalidArgumentError, match="NaN"):
        threshold_at_far([0.1, float("nan")], 0.1)
    with pytest.raises(InvalidArgumentError, match=r"\+inf"):
        threshold_at_far([0.1, float("inf")], 0.5)
    with pytest.raises(InvalidArgumentError, match="none were given"):
        threshold_at_far([], 0.1)


# --- every caller uses the one definition ------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-1, 1, width=32), min_size=100, max_size=300), st.sampled_from([0.01, 0.05, 0.29, 0.57]))
@example(impostors=[i / 100 for i in range(100)], far=0.29)  # a plain floor (old FARCalibrator) allowed 28, not 29
def test_verification_edc_and_identification_agree(impostors, far):
    impostor = np.array(impostors, dtype=np.float64)
    expected = threshold_at_far(impostor, far)

    genuine = np.full(5, 2.0)
    calibrator = FARCalibrator(targets=(far,)).fit(np.r_[genuine, impostor], np.r_[[True] * 5, [False] * len(impostor)])
    assert calibrator.thresholds_[0] == expected and calibrator.far_[0] == observed_far(impostor, expected)

    assert threshold_at_fmr(impostor, far) == (expected, observed_far(impostor, expected))

    # identification: each non-mated probe's top score is its one score against a one-identity gallery
    gallery = np.array([[1.0, 0.0]])
    nonmated = np.stack([impostor, np.sqrt(1 - impostor**2)], axis=1)
    probes = np.vstack([[[1.0, 0.0]], nonmated])
    labels = ["A"] + [f"x{i}" for i in range(len(impostor))]
    report = open_set_report(gallery, ["A"], probes, labels, [True] + [False] * len(impostor), fpirs=(far,))
    assert report.threshold_at_fpir[f"{far:g}"] == threshold_at_far(probes[1:] @ gallery[0], far)


def test_the_gallery_template_threshold_is_the_same_definition(monkeypatch: pytest.MonkeyPatch) -> None:
    import faceatlas.gallery.gallery as gallery_module
    from faceatlas.gallery.gallery import Gallery
    from faceatlas.gallery.store import FaceRecord, ModelTag, open_store

    # 65 impostors above the cut: self-calibrated only once SELF_CALIBRATION_TAIL allows it
    monkeypatch.setattr(gallery_module, "SELF_CALIBRATION_TAIL", gallery_module.MIN_TAIL)

    rng = np.random.default_rng(3)
    store = open_store(":memory:")
    store.bind_model(ModelTag("fake", "1", 16))
    for person in range(20):
        centre = rng.normal(size=16)
        vectors = centre + 0.5 * rng.normal(size=(5, 16))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        pid = store.add_person(f"p{person}")
        store.add_faces(pid, [FaceRecord(v.astype(np.float32), 0.9, f"{person}-{i}") for i, v in enumerate(vectors)])
    with Gallery(store) as gallery:
        matrix = gallery._current()
        fpir, comparisons = 0.5, 20
        threshold, notes = gallery._template_threshold(matrix, fpir, comparisons, 0.0, ())
        impostor = gallery._template_impostor_scores(matrix)
        assert notes == () and len(impostor) == 100 * 19
        per_comparison = 1.0 - (1.0 - fpir) ** (1.0 / comparisons)
        assert threshold == threshold_at_far(impostor, per_comparison)
        assert observed_far(impostor, threshold) <= per_comparison
