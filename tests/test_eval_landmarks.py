"""Landmark NME / CED / matching, the MTFL, dlib-XML and AFLW2000-3D readers, and pose errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_data  # tests/ is on sys.path under pytest

from faceatlas.errors import FaceAtlasError
from faceatlas.eval.landmarks import (
    LandmarkSample,
    aflw_rotation,
    aflw_to_faceatlas,
    ced_auc,
    landmark_nme,
    landmark_report,
    match_predictions,
    plot_ced,
    plot_pose_errors,
    pose_errors,
    read_aflw2000,
    read_dlib_xml,
    read_mtfl,
)
from faceatlas.pose import MEAN_FACE_3D, pose_to_rotation
from faceatlas.types import Pose

FACE = np.array([[30.0, 40.0], [50.0, 40.0], [40.0, 50.0], [32.0, 60.0], [48.0, 60.0]])  # eye distance 20


def shifted(face: np.ndarray, nme: float) -> np.ndarray:
    """The face with every point moved right by ``nme`` eye distances: its NME is ``nme``."""
    iod = np.linalg.norm(face[0] - face[1])
    return face + np.array([nme * iod, 0.0])


# --------------------------------------------------------------------------------------------
# NME, CED, report


def test_nme_hand_computed() -> None:
    pred = FACE.copy()
    pred[0] += [6.0, 8.0]  # 10 px off; the other four exact → mean 2 px; / 20 px eye distance
    assert landmark_nme(pred, FACE) == pytest.approx(0.1)
    assert landmark_nme(FACE, FACE) == 0.0


def test_nme_matches_explicit_loops() -> None:
    rng = np.random.default_rng(0)
    gt = rng.uniform(0, 100, (7, 5, 2))
    pred = gt + rng.normal(0, 3, gt.shape)
    expected = []
    for f in range(7):
        iod = math.hypot(gt[f, 0, 0] - gt[f, 1, 0], gt[f, 0, 1] - gt[f, 1, 1])
        total = 0.0
        for k in range(5):
            total += math.hypot(pred[f, k, 0] - gt[f, k, 0], pred[f, k, 1] - gt[f, k, 1])
        expected.append(total / 5 / iod)
    np.testing.assert_allclose(landmark_nme(pred, gt), expected, rtol=1e-12)


def test_nme_rejects_a_face_without_eye_distance() -> None:
    gt = FACE.copy()
    gt[1] = gt[0]
    with pytest.raises(FaceAtlasError, match="both eyes"):
        landmark_nme(FACE, gt)


def test_report_hand_computed() -> None:
    # NMEs 0.02, 0.05, 0.2 and one missed face
    gt = np.stack([FACE] * 4)
    pred = np.stack([shifted(FACE, 0.02), shifted(FACE, 0.05), shifted(FACE, 0.2), FACE])
    missed = np.array([False, False, False, True])
    r = landmark_report(gt, pred, missed=missed)
    assert (r.faces, r.matched, r.missed) == (4, 3, 1)
    assert r.nme_mean == pytest.approx((0.02 + 0.05 + 0.2) / 3)  # matched faces only
    assert r.nme_median == pytest.approx(0.05)
    assert r.failure_rate == pytest.approx(2 / 4)  # 0.2 > 0.1, and the missed face
    # AUC@0.1 = mean(max(0, 0.1 - e)) / 0.1 = (0.08 + 0.05 + 0 + 0) / 4 / 0.1
    assert r.auc == pytest.approx(0.325)
    assert r.ced_y[-1] == pytest.approx(0.5)  # at NME 0.1: two of four faces
    assert r.ced_y[0] == 0.0
    for name in r.per_landmark:  # every point moved by the same amount
        assert r.per_landmark[name] == pytest.approx((0.02 + 0.05 + 0.2) / 3)
    json.dumps(r.to_dict())
    assert "missed 1" in r.table()


def test_report_per_landmark_and_nan_rows() -> None:
    pred = FACE.copy()
    pred[0] += [6.0, 8.0]  # only the image-left eye is off, by half an eye distance
    gt = np.stack([FACE, FACE])
    r = landmark_report(gt, np.stack([pred, np.full((5, 2), np.nan)]))  # NaN row = missed
    assert r.missed == 1
    assert r.per_landmark["left_eye"] == pytest.approx(0.5)
    assert r.per_landmark["nose"] == 0.0


def test_ced_auc_matches_numeric_integration() -> None:
    rng = np.random.default_rng(1)
    errors = np.concatenate([rng.gamma(2.0, 0.03, 300), [np.inf] * 20])
    grid = np.linspace(0.0, 0.1, 200_001)
    fine = np.searchsorted(np.sort(errors), grid, side="right") / errors.size
    numeric = np.sum(np.diff(grid) * (fine[1:] + fine[:-1]) / 2) / 0.1
    assert ced_auc(errors, 0.1) == pytest.approx(numeric, abs=1e-4)
    r = landmark_report(np.stack([FACE] * 320), np.stack([shifted(FACE, min(e, 9.0)) for e in errors]))
    assert r.auc == pytest.approx(numeric, abs=1e-4)
    np.testing.assert_allclose(r.ced_y, [(errors <= x).mean() for x in r.ced_x], atol=1e-12)


# --------------------------------------------------------------------------------------------
# Matching


def sample(image: str, face: np.ndarray, box: tuple[float, ...] | None) -> LandmarkSample:
    return LandmarkSample(Path(image), face, None if box is None else np.array(box, dtype=float))


def test_matching_by_iou_misses_and_unreadable_images() -> None:
    face_b = FACE + [100.0, 0.0]
    samples = [
        sample("a.jpg", FACE, (20, 30, 60, 70)),
        sample("a.jpg", face_b, (120, 30, 160, 70)),
        sample("a.jpg", FACE + [0, 200], (20, 230, 60, 270)),  # nothing detected there
        sample("b.jpg", FACE, (20, 30, 60, 70)),  # unreadable image
        sample("c.jpg", FACE, (20, 30, 60, 70)),  # image absent from the predictions
    ]
    predictions = {
        "a.jpg": [
            ((300, 300, 340, 340), FACE + 300),  # a false positive far away
            ((122, 31, 161, 71), shifted(face_b, 0.05)),
            ((21, 30, 60, 69), shifted(FACE, 0.02)),
            ((20, 262, 60, 302), FACE + [0, 232]),  # overlaps the third box too little: IoU 8/72
        ],
        "b.jpg": None,
    }
    m = match_predictions(samples, predictions)
    np.testing.assert_array_equal(m.missed, [False, False, True, True, True])
    np.testing.assert_allclose(m.pred[0], shifted(FACE, 0.02))
    np.testing.assert_allclose(m.pred[1], shifted(face_b, 0.05))
    r = m.report()
    assert (r.faces, r.missed) == (5, 3)
    assert r.failure_rate == pytest.approx(3 / 5)
    assert any("could not be read" in n for n in r.notes)
    assert any("no prediction entry" in n for n in r.notes)


def test_matching_is_one_to_one_highest_iou_first() -> None:
    samples = [sample("a.jpg", FACE, (0, 0, 40, 40)), sample("a.jpg", FACE + 5, (5, 5, 45, 45))]
    # one detection; it overlaps the second box more (IoU 1) than the first (1225/1975)
    m = match_predictions(samples, {"a.jpg": [((5, 5, 45, 45), FACE + 5)]})
    np.testing.assert_array_equal(m.missed, [True, False])


def test_matching_without_boxes_uses_the_eye_midpoint() -> None:
    samples = [sample("a.jpg", FACE, None)]
    near = ((0, 0, 1, 1), shifted(FACE, 0.3))  # eye midpoint 6 px away: 0.3 eye distances
    far = ((0, 0, 1, 1), FACE + [0.0, 30.0])  # 1.5 eye distances away
    m = match_predictions(samples, {"a.jpg": [far, near]})
    np.testing.assert_allclose(m.pred[0], near[1])
    assert match_predictions(samples, {"a.jpg": [far]}).missed.all()


# --------------------------------------------------------------------------------------------
# MTFL


def test_read_mtfl_backslash_paths_and_optional_attributes(tmp_path: Path) -> None:
    file = tmp_path / "testing.txt"
    file.write_text(
        "lfw_5590\\Aaron_Eckhart_0001.jpg 107.25 147.75 126.25 106.25 140.75 108.75 113.25 143.75 163.75 159.25 1 2 2 3\n"
        "\n"
        " net_7876\\9026_0_0.jpg 166 260 214 149 239 146 164 213 240 261\n"
    )
    samples = read_mtfl(file, tmp_path / "MTFL")
    assert len(samples) == 2 and samples.skipped == 0
    first = samples[0]
    assert first.image == tmp_path / "MTFL" / "lfw_5590" / "Aaron_Eckhart_0001.jpg"
    np.testing.assert_allclose(first.points[:, 0], [107.25, 147.75, 126.25, 106.25, 140.75])
    np.testing.assert_allclose(first.points[:, 1], [108.75, 113.25, 143.75, 163.75, 159.25])
    assert first.box is None
    assert first.attributes == {"gender": 1, "smile": 2, "glasses": 2, "pose": 3}
    assert samples[1].image.name == "9026_0_0.jpg" and samples[1].attributes == {}


@pytest.mark.parametrize(
    "bad_line",
    ["img.jpg 1 2 3 4 5 6 7 8 9", "img.jpg 1 2 3 4 5 6 7 8 9 x", "img.jpg 1 2 3 4 5 6 7 8 9 nan"],
)
def test_read_mtfl_malformed_line_names_file_and_line(tmp_path: Path, bad_line: str) -> None:
    file = tmp_path / "training.txt"
    file.write_text("a.jpg 1 2 3 4 5 6 7 8 9 10\n# a comment\n" + bad_line + "\n")
    with pytest.raises(FaceAtlasError, match=r"training\.txt: line 3"):
        read_mtfl(file, tmp_path)


def test_read_mtfl_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FaceAtlasError, match="cannot read"):
        read_mtfl(tmp_path / "nope.txt", tmp_path)


# --------------------------------------------------------------------------------------------
# dlib XML


def parts_xml(points: np.ndarray) -> str:
    return "".join(f"<part name='{i:02d}' x='{x:g}' y='{y:g}'/>" for i, (x, y) in enumerate(points))


def test_read_dlib_xml(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    pts = rng.uniform(0, 100, (68, 2)).round(1)
    xml = (
        "<?xml version='1.0' encoding='ISO-8859-1'?><dataset><images>"
        "<image file='sub\\face.jpg'>"
        f"<box top='10' left='20' width='30' height='40'>{parts_xml(pts)}</box>"
        f"<box top='1' left='2' width='3' height='4' ignore='1'>{parts_xml(pts)}</box>"
        f"<box top='1' left='2' width='3' height='4'>{parts_xml(pts[:5])}</box>"
        "</image></images></dataset>"
    )
    file = tmp_path / "faces.xml"
    file.write_text(xml)
    result = read_dlib_xml(file)
    assert len(result) == 1 and result.skipped == 2
    s = result[0]
    assert s.image == tmp_path / "sub" / "face.jpg"
    np.testing.assert_allclose(s.box, [20, 10, 50, 50])
    expected = [
        [np.mean(pts[36:42, 0]), np.mean(pts[36:42, 1])],
        [np.mean(pts[42:48, 0]), np.mean(pts[42:48, 1])],
        pts[30],
        pts[48],
        pts[54],
    ]
    np.testing.assert_allclose(s.points, expected)
    assert any("ignore" in n for n in result.notes) and any("68 parts" in n for n in result.notes)


def test_read_dlib_xml_malformed(tmp_path: Path) -> None:
    file = tmp_path / "broken.xml"
    file.write_text("<dataset><images><image file='a.jpg'><box top='1'")
    with pytest.raises(FaceAtlasError, match=r"broken\.xml.*not valid XML"):
        read_dlib_xml(file)
    file.write_text("<dataset><images><image file='a.jpg'><box top='1' left='2' width='3'/></image></images></dataset>")
    with pytest.raises(FaceAtlasError, match=r"broken\.xml: image 'a\.jpg', box 1.*'height'"):
        read_dlib_xml(file)
    file.write_text("<dataset><images><image file='a.jpg'><box top='1' left='2' width='3' height='4'>"
                    "<part name='00' x='a' y='1'/></box></image></images></dataset>")  # fmt: skip
    with pytest.raises(FaceAtlasError, match=r"box 1: malformed <part>"):
        read_dlib_xml(file)


@pytest.mark.parametrize(
    ("name", "faces", "images"),
    [("training_with_face_landmarks.xml", 18, 4), ("testing_with_face_landmarks.xml", 25, 5)],
)
def test_read_dlib_example_files(name: str, faces: int, images: int) -> None:
    folder = shared_data("dlib_faces", "examples", "faces")
    result = read_dlib_xml(folder / name)
    assert (len(result), result.skipped) == (faces, 0)
    assert len({s.image for s in result}) == images
    assert all(s.image.exists() for s in result)
    for s in result:  # upright faces: mtcnn5 order puts the image-left eye and mouth corner first
        assert s.points[0, 0] < s.points[1, 0] and s.points[3, 0] < s.points[4, 0]
        x1, y1, x2, y2 = s.box
        assert x1 <= s.points[2, 0] <= x2 and y1 <= s.points[2, 1] <= y2


# --------------------------------------------------------------------------------------------
# AFLW2000-3D


def project_aflw(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """Project faceatlas' 3D mean face the way 3DDFA does: model y up, z toward the camera; image y flipped."""
    model = MEAN_FACE_3D * [1.0, -1.0, -1.0]  # camera frame (y down, z away) → 3DDFA's model frame
    rotated = aflw_rotation(pitch, yaw, roll) @ model.T
    return np.stack([rotated[0], -rotated[1]], axis=1)


