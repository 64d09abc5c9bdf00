"""Head pose (yaw, pitch, roll in degrees) from the five landmarks, by PnP against a 3D mean face.

Sign conventions are those of :class:`faceatlas.types.Pose`. Five points fix the pose only
roughly (eye centres, nose tip and mouth corners are nearly coplanar but for the nose), so
expect errors of several degrees; the estimate is for quality scoring and filtering, and a
later evaluation measures it (AFLW2000-3D).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from faceatlas.types import Landmarks, Pose

# A mean adult face in millimetres, camera frame for a frontal face: x to the image's right,
# y down, z away from the camera; origin at the nose tip. The frontal projection matches
# dlib's mean face (the alignment template); depths are typical anthropometric values.
MEAN_FACE_3D = np.array(
    [
        [-31.5, -35.7, 32.0],  # eye on the image's left
        [31.5, -35.7, 32.0],  # eye on the image's right
        [0.0, 0.0, 0.0],  # nose tip
        [-28.1, 31.6, 24.0],  # mouth corner on the image's left
        [28.1, 31.6, 24.0],  # mouth corner on the image's right
    ],
    dtype=np.float64,
)


def rotation_to_pose(rotation: np.ndarray) -> Pose:
    """Decompose ``R = Rz(roll) · Ry(-yaw) · Rx(-pitch)`` (camera frame) into a :class:`Pose`."""
    sin_y = float(np.clip(-rotation[2, 0], -1.0, 1.0))
    theta_y = math.asin(sin_y)
    theta_x = math.atan2(rotation[2, 1], rotation[2, 2])
    theta_z = math.atan2(rotation[1, 0], rotation[0, 0])
    # Positive rotation about y (pointing down) swings the nose to the image's left; about x it
    # tips the nose down; about z it turns the face clockwise on screen. Pose's signs follow.
    return Pose(yaw=-math.degrees(theta_y), pitch=-math.degrees(theta_x), roll=math.degrees(theta_z))


def pose_to_rotation(pose: Pose) -> np.ndarray:
    """The rotation matrix of a :class:`Pose` (inverse of :func:`rotation_to_pose`)."""
    ty, tx, tz = math.radians(-pose.yaw), math.radians(-pose.pitch), math.radians(pose.roll)
    rx = np.array([[1, 0, 0], [0, math.cos(tx), -math.sin(tx)], [0, math.sin(tx), math.cos(tx)]])
    ry = np.array([[math.cos(ty), 0, math.sin(ty)], [0, 1, 0], [-math.sin(ty), 0, math.cos(ty)]])
    rz = np.array([[math.cos(tz), -math.sin(tz), 0], [math.sin(tz), math.cos(tz), 0], [0, 0, 1]])
    return rz @ ry @ rx


def estimate_pose(landmarks: Landmarks | np.ndarray, image_size: tuple[int, int]) -> Pose:
    """Yaw, pitch and roll of the head with these landmarks in an image of ``(width, height)``.

    The camera is assumed to have a focal length equal to the image's longer side (a ~53°
    field of view, typical of phones and webcams) and its principal point at the centre.
    """
    points = landmarks.points if isinstance(landmarks, Landmarks) else np.asarray(landmarks)
    points = np.ascontiguousarray(points, dtype=np.float64).reshape(5, 1, 2)
    width, height = image_size
    focal = float(max(width, height, 1))
    camera = np.array([[focal, 0, width / 2.0], [0, focal, height / 2.0], [0, 0, 1]])
    # Start from a frontal face at the distance its eye spacing implies: PnP on five points
    # converges to the right minimum from there.
    eye_gap = max(float(np.linalg.norm(points[1, 0] - points[0, 0])), 1.0)
    depth = focal * 63.0 / eye_gap
    centre = points[2, 0]
    tvec0 = np.array(
        [[(centre[0] - width / 2.0) * depth / focal], [(centre[1] - height / 2.0) * depth / focal], [depth]]
    )
    rvec0 = np.zeros((3, 1))
    ok, rvec, _tvec = cv2.solvePnP(
        MEAN_FACE_3D, points, camera, None, rvec0, tvec0, useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE
    )
    if not ok:  # degenerate points: report the in-plane angle only
        dx, dy = points[1, 0] - points[0, 0]
        return Pose(yaw=0.0, pitch=0.0, roll=math.degrees(math.atan2(dy, dx)))
    rotation, _ = cv2.Rodrigues(rvec)
    return rotation_to_pose(rotation)
