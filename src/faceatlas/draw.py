"""Draw faces on an image: boxes, landmarks and a score/pose label (for `faceatlas detect --draw`)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from faceatlas.types import Face

_LANDMARK_COLOURS = [(255, 64, 64), (64, 64, 255), (64, 255, 64), (255, 160, 0), (255, 0, 255)]


def draw_faces(image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
    """A copy of the RGB ``image`` with each face's box, five points and score drawn on it."""
    canvas = np.ascontiguousarray(image.copy())
    thickness = max(1, round(max(image.shape[:2]) / 400))
    for face in faces:
        x1, y1, x2, y2 = (round(v) for v in face.box.as_xyxy())
        cv2.rectangle(canvas, (x1, y1), (x2, y2), (0, 255, 0), thickness)
        for (x, y), colour in zip(face.landmarks.points, _LANDMARK_COLOURS, strict=True):
            cv2.circle(canvas, (round(float(x)), round(float(y))), thickness + 1, colour, -1)
        label = f"{face.score:.2f}"
        if face.pose is not None:
            label += f" y{face.pose.yaw:+.0f} p{face.pose.pitch:+.0f} r{face.pose.roll:+.0f}"
        if face.quality is not None:
            label += f" q{face.quality.score:.2f}"
        cv2.putText(
            canvas, label, (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thickness, (255, 255, 0), thickness
        )
    return canvas
