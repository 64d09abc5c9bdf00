"""MTCNN face detection (Zhang et al. 2016) on ONNX Runtime, with the ``mtcnn`` package's weights.

The cascade follows ``mtcnn`` 1.0: an image pyramid through P-Net (12-pixel windows, stride 2),
NMS, box regression and square-ification; R-Net on 24x24 crops; O-Net on 48x48 crops for the
final score, box and five landmarks; a last NMS that measures overlap against the smaller box
("min"), which removes boxes nested in a bigger face. Pixels are normalised as
``(pixel - 127.5) / 128`` in numpy (see :mod:`faceatlas.models.mtcnn_onnx` for the graphs).

What differs from the package, on purpose:

* Greedy NMS. The package drops a box when any better box overlaps it, even one that was
  itself suppressed, so a face next to a suppressed false positive can vanish.
* The pyramid stops where the original MTCNN stops (the package's count ignores
  ``min_face_size`` and can produce levels smaller than the window).
* Faces cut by the frame, up to faces bigger than the frame: each pyramid level is padded with
  black by a third of the 12-pixel window on every side (4 pixels at that level, so the border
  is a third of the face size searched there, and cheap at the fine levels), and the pyramid
  goes on to faces twice the image's shorter side. A face cropped to its box, or tighter, is
  found; boxes may extend past the image edges and are kept so. R-Net/O-Net crops that leave
  the image are filled with black too (as the original MTCNN does).
* Batches: P-Net runs once per pyramid level for all images of the same size, R-Net and O-Net
  once per stage for every candidate of every image (chunked).
* Images whose longer side exceeds ``max_size`` are downscaled for detection; coordinates are
  mapped back to the original.

Coordinates follow :mod:`faceatlas.types`: integer coordinates are pixel centres, so a box that
covers pixels ``i0..i1`` is ``[i0 - 0.5, i1 + 0.5]``.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import cv2
import numpy as np

from faceatlas.detectors._checks import check_image_sequence, check_int
from faceatlas.errors import InvalidArgumentError, ModelError, UnsupportedImageError
from faceatlas.models.cache import cached_model
from faceatlas.models.cards import MTCNN_CARD
from faceatlas.models.mtcnn_onnx import CONVERTER_VERSION, STAGES, build_mtcnn_onnx
from faceatlas.models.runtime import create_session
from faceatlas.types import Box, Face, Landmarks

if TYPE_CHECKING:
    import onnxruntime as ort

WINDOW = 12  # P-Net's receptive field, in pixels of its pyramid level
STRIDE = 2  # P-Net's output stride
# Pixels added on each side of every pyramid level (a third of the window, so a third of the
# face searched at that level may lie outside the image). Even, so that the stride-2 windows
# inside the image are exactly the package's; black, as the original MTCNN fills crops that
# leave the image (it also did best of black / replicate / reflect on faces cropped tighter
# than their box).
BORDER = 4
BORDER_MODE = cv2.BORDER_CONSTANT  # value 0: black
MAX_FACE_RATIO = 2.0  # largest face searched, relative to the image's shorter side
CHUNK = {"rnet": 2048, "onet": 512}  # crops per onnxruntime call (bounds memory, not speed)


# ---------------------------------------------------------------------------------------------
# Small numeric helpers (boxes are float64 (n, 4) xyxy in "edge" coordinates: pixel i spans
# [i, i + 1); they are shifted by -0.5 into pixel-centre coordinates only at the very end).


def _as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise UnsupportedImageError(f"expected a numpy array (H, W, 3) RGB uint8, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise UnsupportedImageError(
            f"expected a uint8 RGB image, got dtype {image.dtype}; convert with .astype(np.uint8)"
        )
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]  # RGBA: the alpha channel carries no face information
    if image.ndim != 3 or image.shape[2] != 3:
        raise UnsupportedImageError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    return np.ascontiguousarray(image)


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """INTER_AREA to shrink (as the package's tf AREA resize; no aliasing), linear to enlarge."""
    if (width, height) == (image.shape[1], image.shape[0]):
        return image
    shrink = width <= image.shape[1] and height <= image.shape[0]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _normalise(batch_nhwc: np.ndarray) -> np.ndarray:
    """uint8 NHWC RGB -> float32 NCHW in MTCNN's range, (x - 127.5) / 128."""
    x = batch_nhwc.astype(np.float32).transpose(0, 3, 1, 2)
    return np.ascontiguousarray((x - 127.5) * (1.0 / 128.0))


def _pyramid_scales(height: int, width: int, min_face_size: int, factor: float) -> list[float]:
    """Scales at which a ``min_face_size`` face, then ever bigger ones, fill P-Net's window.

    The original MTCNN stops at faces as big as the shorter side; with the border the search
    goes on to faces ``MAX_FACE_RATIO`` times the shorter side (a face filling the frame, or
    cropped tighter than its box).
    """
    scales, scale = [], WINDOW / min_face_size
    shorter = min(height, width)
    while shorter * scale * MAX_FACE_RATIO >= WINDOW and shorter * scale + 2 * BORDER >= WINDOW:
        scales.append(scale)
        scale *= factor
    return scales


def _halvings(image: np.ndarray, smallest_scale: float) -> list[np.ndarray]:
    """The image and its exact 2x2-average halves, down to the first at or below ``smallest_scale``.

    Each pyramid level is then area-resized from the nearest source at most twice its size:
    nearly the same pixels as resizing the full image every time (what the package does),
    at a fraction of the cost (INTER_AREA with a fractional ratio costs ~10 ms per 1-Mpixel
    source). An odd last row/column is dropped from a half: less than a pixel of any level.
    """
    sources = [image]
    while 2.0 ** -len(sources) >= smallest_scale and min(sources[-1].shape[:2]) >= 2:
        src = sources[-1]
        h2, w2 = src.shape[0] // 2, src.shape[1] // 2
        sources.append(cv2.resize(src[: 2 * h2, : 2 * w2], (w2, h2), interpolation=cv2.INTER_AREA))
    return sources


def _level(sources: list[np.ndarray], scale: float) -> tuple[np.ndarray, float, float]:
    """The pyramid level at ``scale`` with its border, and its exact (sx, sy) = level / image."""
    k = min(len(sources) - 1, max(0, math.floor(-math.log2(scale)))) if scale < 1 else 0
    src = sources[k]
    ext_h, ext_w = src.shape[0] * 2**k, src.shape[1] * 2**k  # extent in image pixels
    sw, sh = max(1, math.ceil(ext_w * scale)), max(1, math.ceil(ext_h * scale))
    level = cv2.copyMakeBorder(_resize(src, sw, sh), BORDER, BORDER, BORDER, BORDER, BORDER_MODE)
    return level, sw / ext_w, sh / ext_h


def _nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, mode: str = "union") -> np.ndarray:
    """Greedy NMS, best score first; ``mode="min"`` divides the overlap by the smaller area
    (MTCNN's last step). Union mode uses OpenCV's C++ loop (5-50x faster than numpy here)."""
    if mode == "union":
        xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
        # OpenCV's bindings take the numpy arrays as they are; its stubs only name Python sequences
        rects = cast("Sequence[cv2.typing.Rect2d]", xywh)
        keep = cv2.dnn.NMSBoxes(rects, cast("Sequence[float]", scores.astype(np.float32)), 0.0, threshold)
        return np.sort(np.asarray(keep, dtype=np.int64).reshape(-1))
    order = np.argsort(-scores, kind="stable")
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        iw = np.clip(np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]), 0, None)
        ih = np.clip(np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]), 0, None)
        overlap = iw * ih / np.minimum(areas[i], areas[rest])
        order = rest[overlap <= threshold]
    return np.sort(np.asarray(keep, dtype=np.int64))


