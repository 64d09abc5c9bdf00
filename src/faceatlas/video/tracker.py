"""Boxes to track ids over time, without a model: ByteTrack-style two-stage matching.

Each track carries a constant-velocity Kalman filter over (cx, cy, w/h, h) and their velocities, in
seconds rather than frames, so frames sampled irregularly or detected every Nth frame (with
:meth:`FaceTracker.predict` in between) keep their motion. At every :meth:`FaceTracker.update`:

1. detections scoring at least ``high_score`` are matched to every track seen within
   ``lost_seconds`` by IoU with the track's predicted box (Hungarian, gate ``match_iou``);
2. detections scoring in [``low_score``, ``high_score``) are matched to the tracks still unmatched
   (gate ``low_match_iou``): they extend a track but never start one;
3. the high-score detections left are compared by cosine with the running mean embedding of the
   tracks still unmatched and lost for at most ``reid_seconds`` (after an occlusion or a cut); a
   match at or above ``reid_similarity`` revives that track's id;
4. the rest start new tracks. A track unmatched for longer than it could come back is closed.

numpy only (scipy's ``linear_sum_assignment`` for the matching, imported when first needed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from faceatlas.errors import InvalidArgumentError

# ByteTrack's noise, per frame at 30 fps, as a fraction of the box height; scaled here to seconds
_REF_FPS = 30.0
_STD_POSITION = 1.0 / 20
_STD_VELOCITY = 1.0 / 160
_MIN_SIZE = 1e-3  # a predicted height or aspect never reaches zero (the box stays a box)
_INFEASIBLE = 1e6  # the cost of a pair under the gate: the assignment avoids it, then drops it


@dataclass(frozen=True)
class TrackerStep:
    """What one :meth:`FaceTracker.update` or :meth:`FaceTracker.predict` found."""

    track_ids: np.ndarray  # (n,) int64, one per detection given; -1 = not tracked
    revived: tuple[int, ...]  # track ids re-associated by embedding at this step
    closed: tuple[int, ...]  # tracks that ended at this step (reported once, then forgotten)
    boxes: dict[int, np.ndarray]  # every live track's box now, xyxy float (detected or predicted)
    lost: tuple[int, ...]  # live tracks not matched at their latest update


def _measure(box: np.ndarray) -> np.ndarray:
    """xyxy to the filter's measurement (cx, cy, w/h, h)."""
    w, h = box[2] - box[0], box[3] - box[1]
    return np.array([box[0] + w / 2, box[1] + h / 2, w / h, h])


def _box(mean: np.ndarray) -> np.ndarray:
    """The filter's state back to an xyxy box."""
    cx, cy, a, h = mean[:4]
    w = a * h
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def _noise(h: float, position: float, velocity: float) -> np.ndarray:
    """Standard deviations of the 8 state entries for a box of height ``h`` (velocities per second)."""
    p, v = position * _STD_POSITION * h, velocity * _STD_VELOCITY * h * _REF_FPS
    return np.array([p, p, 1e-2 * position, p, v, v, 1e-5 * velocity * _REF_FPS, v])