def project_faceatlas(pose: Pose) -> np.ndarray:
    return (pose_to_rotation(pose) @ MEAN_FACE_3D.T)[:2].T


@pytest.mark.parametrize(
    "angles", [(0, 30, 0), (20, 0, 0), (0, 0, 15), (20, 60, 10), (-25, -45, 20), (10, 80, -30), (40, -70, 35)]
)
def test_aflw_conversion_reproduces_the_projection(angles: tuple[float, float, float]) -> None:
    np.testing.assert_allclose(project_faceatlas(aflw_to_faceatlas(*angles)), project_aflw(*angles), atol=1e-9)


def test_aflw_signs_agree_with_the_image_geometry() -> None:
    # AFLW yaw +30: the nose goes left of the eye midpoint → the face turns to the image's left
    p = project_aflw(0, 30, 0)
    assert p[2, 0] < p[:2, 0].mean()
    assert aflw_to_faceatlas(0, 30, 0).yaw == pytest.approx(-30)
    # AFLW pitch +20: the nose rises toward the eyes (looking up) → faceatlas pitch positive
    up, level = project_aflw(20, 0, 0), project_aflw(0, 0, 0)
    assert up[2, 1] - up[:2, 1].mean() < level[2, 1] - level[:2, 1].mean()
    assert aflw_to_faceatlas(20, 0, 0).pitch == pytest.approx(20)
    # AFLW roll +15: the eye on the image's right is lower → clockwise → faceatlas roll positive
    tilted = project_aflw(0, 0, 15)
    assert tilted[1, 1] > tilted[0, 1]
    assert aflw_to_faceatlas(0, 0, 15).roll == pytest.approx(15)
    assert aflw_to_faceatlas(20, 60, 10, exact=False) == Pose(yaw=-60, pitch=20, roll=10)


