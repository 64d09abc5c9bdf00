"""Detection evaluation: hand-computed APs, the official WIDER code as a reference, and the formats."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_data
from scipy.io import loadmat, savemat

from faceatlas.errors import FaceAtlasError
from faceatlas.eval.detection import (
    DetectionSample,
    apply_wider_difficulty,
    evaluate_detections,
    plot_pr,
    read_json_annotations,
    read_wider_gt,
)

# --------------------------------------------------------------------------- the official code, transcribed
# widerface_evaluate/evaluation.py (wondervictor, as vendored by RetinaFace), the pure-Python
# bbox_overlaps of its Cython file, kept as close to the original as the test allows: boxes are
# x y w h, predictions x y w h score, sorted by score as the official pipeline expects.


def ref_bbox_overlaps(boxes, query_boxes):
    n_, k_ = boxes.shape[0], query_boxes.shape[0]
    overlaps = np.zeros((n_, k_), dtype=np.float64)
    for k in range(k_):
        box_area = (query_boxes[k, 2] - query_boxes[k, 0] + 1) * (query_boxes[k, 3] - query_boxes[k, 1] + 1)
        for n in range(n_):
            iw = min(boxes[n, 2], query_boxes[k, 2]) - max(boxes[n, 0], query_boxes[k, 0]) + 1
            if iw > 0:
                ih = min(boxes[n, 3], query_boxes[k, 3]) - max(boxes[n, 1], query_boxes[k, 1]) + 1
                if ih > 0:
                    ua = float((boxes[n, 2] - boxes[n, 0] + 1) * (boxes[n, 3] - boxes[n, 1] + 1) + box_area - iw * ih)
                    overlaps[n, k] = iw * ih / ua
    return overlaps


def ref_norm_score(preds):
    max_score, min_score = 0, 1
    for v in preds:
        if len(v) == 0:
            continue
        max_score = max(np.max(v[:, -1]), max_score)
        min_score = min(np.min(v[:, -1]), min_score)
    diff = max_score - min_score
    for v in preds:
        if len(v) == 0:
            continue
        v[:, -1] = (v[:, -1] - min_score) / diff


def ref_image_eval(pred, gt, ignore, iou_thresh):
    _pred, _gt = pred.copy(), gt.copy()
    pred_recall = np.zeros(_pred.shape[0])
    recall_list = np.zeros(_gt.shape[0])
    proposal_list = np.ones(_pred.shape[0])
    _pred[:, 2] = _pred[:, 2] + _pred[:, 0]
    _pred[:, 3] = _pred[:, 3] + _pred[:, 1]
    _gt[:, 2] = _gt[:, 2] + _gt[:, 0]
    _gt[:, 3] = _gt[:, 3] + _gt[:, 1]
    overlaps = ref_bbox_overlaps(_pred[:, :4], _gt)
    for h in range(_pred.shape[0]):
        gt_overlap = overlaps[h]
        max_overlap, max_idx = gt_overlap.max(), gt_overlap.argmax()
        if max_overlap >= iou_thresh:
            if ignore[max_idx] == 0:
                recall_list[max_idx] = -1
                proposal_list[h] = -1
            elif recall_list[max_idx] == 0:
                recall_list[max_idx] = 1
        r_keep_index = np.where(recall_list == 1)[0]
        pred_recall[h] = len(r_keep_index)
    return pred_recall, proposal_list


def ref_img_pr_info(thresh_num, pred_info, proposal_list, pred_recall):
    pr_info = np.zeros((thresh_num, 2)).astype("float")
    for t in range(thresh_num):
        thresh = 1 - (t + 1) / thresh_num
        r_index = np.where(pred_info[:, 4] >= thresh)[0]
        if len(r_index) == 0:
            pr_info[t, 0] = 0
            pr_info[t, 1] = 0
        else:
            r_index = r_index[-1]
            p_index = np.where(proposal_list[: r_index + 1] == 1)[0]
            pr_info[t, 0] = len(p_index)
            pr_info[t, 1] = pred_recall[r_index]
    return pr_info


def ref_dataset_pr_info(thresh_num, pr_curve, count_face):
    _pr_curve = np.zeros((thresh_num, 2))
    with np.errstate(divide="ignore", invalid="ignore"):  # the original warns on 0/0
        for i in range(thresh_num):
            _pr_curve[i, 0] = pr_curve[i, 1] / pr_curve[i, 0]
            _pr_curve[i, 1] = pr_curve[i, 1] / count_face
    return _pr_curve


def ref_voc_ap(rec, prec):
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = np.maximum(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])


def ref_evaluation(samples, predictions, setting, iou_thresh=0.5, thresh_num=1000):
    """The official ``evaluation`` loop for one setting; returns (ap, pr_curve)."""
    preds = []
    for p in predictions:
        if p is None:  # an unreadable image: no prediction file lines
            preds.append(np.zeros((0, 5)))
            continue
        b, s = p
        preds.append(np.column_stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1], s]).astype(float))
    ref_norm_score(preds)
    preds = [v[np.argsort(-v[:, 4], kind="stable")] for v in preds]  # detectors write them sorted
    count_face = 0
    pr_curve = np.zeros((thresh_num, 2)).astype("float")
    for sample, pred_info in zip(samples, preds):
        b = sample.boxes
        gt_boxes = np.column_stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]])
        keep_index = np.flatnonzero(sample.keep[setting]) + 1  # the .mat's 1-based column
        count_face += len(keep_index)
        if len(gt_boxes) == 0 or len(pred_info) == 0:
            continue
        ignore = np.zeros(gt_boxes.shape[0])
        if len(keep_index) != 0:
            ignore[keep_index - 1] = 1
        pred_recall, proposal_list = ref_image_eval(pred_info, gt_boxes, ignore, iou_thresh)
        pr_curve += ref_img_pr_info(thresh_num, pred_info, proposal_list, pred_recall)
    pr_curve = ref_dataset_pr_info(thresh_num, pr_curve, count_face)
    return ref_voc_ap(pr_curve[:, 1], pr_curve[:, 0]), pr_curve


# --------------------------------------------------------------------------- helpers


def sample(boxes, keep=None, name="img.jpg", **settings) -> DetectionSample:
    boxes = np.array(boxes, dtype=float).reshape(-1, 4)
    masks = {"all": np.ones(len(boxes), bool) if keep is None else np.array(keep, bool)}
    masks.update({k: np.array(v, bool) for k, v in settings.items()})
    return DetectionSample(Path(name), boxes, masks)


def pred(boxes, scores):
    return np.array(boxes, dtype=float).reshape(-1, 4), np.array(scores, dtype=float)


A, B, C = [0, 0, 40, 40], [100, 0, 140, 40], [200, 0, 240, 40]
FAR = [500, 500, 540, 540]


# --------------------------------------------------------------------------- hand-computed cases


def test_perfect_detections_score_ap_1():
    samples = [sample([A, B], name="1.jpg"), sample([C], name="2.jpg")]
    report = evaluate_detections(samples, [pred([A, B], [0.9, 0.8]), pred([C], [0.7])])
    s = report.settings["all"]
    assert s.ap == pytest.approx(1.0) and s.recall == 1.0 and s.faces == 3
    assert report.n_images == 2 and report.n_unreadable == 0 and report.n_detections == 3


def test_false_positive_ranked_above_true_positives():
    # scores 1, 0.5, 0 are already normalised (lo = min(1, 0) = 0, hi = max(0, 1) = 1).
    # thresholds > 0.5: only the FP      -> precision 0,   recall 0
    # thresholds in (0, 0.5]: FP + A     -> precision 1/2, recall 1/2
    # threshold 0: FP + A + B            -> precision 2/3, recall 1
    # the envelope lifts every precision to 2/3, so AP = 1/2 * 2/3 + 1/2 * 2/3 = 2/3.
    report = evaluate_detections([sample([A, B])], [pred([FAR, A, B], [1.0, 0.5, 0.0])])
    s = report.settings["all"]
    assert s.ap == pytest.approx(2 / 3, abs=1e-12)
    assert s.precision_curve[-1] == pytest.approx(2 / 3) and s.recall == 1.0
    assert s.precision_curve[0] == 0.0 and s.precision_curve[600] == 0.5


def test_detection_on_an_ignored_face_is_neither_tp_nor_fp():
    # B is ignored; its detection is the top one. Were it a FP, AP would be 1/2 (precision 1/2 at recall 1).
    samples = [sample([A, B], keep=[True, False])]
    report = evaluate_detections(samples, [pred([B, A], [1.0, 0.0])])
    s = report.settings["all"]
    assert s.faces == 1 and s.ap == pytest.approx(1.0) and s.precision_curve[-1] == 1.0
    assert math.isnan(s.precision_curve[0])  # nothing counted yet: 0/0, as in the official code


def test_duplicate_detection_counts_as_false_positive():
    report = evaluate_detections([sample([A])], [pred([A, A], [1.0, 0.0])])
    s = report.settings["all"]
    assert s.ap == pytest.approx(1.0)  # the duplicate comes after full recall
    assert s.precision_curve[-1] == 0.5  # ...but it is a false positive (official quirk)
    assert report.size_buckets[2].found == 1  # and the face is found once


def test_unreadable_image_is_counted_and_its_faces_missed():
    # one face found with precision 1 at recall 1/2, then nothing: AP = 1/2 * 1 = 0.5.
    samples = [sample([A], name="ok.jpg"), sample([B], name="bad.jpg")]
    report = evaluate_detections(samples, [pred([A], [0.9]), None])
    assert report.n_unreadable == 1 and report.n_detections == 1
    s = report.settings["all"]
    assert s.faces == 2 and s.recall == 0.5 and s.ap == pytest.approx(0.5)


def test_detections_on_faceless_images_are_skipped_unless_asked():
    samples = [sample([A], name="face.jpg"), sample([], name="empty.jpg")]
    preds = [pred([A], [0.5]), pred([FAR], [1.0])]
    official = evaluate_detections(samples, preds)
    assert official.settings["all"].ap == pytest.approx(1.0) and "not scored" in official.notes[0]
    strict = evaluate_detections(samples, preds, score_faceless_images=True)
    assert strict.settings["all"].ap == pytest.approx(0.5)  # the FP now ranks above the only TP


def test_equal_scores_are_one_operating_point():
    report = evaluate_detections([sample([A, B])], [pred([A, FAR], [1.0, 1.0])])
    s = report.settings["all"]
    # precision 1/2 at recall 1/2 at every threshold: AP = 1/2 * 1/2 (official: nan scores, AP 0)
    assert s.ap == pytest.approx(0.25) and s.precision_curve[0] == 0.5 and s.recall == 0.5
    assert any("equal" in n for n in report.notes)


def test_settings_are_scored_separately():
    samples = [sample([A, B, C], hard=[True, True, True], easy=[True, False, False])]
    report = evaluate_detections(samples, [pred([A, B], [0.9, 0.8])])
    assert report.settings["easy"].ap == pytest.approx(1.0) and report.settings["easy"].faces == 1
    assert report.settings["hard"].recall == pytest.approx(2 / 3)
    assert report.settings["hard"].ap == pytest.approx(2 / 3)


def test_size_buckets_use_longer_side_and_one_to_one_matching():
    faces = [[0, 0, 10, 6], [50, 0, 80, 10], [100, 0, 150, 40], [200, 0, 300, 20], [400, 0, 405, 5]]
    keep = [True, True, True, True, False]  # the ignored 5 px face is in no bucket
    preds = pred([faces[0], faces[2], faces[4]], [0.9, 0.8, 0.7])
    report = evaluate_detections([sample(faces, keep=keep)], [preds])
    assert [(b.faces, b.found) for b in report.size_buckets] == [(1, 1), (1, 0), (1, 1), (1, 0)]
    assert [b.label for b in report.size_buckets] == ["0-20 px", "20-40 px", "40-80 px", "80+ px"]
    custom = evaluate_detections([sample(faces, keep=keep)], [preds], size_buckets=[(0, 45), (45, 1000)])
    assert [(b.faces, b.found) for b in custom.size_buckets] == [(2, 1), (2, 1)]


def test_report_dict_table_and_plot(tmp_path):
    samples = [sample([A, B], easy=[True, False])]
    report = evaluate_detections(samples, [pred([A, FAR], [0.9, 0.3])])
    d = report.to_dict()
    text = json.dumps(d, allow_nan=False)  # nan/inf became None
    assert len(d["settings"]["all"]["pr_curve"]["precision"]) == 100 and len(text) < 20_000
    assert d["settings"]["all"]["pr_curve"]["score_threshold"][-1] == 0.0
    assert d["size_buckets"][-1]["max_size"] is None
    table = report.table()
    assert "easy" in table and "AP" in table and "80+ px" in table
    png = plot_pr(report, tmp_path / "pr.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mismatched_inputs_raise():
    with pytest.raises(FaceAtlasError, match="1 predictions for 2 samples"):
        evaluate_detections([sample([A]), sample([B])], [None])
    with pytest.raises(FaceAtlasError, match="2 predicted boxes but 1 scores"):
        evaluate_detections([sample([A])], [(np.zeros((2, 4)), np.zeros(1))])
    with pytest.raises(FaceAtlasError, match="settings"):
        evaluate_detections([sample([A]), sample([B], easy=[True])], [None, None])


# --------------------------------------------------------------------------- against the official code


def random_dataset(seed: int, n_images: int = 10):
    """Faces on a 1/4-pixel grid (exact in float), detections near faces, duplicates, strays, ties."""
    rng = np.random.default_rng(seed)
    score_range = [(0.0, 1.0), (0.3, 0.9), (-4.0, 6.0), (2.0, 10.0), (-5.0, -1.0)][seed % 5]
    samples, preds = [], []
    for i in range(n_images):
        n = int(rng.integers(0, 7))
        xy = rng.integers(0, 400, (n, 2)) / 4
        wh = rng.integers(4, 200, (n, 2)) / 4
        boxes = np.column_stack([xy, xy + wh])
        keep = {"all": rng.random(n) < 0.85, "easy": rng.random(n) < 0.5, "hard": rng.random(n) < 0.9}
        samples.append(DetectionSample(Path(f"{i}.jpg"), boxes, keep))
        if i == 3 or rng.random() < 0.1:  # unreadable images: no prediction at all
            preds.append(None)
            continue
        near = boxes[rng.integers(0, n, int(rng.integers(0, 2 * n + 1)))] if n else np.zeros((0, 4))
        near = near + rng.integers(-12, 13, near.shape) / 4
        stray_xy = rng.integers(0, 400, (int(rng.integers(0, 4)), 2)) / 4
        stray = np.column_stack([stray_xy, stray_xy + rng.integers(4, 100, stray_xy.shape) / 4])
        det = np.concatenate([near, stray])
        scores = rng.uniform(*score_range, len(det))
        if rng.random() < 0.3:
            scores = np.round(scores, 1)  # ties keep their input order in both
        preds.append((det, scores))
    return samples, preds


@pytest.mark.parametrize("seed", range(5))
def test_matches_official_evaluation(seed):
    samples, preds = random_dataset(seed)
    iou = [0.5, 0.3, 0.5, 0.7, 0.5][seed]
    report = evaluate_detections(samples, preds, iou_threshold=iou)
    for setting in ("all", "easy", "hard"):
        ap, curve = ref_evaluation(samples, preds, setting, iou_thresh=iou)
        ours = report.settings[setting]
        assert ours.ap == pytest.approx(ap, abs=1e-9)
        np.testing.assert_allclose(ours.precision_curve, curve[:, 0], atol=1e-12, equal_nan=True)
        np.testing.assert_allclose(ours.recall_curve, curve[:, 1], atol=1e-12)
        assert 0 <= ours.ap <= 1


# --------------------------------------------------------------------------- WIDER ground truth text

GT_TEXT = """\
0--Parade/0_Parade_marchingband_1_465.jpg
3
345 211 4 4 2 0 0 0 2 0
331 126 3 3 0 0 0 1 0 0
10 20 0 8 0 0 0 0 0 0
0--Parade/0_Parade_Parade_0_904.jpg
0
0 0 0 0 0 0 0 0 0 0
1--Handshaking/1_Handshaking_Handshaking_1_102.jpg
1
489 290 20 15 2 0 1 0 1 1
"""


def format_wider_gt(samples, images_dir: Path) -> str:
    """Write samples back in the official format (what the reader must invert)."""
    lines = []
    for s in samples:
        lines += [s.image.relative_to(images_dir).as_posix(), str(len(s.boxes))]
        for (x1, y1, x2, y2), attrs in zip(s.boxes, s.attributes):
            lines.append(" ".join(f"{v:g}" for v in (x1, y1, x2 - x1, y2 - y1, *attrs)))
        if len(s.boxes) == 0:
            lines.append(" ".join(["0"] * 10))
    return "\n".join(lines) + "\n"


def test_wider_gt_round_trip(tmp_path):
    gt = tmp_path / "gt.txt"
    gt.write_text(GT_TEXT)
    samples = read_wider_gt(gt, tmp_path / "images")
    assert [len(s.boxes) for s in samples] == [3, 0, 1]
    first = samples[0]
    assert first.image == tmp_path / "images/0--Parade/0_Parade_marchingband_1_465.jpg"
    np.testing.assert_array_equal(first.boxes[0], [345, 211, 349, 215])
    assert first.keep["all"].tolist() == [True, False, False]  # invalid; zero width
    assert first.boxes.dtype == np.float64 and first.attributes.shape == (3, 6)
    assert samples[1].boxes.shape == (0, 4) and samples[1].keep["all"].shape == (0,)
    assert format_wider_gt(samples, tmp_path / "images") == GT_TEXT


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("a/b.jpg\nthree\n1 2 3 4 0 0 0 0 0 0\n", "line 2 .*number of faces"),
        ("a/b.jpg\n2\n1 2 3 4 0 0 0 0 0 0\n5 6 7 8 0 0\n", "line 4 has 6 fields"),
        ("a/b.jpg\n1\n1 2 x 4 0 0 0 0 0 0\n", "line 3 has a non-numeric field"),
        ("a/b.jpg\n1\n1 2 3 4 0 0 0 0 0 0\nc/d.jpg\n3\n1 2 3 4 0 0 0 0 0 0\n", "ends at line 6 .*3 face lines"),
        ("a/b.jpg\n1\n1 2 3 4 0 0 0 0 0 0\nc/d.jpg\n", "line 4.*face count is missing"),
        ("a/b.jpg\n2\n1 2 3 4 0 0 0 0 0 0\nc/d.jpg\n1\n", "line 4 has 1 fields"),
    ],
)
def test_malformed_wider_gt_names_the_line(tmp_path, text, match):
    gt = tmp_path / "bad_gt.txt"
    gt.write_text(text)
    with pytest.raises(FaceAtlasError, match=match) as info:
        read_wider_gt(gt, tmp_path)
    assert "bad_gt.txt" in str(info.value)


def test_real_wider_train_subset():
    folder = shared_data("wider_train")
    samples = read_wider_gt(folder / "wider_face_train_bbx_gt.txt", folder / "images")
    assert len(samples) == 121 and sum(len(s.boxes) for s in samples) == 641
    assert all(s.image.exists() for s in samples)
    # the ground truth itself, as detections, scores AP 1
    report = evaluate_detections(samples, [(s.boxes, np.ones(len(s.boxes))) for s in samples])
    assert report.settings["all"].ap == pytest.approx(1.0) and report.settings["all"].faces == 641


# --------------------------------------------------------------------------- WIDER difficulty .mat


def cell(items) -> np.ndarray:
    """A MATLAB n x 1 cell, as the official files hold them."""
    out = np.empty((len(items), 1), dtype=object)
    for i, item in enumerate(items):
        out[i, 0] = item
    return out


def write_wider_mats(folder: Path, samples, levels: dict[str, dict[str, list[int]]], with_face_list: bool = True):
    """Official-style .mat files for samples laid out as <event>/<stem>.jpg."""
    events: dict[str, list] = {}
    for s in samples:
        events.setdefault(s.image.parent.name, []).append(s)
    names = list(events)
    files = cell([cell([s.image.stem for s in events[e]]) for e in names])
    xywh = [
        cell([np.column_stack([s.boxes[:, :2], s.boxes[:, 2:] - s.boxes[:, :2]]) for s in events[e]]) for e in names
    ]
    if with_face_list:
        savemat(
            folder / "wider_face_val.mat", {"event_list": cell(names), "file_list": files, "face_bbx_list": cell(xywh)}
        )
    for level, by_stem in levels.items():
        gt_list = cell(
            [
                cell([np.array(by_stem.get(s.image.stem, []), dtype=float).reshape(-1, 1) for s in events[e]])
                for e in names
            ]
        )
        mat = {"gt_list": gt_list}
        if not with_face_list:  # the MATLAB difficulty files carry their own lists
            mat |= {"event_list": cell(names), "file_list": files}
        savemat(folder / f"wider_{level}_val.mat", mat)


@pytest.fixture
def wider_val(tmp_path):
    text = (
        "0--Parade/p1.jpg\n3\n0 0 40 40 0 0 0 0 0 0\n100 0 40 40 0 0 0 0 0 0\n200 0 8 8 2 0 0 0 2 0\n"
        "0--Parade/p2.jpg\n0\n0 0 0 0 0 0 0 0 0 0\n"
        "1--Handshaking/h1.jpg\n2\n0 0 60 60 0 0 0 0 0 0\n80 0 10 10 0 0 0 1 0 0\n"
    )
    (tmp_path / "gt.txt").write_text(text)
    samples = read_wider_gt(tmp_path / "gt.txt", tmp_path / "images")
    levels = {
        "easy": {"p1": [1, 2], "h1": [1]},
        "medium": {"p1": [1, 2], "h1": [1]},
        "hard": {"p1": [1, 2, 3], "h1": [1]},
    }
    return tmp_path, samples, levels


def test_mat_files_follow_the_official_nesting(wider_val):
    folder, samples, levels = wider_val
    write_wider_mats(folder, samples, levels)
    face, hard = loadmat(folder / "wider_face_val.mat"), loadmat(folder / "wider_hard_val.mat")
    # indexed exactly as widerface_evaluate/evaluation.py does
    assert str(face["event_list"][1][0][0]) == "1--Handshaking"
    assert str(face["file_list"][0][0][1][0][0]) == "p2"
    assert face["face_bbx_list"][0][0][0][0].shape == (3, 4)
    assert hard["gt_list"][0][0][0][0].ravel().tolist() == [1, 2, 3]
    assert len(hard["gt_list"][0][0][1][0]) == 0


@pytest.mark.parametrize("with_face_list", [True, False])
def test_apply_wider_difficulty(wider_val, with_face_list):
    folder, samples, levels = wider_val
    write_wider_mats(folder, samples, levels, with_face_list=with_face_list)
    out = apply_wider_difficulty(samples, folder)
    assert out[0].keep["easy"].tolist() == [True, True, False]
    assert out[0].keep["hard"].tolist() == [True, True, True]
    assert out[1].keep["medium"].shape == (0,)
    assert out[2].keep["easy"].tolist() == [True, False] and out[2].keep["all"].tolist() == [True, False]
    assert list(out[0].keep) == ["all", "easy", "medium", "hard"]
    files = [folder / "wider_hard_val.mat"] + ([folder / "wider_face_val.mat"] if with_face_list else [])
    only_hard = apply_wider_difficulty(samples, files)
    assert list(only_hard[0].keep) == ["all", "hard"]
    report = evaluate_detections(out, [(s.boxes[:1], np.ones(1)) if len(s.boxes) else None for s in out])
    assert report.settings["hard"].faces == 4 and report.settings["easy"].faces == 3
    assert report.settings["easy"].recall == pytest.approx(2 / 3)


def test_wider_difficulty_errors(wider_val):
    folder, samples, levels = wider_val
    write_wider_mats(folder, samples[:2], levels)  # h1 is in no list
    with pytest.raises(FaceAtlasError, match=r"1 image\(s\) are not in the WIDER difficulty lists.*1--Handshaking/h1"):
        apply_wider_difficulty(samples, folder)
    write_wider_mats(folder, samples, {"easy": {"p1": [4]}})
    with pytest.raises(FaceAtlasError, match="outside 1..3"):
        apply_wider_difficulty(samples, [folder / "wider_easy_val.mat", folder / "wider_face_val.mat"])
    moved = [samples[0].__class__(samples[0].image, samples[0].boxes + 1, samples[0].keep), *samples[1:]]
    write_wider_mats(folder, samples, levels)
    with pytest.raises(FaceAtlasError, match="same WIDER release"):
        apply_wider_difficulty(moved, folder)
    with pytest.raises(FaceAtlasError, match="not a WIDER list"):
        apply_wider_difficulty(samples, [folder / "gt.txt", folder / "wider_easy_val.mat"])
    (folder / "empty").mkdir()
    with pytest.raises(FaceAtlasError, match="no wider_"):
        apply_wider_difficulty(samples, folder / "empty")
    with pytest.raises(FaceAtlasError, match="no such file or folder"):
        apply_wider_difficulty(samples, folder / "missing")


# --------------------------------------------------------------------------- JSON


def test_json_single_file_and_folder(tmp_path):
    absolute = tmp_path / "elsewhere" / "x.jpg"
    entries = [
        {"image": "pics/a.jpg", "faces": [{"box": [1, 2, 11, 22]}, {"box": [30, 30, 40, 45], "ignore": True}]},
        {"image": str(absolute), "faces": []},
    ]
    single = tmp_path / "ann.json"
    single.write_text(json.dumps(entries))
    samples = read_json_annotations(single)
    assert samples[0].image == tmp_path / "pics/a.jpg" and samples[1].image == absolute
    np.testing.assert_array_equal(samples[0].boxes, [[1, 2, 11, 22], [30, 30, 40, 45]])
    assert samples[0].keep["all"].tolist() == [True, False] and samples[1].boxes.shape == (0, 4)

    folder = tmp_path / "per_image"
    folder.mkdir()
    for k, entry in enumerate(entries):
        (folder / f"{k}.json").write_text(json.dumps(entry))
    from_folder = read_json_annotations(folder)
    assert from_folder[0].image == folder / "pics/a.jpg"
    assert [len(s.boxes) for s in from_folder] == [2, 0]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ('[{"image": "a.jpg"}]', "entry 0 .*'faces' must be a list"),
        ('[{"image": "a.jpg", "faces": [{"box": [1, 2, 3]}]}]', "face 0: 'box' must be"),
        ('[{"image": "a.jpg", "faces": [{"box": [10, 10, 5, 20]}]}]', "x2 > x1"),
        ('[{"faces": []}]', "'image' path"),
        ('[{"image": "a.jpg", "faces": []},', "not valid JSON"),
    ],
)
def test_json_errors(tmp_path, content, match):
    path = tmp_path / "ann.json"
    path.write_text(content)
    with pytest.raises(FaceAtlasError, match=match):
        read_json_annotations(path)


def test_json_groups_become_settings(tmp_path):
    entries = [
        {"image": "a.jpg", "group": "x", "faces": [{"box": [0, 0, 10, 10]}, {"box": [20, 20, 30, 30], "group": "y"}]},
        {"image": "b.jpg", "faces": [{"box": [0, 0, 10, 10], "group": "y"}, {"box": [50, 50, 60, 60]}]},
    ]
    (tmp_path / "gt.json").write_text(json.dumps(entries))
    a, b = read_json_annotations(tmp_path / "gt.json")
    assert sorted(a.keep) == sorted(b.keep) == ["all", "group=x", "group=y"]
    assert a.keep["group=x"].tolist() == [True, False] and a.keep["group=y"].tolist() == [False, True]
    assert b.keep["group=x"].tolist() == [False, False] and b.keep["group=y"].tolist() == [True, False]
    # group y's faces found, group x's missed
    predictions = [(np.array([[20.0, 20, 30, 30]]), np.array([0.9])), (np.array([[0.0, 0, 10, 10]]), np.array([0.8]))]
    report = evaluate_detections([a, b], predictions)
    assert report.settings["group=y"].recall == pytest.approx(1.0)
    assert report.settings["group=x"].recall == pytest.approx(0.0)
