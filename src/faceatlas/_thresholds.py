"""The similarity threshold at a target false-accept rate, defined once.

Verification (``FARCalibrator``), the error-versus-discard curves (FMR), the identification
evaluation (FPIR over non-mated probes) and the gallery's template calibration all fix a threshold
from impostor scores this way, so "FAR 1e-3" means one thing everywhere:

    the smallest threshold ``t`` whose observed FAR, ``#(impostor scores >= t) / n``, is at most ``far``.

A decision is ``score >= t``. The count falls only at the scores themselves, so ``t`` sits just
above (the next representable number after) the (k+1)-th highest impostor score, where
``k = false_accepts_allowed(n, far)``. Scores tied with that one all fall below ``t``: ties never
lift the observed FAR over the target, they only make it lower. When every impostor may pass
(``k = n``) no threshold is needed and ``t`` is ``-inf``.

A leaf module: numpy only, so every layer may import it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from faceatlas.errors import InvalidArgumentError


def false_accepts_allowed(n: int, far: float) -> int:
    """The most of ``n`` impostors that may score at or above the threshold: the largest ``k <= n``
    with ``k / n <= far``, compared as the observed FAR is then computed (floating point)."""
    if not 0.0 <= far <= 1.0:  # also refuses NaN
        raise InvalidArgumentError(f"far must be a rate in [0, 1], got {far!r}")
    if n <= 0:
        return 0
    k = min(n, max(0, math.floor(far * n)))
    # far * n is rounded (0.29 * 100 = 28.999…), so step to what the comparison itself says
    while k < n and (k + 1) / n <= far:
        k += 1
    while k > 0 and k / n > far:
        k -= 1
    return k


def threshold_at_far(impostor_scores: np.ndarray | Sequence[float], far: float) -> float:
    """The smallest threshold at which at most ``far`` of ``impostor_scores`` pass (see the module doc).

    ``far`` is a rate in [0, 1]; the scores may hold -inf (a missing comparison) but not NaN or
    +inf. The threshold is the next number after a score in the scores' own precision (float32
    scores get a float32 threshold), so it compares exactly with them. O(n): a partition, not a sort.
    """
    scores = np.asarray(impostor_scores)
    if scores.dtype.kind != "f":
        scores = scores.astype(np.float64)
    scores = scores.ravel()
    allowed = false_accepts_allowed(scores.size, far)  # checks far
    if scores.size == 0:
        raise InvalidArgumentError("a threshold at a false-accept rate needs impostor scores; none were given")
    if np.isnan(scores).any():
        raise InvalidArgumentError("impostor scores hold NaN; score a missing comparison -inf instead")
    if np.isposinf(scores).any():  # it passes every threshold: no threshold could keep the FAR down
        raise InvalidArgumentError("impostor scores hold +inf, which passes every threshold; use finite scores or -inf")
    if allowed >= scores.size:
        return float("-inf")  # every impostor may pass
    rank = scores.size - 1 - allowed  # ascending position of the (allowed + 1)-th highest score
    cut = np.partition(scores, rank)[rank]
    return float(np.nextafter(cut, cut.dtype.type(np.inf)))


def observed_far(impostor_scores: np.ndarray | Sequence[float], threshold: float) -> float:
    """The share of impostor scores at or above ``threshold`` (NaN without scores)."""
    scores = np.asarray(impostor_scores)
    return float((scores >= threshold).mean()) if scores.size else float("nan")
