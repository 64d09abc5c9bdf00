"""Group fairness reports: a metric over all items and per group, and how far the groups differ.

Definitions
-----------
* :func:`group_metrics` is generic: ``metric_fn(mask)`` computes named metrics over the items
  selected by a boolean mask. It runs once on every item ("all" — items without a group
  included) and once per group. For each metric, the **spread** over the groups that have a
  value: ``difference`` = max − min, ``ratio`` = max / min (None when min ≤ 0 or fewer than
  two groups have a value), the groups holding the max and min, and the best and worst group
  (lower is better unless the metric is named in ``higher_is_better``).
* :func:`verification_fairness` uses ONE global threshold for every group (accept when
  ``score >= threshold``) — per-group thresholds would hide exactly the differences this
  reports. A pair belongs to group g when both of its images are in g; pairs whose images are
  in two different groups form the separate "cross-group" bucket (reported, not part of the
  spread); pairs with an image of unknown group count only in "all". Per group: FMR = impostor
  pairs accepted / impostor pairs, FNMR = genuine pairs rejected / genuine pairs. The spread's
  ratios are NIST FRVT-style max/min ratios of FMR and of FNMR.
* Small groups get a note: fewer than ``min_pairs`` genuine pairs (FNMR) or impostor pairs
  below 1/FMR when the threshold's FMR is known (an FMR of 0 there says little: with n
  impostors and no false match the 95% upper bound is still about 3/n).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceatlas.errors import InvalidArgumentError

ALL = "all"
CROSS_GROUP = "cross-group"
MIN_ITEMS = 20

MetricFn = Callable[[np.ndarray], Mapping[str, float | None]]


@dataclass
class Spread:
    """How one metric differs across groups."""

    max: float | None
    min: float | None
    difference: float | None  # max − min
    ratio: float | None  # max / min; None when undefined (min ≤ 0, or < 2 groups)
    max_group: str | None
    min_group: str | None
    best_group: str | None
    worst_group: str | None
    higher_is_better: bool = False


@dataclass
class FairnessReport:
    overall: dict[str, float | None]
    groups: dict[str, dict[str, float | None]]
    counts: dict[str, int]  # items in "all", in each group and in each other bucket
    spread: dict[str, Spread]
    other: dict[str, dict[str, float | None]] = field(default_factory=dict)  # buckets outside the spread
    threshold: float | None = None  # the one threshold, for verification reports
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "overall": dict(self.overall),
            "groups": {g: dict(m) for g, m in self.groups.items()},
            "other": {g: dict(m) for g, m in self.other.items()},
            "counts": dict(self.counts),
            "spread": {name: vars(s).copy() for name, s in self.spread.items()},
            "notes": list(self.notes),
        }

    def table(self) -> str:
        metrics = list(self.overall)
        rows = [(ALL, self.counts.get(ALL, 0), self.overall)]
        rows += [(g, self.counts.get(g, 0), m) for g, m in self.groups.items()]
        rows += [(g, self.counts.get(g, 0), m) for g, m in self.other.items()]
        width = max(len(r[0]) for r in rows + [("spread: max/min", 0, {})])
        lines = [] if self.threshold is None else [f"one threshold for all groups: {self.threshold:.5f}"]
        lines.append(f"{'group':<{width}}  {'items':>7}  " + "  ".join(f"{m:>10}" for m in metrics))
        for name, n, values in rows:
            lines.append(f"{name:<{width}}  {n:>7}  " + "  ".join(f"{_fmt(values.get(m)):>10}" for m in metrics))
        for name, s in self.spread.items():
            ratio = "n/a" if s.ratio is None else f"{s.ratio:.2f}"
            lines.append(
                f"{name}: max−min {_fmt(s.difference)}, max/min {ratio} (worst {s.worst_group}, best {s.best_group})"
            )
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if float(value).is_integer() and abs(value) >= 1:
        return f"{int(value)}"
    return f"{value:.4g}"


def group_metrics(
    groups: Sequence[str | None],
    metric_fn: MetricFn,
    *,
    higher_is_better: Collection[str] = (),
    spread_metrics: Collection[str] | None = None,
    min_items: int = MIN_ITEMS,
    other: Mapping[str, np.ndarray] | None = None,
) -> FairnessReport:
    """The metrics over all items and per group, and their spread (see the module docstring).

    ``spread_metrics``: the metrics whose spread is reported (default: all). ``other``: extra
    named masks (e.g. a cross-group bucket) measured and reported but kept out of the spread.
    Groups with fewer than ``min_items`` items get a note.
    """
    report = _measure(groups, metric_fn, higher_is_better, spread_metrics, other)
    small = [g for g in report.groups if report.counts[g] < min_items]
    report.notes += [
        f"group {g!r} has only {report.counts[g]} items (< {min_items}): its metrics are noisy" for g in small
    ]
    unlabelled = sum(g is None for g in groups)
    if unlabelled:
        report.notes.append(f"{unlabelled} items have no group: they count in '{ALL}' only")
    return report


def _measure(
    groups: Sequence[str | None],
    metric_fn: MetricFn,
    higher_is_better: Collection[str],
    spread_metrics: Collection[str] | None,
    other: Mapping[str, np.ndarray] | None,
) -> FairnessReport:
    labels = [None if g is None else str(g) for g in groups]
    overall = _call(metric_fn, np.ones(len(labels), dtype=bool))
    names = sorted({g for g in labels if g is not None})
    masks = {g: np.array([label == g for label in labels], dtype=bool) for g in names}
    per_group = {g: _call(metric_fn, mask) for g, mask in masks.items()}
    counts = {ALL: len(labels), **{g: int(mask.sum()) for g, mask in masks.items()}}
    extra = {}
    for name, mask in (other or {}).items():
        if name in masks or name == ALL:
            raise InvalidArgumentError(f"the bucket name {name!r} is also a group name")
        mask = np.asarray(mask, dtype=bool)
        extra[name] = _call(metric_fn, mask)
        counts[name] = int(mask.sum())
    chosen = list(overall) if spread_metrics is None else [m for m in overall if m in set(spread_metrics)]
    spread = {m: _spread({g: per_group[g].get(m) for g in names}, m in set(higher_is_better)) for m in chosen}
    notes = []
    for m, s in spread.items():
        if s.max is not None and s.ratio is None:
            notes.append(f"{m}: max/min ratio undefined (group {s.min_group!r} has {_fmt(s.min)})")
    return FairnessReport(overall, per_group, counts, spread, extra, None, notes)


def _call(metric_fn: MetricFn, mask: np.ndarray) -> dict[str, float | None]:
    return {k: (None if v is None else float(v)) for k, v in metric_fn(mask).items()}


def _spread(values: Mapping[str, float | None], higher_is_better: bool) -> Spread:
    have = {g: v for g, v in values.items() if v is not None and math.isfinite(v)}
    if len(have) < 2:
        return Spread(None, None, None, None, None, None, None, None, higher_is_better)
    max_group = max(have, key=lambda g: have[g])  # first of equals, groups being sorted
    min_group = min(have, key=lambda g: have[g])
    hi, lo = have[max_group], have[min_group]
    best, worst = (max_group, min_group) if higher_is_better else (min_group, max_group)
    ratio = hi / lo if lo > 0 else None
    return Spread(hi, lo, hi - lo, ratio, max_group, min_group, best, worst, higher_is_better)


def verification_fairness(
    scores: np.ndarray | Sequence[float],
    same: np.ndarray | Sequence[bool],
    groups_a: Sequence[str | None],
    groups_b: Sequence[str | None],
    threshold: float,
    *,
    fmr: float | None = None,
    failed: np.ndarray | Sequence[bool] | None = None,
    min_pairs: int = MIN_ITEMS,
) -> FairnessReport:
    """Per-group FMR and FNMR at one global ``threshold`` (see the module docstring).

    ``fmr``: the FMR the threshold was set for, if any (only used to flag groups with too few
    impostor pairs). ``failed``: pairs where a face was missing (scored as non-matches by the
    caller); counted per group.
    """
    scores = np.asarray(scores, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    failed_arr = np.zeros(len(scores), dtype=bool) if failed is None else np.asarray(failed, dtype=bool)
    if not len(scores) == len(same) == len(groups_a) == len(groups_b) == len(failed_arr):
        raise InvalidArgumentError("scores, same, groups_a, groups_b (and failed) must have one entry per pair")
    if np.isnan(scores).any():
        raise InvalidArgumentError("scores contain NaN; a pair without a face scores -inf")
    accepted = scores >= threshold

    def metric_fn(mask: np.ndarray) -> dict[str, float | None]:
        gen, imp = mask & same, mask & ~same
        n_gen, n_imp = int(gen.sum()), int(imp.sum())
        return {
            "fmr": float((accepted & imp).sum() / n_imp) if n_imp else None,
            "fnmr": float((~accepted & gen).sum() / n_gen) if n_gen else None,
            "genuine": n_gen,
            "impostor": n_imp,
            "failed": int((failed_arr & mask).sum()),
        }

    labels = [a if a is not None and a == b else None for a, b in zip(groups_a, groups_b, strict=True)]
    cross = np.array([a is not None and b is not None and a != b for a, b in zip(groups_a, groups_b, strict=True)])
    other = {CROSS_GROUP: cross} if cross.any() else {}
    report = _measure(labels, metric_fn, (), ("fmr", "fnmr"), other)
    report.threshold = float(threshold)
    unknown = int(sum(a is None or b is None for a, b in zip(groups_a, groups_b, strict=True)))
    if unknown:
        report.notes.append(f"{unknown} pairs have an image of unknown group: they count in '{ALL}' only")
    if cross.any():
        report.notes.append(
            f"{int(cross.sum())} pairs span two groups: reported as '{CROSS_GROUP}', outside the spread"
        )
    report.notes += _size_notes(report, fmr, min_pairs)
    return report


def _size_notes(report: FairnessReport, fmr: float | None, min_pairs: int) -> list[str]:
    notes = []
    need_impostors = max(min_pairs, math.ceil(1.0 / fmr)) if fmr else min_pairs
    for g, m in {**report.groups, **report.other}.items():
        n_gen, n_imp = int(m["genuine"] or 0), int(m["impostor"] or 0)
        if 0 < n_gen < min_pairs:  # with none, the metric is n/a already
            notes.append(f"group {g!r}: {n_gen} genuine pairs (< {min_pairs}): FNMR is noisy")
        if 0 < n_imp < need_impostors:
            why = f"1/FMR = {need_impostors}" if fmr and need_impostors > min_pairs else f"{min_pairs}"
            notes.append(f"group {g!r}: {n_imp} impostor pairs (< {why}): FMR is unreliable")
    return notes


def pairs_fairness(
    pairs: Sequence[Any],
    scores: np.ndarray | Sequence[float],
    same: np.ndarray | Sequence[bool],
    failed: np.ndarray | Sequence[bool] | None = None,
    *,
    fmr: float = 1e-2,
    threshold: float | None = None,
) -> FairnessReport:
    """:func:`verification_fairness` for pairs carrying one ``group`` each (both images in it).

    The threshold, unless given, is fixed at ``fmr`` on all impostor pairs together
    (:func:`faceatlas.eval.edc.threshold_at_fmr`).
    """
    from faceatlas.eval.edc import threshold_at_fmr

    scores = np.asarray(scores, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    target: float | None = None
    if threshold is None:
        threshold, _ = threshold_at_fmr(scores[~same], fmr)
        target = fmr
    groups = [getattr(p, "group", None) for p in pairs]
    return verification_fairness(scores, same, groups, groups, threshold, fmr=target, failed=failed)


def plot_fairness(
    report: FairnessReport, path: str | Path, metrics: Sequence[str] | None = None, title: str = ""
) -> None:
    """One panel per metric: a bar per group (other buckets hatched), the overall value dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = list(metrics or report.spread or report.overall)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 4), squeeze=False)
    buckets = list(report.groups) + list(report.other)
    for ax, m in zip(axes[0], metrics, strict=True):
        values = [{**report.groups, **report.other}[b].get(m) for b in buckets]
        bars = ax.bar(range(len(buckets)), [np.nan if v is None else v for v in values], color="C0")
        for bar, b in zip(bars, buckets, strict=True):
            if b in report.other:
                bar.set_hatch("//")
                bar.set_facecolor("lightgrey")
        if report.overall.get(m) is not None:
            ax.axhline(report.overall[m], color="k", ls="--", lw=1, label=f"{ALL} {_fmt(report.overall[m])}")
            ax.legend(fontsize="small")
        ax.set_xticks(range(len(buckets)), [f"{b}\n({report.counts.get(b, 0)})" for b in buckets], fontsize="small")
        s = report.spread.get(m)
        ratio = "" if s is None or s.ratio is None else f" (max/min {s.ratio:.2f})"
        ax.set_title(f"{m}{ratio}")
        ax.grid(True, axis="y", alpha=0.3)
    if title or report.threshold is not None:
        fig.suptitle(title or f"threshold {report.threshold:.4f} for every group")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
