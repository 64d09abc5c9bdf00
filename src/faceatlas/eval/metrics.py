"""Verification metrics: k-fold accuracy, ROC, AUC, EER, TAR at FAR — plain numpy.

The ROC is a few lines of numpy rather than scikit-learn's: importing scikit-learn costs about a
second, which would dominate a cached re-run; the tests check both against scikit-learn.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from faceatlas.errors import InvalidArgumentError


def best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """The threshold maximising accuracy of ``score >= t`` (midpoint between neighbouring scores)."""
    order = np.argsort(scores)
    s, y = scores[order], same[order].astype(np.int64)
    # accuracy if the threshold sits just above s[i]: negatives at or below i are right,
    # positives above i are right.
    neg_below = np.cumsum(1 - y)
    pos_above = y.sum() - np.cumsum(y)
    correct = np.concatenate([[y.sum()], neg_below + pos_above])
    # a threshold cannot fall between equal scores: only cuts between distinct values count
    valid = np.concatenate([[True], s[1:] > s[:-1], [True]])
    correct = np.where(valid, correct, -1)
    i = int(np.argmax(correct))
    if i == 0:
        return float(s[0] - 1e-6)
    if i == len(s):
        return float(s[-1] + 1e-6)
    return float((s[i - 1] + s[i]) / 2.0)


def kfold_accuracy(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """LFW's protocol: per fold, the threshold is chosen on the other folds. Returns (accs, thresholds)."""
    accs, thresholds = [], []
    for fold in np.unique(folds):
        test = folds == fold
        t = best_threshold(scores[~test], same[~test])
        accs.append(float(((scores[test] >= t) == same[test]).mean()))
        thresholds.append(t)
    return np.array(accs), np.array(thresholds)


@dataclass
class VerificationReport:
    n_pairs: int
    n_same: int
    n_different: int
    n_failed: int  # pairs where a side had no face or could not be read (scored as "different")
    accuracy_mean: float
    accuracy_std: float
    fold_accuracies: list[float]
    auc: float
    eer: float
    tar_at_far: dict[str, float | None]  # None where there are too few impostor pairs
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def table(self) -> str:
        tars = "  ".join(
            f"TAR@FAR={far} " + ("n/a" if tar is None else f"{100 * tar:.2f}%") for far, tar in self.tar_at_far.items()
        )
        return (
            f"pairs {self.n_pairs} (same {self.n_same}, different {self.n_different}; "
            f"failed {self.n_failed}, scored as different)\n"
            f"accuracy {100 * self.accuracy_mean:.2f}% ± {100 * self.accuracy_std:.2f} "
            f"({len(self.fold_accuracies)}-fold)   AUC {self.auc:.5f}   EER {100 * self.eer:.2f}%\n{tars}"
        )


def roc_curve(same: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(FAR, TAR, thresholds) of ``score >= t`` at every distinct score, from (0, 0) to (1, 1)."""
    same = np.asarray(same, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], same[order]
    last_of_run = np.r_[s[1:] != s[:-1], True]  # the last index of each group of equal scores
    tps = np.cumsum(y)[last_of_run]
    fps = np.cumsum(~y)[last_of_run]
    tpr = np.r_[0.0, tps / max(int(y.sum()), 1)]
    fpr = np.r_[0.0, fps / max(int((~y).sum()), 1)]
    return fpr, tpr, np.r_[np.inf, s[last_of_run]]


def roc_auc(same: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC (ties count half, as in the Mann–Whitney statistic)."""
    fpr, tpr, _ = roc_curve(same, scores)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))  # trapezoids; np.trapezoid needs numpy 2


def tar_at_far(fpr: np.ndarray, tpr: np.ndarray, far: float) -> float:
    """The highest TAR among operating points whose FAR is at most ``far``."""
    ok = fpr <= far
    return float(tpr[ok].max()) if ok.any() else 0.0


def equal_error_rate(fpr: np.ndarray, tpr: np.ndarray) -> float:
    fnr = 1.0 - tpr
    i = int(np.nanargmin(np.abs(fnr - fpr)))
    return float((fpr[i] + fnr[i]) / 2.0)


def verification_report(
    scores: np.ndarray,
    same: np.ndarray,
    folds: np.ndarray,
    failed: np.ndarray,
    fars: tuple[float, ...] = (1e-2, 1e-3, 1e-4),
) -> VerificationReport:
    scores = np.asarray(scores, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    if same.all() or not same.any():
        raise InvalidArgumentError("a verification report needs both same-person and different-person pairs")
    accs, _ = kfold_accuracy(scores, same, np.asarray(folds))
    fpr, tpr, _ = roc_curve(same, scores)
    n_diff = int((~same).sum())
    tars: dict[str, float | None] = {}
    notes = []
    for far in fars:
        if far * n_diff < 1:
            tars[f"{far:g}"] = None
            notes.append(f"TAR@FAR={far:g} not reported: {n_diff} different-person pairs cannot measure it")
        else:
            tars[f"{far:g}"] = tar_at_far(fpr, tpr, far)
    return VerificationReport(
        n_pairs=len(scores),
        n_same=int(same.sum()),
        n_different=n_diff,
        n_failed=int(np.asarray(failed).sum()),
        accuracy_mean=float(accs.mean()),
        accuracy_std=float(accs.std()),
        fold_accuracies=[float(a) for a in accs],
        auc=roc_auc(same, scores),
        eer=equal_error_rate(fpr, tpr),
        tar_at_far=tars,
        notes=notes,
    )
