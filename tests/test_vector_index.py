"""Vector indexes: exact search against brute force, HNSW recall and removal, input checks."""

from __future__ import annotations

import numpy as np
import pytest

from faceatlas.errors import FaceAtlasError
from faceatlas.vector_index import (
    AUTO_HNSW_THRESHOLD,
    ExactIndex,
    HNSWIndex,
    IVFPQIndex,
    VectorIndex,
    create_index,
)

pytest.importorskip("faiss")


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _faces(rng: np.random.Generator, n_ids: int, per: int, d: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Face-like unit vectors: one shared direction, identities around it, near-duplicate faces.

    Cosine within an identity ~0.95 and between identities ~0.83, as with dlib embeddings: the
    hard case for HNSW (many almost equal neighbours).
    """
    mean = _unit(rng.standard_normal((1, d)))[0] * np.sqrt(0.83)
    centers = mean + rng.normal(0, np.sqrt(0.12 / d), (n_ids, d))
    labels = np.repeat(np.arange(n_ids), per)
    return _unit(centers[labels] + rng.normal(0, np.sqrt(0.047 / d), (len(labels), d))), labels


def _brute(queries: np.ndarray, vectors: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference: full argsort by (score desc, id asc), float64 scores, padded like the index."""
    scores = queries.astype(np.float64) @ vectors.astype(np.float64).T
    order = np.lexsort((np.broadcast_to(ids, scores.shape), -scores), axis=1)[:, :k]
    s = np.full((len(queries), k), -np.inf)
    i = np.full((len(queries), k), -1, np.int64)
    s[:, : order.shape[1]] = np.take_along_axis(scores, order, 1)
    i[:, : order.shape[1]] = ids[order]
    return s, i


# -- ExactIndex -----------------------------------------------------------------------------------


@pytest.mark.parametrize("block_bytes", [64 << 20, 4096])  # one block / many blocks and merges
def test_exact_matches_brute_force(block_bytes: int) -> None:
    rng = np.random.default_rng(0)
    x = _unit(rng.standard_normal((3000, 32)))
    ids = rng.permutation(10**6)[:3000]
    index = ExactIndex(32, block_bytes=block_bytes)
    index.add(ids[:1000], x[:1000])
    index.add(ids[1000:], x[1000:])  # grows the storage
    q = _unit(rng.standard_normal((300, 32)))
    scores, got = index.search(q, 10)
    ref_scores, ref_ids = _brute(q, x, ids, 10)
    assert scores.dtype == np.float32 and got.dtype == np.int64
    np.testing.assert_array_equal(got, ref_ids)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-6)


def test_exact_ties_are_broken_by_id() -> None:
    # entries ±1/4 on 16 of 32 dims: every dot product is a multiple of 1/16, exact in float32
    # whatever the summation order, so equal scores are truly equal and there are many of them
    rng = np.random.default_rng(1)
    x = np.zeros((2000, 32), np.float32)
    for row in x:
        row[rng.choice(32, 16, replace=False)] = rng.choice([-0.25, 0.25], 16)
    ids = rng.permutation(2000) * 7
    index = ExactIndex(32, block_bytes=4096)
    index.add(ids, x)
    scores, got = index.search(x[:100], 25)
    ref_scores, ref_ids = _brute(x[:100], x, ids, 25)
    np.testing.assert_array_equal(got, ref_ids)
    np.testing.assert_array_equal(scores, ref_scores)


def test_exact_pads_when_k_exceeds_size_and_when_empty() -> None:
    rng = np.random.default_rng(2)
    index = ExactIndex(8)
    q = _unit(rng.standard_normal((3, 8)))
    scores, ids = index.search(q, 4)
    assert scores.shape == ids.shape == (3, 4)
    assert np.isneginf(scores).all() and (ids == -1).all()
    x = _unit(rng.standard_normal((2, 8)))
    index.add(np.array([5, 9]), x)
    scores, ids = index.search(q, 4)
    assert np.isfinite(scores[:, :2]).all() and np.isneginf(scores[:, 2:]).all()
    assert set(ids[0, :2]) == {5, 9} and (ids[:, 2:] == -1).all()
    assert index.search(np.empty((0, 8), np.float32), 4)[0].shape == (0, 4)


