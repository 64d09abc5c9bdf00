"""Challenge-response liveness (presentation-attack detection) from the face track, no extra model.

The service asks for a random short sequence of head movements (:class:`Challenge`), the camera
films the answer, and :func:`check_liveness` decides from that clip whether a live person did it:

1. **The challenge, in order, in time.** The largest face's yaw and pitch, relative to the
   neutral pose of the first frames and smoothed, must go through the actions asked for, in that
   order and nothing else (a turn counts past ``turn_deg``, a nod past ``nod_deg``; each ends back
   near neutral or in the next one), within ``time_limit`` seconds.
2. **One person, one face.** Every frame's embedding must match the track's own template at the
   embedder's calibrated threshold for ``far``; a second face of similar size refuses (a photo
   held next to one's face), and the face may not vanish for long or jump in pose between two
   frames (photos swapped by hand).
3. **Depth.** A photo or a screen is a plane: between two frames, one homography maps all of its
   points. The homography fitted to the four outer landmarks (eyes, mouth corners) of the neutral
   frame and of a frame at an action's extreme predicts where the nose tip would be if the face
   were flat; a real nose stands ~36 mm out of that plane and lands off the prediction by about
   0.55·sin(turn) inter-ocular distances. ``depth`` is the ratio of that parallax to the one the
   mean 3D face would show at the poses read (≈1 for a head, ≈0 for a plane).

What it cannot stop: a replay of a recording of the right person performing the same sequence.
Only the randomness of the challenge (12 sequences of 3 actions, 24 of 4) and the time limit
stand against that; see docs/LIVENESS.md.

>>> challenge = Challenge.random()              # show challenge.instructions() to the user
>>> result = check_liveness(open_video("answer.mp4"), challenge)
>>> result.is_live, result.reasons
"""

from __future__ import annotations

import itertools
import math
import os
import random
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from faceatlas.errors import InvalidArgumentError

if TYPE_CHECKING:
    from faceatlas.pipeline import FaceAnalyzer

ACTIONS: tuple[str, ...] = ("turn_left", "turn_right", "nod")
INSTRUCTIONS = {
    "turn_left": "Turn your head to your left, then back",
    "turn_right": "Turn your head to your right, then back",
    "nod": "Nod (tip your head down), then back",
}
DEFAULT_FAR = 1e-3
_OUTER = [0, 1, 3, 4]  # eyes and mouth corners: nearly one plane on a face
_NOSE = 2
_BATCH = 8


@dataclass(frozen=True)
class Challenge:
    """A sequence of head movements to perform in order, from :data:`ACTIONS`, no action twice in a row.

    ``turn_left`` is the subject's own left (the head turns toward the image's right in an
    unmirrored camera: positive yaw in :class:`faceatlas.types.Pose`).
    """

    actions: tuple[str, ...]

    def __post_init__(self) -> None:
        actions = tuple(self.actions)
        if not 1 <= len(actions) <= 8:
            raise InvalidArgumentError(f"a challenge has 1 to 8 actions, got {len(actions)}")
        unknown = [a for a in actions if a not in ACTIONS]
        if unknown:
            raise InvalidArgumentError(f"unknown challenge action(s) {unknown}; actions are {list(ACTIONS)}")
        if any(a == b for a, b in itertools.pairwise(actions)):
            raise InvalidArgumentError(
                f"a challenge repeats no action twice in a row (indistinguishable): {list(actions)}"
            )
        object.__setattr__(self, "actions", actions)

    @classmethod
    def random(cls, length: int = 3, *, rng: random.Random | None = None) -> Challenge:
        """A fresh unpredictable challenge (``secrets``); ``rng`` only for reproducible evaluations."""
        if not 1 <= length <= 8:
            raise InvalidArgumentError(f"a challenge has 1 to 8 actions, got length={length}")
        chooser = rng if rng is not None else secrets.SystemRandom()
        actions = [chooser.choice(ACTIONS)]
        while len(actions) < length:
            actions.append(chooser.choice([a for a in ACTIONS if a != actions[-1]]))
        return cls(tuple(actions))

    @staticmethod
    def space(length: int) -> int:
        """How many different challenges of ``length`` there are (a replay guesses right 1 in this)."""
        return len(ACTIONS) * (len(ACTIONS) - 1) ** (length - 1)

    def instructions(self) -> list[str]:
        return [INSTRUCTIONS[a] for a in self.actions]

    def to_json(self) -> dict[str, Any]:
        return {"actions": list(self.actions)}

    @classmethod
    def from_json(cls, data: Any) -> Challenge:
        actions = data.get("actions") if isinstance(data, dict) else data
        if not isinstance(actions, (list, tuple)) or not all(isinstance(a, str) for a in actions):
            raise InvalidArgumentError(f'a challenge is {{"actions": [names...]}} or a list of names, got {data!r}')
        return cls(tuple(actions))

    def __str__(self) -> str:
        return ",".join(self.actions)


