"""Face-quality evaluation by error-versus-discard characteristics (EDC), ISO/IEC 29794-1 style.

A quality scorer is useful when discarding the comparisons it rates lowest removes errors.
The EDC shows FNMR against the fraction of genuine comparisons discarded, at a threshold
fixed once beforehand (Grother & Tabassi 2007; Schlett et al. 2022, "Considerations on the
evaluation of biometric quality assessment algorithms").

Definitions and choices
-----------------------
* **Comparison quality** = the lower of the two images' qualities (:func:`pairwise_quality`).
* **Threshold**: fixed once, on *all* impostor comparisons, as the smallest threshold ``t``
  (acceptance is ``score >= t``) whose FMR = #(impostor ≥ t) / #impostors is at most the
  target: with k = ⌊FMR·N⌋, ``t`` is the next float above the (k+1)-th highest score, and
  -inf when every impostor may match (``faceatlas._thresholds.threshold_at_far``, the one
  definition verification, identification and the gallery use too). No interpolation; the
  realised FMR (≤ target) is reported. A raw ``threshold`` can be given instead.
* **Discarding**: for a fraction f, the ⌊f·N⌋ genuine comparisons of lowest comparison
  quality are removed and FNMR is measured on the rest at the fixed threshold. Impostor
  comparisons are not discarded (FMR stays at its realised value; this EDC is about FNMR).
* **Ties** in quality are broken in expectation: when a discard boundary falls inside a group
  of equal qualities, the FNMR is the mean over all orders of that group, i.e. the group's
  errors are removed in proportion. Deterministic, and independent of input order and scores.
* **Baselines**: "random" is the expected EDC of a quality that carries no information —
  flat at the initial FNMR (every comparison tied); "oracle" discards by the genuine score
  itself (lowest first), the best any scorer can do at this threshold.
* **pAUC**: the area under FNMR(f) over the given discard fractions (0 … 0.5 by default), by
  the trapezoid rule, **not** normalised. ``pauc_relative`` divides it by the random
  baseline's area (span × initial FNMR): 1 = no better than random, lower is better.
* **Missing faces**: a comparison where a face was not found carries score ``-inf`` (never a
  match: a genuine one is a false non-match, an impostor one never a false match) and
  quality 0 — the lowest for scorers in [0, 1], so it is discarded first. Use ``-inf``
  quality for scorers whose values can be negative.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from faceatlas._thresholds import false_accepts_allowed, observed_far, threshold_at_far
from faceatlas.errors import InvalidArgumentError

DEFAULT_FMR = 1e-2
DEFAULT_DISCARD = np.linspace(0.0, 0.5, 51)
RANDOM, ORACLE = "random (expected)", "oracle (by score)"
MIN_ERRORS = 10  # fewer false non-matches than this make a curve mostly noise


def pairwise_quality(qa: np.ndarray | Sequence[float], qb: np.ndarray | Sequence[float]) -> np.ndarray:
    """Comparison quality: the element-wise minimum of the two images' qualities."""
    return np.minimum(np.asarray(qa, dtype=np.float64), np.asarray(qb, dtype=np.float64))


def threshold_at_fmr(impostor_scores: np.ndarray | Sequence[float], fmr: float) -> tuple[float, float]:
    """(threshold, realised FMR): the smallest threshold whose FMR on these scores is ≤ ``fmr``
    (``faceatlas._thresholds.threshold_at_far``; -inf when every impostor may match)."""
    s = _finite_or_inf(impostor_scores, "impostor scores")
    if s.size == 0:
        raise InvalidArgumentError("need impostor scores to fix a threshold at an FMR")
    if not 0 <= fmr <= 1:
        raise InvalidArgumentError(f"fmr must be in [0, 1], got {fmr}")
    threshold = threshold_at_far(s, fmr)
    return threshold, observed_far(s, threshold)


@dataclass
class EDCCurve:
    name: str
    discard_fractions: list[float]
    discarded: list[int]  # genuine comparisons removed at each fraction
    fnmr: list[float]
    pauc: float  # trapezoid area under fnmr over discard_fractions, not normalised
    pauc_relative: float | None  # pauc / random baseline's area; None when the initial FNMR is 0

    def to_dict(self) -> dict:
        return {
            "discard_fractions": list(self.discard_fractions),
            "discarded": list(self.discarded),
            "fnmr": list(self.fnmr),
            "pauc": self.pauc,
            "pauc_relative": self.pauc_relative,
        }