def write_aflw_mat(folder: Path, name: str, angles_deg: tuple[float, float, float], image: bool = True) -> None:
    import scipy.io

    pose = np.zeros((1, 7))
    pose[0, :3] = np.radians(angles_deg)
    pose[0, 3:] = [200, 200, 0, 0.001]
    xy = project_aflw(*angles_deg) * 1.5 + 200  # five real points, then pad to 68
    pt3d = np.zeros((3, 68))
    pt3d[:2] = 200.0
    pt3d[:2, 36:42] = xy[0][:, None]
    pt3d[:2, 42:48] = xy[1][:, None]
    pt3d[:2, 30], pt3d[:2, 48], pt3d[:2, 54] = xy[2], xy[3], xy[4]
    pt3d[:2, 8] = [200, 280]  # chin
    scipy.io.savemat(folder / f"{name}.mat", {"Pose_Para": pose, "pt3d_68": pt3d})
    if image:
        (folder / f"{name}.jpg").write_bytes(b"")


def test_read_aflw2000(tmp_path: Path) -> None:
    write_aflw_mat(tmp_path, "image00002", (10.0, 40.0, -5.0))
    write_aflw_mat(tmp_path, "image00004", (5.0, -20.0, 0.0))
    write_aflw_mat(tmp_path, "image00006", (0.0, 100.0, 0.0))  # beyond ±99°: dropped
    result = read_aflw2000(tmp_path)
    assert len(result) == 2 and result.dropped == 1 and "1 of 3" in result.notes[0]
    first = result[0]
    assert first.image == tmp_path / "image00002.jpg"
    np.testing.assert_allclose(first.aflw_angles, (10.0, 40.0, -5.0))
    exact = aflw_to_faceatlas(10.0, 40.0, -5.0)
    assert first.pose.yaw == pytest.approx(exact.yaw) and first.pose.roll == pytest.approx(exact.roll)
    np.testing.assert_allclose(first.points, project_aflw(10.0, 40.0, -5.0) * 1.5 + 200, atol=1e-6)
    assert first.box[3] == pytest.approx(280) and first.box[0] <= first.points[:, 0].min()
    assert read_aflw2000(tmp_path, exact=False)[1].pose == Pose(yaw=20.0, pitch=5.0, roll=0.0)