def test_exact_remove_really_removes() -> None:
    rng = np.random.default_rng(3)
    x = _unit(rng.standard_normal((1500, 16)))
    ids = np.arange(1500) * 2
    index = ExactIndex(16, block_bytes=4096)
    index.add(ids, x)
    gone = rng.choice(ids, 400, replace=False)
    index.remove(gone)
    keep = ~np.isin(ids, gone)
    assert len(index) == keep.sum()
    # query with the removed vectors themselves: they must not come back, the rest is exact
    q = x[np.isin(ids, gone)][:100]
    scores, got = index.search(q, 10)
    assert not np.isin(got, gone).any()
    ref_scores, ref_ids = _brute(q, x[keep], ids[keep], 10)
    np.testing.assert_array_equal(got, ref_ids)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-6)
    with pytest.raises(ValueError, match="not in the index"):
        index.remove(gone[:1])
    index.remove(gone[:1], missing_ok=True)  # idempotent when asked
    index.add(gone[:1], x[ids == gone[0]])  # a removed id may come back
    assert index.search(x[ids == gone[0]], 1)[1][0, 0] == gone[0]
    index.remove(ids[keep])
    index.remove(gone[:1])
    assert len(index) == 0 and (index.search(q, 3)[1] == -1).all()


# -- HNSWIndex ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def face_gallery() -> tuple[np.ndarray, np.ndarray, np.ndarray, HNSWIndex]:
    """20k faces of 4k identities in HNSW, and 500 fresh faces of enrolled identities as queries."""
    rng = np.random.default_rng(4)
    x, _ = _faces(rng, 4000, 5)
    ids = np.arange(len(x), dtype=np.int64) + 100
    index = HNSWIndex(128)
    index.add(ids, x)
    src = rng.choice(len(x), 500, replace=False)
    q = _unit(x[src] + rng.normal(0, np.sqrt(0.047 / 128), (500, 128)))
    return x, ids, q, index


def test_hnsw_recall_on_face_like_data(face_gallery) -> None:
    x, ids, q, index = face_gallery
    exact = ExactIndex(128)
    exact.add(ids, x)
    _, want = exact.search(q, 1)
    _, got = index.search(q, 1)
    recall = (got[:, 0] == want[:, 0]).mean()
    assert recall >= 0.99, f"recall@1 {recall:.3f} with the default efSearch"


def test_hnsw_scores_are_exact_inner_products(face_gallery) -> None:
    x, _, q, index = face_gallery
    scores, got = index.search(q[:50], 10)
    assert (got >= 0).all() and (np.diff(scores, axis=1) <= 0).all()
    exact = q[:50, None, :] @ x[got - 100].transpose(0, 2, 1)
    np.testing.assert_allclose(scores, exact[:, 0, :], rtol=0, atol=1e-6)


def test_hnsw_removed_ids_never_returned() -> None:
    rng = np.random.default_rng(5)
    x, labels = _faces(rng, 600, 5)
    ids = np.arange(len(x), dtype=np.int64)
    index = HNSWIndex(128)
    index.add(ids, x)
    gone = ids[labels < 150]  # every face of 150 people, queried with their own faces
    index.remove(gone)
    assert len(index) == len(x) - len(gone) and index.tombstones == len(gone)
    assert index.tombstone_fraction == pytest.approx(0.25) and not index.needs_rebuild
    _, got = index.search(x[labels < 150], 20)
    assert not np.isin(got, gone).any()
    assert (got >= 0).all(), "tombstones must not starve the results"
    exact = ExactIndex(128)
    exact.add(ids[labels >= 150], x[labels >= 150])
    assert (got[:, 0] == exact.search(x[labels < 150], 1)[1][:, 0]).mean() >= 0.99
    with pytest.raises(ValueError, match="not in the index"):
        index.remove(gone[:3])
    index.add(gone[:1], x[:1])  # a removed id may come back as a new node
    assert index.search(x[:1], 1)[1][0, 0] == gone[0]
    index.remove(ids[(labels >= 150) & (labels < 400)])
    assert index.needs_rebuild


