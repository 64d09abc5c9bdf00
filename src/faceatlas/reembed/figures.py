"""Figures on the user's own labels, computed the same way before and after a re-embedding.

The labels are what the user said: a gallery's people, a collection's named clusters. Each figure
is measured on the faces present in both spaces, so before and after compare like with like:

- **rank-1 leave-one-out identification**: each face of a person with at least two faces, against
  every person's quality-weighted template (the gallery's "template" scoring), its own person's
  built without it. Needs two people at least.
- **separation**: the mean cosine of same-person pairs and of different-person pairs, and
  d' = (mean same − mean different) / sqrt((var same + var different) / 2).
- **pairwise precision and recall** at the model card's verification threshold (FAR 1e-3), when
  the card has one: of the pairs the model calls the same person, how many are (precision), and
  of the same-person pairs, how many it calls so (recall). Large sets are sampled; the totals of
  each kind of pair are exact, so the sampled rates are weighted by them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MAX_PROBES = 20_000  # leave-one-out probes at most (sampled beyond)
MAX_PAIRS = 200_000  # same-person and different-person pairs at most, each (sampled beyond)
_CHUNK = 2048  # probes scored at once: chunk x people scores in memory
VERIFY_FAR = 1e-3  # the operating point of the pairwise figures


@dataclass(frozen=True)
class LabelFigures:
    """How well one embedding space separates the user's labelled faces (see the module doc)."""

    faces: int
    labels: int  # people (gallery) or named clusters (collection)
    probes: int  # faces identified leave-one-out (their person has another face)
    rank1: float | None  # None: fewer than two people, or nobody with two faces
    same: float | None  # mean cosine of same-person pairs
    different: float | None  # mean cosine of different-person pairs
    d_prime: float | None
    threshold: float | None = None  # the card's threshold at VERIFY_FAR; None: the card has none
    precision: float | None = None
    recall: float | None = None

    def line(self) -> str:
        parts = [f"{self.faces} faces of {self.labels} people"]
        if self.rank1 is not None:
            parts.append(f"rank-1 {self.rank1:.1%} ({self.probes} faces left out in turn)")
        if self.same is not None and self.different is not None:
            parts.append(f"cosine same {self.same:.3f} / different {self.different:.3f}")
        elif self.same is not None:
            parts.append(f"cosine same {self.same:.3f}")
        if self.d_prime is not None:
            parts.append(f"d' {self.d_prime:.2f}")
        if self.threshold is not None and self.recall is not None:
            precision = "-" if self.precision is None else f"{self.precision:.1%}"
            parts.append(f"at {self.threshold:.3f}: pair precision {precision}, recall {self.recall:.1%}")
        return "; ".join(parts)


