"""Presentation-attack clips built from real face photos and clips, for testing liveness.

Two attack species (ISO/IEC 30107-3 calls them presentation attack instruments):

* :func:`planar_attack` — a printed photo held in front of a pinhole camera and turned in 3D
  (yaw and pitch of the sheet, with hand jitter), optionally bent round a vertical axis like a
  sheet held by its edges. Every frame is the photo warped by the sheet's homography (one per
  facet when bent) over a background.
* :func:`swap_attack` — prints of the same person with the head turned, swapped by hand in
  the order a challenge asks (each print is flat, but they differ from one another in 3D).
* :func:`replay_attack` — a clip shown on a flat screen that the camera films: each frame of the
  clip warped onto a slightly moving plane, with optional moiré, glare and the screen's bezel.

Both return a :class:`Clip` (RGB uint8 frames and their rate); :func:`write_clip` saves one as
an mp4. The camera: principal point at the image centre, focal length ``focal`` (in image widths).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from faceatlas.errors import InvalidArgumentError

# what a challenge action asks of a fake: the sheet's (yaw, pitch) at the action's extreme, degrees.
# Positive yaw turns the sheet's right edge (image right) away from the camera, as a head turning
# to the subject's left moves its face; positive pitch tips the top away (a nod down is negative).
ACTION_POSES: dict[str, tuple[float, float]] = {
    "turn_left": (35.0, 0.0),
    "turn_right": (-35.0, 0.0),
    "nod": (0.0, -30.0),
}


@dataclass(frozen=True)
class Clip:
    """Frames (H, W, 3) uint8 RGB at ``fps``; ``kind`` names how it was made (an attack type or "bona_fide")."""

    frames: tuple[np.ndarray, ...]
    fps: float
    kind: str

    @property
    def times(self) -> np.ndarray:
        return np.arange(len(self.frames), dtype=np.float64) / self.fps

    def __len__(self) -> int:
        return len(self.frames)


def pose_path(
    actions: Sequence[str], *, fps: float, hold: float = 0.3, move: float = 0.5, rest: float = 0.6
) -> np.ndarray:
    """(n, 2) sheet (yaw, pitch) per frame for ``actions`` in order: rest, then for each action a
    smooth move to its extreme (:data:`ACTION_POSES`), a hold, a move back and a rest."""
    keys: list[tuple[float, float, float]] = [(0.0, 0.0, 0.0), (rest, 0.0, 0.0)]
    t = rest
    for action in actions:
        if action not in ACTION_POSES:
            raise InvalidArgumentError(f"unknown action {action!r}; actions are {sorted(ACTION_POSES)}")
        yaw, pitch = ACTION_POSES[action]
        keys += [(t + move, yaw, pitch), (t + move + hold, yaw, pitch), (t + 2 * move + hold, 0.0, 0.0)]
        t += 2 * move + hold + rest
        keys.append((t, 0.0, 0.0))
    times = np.arange(round(t * fps) + 1) / fps
    return np.stack([_smooth_interp(times, keys, 1), _smooth_interp(times, keys, 2)], axis=1)


def _smooth_interp(times: np.ndarray, keys: list[tuple[float, float, float]], column: int) -> np.ndarray:
    """Cosine ease between key values (no velocity jumps, as a hand moves)."""
    kt = np.array([k[0] for k in keys])
    kv = np.array([k[column] for k in keys])
    out = np.empty_like(times)
    for i, t in enumerate(times):
        j = int(np.clip(np.searchsorted(kt, t, side="right") - 1, 0, len(kt) - 2))
        span = kt[j + 1] - kt[j]
        u = 0.0 if span <= 0 else float(np.clip((t - kt[j]) / span, 0.0, 1.0))
        out[i] = kv[j] + (kv[j + 1] - kv[j]) * (1 - math.cos(math.pi * u)) / 2
    return out


def _rotation(yaw: float, pitch: float, roll: float = 0.0) -> np.ndarray:
    """Camera-frame rotation of the sheet (x right, y down, z away): yaw about y, pitch about x."""
    y, p, r = (math.radians(v) for v in (yaw, pitch, roll))
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), math.sin(p)], [0, -math.sin(p), math.cos(p)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _camera(size: tuple[int, int], focal: float) -> np.ndarray:
    width, height = size
    f = focal * width
    return np.array([[f, 0, width / 2.0], [0, f, height / 2.0], [0, 0, 1.0]])


def _project(points: np.ndarray, camera: np.ndarray) -> np.ndarray:
    """(n, 3) camera-frame points to (n, 2) pixels."""
    uvw = points @ camera.T
    return uvw[:, :2] / uvw[:, 2:3]


def _background(size: tuple[int, int], background: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    import cv2

    width, height = size
    if background is not None:
        return np.ascontiguousarray(cv2.resize(_rgb(background, "background"), (width, height)))
    # a plain wall with soft shading and a little texture: nothing a detector mistakes for a face
    base = rng.uniform(90, 180, size=3)
    ramp = np.linspace(0.85, 1.1, width)[None, :, None] * np.linspace(1.05, 0.9, height)[:, None, None]
    texture = cv2.GaussianBlur(rng.normal(0, 6, size=(height, width)).astype(np.float32), (0, 0), 3)[..., None]
    return np.clip(base * ramp + texture, 0, 255).astype(np.uint8)


def _rgb(image: np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3 or min(array.shape[:2]) < 8:
        raise InvalidArgumentError(f"the {what} must be an (H, W, 3) uint8 RGB image, got {array.dtype} {array.shape}")
    return array


def _composite(canvas: np.ndarray, image: np.ndarray, homography: np.ndarray, mask: np.ndarray | None = None) -> None:
    """Paint ``image`` warped by ``homography`` over ``canvas`` in place (anti-aliased edge)."""
    import cv2

    height, width = canvas.shape[:2]
    warped = cv2.warpPerspective(image, homography, (width, height), flags=cv2.INTER_LINEAR)
    alpha_src = np.full(image.shape[:2], 255, np.uint8) if mask is None else mask
    alpha = cv2.warpPerspective(alpha_src, homography, (width, height), flags=cv2.INTER_LINEAR)
    a = (alpha.astype(np.float32) / 255.0)[..., None]
    canvas[:] = (warped * a + canvas * (1 - a)).astype(np.uint8)


def planar_attack(
    photo: np.ndarray,
    actions: Sequence[str] = ("turn_left", "turn_right", "nod"),
    *,
    size: tuple[int, int] = (320, 240),
    fps: float = 15.0,
    poses: np.ndarray | None = None,
    face_fraction: float = 0.55,
    focal: float = 1.0,
    bend: float = 0.0,
    jitter: float = 0.01,
    background: np.ndarray | None = None,
    seed: int = 0,
    kind: str | None = None,
) -> Clip:
    """A printed ``photo`` held before the camera and turned to fake ``actions`` (or follow ``poses``).

    ``poses`` (n, 2): the sheet's (yaw, pitch) per frame in degrees; default :func:`pose_path` of
    ``actions`` (the sheet turned 35° for a head turn, tipped 30° for a nod). The photo's height
    fills ``face_fraction`` of the frame's when frontal; ``focal`` is the focal length in image
    widths (1.0: a ~53° webcam). ``bend`` > 0 curves the sheet round a vertical axis, bulging
    toward the camera (the centre ``bend`` photo-widths nearer than the edges, e.g. 0.1): a bent
    print puts the middle of the face in front of its sides, the cheapest imitation of depth.
    ``jitter``: hand tremor as a fraction of the distance (translation) and a degree scale.
    ``kind`` names the clip's attack type (default "print", or "print_bent" when bent).
    """
    photo = _rgb(photo, "photo")
    path = pose_path(actions, fps=fps) if poses is None else np.asarray(poses, dtype=np.float64).reshape(-1, 2)
    kind = kind or ("print_bent" if bend else "print")
    return _print_clip([photo] * len(path), path, kind, size, fps, face_fraction, focal, bend, jitter, background, seed)


def swap_attack(
    neutral: np.ndarray,
    by_action: dict[str, np.ndarray],
    actions: Sequence[str],
    *,
    size: tuple[int, int] = (320, 240),
    fps: float = 15.0,
    hold: float = 0.7,
    rest: float = 0.7,
    face_fraction: float = 0.55,
    focal: float = 1.0,
    jitter: float = 0.01,
    background: np.ndarray | None = None,
    seed: int = 0,
) -> Clip:
    """Printed photos of one person swapped by hand: ``neutral`` (a frontal photo) at rest, and for
    each action the photo ``by_action[action]`` (the person photographed with the head so turned)
    held for ``hold`` seconds, then ``neutral`` again. Each print is flat, held square to the
    camera with tremor; the prints are cropped alike (same size as ``neutral``)."""
    import cv2

    neutral = _rgb(neutral, "neutral photo")
    missing = [a for a in actions if a not in by_action]
    if missing:
        raise InvalidArgumentError(f"swap_attack has no photo for {missing}")
    ph, pw = neutral.shape[:2]
    shown = {a: cv2.resize(_rgb(p, f"{a} photo"), (pw, ph), interpolation=cv2.INTER_AREA) for a, p in by_action.items()}
    n_rest, n_hold = max(1, round(rest * fps)), max(1, round(hold * fps))
    sequence = [neutral] * n_rest
    for action in actions:
        sequence += [shown[action]] * n_hold + [neutral] * n_rest
    poses = np.zeros((len(sequence), 2))
    return _print_clip(sequence, poses, "print_swap", size, fps, face_fraction, focal, 0.0, jitter, background, seed)


def _print_clip(
    photos: Sequence[np.ndarray],
    path: np.ndarray,
    kind: str,
    size: tuple[int, int],
    fps: float,
    face_fraction: float,
    focal: float,
    bend: float,
    jitter: float,
    background: np.ndarray | None,
    seed: int,
) -> Clip:
    """Frame k: ``photos[k]`` printed, the sheet at (yaw, pitch) ``path[k]`` plus hand tremor."""
    import cv2

    if not (0.05 <= face_fraction <= 1.5) or focal <= 0 or fps <= 0 or bend < 0:
        raise InvalidArgumentError("print attacks need 0.05 <= face_fraction <= 1.5, focal > 0, fps > 0 and bend >= 0")
    rng = np.random.default_rng(seed)
    _width, height = size
    camera = _camera(size, focal)
    ph, pw = photos[0].shape[:2]
    sheet_h = 1.0  # the sheet in its own units; its distance sets the size in the image
    sheet_w = sheet_h * pw / ph
    distance = camera[0, 0] * sheet_h / (face_fraction * height)
    canvas_base = _background(size, background, rng)
    # facets of a bent sheet: vertical strips, each a plane (one strip when flat)
    strips = 1 if bend == 0 else 12
    edges = np.linspace(-sheet_w / 2, sheet_w / 2, strips + 1)
    depth = (bend * sheet_w) * (1 - (2 * edges / sheet_w) ** 2)  # parabola: centre nearest the camera
    tremor = np.cumsum(rng.normal(0, jitter, size=(len(path), 3)), axis=0) * 0.3
    frames = []
    for k, (yaw, pitch) in enumerate(path):
        photo = photos[k]
        rotation = _rotation(yaw + tremor[k, 2] * 20, pitch + tremor[k, 1] * 20, tremor[k, 0] * 20)
        centre = np.array([tremor[k, 0] * distance, tremor[k, 1] * distance, distance])
        canvas = canvas_base.copy()
        for s in range(strips):
            x0, x1 = edges[s], edges[s + 1]
            corners = np.array(
                [[x0, -sheet_h / 2, -depth[s]], [x1, -sheet_h / 2, -depth[s + 1]],
                 [x1, sheet_h / 2, -depth[s + 1]], [x0, sheet_h / 2, -depth[s]]]
            )  # fmt: skip
            image_pts = _project(corners @ rotation.T + centre, camera).astype(np.float32)
            u0, u1 = (x0 / sheet_w + 0.5) * pw, (x1 / sheet_w + 0.5) * pw
            photo_pts = np.array([[u0, 0], [u1, 0], [u1, ph], [u0, ph]], dtype=np.float32)
            homography = cv2.getPerspectiveTransform(photo_pts, image_pts)
            mask = np.zeros((ph, pw), np.uint8)
            mask[:, math.floor(u0) : math.ceil(u1)] = 255
            _composite(canvas, photo, homography, mask)
        frames.append(_camera_noise(canvas, rng))
    return Clip(tuple(frames), float(fps), kind)


def replay_attack(
    clip: Sequence[np.ndarray] | Clip,
    *,
    fps: float | None = None,
    size: tuple[int, int] = (320, 240),
    screen_fraction: float = 0.9,
    focal: float = 1.0,
    wobble: float = 4.0,
    moire: float = 0.08,
    glare: float = 0.25,
    background: np.ndarray | None = None,
    seed: int = 0,
) -> Clip:
    """``clip``'s frames played on a flat screen in front of the camera.

    The screen (with a dark bezel) fills ``screen_fraction`` of the frame's width and sways by up to
    ``wobble`` degrees (a phone in a hand); ``moire`` is the amplitude of the interference pattern
    of the screen's pixel grid with the camera's (0 = none), ``glare`` that of a soft specular spot.
    """
    import cv2

    if isinstance(clip, Clip):
        fps = clip.fps if fps is None else fps
        source = list(clip.frames)
    else:
        source = [_rgb(f, "clip frame") for f in clip]
    if fps is None or fps <= 0:
        raise InvalidArgumentError("replay_attack needs fps= (a positive frame rate) for a plain list of frames")
    if not source:
        raise InvalidArgumentError("replay_attack needs at least one frame")
    rng = np.random.default_rng(seed)
    width, height = size
    camera = _camera(size, focal)
    sh, sw = source[0].shape[:2]
    bezel = max(4, sw // 25)
    screen_w = 1.0
    screen_h = screen_w * (sh + 2 * bezel) / (sw + 2 * bezel)
    distance = camera[0, 0] * screen_w / (screen_fraction * width)
    canvas_base = _background(size, background, rng)
    phase = rng.uniform(0, 2 * math.pi, size=3)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = []
    for k, frame in enumerate(source):
        t = k / fps
        yaw = wobble * math.sin(2 * math.pi * 0.35 * t + phase[0])
        pitch = 0.6 * wobble * math.sin(2 * math.pi * 0.27 * t + phase[1])
        rotation = _rotation(yaw, pitch, 0.3 * wobble * math.sin(2 * math.pi * 0.2 * t + phase[2]))
        shown = cv2.copyMakeBorder(
            _rgb(frame, "clip frame"), bezel, bezel, bezel, bezel, cv2.BORDER_CONSTANT, value=(12, 12, 14)
        )
        corners = np.array(
            [[-screen_w / 2, -screen_h / 2, 0], [screen_w / 2, -screen_h / 2, 0],
             [screen_w / 2, screen_h / 2, 0], [-screen_w / 2, screen_h / 2, 0]]
        )  # fmt: skip
        image_pts = _project(corners @ rotation.T + np.array([0, 0, distance]), camera).astype(np.float32)
        src_pts = np.array(
            [[0, 0], [shown.shape[1], 0], [shown.shape[1], shown.shape[0]], [0, shown.shape[0]]], np.float32
        )
        canvas = canvas_base.copy()
        _composite(canvas, shown, cv2.getPerspectiveTransform(src_pts, image_pts))
        out = canvas.astype(np.float32)
        if moire > 0:
            # beat of two nearly equal grids: slanted low-frequency fringes that drift as the screen moves
            fringe = np.sin(0.9 * xx + 0.35 * yy + 3.0 * yaw + phase[0]) * np.sin(0.05 * xx - 0.8 * yy + phase[1])
            out *= 1 + moire * fringe[..., None]
        if glare > 0:
            gx = width * (0.65 + 0.01 * yaw)
            gy = height * (0.3 + 0.01 * pitch)
            spot = np.exp(-((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * (0.12 * width) ** 2))
            out += 255 * glare * spot[..., None]
        frames.append(_camera_noise(np.clip(out, 0, 255).astype(np.uint8), rng))
    return Clip(tuple(frames), float(fps), "replay")


def _camera_noise(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The camera's own softness and sensor noise on what it films."""
    import cv2

    blurred = cv2.GaussianBlur(image, (3, 3), 0.6)
    noisy = blurred.astype(np.float32) + rng.normal(0, 2.0, size=image.shape).astype(np.float32)
    return np.ascontiguousarray(np.clip(noisy, 0, 255).astype(np.uint8))


def write_clip(clip: Clip, path: str | os.PathLike[str]) -> None:
    """Save ``clip`` as an mp4 (OpenCV's mp4v codec)."""
    import cv2

    if not clip.frames:
        raise InvalidArgumentError("an empty clip cannot be written")
    height, width = clip.frames[0].shape[:2]
    writer = cv2.VideoWriter(os.fspath(path), cv2.VideoWriter.fourcc(*"mp4v"), clip.fps, (width, height))
    if not writer.isOpened():
        raise InvalidArgumentError(f"cannot write a video to {os.fspath(path)!r} (folder missing or not writable?)")
    try:
        for frame in clip.frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
