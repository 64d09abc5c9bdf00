"""The k-nearest-neighbour graph clustering starts from, built with the gallery's vector index.

Exact (blocked BLAS) below the index's HNSW cut-over, FAISS HNSW above it, so 100,000 faces never
need an n × n matrix and 1,000,000 stay practical (see docs/BENCHMARKS.md, vector index).
"""

from __future__ import annotations

import numpy as np

from faceatlas.gallery.index import create_index


def unit_rows(embeddings: np.ndarray) -> np.ndarray:
    """Embeddings as a contiguous float32 (n, d) array of unit rows, or a ValueError saying why not."""
    x = np.asarray(embeddings)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be an (n, d) array, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"embeddings must be floating point, got dtype {x.dtype}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise ValueError("embeddings hold NaN or inf; leave faces without an embedding out")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms < 1e-6).any():
        raise ValueError("an embedding has zero length; leave it out")
    return x / norms


def knn_graph(x: np.ndarray, k: int, queries: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(neighbour indices, cosine similarities), each (m, k'), best first, k' = min(k, n - 1).

    Neighbours of ``queries`` (default: every row of ``x``, excluding itself) among the rows of
    ``x``; missing neighbours are -1 with similarity -inf.
    """
    n = len(x)
    own = queries is None
    q = x if own else queries
    want = min(k + int(own), n)
    if n == 0 or want == 0:
        return np.zeros((len(q), 0), np.int64), np.zeros((len(q), 0), np.float32)
    index = create_index(n, x.shape[1])
    index.add(np.arange(n, dtype=np.int64), x)
    sims, ids = index.search(q, want)
    if own:  # drop each row itself (usually first; ties or ANN can put it elsewhere)
        is_self = ids == np.arange(len(q))[:, None]
        keep = ~is_self
        keep[is_self.sum(axis=1) == 0, -1] = False  # self not found: drop the weakest instead
        ids = ids[keep].reshape(len(q), want - 1)
        sims = sims[keep].reshape(len(q), want - 1)
    return ids.astype(np.int64), sims.astype(np.float32)
