"""Verification metrics: k-fold accuracy, ROC, AUC, EER, TAR at FAR — plain numpy + scikit-learn."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve


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


def tar_at_far(fpr: np.ndarray, tpr: np.ndarray, far: float) -> float:
    """The highest TAR among operating points whose FAR is at most ``far``."""
    ok = fpr <= far
    return float(tpr[ok].max()) if ok.any() else 0.0


def equal_error_rate(fpr: np.ndarray, tpr: np.ndarray) -> float:
    fnr = 1.0 - tpr
    i = int(np.nanargmin(np.abs(fnr - fpr)))
    return float((fpr[i] + fnr[i]) / 2.0)


def verification_report(
    scores: np.ndarray, same: np.ndarray, folds: np.ndarray, failed: np.ndarray, fars: tuple[float, ...] = (1e-2, 1e-3, 1e-4)
) -> VerificationReport:
    scores = np.asarray(scores, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    if same.all() or not same.any():
        raise ValueError("a verification report needs both same-person and different-person pairs")
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
        auc=float(roc_auc_score(same, scores)),
        eer=equal_error_rate(fpr, tpr),
        tar_at_far=tars,
        notes=notes,
    )