def _nms_per_image(
    image_ids: np.ndarray, boxes: np.ndarray, scores: np.ndarray, threshold: float, mode: str = "union"
) -> np.ndarray:
    """Indices kept by NMS run separately for every image (boxes of different images never compete)."""
    kept = [
        np.flatnonzero(image_ids == i)[_nms(boxes[image_ids == i], scores[image_ids == i], threshold, mode)]
        for i in np.unique(image_ids)
    ]
    return np.sort(np.concatenate(kept)) if kept else np.empty(0, dtype=np.int64)


def _regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """Apply (dx1, dy1, dx2, dy2) offsets, in units of the box's width and height."""
    size = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]] * 2, axis=1)
    return boxes + reg.astype(np.float64) * size


def _positive(boxes: np.ndarray) -> np.ndarray:
    """Mask of boxes with a positive width and height (a wild regression can invert a box)."""
    return (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])


def _square(boxes: np.ndarray) -> np.ndarray:
    """Grow the shorter side around the centre, then snap to whole pixels (crops are pixel-exact)."""
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    side = np.maximum(np.round(side), 1.0)
    x1, y1 = np.round(cx - side / 2), np.round(cy - side / 2)
    return np.stack([x1, y1, x1 + side, y1 + side], axis=1)


def _onet_landmarks(boxes: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """O-Net's landmarks (x1..x5, y1..y5 as fractions of the box it saw) in pixels, (n, 5, 2)."""
    lm = fractions.astype(np.float64)
    xs = boxes[:, :1] + lm[:, :5] * (boxes[:, 2:3] - boxes[:, :1])
    ys = boxes[:, 1:2] + lm[:, 5:] * (boxes[:, 3:4] - boxes[:, 1:2])
    return np.stack([xs, ys], axis=2)


def _crop(image: np.ndarray, box: np.ndarray, size: int) -> np.ndarray | None:
    """The integer box resized to ``size``², filling outside the image like the pyramid border."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (int(v) for v in box)
    ix1, iy1, ix2, iy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if ix1 >= ix2 or iy1 >= iy2:
        return None  # entirely outside the image: nothing to look at
    patch = image[iy1:iy2, ix1:ix2]
    if (ix1, iy1, ix2, iy2) != (x1, y1, x2, y2):
        patch = cv2.copyMakeBorder(patch, iy1 - y1, y2 - iy2, ix1 - x1, x2 - ix2, BORDER_MODE)
    return _resize(patch, size, size)


def _crops(
    images: Sequence[np.ndarray], image_ids: np.ndarray, boxes: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 crops (n, size, size, 3) and the indices of the boxes that produced one."""
    patches, valid = [], []
    for k, (i, box) in enumerate(zip(image_ids, boxes)):
        patch = _crop(images[i], box, size)
        if patch is not None:
            patches.append(patch)
            valid.append(k)
    if not patches:
        return np.empty((0, size, size, 3), np.uint8), np.empty(0, dtype=np.int64)
    return np.stack(patches), np.asarray(valid, dtype=np.int64)


class _Candidates:
    """Boxes of a batch of images: ``ids`` (which image), ``boxes`` (n, 4), ``scores`` (n,)."""

    def __init__(
        self, ids: np.ndarray, boxes: np.ndarray, scores: np.ndarray, landmarks: np.ndarray | None = None
    ) -> None:
        self.ids, self.boxes, self.scores, self.landmarks = ids, boxes, scores, landmarks

    @classmethod
    def empty(cls) -> _Candidates:
        return cls(np.empty(0, np.int64), np.empty((0, 4)), np.empty(0))

    @classmethod
    def concat(cls, parts: Sequence[_Candidates]) -> _Candidates:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate(a) for a in zip(*((p.ids, p.boxes, p.scores) for p in parts))))

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, index: np.ndarray) -> _Candidates:
        lm = None if self.landmarks is None else self.landmarks[index]
        return _Candidates(self.ids[index], self.boxes[index], self.scores[index], lm)

    def points(self) -> np.ndarray:
        """The (n, 5, 2) landmarks, which only candidates that went through O-Net carry."""
        if self.landmarks is None:
            raise ModelError("MTCNN internal error: these candidates have no landmarks (O-Net did not run on them)")
        return self.landmarks