@dataclass(frozen=True)
class LivenessThresholds:
    """The decision's knobs. ``min_depth`` is the one to calibrate (``faceatlas eval liveness``)."""

    turn_deg: float = 15.0  # yaw from neutral that counts as a turn
    nod_deg: float = 10.0  # pitch from neutral that counts as a nod
    neutral_deg: float = 7.0  # back within this of neutral ends an action
    time_limit: float = 15.0  # seconds from the first frame to the last action's extreme
    min_depth: float = 0.4  # nose parallax / a 3D face's, at the actions' extremes
    min_expected_parallax: float = 0.08  # inter-ocular units (~9 deg of yaw): less motion cannot be judged
    identity_fraction: float = 0.9  # share of frames whose face must match the track's template
    other_face_ratio: float = 0.4  # a second face this big (box area vs the main one) refuses...
    other_face_frames: float = 0.1  # ...when seen in more than this share of the frames
    max_gap: float = 0.6  # seconds without a face
    max_jump_deg: float = 14.0  # pose change between two detections...
    max_speed: float = 250.0  # ...unless slower than this (deg/s, a brisk real turn)
    min_faces: int = 5  # detections needed to judge at all


@dataclass(frozen=True, slots=True)
class Observation:
    """One frame of the face track: the largest face, or none."""

    time: float
    faces: int
    landmarks: np.ndarray | None = None  # (5, 2)
    yaw: float = math.nan
    pitch: float = math.nan
    roll: float = math.nan
    embedding: np.ndarray | None = None
    quality: float = 1.0
    other_ratio: float = 0.0  # area of the second-largest face / the largest's


@dataclass(frozen=True)
class FaceTrack:
    """What :func:`observe` saw in a clip: judge it once or many times (:func:`judge`)."""

    observations: tuple[Observation, ...]
    embedder: str | None = None
    identity_threshold: float | None = None  # the embedder's threshold at DEFAULT_FAR, when known


@dataclass(frozen=True, slots=True)
class ActionSeen:
    """An action found in the pose track: its span and extreme (times in seconds, degrees from neutral)."""

    action: str
    start: float
    end: float
    peak_time: float
    peak_deg: float
    complete: bool  # back to neutral (or into the next action) before the clip ended

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "peak_time": round(self.peak_time, 3),
            "peak_deg": round(self.peak_deg, 1),
            "complete": self.complete,
        }


