"""Faces followed through a video, and one identity decision per track.

Each sampled frame is analysed (every ``detect_every``-th; the frames between are tracked by motion
alone), its faces handed to a :class:`~faceatlas.video.tracker.FaceTracker`, and every track gathers
evidence: its detections, its best frames by quality, and a template of their embeddings fused as
gallery templates are (``faceatlas.templates``: quality-weighted, odd frames discounted). When a
track ends, that template is compared once with the gallery at the calibrated
false-positive identification rate: one decision from the accumulated evidence rather than a vote
of noisy frames (``person`` None = unknown).

>>> gallery = faceatlas.Gallery.open("people.db")
>>> for track in faceatlas.track("door.mp4", gallery=gallery, fps=10):
...     print(track.id, track.person, f"{track.start:.1f}-{track.end:.1f} s")

Live use (a stream, the service) feeds frames to a :class:`VideoTracker` and reads its events as
they happen: ``track_started``, ``person_seen`` (the first time a track's running decision names
someone), ``unknown_person`` (a track that has shown its face ``unknown_after`` times without a
match; corrected by a later ``person_seen`` if more evidence names someone) and ``track_closed``
(the final decision). Every track that closes has exactly one ``track_closed``.
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from faceatlas.errors import InvalidArgumentError, VideoError
from faceatlas.templates import DEFAULT_FUSION, RunningTemplate
from faceatlas.types import Box, Face

EventKind = Literal["track_started", "person_seen", "unknown_person", "track_closed"]

REID_FAR = 1e-3  # a lost track is revived by a face this unlikely to be a stranger's
# the running decision is looked at after these many detections; each look is made at
# fpir / (len(CHECKPOINTS) + 1), so all the looks of a track together keep its events' FPIR
CHECKPOINTS = (3, 6, 12, 24, 48)
MIN_WEIGHT = 0.05  # a frame's weight in the template: its quality, floored so no frame counts for nothing


class FrameLike(Protocol):
    """What a tracker needs of a frame (:class:`faceatlas.video.source.Frame` is one)."""

    @property
    def index(self) -> int: ...
    @property
    def time(self) -> float: ...
    @property
    def pixels(self) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class TrackFrame:
    """One detection of a track: where in the video, and the face (box, landmarks, pose, quality, embedding)."""

    index: int
    time: float
    face: Face


@dataclass(frozen=True)
class Track:
    """A face followed through a video, and the identity decided from all of it.

    ``start``/``end`` are the times (seconds) of its first and last detection; ``frames`` its
    detections; ``person`` the gallery person its template matched at ``fpir`` (None: unknown, or
    no gallery), ``score`` the best candidate's similarity and ``threshold`` the one it had to reach.
    ``best`` holds its best frames by quality, best first; ``template`` its embeddings fused by
    ``faceatlas.templates.DEFAULT_FUSION`` (quality-weighted, odd frames discounted; unit length).
    """

    id: int
    start: float
    end: float
    frames: int
    person: str | None
    score: float | None
    threshold: float | None
    fpir: float | None
    best: tuple[TrackFrame, ...]
    template: np.ndarray = field(repr=False)
    source: str = ""
    candidates: tuple[tuple[str, float], ...] = ()

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_json(self) -> dict[str, Any]:
        """The track as JSON-safe data: what ``faceatlas video`` prints, one line per track."""
        top = self.best[0] if self.best else None
        face = top.face if top else None
        return {
            "track": self.id,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "frames": self.frames,
            "person": self.person,
            "score": None if self.score is None else round(self.score, 4),
            "threshold": None if self.threshold is None else round(self.threshold, 4),
            "box": None if face is None else [round(v, 1) for v in face.box.as_xyxy()],
            "time": None if top is None else round(top.time, 3),
            "quality": None if face is None or face.quality is None else round(face.quality.score, 3),
            "candidates": [{"person": p, "score": round(s, 4)} for p, s in self.candidates],
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class TrackEvent:
    """Something that happened to a track at video time ``time`` (seconds).

    ``track`` is the closed track on ``track_closed``, a snapshot of it so far on the others.
    """

    kind: EventKind
    time: float
    track_id: int
    person: str | None = None
    score: float | None = None
    track: Track | None = None

    def to_json(self) -> dict[str, Any]:
        top = self.track.best[0] if self.track is not None and self.track.best else None
        return {
            "kind": self.kind,
            "time": round(self.time, 3),
            "track": self.track_id,
            "person": self.person,
            "score": None if self.score is None else round(self.score, 4),
            "box": None if top is None else [round(v, 1) for v in top.face.box.as_xyxy()],
        }


class _Evidence:
    """What one live track has gathered so far."""

    __slots__ = ("announced", "best", "end", "face", "frames", "fused", "id", "looks", "start", "unknown_said")

    def __init__(self, track_id: int, time: float) -> None:
        self.id = track_id
        self.start = self.end = time
        self.frames = 0
        self.best: list[tuple[float, int, TrackFrame]] = []  # min-heap of (quality, -index, frame)
        self.fused = RunningTemplate(DEFAULT_FUSION, floor=MIN_WEIGHT)  # the frames' embeddings, fused
        self.announced: str | None = None  # the person a person_seen event named
        self.unknown_said = False
        self.looks = 0  # checkpoints passed
        self.face: Face | None = None  # the latest detection, for drawing

    def add(self, frame: TrackFrame, keep: int) -> None:
        self.end = frame.time
        self.frames += 1
        self.face = frame.face
        quality = _quality(frame.face)
        item = (quality, -frame.index, frame)
        if len(self.best) < keep:
            heapq.heappush(self.best, item)
        elif item[:2] > self.best[0][:2]:
            heapq.heapreplace(self.best, item)
        if frame.face.embedding is not None:
            self.fused.add(frame.face.embedding, quality)

    def template(self) -> np.ndarray:
        return self.fused.template()

    def best_frames(self) -> tuple[TrackFrame, ...]:
        return tuple(frame for _q, _i, frame in sorted(self.best, key=lambda item: item[:2], reverse=True))


def _quality(face: Face) -> float:
    return float(face.quality.score) if face.quality is not None else float(face.score)


class VideoTracker:
    """Follows faces over frames fed one at a time, and decides who each track is.

    ``gallery``: a :class:`faceatlas.Gallery` to identify against (None: tracks only). ``analyzer``:
    the pipeline (default: the gallery's, else the process-wide default). ``fpir``: the open-set
    operating point (default: the gallery's). ``detect_every``: analyse one fed frame in N and track
    the others by motion. ``min_frames``: tracks with fewer detections are dropped as noise.
    ``best_frames``: how many of its best frames a track keeps. ``tracker``: options for
    :class:`~faceatlas.video.tracker.FaceTracker`.
    """

    def __init__(
        self,
        gallery: Any | None = None,
        analyzer: Any | None = None,
        *,
        fpir: float | None = None,
        detect_every: int = 1,
        min_frames: int = 2,
        best_frames: int = 5,
        unknown_after: int = 5,
        source: str = "",
        tracker: dict[str, Any] | None = None,
    ) -> None:
        if detect_every < 1:
            raise InvalidArgumentError(f"detect_every must be at least 1, got {detect_every}")
        if min_frames < 1 or best_frames < 1 or unknown_after < 1:
            raise InvalidArgumentError("min_frames, best_frames and unknown_after must each be at least 1")
        if fpir is not None and not 0.0 < fpir < 1.0:
            raise InvalidArgumentError(f"fpir must be a rate in (0, 1), got {fpir!r}")
        from faceatlas.video.tracker import FaceTracker

        self.gallery = gallery
        self.analyzer = analyzer if analyzer is not None else _default_analyzer(gallery)
        self.fpir = fpir if fpir is not None else (gallery.fpir if gallery is not None else None)
        self.detect_every = detect_every
        self.min_frames = min_frames
        self.keep = best_frames
        self.unknown_after = unknown_after
        self.source = source
        options = dict(tracker or {})
        if "reid_similarity" not in options:
            options["reid_similarity"] = _reid_threshold(self.analyzer)
        self._tracker = FaceTracker(**options)
        self._live: dict[int, _Evidence] = {}
        self._fed = 0
        self._time = 0.0
        self.boxes: dict[int, np.ndarray] = {}  # every live track's box at the last frame fed (xyxy)
        self.detected = False  # whether the last frame fed was analysed

    # -- feeding -------------------------------------------------------------------------------

    def feed(self, frame: FrameLike) -> list[TrackEvent]:
        """Take the next frame (in time order); the events it caused."""
        detect = self._fed % self.detect_every == 0
        self._fed += 1
        self._time = float(frame.time)
        self.detected = detect
        if not detect:
            step = self._tracker.predict(self._time)
            self.boxes = step.boxes
            return self._close(step.closed)
        faces = self.analyzer.analyze(frame.pixels)
        boxes = np.array([f.box.as_xyxy() for f in faces], np.float64).reshape(-1, 4)
        scores = np.array([f.score for f in faces], np.float64)
        embeddings = _embedding_rows(faces)
        step = self._tracker.update(self._time, boxes, scores, embeddings)
        self.boxes = step.boxes
        events: list[TrackEvent] = []
        for face, track_id in zip(faces, step.track_ids.tolist(), strict=True):
            if track_id < 0:
                continue
            evidence = self._live.get(track_id)
            if evidence is None:
                evidence = self._live[track_id] = _Evidence(track_id, self._time)
            evidence.add(TrackFrame(int(frame.index), self._time, face), self.keep)
            if evidence.frames == self.min_frames:
                events.append(TrackEvent("track_started", evidence.start, track_id, track=self._snapshot(evidence)))
            if evidence.frames >= self.min_frames:
                events.extend(self._running_decision(evidence))
        events.extend(self._close(step.closed))
        return events

    def finish(self) -> list[TrackEvent]:
        """The source ended: close every live track (their ``track_closed`` events)."""
        return self._close(self._tracker.finish())

    def feed_all(self, frames: Iterable[FrameLike]) -> Iterator[TrackEvent]:
        for frame in frames:
            yield from self.feed(frame)
        yield from self.finish()

    # -- decisions -----------------------------------------------------------------------------

    def _running_decision(self, evidence: _Evidence) -> list[TrackEvent]:
        if self.gallery is None or evidence.announced is not None:
            return []
        events = []
        if evidence.looks < len(CHECKPOINTS) and evidence.frames >= CHECKPOINTS[evidence.looks]:
            evidence.looks += 1
            person, score, _t, _c = self._decide(evidence, self.fpir / (len(CHECKPOINTS) + 1))  # type: ignore[operator]
            if person is not None:
                evidence.announced = person
                events.append(
                    TrackEvent("person_seen", self._time, evidence.id, person, score, self._snapshot(evidence))
                )
                return events
        if not evidence.unknown_said and evidence.frames >= self.unknown_after:
            evidence.unknown_said = True
            events.append(TrackEvent("unknown_person", self._time, evidence.id, track=self._snapshot(evidence)))
        return events

    def _decide(self, evidence: _Evidence, fpir: float) -> tuple[str | None, float | None, float | None, tuple]:
        template = evidence.template()
        if self.gallery is None or not len(template):
            return None, None, None, ()
        results = self.gallery.identify(template, k=3, fpir=fpir)
        if not results or not results[0].candidates:
            return None, None, (results[0].threshold if results else None), ()
        best = results[0]
        return best.person, best.score, best.threshold, tuple((c.person, c.score) for c in best.candidates)

    def _close(self, closed: Iterable[int]) -> list[TrackEvent]:
        events = []
        for track_id in closed:
            evidence = self._live.pop(track_id, None)
            if evidence is None or evidence.frames < self.min_frames:
                continue
            person, score, threshold, candidates = self._decide(evidence, self.fpir) if self.fpir else (None,) * 4
            track = Track(
                id=track_id,
                start=evidence.start,
                end=evidence.end,
                frames=evidence.frames,
                person=person,
                score=score,
                threshold=threshold,
                fpir=self.fpir if self.gallery is not None else None,
                best=evidence.best_frames(),
                template=evidence.template(),
                source=self.source,
                candidates=candidates or (),
            )
            if self.gallery is not None:  # every visit is announced once: at close if not before
                if person is not None and evidence.announced is None:
                    events.append(TrackEvent("person_seen", evidence.end, track_id, person, score, track))
                elif person is None and evidence.announced is None and not evidence.unknown_said:
                    events.append(TrackEvent("unknown_person", evidence.end, track_id, track=track))
            events.append(TrackEvent("track_closed", evidence.end, track_id, person, score, track))
        return events

    def _snapshot(self, evidence: _Evidence) -> Track:
        return Track(
            id=evidence.id,
            start=evidence.start,
            end=evidence.end,
            frames=evidence.frames,
            person=evidence.announced,
            score=None,
            threshold=None,
            fpir=None,
            best=evidence.best_frames()[:1],
            template=evidence.template(),
            source=self.source,
        )

    # -- for drawing -----------------------------------------------------------------------------

    def labels(self) -> dict[int, str]:
        """What each live track is called so far: the person announced, or its id."""
        return {tid: (ev.announced or f"#{tid}") for tid, ev in self._live.items() if ev.frames >= self.min_frames}


def _embedding_rows(faces: list[Face]) -> np.ndarray | None:
    """The faces' embeddings as rows for the tracker; a face without one is a row of NaN (the
    tracker re-associates only the others)."""
    dims = {len(f.embedding) for f in faces if f.embedding is not None}
    if len(dims) != 1:
        return None
    rows = np.full((len(faces), dims.pop()), np.nan, np.float32)
    for row, face in zip(rows, faces, strict=True):
        if face.embedding is not None:
            row[:] = face.embedding
    return rows


def _default_analyzer(gallery: Any | None) -> Any:
    if gallery is not None:
        return gallery.analyzer
    from faceatlas.api import default_analyzer

    return default_analyzer()


def _reid_threshold(analyzer: Any) -> float | None:
    """The cosine at which a face revives a lost track: the embedder card's FAR 1e-3 threshold."""
    card = getattr(getattr(analyzer, "embedder", None), "card", None)
    if card is None:
        return None
    from faceatlas.models.calibration import with_user_calibration

    try:
        return float(with_user_calibration(card).threshold_for(REID_FAR))
    except (ValueError, KeyError, InvalidArgumentError):  # a card without a calibrated curve
        return None


def _frames(source: Any, fps: float | None, options: dict[str, Any]) -> tuple[Iterable[FrameLike], str, Callable]:
    """The frames of ``source`` (a path, URL, webcam index, or frames already decoded) and a closer."""
    if isinstance(source, (str, os.PathLike, int)):
        from faceatlas.video.source import open_video

        video = open_video(source, fps=fps, **options)
        return video, str(os.fspath(source) if not isinstance(source, int) else source), video.close
    if options:
        raise InvalidArgumentError(f"options {sorted(options)} are for video files and streams, not frames given")
    return source, "<frames>", lambda: None


def track(
    source: Any,
    gallery: Any | None = None,
    *,
    analyzer: Any | None = None,
    fps: float | None = None,
    detect_every: int = 1,
    fpir: float | None = None,
    min_frames: int = 2,
    best_frames: int = 5,
    draw: str | os.PathLike[str] | None = None,
    tracker: dict[str, Any] | None = None,
    **source_options: Any,
) -> Iterator[Track]:
    """Every face track of a video, each yielded as it closes (live sources: as people leave).

    ``source``: a video file, a URL (``rtsp://``, ``http://``…), a webcam index, or an iterable of
    frames (objects with ``index``, ``time``, ``pixels``). ``fps``: sample the video at this rate
    (None: every frame). ``draw``: also write an annotated video there. Other keyword arguments go
    to :class:`~faceatlas.video.source.VideoSource` (``reconnect``, ``open_timeout``…).
    """
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise InvalidArgumentError(f"fps must be a positive number of frames per second, got {fps!r}")
    frames, name, close = _frames(source, fps, source_options)
    tracker_ = VideoTracker(
        gallery,
        analyzer,
        fpir=fpir,
        detect_every=detect_every,
        min_frames=min_frames,
        best_frames=best_frames,
        source=name,
        tracker=tracker,
    )
    # frames over the source's max_pixels arrive downscaled: tracks are reported in the video's own pixels
    scale = float(getattr(getattr(frames, "info", None), "scale", 1.0) or 1.0)
    native = (lambda t: t) if scale == 1.0 else functools.partial(_in_source_pixels, factor=1.0 / scale)
    writer = None
    failure: VideoError | None = None
    try:
        try:
            for frame in frames:
                events = tracker_.feed(frame)
                if draw is not None:
                    if writer is None:
                        from faceatlas.video.draw import AnnotatedWriter

                        writer = AnnotatedWriter(draw, fps=_output_fps(frames, fps), size=frame.pixels.shape[1::-1])
                    writer.write(frame.pixels, tracker_.boxes, tracker_.labels())
                for event in events:
                    if event.kind == "track_closed" and event.track is not None:
                        yield native(event.track)
        except VideoError as exc:  # a stream gave up: the tracks still open are closed and kept first
            failure = exc
        for event in tracker_.finish():
            if event.kind == "track_closed" and event.track is not None:
                yield native(event.track)
        if failure is not None:
            raise failure
    finally:
        close()
        if writer is not None:
            writer.close()


def _in_source_pixels(track: Track, factor: float) -> Track:
    """The track with its best frames' boxes and landmarks scaled by ``factor``."""

    def scaled(face: Face) -> Face:
        box = face.box
        return dataclasses.replace(
            face,
            box=Box(box.x1 * factor, box.y1 * factor, box.x2 * factor, box.y2 * factor),
            landmarks=dataclasses.replace(face.landmarks, points=np.asarray(face.landmarks.points) * factor),
        )

    best = tuple(dataclasses.replace(f, face=scaled(f.face)) for f in track.best)
    return dataclasses.replace(track, best=best)


def _output_fps(frames: Any, fps: float | None) -> float:
    if fps is not None:
        return fps
    info = getattr(frames, "info", None)
    native = getattr(info, "fps", None)
    return float(native) if native else 25.0
