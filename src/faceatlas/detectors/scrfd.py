"""SCRFD (Guo et al. 2021, InsightFace's detector) from a user's ONNX file: boxes, scores, 5 landmarks.

Runs InsightFace's exports (``det_500m.onnx`` of buffalo_s, ``det_10g.onnx`` of buffalo_l, the
``scrfd_*`` files): per stride 8/16/32 a score (K, 1), box distances (K, 4) and, in the ``_kps``
exports, keypoint offsets (K, 10), K = grid cells × 2 anchors, with or without a batch axis.
Decoding is InsightFace's ``scrfd.py``: anchor centres ``(x * stride, y * stride)`` (row-major,
the two anchors of a cell next to each other), ``distance2bbox`` (left, top, right, bottom
distances in stride units from the centre), ``distance2kps`` (offsets from the centre), score
threshold 0.5, NMS at IoU 0.4. Input: RGB, ``(pixel - 127.5) / 128``, NCHW (InsightFace swaps
BGR to RGB in ``blobFromImage``); see :mod:`faceatlas.detectors._onnx_detector` for the resize
policy and coordinates. A graph without keypoint outputs gets landmarks estimated from its box
(``MEAN_LAYOUT``; its card says so).
"""

from __future__ import annotations

import numpy as np

from faceatlas.detectors._onnx_detector import OnnxDetector, anchor_centres
from faceatlas.errors import ModelError


def distance2bbox(centres: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """(n, 4) xyxy from centres (n, 2) and (left, top, right, bottom) distances (n, 4), in pixels."""
    return np.hstack([centres - distances[:, :2], centres + distances[:, 2:4]])


def distance2kps(centres: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(n, k, 2) points from centres (n, 2) and (dx, dy) offsets (n, 2k), in pixels."""
    return centres[:, None, :] + offsets.reshape(len(offsets), -1, 2)


class SCRFDDetector(OnnxDetector):
    """SCRFD from ``model_path`` (an ``.onnx`` file or a pack folder); options: see OnnxDetector."""

    kind = "scrfd"
    default_score_threshold = 0.5  # InsightFace's det_thresh
    default_nms_threshold = 0.4  # InsightFace's nms_thresh

    def _decode(
        self, outs: dict[str, np.ndarray], in_h: int, in_w: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        scores, bboxes, kpss = (self._heads(outs, role) for role in ("score", "bbox", "kps"))
        counts = [a.shape[0] for a in scores]
        if [a.shape[0] for a in bboxes] != counts or (kpss and [a.shape[0] for a in kpss] != counts):
            raise ModelError(
                f"{self.model_path.name}: the score, box and keypoint outputs disagree on the anchors per "
                f"stride ({counts}, {[a.shape[0] for a in bboxes]}, {[a.shape[0] for a in kpss]})"
            )
        all_boxes, all_scores, all_points = [], [], []
        for k, stride in enumerate(self.graph.strides):
            rows, cols, anchors = self._grid(counts[k], stride, in_h, in_w)
            keep = np.flatnonzero(scores[k][:, 0] >= self.score_threshold)
            if not len(keep):
                continue
            centres = anchor_centres(rows, cols, stride, anchors)[keep]
            all_scores.append(scores[k][keep, 0])
            all_boxes.append(distance2bbox(centres, bboxes[k][keep] * stride))
            if kpss:
                all_points.append(distance2kps(centres, kpss[k][keep] * stride))
        if not all_scores:
            return np.empty((0, 4)), np.empty(0), None if not kpss else np.empty((0, 5, 2))
        points = np.concatenate(all_points) if kpss else None
        return np.concatenate(all_boxes), np.concatenate(all_scores), points