@dataclass
class EDCReport:
    threshold: float
    fmr_target: float | None  # None when a raw threshold was given
    fmr_realised: float
    n_genuine: int
    n_impostor: int
    false_non_matches: int  # before discarding
    curves: dict[str, EDCCurve]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "threshold": self.threshold,
            "fmr_target": self.fmr_target,
            "fmr_realised": self.fmr_realised,
            "n_genuine": self.n_genuine,
            "n_impostor": self.n_impostor,
            "false_non_matches": self.false_non_matches,
            "pauc": "trapezoid area under FNMR vs discarded fraction, not normalised",
            "curves": {name: c.to_dict() for name, c in self.curves.items()},
            "notes": list(self.notes),
        }

    def table(self) -> str:
        target = "raw threshold" if self.fmr_target is None else f"FMR target {self.fmr_target:g}"
        head = (
            f"threshold {self.threshold:.5f} ({target}, realised FMR {self.fmr_realised:.2e}); "
            f"genuine {self.n_genuine} (false non-matches {self.false_non_matches}), impostor {self.n_impostor}"
        )
        any_curve = next(iter(self.curves.values()))
        fractions = any_curve.discard_fractions
        shown = sorted({_nearest(fractions, f) for f in (0.0, 0.05, 0.1, 0.2, fractions[-1])})
        span = f"{fractions[0]:g}–{fractions[-1]:g}"
        columns = [f"FNMR@{fractions[i]:.2f}" for i in shown] + [f"pAUC[{span}]", "vs random"]
        width = max(len(n) for n in self.curves)
        lines = [head, f"{'scorer':<{width}}  " + "  ".join(f"{c:>11}" for c in columns)]
        for name, c in self.curves.items():
            rel = "n/a" if c.pauc_relative is None else f"{c.pauc_relative:.3f}"
            cells = [f"{100 * c.fnmr[i]:10.2f}%" for i in shown] + [f"{c.pauc:11.5f}", f"{rel:>11}"]
            lines.append(f"{name:<{width}}  " + "  ".join(cells))
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def edc_curve(
    genuine_scores: np.ndarray | Sequence[float],
    impostor_scores: np.ndarray | Sequence[float],
    genuine_quality: np.ndarray | Sequence[float],
    fmr: float = DEFAULT_FMR,
    threshold: float | None = None,
    discard_fractions: np.ndarray | Sequence[float] = DEFAULT_DISCARD,
    name: str = "quality",
) -> EDCReport:
    """The EDC of one quality scorer, with the random and oracle baselines (see the module docstring)."""
    return compare_quality_scorers(
        genuine_scores, impostor_scores, {name: genuine_quality}, fmr, threshold, discard_fractions
    )