def test_read_aflw2000_errors(tmp_path: Path) -> None:
    import scipy.io

    with pytest.raises(FaceAtlasError, match="no AFLW2000-3D"):
        read_aflw2000(tmp_path)
    write_aflw_mat(tmp_path, "image00001", (0.0, 0.0, 0.0), image=False)
    with pytest.raises(FaceAtlasError, match=r"image00001\.mat: its image image00001\.jpg is missing"):
        read_aflw2000(tmp_path)
    (tmp_path / "image00001.jpg").write_bytes(b"")
    scipy.io.savemat(tmp_path / "image00001.mat", {"pt3d_68": np.zeros((3, 68))})
    with pytest.raises(FaceAtlasError, match=r"image00001\.mat: no 'Pose_Para'"):
        read_aflw2000(tmp_path)
    scipy.io.savemat(tmp_path / "image00001.mat", {"Pose_Para": np.zeros((1, 7)), "pt3d_68": np.zeros((2, 68))})
    with pytest.raises(FaceAtlasError, match=r"image00001\.mat: pt3d_68"):
        read_aflw2000(tmp_path)
    (tmp_path / "image00001.mat").write_bytes(b"not a mat file")
    with pytest.raises(FaceAtlasError, match=r"image00001\.mat: not a readable"):
        read_aflw2000(tmp_path)


