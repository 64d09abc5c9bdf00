"""Synthetic clips of real faces, with exact ground truth, for tests and benchmarks of tracking.

Face photos (LFW's 250x250 portraits, or any photo of one person) are cut out with a soft ellipse
around the face and composited onto a background, moving along scripted paths: entering from an
edge, walking past each other (the nearer, larger face occludes the farther one), stopping, walking
toward the camera, leaving; with per-frame jitter, slight in-plane roll, motion blur, sensor noise
and JPEG compression, and optional hard cuts. Each appearance of a person uses another of their
photos (as long as they have several). The ground truth (per frame: boxes, identities, the visible
fraction of each face) comes from the same geometry that draws the frame, so it is exact.

>>> scene = build_scene({"ann": ["ann1.jpg", "ann2.jpg"], "bob": ["bob1.jpg", "bob2.jpg"]}, seconds=6, seed=1)
>>> for frame in scene.frames():          # a generator: memory stays bounded for long scenes
...     frame.index, frame.time, frame.pixels, scene.truth.at(frame.index)
>>> scene.truth.intervals["ann"]          # [(start, end), ...] in seconds
>>> scene.write("clip.mp4")               # and clip.json: the ground truth

Nothing here is tuned to particular photos: the script is drawn from ``seed``. OpenCV is imported
when a frame is drawn.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from faceatlas.errors import InvalidArgumentError, NoFaceError

# the cut-out around a face box (w, h): an ellipse a little above the box centre, wide enough for
# the hair and tall enough for the chin; its edge is feathered over this fraction of its radius
_ELLIPSE_RX = 0.72
_ELLIPSE_RY = 0.68
_ELLIPSE_DY = -0.08
_FEATHER = 0.15
_GRID = 8  # points per side sampled in a face box to measure how much of it is visible
MIN_VISIBLE = 0.5  # a face counts as present (intervals, first appearance) when this much shows


@dataclass(frozen=True, slots=True)
class Portrait:
    """A photo of one person and where their face is in it (``face``: xyxy pixels)."""

    pixels: np.ndarray  # (h, w, 3) uint8 RGB
    face: tuple[float, float, float, float]
    source: str = ""


@dataclass(frozen=True, slots=True)
class Keyframe:
    """Where a face is at ``time``: centre ``x``, ``y`` and face-box height ``size``, frame pixels."""

    time: float
    x: float
    y: float
    size: float


@dataclass(frozen=True, slots=True)
class Appearance:
    """One visit of a person: a photo and a piecewise-linear path of at least two keyframes."""

    person: str
    photo: int  # index into the person's portraits
    path: tuple[Keyframe, ...]
    kind: str = "walk"  # what the script made of it: cross, stop, approach, pair, ...
    roll: float = 0.0  # amplitude of the slow in-plane sway, degrees
    sway_hz: float = 0.3
    phase: float = 0.0
    gain: tuple[float, float, float] = (1.0, 1.0, 1.0)  # this visit's illumination, per channel
    after_cut: bool = False  # the continuation of a visit across a cut

    @property
    def start(self) -> float:
        return self.path[0].time

    @property
    def end(self) -> float:
        return self.path[-1].time


@dataclass(frozen=True, slots=True)
class Effects:
    """Camera effects. ``jitter``: per-frame position noise as a fraction of the face size;
    ``blur``: exposure as a fraction of the frame interval (motion blur along each face's motion);
    ``noise``: sensor noise sigma (grey levels); ``jpeg``: quality of each frame's JPEG round trip
    (None: none); ``drift``: slow background (camera) sway amplitude, pixels."""

    jitter: float = 0.01
    blur: float = 0.5
    noise: float = 3.0
    jpeg: int | None = 75
    drift: float = 6.0


@dataclass(frozen=True, slots=True)
class FaceTruth:
    """One face in one frame."""

    person: str
    appearance: int  # index into ``GroundTruth.appearances``
    box: tuple[float, float, float, float]  # xyxy, clipped to the frame
    visible: float  # fraction of the face box inside the frame and not covered by a nearer face
    size: float  # face-box height in pixels (unclipped)
    depth: int  # drawing order in this frame: 0 is farthest


@dataclass(frozen=True, slots=True)
class SceneFrame:
    """A frame of a scene (the same fields as ``faceatlas.video.source.Frame``)."""

    index: int
    time: float
    pixels: np.ndarray


@dataclass(frozen=True)
class GroundTruth:
    """Per frame, every face drawn; per person, when they are visible."""

    width: int
    height: int
    fps: float
    faces: tuple[tuple[FaceTruth, ...], ...]  # indexed by frame
    appearances: tuple[Appearance, ...]
    cuts: tuple[float, ...] = ()
    intervals: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return len(self.faces)

    def at(self, index: int) -> tuple[FaceTruth, ...]:
        return self.faces[index]

    def time(self, index: int) -> float:
        return index / self.fps

    def people(self) -> list[str]:
        return sorted({a.person for a in self.appearances})

    def first_visible(self, appearance: int, min_visible: float = MIN_VISIBLE) -> float | None:
        """When an appearance's face first shows at least ``min_visible`` of itself (seconds)."""
        for index, faces in enumerate(self.faces):
            if any(f.appearance == appearance and f.visible >= min_visible for f in faces):
                return self.time(index)
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "cuts": list(self.cuts),
            "appearances": [asdict(a) for a in self.appearances],
            "intervals": {k: [list(v) for v in vs] for k, vs in self.intervals.items()},
            "faces": [[asdict(f) for f in faces] for faces in self.faces],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GroundTruth:
        appearances = tuple(
            Appearance(**{**a, "path": tuple(Keyframe(**k) for k in a["path"]), "gain": tuple(a["gain"])})
            for a in data["appearances"]
        )
        faces = tuple(tuple(FaceTruth(**{**f, "box": tuple(f["box"])}) for f in fs) for fs in data["faces"])
        intervals = {k: [(float(a), float(b)) for a, b in vs] for k, vs in data["intervals"].items()}
        return cls(
            int(data["width"]),
            int(data["height"]),
            float(data["fps"]),
            faces,
            appearances,
            tuple(data.get("cuts", ())),
            intervals,
        )


PhotoLike = str | os.PathLike[str] | np.ndarray | Portrait
Locate = Literal["detect", "center"] | Callable[[np.ndarray], Sequence[float] | None]


# -- portraits ---------------------------------------------------------------------------------------


def center_face(pixels: np.ndarray) -> tuple[float, float, float, float]:
    """Where a centred portrait's face usually is (LFW's deep-funneled crops: about 38 % x 52 %)."""
    h, w = pixels.shape[:2]
    return (0.31 * w, 0.25 * h, 0.69 * w, 0.77 * h)


def detect_face(pixels: np.ndarray) -> tuple[float, float, float, float] | None:
    """The face nearest the photo's centre, by the default detector (None: no face)."""
    from faceatlas.api import detect

    faces = detect(pixels)
    if not faces:
        return None
    h, w = pixels.shape[:2]

    def off_centre(face: Any) -> float:
        b = face.box
        return math.hypot((b.x1 + b.x2) / 2 - w / 2, (b.y1 + b.y2) / 2 - h / 2) / max(b.height, 1.0)

    b = min(faces, key=off_centre).box
    return (float(b.x1), float(b.y1), float(b.x2), float(b.y2))


def portrait(photo: PhotoLike, locate: Locate = "detect") -> Portrait:
    """A :class:`Portrait` from a path or an RGB array, its face found by ``locate``."""
    if isinstance(photo, Portrait):
        return photo
    from faceatlas.image import load_image

    pixels = load_image(photo)
    source = "array" if isinstance(photo, np.ndarray) else os.fspath(photo)
    if locate == "center":
        box: Sequence[float] | None = center_face(pixels)
    elif locate == "detect":
        box = detect_face(pixels)
    elif callable(locate):
        box = locate(pixels)
    else:
        raise InvalidArgumentError(f"locate must be 'detect', 'center' or a function, got {locate!r}")
    if box is None:
        raise NoFaceError(f"no face found in {source}; pass a Portrait with its face box, or locate='center'")
    x1, y1, x2, y2 = (float(v) for v in box)
    if not (x2 > x1 and y2 > y1):
        raise InvalidArgumentError(f"the face box of {source} is empty: {box!r}")
    return Portrait(pixels, (x1, y1, x2, y2), source)


@dataclass(frozen=True, slots=True)
class _Sprite:
    """A portrait cut out: the crop around the face ellipse, its alpha, and its geometry."""

    rgb: np.ndarray  # (h, w, 3) float32
    alpha: np.ndarray  # (h, w) float32 in [0, 1]
    face_centre: tuple[float, float]  # in crop pixels
    face_size: tuple[float, float]  # face box (w, h)
    ellipse: tuple[float, float, float, float]  # centre x, y and radii, crop pixels


def _sprite(p: Portrait) -> _Sprite:
    x1, y1, x2, y2 = p.face
    fw, fh = x2 - x1, y2 - y1
    ex, ey = (x1 + x2) / 2, (y1 + y2) / 2 + _ELLIPSE_DY * fh
    rx, ry = _ELLIPSE_RX * fw, _ELLIPSE_RY * fh
    h, w = p.pixels.shape[:2]
    cx1, cy1 = max(0, int(ex - rx)), max(0, int(ey - ry))
    cx2, cy2 = min(w, math.ceil(ex + rx) + 1), min(h, math.ceil(ey + ry) + 1)
    yy, xx = np.mgrid[cy1:cy2, cx1:cx2].astype(np.float32)
    r = np.sqrt(((xx - ex) / rx) ** 2 + ((yy - ey) / ry) ** 2)
    alpha = np.clip((1.0 - r) / _FEATHER, 0.0, 1.0)
    # fade toward the photo's own border too, so a head cut by the photo has no hard edge
    border = max(2.0, 0.03 * max(fw, fh))
    edge = np.minimum.reduce([xx + 0.5, w - 0.5 - xx, yy + 0.5, h - 0.5 - yy]) / border
    alpha = (alpha * np.clip(edge, 0.0, 1.0)).astype(np.float32)
    rgb = p.pixels[cy1:cy2, cx1:cx2].astype(np.float32)
    return _Sprite(rgb, alpha, ((x1 + x2) / 2 - cx1, (y1 + y2) / 2 - cy1), (fw, fh), (ex - cx1, ey - cy1, rx, ry))


# -- the script -------------------------------------------------------------------------------------


@dataclass
class _Planner:
    rng: np.random.Generator
    width: int
    height: int
    face_size: tuple[float, float]
    speed: tuple[float, float]
    roll: float

    def _size(self) -> float:
        return float(self.rng.uniform(*self.face_size) * self.height)

    def _speed(self) -> float:
        return float(self.rng.uniform(*self.speed) * self.width)

    def _y(self, size: float) -> float:
        lo, hi = 0.5 * size + 0.05 * self.height, self.height - 0.6 * size
        return float(self.rng.uniform(lo, max(lo, hi)))

    def _outside(self, side: int, size: float) -> float:
        """A centre x where the whole cut-out is just outside the frame on ``side`` (-1 left, 1 right)."""
        margin = 0.65 * size
        return -margin if side < 0 else self.width + margin

    def _style(self, person: str, photo: int, path: list[Keyframe], kind: str) -> Appearance:
        r = self.rng
        gain = tuple(float(g) for g in r.uniform(0.85, 1.15) * r.uniform(0.95, 1.05, 3))
        return Appearance(
            person,
            photo,
            tuple(path),
            kind,
            roll=float(r.uniform(0.3, 1.0) * self.roll),
            sway_hz=float(r.uniform(0.15, 0.5)),
            phase=float(r.uniform(0, 2 * math.pi)),
            gain=(gain[0], gain[1], gain[2]),
        )

    def cross(self, t: float, side: int, size: float | None = None, y: float | None = None) -> list[Keyframe]:
        size = self._size() if size is None else size
        y = self._y(size) if y is None else y
        v = self._speed()
        x0, x1 = self._outside(side, size), self._outside(-side, size)
        grow = float(self.rng.uniform(0.9, 1.1))
        dy = float(self.rng.uniform(-0.04, 0.04) * self.height)
        return [Keyframe(t, x0, y, size), Keyframe(t + abs(x1 - x0) / v, x1, y + dy, size * grow)]

    def stop(self, t: float) -> list[Keyframe]:
        size, side = self._size(), int(self.rng.choice((-1, 1)))
        y, v = self._y(size), self._speed()
        x0 = self._outside(side, size)
        xs = float(self.rng.uniform(0.25, 0.75) * self.width)
        t1 = t + abs(xs - x0) / v
        t2 = t1 + float(self.rng.uniform(1.0, 3.0))
        xs2 = xs + float(self.rng.uniform(-0.03, 0.03) * self.width)
        s2 = size * float(self.rng.uniform(0.95, 1.08))
        exit_side = int(self.rng.choice((-1, 1)))
        x3 = self._outside(exit_side, s2)
        return [
            Keyframe(t, x0, y, size),
            Keyframe(t1, xs, y, size),
            Keyframe(t2, xs2, y, s2),
            Keyframe(t2 + abs(x3 - xs2) / v, x3, y, s2),
        ]

    def approach(self, t: float) -> list[Keyframe]:
        """From the distance (small), toward the camera (growing), out through the bottom edge."""
        lo, hi = self.face_size
        small = float(self.rng.uniform(0.6, 0.9) * lo * self.height)
        large = float(self.rng.uniform(1.0, 1.4) * hi * self.height)
        side = int(self.rng.choice((-1, 1)))
        x0 = self._outside(side, small)
        xm = float(self.rng.uniform(0.3, 0.7) * self.width)
        ym = float(self.rng.uniform(0.3, 0.45) * self.height)
        v = self._speed()
        t1 = t + abs(xm - x0) / v
        t2 = t1 + float(self.rng.uniform(2.0, 4.0))
        x2 = xm + float(self.rng.uniform(-0.1, 0.1) * self.width)
        y2 = min(self.height - 0.55 * large, ym + 0.25 * self.height)
        t3 = t2 + float(self.rng.uniform(0.5, 1.0))
        return [
            Keyframe(t, x0, ym, small),
            Keyframe(t1, xm, ym, small * 1.1),
            Keyframe(t2, x2, y2, large),
            Keyframe(t3, x2, self.height + 0.9 * large, large * 1.05),
        ]

    def pair(self, t: float) -> tuple[list[Keyframe], list[Keyframe]]:
        """Two people walking past each other; the second is nearer (larger, lower) and occludes."""
        far = self._size()
        near = far * float(self.rng.uniform(1.15, 1.35))
        y = self._y(near)
        y_far = max(0.5 * far, y - float(self.rng.uniform(0.02, 0.06)) * self.height)
        side = int(self.rng.choice((-1, 1)))
        return self.cross(t, side, far, y_far), self.cross(t, -side, near, y)


def _plan(
    counts: Mapping[str, int],
    rng: np.random.Generator,
    *,
    width: int,
    height: int,
    seconds: float,
    crowd: int,
    crossings: bool,
    face_size: tuple[float, float],
    speed: tuple[float, float],
    gap: float,
    roll: float,
) -> list[Appearance]:
    """A random script: arrivals over the clip, at most ``crowd`` people on screen at once."""
    planner = _Planner(rng, width, height, face_size, speed, roll)
    names = list(counts)
    seen = dict.fromkeys(names, 0)
    photo_orders = {n: [int(i) for i in rng.permutation(counts[n])] for n in names}
    busy_until = dict.fromkeys(names, -math.inf)
    out: list[Appearance] = []

    def photo_of(name: str) -> int:
        order = photo_orders[name]
        return order[seen[name] % len(order)]

    def free(t: float) -> list[str]:
        candidates = [n for n in names if busy_until[n] <= t]
        rng.shuffle(candidates)  # ties among the least seen broken at random
        return sorted(candidates, key=lambda n: seen[n])

    def add(name: str, path: list[Keyframe], kind: str) -> None:
        out.append(planner._style(name, photo_of(name), path, kind))
        seen[name] += 1
        busy_until[name] = path[-1].time + 0.5  # nobody is in two places at once

    t = float(rng.uniform(0.0, 0.3))
    first = True
    while t < seconds - 0.5:
        on_screen = sum(1 for a in out if a.start <= t < a.end)
        available = free(t)
        if on_screen >= crowd or not available:
            ends = [a.end for a in out if a.end > t] + [busy_until[n] for n in names if busy_until[n] > t]
            t = min(ends) + float(rng.uniform(0.1, 0.5))
            continue
        if crossings and len(available) >= 2 and on_screen + 2 <= crowd and (first or rng.random() < 0.35):
            a, b = planner.pair(t)
            add(available[0], a, "pair")
            add(available[1], b, "pair")
        else:
            kind = str(rng.choice(["cross", "stop", "approach"], p=[0.4, 0.35, 0.25]))
            if kind == "cross":
                path = planner.cross(t, int(rng.choice((-1, 1))))
            elif kind == "stop":
                path = planner.stop(t)
            else:
                path = planner.approach(t)
            add(available[0], path, kind)
        first = False
        t += float(rng.exponential(gap)) + 0.2
    return out


def _split_at_cuts(
    appearances: list[Appearance],
    cuts: Sequence[float],
    counts: Mapping[str, int],
    width: int,
    rng: np.random.Generator,
) -> list[Appearance]:
    """A visit that spans a cut goes on elsewhere: mirrored across the frame, another scale, and
    (when the person has another) another photo: a new shot of the same person."""
    out = list(appearances)
    for cut in sorted(cuts):
        split: list[Appearance] = []
        for a in out:
            if not (a.start < cut < a.end):
                split.append(a)
                continue
            here = _at(a.path, cut)
            before = [k for k in a.path if k.time < cut] + [Keyframe(cut, here.x, here.y, here.size)]
            scale = float(rng.uniform(0.75, 1.3))
            mirrored = [Keyframe(cut, width - here.x, here.y, here.size * scale)] + [
                Keyframe(k.time, width - k.x, k.y, k.size * scale) for k in a.path if k.time > cut
            ]
            photo = (a.photo + 1) % counts[a.person]
            split.append(_replace_path(a, before))
            split.append(_replace_path(a, mirrored, photo=photo, after_cut=True))
        out = split
    return out


def _replace_path(
    a: Appearance, path: list[Keyframe], *, photo: int | None = None, after_cut: bool = False
) -> Appearance:
    return Appearance(
        a.person,
        a.photo if photo is None else photo,
        tuple(path),
        a.kind,
        a.roll,
        a.sway_hz,
        a.phase,
        a.gain,
        after_cut or a.after_cut,
    )


def _at(path: Sequence[Keyframe], t: float) -> Keyframe:
    """The path interpolated at ``t`` (clamped to its ends)."""
    if t <= path[0].time:
        return path[0]
    for a, b in itertools.pairwise(path):
        if t <= b.time:
            u = (t - a.time) / max(b.time - a.time, 1e-9)
            return Keyframe(t, a.x + u * (b.x - a.x), a.y + u * (b.y - a.y), a.size + u * (b.size - a.size))
    return path[-1]


# -- the scene --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Placed:
    """An appearance's geometry in one frame."""

    appearance: int
    x: float  # face centre
    y: float
    size: float  # face-box height
    scale: float  # frame pixels per photo pixel
    roll: float  # degrees, clockwise
    vx: float  # pixels per second
    vy: float


class Scene:
    """A scripted clip: ``frames()`` draws it frame by frame; ``truth`` is its ground truth.

    Build one with :func:`build_scene` (a random script), or directly from portraits and
    appearances (a script of your own).
    """

    def __init__(
        self,
        portraits: Mapping[str, Sequence[Portrait]],
        appearances: Sequence[Appearance],
        *,
        width: int = 640,
        height: int = 360,
        fps: float = 25.0,
        seconds: float = 10.0,
        seed: int = 0,
        background: np.ndarray | None = None,
        cuts: Sequence[float] = (),
        effects: Effects | None = None,
    ) -> None:
        if width < 16 or height < 16:
            raise InvalidArgumentError(f"a scene needs at least 16x16 pixels, got {width}x{height}")
        if not (fps > 0 and seconds > 0):
            raise InvalidArgumentError(f"fps and seconds must be positive, got fps={fps}, seconds={seconds}")
        for a in appearances:
            if a.person not in portraits or not 0 <= a.photo < len(portraits[a.person]):
                raise InvalidArgumentError(f"appearance of {a.person!r} uses photo {a.photo}, which is not given")
            if len(a.path) < 2 or any(q.time < p.time for p, q in zip(a.path, a.path[1:], strict=False)):
                raise InvalidArgumentError(f"appearance of {a.person!r}: a path needs 2+ keyframes in time order")
        self.width, self.height, self.fps, self.seconds, self.seed = width, height, float(fps), seconds, seed
        self.portraits = {k: list(v) for k, v in portraits.items()}
        self.appearances = tuple(appearances)
        self._starts = np.array([a.start for a in self.appearances], np.float64)
        self._ends = np.array([a.end for a in self.appearances], np.float64)
        self.cuts = tuple(sorted(cuts))
        self.effects = effects or Effects()
        self._sprites: dict[tuple[str, int], _Sprite] = {}
        self._background_given = background
        self._backgrounds: list[np.ndarray] | None = None
        self._noise: tuple[np.ndarray, np.ndarray] | None = None
        self.frame_count = math.floor(seconds * self.fps + 1e-9)
        self.truth = self._ground_truth()

    # -- geometry (shared by drawing and the ground truth) ----------------------------------------------

    def _sprite_of(self, a: Appearance) -> _Sprite:
        key = (a.person, a.photo)
        if key not in self._sprites:
            self._sprites[key] = _sprite(self.portraits[a.person][a.photo])
        return self._sprites[key]

    def _placed(self, index: int) -> list[_Placed]:
        """Every appearance in frame ``index``, farthest first (drawing order)."""
        t = index / self.fps
        dt = 0.5 / self.fps
        placed = []
        for i in np.flatnonzero((self._starts <= t) & (self._ends >= t)).tolist():
            a = self.appearances[i]
            k = _at(a.path, t)
            before, after = _at(a.path, max(a.start, t - dt)), _at(a.path, min(a.end, t + dt))
            span = max(after.time - before.time, 1e-9)
            vx, vy = (after.x - before.x) / span, (after.y - before.y) / span
            rng = np.random.default_rng((self.seed, i, index))
            jx, jy, jr = rng.normal(0.0, 1.0, 3)
            moving = min(1.0, math.hypot(vx, vy) / (0.1 * self.width))
            bob = 0.025 * k.size * moving * math.sin(2 * math.pi * 1.8 * t + a.phase)  # the walking gait
            jitter = self.effects.jitter * k.size
            x = k.x + jitter * jx
            y = k.y + jitter * jy + bob
            roll = a.roll * math.sin(2 * math.pi * a.sway_hz * t + a.phase) + 0.3 * jr
            scale = k.size / self._sprite_of(a).face_size[1]
            placed.append(_Placed(i, x, y, k.size, scale, roll, vx, vy))
        placed.sort(key=lambda p: (p.size, p.appearance))  # nearer people look larger and are drawn last
        return placed

    def _inverse(self, p: _Placed) -> tuple[np.ndarray, np.ndarray]:
        """The map from frame pixels to the sprite's crop pixels: q = A @ (x, y) + b."""
        s = self._sprite_of(self.appearances[p.appearance])
        th = math.radians(p.roll)
        c, sn = math.cos(th), math.sin(th)
        rot_t = np.array([[c, sn], [-sn, c]]) / p.scale  # R^T / k
        b = np.array(s.face_centre) - rot_t @ np.array([p.x, p.y])
        return rot_t, b

    def _covered(self, p: _Placed, points: np.ndarray) -> np.ndarray:
        """Which frame points (n, 2) the cut-out of ``p`` hides (alpha over one half)."""
        s = self._sprite_of(self.appearances[p.appearance])
        a, b = self._inverse(p)
        q = points @ a.T + b
        ex, ey, rx, ry = s.ellipse
        r = np.sqrt(((q[:, 0] - ex) / rx) ** 2 + ((q[:, 1] - ey) / ry) ** 2)
        h, w = s.alpha.shape
        inside = (q[:, 0] >= 0) & (q[:, 0] < w) & (q[:, 1] >= 0) & (q[:, 1] < h)
        return inside & (r < 1.0 - _FEATHER / 2)

    def _ground_truth(self) -> GroundTruth:
        u = (np.arange(_GRID) + 0.5) / _GRID
        grid = np.stack(np.meshgrid(u, u), -1).reshape(-1, 2)
        per_frame: list[tuple[FaceTruth, ...]] = []
        for index in range(self.frame_count):
            placed = self._placed(index)
            faces = []
            for depth, p in enumerate(placed):
                s = self._sprite_of(self.appearances[p.appearance])
                fw, fh = s.face_size[0] * p.scale, s.face_size[1] * p.scale
                x1, y1, x2, y2 = p.x - fw / 2, p.y - fh / 2, p.x + fw / 2, p.y + fh / 2
                points = np.array([x1, y1]) + grid * np.array([fw, fh])
                shown = (points[:, 0] >= 0) & (points[:, 0] < self.width)
                shown &= (points[:, 1] >= 0) & (points[:, 1] < self.height)
                for nearer in placed[depth + 1 :]:
                    shown &= ~self._covered(nearer, points)
                box = (
                    float(np.clip(x1, 0, self.width)),
                    float(np.clip(y1, 0, self.height)),
                    float(np.clip(x2, 0, self.width)),
                    float(np.clip(y2, 0, self.height)),
                )
                if box[2] - box[0] < 1 or box[3] - box[1] < 1:
                    continue  # wholly outside the frame: only the hair or nothing shows
                a = self.appearances[p.appearance]
                faces.append(FaceTruth(a.person, p.appearance, box, float(shown.mean()), float(fh), depth))
            per_frame.append(tuple(faces))
        return GroundTruth(
            self.width,
            self.height,
            self.fps,
            tuple(per_frame),
            self.appearances,
            self.cuts,
            _intervals(per_frame, self.fps),
        )

    # -- drawing --------------------------------------------------------------------------------------

    def _setup(self) -> None:
        if self._backgrounds is not None:
            return
        rng = np.random.default_rng((self.seed, 7))
        margin = math.ceil(self.effects.drift) + 1
        size = (self.height + 2 * margin, self.width + 2 * margin)
        first = _cover(self._background_given, size) if self._background_given is not None else _texture(size, rng)
        backgrounds = [first]
        for _ in self.cuts:  # another camera: the same place seen otherwise, or another texture
            if self._background_given is not None:
                tint = rng.uniform(0.8, 1.2, 3).astype(np.float32)
                backgrounds.append(np.clip(first[:, ::-1] * tint, 0, 255).astype(np.uint8))
            else:
                backgrounds.append(_texture(size, rng))
        self._backgrounds = backgrounds
        if self.effects.noise > 0:
            noise = rng.normal(0.0, self.effects.noise, (self.height + 16, self.width + 16, 3))
            self._noise = (
                np.clip(noise, 0, 255).astype(np.uint8),
                np.clip(-noise, 0, 255).astype(np.uint8),
            )

    def render(self, index: int) -> np.ndarray:
        """Frame ``index`` as an (H, W, 3) uint8 RGB array."""
        import cv2

        if not 0 <= index < self.frame_count:
            raise InvalidArgumentError(f"frame {index} is outside the scene (0..{self.frame_count - 1})")
        self._setup()
        assert self._backgrounds is not None
        t = index / self.fps
        segment = sum(1 for c in self.cuts if c <= t)
        margin = math.ceil(self.effects.drift) + 1
        dx = self.effects.drift * math.sin(2 * math.pi * t / 11.0)
        dy = 0.5 * self.effects.drift * math.sin(2 * math.pi * t / 7.0)
        ox, oy = round(margin + dx), round(margin + dy)
        frame = self._backgrounds[segment][oy : oy + self.height, ox : ox + self.width].astype(np.float32)
        for p in self._placed(index):
            self._draw(frame, p)
        out: np.ndarray = np.clip(frame + 0.5, 0, 255).astype(np.uint8)
        rng = np.random.default_rng((self.seed, 11, index))
        if self._noise is not None:
            ny, nx = (int(v) for v in rng.integers(0, 16, 2))
            plus, minus = self._noise
            window = (slice(ny, ny + self.height), slice(nx, nx + self.width))
            out = cv2.subtract(cv2.add(out, plus[window]), minus[window])
        if self.effects.jpeg is not None:
            quality = min(100, max(10, self.effects.jpeg + int(rng.integers(-8, 9))))
            ok, data = cv2.imencode(".jpg", out[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
            if ok:
                decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)
                if decoded is not None:
                    out = decoded[:, :, ::-1]
        return np.ascontiguousarray(out)

    def _draw(self, frame: np.ndarray, p: _Placed) -> None:
        import cv2

        a = self.appearances[p.appearance]
        s = self._sprite_of(a)
        # resize first (area averaging when shrinking: no aliasing), then rotate and place
        h, w = s.alpha.shape
        nw, nh = max(1, round(w * p.scale)), max(1, round(h * p.scale))
        interpolation = cv2.INTER_AREA if p.scale < 1 else cv2.INTER_LINEAR
        rgb = cv2.resize(s.rgb * np.array(a.gain, np.float32), (nw, nh), interpolation=interpolation)
        alpha = cv2.resize(s.alpha, (nw, nh), interpolation=interpolation)
        fcx, fcy = s.face_centre[0] * nw / w, s.face_centre[1] * nh / h
        m = cv2.getRotationMatrix2D((fcx, fcy), -p.roll, 1.0)  # OpenCV's positive angle is counter-clockwise
        m[:, 2] += (p.x - fcx, p.y - fcy)
        corners = np.array([[0, 0, 1], [nw, 0, 1], [0, nh, 1], [nw, nh, 1]], np.float64) @ m.T
        pad = 2 + math.ceil((abs(p.vx) + abs(p.vy)) * self.effects.blur / self.fps)
        x1 = max(0, math.floor(corners[:, 0].min() - pad))
        y1 = max(0, math.floor(corners[:, 1].min() - pad))
        x2 = min(self.width, math.ceil(corners[:, 0].max() + pad))
        y2 = min(self.height, math.ceil(corners[:, 1].max() + pad))
        if x2 <= x1 or y2 <= y1:
            return
        m[:, 2] -= (x1, y1)
        size = (x2 - x1, y2 - y1)
        alpha_w = cv2.warpAffine(alpha, m, size, flags=cv2.INTER_LINEAR, borderValue=0.0)
        premult = cv2.warpAffine(rgb * alpha[:, :, None], m, size, flags=cv2.INTER_LINEAR, borderValue=(0.0, 0.0, 0.0))
        length = math.hypot(p.vx, p.vy) * self.effects.blur / self.fps
        if length >= 1.5:
            kernel = _motion_kernel(length, math.atan2(p.vy, p.vx))
            alpha_w = cv2.filter2D(alpha_w, -1, kernel)
            premult = cv2.filter2D(premult, -1, kernel)
        roi = frame[y1:y2, x1:x2]
        roi *= 1.0 - alpha_w[:, :, None]
        roi += premult

    def frames(self, start: int = 0, stop: int | None = None, step: int = 1) -> Iterator[SceneFrame]:
        """The frames, drawn one at a time (``step``: every n-th, for a lower frame rate)."""
        if step < 1:
            raise InvalidArgumentError(f"step must be at least 1, got {step}")
        stop = self.frame_count if stop is None else min(stop, self.frame_count)
        for index in range(start, stop, step):
            yield SceneFrame(index, index / self.fps, self.render(index))

    def write(self, path: str | os.PathLike[str], *, fourcc: str = "mp4v", truth: bool = True) -> Path:
        """Write the clip (``mp4v`` in an .mp4 by default) and, with ``truth``, its ground truth as
        JSON beside it (same name, ``.json``)."""
        import cv2

        path = Path(path)
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), self.fps, (self.width, self.height))
        if not writer.isOpened():
            raise InvalidArgumentError(f"OpenCV cannot write {path} with codec {fourcc!r}; try another name or codec")
        try:
            for frame in self.frames():
                writer.write(np.ascontiguousarray(frame.pixels[:, :, ::-1]))
        finally:
            writer.release()
        if truth:
            path.with_suffix(".json").write_text(json.dumps(self.truth.to_json()), encoding="utf-8")
        return path


