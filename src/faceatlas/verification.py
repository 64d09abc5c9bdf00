"""1:1 verification: cosine similarity and a decision at a threshold tied to a false-accept rate."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from faceatlas._thresholds import false_accepts_allowed, observed_far, threshold_at_far
from faceatlas.errors import InvalidArgumentError
from faceatlas.models.cards import ModelCard
from faceatlas.types import Match

DEFAULT_FAR = 1e-3


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two embeddings (normalised here, so raw vectors work too); in [-1, 1]."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise InvalidArgumentError(f"embeddings differ in size: {a.shape[0]} vs {b.shape[0]} (different models?)")
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    if denom == 0:
        raise InvalidArgumentError("an embedding is all zeros; it cannot be compared")
    return float(a @ b / denom)


def decide(similarity: float, card: ModelCard, *, far: float | None = None, threshold: float | None = None) -> Match:
    """A :class:`Match` at ``threshold`` if given, else at the card's threshold for ``far``
    (default 1e-3: about one wrong "same person" in a thousand comparisons of strangers). The
    user's own calibration of the card's model (``faceatlas models calibrate``) replaces the
    shipped thresholds."""
    if threshold is not None and far is not None:
        raise InvalidArgumentError("pass either far= or threshold=, not both")
    if threshold is None:
        from faceatlas.models.calibration import with_user_calibration

        far = DEFAULT_FAR if far is None else far
        threshold = with_user_calibration(card).threshold_for(far)
    return Match(similarity=similarity, threshold=float(threshold), is_match=similarity >= threshold, far=far)


@dataclass
class FARCalibrator:
    """Chooses similarity thresholds that give target false-accept rates on labelled pairs.

    scikit-learn style: parameters in ``__init__``, ``fit(similarities, same)`` learns
    ``thresholds_`` (one per target, the lowest threshold whose FAR on the impostor pairs is at
    most the target: ``faceatlas._thresholds.threshold_at_far``) and ``far_`` (the FAR actually
    reached there), ``n_impostors_``.
    """

    targets: tuple[float, ...] = (1e-2, 1e-3, 1e-4, 1e-5)

    def fit(self, similarities: np.ndarray, same: np.ndarray) -> FARCalibrator:
        scores = np.asarray(similarities, dtype=np.float64)
        labels = np.asarray(same, dtype=bool)
        impostor = scores[~labels]
        n = len(impostor)
        if n == 0:
            raise InvalidArgumentError("calibration needs impostor (different-person) pairs; none were given")
        thresholds, reached = [], []
        for target in self.targets:
            if false_accepts_allowed(n, target) < 1:
                raise InvalidArgumentError(
                    f"a FAR of {target:g} needs at least {int(np.ceil(1 / target))} impostor pairs "
                    f"to mean anything; got {n}"
                )
            threshold = threshold_at_far(impostor, target)
            thresholds.append(threshold)
            reached.append(observed_far(impostor, threshold))
        self.thresholds_ = np.array(thresholds)
        self.far_ = np.array(reached)
        self.n_impostors_ = n
        self.n_genuine_ = int(labels.sum())
        self.tar_ = np.array([float((scores[labels] >= t).mean()) if labels.any() else np.nan for t in thresholds])
        return self
