"""Nearest-neighbour search over face embeddings: exact (numpy/BLAS), approximate in memory
(FAISS HNSW) and compressed (FAISS IVF-PQ, re-ranked from a copy that may be memory-mapped).

Scores are inner products of L2-normalised vectors (cosine similarity): higher means more
similar. Every index answers ``search(queries, k) -> (scores (m, k) float32, ids (m, k) int64)``
with rows sorted by score (ties by ascending id) and padded with ``-inf`` / ``-1`` when fewer
than ``k`` vectors are stored. ``search(queries, k, allowed=ids)`` searches only those ids (a
filter), without losing recall to it: few allowed ids are searched exactly (a pre-filter, cheaper
than walking a graph past the others), many through the graph with the filter applied inside it
(faiss ``IDSelectorBitmap``, the beam widened), never by filtering an unfiltered top-k afterwards,
which comes back short once few vectors pass. See ``FILTER_EXACT_BELOW``. Every kind returns
float32 dot products computed by numpy from float32 vectors (equal to ~1e-7), so thresholds
calibrated on one hold for the others.

Indexes are never persisted: a gallery rebuilds its index from its store, so an index is never
the only copy of anything (IVFPQIndex's memory-mapped copy is scratch, never read back). None
of them is safe to mutate while another thread searches.

Why these defaults (``benchmarks/index_search.py``, docs/BENCHMARKS.md "Vector index"): face
galleries are hard for HNSW because each person contributes several near-identical faces. The
former defaults (efConstruction 80, efSearch 768 at 1M) reached recall@1 0.997 on the fitted
synthetic faces but 0.975 on held-out data, so they are now chosen on a harder generator too
(``--hard``: per-person spread, heavy-tailed faces per person, near-duplicate photos, people
closer together), with real LFW faces mixed in: see the constants below.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from faceatlas.errors import FaceAtlasError, InvalidArgumentError

# "auto" switches to HNSW at this many faces. Below it exact search needs no build and is exact,
# at ~11 ms per query (5.6 ms at 100k, 45 ms at 1M, idle machine); HNSW would answer in ~1-2 ms
# but first build for minutes (~10 min at 1M with efConstruction 160), and every start-up rebuilds it.
AUTO_HNSW_THRESHOLD = 200_000
HNSW_M = 32
# Graph quality is what held-out data lacked: at 200k on the harder generator, efConstruction 200
# against 80 raised recall@1 at efSearch 256 from 0.982 to 0.995 for about twice the build.
HNSW_EF_CONSTRUCTION = 160
# (gallery size up to, efSearch) for recall@1 >= 0.99 with margin, on fitted synthetic faces and
# on the harder generator, real LFW faces mixed into both. Measured at 1M with efSearch 1024:
# recall@1 1.000 (fitted) and 0.996 (hard), CPU p99 5.1 and 4.3 ms on 2 cores; 768 gave 0.992 on
# the hard data. At 200k (hard, efConstruction 200) 384 gave 0.998. Beyond 2M: a guess, not measured.
HNSW_EF_SEARCH_STEPS: tuple[tuple[int, int], ...] = ((20_000, 128), (300_000, 384), (2_000_000, 1024))
HNSW_EF_SEARCH_LARGE = 1536
# Candidates re-scored per query: spares for the belt-and-braces tombstone filter, and costs ~0.1 ms.
HNSW_RERANK = 32
# Rebuild once this fraction of HNSW nodes are deleted: dead nodes keep their memory (~840 B each)
# and beam slots; recall and latency were unchanged up to 60% deleted at 100k.
TOMBSTONE_REBUILD_FRACTION = 0.5
# IVF-PQ (the compressed kind), measured at 1M: nprobe = nlist / 8 gives recall@1 1.000 (fitted)
# and 0.996 (hard) with 256 re-ranked; nlist / 16 gives 0.995 and 0.988. The re-rank pool costs
# little next to the list scan, and the coarse lists, not the codes, limit recall.
IVFPQ_RERANK = 256
IVFPQ_MIN_TRAIN = 50_000  # below it search is exact over the copy (~5 ms at 50k): no training on too little
IVFPQ_TRAIN_PER_LIST = 40  # k-means sample: faiss warns below 39 points per list
IVFPQ_NPROBE_FRACTION = 1 / 8
# A filtered search (``allowed=``) over at most this many vectors is exact over just those: the cost
# is linear in them (at 1M faces on 2 cores: 0.9 ms for 1k allowed, 2.9 ms for 10k) and recall is
# perfect, while a graph walk with a selective filter visits many nodes it may not return (23 ms and
# recall@20 0.85 for 1k allowed; benchmarks/face_search.py, docs/BENCHMARKS.md "Searching every
# face"). Above it HNSW and IVF-PQ search with the filter inside the index.
FILTER_EXACT_BELOW = 32_768
# ... and so is one passing at most this fraction of the vectors: a filtered walk needs a wider beam
# the fewer pass (recall@20 at 100k, efSearch 384: 0.84 at 1 %, 0.98 at 10 %, 0.995 at 50 %), so
# below a fifth exact over the allowed vectors is both exact and about as fast. Above it the beam
# (efSearch) is widened by 1 / sqrt(fraction), up to HNSW_EF_FILTERED_MAX.
FILTER_EXACT_FRACTION = 0.2
HNSW_EF_FILTERED_MAX = 4096
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

    def search(
        self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]: ...

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


def _tombstone(ids: np.ndarray, rows_of: dict[int, int], alive: np.ndarray, missing_ok: bool) -> np.ndarray | None:
    """Mark these ids' rows dead and forget them; their rows, or None when none was there."""
    found, rows = _lookup(_check_ids(ids), rows_of, missing_ok)
    if not found:
        return None
    alive[rows] = False
    for i in found:
        del rows_of[i]
    return rows


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


