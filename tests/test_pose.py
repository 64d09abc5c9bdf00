import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faceatlas.errors import InvalidArgumentError
from faceatlas.pose import MEAN_FACE_3D, estimate_pose, pose_to_rotation, rotation_to_pose
from faceatlas.types import Landmarks, Pose


def project(pose: Pose, t, size=(640, 480), focal=None):
    """Perspective projection of the template (focal: the image's longer side unless given)."""
    w, h = size
    f = focal or max(w, h)
    K = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]])
    X = MEAN_FACE_3D @ pose_to_rotation(pose).T + t
    x = X @ K.T
    return x[:, :2] / x[:, 2:]


def orthographic(pose: Pose, scale=2.0, shift=(300.0, 200.0)):
    """Weak-perspective projection of the template: the camera model estimate_pose assumes."""
    return (MEAN_FACE_3D @ pose_to_rotation(pose).T)[:, :2] * scale + np.asarray(shift)


def assert_pose(found: Pose, expected: Pose, tol: float) -> None:
    assert found.yaw == pytest.approx(expected.yaw, abs=tol)
    assert found.pitch == pytest.approx(expected.pitch, abs=tol)
    assert found.roll == pytest.approx(expected.roll, abs=tol)


def test_template_is_symmetric_with_the_nose_in_front() -> None:
    left, right = MEAN_FACE_3D[[0, 3]], MEAN_FACE_3D[[1, 4]]
    np.testing.assert_allclose(left * [-1, 1, 1], right)
    assert (MEAN_FACE_3D[[0, 1, 3, 4], 2] > 20).all()  # eyes and mouth well behind the nose tip
    assert MEAN_FACE_3D[0, 1] < 0 < MEAN_FACE_3D[3, 1]  # eyes above, mouth below (y down)


@settings(max_examples=200, deadline=None)
@given(
    yaw=st.floats(-85, 85),
    pitch=st.floats(-50, 50),
    roll=st.floats(-80, 80),
    scale=st.floats(0.1, 30),
    x=st.floats(-2000, 2000),
    y=st.floats(-2000, 2000),
)
def test_weak_perspective_projections_are_recovered_exactly(yaw, pitch, roll, scale, x, y):
    pose = Pose(yaw, pitch, roll)
    assert_pose(estimate_pose(orthographic(pose, scale, (x, y)), (640, 480)), pose, 1e-4)


@settings(max_examples=100, deadline=None)
@given(
    yaw=st.floats(-60, 60),
    pitch=st.floats(-30, 30),
    roll=st.floats(-45, 45),
    tx=st.floats(-80, 80),
    ty=st.floats(-60, 60),
    tz=st.floats(400, 1500),
)
def test_known_focal_recovers_perspective_projections(yaw, pitch, roll, tx, ty, tz):
    pose = Pose(yaw, pitch, roll)
    found = estimate_pose(project(pose, [tx, ty, tz]), (640, 480), focal=640.0)
    assert_pose(found, pose, 0.01)


@pytest.mark.parametrize("distance", [600.0, 1000.0, 3000.0])
def test_default_camera_is_close_for_centred_perspective_faces(distance: float) -> None:
    # weak perspective ignores the depth spread of the face (~40 mm): its error shrinks with distance
    tol = 2.0e3 / distance + 0.1
    for pose in (Pose(0, 0, 0), Pose(40, -15, 10), Pose(-55, 20, -30)):
        assert_pose(estimate_pose(project(pose, [0, 0, distance]), (640, 480)), pose, tol)


def test_crop_and_image_size_do_not_change_the_default_estimate() -> None:
    points = orthographic(Pose(25, -10, 5)) + np.random.default_rng(0).normal(0, 1.5, (5, 2))  # noisy
    full = estimate_pose(points, (4000, 3000))
    cropped = estimate_pose(points - [180.0, 90.0], (300, 300))  # same face in a crop
    resized = estimate_pose((points - [180.0, 90.0]) * 0.4, (120, 120))  # and downscaled
    for other in (cropped, resized):
        assert_pose(other, full, 1e-6)


def test_sign_conventions_are_the_documented_ones():
    frontal = project(Pose(0, 0, 0), [0, 0, 700])
    turned = project(Pose(30, 0, 0), [0, 0, 700])
    # yaw > 0: the subject turns toward the image's right, so the nose moves right of the eyes
    assert turned[2, 0] - turned[:2, 0].mean() > frontal[2, 0] - frontal[:2, 0].mean() + 5
    assert estimate_pose(turned, (640, 480)).yaw > 25
    up = project(Pose(0, 20, 0), [0, 0, 700])
    assert up[2, 1] - up[0, 1] < frontal[2, 1] - frontal[0, 1] - 5  # looking up: nose rises
    assert estimate_pose(up, (640, 480)).pitch > 15
    tilted = project(Pose(0, 0, 20), [0, 0, 700])
    assert tilted[1, 1] > tilted[0, 1]  # roll > 0: the image-right eye is lower (clockwise)
    assert estimate_pose(tilted, (640, 480)).roll > 15


def test_mirrored_points_flip_yaw_and_roll_only() -> None:
    points = orthographic(Pose(35, 12, -8)) + np.random.default_rng(1).normal(0, 1.0, (5, 2))
    mirrored = points * [-1, 1] + [1000, 0]
    mirrored = mirrored[[1, 0, 2, 4, 3]]  # the image-left eye / mouth corner come first
    a, b = estimate_pose(points, (1000, 600)), estimate_pose(mirrored, (1000, 600))
    assert_pose(b, Pose(-a.yaw, a.pitch, -a.roll), 1e-3)