@dataclass(frozen=True)
class LivenessResult:
    """The decision and the evidence: ``reasons`` says why not live (empty when live), ``notes``
    what was odd without refusing; ``scores`` the checks' numbers (None: not measurable)."""

    is_live: bool
    reasons: tuple[str, ...]
    scores: dict[str, float | None]
    actions: tuple[ActionSeen, ...]
    challenge: Challenge | None
    frames: int
    faces: int
    duration: float
    notes: tuple[str, ...] = field(default=())

    def __bool__(self) -> bool:
        return self.is_live

    def to_json(self) -> dict[str, Any]:
        return {
            "is_live": self.is_live,
            "reasons": list(self.reasons),
            "notes": list(self.notes),
            "scores": {k: (None if v is None else round(float(v), 4)) for k, v in self.scores.items()},
            "actions": [a.to_json() for a in self.actions],
            "challenge": None if self.challenge is None else list(self.challenge.actions),
            "frames": self.frames,
            "faces": self.faces,
            "duration": round(self.duration, 3),
        }


# -- frames in --------------------------------------------------------------------------------------


def _frames(frames: Any, fps: float | None) -> Iterator[tuple[float, np.ndarray]]:
    """(time, RGB pixels) from Frame-like objects, (time, array) pairs, or arrays at ``fps``."""
    if isinstance(frames, (str, os.PathLike)):
        from faceatlas.video.source import open_video

        with open_video(frames) as source:
            yield from _frames(iter(source), fps)
        return
    for k, item in enumerate(frames):
        if hasattr(item, "pixels") and hasattr(item, "time"):
            time, pixels = float(item.time), item.pixels
        elif isinstance(item, tuple) and len(item) == 2:
            time, pixels = float(item[0]), item[1]
        elif isinstance(item, np.ndarray):
            if fps is None or not fps > 0:
                raise InvalidArgumentError("check_liveness got plain arrays: pass fps= (their frame rate)")
            time, pixels = k / fps, item
        else:
            raise InvalidArgumentError(
                f"frame {k} is a {type(item).__name__}: pass Frame objects (.time, .pixels), (time, array) pairs, "
                "or RGB arrays with fps="
            )
        pixels = np.asarray(pixels)
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
            raise InvalidArgumentError(f"frame {k} must be (H, W, 3) uint8 RGB, got {pixels.dtype} {pixels.shape}")
        if not math.isfinite(time):
            raise InvalidArgumentError(f"frame {k} has a non-finite time {time!r}")
        yield time, pixels


def _default_analyzer() -> FaceAnalyzer:
    from faceatlas.pipeline import FaceAnalyzer

    return FaceAnalyzer()


def _embedder_threshold(analyzer: Any, far: float) -> tuple[str | None, float | None]:
    """(embedder name, its calibrated threshold at ``far``), None where the embedder has no calibration."""
    from faceatlas.errors import FaceAtlasError
    from faceatlas.models.calibration import with_user_calibration

    card = getattr(getattr(analyzer, "embedder", None), "card", None)
    if card is None:
        return None, None
    try:
        return card.name, float(with_user_calibration(card).threshold_for(far))
    except FaceAtlasError:
        return card.name, None


def observe(
    frames: Iterable[Any] | str | os.PathLike[str],
    analyzer: FaceAnalyzer | None = None,
    *,
    fps: float | None = None,
    far: float = DEFAULT_FAR,
) -> FaceTrack:
    """Run the analyzer over the clip: per frame, the number of faces and the largest one."""
    analyzer = analyzer or _default_analyzer()
    observations: list[Observation] = []
    batch: list[tuple[float, np.ndarray]] = []

    def flush() -> None:
        for (time, _), faces in zip(batch, analyzer.analyze_batch([p for _, p in batch]), strict=True):
            observations.append(_observation(time, faces))
        batch.clear()

    for item in _frames(frames, fps):
        batch.append(item)
        if len(batch) == _BATCH:
            flush()
    if batch:
        flush()
    name, threshold = _embedder_threshold(analyzer, far)
    return FaceTrack(tuple(observations), name, threshold)


