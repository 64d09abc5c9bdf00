"""What users get today, as sklearn-style estimators: the baselines faceatlas' clusterer is measured against.

``BASELINES`` maps a name to a factory for each recipe (all on dlib's **raw** descriptors, norm
~1.44, which their Euclidean thresholds were tuned for; not on faceatlas' unit embeddings):

- ``chinese_whispers``: dlib's ``chinese_whispers_clustering(descriptors, 0.5)``, the
  face_recognition / dlib face-clustering example (:class:`ChineseWhispers` below).
- ``dbscan``: DBSCAN, Euclidean eps 0.5, min_samples 3 (Immich-like); noise is -1.
- ``hdbscan``: sklearn's HDBSCAN with its defaults (min_cluster_size 5); noise is -1.
- ``agglomerative``: average linkage, cut at Euclidean distance 0.5.

>>> labels = BASELINES["chinese_whispers"]().fit(raw_descriptors).labels_
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin

from faceatlas.errors import InvalidArgumentError

__all__ = ["BASELINES", "ChineseWhispers", "euclidean_edges"]

BLOCK_ENTRIES = 1 << 22  # distances held at once while finding edges (32 MB of float64)


class ChineseWhispers(ClusterMixin, BaseEstimator):
    """dlib's Chinese Whispers face clustering: unweighted label propagation on a distance graph.

    Followed from dlib's source: ``chinese_whispers_clustering`` in
    ``tools/python/src/face_recognition.cpp`` and ``chinese_whispers`` in
    ``dlib/clustering/chinese_whispers.h`` (with ``convert_unordered_to_ordered`` and
    ``sample_pair``):

    - Edges join every pair whose Euclidean distance is ``< threshold`` (compared in double
      against the threshold as a C ``float``, as dlib's ``float threshold`` argument). dlib's loop
      starts at ``j = i``, so every face also has a self-edge; every edge weighs 1 (a
      ``sample_pair``'s default distance), so votes are counts.
    - Every face starts with its own label. ``iterations × n`` times a face is picked uniformly
      at random (with replacement) and takes the label with the most votes among its edges (its
      neighbours and itself); ties go to the smallest label (dlib scans a ``std::map`` in label
      order and keeps the first strictly better score).
    - Labels are renumbered 0.. in order of first appearance over the faces.

    The one difference is the random stream: dlib uses its own ``dlib::rand``; this uses numpy's
    ``default_rng(seed)``, so labels match dlib's in distribution, not bit for bit.

    Vectorised where it can be: edges come from blocked matrix products (no n × n matrix).
    The propagation is sequential by nature; it skips picks that cannot change anything (a face
    whose neighbours' labels have not changed since its last update keeps its label: after an
    update its own label leads strictly, thanks to the self-edge), which gives exactly the
    labels of the full loop for the same picks.

    After ``fit``: ``labels_`` (int64, 0..), ``n_clusters_``, ``n_edges_`` (undirected, no self-edges).
    """

    def __init__(self, threshold: float = 0.5, iterations: int = 100, seed: int | None = 0) -> None:
        self.threshold = threshold
        self.iterations = iterations
        self.seed = seed

    def fit(self, X: np.ndarray, y: None = None) -> ChineseWhispers:
        x = _descriptors(X)
        if not (isinstance(self.threshold, (int, float, np.floating, np.integer)) and self.threshold > 0):
            raise InvalidArgumentError(f"threshold must be a positive distance, got {self.threshold!r}")
        if not isinstance(self.iterations, (int, np.integer)) or self.iterations < 0:
            raise InvalidArgumentError(f"iterations must be a whole number >= 0, got {self.iterations!r}")
        indptr, indices = euclidean_edges(x, float(np.float32(self.threshold)))
        rng = np.random.default_rng(self.seed)
        self.labels_ = _whispers(indptr, indices, int(self.iterations), rng)
        self.n_clusters_ = int(self.labels_.max() + 1) if len(self.labels_) else 0
        self.n_edges_ = int(len(indices) // 2)
        return self


def euclidean_edges(x: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows closer than ``threshold`` (strictly) as a symmetric CSR graph without self-edges:
    (indptr (n + 1,), indices), each row's neighbours in ascending order.

    Squared distances come from blocked products (|a|² + |b|² − 2 a·b, float64); pairs within
    rounding error of the threshold are decided by the exact ``||a − b||`` as dlib computes it.
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n == 0:
        return np.zeros(1, np.int64), np.zeros(0, np.int64)
    squares = np.einsum("ij,ij->i", x, x)
    limit = threshold * threshold
    slack = 1e-9 * (1.0 + limit + 2.0 * float(squares.max()))
    block = max(1, BLOCK_ENTRIES // n)
    rows, cols = [], []
    for start in range(0, n, block):  # the upper triangle only: the relation is symmetric
        stop = min(n, start + block)
        d2 = squares[start:stop, None] + squares[None, start:] - 2.0 * (x[start:stop] @ x[start:].T)
        i, j = np.nonzero(d2 < limit + slack)
        near = d2[i, j] > limit - slack
        i, j = i + start, j + start
        if near.any():  # within rounding of the threshold: decide as dlib does
            exact = np.sqrt(((x[i[near]] - x[j[near]]) ** 2).sum(axis=1)) < threshold
            keep = np.ones(len(i), bool)
            keep[np.flatnonzero(near)[~exact]] = False
            i, j = i[keep], j[keep]
        upper = i < j
        rows.append(i[upper])
        cols.append(j[upper])
    a, b = np.concatenate(rows), np.concatenate(cols)
    src, dst = np.concatenate([a, b]), np.concatenate([b, a])
    order = np.lexsort((dst, src))
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
    return indptr, dst[order].astype(np.int64)


def _whispers(indptr: np.ndarray, indices: np.ndarray, iterations: int, rng: np.random.Generator) -> np.ndarray:
    """dlib's propagation loop (see :class:`ChineseWhispers`) on a CSR graph; labels 0.. renumbered."""
    n = len(indptr) - 1
    labels = list(range(n))
    if n == 0:
        return np.zeros(0, np.int64)
    neighbours = np.split(indices, indptr[1:-1])
    neighbour_lists = [v.tolist() for v in neighbours]
    degree = np.diff(indptr)
    dirty = [True] * n
    total = n * iterations
    chunk = 1 << 20
    for start in range(0, total, chunk):
        picks = rng.integers(0, n, size=min(chunk, total - start))
        # a face with only its self-edge always keeps its own label: its picks change nothing
        for node in picks[degree[picks] > 0].tolist():
            if not dirty[node]:
                continue
            dirty[node] = False
            around = neighbour_lists[node]
            own = labels[node]
            votes = {own: 1}  # the self-edge
            for other in around:
                label = labels[other]
                votes[label] = votes.get(label, 0) + 1
            most = max(votes.values())
            best = min(label for label, count in votes.items() if count == most)
            if best != own:
                labels[node] = best
                for other in around:
                    dirty[other] = True
    out = np.asarray(labels, dtype=np.int64)
    _, first, inverse = np.unique(out, return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse]


def _descriptors(X: np.ndarray) -> np.ndarray:
    x = np.asarray(X)
    if x.ndim != 2:
        raise InvalidArgumentError(f"descriptors must be an (n, d) array, got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise InvalidArgumentError(f"descriptors must be numbers, got dtype {x.dtype}")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise InvalidArgumentError("descriptors hold NaN or inf; leave faces without a descriptor out")
    return x


def _dbscan() -> BaseEstimator:
    from sklearn.cluster import DBSCAN

    return DBSCAN(eps=0.5, min_samples=3, metric="euclidean")


def _hdbscan() -> BaseEstimator:
    from sklearn.cluster import HDBSCAN

    return HDBSCAN(copy=True)  # sklearn's defaults; copy=True only silences a FutureWarning


def _agglomerative() -> BaseEstimator:
    from sklearn.cluster import AgglomerativeClustering

    return AgglomerativeClustering(n_clusters=None, distance_threshold=0.5, metric="euclidean", linkage="average")


BASELINES: dict[str, Callable[[], BaseEstimator]] = {
    "chinese_whispers": lambda: ChineseWhispers(threshold=0.5, iterations=100, seed=0),
    "dbscan": _dbscan,
    "hdbscan": _hdbscan,
    "agglomerative": _agglomerative,
}
