"""Frozen, typed records passed between the pipeline stages.

Conventions, written down once:

* Pixel coordinates: origin at the top-left, x to the right, y down; integer coordinates name
  pixel centres, as in OpenCV and dlib. Boxes are ``xyxy`` floats in pixels.
* Landmarks use the ``"mtcnn5"`` scheme: five (x, y) points in this order —
  the eye on the image's left (the subject's right eye), the eye on the image's right, the nose
  tip, the mouth corner on the image's left, the mouth corner on the image's right.
* Head pose is in degrees (see :class:`Pose` for the signs).
* Embeddings are float32, L2-normalised; similarity is the cosine (dot product): higher means
  more alike, always.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np

from faceatlas.errors import InvalidArgumentError

LANDMARK_SCHEME: Final = "mtcnn5"
LANDMARK_NAMES: tuple[str, ...] = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


def readonly(array: np.ndarray, dtype: type | np.dtype = np.float32) -> np.ndarray:
    """Return a C-contiguous read-only copy-if-needed of ``array`` (frozen records hold these)."""
    out = np.ascontiguousarray(array, dtype=dtype)
    if out is array or out.base is array:
        out = out.copy()
    out.flags.writeable = False
    return out


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box in pixels, ``xyxy`` with the origin at the top-left."""

    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0)

    def as_xyxy(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)

    def as_xywh(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.width, self.height)

    def iou(self, other: Box) -> float:
        ix = max(0.0, min(self.x2, other.x2) - max(self.x1, other.x1))
        iy = max(0.0, min(self.y2, other.y2) - max(self.y1, other.y1))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Landmarks:
    """Five facial points, ``points[i] = (x, y)`` in pixels, in the order of ``LANDMARK_NAMES``."""

    points: np.ndarray  # (5, 2) float32, read-only
    scheme: Literal["mtcnn5"] = LANDMARK_SCHEME

    def __post_init__(self) -> None:
        pts = readonly(self.points)
        if pts.shape != (5, 2):
            raise InvalidArgumentError(f"Landmarks need a (5, 2) array of (x, y) points, got shape {pts.shape}")
        object.__setattr__(self, "points", pts)

    @property
    def left_eye(self) -> tuple[float, float]:
        return (float(self.points[0, 0]), float(self.points[0, 1]))

    @property
    def right_eye(self) -> tuple[float, float]:
        return (float(self.points[1, 0]), float(self.points[1, 1]))

    @property
    def nose(self) -> tuple[float, float]:
        return (float(self.points[2, 0]), float(self.points[2, 1]))

    @property
    def mouth_left(self) -> tuple[float, float]:
        return (float(self.points[3, 0]), float(self.points[3, 1]))

    @property
    def mouth_right(self) -> tuple[float, float]:
        return (float(self.points[4, 0]), float(self.points[4, 1]))


@dataclass(frozen=True, slots=True)
class Pose:
    """Head pose in degrees, camera-centred (x right, y down, z into the scene).

    * ``yaw``: rotation about the vertical axis; positive when the subject turns their head
      toward the image's right (their own left), 0 when facing the camera.
    * ``pitch``: rotation about the horizontal axis; positive when the subject looks up.
    * ``roll``: in-plane rotation; positive when the head tilts clockwise in the image
      (the eye on the image's right is lower than the one on the left).
    """

    yaw: float
    pitch: float
    roll: float


@dataclass(frozen=True, slots=True)
class Quality:
    """How useful a face is for recognition: ``score`` in [0, 1] and the components behind it.

    Every component is in [0, 1], 1 being best: ``size`` (inter-ocular distance in pixels),
    ``sharpness`` (variance of the Laplacian on the aligned crop), ``pose`` (frontality),
    ``exposure`` (brightness and contrast of the crop), ``confidence`` (the detector's score).
    ``method`` says what made ``score``: "heuristic" (the components' weighted geometric mean) or
    "learned:<embedder card>" (``faceatlas.learned_quality``), which keeps the heuristic's score in
    ``heuristic``.
    """

    score: float
    size: float
    sharpness: float
    pose: float
    exposure: float
    confidence: float
    heuristic: float | None = None
    method: str = "heuristic"

    def components(self) -> dict[str, float]:
        return {
            "size": self.size,
            "sharpness": self.sharpness,
            "pose": self.pose,
            "exposure": self.exposure,
            "confidence": self.confidence,
        }


@dataclass(frozen=True, slots=True)
class Face:
    """One detected face. Later stages fill ``pose``, ``quality`` and ``embedding``."""

    box: Box
    score: float
    landmarks: Landmarks
    pose: Pose | None = None
    quality: Quality | None = None
    embedding: np.ndarray | None = field(default=None, repr=False)  # (D,) float32, L2-normalised

    def __post_init__(self) -> None:
        if self.embedding is not None:
            object.__setattr__(self, "embedding", readonly(self.embedding))


@dataclass(frozen=True, slots=True)
class Match:
    """The answer of a 1:1 comparison.

    ``similarity`` is the cosine of the two embeddings (higher = more alike); ``is_match`` is
    ``similarity >= threshold``; ``far`` is the false-accept rate the threshold was calibrated
    for, or ``None`` when the caller passed a raw threshold.
    """

    similarity: float
    threshold: float
    is_match: bool
    far: float | None = None

    def __bool__(self) -> bool:
        return self.is_match


@dataclass(frozen=True)
class FaceMatrix:
    """Every face of a store in one consistent read: what an index or a clusterer is built from.

    One row per face, ascending face ids, read-only arrays. A gallery's matrix (``face_matrix()``)
    fills ``person_ids`` and ``version``; a collection's (``face_table()``, also named
    ``FaceTable``) has no gallery people (``person_ids`` all -1) and fills ``photo_ids`` and
    ``clusters`` instead, which a gallery leaves None.
    """

    face_ids: np.ndarray  # (n,) int64, ascending
    person_ids: np.ndarray  # (n,) int64: each face's gallery person; -1 where the store has none (a collection)
    embeddings: np.ndarray  # (n, dim) float32, L2-normalised
    qualities: np.ndarray  # (n,) float32; a face stored without quality counts as 1.0 (as Gallery.enroll)
    version: int = 0  # a gallery store's change counter at the time of the read; 0 for a collection
    photo_ids: np.ndarray | None = None  # (n,) int64: each face's photo (collections)
    clusters: np.ndarray | None = None  # (n,) int64: cluster id, -1 unassigned, -2 not clustered yet (collections)

    def __len__(self) -> int:
        return int(self.face_ids.shape[0])