def _initiate(box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A filter at rest at ``box``: position known to the detector's noise, velocity unknown."""
    z = _measure(box)
    return np.concatenate([z, np.zeros(4)]), np.diag(_noise(z[3], 2.0, 10.0) ** 2)


def _predict(mean: np.ndarray, cov: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Advance by ``dt`` seconds; the process noise grows with the time passed."""
    motion = np.eye(8)
    motion[range(4), range(4, 8)] = dt
    q = np.diag(_noise(mean[3], 1.0, 1.0) ** 2) * (dt * _REF_FPS)
    mean = motion @ mean
    for i in (2, 3):  # a shrinking box stops shrinking before it vanishes
        if mean[i] < _MIN_SIZE:
            mean[i], mean[i + 4] = _MIN_SIZE, 0.0
    return mean, motion @ cov @ motion.T + q


def _correct(mean: np.ndarray, cov: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Kalman update with a detected box."""
    std = _STD_POSITION * mean[3]
    noise = np.diag([std, std, 1e-1, std]) ** 2
    s = cov[:4, :4] + noise
    gain = np.linalg.solve(s, cov[:4, :]).T  # cov H^T S^-1 (S symmetric)
    mean = mean + gain @ (_measure(box) - mean[:4])
    cov = cov - gain @ s @ gain.T
    return mean, (cov + cov.T) / 2  # keep it symmetric against rounding


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, m) intersection over union of xyxy boxes."""
    lo, hi = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0.0, None), axis=2)
    area_a, area_b = np.prod(a[:, 2:] - a[:, :2], axis=1), np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def _match(similarity: np.ndarray, gate: float) -> list[tuple[int, int]]:
    """One-to-one pairs (row, column) of the most similar pairs at or above ``gate``."""
    if similarity.size == 0:
        return []
    from scipy.optimize import linear_sum_assignment

    ok = similarity >= gate
    rows, cols = linear_sum_assignment(np.where(ok, -similarity, _INFEASIBLE))
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if ok[r, c]]


class _Track:
    """One followed face: its filter, when it was last detected and its embeddings' sum."""

    __slots__ = ("box", "cov", "embedding", "id", "lost", "mean", "seen", "time")
    id: int
    mean: np.ndarray  # (8,) state, velocities per second
    cov: np.ndarray  # (8, 8)
    time: float  # the time the state is at
    seen: float  # the time of its latest detection
    lost: bool  # unmatched at its latest update
    box: np.ndarray  # xyxy: detected, or predicted while not matched
    embedding: np.ndarray | None  # the sum of its detections' unit embeddings

    def __init__(self, track_id: int, time: float, box: np.ndarray, embedding: np.ndarray | None) -> None:
        self.id, self.embedding = track_id, None
        self.restart(time, box)
        self.add(embedding)

    def restart(self, time: float, box: np.ndarray) -> None:
        self.mean, self.cov = _initiate(box)
        self.time = self.seen = time
        self.lost, self.box = False, box.copy()

    def advance(self, time: float) -> None:
        if time > self.time:
            if self.lost:  # as ByteTrack: an unseen face's size is held, not extrapolated
                self.mean[7] = 0.0
            self.mean, self.cov = _predict(self.mean, self.cov, time - self.time)
            self.time, self.box = time, _box(self.mean)

    def hit(self, time: float, box: np.ndarray, embedding: np.ndarray | None) -> None:
        self.mean, self.cov = _correct(self.mean, self.cov, box)
        self.seen, self.lost, self.box = time, False, box.copy()
        self.add(embedding)

    def add(self, embedding: np.ndarray | None) -> None:
        """Add a unit embedding (None or NaN: the detection had none) to the running sum."""
        if embedding is not None and not np.isnan(embedding[0]):
            self.embedding = embedding.copy() if self.embedding is None else self.embedding + embedding


class FaceTracker:
    """Follows face boxes over time; see the module docstring for the matching.

    ``lost_seconds``: how long a track missed by the detector is still matched by motion and IoU.
    ``reid_seconds``: how long it may still come back by embedding. ``reid_similarity``: the cosine
    at which an embedding revives a track; it belongs to the embedder (e.g. its verification
    threshold at a strict FAR), so ``None`` (the default) turns re-association off. A track is
    closed once it can no longer come back: unmatched for longer than ``lost_seconds``, or than
    ``max(lost_seconds, reid_seconds)`` with re-association on. Ids start at 1 and are never reused.
    """

    def __init__(
        self,
        *,
        high_score: float = 0.5,
        low_score: float = 0.1,
        match_iou: float = 0.2,
        low_match_iou: float = 0.5,
        lost_seconds: float = 1.0,
        reid_seconds: float = 5.0,
        reid_similarity: float | None = None,
    ) -> None:
        if not 0.0 <= low_score <= high_score:
            raise InvalidArgumentError(f"need 0 <= low_score <= high_score, got {low_score!r} and {high_score!r}")
        for name, iou in (("match_iou", match_iou), ("low_match_iou", low_match_iou)):
            if not 0.0 < iou <= 1.0:
                raise InvalidArgumentError(f"{name} must be in (0, 1], got {iou!r}")
        for name, seconds in (("lost_seconds", lost_seconds), ("reid_seconds", reid_seconds)):
            if not 0.0 <= seconds < math.inf:
                raise InvalidArgumentError(f"{name} must be a finite number of seconds >= 0, got {seconds!r}")
        if reid_similarity is not None and not -1.0 <= reid_similarity <= 1.0:
            raise InvalidArgumentError(f"reid_similarity must be a cosine in [-1, 1] or None, got {reid_similarity!r}")
        self.high_score, self.low_score = float(high_score), float(low_score)
        self.match_iou, self.low_match_iou = float(match_iou), float(low_match_iou)
        self.lost_seconds, self.reid_seconds = float(lost_seconds), float(reid_seconds)
        self.reid_similarity = None if reid_similarity is None else float(reid_similarity)
        self._keep = self.lost_seconds if reid_similarity is None else max(self.lost_seconds, self.reid_seconds)
        self._tracks: list[_Track] = []
        self._next_id = 1
        self._time = -math.inf
        self._dim: int | None = None

    def update(
        self, time: float, boxes: np.ndarray, scores: np.ndarray, embeddings: np.ndarray | None = None
    ) -> TrackerStep:
        """Match a frame's detections: ``boxes`` (n, 4) xyxy, ``scores`` (n,), ``embeddings`` (n, d)
        or None (a row of NaN: that detection has none). Returns each detection's track id."""
        time = self._check_time(time)
        boxes, scores, units = self._check(boxes, scores, embeddings)  # before anything changes
        self._advance(time)
        ids = np.full(len(boxes), -1, np.int64)
        pairs: dict[int, _Track] = {}  # detection -> track
        # stages 1 and 2: motion and IoU, confident detections first, against tracks seen lately
        free = [t for t in self._tracks if not t.lost or time - t.seen <= self.lost_seconds]
        high = np.flatnonzero(scores >= self.high_score)
        low = np.flatnonzero((scores >= self.low_score) & (scores < self.high_score))
        for dets, gate in ((high, self.match_iou), (low, self.low_match_iou)):
            if len(dets) and free:
                found = _match(_iou(boxes[dets], np.stack([t.box for t in free])), gate)
                pairs.update((int(dets[d]), free[t]) for d, t in found)
                taken = {t for _, t in found}
                free = [t for i, t in enumerate(free) if i not in taken]
        for d, track in pairs.items():
            track.hit(time, boxes[d], None if units is None else units[d])
        # stage 3: re-association by embedding of the confident detections left
        left = [int(d) for d in high if int(d) not in pairs]
        revived = self._reassociate(time, left, boxes, units, pairs)
        for d in left:
            if d not in pairs:
                pairs[d] = _Track(self._next_id, time, boxes[d], None if units is None else units[d])
                self._tracks.append(pairs[d])
                self._next_id += 1
        for d, track in pairs.items():
            ids[d] = track.id
        matched = {id(t) for t in pairs.values()}
        for track in self._tracks:
            if id(track) not in matched:
                track.lost = True
        return self._step(ids, revived)

    def predict(self, time: float) -> TrackerStep:
        """A frame without detection: every live track moves by its motion alone (none is matched)."""
        self._advance(self._check_time(time))
        return self._step(np.empty(0, np.int64), ())

    def finish(self) -> tuple[int, ...]:
        """The source ended: every live track's id, now closed (and forgotten)."""
        closed = tuple(t.id for t in self._tracks)
        self._tracks = []
        return closed

    def _check_time(self, time: float) -> float:
        """``time`` as a float, refused when not finite or earlier than the last one given."""
        try:
            time = float(time)
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"time must be a number of seconds, got {time!r}") from None
        if not math.isfinite(time):
            raise InvalidArgumentError(f"time must be a finite number of seconds, got {time!r}")
        if time < self._time:
            raise InvalidArgumentError(f"time went backwards: {time!r} after {self._time!r}; give frames in order")
        return time

    def _advance(self, time: float) -> None:
        """Move every track's filter to ``time``."""
        self._time = time
        for track in self._tracks:
            track.advance(time)

    def _check(
        self, boxes: np.ndarray, scores: np.ndarray, embeddings: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The detections as float arrays, embeddings as unit rows (None where a row is NaN)."""
        b = np.asarray(boxes, dtype=np.float64)
        if b.size == 0:
            b = b.reshape(0, 4)
        if b.ndim != 2 or b.shape[1] != 4:
            raise InvalidArgumentError(f"boxes must be an (n, 4) array of x1, y1, x2, y2, got shape {b.shape}")
        if not np.isfinite(b).all():
            raise InvalidArgumentError("boxes hold NaN or inf; leave such detections out")
        if ((b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1])).any():
            raise InvalidArgumentError("every box needs x2 > x1 and y2 > y1 (xyxy, positive size)")
        s = np.asarray(scores, dtype=np.float64)
        if s.shape != (len(b),) or not np.isfinite(s).all():
            raise InvalidArgumentError(f"scores must be {len(b)} finite numbers, one per box, got shape {s.shape}")
        if embeddings is None or (len(b) == 0 and np.size(embeddings) == 0):
            return b, s, None
        e = np.asarray(embeddings, dtype=np.float64)
        if e.ndim != 2 or len(e) != len(b) or e.shape[1] == 0:
            raise InvalidArgumentError(f"embeddings must be ({len(b)}, d), one row per box, got shape {e.shape}")
        if self._dim is not None and e.shape[1] != self._dim and len(e):
            raise InvalidArgumentError(f"embeddings changed dimension: {e.shape[1]} after {self._dim}")
        missing = np.asarray(np.isnan(e).all(axis=1))
        norms = np.linalg.norm(np.where(missing[:, None], 1.0, e), axis=1)
        if not np.isfinite(e[~missing]).all() or (norms < 1e-12).any():
            raise InvalidArgumentError("embeddings hold inf, a partly-NaN row or a zero row; NaN a whole row instead")
        if len(e):
            self._dim = e.shape[1]
        units = e / norms[:, None]
        units[missing] = np.nan
        return b, s, units

    def _reassociate(
        self, time: float, dets: list[int], boxes: np.ndarray, units: np.ndarray | None, pairs: dict[int, _Track]
    ) -> tuple[int, ...]:
        """Revive lost tracks whose mean embedding matches an unmatched detection's (adds to ``pairs``)."""
        if self.reid_similarity is None or units is None:
            return ()
        dets = [d for d in dets if not np.isnan(units[d, 0])]
        taken = {id(t) for t in pairs.values()}
        lost = [
            t
            for t in self._tracks
            if id(t) not in taken and t.embedding is not None and time - t.seen <= self.reid_seconds
        ]
        if not dets or not lost:
            return ()
        means: np.ndarray = np.stack([t.embedding for t in lost if t.embedding is not None])
        means /= np.linalg.norm(means, axis=1, keepdims=True)
        revived = []
        for d, t in _match(units[dets] @ means.T, self.reid_similarity):
            track, det = lost[t], dets[d]
            track.restart(time, boxes[det])  # the old motion says nothing about where it is now
            track.add(units[det])
            pairs[det] = track
            revived.append(track.id)
        return tuple(sorted(revived))

    def _step(self, ids: np.ndarray, revived: tuple[int, ...]) -> TrackerStep:
        """Close the tracks that can no longer come back, then report the live ones."""
        gone = [t for t in self._tracks if t.lost and self._time - t.seen > self._keep]
        self._tracks = [t for t in self._tracks if not (t.lost and self._time - t.seen > self._keep)]
        return TrackerStep(
            track_ids=ids,
            revived=revived,
            closed=tuple(t.id for t in gone),
            boxes={t.id: t.box.copy() for t in self._tracks},
            lost=tuple(t.id for t in self._tracks if t.lost),
        )