def _observation(time: float, faces: Sequence[Any]) -> Observation:
    if not faces:
        return Observation(time, 0)
    ranked = sorted(faces, key=lambda f: f.box.area, reverse=True)
    main = ranked[0]
    other = ranked[1].box.area / main.box.area if len(ranked) > 1 and main.box.area > 0 else 0.0
    pose = main.pose
    return Observation(
        time=time,
        faces=len(faces),
        landmarks=np.asarray(main.landmarks.points, dtype=np.float64),
        yaw=float(pose.yaw) if pose is not None else math.nan,
        pitch=float(pose.pitch) if pose is not None else math.nan,
        roll=float(pose.roll) if pose is not None else math.nan,
        embedding=None if main.embedding is None else np.asarray(main.embedding, dtype=np.float32),
        quality=float(main.quality.score) if main.quality is not None else 1.0,
        other_ratio=float(other),
    )


# -- geometry ---------------------------------------------------------------------------------------


def nose_parallax(reference: np.ndarray, current: np.ndarray) -> np.ndarray | None:
    """Where the nose tip of ``current`` (5, 2) lies off the plane of its outer four points.

    The homography that takes ``reference``'s eyes and mouth corners to ``current``'s (exact: four
    points fix one) maps ``reference``'s nose to where a flat face's nose would be; the result is
    ``current``'s nose minus that, in ``current``'s inter-ocular distances, along and across its
    eye line ((x, y) with roll removed). None where the points are degenerate.
    """
    import cv2

    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    eyes = cur[1] - cur[0]
    iod = float(np.hypot(*eyes))
    if iod < 1e-6:
        return None
    homography, _ = cv2.findHomography(ref[_OUTER], cur[_OUTER], 0)
    if homography is None or not np.isfinite(homography).all():
        return None
    predicted = cv2.perspectiveTransform(ref[_NOSE].reshape(1, 1, 2), homography).reshape(2)
    c, s = eyes / iod
    offset = np.array([[c, s], [-s, c]]) @ (cur[_NOSE] - predicted) / iod
    return offset if np.isfinite(offset).all() else None


def expected_parallax(reference_pose: tuple[float, float, float], pose: tuple[float, float, float]) -> np.ndarray:
    """The :func:`nose_parallax` the mean 3D face shows between two poses (yaw, pitch, roll), weak perspective."""
    from faceatlas.pose import MEAN_FACE_3D, pose_to_rotation
    from faceatlas.types import Pose

    def project(p: tuple[float, float, float]) -> np.ndarray:
        return (pose_to_rotation(Pose(*p)) @ MEAN_FACE_3D.T).T[:, :2]

    offset = nose_parallax(project(reference_pose), project(pose))
    return np.zeros(2) if offset is None else offset


def depth_ratio(observed: np.ndarray, expected: np.ndarray) -> float:
    """How much of a 3D face's parallax was seen: the projection of observed on expected, over |expected|²."""
    return float(observed @ expected / max(float(expected @ expected), 1e-12))


def _smooth(values: np.ndarray) -> np.ndarray:
    """Median of 3 (kills one-frame landmark glitches) then mean of 3."""
    if len(values) < 3:
        return values.copy()
    padded = np.concatenate([values[:1], values, values[-1:]])
    median = np.median(np.stack([padded[:-2], padded[1:-1], padded[2:]]), axis=0)
    padded = np.concatenate([median[:1], median, median[-1:]])
    return (padded[:-2] + padded[1:-1] + padded[2:]) / 3.0