def _rescore(
    q: np.ndarray,
    pos: np.ndarray,
    alive: np.ndarray,
    ids_of: np.ndarray,
    vectors_of: Callable[[np.ndarray], np.ndarray],
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact float32 scores of an approximate index's candidates (positions ``pos``, -1 = none),
    sorted as ExactIndex sorts; drops anything not alive (belt and braces)."""
    valid = pos >= 0
    valid[valid] = alive[pos[valid]]
    rows, cols = np.nonzero(valid)
    scores = np.full(pos.shape, -np.inf, np.float32)
    scores[rows, cols] = np.einsum("ij,ij->i", q[rows], vectors_of(pos[rows, cols]))
    ids = np.full(pos.shape, -1, np.int64)
    ids[rows, cols] = ids_of[pos[rows, cols]]
    out_scores, out_ids = _empty_result(len(q), k)
    top = _sort_rows(scores, ids, k)
    out_scores[:, : top[0].shape[1]], out_ids[:, : top[1].shape[1]] = top
    return out_scores, out_ids


class _IdLookup:
    """Rows of ids, vectorised: a dense table when the ids are dense enough (at most 4 slots per id,
    as a collection's ids are), else a binary search in the sorted ids. What ``allowed=`` looks up."""

    def __init__(self, ids_of_rows: np.ndarray, rows: np.ndarray) -> None:
        self._table: np.ndarray | None = None
        self._ids = self._rows = np.empty(0, np.int64)
        if len(ids_of_rows) and int(ids_of_rows.max()) < 4 * len(ids_of_rows) + 1024:
            self._table = np.full(int(ids_of_rows.max()) + 1, -1, np.int64)
            self._table[ids_of_rows] = rows
        else:
            order = np.argsort(ids_of_rows, kind="stable")
            self._ids, self._rows = ids_of_rows[order], rows[order]

    def rows(self, allowed: np.ndarray, n_rows: int) -> np.ndarray:
        """The rows (ascending, unique) of the ``allowed`` ids that are stored; ids not stored are
        ignored (a filter may name faces the index never held, or removed since). No sort."""
        ids = _check_ids(allowed)
        if not len(ids):
            return np.empty(0, np.int64)
        if self._table is not None:
            found = self._table[ids[ids < len(self._table)]]
            found = found[found >= 0]
        elif len(self._ids):
            at = np.searchsorted(self._ids, ids).clip(0, len(self._ids) - 1)
            found = self._rows[at[self._ids[at] == ids]]
        else:
            return np.empty(0, np.int64)
        hit = np.zeros(n_rows, bool)
        hit[found] = True
        return np.flatnonzero(hit)


def _exact_over(
    q: np.ndarray, rows: np.ndarray, ids_of: np.ndarray, matrix: np.ndarray, k: int, block_rows: int = 65_536
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of ``q`` over just these rows of ``matrix`` (a pre-filter). Few rows are gathered;
    from an eighth of the matrix on, every row is scored in order instead, the others set to -inf:
    at 1M, gathering 10 % cost as much as scoring all (21 vs 19 ms), gathering 50 % four times more."""
    scores, ids = _empty_result(len(q), k)
    if not len(rows) or not len(q):
        return scores, ids
    kk = min(k, len(rows))
    keep: np.ndarray | None = None
    if 8 * len(rows) > len(matrix):
        keep = np.zeros(len(matrix), bool)
        keep[rows] = True

    def block(r0: int) -> tuple[np.ndarray, np.ndarray]:
        if keep is None:
            part = rows[r0 : r0 + block_rows]
            sims = q @ np.asarray(matrix[part], dtype=np.float32).T
            return _top_k(sims, ids_of[part], min(kk, len(part)))
        sims = q @ np.asarray(matrix[r0 : r0 + block_rows], dtype=np.float32).T
        sims = np.where(keep[r0 : r0 + sims.shape[1]], sims, np.float32(-np.inf))
        return _top_k(sims, ids_of[r0 : r0 + sims.shape[1]], min(kk, sims.shape[1]))

    span = len(rows) if keep is None else len(matrix)
    best = block(0)
    for r0 in range(block_rows, span, block_rows):
        more = block(r0)
        best = _sort_rows(np.hstack([best[0], more[0]]), np.hstack([best[1], more[1]]), kk)
    scores[:, :kk], ids[:, :kk] = best
    if keep is not None:  # fewer allowed than k in a block: what filled it up was not allowed
        ids[np.isneginf(scores)] = -1
    return scores, ids


def _rows_in_order(ids: np.ndarray, known: dict[int, int]) -> np.ndarray:
    """The rows of these ids, in their order (repeats kept); an id not stored raises."""
    wanted = _check_ids(ids).tolist()
    missing = [i for i in wanted if i not in known]
    if missing:
        raise IndexInputError(f"ids not in the index: {missing[:5]}")
    return np.array([known[i] for i in wanted], dtype=np.int64)


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
        self._by_id: _IdLookup | None = None  # for allowed=: id -> row

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
        self._by_id = None

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
        self._by_id = None

    def search(
        self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The k best per query; with ``allowed`` (ids), the k best of those only, exactly."""
        q = _check_vectors(queries, self.dim, "queries")
        k = _check_k(k)
        if allowed is not None:
            rows = self._lookup().rows(allowed, len(self))
            return _exact_over(q, rows, self._ids, self._vectors[: len(self)], k)
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

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of these ids (a copy, in their order); unknown ids raise."""
        return self._vectors[_rows_in_order(ids, self._rows)]

    def _lookup(self) -> _IdLookup:
        if self._by_id is None:
            n = len(self)
            self._by_id = _IdLookup(self._ids[:n].copy(), np.arange(n, dtype=np.int64))
        return self._by_id

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
        filter_exact_below: int = FILTER_EXACT_BELOW,
        filter_exact_fraction: float = FILTER_EXACT_FRACTION,
    ) -> None:
        try:
            import faiss
        except ImportError as exc:  # a declared dependency, but say what to do if it is missing
            raise ImportError("HNSWIndex needs FAISS: pip install faiss-cpu") from exc
        self.dim = _check_dim(dim)
        self.ef_search = ef_search
        self.rerank = rerank
        self.filter_exact_below = filter_exact_below
        self.filter_exact_fraction = filter_exact_fraction
        self._faiss = faiss
        self._index = faiss.IndexHNSWFlat(self.dim, m, faiss.METRIC_INNER_PRODUCT)
        self._index.hnsw.efConstruction = ef_construction
        self._storage = faiss.downcast_index(self._index.storage)  # the flat float32 vectors
        self._ids = np.empty(0, np.int64)  # faiss position -> id
        self._alive = np.empty(0, bool)  # faiss position -> not removed
        self._rows: dict[int, int] = {}  # id -> faiss position
        self._selector: tuple[np.ndarray, object] | None = None  # (bitmap, IDSelectorBitmap) kept alive
        self._by_id: _IdLookup | None = None  # for allowed=: live id -> position

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
        self._by_id = None

    def remove(self, ids: np.ndarray, *, missing_ok: bool = False) -> None:
        """Tombstone these ids: they are never returned again (the graph keeps the node)."""
        if _tombstone(ids, self._rows, self._alive, missing_ok) is not None:
            self._selector = None
            self._by_id = None

    def filter_strategy(self, n_allowed: int) -> str:
        """How ``search(..., allowed=)`` searches that many allowed ids: ``"exact-prefilter"`` (few:
        at most ``filter_exact_below``, or ``filter_exact_fraction`` of the index) or
        ``"ann-filtered"`` (the graph walk with the filter inside it, its beam widened)."""
        few = n_allowed <= max(self.filter_exact_below, self.filter_exact_fraction * len(self))
        return "exact-prefilter" if few else "ann-filtered"

    def search(
        self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The k best per query (approximate); with ``allowed`` (ids) only those, searched as
        ``filter_strategy`` says: exactly when few, else in the graph, falling back to exact for a
        query whose filtered walk found fewer than k (or fewer than allowed) results."""
        q = _check_vectors(queries, self.dim, "queries")
        k = _check_k(k)
        if len(self) == 0 or len(q) == 0:
            return _empty_result(len(q), k)
        if allowed is not None:
            return self._search_allowed(q, k, self._lookup().rows(allowed, len(self._alive)))
        params = self._params(k)
        # tombstones stay in the graph as waypoints but never enter the results, so a deleted
        # person's faces cannot crowd out live ones: no over-fetching needed (measured: recall@1
        # unchanged with 60% of a 100k gallery deleted)
        if self.tombstones:
            params.sel = self._tombstone_filter()
        _, pos = self._index.search(q, max(k, self.rerank), params=params)
        return self._rerank(q, pos, k)

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of these ids (a copy, in their order); unknown or removed ids raise."""
        return self._stored()[_rows_in_order(ids, self._rows)].copy()

    def _params(self, k: int) -> Any:
        # the faiss stubs lack it, but every faiss build with HNSW has it at run time
        params = self._faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
        params.efSearch = max(self.ef_search or default_ef_search(len(self)), k, self.rerank)
        return params

    def _search_allowed(self, q: np.ndarray, k: int, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        stored = self._stored()
        if self.filter_strategy(len(pos)) == "exact-prefilter":
            return _exact_over(q, pos, self._ids, stored, k)
        bitmap = np.zeros(len(self._alive), bool)
        bitmap[pos] = True  # positions of live ids only: tombstones are left out too
        packed = np.packbits(bitmap, bitorder="little")
        params = self._params(k)
        # a walk returns only allowed nodes: the fewer pass, the wider the beam must be for the same recall
        widened = params.efSearch / np.sqrt(max(len(pos) / max(len(self), 1), 1e-6))
        params.efSearch = int(min(max(params.efSearch, widened), max(HNSW_EF_FILTERED_MAX, params.efSearch)))
        params.sel = self._faiss.IDSelectorBitmap(len(bitmap), self._faiss.swig_ptr(packed))
        _, found = self._index.search(q, max(k, self.rerank), params=params)
        scores, ids = self._rerank(q, found, k)
        short = np.count_nonzero(ids >= 0, axis=1) < min(k, len(pos))
        if short.any():  # the walk ran dry before k allowed nodes: those queries exactly
            scores[short], ids[short] = _exact_over(q[short], pos, self._ids, stored, k)
        return scores, ids

    def _stored(self) -> np.ndarray:
        # get_xb is on IndexFlat (what downcast_index returns); the stubs type storage as a plain Index
        xb = self._storage.get_xb()  # type: ignore[attr-defined]
        return np.asarray(self._faiss.rev_swig_ptr(xb, self._index.ntotal * self.dim)).reshape(-1, self.dim)

    def _lookup(self) -> _IdLookup:
        if self._by_id is None:
            live = np.flatnonzero(self._alive)
            self._by_id = _IdLookup(self._ids[live], live.astype(np.int64))
        return self._by_id

    def _rerank(self, q: np.ndarray, pos: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        stored = self._stored()
        return _rescore(q, pos, self._alive, self._ids, lambda p: stored[p], k)

    def _tombstone_filter(self) -> object:
        if self._selector is None:
            bitmap = np.packbits(self._alive, bitorder="little")  # faiss reads bit i of byte i >> 3
            sel = self._faiss.IDSelectorBitmap(len(self._alive), self._faiss.swig_ptr(bitmap))
            self._selector = (bitmap, sel)
        return self._selector[1]


# -- IVF-PQ --------------------------------------------------------------------------------------


def _pq_subquantizers(dim: int) -> int:
    """The largest divisor of dim up to dim / 4: 8-bit codes of dim / 4 bytes (128-d: 32, 512-d: 128)."""
    return max(m for m in range(1, max(1, dim // 4) + 1) if dim % m == 0)


def default_nlist(n: int) -> int:
    """IVF lists for n vectors: about 4 sqrt(n), a power of two (1M: 4096), 64 at least."""
    return 1 << max(6, int(np.ceil(np.log2(4 * np.sqrt(max(n, 1))))))


class IVFPQIndex:
    """Compressed approximate search for galleries too large for memory: FAISS ``IndexIVFPQ``
    codes in memory (``dim / 4`` bytes per vector, 32 B at 128-d), candidates re-ranked exactly
    from a copy of the vectors that may live in a memory-mapped file (``path``).

    - Scores are exact float32 dot products of the stored copy, as with :class:`ExactIndex`
      (``store_dtype=np.float16`` halves the copy and moves scores by up to ~1e-3).
    - IVF needs training: until ``min_train`` vectors are stored, search is exact over the copy;
      at that size the coarse lists (``nlist``, default :func:`default_nlist`) and the product
      quantizer are trained on what is stored, and every later vector is encoded with them.
    - ``nprobe``: lists visited per query (default ``nlist * IVFPQ_NPROBE_FRACTION``);
      ``rerank``: candidates re-scored exactly per query (at least ``k``).
    - ``path``: the copy is a scratch file there (created, overwritten, grown; never read back
      after a restart): the store stays the only copy that matters. Without it, in memory.
    - Removal deletes the codes from their lists; the copy keeps the dead row until a rebuild.
    """

    def __init__(
        self,
        dim: int,
        *,
        n_expected: int = 0,
        nlist: int | None = None,
        nprobe: int | None = None,
        rerank: int = IVFPQ_RERANK,
        min_train: int = IVFPQ_MIN_TRAIN,
        store_dtype: type[np.floating] = np.float32,
        path: str | os.PathLike[str] | None = None,
    ) -> None:
        try:
            import faiss
        except ImportError as exc:
            raise ImportError("IVFPQIndex needs FAISS: pip install faiss-cpu") from exc
        self.dim = _check_dim(dim)
        self.nlist = nlist
        self.nprobe = nprobe
        self.rerank = rerank
        self._faiss = faiss
        self._n_expected = max(0, n_expected)
        self._min_train = max(256, min_train)  # the product quantizer has 256 centroids per part
        self._dtype = np.dtype(store_dtype)
        if self._dtype not in (np.dtype(np.float32), np.dtype(np.float16)):
            raise IndexInputError(f"store_dtype must be float32 or float16, got {self._dtype}")
        self._path = None if path is None else os.fspath(path)
        self._vectors = self._allocate(0)
        self._ids = np.empty(0, np.int64)  # row -> id
        self._alive = np.empty(0, bool)
        self._rows: dict[int, int] = {}
        self._ivf: Any = None  # faiss.IndexIVFPQ once trained
        self._by_id: _IdLookup | None = None  # for allowed=: live id -> row

    def __len__(self) -> int:
        return len(self._rows)

    def __repr__(self) -> str:
        state = f"nlist={self.nlist}" if self._ivf is not None else "exact until trained"
        return f"IVFPQIndex(dim={self.dim}, n={len(self)}, {state})"

    @property
    def trained(self) -> bool:
        return self._ivf is not None

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids, vecs = _check_batch(ids, vectors, self.dim)
        _check_new(ids, self._rows)
        start, end = len(self._ids), len(self._ids) + len(ids)
        self._reserve(end)
        self._vectors[start:end] = vecs
        self._ids = np.concatenate([self._ids, ids])
        self._alive = np.concatenate([self._alive, np.ones(len(ids), bool)])
        self._rows.update(zip(ids.tolist(), range(start, end), strict=True))
        self._by_id = None
        if self._ivf is not None:
            self._encode(start, end)
        elif len(self) >= self._min_train:
            self._train()

    def remove(self, ids: np.ndarray, *, missing_ok: bool = False) -> None:
        """Delete these ids: their codes leave the lists, so they can never be returned again."""
        rows = _tombstone(ids, self._rows, self._alive, missing_ok)
        if rows is not None:
            self._by_id = None
        if rows is not None and self._ivf is not None:
            self._ivf.remove_ids(self._faiss.IDSelectorBatch(rows))

    def search(
        self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The k best per query; with ``allowed`` (ids) only those: exactly over the copy when few
        (``FILTER_EXACT_BELOW``) or untrained, else in the lists with the filter inside the scan."""
        q = _check_vectors(queries, self.dim, "queries")
        k = _check_k(k)
        if len(self) == 0 or len(q) == 0:
            return _empty_result(len(q), k)
        if allowed is not None:
            return self._search_allowed(q, k, self._lookup().rows(allowed, len(self._ids)))
        if self._ivf is None:  # small: exact over the live rows of the copy
            rows = np.flatnonzero(self._alive)
            scores, ids = _empty_result(len(q), k)
            top = _top_k(q @ self._vectors[rows].astype(np.float32).T, self._ids[rows], min(k, len(rows)))
            scores[:, : top[0].shape[1]], ids[:, : top[1].shape[1]] = top
            return scores, ids
        fetch = max(k, self.rerank)
        params = self._faiss.SearchParametersIVF()
        params.nprobe = min(self.nlist or 1, self.nprobe or default_nprobe(self.nlist or 1))
        _, pos = self._ivf.search(q, fetch, params=params)
        return _rescore(q, pos, self._alive, self._ids, lambda p: self._vectors[p].astype(np.float32), k)

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of these ids (float32, in their order); unknown or removed ids raise."""
        return self._vectors[_rows_in_order(ids, self._rows)].astype(np.float32)

    def _search_allowed(self, q: np.ndarray, k: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        copy = self._vectors[: len(self._ids)]
        if self._ivf is None or len(rows) <= max(FILTER_EXACT_BELOW, FILTER_EXACT_FRACTION * len(self)):
            return _exact_over(q, rows, self._ids, copy, k)
        allowed = np.zeros(len(self._ids), bool)
        allowed[rows] = True
        bitmap = np.packbits(allowed, bitorder="little")  # IVF ids are rows
        params = self._faiss.SearchParametersIVF()
        params.nprobe = min(self.nlist or 1, self.nprobe or default_nprobe(self.nlist or 1))
        params.sel = self._faiss.IDSelectorBitmap(len(self._ids), self._faiss.swig_ptr(bitmap))
        _, pos = self._ivf.search(q, max(k, self.rerank), params=params)
        scores, ids = _rescore(q, pos, self._alive, self._ids, lambda p: copy[p].astype(np.float32), k)
        short = np.count_nonzero(ids >= 0, axis=1) < min(k, len(rows))
        if short.any():  # the probed lists held fewer than k allowed vectors: those queries exactly
            scores[short], ids[short] = _exact_over(q[short], rows, self._ids, copy, k)
        return scores, ids

    def _lookup(self) -> _IdLookup:
        if self._by_id is None:
            live = np.flatnonzero(self._alive)
            self._by_id = _IdLookup(self._ids[live], live.astype(np.int64))
        return self._by_id

    def _train(self) -> None:
        faiss = self._faiss
        n = len(self._ids)
        # at least IVFPQ_TRAIN_PER_LIST training points per list unless asked otherwise
        self.nlist = min(self.nlist or min(default_nlist(max(n, self._n_expected)), n // IVFPQ_TRAIN_PER_LIST), n)
        coarse = faiss.IndexFlatL2(self.dim)
        # L2 on unit vectors ranks as inner product does; faiss' PQ is best tuned for L2
        ivf = faiss.IndexIVFPQ(coarse, self.dim, self.nlist, _pq_subquantizers(self.dim), 8)
        ivf.cp.niter = 10  # k-means iterations: 10 reach the recall of faiss' 25 here, in 40% of the time
        rng = np.random.default_rng(0)
        sample = np.sort(rng.choice(n, min(n, IVFPQ_TRAIN_PER_LIST * self.nlist), replace=False))
        ivf.train(np.ascontiguousarray(self._vectors[sample], dtype=np.float32))
        self._coarse = coarse  # the IVF holds a raw pointer to it: keep it alive as long
        self._ivf = ivf
        self._encode(0, n)

    def _encode(self, start: int, end: int) -> None:
        for s in range(start, end, 100_000):
            e = min(end, s + 100_000)
            rows = np.arange(s, e, dtype=np.int64)[self._alive[s:e]]
            vecs = np.ascontiguousarray(self._vectors[rows], dtype=np.float32)
            self._ivf.add_with_ids(vecs, rows)

    def _allocate(self, capacity: int) -> np.ndarray:
        if self._path is None:
            return np.empty((capacity, self.dim), self._dtype)
        with open(self._path, "wb") as f:
            f.truncate(max(1, capacity) * self.dim * self._dtype.itemsize)
        return np.memmap(self._path, self._dtype, "r+", shape=(max(1, capacity), self.dim))

    def _reserve(self, n: int) -> None:
        if n <= len(self._vectors) and (n or self._path is None):
            return
        cap = max(n, int(len(self._vectors) * 1.5) + 1024)
        if self._path is None:
            vectors = np.empty((cap, self.dim), self._dtype)
            vectors[: len(self._ids)] = self._vectors[: len(self._ids)]
            self._vectors = vectors
            return
        old = self._vectors
        if isinstance(old, np.memmap):
            old.flush()
        del old
        self._vectors = np.empty(0)  # drop the old mapping before the file grows
        with open(self._path, "r+b") as f:
            f.truncate(cap * self.dim * self._dtype.itemsize)
        self._vectors = np.memmap(self._path, self._dtype, "r+", shape=(cap, self.dim))


def default_nprobe(nlist: int) -> int:
    """Lists visited per query: a fixed fraction of nlist (see ``IVFPQ_NPROBE_FRACTION``)."""
    return max(1, round(nlist * IVFPQ_NPROBE_FRACTION))


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
    if kind == "ivfpq":
        return IVFPQIndex(dim, n_expected=n_expected)
    raise IndexInputError(f"kind must be 'auto', 'exact', 'hnsw' or 'ivfpq', got {kind!r}")
