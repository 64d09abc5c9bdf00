"""Head pose (yaw, pitch, roll in degrees) from the five landmarks, fitted to a 3D mean face.

Sign conventions are those of :class:`faceatlas.types.Pose`. The default camera is weak
perspective (scaled orthographic): the angles are the head's rotation relative to the line of
sight to the face, as its appearance shows it, so a face reads the same in a crop and in the
full photo, wherever it sits in the frame and whatever the lens. That is also how AFLW2000-3D
and 300W-LP define their labels (3DDFA fits a weak-perspective 3DMM). ``focal=`` switches to a
full perspective fit whose angles are relative to the camera's axes instead.

The fit is robust (Huber weights on the points' residuals), because at large yaw detectors
place the hidden eye and mouth corner on the silhouette. Five points fix the pose only roughly.
On AFLW2000-3D (``faceatlas eval pose``, mean of the yaw/pitch/roll MAEs over 1,969 faces):
the labels' own five points (from their 68) give 2.5°; MTCNN's points 6.4° and RetinaFace's
7.0° (4.5° and 4.6° below 60° yaw). The gap is landmark error, largest past ~45° yaw, where
detectors pull the points toward a frontal layout; a better 3D template cannot close it.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from faceatlas.errors import InvalidArgumentError
from faceatlas.types import Landmarks, Pose

# The five mtcnn5 points of the Basel Face Model's mean face, in millimetres; camera frame for a
# frontal face (x to the image's right, y down, z away from the camera), origin at the nose tip.
# Derived from the BFM 2009 mean shape plus 3DDFA's mean expression as 3DDFA distributes them
# (u_shp.npy + u_exp.npy at the 68 landmark vertices of keypoints_sim.npy, in micrometres; read
# from the copy of 3DDFA's train.configs in XgTu/2DASL, test_codes/train.configs): eye = mean of
# the six eyelid points (iBUG 36-41, 42-47), nose tip = iBUG 30, mouth corners = iBUG 48 and 54;
# y and z flipped from BFM's y-up,
# z-toward-camera frame; left/right averaged (the raw mean is asymmetric by < 0.6 mm).
# It is the model AFLW2000-3D's poses were fitted with, so its "frontal" is that of the labels.
# Deeper than the earlier anthropometric guess (eyes 32 → 38.8 mm behind the nose tip), which
# matters for yaw: on AFLW2000-3D's own five points it halves the yaw error.
MEAN_FACE_3D = np.array(
    [
        [-31.54, -34.30, 38.76],  # eye on the image's left
        [31.54, -34.30, 38.76],  # eye on the image's right
        [0.0, 0.0, 0.0],  # nose tip
        [-25.19, 33.25, 32.84],  # mouth corner on the image's left
        [25.19, 33.25, 32.84],  # mouth corner on the image's right
    ],
    dtype=np.float64,
)

# Huber threshold on a point's residual, in units of the face's size (RMS distance of the five
# points from their centroid, ~0.66 inter-ocular): larger residuals count linearly, not squared,
# so one badly placed point (a hidden eye put on the silhouette) pulls the fit less. Chosen on
# even AFLW2000-3D image numbers: 0.2° better than plain least squares for MTCNN's and
# RetinaFace's points; 0.02-0.1 are within 0.07° of each other.
HUBER = 0.05
# names the pose model: results caches (faceatlas eval) keyed by it never serve another model's poses
POSE_MODEL = "bfm5-weak-perspective-huber-1"
_MAX_ITERATIONS = 10
_TOLERANCE = 1e-5  # radians (and log scale) per step: far below any landmark noise
_DEGENERATE = 1e-6  # relative spread below which the points carry no 3D information

# The template centred and scaled like the observations (unit RMS spread of its frontal
# projection), and the pseudo-inverse used for the closed-form start.
_CENTRED = MEAN_FACE_3D - MEAN_FACE_3D.mean(axis=0)
_MODEL = (_CENTRED / math.sqrt(float((_CENTRED[:, :2] ** 2).sum(axis=1).mean()))).T  # (3, 5)
_MODEL_PINV = np.linalg.pinv(_MODEL)  # (5, 3)


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


def estimate_pose(
    landmarks: Landmarks | np.ndarray, image_size: tuple[int, int], *, focal: float | None = None
) -> Pose:
    """Yaw, pitch and roll of the head with these landmarks in an image of ``(width, height)``.

    By default the camera is weak perspective (see the module docstring) and ``image_size``
    does not change the result. ``focal`` (pixels, principal point at the image's centre) fits
    a perspective camera instead, for callers who know their lens and want camera-axis angles.
    Points too close together or on one line carry no 3D information: the result is then the
    eyes' in-plane angle as roll, with yaw and pitch 0.
    """
    points = landmarks.points if isinstance(landmarks, Landmarks) else np.asarray(landmarks)
    if points.shape != (5, 2):
        raise InvalidArgumentError(f"estimate_pose needs (5, 2) landmark points, got shape {points.shape}")
    points = np.asarray(points, dtype=np.float64)
    if not np.isfinite(points).all():
        raise InvalidArgumentError(f"estimate_pose got non-finite landmark points: {points.tolist()}")
    if focal is not None and not (math.isfinite(focal) and focal > 0):
        raise InvalidArgumentError(f"focal must be a positive number of pixels, got {focal!r}")
    fitted = _fit_weak_perspective(points)
    if fitted is None:
        dx, dy = points[1] - points[0]
        return Pose(yaw=0.0, pitch=0.0, roll=math.degrees(math.atan2(dy, dx)) if dx or dy else 0.0)
    rotation, pixels_per_unit = fitted
    if focal is not None:
        rotation = _refine_perspective(points, image_size, float(focal), rotation, pixels_per_unit)
    return rotation_to_pose(rotation)


def _fit_weak_perspective(points: np.ndarray) -> tuple[np.ndarray, float] | None:
    """(R, scale): ``points ≈ scale · (R · model)[:2] + t``, model in unit-spread units; None if degenerate."""
    centred = (points - points.mean(axis=0)).T  # (2, 5)
    spread = math.sqrt(float((centred**2).sum(axis=0).mean()))
    if spread < 1e-9 or np.linalg.svd(centred, compute_uv=False)[1] < _DEGENERATE * spread:
        return None
    observed = centred / spread
    # Closed-form start: the least-squares affine camera, then the nearest scaled rotation.
    affine = observed @ _MODEL_PINV  # (2, 3)
    u, sv, vt = np.linalg.svd(affine, full_matrices=False)
    rows = u @ vt
    (x0, x1, x2), (y0, y1, y2) = rows
    rotation = np.vstack([rows, [x1 * y2 - x2 * y1, x2 * y0 - x0 * y2, x0 * y1 - x1 * y0]])
    log_scale = math.log(max(float(sv.mean()), 1e-6))
    # Gauss-Newton on a rotation increment δ (R ← exp([δ]×)·R: no gimbal lock at ±90° yaw) and
    # log scale, with Huber weights re-computed each step (IRLS). The Jacobian of s·R·X has a
    # fixed pattern (x rows: 0, s·y2, -s·y1, s·y0; y rows: -s·y2, 0, s·y0, s·y1), so the 4×4
    # normal equations [[cc·I, B], [Bᵀ, q·I]] with B·Bᵀ = (ca² + cb²)·I solve in closed form.
    u, v = observed
    for _ in range(_MAX_ITERATIONS):
        scale = math.exp(log_scale)
        a, b, c = scale * (rotation @ _MODEL)
        rx, ry = a - u, b - v
        w = np.minimum(1.0, HUBER / np.maximum(np.sqrt(rx * rx + ry * ry), 1e-12))
        wa, wb, wc = w * a, w * b, w * c
        cc, ca, cb, q = float(wc @ c) + 1e-12, float(wc @ a), float(wc @ b), float(wa @ a + wb @ b) + 1e-12
        g0, g1 = float(wc @ ry), -float(wc @ rx)  # minus the gradient, rotation about x and y
        g2, g3 = float(wb @ rx - wa @ ry), -float(wa @ rx + wb @ ry)  # about z, log scale
        # B = [[-ca, -cb], [-cb, ca]]: eliminate the first block, solve the scalar Schur system
        schur = max(q - (ca * ca + cb * cb) / cc, 1e-12)  # ≥ 0 by Cauchy-Schwarz
        d2 = (g2 - (-ca * g0 - cb * g1) / cc) / schur
        d3 = (g3 - (-cb * g0 + ca * g1) / cc) / schur
        d0 = (g0 + ca * d2 + cb * d3) / cc
        d1 = (g1 + cb * d2 - ca * d3) / cc
        increment, _ = cv2.Rodrigues(np.array([d0, d1, d2]))
        rotation = increment @ rotation
        log_scale = min(max(log_scale + d3, -20.0), 20.0)
        if max(abs(d0), abs(d1), abs(d2), abs(d3)) < _TOLERANCE:
            break
    if not np.isfinite(rotation).all():
        return None
    return rotation, math.exp(log_scale) * spread


def _refine_perspective(
    points: np.ndarray, image_size: tuple[int, int], focal: float, rotation: np.ndarray, pixels_per_unit: float
) -> np.ndarray:
    """Perspective PnP with this focal length, started from the weak-perspective fit."""
    width, height = image_size
    camera = np.array([[focal, 0, width / 2.0], [0, focal, height / 2.0], [0, 0, 1.0]])
    unit = math.sqrt(float((_CENTRED[:, :2] ** 2).sum(axis=1).mean()))  # mm per model unit
    depth = focal * unit / pixels_per_unit
    centre = points.mean(axis=0) - np.array([width / 2.0, height / 2.0])
    # the template's centroid sits at the points' centroid: translate its origin (the nose tip) accordingly
    tvec0 = np.array([centre[0] * depth / focal, centre[1] * depth / focal, depth]) - rotation @ MEAN_FACE_3D.mean(
        axis=0
    )
    rvec0, _ = cv2.Rodrigues(rotation)
    ok, rvec, _tvec = cv2.solvePnP(
        MEAN_FACE_3D,
        points.reshape(5, 1, 2),
        camera,
        None,
        rvec0,
        tvec0.reshape(3, 1),
        useExtrinsicGuess=True,
        flags=cv2.SOLVEPNP_ITERATIVE,
    )
    if not ok or not np.isfinite(rvec).all():
        return rotation
    refined, _ = cv2.Rodrigues(rvec)
    return np.asarray(refined, dtype=np.float64)