def test_hnsw_pads_when_k_exceeds_size() -> None:
    rng = np.random.default_rng(6)
    index = HNSWIndex(16)
    q = _unit(rng.standard_normal((2, 16)))
    assert (index.search(q, 3)[1] == -1).all()
    index.add(np.array([1, 2, 3]), _unit(rng.standard_normal((3, 16))))
    index.remove(np.array([2]))
    scores, ids = index.search(q, 5)
    assert {*ids[0, :2]} == {1, 3} and (ids[:, 2:] == -1).all() and np.isneginf(scores[:, 2:]).all()


# -- IVFPQIndex -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ivfpq_gallery() -> tuple[np.ndarray, np.ndarray, np.ndarray, IVFPQIndex]:
    """6k faces of 1.2k identities, trained after the first 2k (64 lists), and 300 fresh queries."""
    rng = np.random.default_rng(8)
    x, _ = _faces(rng, 1200, 5)
    ids = np.arange(len(x), dtype=np.int64) * 3 + 1
    index = IVFPQIndex(128, nlist=64, min_train=2000)
    index.add(ids[:1500], x[:1500])
    assert not index.trained  # exact until min_train vectors are stored
    index.add(ids[1500:], x[1500:])
    assert index.trained and len(index) == len(x)
    src = rng.choice(len(x), 300, replace=False)
    q = _unit(x[src] + rng.normal(0, np.sqrt(0.047 / 128), (300, 128)))
    return x, ids, q, index