def label_figures(
    embeddings: np.ndarray,
    labels: np.ndarray,
    qualities: np.ndarray | None = None,
    threshold: float | None = None,
    *,
    max_probes: int = MAX_PROBES,
    max_pairs: int = MAX_PAIRS,
    seed: int = 0,
) -> LabelFigures:
    """The figures of unit ``embeddings`` (n, d) labelled ``labels`` (n,); see the module doc."""
    x = np.asarray(embeddings, dtype=np.float64)
    _, inverse, counts = np.unique(np.asarray(labels), return_inverse=True, return_counts=True)
    n, people = len(x), len(counts)
    weights = np.ones(n) if qualities is None else np.maximum(np.asarray(qualities, dtype=np.float64), 1e-3)
    rng = np.random.default_rng(seed)
    probes, rank1 = _rank1(x, inverse, counts, weights, max_probes, rng)
    same_total = int((counts * (counts - 1) // 2).sum())
    different_total = n * (n - 1) // 2 - same_total
    same, different = _pair_scores(x, inverse, counts, max_pairs, rng)
    figures = LabelFigures(
        faces=n,
        labels=people,
        probes=probes,
        rank1=rank1,
        same=float(same.mean()) if len(same) else None,
        different=float(different.mean()) if len(different) else None,
        d_prime=_d_prime(same, different),
        threshold=threshold,
    )
    if threshold is None or not len(same):
        return figures
    recall = float((same >= threshold).mean())
    false_rate = float((different >= threshold).mean()) if len(different) else 0.0
    called_same = same_total * recall + different_total * false_rate
    precision = same_total * recall / called_same if called_same > 0 else None
    return LabelFigures(**{**figures.__dict__, "precision": precision, "recall": recall})


def _rank1(
    x: np.ndarray,
    inverse: np.ndarray,
    counts: np.ndarray,
    weights: np.ndarray,
    max_probes: int,
    rng: np.random.Generator,
) -> tuple[int, float | None]:
    """(probes, rank-1 rate) of leave-one-out identification against templates."""
    probes = np.flatnonzero(counts[inverse] >= 2)
    if len(counts) < 2 or not len(probes):
        return 0, None
    if len(probes) > max_probes:
        probes = np.sort(rng.choice(probes, max_probes, replace=False))
    sums = np.zeros((len(counts), x.shape[1]))
    np.add.at(sums, inverse, x * weights[:, None])
    templates = sums / np.linalg.norm(sums, axis=1, keepdims=True)
    correct = 0
    for start in range(0, len(probes), _CHUNK):
        rows = probes[start : start + _CHUNK]
        scores = x[rows] @ templates.T
        own = sums[inverse[rows]] - weights[rows, None] * x[rows]  # the template without the probe
        norms = np.linalg.norm(own, axis=1)
        own_score = np.where(norms > 0, np.einsum("ij,ij->i", x[rows], own) / np.maximum(norms, 1e-12), -np.inf)
        scores[np.arange(len(rows)), inverse[rows]] = -np.inf
        correct += int((own_score > scores.max(axis=1)).sum())
    return len(probes), correct / len(probes)


def _pair_scores(
    x: np.ndarray, inverse: np.ndarray, counts: np.ndarray, max_pairs: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Cosines of same-label pairs and of different-label pairs: every pair when there are few, else
    ``max_pairs`` of each kind drawn uniformly among the pairs of that kind."""
    n = len(x)
    if n < 2:
        return np.zeros(0), np.zeros(0)
    if n * (n - 1) // 2 <= 2 * max_pairs:  # small: every pair, exactly
        a, b = np.triu_indices(n, 1)
        cosines = np.einsum("ij,ij->i", x[a], x[b])
        same = inverse[a] == inverse[b]
        return cosines[same], cosines[~same]
    # same-label pairs: a label with probability proportional to its pairs, then two of its faces
    order = np.argsort(inverse, kind="stable")
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    pairs = counts * (counts - 1) / 2.0
    same = np.zeros(0)
    if pairs.sum() > 0:
        label = rng.choice(len(counts), max_pairs, p=pairs / pairs.sum())
        first = rng.integers(0, counts[label])
        second = rng.integers(0, counts[label] - 1)
        second += second >= first
        a, b = order[starts[label] + first], order[starts[label] + second]
        same = np.einsum("ij,ij->i", x[a], x[b])
    # different-label pairs: uniform pairs of faces, those of one label redrawn
    found: list[np.ndarray] = []
    wanted = max_pairs
    for _ in range(20):
        a, b = rng.integers(0, n, 2 * wanted), rng.integers(0, n, 2 * wanted)
        keep = inverse[a] != inverse[b]
        found.append(np.einsum("ij,ij->i", x[a[keep]], x[b[keep]])[:wanted])
        wanted -= len(found[-1])
        if wanted <= 0:
            break
    return same, np.concatenate(found)


def _d_prime(same: np.ndarray, different: np.ndarray) -> float | None:
    if len(same) < 2 or len(different) < 2:
        return None
    spread = math.sqrt((float(same.var()) + float(different.var())) / 2.0)
    return (float(same.mean()) - float(different.mean())) / spread if spread > 0 else None
