"""What the user-supplied ONNX detectors (SCRFD, YuNet) share: input policy, batching, NMS, mapping.

Input policy, as InsightFace and OpenCV feed these networks:

* a graph with a fixed input (e.g. 1×3×640×640): the image is letterboxed into it, aspect kept,
  resized so it fits and padded bottom/right with black (pixel value 0, before normalisation);
* a dynamic graph (``['?', 3, '?', '?']``): by default the photo at its own size, its longer side
  brought into [320, 1920] px (a 250-px LFW crop is upscaled to 320: at its own size SCRFD-500M's
  frontal-vs-profile accuracy fell from 0.980 to 0.944 in a run by hand; a 12 MP photo is detected at
  1920 px, so faces above ~25 px of the original are found); ``input_size=N`` resizes every image to
  a longer side of N instead (InsightFace's own default is 640). The result is padded bottom/right
  with black to a multiple of the largest stride (32), so every stride's grid is whole.

Network outputs are read as coordinates of the network's input in the corner convention (pixel
``i`` spans ``[i, i + 1)``: anchors at ``(x * stride, y * stride)``, as the networks were trained),
divided by the exact per-axis resize factors and shifted by -0.5 into the pixel-centre convention
of :mod:`faceatlas.types`, as MTCNN and RetinaFace do.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import cv2
import numpy as np

from faceatlas.detectors._checks import check_fraction, check_image_sequence, check_int
from faceatlas.detectors.mtcnn import _as_rgb_uint8, _nms
from faceatlas.errors import InvalidArgumentError, ModelError
from faceatlas.models._lazy_session import LazySession
from faceatlas.models.byo import ByoModel, model_info
from faceatlas.models.cards import ModelCard
from faceatlas.models.onnx_graph import DetectorGraph, describe_kind
from faceatlas.types import Box, Face, Landmarks

if TYPE_CHECKING:
    import onnxruntime as ort

# Where the five mtcnn5 points sit inside a WIDER-FACE-style box, as fractions of its width and
# height, for detectors whose graph has no keypoint outputs. Measured: the median of faceatlas'
# MTCNN landmarks inside the matched WIDER FACE train boxes (Handshaking event, boxes >= 40 px,
# not occluded, typical pose, IoU > 0.4; the 64 near-frontal of them: nose within 5% of the box
# width from the eyes' midpoint), mirrored to be left-right symmetric. A mean face: alignment
# from it is coarse (no roll, no yaw); it lets such a detector feed an embedder at all.
MEAN_LAYOUT = np.array(
    [[0.27, 0.38], [0.73, 0.38], [0.50, 0.58], [0.29, 0.74], [0.71, 0.74]],
    dtype=np.float64,
)
PRE_NMS_TOP_K = 5000  # candidates kept for NMS per image (OpenCV's FaceDetectorYN default top_k)
AUTO_INPUT_RANGE = (320, 1920)  # longer side of a dynamic graph's input when input_size is None


def landmarks_from_boxes(boxes: np.ndarray) -> np.ndarray:
    """(n, 5, 2) points of MEAN_LAYOUT placed in (n, 4) xyxy boxes."""
    wh = boxes[:, None, 2:] - boxes[:, None, :2]
    return boxes[:, None, :2] + MEAN_LAYOUT[None] * wh


class OnnxDetector(LazySession):
    """Base of the detectors that run a user's ONNX file; subclasses decode their graph's outputs.

    Args:
        model_path: the ``.onnx`` file, or a model-pack folder holding one detector.
        min_face_size: faces whose box's longer side is smaller (original pixels) are dropped.
        score_threshold, nms_threshold: the operating point (defaults: the family's own, or the sidecar's).
        input_size: longer side the image is resized to for a dynamic graph (a fixed graph sets its own).
        channel_order, mean, std: override the family's preprocessing (or the sidecar's).
        batch_size: images per run for graphs with a dynamic batch axis.
        providers: onnxruntime execution providers (default: CUDA when available, then CPU).
        cache_dir: accepted like every detector's; a user's file is run as it is, nothing is cached.
        card: a card to report instead of the inferred one.
    """

    kind: ClassVar[str]
    default_score_threshold: ClassVar[float]
    default_nms_threshold: ClassVar[float]
    card: ModelCard

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        min_face_size: int = 20,
        score_threshold: float | None = None,
        nms_threshold: float | None = None,
        input_size: int | None = None,
        channel_order: str | None = None,
        mean: float | Sequence[float] | None = None,
        std: float | Sequence[float] | None = None,
        batch_size: int = 8,
        providers: Sequence[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        card: ModelCard | None = None,
    ) -> None:
        model = model_info(model_path, "detection", channel_order=channel_order, mean=mean, std=std)
        if model.kind != self.kind:
            raise ModelError(
                f"{model.path} is a {describe_kind(model.graph)}, not what {type(self).__name__} runs; "
                "faceatlas.create_detector(path) picks the right detector for a file"
            )
        graph = model.graph
        assert isinstance(graph, DetectorGraph)
        self.model: ByoModel = model
        self.model_path: Path = model.path
        self.graph: DetectorGraph = graph
        self.preprocessing = model.preprocessing
        self.card = card if card is not None else model.card
        self.min_face_size = check_int("min_face_size", min_face_size, 0)
        score = score_threshold if score_threshold is not None else model.options.get("score_threshold")
        nms = nms_threshold if nms_threshold is not None else model.options.get("nms_threshold")
        self.score_threshold = check_fraction(
            "score_threshold", self.default_score_threshold if score is None else score
        )
        self.nms_threshold = check_fraction("nms_threshold", self.default_nms_threshold if nms is None else nms, True)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.multiple = max(graph.strides)
        fixed = graph.input_hw
        if fixed is not None:
            if input_size is not None and input_size != max(fixed):
                raise InvalidArgumentError(
                    f"input_size={input_size!r}: {model.path.name}'s input is fixed at {fixed[1]}×{fixed[0]}; "
                    "leave input_size unset for this model"
                )
            self.input_size: int | None = max(fixed)
        else:  # None: each photo near its own size (AUTO_INPUT_RANGE)
            self.input_size = None if input_size is None else check_int("input_size", input_size, self.multiple)
        if graph.input.dtype not in ("float32", "float16"):
            raise ModelError(
                f"{model.path.name} takes {graph.input.dtype} input; faceatlas feeds detectors float32 or float16"
            )
        self.estimated_landmarks = not graph.keypoints  # see MEAN_LAYOUT
        self.providers = list(providers) if providers else None
        self.cache_dir = cache_dir
        self._single = graph.fixed_batch == 1 or not graph.batched  # one image a run
        self._init_session()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self.model_path)!r}, min_face_size={self.min_face_size}, "
            f"score_threshold={self.score_threshold}, nms_threshold={self.nms_threshold}, "
            f"input_size={self.input_size})"
        )

    # -- model ---------------------------------------------------------------------------------

    def _open(self) -> ort.InferenceSession:
        from faceatlas.models.runtime import create_session

        return create_session(self.model_path, self.providers)

    # -- public API ----------------------------------------------------------------------------

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in one RGB uint8 (H, W, 3) image, best score first."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """Faces in each image; images of the same network input size share a run where the graph allows."""
        check_image_sequence(images)
        originals = [_as_rgb_uint8(im) for im in images]
        plans = [self._plan(*im.shape[:2]) for im in originals]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, plan in enumerate(plans):
            groups.setdefault(plan[:2], []).append(i)
        result: list[list[Face]] = [[] for _ in originals]
        for (in_h, in_w), ids in groups.items():
            size = 1 if self._single else (self.graph.fixed_batch or self.batch_size)
            for start in range(0, len(ids), size):
                chunk = ids[start : start + size]
                blobs = [self._blob(originals[i], plans[i]) for i in chunk]
                for i, outs in zip(chunk, self._run(blobs), strict=True):
                    h, w = originals[i].shape[:2]
                    sx, sy = plans[i][3] / w, plans[i][2] / h
                    result[i] = self._faces(*self._decode(outs, in_h, in_w), sx, sy)
        return result

    # -- internals -----------------------------------------------------------------------------

    def _plan(self, h: int, w: int) -> tuple[int, int, int, int]:
        """(input height, input width, resized height, resized width) for an h×w image."""
        fixed = self.graph.input_hw
        if fixed is not None:
            in_h, in_w = fixed
            scale = min(in_w / w, in_h / h)
        elif self.input_size is not None:
            scale = self.input_size / max(h, w)
        else:
            lo, hi = AUTO_INPUT_RANGE
            scale = min(max(max(h, w), lo), hi) / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        if fixed is not None:
            return in_h, in_w, min(nh, in_h), min(nw, in_w)
        m = self.multiple
        return math.ceil(nh / m) * m, math.ceil(nw / m) * m, nh, nw

    def _blob(self, image: np.ndarray, plan: tuple[int, int, int, int]) -> np.ndarray:
        """The letterboxed image in the network's channel order, normalised, CHW."""
        in_h, in_w, nh, nw = plan
        if (nh, nw) != image.shape[:2]:
            shrink = nw < image.shape[1]
            image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        canvas = np.zeros((in_h, in_w, 3), np.uint8)  # black padding, normalised with the rest
        canvas[:nh, :nw] = image
        if self.preprocessing.channel_order == "BGR":
            canvas = canvas[:, :, ::-1]
        mean, std = (np.asarray(v, np.float32) for v in (self.preprocessing.mean, self.preprocessing.std))
        x = (canvas.astype(np.float32) - mean) / std
        return np.ascontiguousarray(x.transpose(2, 0, 1).astype(self.graph.input.dtype))

    def _run(self, blobs: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Each blob's outputs by name, without the batch axis."""
        session = self._loaded()
        names = [t.name for t in self.graph.signature.outputs]
        fixed = self.graph.fixed_batch
        batch = np.stack(blobs)
        if fixed is not None and fixed > len(blobs):  # a graph fixed at a batch of B: pad with blank images
            batch = np.concatenate([batch, np.zeros((fixed - len(blobs), *batch.shape[1:]), batch.dtype)])
        try:
            outs = session.run(names, {self.graph.input.name: batch})
        except Exception as exc:
            if len(blobs) > 1 and fixed is None:  # a "dynamic" batch axis the graph does not honour
                self._single = True
                return [d for b in blobs for d in self._run([b])]
            raise ModelError(f"onnxruntime failed on {self.model_path.name} (input {batch.shape}): {exc}") from exc
        if not self.graph.batched:
            return [dict(zip(names, outs, strict=True))]
        if any(o.shape[0] < len(blobs) for o in outs):
            if len(blobs) == 1:
                raise ModelError(f"{self.model_path.name} returned empty outputs for one image")
            self._single = True
            return [d for b in blobs for d in self._run([b])]
        return [{n: o[k] for n, o in zip(names, outs, strict=True)} for k in range(len(blobs))]

    def _decode(
        self, outs: dict[str, np.ndarray], in_h: int, in_w: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(boxes (n, 4) xyxy, scores (n,), landmarks (n, 5, 2) or None) in input pixels, corner
        convention, scores at or above the threshold."""
        raise NotImplementedError

    def _heads(self, outs: dict[str, np.ndarray], role: str) -> list[np.ndarray]:
        """One role's outputs (K, C) as float64, stride 8 first: the biggest anchor count is the finest stride."""
        arrays = [np.asarray(outs[name]) for name in self.graph.heads.get(role, ())]
        arrays = [a.reshape(a.shape[0], -1).astype(np.float64) if a.ndim != 2 else a.astype(np.float64) for a in arrays]
        return sorted(arrays, key=lambda a: -a.shape[0])

    def _grid(self, count: int, stride: int, in_h: int, in_w: int) -> tuple[int, int, int]:
        """(rows, cols, anchors per cell) of a stride's grid with ``count`` anchors, checked."""
        rows, cols = in_h // stride, in_w // stride
        if rows * cols == 0 or count % (rows * cols):
            raise ModelError(
                f"{self.model_path.name} gave {count} anchors at stride {stride} for a {in_w}×{in_h} input, "
                f"not a whole number per cell of its {cols}×{rows} grid: the outputs are not laid out as a "
                f"{self.kind} export's"
            )
        return rows, cols, count // (rows * cols)

    def _faces(
        self, boxes: np.ndarray, scores: np.ndarray, points: np.ndarray | None, sx: float, sy: float
    ) -> list[Face]:
        if not len(scores):
            return []
        if len(scores) > PRE_NMS_TOP_K:
            top = np.argsort(-scores, kind="stable")[:PRE_NMS_TOP_K]
            boxes, scores = boxes[top], scores[top]
            points = None if points is None else points[top]
        keep = _nms(boxes, scores, self.nms_threshold)
        keep = keep[np.argsort(-scores[keep], kind="stable")]
        boxes, scores = boxes[keep] / (sx, sy, sx, sy) - 0.5, scores[keep]
        points = landmarks_from_boxes(boxes) if points is None else points[keep] / (sx, sy) - 0.5
        sides = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        faces = []
        for k in np.flatnonzero(sides >= self.min_face_size):
            x1, y1, x2, y2 = (float(v) for v in boxes[k])
            faces.append(
                Face(box=Box(x1, y1, x2, y2), score=float(scores[k]), landmarks=Landmarks(points[k].astype(np.float32)))
            )
        return faces


def anchor_centres(rows: int, cols: int, stride: int, anchors: int) -> np.ndarray:
    """(rows * cols * anchors, 2) anchor centres (x * stride, y * stride), row-major, anchors fastest
    (InsightFace's ``np.mgrid`` layout)."""
    ys, xs = np.mgrid[:rows, :cols]
    centres = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float64) * stride
    return np.repeat(centres, anchors, axis=0) if anchors > 1 else centres
