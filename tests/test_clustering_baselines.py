"""The baseline clusterers: dlib's Chinese Whispers re-implemented, and the BASELINES recipes."""

from __future__ import annotations

import numpy as np
import pytest

from faceatlas.clustering.baselines import BASELINES, ChineseWhispers, euclidean_edges


def blobs(seed: int = 0, per_blob: int = 20, dim: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Two tight blobs 5 apart (within-blob distances ~0.2, far below 0.5)."""
    rng = np.random.default_rng(seed)
    truth = np.repeat([0, 1], per_blob)
    centers = np.zeros((2, dim))
    centers[1, 0] = 5.0
    return centers[truth] + rng.normal(scale=0.05, size=(2 * per_blob, dim)), truth


def chain(n: int, step: float = 0.4) -> np.ndarray:
    """Points on a line, ``step`` apart: at threshold 0.5 only consecutive points are joined."""
    x = np.zeros((n, 3))
    x[:, 0] = step * np.arange(n)
    return x


def naive_whispers(x: np.ndarray, threshold: float, iterations: int, seed: int) -> np.ndarray:
    """dlib's loop as written: every pick recounts its votes (no skipping); same random picks."""
    n = len(x)
    dist = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=2))
    adjacent = dist < np.float32(threshold)  # the diagonal too: dlib's self-edges
    labels = np.arange(n)
    for node in np.random.default_rng(seed).integers(0, n, size=n * iterations):
        values, counts = np.unique(labels[adjacent[node]], return_counts=True)
        labels[node] = values[np.argmax(counts)]  # first maximum: the smallest label
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    return np.argsort(np.argsort(first))[inverse]


def test_two_blobs_two_clusters():
    x, truth = blobs()
    model = ChineseWhispers().fit(x)
    assert model.n_clusters_ == 2
    assert np.array_equal(model.labels_, truth)  # renumbered by first appearance: row 0 is 0
    assert model.n_edges_ == 2 * (20 * 19 // 2)


def test_labels_in_order_of_first_appearance():
    x, truth = blobs()
    model = ChineseWhispers().fit(x[::-1])
    assert np.array_equal(model.labels_, 1 - truth[::-1])


def test_chain_joins_neighbours_only_and_clusters_are_runs():
    x = chain(40)
    indptr, indices = euclidean_edges(x, 0.5)
    assert np.array_equal(np.diff(indptr), [1] + [2] * 38 + [1])
    assert indices[:3].tolist() == [1, 0, 2]
    labels = ChineseWhispers(0.5).fit(x).labels_
    # a label only spreads to a neighbour, so each cluster is one contiguous stretch of the chain
    changes = np.count_nonzero(np.diff(labels))
    assert changes == len(np.unique(labels)) - 1


def test_two_points_within_threshold_share_a_label():
    assert ChineseWhispers().fit(chain(2)).labels_.tolist() == [0, 0]
    assert ChineseWhispers().fit(chain(2, step=0.6)).labels_.tolist() == [0, 1]


def test_skipping_gives_exactly_the_full_loop():
    rng = np.random.default_rng(3)
    x = rng.normal(scale=0.3, size=(60, 4))  # one tangled component: many ties and changes
    for seed in range(4):
        got = ChineseWhispers(0.5, iterations=20, seed=seed).fit(x).labels_
        assert np.array_equal(got, naive_whispers(x, 0.5, 20, seed))


def test_deterministic_by_seed():
    x = chain(60)
    runs = {seed: ChineseWhispers(seed=seed).fit(x).labels_ for seed in range(6)}
    assert np.array_equal(runs[0], ChineseWhispers(seed=0).fit(x).labels_)
    assert any(not np.array_equal(runs[0], other) for other in runs.values())


def test_zero_iterations_keeps_every_face_apart():
    x, _ = blobs()
    assert ChineseWhispers(iterations=0).fit(x).labels_.tolist() == list(range(len(x)))


def test_empty_and_single_row():
    empty = ChineseWhispers().fit(np.zeros((0, 128)))
    assert empty.labels_.shape == (0,) and empty.n_clusters_ == 0
    one = ChineseWhispers().fit(np.ones((1, 128)))
    assert one.labels_.tolist() == [0] and one.n_clusters_ == 1


def test_threshold_is_strict_and_a_c_float():
    at = np.array([[0.0, 0.0], [0.5, 0.0]])
    assert ChineseWhispers(0.5).fit(at).n_clusters_ == 2  # distance == threshold: no edge
    # dlib takes the threshold as a C float: float32(0.6) > 0.6, so a pair at 0.6 is joined
    assert ChineseWhispers(0.6).fit(np.array([[0.0, 0.0], [0.6, 0.0]])).n_clusters_ == 1


@pytest.mark.parametrize(
    ("x", "params", "message"),
    [
        (np.zeros(5), {}, "shape"),
        (np.zeros((3, 2, 2)), {}, "shape"),
        (np.array([["a", "b"]]), {}, "numbers"),
        (np.array([[0.0, np.nan]]), {}, "NaN"),
        (np.zeros((2, 2)), {"threshold": 0}, "threshold"),
        (np.zeros((2, 2)), {"threshold": -0.5}, "threshold"),
        (np.zeros((2, 2)), {"iterations": -1}, "iterations"),
        (np.zeros((2, 2)), {"iterations": 1.5}, "iterations"),
    ],
)
def test_bad_input(x, params, message):
    with pytest.raises(ValueError, match=message):
        ChineseWhispers(**params).fit(x)


def test_edges_match_brute_force():
    rng = np.random.default_rng(5)
    x = rng.normal(scale=0.35, size=(150, 6))
    indptr, indices = euclidean_edges(x, 0.7)
    dist = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=2))
    want = dist < 0.7
    np.fill_diagonal(want, False)
    got = np.zeros_like(want)
    for i in range(len(x)):
        got[i, indices[indptr[i] : indptr[i + 1]]] = True
    assert np.array_equal(got, want)
    assert all(np.all(np.diff(indices[indptr[i] : indptr[i + 1]]) > 0) for i in range(len(x)))


def test_same_labels_as_dlib_where_the_outcome_is_fixed():
    dlib = pytest.importorskip("dlib")
    rng = np.random.default_rng(7)
    centers = rng.normal(scale=3.0, size=(4, 8))
    x = centers[rng.integers(0, 4, 30)] + rng.normal(scale=0.03, size=(30, 8))  # four far cliques
    ours = ChineseWhispers(0.5).fit(x).labels_
    theirs = dlib.chinese_whispers_clustering([dlib.vector(row.tolist()) for row in x], 0.5)
    assert ours.tolist() == list(theirs)


def test_baselines_are_fresh_estimators_that_split_two_blobs():
    x, truth = blobs(per_blob=20)
    assert set(BASELINES) == {"chinese_whispers", "dbscan", "hdbscan", "agglomerative"}
    for name, factory in BASELINES.items():
        model = factory()
        assert model is not factory()
        labels = model.fit(x).labels_
        assert len(np.unique(labels[truth == 0])) == 1 and len(np.unique(labels[truth == 1])) == 1, name
        assert labels[0] != labels[-1] and labels[0] >= 0, name