def find_actions(
    times: np.ndarray, yaw: np.ndarray, pitch: np.ndarray, thresholds: LivenessThresholds
) -> list[ActionSeen]:
    """Turns and nods in a relative (to neutral), smoothed pose track, in the order performed."""
    found: list[ActionSeen] = []
    current: str | None = None
    start = peak_time = 0.0
    peak = 0.0

    def begin(k: int) -> str | None:
        if yaw[k] >= thresholds.turn_deg:
            return "turn_left"
        if yaw[k] <= -thresholds.turn_deg:
            return "turn_right"
        if abs(pitch[k]) >= thresholds.nod_deg:
            return "nod"
        return None

    def close(k: int, complete: bool) -> None:
        assert current is not None
        found.append(ActionSeen(current, start, float(times[k]), peak_time, peak, complete))

    for k in range(len(times)):
        if current is None:
            current = begin(k)
            if current is not None:
                start, peak_time, peak = float(times[k]), float(times[k]), _degrees(current, yaw[k], pitch[k])
            continue
        value = _degrees(current, yaw[k], pitch[k])
        if abs(value) > abs(peak):
            peak, peak_time = value, float(times[k])
        nxt = begin(k)
        back = abs(yaw[k]) <= thresholds.neutral_deg and abs(pitch[k]) <= thresholds.neutral_deg
        if back or (nxt is not None and nxt != current and (current == "nod" or nxt != "nod")):
            # a pitch drift at the start of a turn (no return to neutral before it): part of the turn
            if not (current == "nod" and not back):
                close(k, True)
            current = None if back else nxt
            if current is not None:
                start, peak_time, peak = float(times[k]), float(times[k]), _degrees(current, yaw[k], pitch[k])
    if current is not None:
        close(len(times) - 1, False)
    # a nod done as up-and-down, or a turn that wavers past neutral, shows twice: one action
    merged: list[ActionSeen] = []
    for action in found:
        if merged and merged[-1].action == action.action:
            last = merged[-1]
            better = action if abs(action.peak_deg) > abs(last.peak_deg) else last
            merged[-1] = ActionSeen(
                last.action, last.start, action.end, better.peak_time, better.peak_deg, action.complete
            )
        else:
            merged.append(action)
    return merged


def _degrees(action: str, yaw: float, pitch: float) -> float:
    return float(pitch if action == "nod" else yaw)


# -- the decision -----------------------------------------------------------------------------------


