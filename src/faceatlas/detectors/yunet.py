"""YuNet (Wu et al. 2023, OpenCV Zoo's ``face_detection_yunet_2023mar``) from a user's ONNX file.

The 2023mar export has 12 outputs: ``cls_8/16/32`` and ``obj_8/16/32`` (K, 1), ``bbox_*`` (K, 4)
and ``kps_*`` (K, 10), K = grid cells (one prior per location), with a batch axis. Decoding is
OpenCV's ``FaceDetectorYN`` (``face_detect.cpp``): score ``sqrt(clip(cls) * clip(obj))``, box
centre ``((col + dx) * stride, (row + dy) * stride)``, size ``exp(dw) * stride`` by
``exp(dh) * stride``, landmarks ``((col + lx) * stride, (row + ly) * stride)``; score threshold
0.9 and NMS at IoU 0.3 (OpenCV's defaults). Input: BGR, raw 0-255, NCHW, padded bottom/right to
a multiple of 32. The landmarks come in YuNet's order (the subject's right eye, i.e. the eye on
the image's left, first), which is faceatlas' mtcnn5 order.
"""

from __future__ import annotations

import numpy as np

from faceatlas.detectors._onnx_detector import OnnxDetector
from faceatlas.errors import ModelError


class YuNetDetector(OnnxDetector):
    """YuNet from ``model_path`` (an ``.onnx`` file or a pack folder); options: see OnnxDetector."""

    kind = "yunet"
    default_score_threshold = 0.9  # FaceDetectorYN's score_threshold
    default_nms_threshold = 0.3  # FaceDetectorYN's nms_threshold

    def _decode(
        self, outs: dict[str, np.ndarray], in_h: int, in_w: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        cls, obj, bbox, kps = (self._heads(outs, role) for role in ("cls", "obj", "bbox", "kps"))
        counts = [a.shape[0] for a in cls]
        if any([a.shape[0] for a in head] != counts for head in (obj, bbox, kps)):
            raise ModelError(f"{self.model_path.name}: YuNet's cls/obj/bbox/kps outputs disagree on the priors")
        all_boxes, all_scores, all_points = [], [], []
        for k, stride in enumerate(self.graph.strides):
            _rows, cols, priors = self._grid(counts[k], stride, in_h, in_w)
            if priors != 1:
                raise ModelError(
                    f"{self.model_path.name}: {priors} priors per location at stride {stride}; YuNet has one"
                )
            score = np.sqrt(np.clip(cls[k][:, 0], 0.0, 1.0) * np.clip(obj[k][:, 0], 0.0, 1.0))
            keep = np.flatnonzero(score >= self.score_threshold)
            if not len(keep):
                continue
            cell = np.stack([keep % cols, keep // cols], axis=1).astype(np.float64)  # (col, row)
            b = bbox[k][keep]
            centre = (cell + b[:, :2]) * stride
            size = np.exp(np.clip(b[:, 2:4], -20.0, 20.0)) * stride
            all_boxes.append(np.hstack([centre - size / 2.0, centre + size / 2.0]))
            all_points.append((cell[:, None, :] + kps[k][keep].reshape(-1, 5, 2)) * stride)
            all_scores.append(score[keep])
        if not all_scores:
            return np.empty((0, 4)), np.empty(0), np.empty((0, 5, 2))
        return np.concatenate(all_boxes), np.concatenate(all_scores), np.concatenate(all_points)
