"""The k-nearest-neighbour graph clustering starts from: every face's nearest other faces.

Exact (blocked BLAS, the gallery's exact index) below ``HNSW_FROM`` faces; above, a FAISS HNSW
index of its own, so no n × n matrix is ever needed. Its own, not the gallery's: a gallery answers
a few 1:N probes and needs the true best match nearly always (M 32, efSearch 256-1024), while
clustering asks for every face's neighbours at once and only needs most of the close ones (a
face's own person is found through any of its faces). A lighter graph (M 16, efConstruction 64,
efSearch 128) made the whole clustering 2.3-2.6x faster at 100k-200k faces (the build ~1.9x at 200k), with the same
clusters' quality (docs/BENCHMARKS.md, clustering at scale). Build and search use every core (OpenMP).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from faceatlas.vector_index import create_index, unit_rows

__all__ = ["Neighbours", "knn_graph", "unit_rows"]

HNSW_FROM = 50_000  # faces; below, exact search of all n queries is cheaper than building HNSW
HNSW_M = 16  # links per node: half the gallery's; the build time and the memory follow it
HNSW_EF_CONSTRUCTION = 64
# candidates per query (at least k + 1): 64 lost 0.013 pairwise F on real faces among 200k, 128 nothing
HNSW_EF_SEARCH = 128
QUERY_CHUNK = 4096  # queries searched at once: bounds the per-chunk arrays, keeps both cores busy


class Neighbours:
    """Nearest neighbours among the rows of ``x`` (one index, built once, queried as needed).
    ``x`` is kept, not copied: unit float32 rows."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x
        self._exact: Any = None
        self._hnsw: Any = None
        if len(x) >= HNSW_FROM:
            self._hnsw = _hnsw(x)
        elif len(x):
            self._exact = create_index(len(x), x.shape[1], "exact")
            self._exact.add(np.arange(len(x), dtype=np.int64), x)

    def of_rows(self, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(neighbour rows int64, cosine similarities float32), (len(rows), k') best first, the row
        itself left out; k' = min(k, n - 1). Missing neighbours are -1 with similarity -inf."""
        rows = np.asarray(rows, dtype=np.int64)
        want = min(k + 1, len(self.x))
        if (self._exact is None and self._hnsw is None) or want <= 1 or not len(rows):
            return np.zeros((len(rows), 0), np.int64), np.zeros((len(rows), 0), np.float32)
        ids = np.empty((len(rows), want - 1), np.int64)
        sims = np.empty((len(rows), want - 1), np.float32)
        for start in range(0, len(rows), QUERY_CHUNK):
            chunk = rows[start : start + QUERY_CHUNK]
            found_sims, found_ids = self._search(np.ascontiguousarray(self.x[chunk], np.float32), want)
            is_self = found_ids == chunk[:, None]
            keep = ~is_self
            keep[is_self.sum(axis=1) == 0, -1] = False  # self not returned (ties, ANN): drop the weakest
            ids[start : start + len(chunk)] = found_ids[keep].reshape(len(chunk), want - 1)
            sims[start : start + len(chunk)] = found_sims[keep].reshape(len(chunk), want - 1)
        return ids, sims

    def of_vectors(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest rows to each of ``queries`` (unit vectors not among the rows), as
        ``of_rows`` gives them: (rows int64, similarities float32), (len(queries), min(k, n))."""
        want = min(k, len(self.x))
        ids = np.full((len(queries), want), -1, np.int64)
        sims = np.full((len(queries), want), -np.inf, np.float32)
        if (self._exact is None and self._hnsw is None) or want < 1:
            return ids, sims
        for start in range(0, len(queries), QUERY_CHUNK):
            chunk = np.ascontiguousarray(queries[start : start + QUERY_CHUNK], np.float32)
            sims[start : start + len(chunk)], ids[start : start + len(chunk)] = self._search(chunk, want)
        return ids, sims

    def _search(self, queries: np.ndarray, want: int) -> tuple[np.ndarray, np.ndarray]:
        if self._exact is not None:
            sims, ids = self._exact.search(queries, want)
            return sims.astype(np.float32, copy=False), ids.astype(np.int64, copy=False)
        import faiss

        params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]  # the stubs lack it
        params.efSearch = max(HNSW_EF_SEARCH, want)
        sims, ids = self._hnsw.search(queries, want, params=params)
        sims[ids < 0] = -np.inf
        return sims, ids.astype(np.int64, copy=False)


def _hnsw(x: np.ndarray) -> Any:
    """A FAISS HNSW graph (inner product) over the rows of ``x``; a row's position is its id."""
    try:
        import faiss
    except ImportError as exc:  # a declared dependency, but say what to do if it is missing
        raise ImportError(f"clustering more than {HNSW_FROM:,} faces needs FAISS: pip install faiss-cpu") from exc
    index = faiss.IndexHNSWFlat(x.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.add(np.ascontiguousarray(x, np.float32))
    return index


def knn_graph(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Every row's k nearest other rows: (indices, cosine similarities), each (n, k'), best first."""
    return Neighbours(x).of_rows(np.arange(len(x)), k)
