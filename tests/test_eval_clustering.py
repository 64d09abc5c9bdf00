"""Tests for faceatlas.eval.clustering: hand-computed cases, brute-force references, readers, sheets."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import normalized_mutual_info_score

from faceatlas.errors import FaceAtlasError
from faceatlas.eval.clustering import (
    SHEET_PAD,
    SHEET_TITLE_HEIGHT,
    LabeledImage,
    baseline_cluster,
    clustering_metrics,
    contact_sheet,
    mixed_clusters,
    read_identity_csv,
    read_identity_folders,
)

# --- brute-force references ----------------------------------------------------


def brute_pairwise(true: list, pred: list) -> tuple[float, float]:
    """Precision and recall over all unordered pairs, by enumeration (pred None = own singleton)."""
    pred = [("single", i) if p is None else p for i, p in enumerate(pred)]
    tp = fp = fn = 0
    for i, j in itertools.combinations(range(len(true)), 2):
        same_true, same_pred = true[i] == true[j], pred[i] == pred[j]
        tp += same_true and same_pred
        fp += same_pred and not same_true
        fn += same_true and not same_pred
    return (tp / (tp + fp) if tp + fp else 1.0), (tp / (tp + fn) if tp + fn else 1.0)


def brute_bcubed(true: list, pred: list) -> tuple[float, float]:
    """Per-item BCubed precision and recall, averaged (pred None = own singleton)."""
    pred = [("single", i) if p is None else p for i, p in enumerate(pred)]
    n = len(true)
    precisions, recalls = [], []
    for i in range(n):
        cluster = [j for j in range(n) if pred[j] == pred[i]]
        identity = [j for j in range(n) if true[j] == true[i]]
        both = [j for j in cluster if true[j] == true[i]]
        precisions.append(len(both) / len(cluster))
        recalls.append(len(both) / len(identity))
    return float(np.mean(precisions)), float(np.mean(recalls))


# --- metrics -------------------------------------------------------------------


def test_hand_computed_case():
    # true [a,a,b,b], pred [1,1,1,2]: clusters {0,1,2} and {3}.
    # pairwise: predicted pairs (0,1) ok, (0,2) wrong, (1,2) wrong -> P = 1/3;
    #           true pairs (0,1) found, (2,3) split -> R = 1/2; F1 = 2*(1/3)*(1/2)/(1/3+1/2) = 2/5.
    # BCubed precision per item: 2/3, 2/3, 1/3, 1 -> mean 2/3;
    #        recall per item:    1,   1,   1/2, 1/2 -> mean 3/4; F1 = 2*(2/3)*(3/4)/(2/3+3/4) = 12/17.
    r = clustering_metrics(["a", "a", "b", "b"], [1, 1, 1, 2])
    assert r.pairwise_precision == pytest.approx(1 / 3)
    assert r.pairwise_recall == pytest.approx(1 / 2)
    assert r.pairwise_f1 == pytest.approx(2 / 5)
    assert r.bcubed_precision == pytest.approx(2 / 3)
    assert r.bcubed_recall == pytest.approx(3 / 4)
    assert r.bcubed_f1 == pytest.approx(12 / 17)
    assert r.singleton_share == pytest.approx(1 / 4)
    assert (r.n_items, r.n_identities, r.n_clusters, r.n_unclustered) == (4, 2, 2, 0)
    assert r.nmi == pytest.approx(normalized_mutual_info_score([0, 0, 1, 1], [1, 1, 1, 2]))


def test_perfect_and_all_singletons():
    perfect = clustering_metrics(["a", "a", "b"], ["x", "x", "y"])
    assert perfect.pairwise_f1 == perfect.bcubed_f1 == pytest.approx(1.0)
    assert perfect.nmi == pytest.approx(1.0)
    # all singletons: nothing merged (precision 1 by convention), no same-person pair found
    split = clustering_metrics(["a", "a", "b"], [0, 1, 2])
    assert (split.pairwise_precision, split.pairwise_recall, split.pairwise_f1) == (1.0, 0.0, 0.0)
    assert split.bcubed_precision == 1.0 and split.bcubed_recall == pytest.approx((1 / 2 + 1 / 2 + 1) / 3)
    assert split.singleton_share == 1.0


@pytest.mark.parametrize("seed", range(6))
def test_matches_brute_force_on_random_labelings(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    true = [f"id{k}" for k in rng.integers(0, rng.integers(1, 10), n)]
    pred = [int(k) for k in rng.integers(0, rng.integers(1, 12), n)]
    if seed % 2:  # some items not clustered
        pred = [None if rng.random() < 0.2 else p for p in pred]
    r = clustering_metrics(true, pred)
    bp, br = brute_pairwise(true, pred)
    cp, cr = brute_bcubed(true, pred)
    assert (r.pairwise_precision, r.pairwise_recall) == pytest.approx((bp, br))
    assert (r.bcubed_precision, r.bcubed_recall) == pytest.approx((cp, cr))
    own = [("single", i) if p is None else p for i, p in enumerate(pred)]
    sizes = {c: own.count(c) for c in own}
    assert r.singleton_share == pytest.approx(np.mean([sizes[c] == 1 for c in own]))
    assert r.n_clusters == len(sizes)
    assert r.nmi == pytest.approx(normalized_mutual_info_score(true, [str(c) for c in own]))


def test_unclustered_items_are_singletons_never_dropped():
    # pred [0, 0, None]: clusters {0,1} and {2}. Pairs: (0,1) found; (0,2), (1,2) missed.
    r = clustering_metrics(["a", "a", "a"], [0, 0, None])
    assert r.pairwise_precision == 1.0 and r.pairwise_recall == pytest.approx(1 / 3)
    assert r.n_unclustered == 1 and r.n_items == 3 and r.n_clusters == 2
    assert r.singleton_share == pytest.approx(1 / 3)
    assert r.notes
    # -1 (numpy ints too) means the same as None, and two unclustered items are never merged
    same = clustering_metrics(["a", "a", "a"], np.array([0, 0, -1]))
    assert same.to_dict() == r.to_dict()
    apart = clustering_metrics(["a", "a"], [None, -1])
    assert (apart.pairwise_recall, apart.n_clusters, apart.n_unclustered) == (0.0, 2, 2)


def test_metric_input_errors():
    with pytest.raises(ValueError, match="2 true labels but 1"):
        clustering_metrics(["a", "b"], [0])
    with pytest.raises(ValueError, match="empty"):
        clustering_metrics([], [])


def test_report_table_and_dict():
    r = clustering_metrics(["a", "a", "b", "b"], [1, 1, 1, None])
    text = r.table()
    assert "BCubed" in text and "NMI" in text and "not clustered" in text
    d = r.to_dict()
    assert d["n_unclustered"] == 1 and set(d) >= {"pairwise_f1", "bcubed_f1", "nmi", "singleton_share"}


# --- baseline clusterer --------------------------------------------------------


def test_baseline_cluster_separates_clear_clusters():
    rng = np.random.default_rng(0)
    centres = np.linalg.qr(rng.normal(size=(16, 4)))[0].T  # 4 orthonormal directions
    true = np.repeat(np.arange(4), 10)
    x = centres[true] + 0.05 * rng.normal(size=(40, 16))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    shuffle = rng.permutation(40)
    pred = baseline_cluster(x[shuffle], threshold=0.5)
    r = clustering_metrics(true[shuffle].tolist(), pred.tolist())
    assert r.pairwise_f1 == 1.0 and r.n_clusters == 4
    assert pred[0] == 0 and set(pred.tolist()) == {0, 1, 2, 3}  # numbered by first item
    # a threshold above every similarity leaves everyone alone
    assert len(set(baseline_cluster(x, threshold=0.9999).tolist())) == 40


def test_baseline_cluster_edge_cases():
    assert baseline_cluster(np.zeros((0, 8), np.float32), 0.5).shape == (0,)
    assert baseline_cluster(np.ones((1, 8), np.float32), 0.5).tolist() == [0]
    with pytest.raises(ValueError, match="NaN"):
        baseline_cluster(np.full((3, 4), np.nan), 0.5)
    with pytest.raises(ValueError, match="zero"):
        baseline_cluster(np.zeros((3, 4)), 0.5)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        baseline_cluster(np.eye(3), 1.5)


# --- mixed clusters and contact sheet ----------------------------------------------


def test_mixed_clusters_largest_first():
    true = ["a", "a", "b", "c", "c", "c", "d", "d", "e"]
    pred = [0, 0, 0, 1, 1, 1, 2, 2, None]  # only 0 = {a, a, b} is mixed; None is skipped
    assert [c.label for c in mixed_clusters(true, pred, k=5)] == [0]
    pred = [0, 0, 0, 1, 1, 2, 2, 2, 2]  # 2 = {c, d, d, e} is larger than 0 = {a, a, b}
    mixed = mixed_clusters(true, pred, k=5)
    assert [c.label for c in mixed] == [2, 0]
    assert mixed[0].indices.tolist() == [5, 6, 7, 8] and mixed[0].identities == {"d": 2, "c": 1, "e": 1}
    assert "4 faces, 3 identities" in mixed[0].title()
    assert len(mixed_clusters(true, pred, k=1)) == 1


def test_contact_sheet_size(tmp_path: Path):
    rng = np.random.default_rng(0)

    def crop(h: int, w: int) -> np.ndarray:
        return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)

    rows = [[crop(50, 40) for _ in range(15)], [crop(120, 80), crop(30, 30)]]
    out = contact_sheet(rows, ["cluster 1", "cluster 2"], tmp_path / "sheet" / "mixed.png", thumb=32, max_per_row=12)
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert image.size == (SHEET_PAD + 12 * (32 + SHEET_PAD), SHEET_PAD + 2 * (SHEET_TITLE_HEIGHT + 32 + SHEET_PAD))
    empty = contact_sheet([], [], tmp_path / "empty.png")
    assert empty.exists()
    with pytest.raises(ValueError, match="uint8"):
        contact_sheet([[np.zeros((4, 4), np.float32)]], ["x"], tmp_path / "bad.png")


# --- readers -------------------------------------------------------------------


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not decoded here")
    return path


def test_read_identity_folders(tmp_path: Path):
    _touch(tmp_path / "bob" / "2.jpg")
    _touch(tmp_path / "bob" / "1.PNG")
    _touch(tmp_path / "bob" / "notes.txt")
    _touch(tmp_path / "alice" / "sub" / "x.jpeg")
    _touch(tmp_path / ".hidden" / "y.jpg")
    _touch(tmp_path / "loose.jpg")
    (tmp_path / "empty").mkdir()
    items = read_identity_folders(tmp_path)
    assert items == [
        LabeledImage(tmp_path / "alice" / "sub" / "x.jpeg", "alice", None),
        LabeledImage(tmp_path / "bob" / "1.PNG", "bob", None),
        LabeledImage(tmp_path / "bob" / "2.jpg", "bob", None),
    ]


def test_read_identity_folders_errors(tmp_path: Path):
    with pytest.raises(FaceAtlasError, match="missing"):
        read_identity_folders(tmp_path / "nope")
    _touch(tmp_path / "loose.jpg")
    with pytest.raises(FaceAtlasError, match="subfolder"):
        read_identity_folders(tmp_path)


def test_read_identity_csv(tmp_path: Path):
    csv_file = tmp_path / "data" / "labels.csv"
    csv_file.parent.mkdir()
    csv_file.write_text("path,label,group\nimg/a.jpg,alice,party\n\n/abs/b.jpg, bob ,\nc.jpg,carol\n")
    items = read_identity_csv(csv_file)
    assert items == [
        LabeledImage(tmp_path / "data" / "img" / "a.jpg", "alice", "party"),
        LabeledImage(Path("/abs/b.jpg"), "bob", None),
        LabeledImage(tmp_path / "data" / "c.jpg", "carol", None),
    ]
    no_header = tmp_path / "plain.csv"
    no_header.write_text("a.jpg,alice\n")
    assert read_identity_csv(no_header) == [LabeledImage(tmp_path / "a.jpg", "alice", None)]


def test_read_identity_csv_errors(tmp_path: Path):
    empty = tmp_path / "empty.csv"
    empty.write_text("path,label\n\n")
    with pytest.raises(FaceAtlasError, match="lists no images"):
        read_identity_csv(empty)
    wide = tmp_path / "wide.csv"
    wide.write_text("path,label\na.jpg,alice\nb.jpg,bob,g,extra\n")
    with pytest.raises(FaceAtlasError, match="row 3 has 4 columns"):
        read_identity_csv(wide)
    narrow = tmp_path / "narrow.csv"
    narrow.write_text("a.jpg\n")
    with pytest.raises(FaceAtlasError, match="row 1 has 1 columns"):
        read_identity_csv(narrow)
    unlabeled = tmp_path / "unlabeled.csv"
    unlabeled.write_text("a.jpg,\n")
    with pytest.raises(FaceAtlasError, match="row 1 has an empty label"):
        read_identity_csv(unlabeled)
