"""Nearest-neighbour search over face embeddings: exact (numpy/BLAS) and approximate (FAISS HNSW).

Scores are inner products of L2-normalised vectors (cosine similarity): higher means more
similar. Every index answers ``search(queries, k) -> (scores (m, k) float32, ids (m, k) int64)``
with rows sorted by score (ties by ascending id) and padded with ``-inf`` / ``-1`` when fewer
than ``k`` vectors are stored. Both kinds return float32 dot products computed by numpy (equal
to ~1e-7), so thresholds calibrated on one hold for the other.

Indexes are never persisted: a gallery rebuilds its index from its store, so an index is never
the only copy of anything. None of them is safe to mutate while another thread searches.

Why these defaults (measured on this project's 2-core machine, ``benchmarks/index_search.py``):
face galleries are hard for HNSW because each person contributes several near-identical faces.
HNSW M=32 needs efSearch 256 at 100k and 768 at 1M for recall@1 >= 0.99 (64 gives 0.987 and
0.923), and builds for 22 s at 100k and 6.3 min at 1M, whereas exact search needs no build and
answers one query in 5.6 ms at 100k (45 ms at 1M).
"""

from __future__ import annotations

import operator
from typing import Protocol, runtime_checkable

import numpy as np

from faceatlas.errors import FaceAtlasError, InvalidArgumentError

# "auto" switches to HNSW at this many faces. Below it exact search needs no build and is exact,
# at ~11 ms per query (5.6 ms at 100k, 45 ms at 1M); HNSW would answer in ~2 ms but first
# build for ~1 min (22 s at 100k, 6.3 min at 1M), and every start-up rebuilds it.
AUTO_HNSW_THRESHOLD = 200_000
HNSW_M = 32
# faiss' default 40 needed about twice the efSearch for the same recall at 100k, for ~20% less build
HNSW_EF_CONSTRUCTION = 80
# (gallery size up to, efSearch) for recall@1 >= 0.99 on face-like data (measured: 0.998 at 100k
# with 256, 0.997 at 1M with 768 where 256 gives 0.982); beyond the last step: a guess, not measured.
HNSW_EF_SEARCH_STEPS: tuple[tuple[int, int], ...] = ((20_000, 128), (300_000, 256), (2_000_000, 768))
HNSW_EF_SEARCH_LARGE = 1024
# Candidates re-scored per query: spares for the belt-and-braces tombstone filter, and costs ~0.1 ms.
HNSW_RERANK = 32
# Rebuild once this fraction of HNSW nodes are deleted: dead nodes keep their memory (~840 B each)
# and beam slots; recall and latency were unchanged up to 60% deleted at 100k.
TOMBSTONE_REBUILD_FRACTION = 0.5
_UNIT_TOLERANCE = 1e-3
_BLOCK_BYTES = 64 << 20  # score matrix per block in ExactIndex.search


class IndexInputError(FaceAtlasError, ValueError):
    """Ids or vectors given to an index are malformed (shape, dtype, NaN, not unit, duplicate id)."""


@runtime_checkable
class VectorIndex(Protocol):
    """What a gallery needs from a nearest-neighbour index (higher score = more similar)."""

    dim: int

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...

    def remove(self, ids: np.ndarray) -> None: ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...

    def __len__(self) -> int: ...


# -- validation ----------------------------------------------------------------------------------


