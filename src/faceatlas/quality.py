"""A first per-face quality score in [0, 1], from named, interpretable components.

Each component maps a physical measurement to [0, 1] (1 = no problem for recognition); the
score is their weighted geometric mean, so one bad aspect (a tiny, a blurred or a profile face)
pulls the whole score down, as it pulls down recognition. The breakpoints below are a priori
choices from how the dlib ResNet's 150-px crop is built; a later issue fits them against
recognition error (error-versus-discard).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from faceatlas.types import Landmarks, Pose, Quality

# Inter-ocular distance (pixels in the original image) from which a face is "big enough": the
# ResNet's crop has ~53 px between the eyes, so below ~40 px detail is invented by upsampling.
FULL_SIZE_IOD = 40.0
MIN_SIZE_IOD = 6.0
# Variance of the Laplacian of the aligned grey crop at which sharpness counts as half-good.
HALF_SHARPNESS_VAR = 60.0
# Head angles (degrees) at which the pose component falls to exp(-1) ≈ 0.37.
YAW_SCALE, PITCH_SCALE = 50.0, 40.0
WEIGHTS = {"size": 1.0, "sharpness": 1.0, "pose": 1.0, "exposure": 0.5, "confidence": 0.5}


def size_component(landmarks: Landmarks) -> float:
    iod = float(np.linalg.norm(landmarks.points[1] - landmarks.points[0]))
    return float(np.clip((iod - MIN_SIZE_IOD) / (FULL_SIZE_IOD - MIN_SIZE_IOD), 0.0, 1.0))


def face_region(grey: np.ndarray) -> np.ndarray:
    """The inner face of an aligned crop (skips background and hair at the borders)."""
    h, w = grey.shape
    return grey[int(h * 0.2) : int(h * 0.9), int(w * 0.2) : int(w * 0.8)]


def laplacian_variance(grey_crop: np.ndarray) -> float:
    """Variance of the Laplacian of the crop's inner face: how much fine detail it has."""
    return float(cv2.Laplacian(face_region(grey_crop), cv2.CV_64F).var())


def sharpness_component(grey_crop: np.ndarray) -> float:
    variance = laplacian_variance(grey_crop)
    return variance / (variance + HALF_SHARPNESS_VAR)


def exposure_component(grey_crop: np.ndarray) -> float:
    """Penalises dark, washed-out and flat (low-contrast) faces."""
    region = face_region(grey_crop).astype(np.float64)
    brightness = region.mean() / 255.0
    brightness_score = 1.0 - ((brightness - 0.5) / 0.5) ** 4  # flat in the middle, 0 at black/white
    contrast_score = min(1.0, region.std() / 30.0)
    return float(np.clip(brightness_score, 0.0, 1.0) * math.sqrt(contrast_score))


def pose_component(pose: Pose) -> float:
    return math.exp(-((pose.yaw / YAW_SCALE) ** 2) - (pose.pitch / PITCH_SCALE) ** 2)


def assess_quality(aligned_crop: np.ndarray, landmarks: Landmarks, pose: Pose, detector_score: float) -> Quality:
    """Score one face from its aligned RGB crop, its landmarks (original image) and its pose."""
    grey = cv2.cvtColor(aligned_crop, cv2.COLOR_RGB2GRAY)
    parts = {
        "size": size_component(landmarks),
        "sharpness": sharpness_component(grey),
        "pose": pose_component(pose),
        "exposure": exposure_component(grey),
        "confidence": float(np.clip(detector_score, 0.0, 1.0)),
    }
    total = sum(WEIGHTS.values())
    log_score = sum(WEIGHTS[k] * math.log(max(v, 1e-6)) for k, v in parts.items()) / total
    return Quality(
        score=float(math.exp(log_score)), size=parts["size"], sharpness=parts["sharpness"], pose=parts["pose"],
        exposure=parts["exposure"], confidence=parts["confidence"],
    )  # fmt: skip
