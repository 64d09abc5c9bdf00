"""An annotated copy of a video: each live track's box and what it is called so far
(``faceatlas video CLIP --draw out.mp4``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

from faceatlas.errors import InvalidArgumentError

# FourCC by file extension: what OpenCV's bundled FFmpeg writes without extra codecs
_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


def _colour(track_id: int) -> tuple[int, int, int]:
    """A steady, distinct colour per track (golden-ratio hue steps), RGB."""
    hue = int((track_id * 0.618033988749895 % 1.0) * 180)
    hsv = np.array([[[hue, 200, 255]]], np.uint8)
    r, g, b = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]
    return int(r), int(g), int(b)


class AnnotatedWriter:
    """Writes RGB frames with boxes and labels drawn on them."""

    def __init__(self, path: str | os.PathLike[str], fps: float, size: tuple[int, int]) -> None:
        self.path = Path(path)
        fourcc = _FOURCC.get(self.path.suffix.lower())
        if fourcc is None:
            raise InvalidArgumentError(
                f"cannot write video {self.path}: use a file ending in {', '.join(sorted(_FOURCC))}"
            )
        if not self.path.parent.is_dir():
            raise InvalidArgumentError(f"cannot write video {self.path}: folder {self.path.parent} does not exist")
        self.size = (int(size[0]), int(size[1]))
        self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter.fourcc(*fourcc), float(fps), self.size)
        if not self._writer.isOpened():
            raise InvalidArgumentError(f"cannot write video {self.path} ({fourcc} at {self.size[0]}x{self.size[1]})")
        self.frames = 0

    def write(self, pixels: np.ndarray, boxes: Mapping[int, np.ndarray], labels: Mapping[int, str]) -> None:
        canvas = cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2BGR)
        if canvas.shape[1::-1] != self.size:  # a stream that changed size mid-way
            canvas = cv2.resize(canvas, self.size, interpolation=cv2.INTER_AREA)
        thickness = max(1, round(max(canvas.shape[:2]) / 500))
        for track_id, box in boxes.items():
            label = labels.get(track_id)
            if label is None:  # a track too young to show
                continue
            x1, y1, x2, y2 = (round(float(v)) for v in box)
            r, g, b = _colour(track_id)
            cv2.rectangle(canvas, (x1, y1), (x2, y2), (b, g, r), thickness)
            cv2.putText(
                canvas,
                label,
                (x1, max(14, y1 - 5)),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.45 * thickness,
                (b, g, r),
                thickness,
                cv2.LINE_AA,
            )
        self._writer.write(canvas)
        self.frames += 1

    def close(self) -> None:
        self._writer.release()
