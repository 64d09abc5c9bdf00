"""Videos in a photo collection: one face per track, found by ``faceatlas.video``, and its frame back.

A video in an indexed folder is analysed at ``fps`` sampled frames a second
(``faceatlas.video.source``), its faces followed into tracks (``faceatlas.video.tracking``), and each
track stored as one face: its best frame's box, landmarks, pose and quality, its quality-weighted
template as the embedding, and where it is (``VideoMoment``: the best frame's time, the track's
start and end). Thumbnails and crops read that one frame again (``read_frame``); nothing is cached.

OpenCV and the models are imported only when a video is read.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from faceatlas.collection.store import VideoMoment
from faceatlas.errors import InvalidArgumentError, InvalidImageError
from faceatlas.types import Face

#: file name endings (any case) indexed as videos
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm"})
DEFAULT_VIDEO_FPS = 2.0  # frames analysed per second of video: a face on screen for a second is seen twice
MEDIA_TYPES = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".avi": "video/x-msvideo",
    ".mkv": "video/x-matroska",
    ".webm": "video/webm",
}


def is_video(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


@dataclass(frozen=True, slots=True)
class VideoFaces:
    """What ``video_faces`` found: the video's upright size and length, one face per track."""

    width: int | None
    height: int | None
    duration: float | None
    faces: tuple[Face, ...]
    moments: tuple[VideoMoment, ...]  # moments[i]: where faces[i] is
    problems: tuple[str, ...] = ()  # damage met after some frames (what was read before is kept)


def check_fps(fps: float) -> float:
    if not (isinstance(fps, (int, float)) and 0 < fps <= 120):
        raise InvalidArgumentError(f"video_fps must be frames per second in (0, 120], got {fps!r}")
    return float(fps)


def video_faces(analyzer: Any, path: str | os.PathLike[str], fps: float = DEFAULT_VIDEO_FPS) -> VideoFaces:
    """The faces of the video at ``path``, one per track, sampled at ``fps`` frames a second.

    Raises what ``faceatlas.video.source.open_video`` raises for a file that is not a video it
    can read (``InvalidVideoError``, a ``FaceAtlasError``); a video damaged after some frames gives
    the tracks of what was read, and says so in ``problems``.
    """
    from faceatlas.video.source import open_video

    with open_video(path, fps=check_fps(fps)) as video:
        info = video.info
        tracks = _tracks(video, analyzer)
        problems = tuple(str(p) for p in getattr(video, "errors", ()) or ())
    faces, moments = faces_of_tracks(tracks)
    # frames over max_pixels were analysed downscaled; the tracks' boxes are in the video's own
    # pixels already (as ``read_frame`` gives them), and so is the size stored
    scale = float(getattr(info, "scale", 1.0) or 1.0)
    width, height = round(info.width / scale), round(info.height / scale)
    return VideoFaces(width, height, info.duration, faces, moments, problems)


def _tracks(frames: Iterable[Any], analyzer: Any) -> list[Any]:
    from faceatlas.video.tracking import track

    return list(track(frames, analyzer=analyzer, detect_every=1))


def faces_of_tracks(tracks: Iterable[Any]) -> tuple[tuple[Face, ...], tuple[VideoMoment, ...]]:
    """One face per track (``faceatlas.video.tracking.Track``): its best frame's face with the
    track's template as embedding, and its moment. Tracks without an embedding are left out."""
    faces, moments = [], []
    for track in tracks:
        template = np.asarray(track.template, dtype=np.float32)
        if not track.best or template.size == 0:
            continue
        best = track.best[0]
        faces.append(dataclasses.replace(best.face, embedding=template))
        moments.append(VideoMoment(float(best.time), float(track.start), float(track.end), int(track.id)))
    return tuple(faces), tuple(moments)


def read_frame(path: str | os.PathLike[str], time: float) -> np.ndarray:
    """The frame of the video at ``time`` seconds, RGB (H, W, 3) uint8, upright: where a stored
    face's box is. InvalidImageError when it cannot be read (the file changed, or is gone)."""
    import cv2

    capture = cv2.VideoCapture(os.fspath(path))
    try:
        if not capture.isOpened():
            raise InvalidImageError(f"{os.fspath(path)!r} cannot be opened as a video")
        capture.set(cv2.CAP_PROP_POS_MSEC, max(0.0, float(time)) * 1000.0)
        ok, frame = capture.read()
        if not ok or frame is None:
            raise InvalidImageError(f"{os.fspath(path)!r} has no frame at {time:.3f} s")
    finally:
        capture.release()
    return np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