# --------------------------------------------------------------------------------------------
# Pose errors


def test_pose_errors_hand_computed() -> None:
    gt = [Pose(10, 0, 0), Pose(-45, 5, -5), Pose(70, 0, 179), Pose(20, 0, 0)]
    pred = [Pose(12, -1, 1), Pose(-40, 5, -5), Pose(60, 3, -179), None]
    r = pose_errors(gt, pred)
    assert (r.faces, r.missed) == (4, 1)
    assert r.mae_yaw == pytest.approx((2 + 5 + 10) / 3)
    assert r.mae_pitch == pytest.approx((1 + 0 + 3) / 3)
    assert r.mae_roll == pytest.approx((1 + 0 + 2) / 3)  # 179 vs -179 is 2°
    assert r.mae_mean == pytest.approx((17 + 4 + 3) / 9)
    assert r.by_yaw["0-30"]["faces"] == 2 and r.by_yaw["0-30"]["missed"] == 1
    assert r.by_yaw["0-30"]["mae_yaw"] == pytest.approx(2)
    assert r.by_yaw["30-60"]["mae_yaw"] == pytest.approx(5)
    assert r.by_yaw["60-90+"]["mae_roll"] == pytest.approx(2)
    assert r.geodesic_mean is not None and r.geodesic_mean > 0
    json.dumps(r.to_dict())
    assert "missed 1" in r.table()


def test_pose_errors_match_brute_force() -> None:
    rng = np.random.default_rng(3)
    gt = [Pose(*rng.uniform([-95, -40, -40], [95, 40, 40])) for _ in range(60)]
    pred = [
        None if k % 7 == 0 else Pose(g.yaw + rng.normal(0, 8), g.pitch + rng.normal(0, 5), g.roll)
        for k, g in enumerate(gt)
    ]
    r = pose_errors(gt, pred)
    for name, lo, hi in [("0-30", 0, 30), ("30-60", 30, 60), ("60-90+", 60, 1e9)]:
        errs = [abs(p.yaw - g.yaw) for g, p in zip(gt, pred, strict=True) if p is not None and lo <= abs(g.yaw) < hi]
        assert r.by_yaw[name]["mae_yaw"] == pytest.approx(sum(errs) / len(errs))
    assert r.missed == sum(p is None for p in pred)
    # the geodesic error of a pure yaw difference is that difference
    assert pose_errors([Pose(10, 0, 0)], [Pose(25, 0, 0)]).geodesic_mean == pytest.approx(15)


def test_plots_write_files(tmp_path: Path) -> None:
    r = landmark_report(np.stack([FACE] * 3), np.stack([shifted(FACE, e) for e in (0.01, 0.04, 0.3)]))
    plot_ced(r, tmp_path / "ced.png")
    plot_ced({"a": r, "b": r}, tmp_path / "ced2.png")
    p = pose_errors([Pose(10, 0, 0), Pose(70, 5, 0)], [Pose(12, 0, 0), None])
    plot_pose_errors(p, tmp_path / "pose.png")
    for name in ("ced.png", "ced2.png", "pose.png"):
        assert (tmp_path / name).stat().st_size > 1000
