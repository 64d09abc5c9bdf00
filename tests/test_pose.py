import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faceatlas.pose import MEAN_FACE_3D, estimate_pose, pose_to_rotation
from faceatlas.types import Pose


def project(pose: Pose, t, size=(640, 480)):
    w, h = size
    f = max(w, h)
    K = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]])
    X = MEAN_FACE_3D @ pose_to_rotation(pose).T + t
    x = X @ K.T
    return x[:, :2] / x[:, 2:]


@settings(max_examples=100, deadline=None)
@given(
    yaw=st.floats(-60, 60), pitch=st.floats(-30, 30), roll=st.floats(-45, 45),
    tx=st.floats(-80, 80), ty=st.floats(-60, 60), tz=st.floats(400, 1500),
)
def test_pose_round_trips_through_projection(yaw, pitch, roll, tx, ty, tz):
    pose = Pose(yaw, pitch, roll)
    found = estimate_pose(project(pose, [tx, ty, tz]), (640, 480))
    assert found.yaw == pytest.approx(yaw, abs=0.5)
    assert found.pitch == pytest.approx(pitch, abs=0.5)
    assert found.roll == pytest.approx(roll, abs=0.5)


def test_sign_conventions_are_the_documented_ones():
    frontal = project(Pose(0, 0, 0), [0, 0, 700])
    turned = project(Pose(30, 0, 0), [0, 0, 700])
    # yaw > 0: the subject turns toward the image's right, so the nose moves right of the eyes
    assert turned[2, 0] - turned[:2, 0].mean() > frontal[2, 0] - frontal[:2, 0].mean() + 5
    up = project(Pose(0, 20, 0), [0, 0, 700])
    assert up[2, 1] - up[0, 1] < frontal[2, 1] - frontal[0, 1] - 5  # looking up: nose rises
    tilted = project(Pose(0, 0, 20), [0, 0, 700])
    assert tilted[1, 1] > tilted[0, 1]  # roll > 0: the image-right eye is lower (clockwise)


def test_real_frontal_face_is_near_frontal(analyzer, grace_hopper):
    (face,) = [f for f in analyzer.detect(grace_hopper) if f.score > 0.9][:1]
    assert abs(face.pose.yaw) < 25 and abs(face.pose.roll) < 15


def test_mirroring_a_face_flips_yaw_and_roll(analyzer, astronaut):
    face = analyzer.detect(astronaut)[0]
    mirrored = analyzer.detect(np.ascontiguousarray(astronaut[:, ::-1]))[0]
    assert mirrored.pose.yaw == pytest.approx(-face.pose.yaw, abs=4)
    assert mirrored.pose.roll == pytest.approx(-face.pose.roll, abs=4)
    assert math.isfinite(face.pose.pitch)
