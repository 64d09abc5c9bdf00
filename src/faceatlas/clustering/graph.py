"""The k-nearest-neighbour graph clustering starts from, built with the gallery's vector index.

Exact (blocked BLAS) below ``HNSW_FROM`` faces, FAISS HNSW above, so no n × n matrix is ever
needed. Clustering asks for every face's neighbours, so HNSW's build pays off far earlier than in
a gallery, which searches a few probes per start-up (docs/BENCHMARKS.md, vector index).
"""

from __future__ import annotations

import numpy as np

from faceatlas.vector_index import create_index, unit_rows

__all__ = ["Neighbours", "knn_graph", "unit_rows"]

HNSW_FROM = 50_000  # faces; below, exact search of all n queries is cheaper than building HNSW
QUERY_CHUNK = 4096  # queries searched at once


class Neighbours:
    """Nearest neighbours among the rows of ``x`` (one index, built once, queried as needed)."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x
        self.index = None
        if len(x):
            self.index = create_index(len(x), x.shape[1], "hnsw" if len(x) >= HNSW_FROM else "exact")
            self.index.add(np.arange(len(x), dtype=np.int64), x)

    def of_rows(self, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(neighbour rows, cosine similarities), (len(rows), k') best first, the row itself left
        out; k' = min(k, n - 1). Missing neighbours are -1 with similarity -inf."""
        rows = np.asarray(rows, dtype=np.int64)
        n = len(self.x)
        want = min(k + 1, n)
        if self.index is None or want <= 1 or not len(rows):
            return np.zeros((len(rows), 0), np.int64), np.zeros((len(rows), 0), np.float32)
        # in chunks: an index gathers its candidates per query (HNSW re-ranks ~100 per query)
        found = [self.index.search(self.x[rows[i : i + QUERY_CHUNK]], want) for i in range(0, len(rows), QUERY_CHUNK)]
        sims, ids = np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found])
        is_self = ids == rows[:, None]
        keep = ~is_self
        keep[is_self.sum(axis=1) == 0, -1] = False  # self not returned (ties, ANN): drop the weakest
        ids = ids[keep].reshape(len(rows), want - 1)
        sims = sims[keep].reshape(len(rows), want - 1)
        return ids.astype(np.int64), sims.astype(np.float32)


def knn_graph(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Every row's k nearest other rows: (indices, cosine similarities), each (n, k'), best first."""
    return Neighbours(x).of_rows(np.arange(len(x)), k)
