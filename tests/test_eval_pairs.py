import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import shared_data  # tests/ is on sys.path under pytest

from faceatlas.errors import FaceAtlasError
from faceatlas.eval.pairs import Pair, read_csv_pairs, read_lfw_pairs, score_pairs


def test_lfw_view2_header_sets_folds(tmp_path):
    lines = ["2\t2", "A\t1\t2", "B\t1\t3", "A\t1\tB\t2", "C\t4\tD\t1", "E\t1\t2", "F\t2\t3", "E\t1\tF\t1", "G\t1\tH\t1"]
    (tmp_path / "pairs.txt").write_text("\n".join(lines) + "\n")
    pairs = read_lfw_pairs(tmp_path / "pairs.txt", tmp_path)
    assert [p.fold for p in pairs] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert [p.same for p in pairs] == [True, True, False, False] * 2
    assert pairs[0].a == tmp_path / "A" / "A_0001.jpg" and pairs[2].b == tmp_path / "B" / "B_0002.jpg"


def test_lfw_view1_without_header_balances_folds(tmp_path):
    lines = [f"P{i}\t1\t2" for i in range(20)] + [f"P{i}\t1\tQ{i}\t1" for i in range(20)]
    (tmp_path / "pairs.txt").write_text("\n".join(lines))
    pairs = read_lfw_pairs(tmp_path / "pairs.txt", tmp_path)
    for fold in range(10):
        in_fold = [p for p in pairs if p.fold == fold]
        assert sum(p.same for p in in_fold) == 2 and len(in_fold) == 4


def test_malformed_pairs_file_names_the_line(tmp_path):
    (tmp_path / "pairs.txt").write_text("A\t1\t2\nbroken line with five\n")
    with pytest.raises(FaceAtlasError, match="line 2"):
        read_lfw_pairs(tmp_path / "pairs.txt", tmp_path)


def test_csv_pairs(tmp_path):
    (tmp_path / "p.csv").write_text("path_a,path_b,same\na.jpg,b.jpg,1\na.jpg,c.jpg,false\n")
    pairs = read_csv_pairs(tmp_path / "p.csv")
    assert pairs == [Pair(tmp_path / "a.jpg", tmp_path / "b.jpg", True, 0), Pair(tmp_path / "a.jpg", tmp_path / "c.jpg", False, 0)]


def test_missing_faces_count_as_failures_not_dropped(tmp_path):
    e = np.array([1.0, 0.0])
    pairs = [Pair(tmp_path / "a", tmp_path / "b", True, 0), Pair(tmp_path / "a", tmp_path / "x", False, 0)]
    scores, failed = score_pairs(pairs, {tmp_path / "a": e, tmp_path / "b": e, tmp_path / "x": None})
    assert scores[0] == pytest.approx(1.0) and np.isneginf(scores[1]) and failed.tolist() == [False, True]


@pytest.mark.slow
def test_cli_eval_pairs_on_lfw_subset(tmp_path):
    root = shared_data("lfw_devtest")
    lines = (root / "pairs.txt").read_text().splitlines()
    subset = lines[:30] + lines[500:530]  # 30 same, 30 different
    (tmp_path / "pairs.txt").write_text("\n".join(subset))
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "faceatlas.cli", "eval", "pairs", str(tmp_path / "pairs.txt"), "--images", str(root / "images"), "--out", str(out)],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "result.json").read_text())["verification"]
    assert report["n_pairs"] == 60 and report["n_failed"] == 0
    assert report["accuracy_mean"] >= 0.9 and report["auc"] > 0.95
    assert (out / "verification.png").stat().st_size > 5000
    assert "accuracy" in result.stdout