def _pnet_boxes(
    prob: np.ndarray, reg: np.ndarray, scale_x: float, scale_y: float, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Windows of one image at one level whose face probability beats ``threshold``, regressed
    and mapped to the working image: (boxes, scores)."""
    ys, xs = np.nonzero(prob[1] > threshold)
    windows = np.stack([xs * STRIDE, ys * STRIDE, xs * STRIDE + WINDOW, ys * STRIDE + WINDOW], axis=1) - BORDER
    boxes = _regress(windows.astype(np.float64), reg[:, ys, xs].T)
    ok = _positive(boxes)
    return boxes[ok] / np.array([scale_x, scale_y, scale_x, scale_y]), prob[1, ys, xs][ok].astype(np.float64)


# ---------------------------------------------------------------------------------------------


class MTCNNDetector:
    """Detect faces and five landmarks with MTCNN; models are converted and loaded on first use.

    Args:
        min_face_size: smallest face (box side, pixels of the working image) searched for, >= 8.
        thresholds: face-probability thresholds of P-Net, R-Net and O-Net, each in (0, 1).
        scale_factor: ratio between pyramid levels, in [0.3, 0.95] (smaller: faster, coarser).
        nms_thresholds: overlap thresholds of the four NMS steps: P-Net within a level, P-Net
            across levels, R-Net (all IoU) and O-Net (overlap / smaller area), each in (0, 1].
        max_size: longest side the detector works at; bigger images are downscaled for detection
            (so in them ``min_face_size`` applies to the downscaled image). ``None``: never.
        providers: onnxruntime execution providers (default: CUDA when available, then CPU).
        cache_dir: where converted ONNX files are kept (default: faceatlas' model cache).
    """

    def __init__(
        self,
        min_face_size: int = 20,
        thresholds: Sequence[float] = (0.6, 0.7, 0.7),
        scale_factor: float = 0.709,
        nms_thresholds: Sequence[float] = (0.5, 0.7, 0.7, 0.7),
        max_size: int | None = 2000,
        refine_landmarks: bool = True,
        providers: Sequence[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.min_face_size = check_int("min_face_size", min_face_size, 8)
        self.thresholds = _check_fractions("thresholds", thresholds, 3, closed=False)
        self.nms_thresholds = _check_fractions("nms_thresholds", nms_thresholds, 4, closed=True)
        if not isinstance(scale_factor, (int, float)) or not 0.3 <= scale_factor <= 0.95:
            raise InvalidArgumentError(
                f"scale_factor must be a number in [0.3, 0.95] (MTCNN uses 0.709), got {scale_factor!r}"
            )
        self.scale_factor = float(scale_factor)
        self.max_size = None if max_size is None else check_int("max_size", max_size, 64)
        self.refine_landmarks = bool(refine_landmarks)
        self.providers = list(providers) if providers else None
        self.cache_dir = cache_dir
        self._sessions: dict[str, ort.InferenceSession] | None = None

    def __repr__(self) -> str:
        return (
            f"MTCNNDetector(min_face_size={self.min_face_size}, thresholds={self.thresholds}, "
            f"scale_factor={self.scale_factor}, nms_thresholds={self.nms_thresholds}, max_size={self.max_size})"
        )

    # -- models ------------------------------------------------------------------------------

    def load(self) -> MTCNNDetector:
        """Convert (or find in the cache) and open the three networks now rather than on first use."""
        self._loaded()
        return self

    def _loaded(self) -> dict[str, ort.InferenceSession]:
        """The three networks' sessions by stage, opened on first use."""
        if self._sessions is None:
            MTCNN_CARD.verify_source()  # the weights the card (and its tests) describe
            digests = {src.path.rsplit("/", 1)[-1].split(".")[0]: src.sha256 for src in MTCNN_CARD.source}
            sessions = {}
            for stage in STAGES:
                path = cached_model(
                    f"mtcnn_{stage}",
                    digests[stage],
                    CONVERTER_VERSION,
                    functools.partial(build_mtcnn_onnx, stage),
                    self.cache_dir,
                )
                sessions[stage] = create_session(path, self.providers)
            self._sessions = sessions
        return self._sessions

    def _run(self, stage: str, batch: np.ndarray) -> dict[str, np.ndarray]:
        session = self._loaded()[stage]
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(names, {"image": batch})))

    def _run_chunked(self, stage: str, patches: np.ndarray) -> dict[str, np.ndarray]:
        parts = [
            self._run(stage, _normalise(patches[i : i + CHUNK[stage]])) for i in range(0, len(patches), CHUNK[stage])
        ]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    # -- public API --------------------------------------------------------------------------

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in one RGB uint8 (H, W, 3) image, best score first."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """Faces in each image; P-Net is batched over same-size images, R-/O-Net over everything."""
        check_image_sequence(images)
        originals = [_as_rgb_uint8(im) for im in images]
        if not originals:
            return []
        working, factors = zip(*(self._working_image(im) for im in originals))
        cands = self._stage_pnet(working)
        cands = self._stage_rnet(working, cands)
        cands = self._stage_onet(working, cands)
        if self.refine_landmarks:
            cands = self._refine_landmarks(working, cands)
        return self._to_faces(cands, factors, len(originals))

    def refine_points(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """O-Net's five points for faces another detector framed in one image: see :meth:`refine_points_batch`."""
        return self.refine_points_batch([image], boxes, np.zeros(len(boxes), np.int64))

    def refine_points_batch(
        self, images: Sequence[np.ndarray], boxes: np.ndarray, image_ids: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """O-Net's five points for faces another detector framed: ``(points (n, 5, 2), prob (n,))``.

        ``boxes`` (n, 4) are x1, y1, x2, y2 in pixel-centre coordinates of ``images[image_ids[k]]``;
        every image's faces go through O-Net together. As in :meth:`_refine_landmarks`, O-Net
        looks twice, at the squared box and at its own regressed box, and the two readings are
        averaged; ``prob`` is its face probability at the first look (NaN, with NaN points, where
        a box lies wholly outside its image).
        """
        pixels = [_as_rgb_uint8(image) for image in images]
        n = len(boxes)
        points = np.full((n, 5, 2), np.nan)
        prob = np.full(n, np.nan)
        if not n:
            return points, prob
        ids = np.asarray(image_ids, np.int64).reshape(n)
        first = _Candidates(ids, np.asarray(boxes, np.float64).reshape(n, 4) + 0.5, np.zeros(n))
        looked, out = self._look_again(pixels, first, "onet")
        if not len(looked):
            return points, prob
        valid = out["valid"]
        readings = _onet_landmarks(looked.boxes, out["landmarks"])
        prob[valid] = out["prob"][:, 1]
        regressed = _Candidates(looked.ids, _regress(looked.boxes, out["bbox_reg"]), looked.scores)
        again, out2 = self._look_again(pixels, regressed, "onet")
        if len(again):
            second = _onet_landmarks(again.boxes, out2["landmarks"])
            readings[out2["valid"]] = (readings[out2["valid"]] + second) / 2.0
        points[valid] = readings - 0.5
        return points, prob

    # -- stages ------------------------------------------------------------------------------

    def _working_image(self, image: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
        """Downscale images above ``max_size``; returns the image and (sx, sy) = working / original."""
        h, w = image.shape[:2]
        if self.max_size is None or max(h, w) <= self.max_size:
            return image, (1.0, 1.0)
        s = self.max_size / max(h, w)
        nw, nh = max(1, round(w * s)), max(1, round(h * s))
        return _resize(image, nw, nh), (nw / w, nh / h)

    def _stage_pnet(self, images: Sequence[np.ndarray]) -> _Candidates:
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, im in enumerate(images):
            by_size.setdefault(im.shape[:2], []).append(i)
        parts = [self._pnet_group(images, ids) for ids in by_size.values()]
        cands = _Candidates.concat(parts)
        keep = _nms_per_image(cands.ids, cands.boxes, cands.scores, self.nms_thresholds[1])
        return cands.take(keep)

    def _pnet_group(self, images: Sequence[np.ndarray], ids: list[int]) -> _Candidates:
        """P-Net over the pyramid of images that share one size, one batch per level; NMS per level."""
        h, w = images[ids[0]].shape[:2]
        scales = _pyramid_scales(h, w, self.min_face_size, self.scale_factor)
        if not scales:
            return _Candidates.empty()
        sources = [_halvings(images[i], scales[-1]) for i in ids]
        parts = []
        for scale in scales:
            levels = [_level(src, scale) for src in sources]
            sx, sy = levels[0][1], levels[0][2]  # same size, same factors
            out = self._run("pnet", _normalise(np.stack([lv[0] for lv in levels])))
            for k, i in enumerate(ids):
                boxes, scores = _pnet_boxes(out["prob"][k], out["bbox_reg"][k], sx, sy, self.thresholds[0])
                if len(scores):
                    keep = _nms(boxes, scores, self.nms_thresholds[0])
                    parts.append(_Candidates(np.full(len(keep), i), boxes[keep], scores[keep]))
        return _Candidates.concat(parts)

    def _look_again(
        self, images: Sequence[np.ndarray], cands: _Candidates, stage: str
    ) -> tuple[_Candidates, dict[str, np.ndarray]]:
        """Square the boxes, crop them to ``stage``'s input size and run it.

        Returns the candidates that gave a crop (boxes squared) and the stage's outputs, plus
        ``"valid"``: their indices in ``cands``.
        """
        size = {"rnet": 24, "onet": 48}[stage]
        if not len(cands):
            return _Candidates.empty(), {}
        squared = _Candidates(cands.ids, _square(cands.boxes), cands.scores, cands.landmarks)
        patches, valid = _crops(images, squared.ids, squared.boxes, size)
        if not len(valid):
            return _Candidates.empty(), {}
        out = self._run_chunked(stage, patches)
        out["valid"] = np.asarray(valid)
        return squared.take(np.asarray(valid)), out

    def _stage_rnet(self, images: Sequence[np.ndarray], cands: _Candidates) -> _Candidates:
        looked, out = self._look_again(images, cands, "rnet")
        if not len(looked):
            return looked
        cands = looked
        scores = out["prob"][:, 1].astype(np.float64)
        boxes = _regress(cands.boxes, out["bbox_reg"])
        passed = np.flatnonzero((scores > self.thresholds[1]) & _positive(boxes))
        cands = _Candidates(cands.ids[passed], boxes[passed], scores[passed])
        return cands.take(_nms_per_image(cands.ids, cands.boxes, cands.scores, self.nms_thresholds[2]))

    def _stage_onet(self, images: Sequence[np.ndarray], cands: _Candidates) -> _Candidates:
        looked, out = self._look_again(images, cands, "onet")
        if not len(looked):
            return looked
        cands = looked
        scores = out["prob"][:, 1].astype(np.float64)
        # Landmarks are fractions of the box O-Net looked at (before its own regression).
        landmarks = _onet_landmarks(cands.boxes, out["landmarks"])
        boxes = _regress(cands.boxes, out["bbox_reg"])
        passed = np.flatnonzero((scores > self.thresholds[2]) & _positive(boxes))
        cands = _Candidates(cands.ids[passed], boxes[passed], scores[passed], landmarks[passed])
        return cands.take(_nms_per_image(cands.ids, cands.boxes, cands.scores, self.nms_thresholds[3], "min"))

    def _refine_landmarks(self, images: Sequence[np.ndarray], cands: _Candidates) -> _Candidates:
        """Run O-Net once more on the final, regressed boxes and average the two landmark sets.

        The first O-Net pass sees the R-Net box, often off-centre; the regressed box frames the
        face better, and the mean of the two readings is steadier (it lowers the landmark error,
        hence the alignment jitter, measured in docs/BENCHMARKS.md).
        """
        looked, out = self._look_again(images, cands, "onet")
        if not len(looked):
            return cands
        landmarks = cands.points().copy()
        second = _onet_landmarks(looked.boxes, out["landmarks"])
        landmarks[out["valid"]] = (looked.points() + second) / 2.0
        return _Candidates(cands.ids, cands.boxes, cands.scores, landmarks)

    @staticmethod
    def _to_faces(cands: _Candidates, factors: Sequence[tuple[float, float]], count: int) -> list[list[Face]]:
        """Back to original-image pixel-centre coordinates, best score first per image."""
        result: list[list[Face]] = [[] for _ in range(count)]
        for k in np.argsort(-cands.scores, kind="stable"):
            i = int(cands.ids[k])
            sx, sy = factors[i]
            x1, y1, x2, y2 = cands.boxes[k] / (sx, sy, sx, sy) - 0.5
            points = cands.points()[k] / (sx, sy) - 0.5
            result[i].append(
                Face(
                    box=Box(float(x1), float(y1), float(x2), float(y2)),
                    score=float(cands.scores[k]),
                    landmarks=Landmarks(points.astype(np.float32)),
                )
            )
        return result


def _check_fractions(name: str, values: Sequence[float], count: int, closed: bool) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        out = ()
    upper_ok = (lambda v: v <= 1.0) if closed else (lambda v: v < 1.0)
    if len(out) != count or not all(v > 0.0 and upper_ok(v) for v in out):
        interval = "(0, 1]" if closed else "(0, 1)"
        raise InvalidArgumentError(f"{name} must be {count} numbers in {interval}, got {values!r}")
    return out
