"""Error-versus-discard curves: threshold choice, discarding, ties, baselines, pAUC, missing faces."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from faceatlas.eval.edc import (
    ORACLE,
    RANDOM,
    compare_quality_scorers,
    edc_curve,
    expected_discarded_errors,
    pairwise_quality,
    plot_edc,
    threshold_at_fmr,
)

IMPOSTORS = np.arange(1, 11) / 10.0  # 0.1 … 1.0


def test_threshold_at_fmr_hand_computed() -> None:
    # FMR 0.2 of 10 impostors allows 2 false matches (0.9 and 1.0): threshold just above 0.8
    t, realised = threshold_at_fmr(IMPOSTORS, 0.2)
    assert 0.8 < t < 0.8 + 1e-12 and realised == pytest.approx(0.2)
    assert threshold_at_fmr(IMPOSTORS, 0.25) == (t, realised)  # ⌊2.5⌋ = 2: never above the target
    t0, r0 = threshold_at_fmr(IMPOSTORS, 0.05)  # ⌊0.5⌋ = 0: above every impostor
    assert t0 > 1.0 and r0 == 0.0
    t_tie, r_tie = threshold_at_fmr([0.5, 0.5, 0.5, 0.1], 0.5)  # 2 allowed, but 3 are tied at 0.5
    assert t_tie > 0.5 and r_tie == 0.0


def test_edc_hand_computed() -> None:
    genuine = np.array([0.05, 0.1, 0.2, 0.3, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95])
    # errors at threshold 0.5: the first four (FNMR 4/10)
    quality = np.array([0.9, 0.1, 0.2, 0.8, 0.3, 0.4, 0.5, 0.6, 0.7, 0.95])
    r = edc_curve(genuine, IMPOSTORS, quality, threshold=0.5, discard_fractions=[0.0, 0.1, 0.2, 0.3, 0.5])
    c = r.curves["quality"]
    assert r.fmr_target is None and r.fmr_realised == pytest.approx(0.6)  # 0.5 … 1.0 accepted
    assert c.discarded == [0, 1, 2, 3, 5]
    # discard order by quality: 0.1 (error), 0.2 (error), 0.6, 0.7, 0.8, ...
    # 0: 4/10; 1: 3/9; 2: 2/8; 3: 2/7; 5 (also 0.7, 0.8 gone): 2/5
    np.testing.assert_allclose(c.fnmr, [4 / 10, 3 / 9, 2 / 8, 2 / 7, 2 / 5])
    # trapezoid: 0.1*(0.4+0.3333)/2 + 0.1*(0.3333+0.25)/2 + 0.1*(0.25+0.2857)/2 + 0.2*(0.2857+0.4)/2
    area = 0.05 * (4 / 10 + 3 / 9) + 0.05 * (3 / 9 + 2 / 8) + 0.05 * (2 / 8 + 2 / 7) + 0.1 * (2 / 7 + 2 / 5)
    assert c.pauc == pytest.approx(area)
    assert c.pauc_relative == pytest.approx(area / (0.5 * 0.4))
    # oracle discards the lowest scores, i.e. the errors: 4/10, 3/9, 2/8, 1/7, 0/5
    np.testing.assert_allclose(r.curves[ORACLE].fnmr, [0.4, 3 / 9, 2 / 8, 1 / 7, 0.0])
    np.testing.assert_allclose(r.curves[RANDOM].fnmr, [0.4] * 5)  # expected value: flat
    assert r.curves[RANDOM].pauc_relative == pytest.approx(1.0)


def brute_force_fnmr(genuine: np.ndarray, quality: np.ndarray, threshold: float, fraction: float) -> float:
    """Sort by quality, drop the ⌊f·N⌋ lowest, count rejections among the rest, one by one."""
    order = sorted(range(len(genuine)), key=lambda i: quality[i])
    drop = math.floor(fraction * len(genuine) + 1e-9)
    kept = order[drop:]
    rejected = 0
    for i in kept:
        if genuine[i] < threshold:
            rejected += 1
    return rejected / len(kept)


def test_edc_matches_brute_force_without_ties() -> None:
    rng = np.random.default_rng(0)
    genuine = rng.normal(0.6, 0.15, 400)
    impostor = rng.normal(0.1, 0.1, 3000)
    quality = genuine + rng.normal(0, 0.2, 400)  # informative but noisy, all distinct
    fractions = np.linspace(0, 0.5, 51)
    r = edc_curve(genuine, impostor, quality, fmr=1e-2, discard_fractions=fractions)
    t = r.threshold
    assert (impostor >= t).mean() <= 1e-2 and r.fmr_realised == pytest.approx((impostor >= t).mean())
    expected = [brute_force_fnmr(genuine, quality, t, f) for f in fractions]
    np.testing.assert_allclose(r.curves["quality"].fnmr, expected, rtol=1e-12)
    area = sum((fractions[k + 1] - fractions[k]) * (expected[k] + expected[k + 1]) / 2 for k in range(50))
    assert r.curves["quality"].pauc == pytest.approx(area)
    # an informative scorer beats random, and the oracle beats it
    assert r.curves[ORACLE].pauc < r.curves["quality"].pauc < r.curves[RANDOM].pauc


def test_ties_are_averaged_over_all_orders() -> None:
    genuine = np.array([0.1, 0.9, 0.2, 0.8, 0.95, 0.3, 0.7])  # errors below 0.5: 0.1, 0.2, 0.3
    quality = np.array([0.5, 0.5, 0.5, 0.5, 0.1, 0.9, 0.9])  # a block of four ties, a pair of ties
    tied = [0, 1, 2, 3]
    for count in range(len(genuine)):
        fractions = []
        for perm in itertools.permutations(tied):
            q = quality.copy()
            q[list(perm)] = 0.5 + np.arange(4) * 1e-6  # one strict order of the tie block
            q[5], q[6] = (0.9, 0.9 + 1e-6) if perm[0] % 2 else (0.9 + 1e-6, 0.9)  # and of the pair
            fractions.append(brute_force_fnmr(genuine, q, 0.5, count / len(genuine)))
        r = edc_curve(genuine, IMPOSTORS, quality, threshold=0.5, discard_fractions=[count / len(genuine)], name="q")
        assert r.curves["q"].fnmr[0] == pytest.approx(np.mean(fractions)), count


def test_expected_discarded_errors_is_order_independent() -> None:
    errors = np.array([True, False, True, False, False])
    quality = np.array([0.2, 0.2, 0.2, 0.7, 0.1])
    # discard 2: item 4 (no error) then one of the three tied (2 errors of 3) → 2/3 error expected
    np.testing.assert_allclose(
        expected_discarded_errors(errors, quality, np.array([0, 1, 2, 4, 5])), [0, 0, 2 / 3, 2, 2]
    )
    shuffled = np.array([4, 2, 0, 3, 1])
    np.testing.assert_allclose(expected_discarded_errors(errors[shuffled], quality[shuffled], np.array([2])), [2 / 3])


def test_missing_faces_score_minus_inf_with_quality_zero() -> None:
    # two genuine pairs without a face: score -inf, quality 0 → false non-matches, discarded first
    genuine = np.array([-np.inf, -np.inf, 0.9, 0.8, 0.7, 0.2, 0.95, 0.85, 0.75, 0.65])
    quality = np.array([0.0, 0.0, 0.5, 0.6, 0.7, 0.8, 0.3, 0.4, 0.9, 0.95])
    impostor = np.concatenate([IMPOSTORS, [-np.inf] * 5])  # impostor pairs without a face never match
    r = edc_curve(genuine, impostor, quality, threshold=0.5, discard_fractions=[0.0, 0.1, 0.2, 0.3])
    assert r.fmr_realised == pytest.approx(6 / 15)
    assert r.false_non_matches == 3
    np.testing.assert_allclose(r.curves["quality"].fnmr, [3 / 10, 2 / 9, 1 / 8, 1 / 7])


def test_compare_scorers_share_one_threshold(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    genuine, impostor = rng.normal(0.6, 0.2, 300), rng.normal(0.0, 0.15, 2000)
    scorers = {"good": genuine + rng.normal(0, 0.05, 300), "useless": rng.uniform(size=300)}
    r = compare_quality_scorers(genuine, impostor, scorers, fmr=1e-3)
    assert list(r.curves) == ["good", "useless", RANDOM, ORACLE]
    assert r.curves["good"].pauc < r.curves["useless"].pauc
    assert all(c.fnmr[0] == pytest.approx(r.false_non_matches / 300) for c in r.curves.values())
    assert r.n_genuine == 300 and r.n_impostor == 2000
    assert "good" in r.table() and "pAUC" in r.table()
    json.dumps(r.to_dict())
    plot_edc(r, tmp_path / "edc.png")
    plot_edc(r, tmp_path / "edc_log.png", log_y=True)
    assert (tmp_path / "edc.png").stat().st_size > 1000 and (tmp_path / "edc_log.png").stat().st_size > 1000
    assert not compare_quality_scorers(genuine, impostor, scorers, baselines=False).curves.keys() - scorers.keys()


def test_notes_and_input_checks() -> None:
    r = edc_curve([0.9, 0.1], IMPOSTORS, [0.5, 0.5], fmr=1e-3)
    assert any("cannot measure FMR" in n for n in r.notes)
    assert any("only 2 false non-matches" in n for n in r.notes)
    with pytest.raises(ValueError, match="NaN"):
        edc_curve([0.9, np.nan], IMPOSTORS, [0.5, 0.5])
    with pytest.raises(ValueError, match="NaN"):
        edc_curve([0.9, 0.1], IMPOSTORS, [0.5, np.nan])
    with pytest.raises(ValueError, match="2 genuine"):
        edc_curve([0.9, 0.1], IMPOSTORS, [0.5])
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        edc_curve([0.9, 0.1], IMPOSTORS, [0.5, 0.5], discard_fractions=[0.0, 1.0])


def test_pairwise_quality_is_the_minimum() -> None:
    np.testing.assert_array_equal(pairwise_quality([0.2, 0.9, 0.0], [0.5, 0.3, 0.7]), [0.2, 0.3, 0.0])