def _intervals(per_frame: Sequence[Sequence[FaceTruth]], fps: float) -> dict[str, list[tuple[float, float]]]:
    """Per person, the runs of frames where their face shows at least MIN_VISIBLE, in seconds."""
    runs: dict[str, list[tuple[float, float]]] = {}
    open_at: dict[str, int] = {}
    last: dict[str, int] = {}
    for index, faces in enumerate(per_frame):
        for name in {f.person for f in faces if f.visible >= MIN_VISIBLE}:
            if name in open_at and last[name] == index - 1:
                last[name] = index
                continue
            if name in open_at:
                runs.setdefault(name, []).append((open_at[name] / fps, last[name] / fps))
            open_at[name], last[name] = index, index
    for name, begun in open_at.items():
        runs.setdefault(name, []).append((begun / fps, last[name] / fps))
    return {k: sorted(v) for k, v in sorted(runs.items())}


def _motion_kernel(length: float, angle: float) -> np.ndarray:
    n = math.ceil(length) | 1
    kernel = np.zeros((n, n), np.float32)
    c = n // 2
    for u in np.linspace(-length / 2, length / 2, 2 * n):
        kernel[round(c + u * math.sin(angle)), round(c + u * math.cos(angle))] = 1.0
    return kernel / kernel.sum()