def test_ivfpq_recall_and_exact_scores(ivfpq_gallery) -> None:
    x, ids, q, index = ivfpq_gallery
    exact = ExactIndex(128)
    exact.add(ids, x)
    _, want = exact.search(q, 10)
    index.nprobe = 64  # every list: only the product quantizer approximates, and re-ranking repairs it
    scores, got = index.search(q, 10)
    assert (got[:, 0] == want[:, 0]).mean() >= 0.99
    np.testing.assert_allclose(scores, np.einsum("md,mkd->mk", q, x[(got - 1) // 3]), rtol=0, atol=1e-6)
    assert (np.diff(scores, axis=1) <= 0).all()
    index.nprobe = None  # the default fraction of the lists
    _, got = index.search(q, 1)
    assert (got[:, 0] == want[:, 0]).mean() >= 0.9


def test_ivfpq_before_training_is_exact_with_ties_by_id() -> None:
    rng = np.random.default_rng(9)
    x = _unit(rng.standard_normal((500, 32)))
    x[10] = x[3]  # equal vectors: ordered by ascending id
    ids = rng.permutation(10**5)[:500]
    index = IVFPQIndex(32)
    index.add(ids, x)
    assert not index.trained
    scores, got = index.search(x[:20], 7)
    ref_scores, ref_ids = _brute(x[:20], x, ids, 7)
    np.testing.assert_array_equal(got, ref_ids)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-6)
    assert got[3, :2].tolist() == sorted([ids[3], ids[10]])


def test_ivfpq_removed_ids_never_returned_and_padding(tmp_path) -> None:
    rng = np.random.default_rng(10)
    x, labels = _faces(rng, 600, 5)
    ids = np.arange(len(x), dtype=np.int64)
    path = tmp_path / "copy.f32"
    index = IVFPQIndex(128, nlist=32, min_train=1000, path=path)  # the re-rank copy is a memory-mapped file
    for s in range(0, len(x), 700):  # grows the file several times
        index.add(ids[s : s + 700], x[s : s + 700])
    assert index.trained and path.stat().st_size >= x.nbytes
    gone = ids[labels < 150]
    index.remove(gone)
    assert len(index) == len(x) - len(gone)
    _, got = index.search(x[labels < 150], 20)
    assert not np.isin(got, gone).any() and (got >= 0).all()
    with pytest.raises(ValueError, match="not in the index"):
        index.remove(gone[:3])
    index.add(gone[:1], x[:1])  # a removed id may come back
    assert index.search(x[:1], 1)[1][0, 0] == gone[0]
    small = IVFPQIndex(16)
    q = _unit(rng.standard_normal((2, 16)))
    assert (small.search(q, 3)[1] == -1).all()
    small.add(np.array([1, 2, 3]), _unit(rng.standard_normal((3, 16))))
    small.remove(np.array([2]))
    scores, got = small.search(q, 5)
    assert {*got[0, :2]} == {1, 3} and (got[:, 2:] == -1).all() and np.isneginf(scores[:, 2:]).all()


def test_ivfpq_float16_copy_moves_scores_by_little(ivfpq_gallery) -> None:
    x, ids, q, _ = ivfpq_gallery
    index = IVFPQIndex(128, nlist=64, min_train=2000, store_dtype=np.float16)
    index.add(ids, x)
    index.nprobe = 64
    scores, got = index.search(q[:50], 5)
    np.testing.assert_allclose(scores, np.einsum("md,mkd->mk", q[:50], x[(got - 1) // 3]), rtol=0, atol=2e-3)
    with pytest.raises(ValueError, match="store_dtype"):
        IVFPQIndex(8, store_dtype=np.float64)


# -- create_index and input checks ----------------------------------------------------------------


def test_create_index_picks_by_size() -> None:
    assert isinstance(create_index(1000, 128), ExactIndex)
    assert isinstance(create_index(AUTO_HNSW_THRESHOLD - 1, 128), ExactIndex)
    assert isinstance(create_index(AUTO_HNSW_THRESHOLD, 128), HNSWIndex)
    assert isinstance(create_index(10, 128, kind="hnsw"), HNSWIndex)
    assert isinstance(create_index(10**7, 128, kind="exact"), ExactIndex)
    assert isinstance(create_index(10**7, 128, kind="ivfpq"), IVFPQIndex)
    for index in (create_index(0, 64), create_index(0, 64, kind="hnsw"), create_index(0, 64, kind="ivfpq")):
        assert isinstance(index, VectorIndex) and index.dim == 64 and len(index) == 0
    with pytest.raises(ValueError, match="kind must be"):
        create_index(10, 128, kind="ivf")
    with pytest.raises(ValueError, match="n_expected"):
        create_index(-1, 128)


def _bad_adds(rng: np.random.Generator) -> list[tuple[str, np.ndarray, np.ndarray]]:
    good = _unit(rng.standard_normal((3, 8)))
    nan = good.copy()
    nan[1, 2] = np.nan
    return [
        ("shape", np.arange(3), _unit(rng.standard_normal((3, 7)))),
        ("NaN", np.arange(3), nan),
        ("integers", np.array([0.0, 1.0, 2.0]), good),
        ("integers", np.array([True, False, True]), good),
        ("duplicate ids", np.array([4, 4, 5]), good),
        ("already in the index", np.array([7, 8, 100]), good),
        ("3 ids for 2 vectors", np.arange(3), good[:2]),
        ("L2-normalised", np.arange(3), good * 2),
        ("floating point", np.arange(3), np.ones((3, 8), np.int64)),
        ("-1 marks", np.array([-1, 1, 2]), good),
    ]


@pytest.mark.parametrize("kind", ["exact", "hnsw", "ivfpq"])
def test_bad_input_is_rejected_and_changes_nothing(kind: str) -> None:
    rng = np.random.default_rng(7)
    index = create_index(10, 8, kind=kind)
    index.add(np.array([100]), _unit(rng.standard_normal((1, 8))))
    for message, ids, vectors in _bad_adds(rng):
        with pytest.raises(ValueError, match=message) as info:
            index.add(ids, vectors)
        assert isinstance(info.value, FaceAtlasError)
        assert len(index) == 1, f"a rejected add ({message}) changed the index"
    q = _unit(rng.standard_normal((1, 8)))
    with pytest.raises(ValueError, match=r"\[None, :\]"):
        index.search(q[0], 1)
    with pytest.raises(ValueError, match="k must be"):
        index.search(q, 0)
    with pytest.raises(ValueError, match="NaN"):
        index.search(np.full((1, 8), np.nan, np.float32), 1)
    with pytest.raises(ValueError, match="integers"):
        index.remove(np.array([100.0]))
    assert index.search(q, 1)[1][0, 0] == 100