def unit_rows(vectors: np.ndarray, dim: int | None = None) -> np.ndarray:
    """Embeddings as contiguous float32 unit rows, or a ValueError saying why they cannot be
    (not (n, dim), NaN or infinity, zero length). For callers' input; the index itself only
    accepts vectors that are unit already (``_check_vectors``)."""
    x = np.asarray(vectors)
    if x.ndim != 2 or (dim is not None and x.shape[1] != dim):
        raise InvalidArgumentError(f"embeddings must be an (n, {dim or 'd'}) array, got shape {x.shape}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise InvalidArgumentError("embeddings hold NaN or inf; leave faces without an embedding out")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms < 1e-6).any():
        raise InvalidArgumentError("an embedding has zero length; leave it out")
    return x / norms


def _check_dim(dim: int) -> int:
    try:
        dim = operator.index(dim)
    except TypeError:
        raise IndexInputError(f"dim must be an int, got {type(dim).__name__}") from None
    if dim < 1:
        raise IndexInputError(f"dim must be >= 1, got {dim}")
    return dim


def _check_k(k: int) -> int:
    try:
        k = operator.index(k)
    except TypeError:
        raise IndexInputError(f"k must be an int, got {type(k).__name__}") from None
    if k < 1:
        raise IndexInputError(f"k must be >= 1, got {k}")
    return k


def _check_ids(ids: np.ndarray) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.size == 0:
        return np.empty(0, np.int64)  # an empty list arrives as float64: nothing to check
    if arr.ndim != 1:
        raise IndexInputError(f"ids must be a 1-D array, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise IndexInputError(f"ids must be integers (int64), got dtype {arr.dtype}")
    if arr.min() < 0 or (arr.dtype.kind == "u" and arr.max() > np.iinfo(np.int64).max):
        raise IndexInputError("ids must be in [0, 2**63): -1 marks 'no result' in search output")
    return arr.astype(np.int64, copy=False)


def _check_vectors(vectors: np.ndarray, dim: int, what: str) -> np.ndarray:
    arr = np.asarray(vectors)
    if arr.ndim != 2 or arr.shape[1] != dim:
        hint = f"; pass {what}[None, :] for a single vector" if arr.ndim == 1 else ""
        raise IndexInputError(f"{what} must have shape (n, {dim}), got {arr.shape}{hint}")
    if arr.dtype.kind != "f":
        raise IndexInputError(f"{what} must be floating point (float32), got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
        raise IndexInputError(f"{what} contain NaN or infinity (rows {bad[:5].tolist()})")
    norms = np.linalg.norm(arr, axis=1)
    off = np.flatnonzero(np.abs(norms - 1.0) > _UNIT_TOLERANCE)
    if off.size:
        raise IndexInputError(
            f"{what} must be L2-normalised (row {off[0]} has norm {norms[off[0]]:.4g}); use v / np.linalg.norm(v)"
        )
    return arr


def _check_batch(ids: np.ndarray, vectors: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    vecs = _check_vectors(vectors, dim, "vectors")
    ids = _check_ids(ids)
    if len(ids) != len(vecs):
        raise IndexInputError(f"got {len(ids)} ids for {len(vecs)} vectors")
    uniq, counts = np.unique(ids, return_counts=True)
    if uniq.size != ids.size:
        raise IndexInputError(f"duplicate ids in one add: {uniq[counts > 1][:5].tolist()}")
    return ids, vecs


def _check_new(ids: np.ndarray, known: dict[int, int]) -> None:
    clash = [i for i in ids.tolist() if i in known]
    if clash:
        raise IndexInputError(f"ids already in the index: {clash[:5]} (remove them first to replace)")


def _lookup(ids: np.ndarray, known: dict[int, int], missing_ok: bool) -> tuple[list[int], np.ndarray]:
    """(the ids found, their rows); unknown ids raise unless missing_ok. Checks all before any change."""
    found = [i for i in dict.fromkeys(ids.tolist()) if i in known]
    if not missing_ok and len(found) != len(set(ids.tolist())):
        missing = [i for i in ids.tolist() if i not in known]
        raise IndexInputError(f"ids not in the index: {missing[:5]} (pass missing_ok=True to ignore)")
    return found, np.array([known[i] for i in found], dtype=np.int64)


# -- ranking -------------------------------------------------------------------------------------


def _sort_rows(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the first k by (score descending, id ascending) of small (m, c) candidate arrays."""
    order = np.lexsort((ids, -scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)


def _top_k(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of scores (m, c) over ids (c,), the k best as _sort_rows orders them, in O(c)."""
    c = scores.shape[1]
    ids2 = np.broadcast_to(ids, scores.shape)
    if k >= c:
        return _sort_rows(scores, ids2, k)
    part = np.argpartition(scores, c - k, axis=1)[:, c - k :]
    kth = np.take_along_axis(scores, part, 1).min(axis=1)
    # argpartition cuts ties at the k-th score arbitrarily; redo those (rare) rows by id
    for r in np.flatnonzero(np.count_nonzero(scores >= kth[:, None], axis=1) > k):
        cand = np.flatnonzero(scores[r] >= kth[r])
        part[r] = cand[np.lexsort((ids2[r, cand], -scores[r, cand]))[:k]]
    return _sort_rows(np.take_along_axis(scores, part, 1), np.take_along_axis(ids2, part, 1), k)


def _empty_result(m: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((m, k), -np.inf, np.float32), np.full((m, k), -1, np.int64)


# -- exact ---------------------------------------------------------------------------------------


class ExactIndex:
    """Brute-force inner product (BLAS), in blocks so memory stays bounded. Exact; no build step.

    ``capacity`` reserves room for that many vectors up front (avoids regrowing a large array).
    """

    def __init__(self, dim: int, *, capacity: int = 0, block_bytes: int = _BLOCK_BYTES) -> None:
        self.dim = _check_dim(dim)
        self._vectors = np.empty((max(0, capacity), self.dim), np.float32)
        self._ids = np.empty(max(0, capacity), np.int64)
        self._rows: dict[int, int] = {}
        self._block_bytes = block_bytes

    def __len__(self) -> int:
        return len(self._rows)

    def __repr__(self) -> str:
        return f"ExactIndex(dim={self.dim}, n={len(self)})"

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids, vecs = _check_batch(ids, vectors, self.dim)
        _check_new(ids, self._rows)
        start, end = len(self), len(self) + len(ids)
        self._reserve(end)
        self._vectors[start:end] = vecs
        self._ids[start:end] = ids
        self._rows.update(zip(ids.tolist(), range(start, end), strict=True))

    def remove(self, ids: np.ndarray, *, missing_ok: bool = False) -> None:
        """Delete these ids; their vectors are overwritten, so they can never be returned again."""
        found, rows = _lookup(_check_ids(ids), self._rows, missing_ok)
        if not found:
            return
        n, n_new = len(self), len(self) - len(found)
        # fill the holes below n_new with the surviving rows from the tail: O(removed) moves
        holes = rows[rows < n_new]
        tail = np.arange(n_new, n)
        movers = tail[~np.isin(tail, rows)]
        self._vectors[holes] = self._vectors[movers]
        self._ids[holes] = self._ids[movers]
        self._vectors[n_new:n] = 0.0
        for i in found:
            del self._rows[i]
        self._rows.update(zip(self._ids[holes].tolist(), holes.tolist(), strict=True))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = _check_vectors(queries, self.dim, "queries")
        k = _check_k(k)
        scores, ids = _empty_result(len(q), k)
        n = len(self)
        if n == 0 or len(q) == 0:
            return scores, ids
        kk = min(k, n)
        q_block = min(len(q), 256)
        n_block = max(1024, self._block_bytes // (4 * q_block))
        for q0 in range(0, len(q), q_block):
            qs = q[q0 : q0 + q_block]
            best = self._block_top_k(qs, 0, min(n, n_block), kk)  # n > 0: there is a first block
            for r0 in range(n_block, n, n_block):
                block = self._block_top_k(qs, r0, min(n, r0 + n_block), kk)
                best = _sort_rows(np.hstack([best[0], block[0]]), np.hstack([best[1], block[1]]), kk)
            scores[q0 : q0 + q_block, :kk], ids[q0 : q0 + q_block, :kk] = best
        return scores, ids

    def _block_top_k(self, qs: np.ndarray, r0: int, r1: int, kk: int) -> tuple[np.ndarray, np.ndarray]:
        return _top_k(qs @ self._vectors[r0:r1].T, self._ids[r0:r1], min(kk, r1 - r0))

    def _reserve(self, n: int) -> None:
        if n <= len(self._ids):
            return
        cap = max(n, int(len(self._ids) * 1.5) + 1024)
        vectors = np.empty((cap, self.dim), np.float32)
        vectors[: len(self)] = self._vectors[: len(self)]
        ids = np.empty(cap, np.int64)
        ids[: len(self)] = self._ids[: len(self)]
        self._vectors, self._ids = vectors, ids


# -- HNSW ----------------------------------------------------------------------------------------


def default_ef_search(n: int) -> int:
    """efSearch for recall@1 >= 0.99 on face-like galleries of n vectors (see module docstring)."""
    for limit, ef in HNSW_EF_SEARCH_STEPS:
        if n <= limit:
            return ef
    return HNSW_EF_SEARCH_LARGE


class HNSWIndex:
    """Approximate search: FAISS ``IndexHNSWFlat`` (inner product) with an id map and tombstones.

    - ``ef_search``: ``None`` picks :func:`default_ef_search` for the current size; raise it for
      recall, lower it for speed. ``rerank``: candidates fetched per query (at least ``k``); they
      are re-scored by exact float32 dot products, so scores match :class:`ExactIndex`.
    - HNSW cannot delete nodes: removed ids become tombstones, filtered inside the graph search
      (they are still walked through, never returned). ``tombstones`` counts them; rebuild from
      the store when ``needs_rebuild`` says so.
    """

    def __init__(
        self,
        dim: int,
        *,
        m: int = HNSW_M,
        ef_construction: int = HNSW_EF_CONSTRUCTION,
        ef_search: int | None = None,
        rerank: int = HNSW_RERANK,
    ) -> None:
        try:
            import faiss
        except ImportError as exc:  # a declared dependency, but say what to do if it is missing
            raise ImportError("HNSWIndex needs FAISS: pip install faiss-cpu") from exc
        self.dim = _check_dim(dim)
        self.ef_search = ef_search
        self.rerank = rerank
        self._faiss = faiss
        self._index = faiss.IndexHNSWFlat(self.dim, m, faiss.METRIC_INNER_PRODUCT)
        self._index.hnsw.efConstruction = ef_construction
        self._storage = faiss.downcast_index(self._index.storage)  # the flat float32 vectors
        self._ids = np.empty(0, np.int64)  # faiss position -> id
        self._alive = np.empty(0, bool)  # faiss position -> not removed
        self._rows: dict[int, int] = {}  # id -> faiss position
        self._selector: tuple[np.ndarray, object] | None = None  # (bitmap, IDSelectorBitmap) kept alive

    def __len__(self) -> int:
        return len(self._rows)

    def __repr__(self) -> str:
        return f"HNSWIndex(dim={self.dim}, n={len(self)}, tombstones={self.tombstones})"

    @property
    def tombstones(self) -> int:
        """Removed vectors still in the graph (memory, search time) until the index is rebuilt."""
        return len(self._alive) - len(self._rows)

    @property
    def tombstone_fraction(self) -> float:
        return self.tombstones / len(self._alive) if len(self._alive) else 0.0

    @property
    def needs_rebuild(self) -> bool:
        """True once deletions pass ``TOMBSTONE_REBUILD_FRACTION``: rebuild from the store."""
        return self.tombstone_fraction > TOMBSTONE_REBUILD_FRACTION

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids, vecs = _check_batch(ids, vectors, self.dim)
        _check_new(ids, self._rows)
        start = int(self._index.ntotal)
        self._index.add(vecs)
        self._ids = np.concatenate([self._ids, ids])
        self._alive = np.concatenate([self._alive, np.ones(len(ids), bool)])
        self._rows.update(zip(ids.tolist(), range(start, start + len(ids)), strict=True))
        self._selector = None

    def remove(self, ids: np.ndarray, *, missing_ok: bool = False) -> None:
        """Tombstone these ids: they are never returned again (the graph keeps the node)."""
        found, rows = _lookup(_check_ids(ids), self._rows, missing_ok)
        if not found:
            return
        self._alive[rows] = False
        for i in found:
            del self._rows[i]
        self._selector = None

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = _check_vectors(queries, self.dim, "queries")
        k = _check_k(k)
        if len(self) == 0 or len(q) == 0:
            return _empty_result(len(q), k)
        fetch = max(k, self.rerank)
        # the faiss stubs lack it, but every faiss build with HNSW has it at run time
        params = self._faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
        params.efSearch = max(self.ef_search or default_ef_search(len(self)), fetch)
        # tombstones stay in the graph as waypoints but never enter the results, so a deleted
        # person's faces cannot crowd out live ones: no over-fetching needed (measured: recall@1
        # unchanged with 60% of a 100k gallery deleted)
        if self.tombstones:
            params.sel = self._tombstone_filter()
        _, pos = self._index.search(q, fetch, params=params)
        return self._rerank(q, pos, k)

    def _rerank(self, q: np.ndarray, pos: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact float32 scores of the candidates, sorted; drops anything not alive (belt and braces)."""
        valid = pos >= 0
        valid[valid] = self._alive[pos[valid]]
        rows, cols = np.nonzero(valid)
        # get_xb is on IndexFlat (what downcast_index returns); the stubs type storage as a plain Index
        xb = self._storage.get_xb()  # type: ignore[attr-defined]
        stored = self._faiss.rev_swig_ptr(xb, self._index.ntotal * self.dim)
        vecs = np.asarray(stored).reshape(-1, self.dim)[pos[rows, cols]]
        scores = np.full(pos.shape, -np.inf, np.float32)
        scores[rows, cols] = np.einsum("ij,ij->i", q[rows], vecs)
        ids = np.full(pos.shape, -1, np.int64)
        ids[rows, cols] = self._ids[pos[rows, cols]]
        out_scores, out_ids = _empty_result(len(q), k)
        top = _sort_rows(scores, ids, k)
        out_scores[:, : top[0].shape[1]], out_ids[:, : top[1].shape[1]] = top
        return out_scores, out_ids

    def _tombstone_filter(self) -> object:
        if self._selector is None:
            bitmap = np.packbits(self._alive, bitorder="little")  # faiss reads bit i of byte i >> 3
            sel = self._faiss.IDSelectorBitmap(len(self._alive), self._faiss.swig_ptr(bitmap))
            self._selector = (bitmap, sel)
        return self._selector[1]


# -- choice --------------------------------------------------------------------------------------


def create_index(n_expected: int, dim: int, kind: str = "auto") -> VectorIndex:
    """An empty index for about ``n_expected`` vectors of ``dim`` dimensions.

    ``kind``: ``"exact"``, ``"hnsw"``, or ``"auto"``: exact below ``AUTO_HNSW_THRESHOLD`` vectors
    (fast enough, perfect recall, no build time), HNSW from there on.
    """
    try:
        n_expected = operator.index(n_expected)
    except TypeError:
        raise IndexInputError(f"n_expected must be an int, got {type(n_expected).__name__}") from None
    if n_expected < 0:
        raise IndexInputError(f"n_expected must be >= 0, got {n_expected}")
    if kind == "auto":
        kind = "exact" if n_expected < AUTO_HNSW_THRESHOLD else "hnsw"
    if kind == "exact":
        return ExactIndex(dim, capacity=n_expected)
    if kind == "hnsw":
        return HNSWIndex(dim)
    raise IndexInputError(f"kind must be 'auto', 'exact' or 'hnsw', got {kind!r}")