def compare_quality_scorers(
    genuine_scores: np.ndarray | Sequence[float],
    impostor_scores: np.ndarray | Sequence[float],
    qualities: Mapping[str, np.ndarray | Sequence[float]],
    fmr: float = DEFAULT_FMR,
    threshold: float | None = None,
    discard_fractions: np.ndarray | Sequence[float] = DEFAULT_DISCARD,
    baselines: bool = True,
) -> EDCReport:
    """EDCs of several scorers (name → per-genuine-comparison quality) at one shared threshold."""
    genuine = _finite_or_inf(genuine_scores, "genuine scores")
    impostor = _finite_or_inf(impostor_scores, "impostor scores")
    if genuine.size == 0:
        raise InvalidArgumentError("need genuine comparisons for an EDC")
    fractions = np.asarray(discard_fractions, dtype=np.float64)
    if fractions.ndim != 1 or fractions.size == 0 or np.any(np.diff(fractions) <= 0):
        raise InvalidArgumentError("discard_fractions must be a non-empty increasing sequence")
    if fractions[0] < 0 or fractions[-1] >= 1:
        raise InvalidArgumentError(f"discard fractions must lie in [0, 1), got {fractions[0]}..{fractions[-1]}")
    notes = []
    if threshold is None:
        threshold, realised = threshold_at_fmr(impostor, fmr)
        if false_accepts_allowed(impostor.size, fmr) < 1:
            notes.append(
                f"{impostor.size} impostor comparisons cannot measure FMR {fmr:g}; "
                "the threshold sits just above the highest impostor score"
            )
        target: float | None = fmr
    else:
        realised = observed_far(impostor, threshold)
        target = None
    errors = genuine < threshold
    n_errors = int(errors.sum())
    if n_errors < MIN_ERRORS:
        notes.append(f"only {n_errors} false non-matches at this threshold: the curves are coarse")
    scorers: dict[str, np.ndarray] = {}
    for name, quality in qualities.items():
        q = np.asarray(quality, dtype=np.float64)
        if q.shape != genuine.shape:
            raise InvalidArgumentError(f"quality {name!r} has {q.size} values for {genuine.size} genuine comparisons")
        if np.isnan(q).any():
            raise InvalidArgumentError(f"quality {name!r} has NaN values; give a missing face quality 0 (or -inf)")
        scorers[name] = q
    if baselines:
        scorers[RANDOM] = np.zeros_like(genuine)  # all tied: the expectation over random orders
        scorers[ORACLE] = genuine
    curves = {name: _curve(name, errors, q, fractions) for name, q in scorers.items()}
    return EDCReport(threshold, target, realised, genuine.size, impostor.size, n_errors, curves, notes)


def _curve(name: str, errors: np.ndarray, quality: np.ndarray, fractions: np.ndarray) -> EDCCurve:
    n = errors.size
    discarded = np.floor(fractions * n + 1e-9).astype(np.int64)
    removed = expected_discarded_errors(errors, quality, discarded)
    fnmr = (errors.sum() - removed) / (n - discarded)
    pauc = float(np.sum(np.diff(fractions) * (fnmr[1:] + fnmr[:-1]) / 2.0))  # trapezoid rule
    base = (fractions[-1] - fractions[0]) * errors.mean()
    return EDCCurve(
        name=name,
        discard_fractions=[float(f) for f in fractions],
        discarded=[int(d) for d in discarded],
        fnmr=[float(v) for v in fnmr],
        pauc=pauc,
        pauc_relative=float(pauc / base) if base > 0 else None,
    )


def expected_discarded_errors(errors: np.ndarray, quality: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Errors among the ``counts`` lowest-quality items, averaged over the orders of tied qualities."""
    order = np.argsort(quality, kind="stable")
    q, e = quality[order], errors[order].astype(np.float64)
    cum = np.concatenate([[0.0], np.cumsum(e)])
    counts = np.asarray(counts, dtype=np.int64)
    last = q[np.maximum(counts - 1, 0)]  # quality of the last item discarded
    lo, hi = np.searchsorted(q, last, "left"), np.searchsorted(q, last, "right")
    partial = (cum[hi] - cum[lo]) * (counts - lo) / (hi - lo)
    return np.where(counts == 0, 0.0, cum[lo] + partial)


def _finite_or_inf(values: np.ndarray | Sequence[float], what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if np.isnan(array).any():
        raise InvalidArgumentError(f"{what} contain NaN; a comparison without a face scores -inf")
    return array


def _nearest(values: Sequence[float], target: float) -> int:
    return int(np.argmin(np.abs(np.asarray(values) - target)))


def plot_edc(report: EDCReport, path: str | Path, log_y: bool = False, title: str = "") -> None:
    """FNMR against the discarded fraction, every scorer on one figure (baselines dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    floor = 0.5 / max(report.n_genuine, 1)  # where zero lands on a log axis
    for name, c in report.curves.items():
        style = "--" if name in (RANDOM, ORACLE) else "-"
        rel = "" if c.pauc_relative is None else f", {c.pauc_relative:.2f}× random"
        y = np.maximum(c.fnmr, floor) if log_y else c.fnmr
        ax.plot(c.discard_fractions, y, style, label=f"{name} (pAUC {c.pauc:.4f}{rel})")
    target = "" if report.fmr_target is None else f" at FMR {report.fmr_target:g}"
    ax.set(xlabel="fraction of genuine comparisons discarded", ylabel=f"FNMR{target}")
    if log_y:
        ax.set_yscale("log")
    ax.set_title(title or "error versus discard")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