def _texture(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A face-free background: smooth shading of one muted colour, a floor gradient and a few
    blurred blocks (doors, shelves, windows)."""
    import cv2

    h, w = size
    light: np.ndarray = np.zeros((h, w), np.float32)
    for cells, amplitude in ((3, 35.0), (12, 15.0), (48, 6.0)):
        small = rng.normal(0.0, amplitude, (cells * h // w + 2, cells + 2)).astype(np.float32)
        light += cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    light += np.linspace(-15, 20, h, dtype=np.float32)[:, None]
    base = rng.uniform(80, 170) * (1.0 + rng.uniform(-0.25, 0.25, 3))
    out: np.ndarray = base.astype(np.float32)[None, None, :] + light[:, :, None]
    for _ in range(int(rng.integers(3, 8))):
        x1, y1 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x2, y2 = x1 + int(rng.integers(w // 20, w // 4)), y1 + int(rng.integers(h // 10, h // 2))
        colour = rng.uniform(40, 210) * (1.0 + rng.uniform(-0.3, 0.3, 3))
        out[y1:y2, x1:x2] = out[y1:y2, x1:x2] * 0.4 + colour.astype(np.float32) * 0.6
    out = cv2.GaussianBlur(out, (0, 0), max(1.0, w / 500))
    out += rng.normal(0.0, 3.0, out.shape).astype(np.float32)  # fine grain, so it is not flat paint
    return np.clip(out, 0, 255).astype(np.uint8)


def _cover(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` scaled to cover ``size`` (h, w) and centre-cropped to it."""
    import cv2

    h, w = size
    ih, iw = image.shape[:2]
    k = max(h / ih, w / iw)
    nw, nh = max(w, math.ceil(iw * k)), max(h, math.ceil(ih * k))
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
    y0, x0 = (nh - h) // 2, (nw - w) // 2
    return np.ascontiguousarray(resized[y0 : y0 + h, x0 : x0 + w])


def build_scene(
    people: Mapping[str, Sequence[PhotoLike]],
    *,
    width: int = 640,
    height: int = 360,
    fps: float = 25.0,
    seconds: float = 10.0,
    seed: int = 0,
    background: str | os.PathLike[str] | np.ndarray | None = None,
    crowd: int = 2,
    crossings: bool = True,
    cuts: Sequence[float] = (),
    face_size: tuple[float, float] = (0.16, 0.3),
    speed: tuple[float, float] = (0.15, 0.35),
    gap: float = 1.5,
    roll: float = 8.0,
    effects: Effects | None = None,
    locate: Locate = "detect",
) -> Scene:
    """A random scene of ``people`` (name -> photos: paths, RGB arrays or :class:`Portrait`).

    The script is drawn from ``seed``: arrivals every ``gap`` seconds on average (at most ``crowd``
    on screen), each walking across, stopping a while, or walking toward the camera; with
    ``crossings``, pairs walk past each other (the first arrival is such a pair when two people are
    free), the nearer occluding the farther. ``face_size``: face-box height as a fraction of the
    frame height; ``speed``: frame widths per second; ``roll``: in-plane sway amplitude, degrees.
    ``cuts``: times of hard cuts (another background; everyone on screen jumps and gets another
    photo). ``background``: a photo (path or array; scaled to cover the frame) or None for a
    generated, face-free texture. ``locate``: how a photo's face is found ("detect": the default
    detector, the face nearest the centre; "center": a centred portrait's usual place).
    """
    if not people or any(len(photos) == 0 for photos in people.values()):
        raise InvalidArgumentError("build_scene needs at least one person, each with at least one photo")
    if crowd < 1:
        raise InvalidArgumentError(f"crowd must be at least 1, got {crowd}")
    if not (0 < face_size[0] <= face_size[1] and 0 < speed[0] <= speed[1]):
        raise InvalidArgumentError(f"face_size and speed must be increasing positive ranges, got {face_size}, {speed}")
    portraits = {name: [portrait(p, locate) for p in photos] for name, photos in people.items()}
    counts = {name: len(ps) for name, ps in portraits.items()}
    rng = np.random.default_rng(seed)
    appearances = _plan(
        counts,
        rng,
        width=width,
        height=height,
        seconds=seconds,
        crowd=crowd,
        crossings=crossings,
        face_size=face_size,
        speed=speed,
        gap=gap,
        roll=roll,
    )
    appearances = _split_at_cuts(appearances, cuts, counts, width, rng)
    pixels = None
    if background is not None:
        from faceatlas.image import load_image

        pixels = load_image(background)
    return Scene(
        portraits,
        appearances,
        width=width,
        height=height,
        fps=fps,
        seconds=seconds,
        seed=seed,
        background=pixels,
        cuts=cuts,
        effects=effects,
    )


def lfw_people(root: str | os.PathLike[str], *, min_photos: int = 1) -> dict[str, list[Path]]:
    """``root/<Name>/*.jpg`` (LFW's layout) as name -> photos, people with at least ``min_photos``."""
    out = {}
    for folder in sorted(Path(root).iterdir()):
        photos = sorted(folder.glob("*.jpg")) if folder.is_dir() else []
        if len(photos) >= min_photos:
            out[folder.name] = photos
    return out


__all__ = [
    "MIN_VISIBLE",
    "Appearance",
    "Effects",
    "FaceTruth",
    "GroundTruth",
    "Keyframe",
    "Portrait",
    "Scene",
    "SceneFrame",
    "build_scene",
    "center_face",
    "detect_face",
    "lfw_people",
    "portrait",
]