def judge(
    track: FaceTrack,
    challenge: Challenge | None = None,
    *,
    thresholds: LivenessThresholds | None = None,
    identity_threshold: float | None = None,
) -> LivenessResult:
    """Decide liveness from an observed face track (:func:`observe`); see the module docstring.

    ``challenge`` None runs the passive checks only (one person, one face, and depth at whatever
    turns and nods the clip shows: none seen refuses), as for a clip that answered no challenge.
    """
    th = thresholds or LivenessThresholds()
    obs = track.observations
    seen = [o for o in obs if o.landmarks is not None and math.isfinite(o.yaw) and math.isfinite(o.pitch)]
    duration = (obs[-1].time - obs[0].time) if obs else 0.0
    reasons: list[str] = []
    notes: list[str] = []
    scores: dict[str, float | None] = {"faces": len(seen) / len(obs) if obs else 0.0}
    if len(seen) < th.min_faces:
        reasons.append(f"a face was found in only {len(seen)} of {len(obs)} frames (need {th.min_faces})")
        return LivenessResult(False, tuple(reasons), scores, (), challenge, len(obs), len(seen), duration)

    times = np.array([o.time for o in seen])
    yaw_raw = np.array([o.yaw for o in seen])
    pitch_raw = np.array([o.pitch for o in seen])
    n_neutral = max(3, min(len(seen) // 5, int(np.searchsorted(times, times[0] + 0.5))))
    neutral = (float(np.median(yaw_raw[:n_neutral])), float(np.median(pitch_raw[:n_neutral])))
    yaw = _smooth(yaw_raw - neutral[0])
    pitch = _smooth(pitch_raw - neutral[1])
    actions = find_actions(times, yaw, pitch, th)

    # 1. the challenge, in order, within the time limit
    if challenge is not None:
        performed = [a.action for a in actions]
        matched = 0
        for want, got in zip(challenge.actions, performed, strict=False):
            if want != got:
                break
            matched += 1
        scores["challenge"] = matched / len(challenge.actions)
        if performed != list(challenge.actions):
            reasons.append(f"asked for {list(challenge.actions)}, saw {performed or 'no head movement'}")
        elif actions and actions[-1].peak_time - obs[0].time > th.time_limit:
            reasons.append(
                f"the challenge took {actions[-1].peak_time - obs[0].time:.1f} s (limit {th.time_limit:g} s)"
            )
        scores["time"] = (actions[-1].peak_time - obs[0].time) if actions else None

    # 2. one person, one face, continuously
    _identity(seen, track, identity_threshold, th, reasons, notes, scores)
    _single_face(obs, th, reasons, notes, scores)
    _continuity(obs, times, yaw_raw, pitch_raw, th, reasons, scores)

    # 3. depth: nose parallax against the neutral frame, at the actions' extremes. Passive: any
    # action the clip shows (a print turned by hand reads as no head turn at all)
    reference = int(np.argmin(np.abs(yaw[:n_neutral]) + np.abs(pitch[:n_neutral])))
    depth, parallax = _depth(seen, reference, yaw, pitch, actions, th) if actions else (None, None)
    scores["depth"], scores["parallax"] = depth, parallax
    if challenge is None and not actions:
        reasons.append("no head turn or nod: depth cannot be seen (a photo or a screen cannot be ruled out)")
    elif depth is None:
        reasons.append("too little head motion to see depth (a photo or a screen cannot be ruled out)")
    elif depth < th.min_depth:
        reasons.append(f"the face moves like a flat picture (depth {depth:.2f} < {th.min_depth:g})")
    return LivenessResult(
        not reasons, tuple(reasons), scores, tuple(actions), challenge, len(obs), len(seen), duration, tuple(notes)
    )


def _identity(
    seen: list[Observation],
    track: FaceTrack,
    threshold: float | None,
    th: LivenessThresholds,
    reasons: list[str],
    notes: list[str],
    scores: dict[str, float | None],
) -> None:
    embedded = [o for o in seen if o.embedding is not None]
    cut = threshold if threshold is not None else track.identity_threshold
    if not embedded:
        notes.append("no embeddings: identity not checked")
        scores["identity"] = None
        return
    vectors = np.stack([o.embedding for o in embedded if o.embedding is not None]).astype(np.float64)
    weights = np.maximum(np.array([o.quality for o in embedded]), 0.05)
    template = (vectors * weights[:, None]).sum(axis=0)
    template /= max(float(np.linalg.norm(template)), 1e-12)
    similarity = vectors @ template / np.maximum(np.linalg.norm(vectors, axis=1), 1e-12)
    low = float(np.quantile(similarity, 1.0 - th.identity_fraction))
    scores["identity"] = low
    scores["identity_threshold"] = cut
    if cut is None:
        notes.append("the embedder has no calibrated threshold: identity not checked (pass identity_threshold=)")
    elif low < cut:
        share = float((similarity >= cut).mean())
        reasons.append(f"not the same person throughout: {share:.0%} of the faces match the track's template")


def _single_face(
    obs: Sequence[Observation],
    th: LivenessThresholds,
    reasons: list[str],
    notes: list[str],
    scores: dict[str, float | None],
) -> None:
    big = sum(1 for o in obs if o.faces > 1 and o.other_ratio >= th.other_face_ratio)
    small = sum(1 for o in obs if o.faces > 1 and o.other_ratio < th.other_face_ratio)
    scores["other_faces"] = big / len(obs)
    if big > th.other_face_frames * len(obs):
        reasons.append(f"a second face beside the subject's in {big} of {len(obs)} frames")
    elif big or small:
        notes.append(f"other faces seen in {big + small} frames (smaller than the subject's or brief)")


def _continuity(
    obs: Sequence[Observation],
    times: np.ndarray,
    yaw: np.ndarray,
    pitch: np.ndarray,
    th: LivenessThresholds,
    reasons: list[str],
    scores: dict[str, float | None],
) -> None:
    gaps = np.diff(times) if len(times) > 1 else np.zeros(1)
    max_gap = float(max(gaps.max(initial=0.0), 0.0))
    scores["max_gap"] = max_gap
    if max_gap > th.max_gap:
        reasons.append(f"the face was lost for {max_gap:.2f} s (limit {th.max_gap:g} s)")
    step = np.maximum(np.abs(np.diff(yaw)), np.abs(np.diff(pitch)))
    allowed = np.maximum(th.max_jump_deg, th.max_speed * np.maximum(gaps, 1e-3))
    # a one-frame glitch of the landmarks jumps out and back: only a step that stays counts
    if len(step) >= 2:
        later = np.maximum(np.abs(yaw[2:] - yaw[:-2]), np.abs(pitch[2:] - pitch[:-2]))
        stays = np.concatenate([later >= 0.5 * step[:-1], [True]])
    else:
        stays = np.ones(len(step), dtype=bool)
    jumps = (step > allowed) & stays
    scores["max_jump_deg"] = float(step.max(initial=0.0))
    if jumps.any():
        k = int(np.argmax(np.where(jumps, step, -1)))
        reasons.append(
            f"the head pose jumped {step[k]:.0f} deg between two frames at {times[k + 1]:.2f} s (photos swapped?)"
        )


def _depth(
    seen: list[Observation],
    reference: int,
    yaw: np.ndarray,
    pitch: np.ndarray,
    actions: list[ActionSeen],
    th: LivenessThresholds,
) -> tuple[float | None, float | None]:
    """(depth ratio, parallax in IOD) at the moments of largest motion; (None, None) if too little motion."""
    ref = seen[reference]
    assert ref.landmarks is not None
    ref_pose = (ref.yaw, ref.pitch, ref.roll)
    times = np.array([o.time for o in seen])
    magnitude = np.hypot(yaw, pitch)
    groups = []
    for action in actions:
        inside = np.flatnonzero((times >= action.start) & (times <= action.end))
        if len(inside):
            top = magnitude[inside].max()
            groups.append(inside[magnitude[inside] >= 0.7 * top])
    ratios, parallaxes = [], []
    for group in groups:
        values, sizes = [], []
        for k in group:
            o = seen[int(k)]
            assert o.landmarks is not None
            observed = nose_parallax(ref.landmarks, o.landmarks)
            expected = expected_parallax(ref_pose, (o.yaw, o.pitch, o.roll))
            if observed is None or float(np.hypot(*expected)) < th.min_expected_parallax:
                continue
            values.append(depth_ratio(observed, expected))
            sizes.append(float(observed @ expected) / float(np.hypot(*expected)))
        if values:
            ratios.append(float(np.median(values)))
            parallaxes.append(float(np.median(sizes)))
    if not ratios:
        return None, None
    worst = int(np.argmin(ratios))  # every action must show depth: an attack fakes them all alike
    return ratios[worst], parallaxes[worst]


def check_liveness(
    frames: Iterable[Any] | str | os.PathLike[str],
    challenge: Challenge | None = None,
    analyzer: FaceAnalyzer | None = None,
    *,
    fps: float | None = None,
    far: float = DEFAULT_FAR,
    identity_threshold: float | None = None,
    thresholds: LivenessThresholds | None = None,
) -> LivenessResult:
    """Did a live person answer ``challenge`` in these frames? (:func:`observe`, then :func:`judge`.)

    ``frames``: Frame-like objects (``.time``, ``.pixels`` RGB uint8) such as a
    :class:`~faceatlas.video.source.VideoSource` yields, ``(time, array)`` pairs, RGB arrays with
    ``fps=``, or a video path. The identity check uses the embedder's calibrated threshold at
    ``far`` unless ``identity_threshold`` is given. ``challenge`` None: passive checks only.
    """
    if not (0.0 < far < 1.0):
        raise InvalidArgumentError(f"far must be a rate in (0, 1), got {far!r}")
    track = observe(frames, analyzer, fps=fps, far=far)
    return judge(track, challenge, thresholds=thresholds, identity_threshold=identity_threshold)
