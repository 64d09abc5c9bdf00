"""Group fairness: generic per-group metrics and spread, verification FMR/FNMR at one threshold."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from faceatlas.eval.fairness import (
    ALL,
    CROSS_GROUP,
    group_metrics,
    pairs_fairness,
    plot_fairness,
    verification_fairness,
)


def test_group_metrics_hand_computed() -> None:
    values = np.array([1.0, 2.0, 3.0, 10.0, 20.0, 5.0])
    groups = ["a", "a", "a", "b", "b", None]

    def metric_fn(mask: np.ndarray) -> dict[str, float | None]:
        return {"mean": float(values[mask].mean()), "accuracy": float((values[mask] > 2).mean())}

    r = group_metrics(groups, metric_fn, higher_is_better={"accuracy"})
    # all: mean 41/6; a: mean 2, accuracy 1/3; b: mean 15, accuracy 1
    assert r.overall["mean"] == pytest.approx(41 / 6)
    assert r.groups["a"] == {"mean": 2.0, "accuracy": pytest.approx(1 / 3)}
    assert r.groups["b"] == {"mean": 15.0, "accuracy": 1.0}
    assert r.counts == {ALL: 6, "a": 3, "b": 2}
    s = r.spread["mean"]
    assert (s.max, s.min, s.difference, s.ratio) == (15.0, 2.0, 13.0, 7.5)
    assert (s.best_group, s.worst_group) == ("a", "b")  # lower is better by default
    acc = r.spread["accuracy"]
    assert acc.ratio == pytest.approx(3.0) and (acc.best_group, acc.worst_group) == ("b", "a")
    assert any("'a' has only 3 items" in n for n in r.notes)
    assert any("1 items have no group" in n for n in r.notes)
    json.dumps(r.to_dict())
    assert "mean: max−min 13, max/min 7.50 (worst b, best a)" in r.table()


def test_group_metrics_match_manual_filtering() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=200)
    groups = [rng.choice(["x", "y", "z", None]) for _ in range(200)]
    r = group_metrics(groups, lambda m: {"sum": float(values[m].sum())}, min_items=0)
    for g in ("x", "y", "z"):
        total = 0.0
        for v, label in zip(values, groups, strict=True):
            if label == g:
                total += v
        assert r.groups[g]["sum"] == pytest.approx(total)
    assert r.overall["sum"] == pytest.approx(values.sum())


def test_undefined_ratio_and_single_group() -> None:
    errors = np.array([0.0, 0.0, 1.0, 1.0])
    r = group_metrics(["a", "a", "b", "b"], lambda m: {"err": float(errors[m].mean())}, min_items=0)
    assert r.spread["err"].ratio is None and r.spread["err"].difference == 1.0
    assert any("ratio undefined" in n for n in r.notes)
    one = group_metrics(["a", "a"], lambda m: {"err": 0.5}, min_items=0)
    assert one.spread["err"].difference is None  # a spread needs two groups
    none = group_metrics(["a", "b"], lambda m: {"err": None}, min_items=0)
    assert none.spread["err"].max is None


def test_verification_fairness_hand_computed() -> None:
    t = 0.5
    scores = [0.9, 0.4, 0.6, 0.1, 0.8, 0.7, 0.2, 0.3, 0.6, 0.9, 0.55]
    same = [1, 1, 0, 0, 1, 1, 0, 0, 0, 1, 0]
    ga = ["a", "a", "a", "a", "b", "b", "b", "b", "a", None, "b"]
    gb = ["a", "a", "a", "a", "b", "b", "b", "b", "b", "a", "b"]
    r = verification_fairness(scores, same, ga, gb, t)
    # a: genuine 0.9 ✓ 0.4 ✗ → FNMR 1/2; impostor 0.6 ✗ 0.1 ✓ → FMR 1/2
    # b: genuine 0.8 ✓ 0.7 ✓ → FNMR 0; impostor 0.2, 0.3, 0.55 → FMR 1/3
    # cross-group: one impostor at 0.6 → FMR 1; the pair with an unknown group is in "all" only
    assert r.groups["a"]["fnmr"] == 0.5 and r.groups["a"]["fmr"] == 0.5
    assert r.groups["b"]["fnmr"] == 0.0 and r.groups["b"]["fmr"] == pytest.approx(1 / 3)
    assert r.other[CROSS_GROUP] == {"fmr": 1.0, "fnmr": None, "genuine": 0, "impostor": 1, "failed": 0}
    # all: genuine 0.9 0.4 0.8 0.7 0.9 → 1/5 rejected; impostor 0.6 0.1 0.2 0.3 0.6 0.55 → 3/6 accepted
    assert r.overall["fnmr"] == pytest.approx(1 / 5) and r.overall["fmr"] == pytest.approx(3 / 6)
    assert r.spread["fmr"].ratio == pytest.approx(1.5) and r.spread["fmr"].worst_group == "a"
    assert r.spread["fnmr"].ratio is None  # b has FNMR 0
    assert set(r.spread) == {"fmr", "fnmr"}
    assert r.threshold == 0.5 and r.counts[CROSS_GROUP] == 1
    assert any("unknown group" in n for n in r.notes) and any("span two groups" in n for n in r.notes)
    assert any("'a': 2 genuine pairs" in n for n in r.notes)
    table = r.table()
    assert CROSS_GROUP in table and "one threshold" in table
    json.dumps(r.to_dict())


def test_verification_fairness_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    n = 3000
    labels = ["p", "q", "r"]
    ga = [labels[i] for i in rng.integers(0, 3, n)]
    gb = [g if rng.uniform() < 0.8 else labels[rng.integers(0, 3)] for g in ga]
    same = rng.uniform(size=n) < 0.3
    scores = np.where(same, rng.normal(0.6, 0.2, n), rng.normal(0.1, 0.15, n))
    r = verification_fairness(scores, same, ga, gb, threshold=0.35, fmr=1e-2)
    for g in labels:
        fa = fr = n_imp = n_gen = 0
        for s, y, a, b in zip(scores, same, ga, gb, strict=True):
            if a == g and b == g:
                if y:
                    n_gen += 1
                    fr += s < 0.35
                else:
                    n_imp += 1
                    fa += s >= 0.35
        assert r.groups[g]["fmr"] == pytest.approx(fa / n_imp)
        assert r.groups[g]["fnmr"] == pytest.approx(fr / n_gen)
    values = [r.groups[g]["fmr"] for g in labels]
    assert r.spread["fmr"].ratio == pytest.approx(max(values) / min(values))
    assert r.spread["fmr"].difference == pytest.approx(max(values) - min(values))


def test_small_groups_are_flagged() -> None:
    scores = [0.9] * 5 + [0.1] * 50
    same = [True] * 5 + [False] * 50
    groups = ["g"] * 55
    r = verification_fairness(scores, same, groups, groups, 0.5, fmr=1e-3)
    assert any("5 genuine pairs (< 20)" in n for n in r.notes)
    assert any("50 impostor pairs (< 1/FMR = 1000)" in n for n in r.notes)


def test_pairs_fairness_uses_one_threshold_at_fmr(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    pairs = [SimpleNamespace(group=g) for g in ["m"] * 300 + ["f"] * 300 + [None] * 10]
    same = np.tile([True, False, False], 204)[:610]
    scores = np.where(same, rng.normal(0.6, 0.2, 610), rng.normal(0.1, 0.15, 610))
    failed = np.zeros(610, dtype=bool)
    failed[:3] = True
    r = pairs_fairness(pairs, scores, same, failed, fmr=1e-2)
    assert r.overall["fmr"] <= 1e-2
    assert r.groups["m"]["failed"] == 3 and r.counts[ALL] == 610
    assert set(r.groups) == {"f", "m"} and not r.other
    plot_fairness(r, tmp_path / "fairness.png")
    assert (tmp_path / "fairness.png").stat().st_size > 1000


def test_input_checks() -> None:
    with pytest.raises(ValueError, match="one entry per pair"):
        verification_fairness([0.1], [True, False], ["a"], ["a"], 0.5)
    with pytest.raises(ValueError, match="NaN"):
        verification_fairness([np.nan], [True], ["a"], ["a"], 0.5)
    with pytest.raises(ValueError, match="also a group name"):
        group_metrics(["x"], lambda m: {"v": 1.0}, other={"x": np.array([True])})