def test_landmarks_objects_are_accepted() -> None:
    points = orthographic(Pose(-20, 5, 3)).astype(np.float32)
    assert_pose(estimate_pose(Landmarks(points), (640, 480)), Pose(-20, 5, 3), 1e-3)


@pytest.mark.parametrize(
    "points, roll",
    [
        (np.full((5, 2), 100.0), 0.0),  # all at one pixel (a collapsed detection)
        (np.array([[0, 0], [10, 10], [20, 20], [30, 30], [40, 40]], dtype=float), 45.0),  # on one line
        (np.array([[0, 0], [0, 0], [0, 0], [0, 0], [5, 0]], dtype=float), 0.0),  # eyes coincide
    ],
)
def test_degenerate_points_give_the_in_plane_angle_only(points: np.ndarray, roll: float) -> None:
    found = estimate_pose(points, (640, 480))
    assert found == Pose(0.0, 0.0, pytest.approx(roll))


def test_profile_like_points_stay_finite_and_turned() -> None:
    # a detector's profile face: the hidden eye and mouth corner pushed onto the nose's side
    points = orthographic(Pose(80, 0, 0), 3.0)
    points[[0, 3], 0] = points[2, 0] - 4.0
    found = estimate_pose(points, (640, 480))
    assert all(math.isfinite(v) for v in (found.yaw, found.pitch, found.roll))
    assert found.yaw > 45


@pytest.mark.parametrize(
    "points", [np.zeros((4, 2)), np.zeros((5, 3)), np.full((5, 2), np.nan), np.array([[np.inf, 0]] * 5)]
)
def test_malformed_points_are_rejected(points: np.ndarray) -> None:
    with pytest.raises(InvalidArgumentError):
        estimate_pose(points, (640, 480))


@pytest.mark.parametrize("focal", [0.0, -5.0, float("nan")])
def test_bad_focal_is_rejected(focal: float) -> None:
    with pytest.raises(InvalidArgumentError, match="focal"):
        estimate_pose(orthographic(Pose(0, 0, 0)), (640, 480), focal=focal)


def test_rotation_round_trip() -> None:
    for pose in (Pose(10, -20, 30), Pose(-70, 40, -60), Pose(0, 0, 179)):
        assert_pose(rotation_to_pose(pose_to_rotation(pose)), pose, 1e-9)


def test_fast_enough_for_every_face() -> None:
    rng = np.random.default_rng(2)
    faces = [orthographic(Pose(*rng.uniform(-60, 60, 3))) + rng.normal(0, 2, (5, 2)) for _ in range(200)]
    start = time.perf_counter()
    for points in faces:
        estimate_pose(points, (640, 480))
    per_face = (time.perf_counter() - start) / len(faces)
    assert per_face < 2e-3  # ~0.2 ms on a developer machine; generous for a loaded CI runner


def test_real_frontal_face_is_near_frontal(analyzer, grace_hopper):
    (face,) = [f for f in analyzer.detect(grace_hopper) if f.score > 0.9][:1]
    assert abs(face.pose.yaw) < 25 and abs(face.pose.roll) < 15


def test_mirroring_a_face_flips_yaw_and_roll(analyzer, astronaut):
    face = analyzer.detect(astronaut)[0]
    mirrored = analyzer.detect(np.ascontiguousarray(astronaut[:, ::-1]))[0]
    assert mirrored.pose.yaw == pytest.approx(-face.pose.yaw, abs=4)
    assert mirrored.pose.roll == pytest.approx(-face.pose.roll, abs=4)
    assert math.isfinite(face.pose.pitch)


# -- AFLW2000-3D (real labels; only where the data set is on disk) ---------------------------------


def aflw2000_folder() -> Path:
    folder = os.environ.get("FACEATLAS_AFLW2000")
    if not folder:
        pytest.skip("FACEATLAS_AFLW2000 is not set (a folder of AFLW2000-3D imageNNNNN.jpg + .mat files)")
    if not any(Path(folder).glob("image*.mat")):
        pytest.skip(f"FACEATLAS_AFLW2000={folder} holds no AFLW2000-3D image*.mat files")
    return Path(folder)


def test_aflw2000_pose_from_its_own_five_points() -> None:
    """The pose model alone: the labels' 68 points reduced to five (measured 2.5° mean MAE)."""
    from faceatlas.eval.landmarks import pose_errors, read_aflw2000

    samples = read_aflw2000(aflw2000_folder())
    report = pose_errors([s.pose for s in samples], [estimate_pose(s.points, (450, 450)) for s in samples])
    assert report.mae_mean is not None and report.mae_mean < 3.5
    assert report.mae_yaw is not None and report.mae_yaw < 3.0


@pytest.mark.slow  # about 80 s: the default detector over 2,000 images
def test_aflw2000_pose_with_the_default_detector(tmp_path: Path) -> None:
    """End to end (detector landmarks): measured 7.0° mean MAE on all 1,969 faces (4.6° for |yaw| < 60°).

    The issue's target (< 5°) is not met on the full set: past ~45° yaw the detectors' points,
    not the pose model, dominate the error (the labels' own five points give 2.5°).
    """
    folder = aflw2000_folder()
    from faceatlas.eval.landmarks import read_aflw2000
    from faceatlas.eval.protocols import pose as pose_protocol
    from faceatlas.eval.source import AnalyzerSource, FaceRunner

    samples = read_aflw2000(folder)
    runner = FaceRunner(AnalyzerSource(), cache=False)
    pose_protocol(samples, runner, tmp_path, "aflw2000")
    report = json.loads((tmp_path / "result.json").read_text())["pose"]
    assert report["missed"] < 20
    assert report["mae_mean"] < 7.5
