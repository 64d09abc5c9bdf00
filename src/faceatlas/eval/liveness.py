"""Liveness evaluation: APCER, BPCER and ACER (ISO/IEC 30107-3) of :mod:`faceatlas.video.liveness`.

* **APCER** (per attack type): attack presentations accepted as bona fide / attack presentations.
  The worst type is reported too, as the standard asks (the system is as weak as its weakest).
* **BPCER**: bona fide presentations rejected / bona fide presentations.
* **ACER** = (worst APCER + BPCER) / 2.

Bona fide presentations come from real face video. Real clips rarely answer a challenge, so each
challenge answer is *built* from a real clip's own motion: its pose track is searched for real
head turns and nods that start near one resting pose (a "ramp"), and the answer to a challenge
is the ramps for its actions in order, each played out and back (its frames forward then
reversed: a real head's motion either way), between real resting frames. A turn found only one
way is mirrored for the other (a mirrored head is a real 3D head). Whole real clips are also
judged passively (no challenge): that is where identity and depth are tested on unedited video.

Attacks are built from real faces (:mod:`faceatlas.video.attacks`): printed photos turned before
the camera (flat, bent by 0.12 and curved by 0.25 of their width), prints of one person at
different head poses swapped by hand, and replays on a screen of the bona fide answers in reply to a fresh
random challenge (a replay passes only when the new challenge happens to equal the recorded one:
1 in :meth:`Challenge.space`). Clips of one's own (``--attacks``) are judged as they are.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceatlas.errors import FaceAtlasError, InvalidArgumentError
from faceatlas.video.attacks import Clip
from faceatlas.video.liveness import (
    ACTIONS,
    Challenge,
    FaceTrack,
    LivenessResult,
    LivenessThresholds,
    judge,
    observe,
)

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif", ".m4v", ".mpg", ".mpeg"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
DEPTH_SWEEP = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


# -- reading ----------------------------------------------------------------------------------------


def list_files(paths: Sequence[str | os.PathLike[str]], suffixes: set[str]) -> list[Path]:
    """The files among ``paths`` (files, or folders searched recursively) with one of ``suffixes``."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
        elif path.is_file():
            found.append(path)
        else:
            raise InvalidArgumentError(f"{path} does not exist: give video files or folders of them")
    return found


def read_clip(
    path: str | os.PathLike[str], *, max_width: int = 640, max_seconds: float = 60.0, kind: str = "bona_fide"
) -> Clip:
    """A video file's frames (RGB, downscaled to ``max_width``), at most ``max_seconds`` of them."""
    import cv2

    from faceatlas.video.source import open_video

    frames: list[np.ndarray] = []
    with open_video(path) as source:
        fps = source.info.fps or 25.0
        for frame in source:
            if frame.time > max_seconds:
                break
            pixels = frame.pixels
            if pixels.shape[1] > max_width:
                scale = max_width / pixels.shape[1]
                pixels = cv2.resize(pixels, (max_width, round(pixels.shape[0] * scale)), interpolation=cv2.INTER_AREA)
            frames.append(np.ascontiguousarray(pixels))
    if not frames:
        raise InvalidArgumentError(f"{path} has no frames")
    return Clip(tuple(frames), float(fps), kind)


# -- bona fide answers built from real motion ---------------------------------------------------------


@dataclass(frozen=True)
class Ramp:
    """Frames ``start``..``stop`` (indices into the clip) where the head moves ``degrees`` from rest."""

    action: str  # what the ramp performs played forward (mirrored: the other turn)
    start: int
    stop: int
    degrees: float


def find_ramps(
    track: FaceTrack, thresholds: LivenessThresholds, *, margin: float = 4.0, max_seconds: float = 1.5
) -> list[Ramp]:
    """Real movements in a clip that would count as an action: from a frame, the shortest run of
    frames (each with a face, one person-sized face) until yaw (or pitch) is ``threshold + margin``
    away while the other angle stays within ``neutral_deg``."""
    obs = track.observations
    ok = [o.landmarks is not None and math.isfinite(o.yaw) and o.other_ratio < thresholds.other_face_ratio for o in obs]
    yaw = np.array([o.yaw if good else np.nan for o, good in zip(obs, ok, strict=True)])
    pitch = np.array([o.pitch if good else np.nan for o, good in zip(obs, ok, strict=True)])
    times = np.array([o.time for o in obs])
    same = track.identity_threshold

    def steady(a: int, b: int) -> bool:
        """Frames a..b: one person (the first frame's identity), no pose jump (a pose-reader failure)."""
        if b >= len(obs) or not all(ok[a : b + 1]):
            return False
        steps = np.maximum(np.abs(np.diff(yaw[a : b + 1])), np.abs(np.diff(pitch[a : b + 1])))
        if steps.size and steps.max() > thresholds.max_jump_deg:
            return False
        first = obs[a].embedding
        if same is None or first is None:
            return True
        return all(o.embedding is not None and float(o.embedding @ first) >= same for o in obs[a : b + 1])

    ramps: list[Ramp] = []
    for axis, other, need, names in (
        (yaw, pitch, thresholds.turn_deg + margin, ("turn_left", "turn_right")),
        (pitch, yaw, thresholds.nod_deg + margin, ("nod", "nod")),
    ):
        a = 0
        while a < len(obs):
            if not ok[a]:
                a += 1
                continue
            b = a + 1
            found = None
            while b < len(obs) and ok[b] and times[b] - times[a] <= max_seconds:
                if abs(other[b] - other[a]) > thresholds.neutral_deg:
                    break
                delta = axis[b] - axis[a]
                after = axis[b + 1 : b + 3] - axis[a]
                # the extreme must last (two more frames): a one-frame landmark glitch is no movement
                if (
                    abs(delta) >= need
                    and len(after) == 2
                    and bool(np.all(np.sign(after) * np.sign(delta) * np.abs(after) >= 0.8 * need))
                ):
                    if steady(a, b + 2):
                        found = Ramp(names[0] if delta > 0 else names[1], a, b, float(delta))
                    break
                b += 1
            if found is not None:
                ramps.append(found)
                a = found.stop + 1  # disjoint ramps
            else:
                a += 1
    return ramps


def build_answer(
    clip: Clip, track: FaceTrack, challenge: Challenge, ramps: Sequence[Ramp], *, rest: float = 0.5
) -> Clip | None:
    """A bona fide answer to ``challenge`` from ``clip``'s real movements (None: the clip lacks one).

    Every ramp used starts near the pose of the first one (within the neutral tolerance) so the
    joins are small; each action is its ramp forward then backward, preceded by ``rest`` seconds
    of the ramp's own first frame region (real frames before it, else its first frame held)."""
    import cv2

    if not ramps:
        return None
    obs = track.observations
    chosen: list[tuple[Ramp, bool]] = []
    anchor: tuple[float, float] | None = None  # the resting (yaw, pitch) of the first ramp used

    def near(yaw: float, pitch: float) -> bool:
        return anchor is None or (abs(yaw - anchor[0]) <= 6.0 and abs(pitch - anchor[1]) <= 5.0)

    for action in challenge.actions:
        pick = None
        for ramp in sorted(ramps, key=lambda r: r.stop - r.start):
            rest_yaw, rest_pitch = obs[ramp.start].yaw, obs[ramp.start].pitch
            if ramp.action == action and near(rest_yaw, rest_pitch):
                pick = (ramp, False)
            elif near(-rest_yaw, rest_pitch) and (
                ramp.action == action == "nod" or {ramp.action, action} == {"turn_left", "turn_right"}
            ):
                pick = (ramp, True)  # mirrored: a left turn becomes a right one
            if pick is not None:
                break
        if pick is None:
            return None
        chosen.append(pick)
        if anchor is None:
            first = obs[pick[0].start]
            anchor = (-first.yaw if pick[1] else first.yaw, first.pitch)
    frames: list[np.ndarray] = []
    n_rest = max(1, round(rest * clip.fps))
    for ramp, mirrored in chosen:
        # rest: the real frames before the movement where they are at rest (one face, within the
        # neutral tolerance of the movement's start), else its first frame held still
        first = obs[ramp.start]
        before: list[int] = []
        for index in range(ramp.start - 1, max(-1, ramp.start - n_rest - 1), -1):
            o = obs[index]
            if (
                o.landmarks is None
                or o.other_ratio >= 0.4
                or abs(o.yaw - first.yaw) > 5
                or abs(o.pitch - first.pitch) > 5
            ):
                break
            before.insert(0, index)
        before = [ramp.start] * (n_rest - len(before)) + before
        moving = list(range(ramp.start, ramp.stop + 1))
        hold = [ramp.stop] * max(1, round(0.15 * clip.fps))
        for index in [*before, *moving, *hold, *reversed(moving)]:
            pixels = clip.frames[index]
            frames.append(np.ascontiguousarray(cv2.flip(pixels, 1)) if mirrored else pixels)
    frames += [frames[-1]] * n_rest
    return Clip(tuple(frames), clip.fps, "bona_fide")


def face_crop(photo: np.ndarray, box: tuple[float, float, float, float], *, scale: float = 2.2) -> np.ndarray:
    """A head-and-shoulders print of the face in ``box`` (xyxy): a square ``scale`` times the box."""
    x1, y1, x2, y2 = box
    side = scale * max(x2 - x1, y2 - y1)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 + 0.1 * (y2 - y1)
    h, w = photo.shape[:2]
    left, top = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    right, bottom = int(min(w, cx + side / 2)), int(min(h, cy + side / 2))
    return np.ascontiguousarray(photo[top:bottom, left:right])


# -- scoring ----------------------------------------------------------------------------------------


@dataclass
class Presentation:
    """One clip judged: bona fide or an attack of ``kind``, against ``challenge`` (None: passive)."""

    name: str
    kind: str  # "bona_fide" or the attack type
    challenge: Challenge | None
    track: FaceTrack
    result: LivenessResult | None = None

    @property
    def attack(self) -> bool:
        return self.kind != "bona_fide"


@dataclass
class LivenessReport:
    dataset: str
    thresholds: LivenessThresholds
    challenge_presentations: list[Presentation]
    passive_presentations: list[Presentation]
    notes: list[str] = field(default_factory=list)

    def rates(
        self, presentations: Sequence[Presentation], thresholds: LivenessThresholds | None = None
    ) -> dict[str, Any]:
        th = thresholds or self.thresholds
        accepted = {id(p): judge(p.track, p.challenge, thresholds=th).is_live for p in presentations}
        bona = [p for p in presentations if not p.attack]
        kinds = sorted({p.kind for p in presentations if p.attack})
        apcer: dict[str, dict[str, Any]] = {}
        for kind in kinds:
            attacks = [p for p in presentations if p.kind == kind]
            n_accepted = sum(accepted[id(p)] for p in attacks)
            apcer[kind] = {"accepted": n_accepted, "presentations": len(attacks), "apcer": n_accepted / len(attacks)}
        bpcer = (sum(not accepted[id(p)] for p in bona) / len(bona)) if bona else None
        worst = max((v["apcer"] for v in apcer.values()), default=None)
        acer = None if bpcer is None or worst is None else (worst + bpcer) / 2
        return {
            "bona_fide": len(bona),
            "bpcer": bpcer,
            "bona_fide_rejected": sum(not accepted[id(p)] for p in bona),
            "apcer": apcer,
            "apcer_worst": worst,
            "acer": acer,
        }

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict, replace

        sweep = []
        for depth in DEPTH_SWEEP:
            r = self.rates(self.challenge_presentations, replace(self.thresholds, min_depth=depth))
            sweep.append({"min_depth": depth, "bpcer": r["bpcer"], "apcer_worst": r["apcer_worst"], "acer": r["acer"]})
        return {
            "protocol": "liveness",
            "dataset": self.dataset,
            "thresholds": asdict(self.thresholds),
            "challenge": self.rates(self.challenge_presentations),
            "passive": self.rates(self.passive_presentations),
            "min_depth_sweep": sweep,
            "presentations": [
                {"name": p.name, "kind": p.kind, **(p.result.to_json() if p.result is not None else {})}
                for p in [*self.challenge_presentations, *self.passive_presentations]
            ],
            "notes": self.notes,
        }

    def table(self) -> str:
        data = self.to_dict()
        lines = [f"liveness: {self.dataset}", ""]
        for mode, title in (
            ("challenge", "challenge-response"),
            ("passive", "passive (no challenge: identity, one face, depth)"),
        ):
            r = data[mode]
            lines.append(f"{title}")
            if r["bona_fide"]:
                lines.append(
                    f"  BPCER  {_pct(r['bpcer'])}  ({r['bona_fide_rejected']} of {r['bona_fide']} bona fide rejected)"
                )
            else:
                lines.append("  BPCER  -      (no bona fide presentations)")
            for kind, v in r["apcer"].items():
                lines.append(
                    f"  APCER  {_pct(v['apcer'])}  {kind:<16} ({v['accepted']} of {v['presentations']} accepted)"
                )
            lines.append(f"  APCER  {_pct(r['apcer_worst'])}  worst type")
            lines.append(f"  ACER   {_pct(r['acer'])}")
            lines.append("")
        lines.append("challenge-response by min_depth (the calibratable threshold):")
        lines.append("  min_depth  BPCER    APCER(worst)  ACER")
        for row in data["min_depth_sweep"]:
            lines.append(
                f"  {row['min_depth']:<9.1f}  {_pct(row['bpcer'])}  {_pct(row['apcer_worst'])}       {_pct(row['acer'])}"
            )
        reasons: dict[str, int] = {}
        for p in [*self.challenge_presentations, *self.passive_presentations]:
            if p.result is not None:
                for reason in p.result.reasons:
                    key = f"{p.kind}: {reason.split(' (')[0].split(':')[0]}"
                    reasons[key] = reasons.get(key, 0) + 1
        if reasons:
            lines += ["", "reasons for rejection (by kind):"]
            lines += [f"  {n:>4}  {k}" for k, n in sorted(reasons.items())]
        if self.notes:
            lines += ["", *[f"note: {n}" for n in self.notes]]
        return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "  -   " if value is None else f"{100 * value:5.1f}%"


# -- the protocol -----------------------------------------------------------------------------------


def evaluate(
    bona_fide: Sequence[str | os.PathLike[str]],
    *,
    photos: Sequence[str | os.PathLike[str]] = (),
    attacks: Sequence[str | os.PathLike[str]] = (),
    analyzer: Any = None,
    thresholds: LivenessThresholds | None = None,
    length: int = 3,
    max_photos: int = 20,
    answers_per_clip: int = 12,
    seed: int = 0,
    size: tuple[int, int] = (320, 240),
    progress: Callable[[str], None] | None = None,
) -> LivenessReport:
    """Judge bona fide answers built from ``bona_fide`` clips, the whole clips passively, attacks
    built from ``photos`` and replays of the answers, and the clips under ``attacks`` (their type:
    the name of the folder they sit in; an optional NAME.json sidecar ``{"challenge": [...]}``)."""
    from faceatlas.pipeline import FaceAnalyzer
    from faceatlas.video.attacks import planar_attack, replay_attack

    th = thresholds or LivenessThresholds()
    analyzer = analyzer or FaceAnalyzer()
    rng = random.Random(seed)
    say = progress or (lambda _message: None)
    notes: list[str] = []
    challenge_side: list[Presentation] = []
    passive_side: list[Presentation] = []
    answers: list[tuple[str, Clip, Challenge]] = []

    every = _all_challenges(length)
    for path in list_files(bona_fide, VIDEO_SUFFIXES):
        try:
            clip = read_clip(path)
        except FaceAtlasError as exc:
            notes.append(f"skipped {path}: {exc}")
            continue
        say(f"bona fide {path.name}: {len(clip)} frames")
        track = observe(clip.frames, analyzer, fps=clip.fps)
        passive_side.append(Presentation(path.name, "bona_fide", None, track))
        ramps = find_ramps(track, th)

        def add(name: str, challenge: Challenge, used: list[Any]) -> bool:
            """Build the answer to ``challenge`` from the ramps ``used``; whether one could be built."""
            answer = build_answer(clip, track, challenge, used)  # noqa: B023 - only called in this iteration
            if answer is None:
                return False
            answers.append((name, answer, challenge))
            challenge_side.append(
                Presentation(name, "bona_fide", challenge, observe(answer.frames, analyzer, fps=answer.fps))
            )
            return True

        built = 0
        for challenge in rng.sample(every, len(every)):
            if built >= answers_per_clip:
                break
            built += add(f"{path.name}#{challenge}", challenge, ramps)
        # every real movement also answers the one-action challenge it performs (and, mirrored, its opposite)
        for ramp in ramps:
            opposite = {"turn_left": "turn_right", "turn_right": "turn_left", "nod": "nod"}[ramp.action]
            for action in dict.fromkeys((ramp.action, opposite)):
                built += add(f"{path.name}#{ramp.start}-{ramp.stop}:{action}", Challenge((action,)), [ramp])
        if not built:
            notes.append(
                f"{path.name}: no real turn or nod of {th.turn_deg + 4:g}/{th.nod_deg + 4:g} deg from rest to build answers from"
            )
        else:
            kinds = sorted({r.action for r in ramps})
            notes.append(
                f"{path.name}: {built} bona fide answers built from {len(ramps)} real movements ({', '.join(kinds)})"
            )

    # replays: each answer on a screen, in reply to a fresh challenge
    for name, answer, recorded in answers:
        challenge = Challenge.random(len(recorded.actions), rng=rng)  # a fresh challenge like the recorded one
        replay = replay_attack(answer, size=size, seed=rng.randrange(1 << 30))
        challenge_side.append(
            Presentation(
                f"replay of {name} for {challenge}",
                "replay",
                challenge,
                observe(replay.frames, analyzer, fps=replay.fps),
            )
        )
    # whole real clips replayed on a screen: the passive checks see a real (3D) head in them
    for p in list(passive_side):
        clip = read_clip(next(f for f in list_files(bona_fide, VIDEO_SUFFIXES) if f.name == p.name))
        replay = replay_attack(clip, size=size, seed=rng.randrange(1 << 30))
        passive_side.append(
            Presentation(f"replay of {p.name}", "replay", None, observe(replay.frames, analyzer, fps=replay.fps))
        )

    # printed photos, flat and bent, answering a random challenge with the sheet's own turns
    photo_files = list_files(photos, IMAGE_SUFFIXES) if photos else []
    if len(photo_files) > max_photos:
        photo_files = sorted(rng.sample(photo_files, max_photos))
    for path in photo_files:
        from faceatlas.image import load_image

        try:
            image = load_image(path)
        except FaceAtlasError as exc:
            notes.append(f"skipped {path}: {exc}")
            continue
        faces = analyzer.detect(image)
        if not faces:
            notes.append(f"skipped {path.name}: no face in the photo")
            continue
        print_ = face_crop(image, max(faces, key=lambda f: f.box.area).box.as_xyxy())
        say(f"photo {path.name}")
        for bend, kind in ((0.0, "print"), (0.12, "print_bent"), (0.25, "print_curved")):
            challenge = Challenge.random(length, rng=rng)
            clip = planar_attack(
                print_, challenge.actions, size=size, bend=bend, seed=rng.randrange(1 << 30), kind=kind
            )
            track = observe(clip.frames, analyzer, fps=clip.fps)
            challenge_side.append(
                Presentation(f"{path.name} ({clip.kind}) for {challenge}", clip.kind, challenge, track)
            )
            passive_side.append(Presentation(f"{path.name} ({clip.kind})", clip.kind, None, track))

    # prints of one person at different head poses, swapped by hand in the challenge's order
    people: dict[Path, list[Path]] = {}
    for path in list_files(photos, IMAGE_SUFFIXES) if photos else []:
        people.setdefault(path.parent, []).append(path)
    groups = sorted(folder for folder, files in people.items() if len(files) >= 3)
    if len(groups) > max_photos:
        groups = sorted(rng.sample(groups, max_photos))
    for folder in groups:
        attack = _swap_for(folder.name, people[folder], analyzer, th, length, rng, size)
        if attack is not None:
            say(f"photo swap {folder.name}")
            name, challenge, clip = attack
            challenge_side.append(
                Presentation(name, "print_swap", challenge, observe(clip.frames, analyzer, fps=clip.fps))
            )

    for path in list_files(attacks, VIDEO_SUFFIXES) if attacks else []:
        kind = path.parent.name if Path(path).parent != Path(attacks[0]) else "attack"
        sidecar = path.with_suffix(".json")
        asked: Challenge | None = (
            Challenge.from_json(json.loads(sidecar.read_text())["challenge"]) if sidecar.is_file() else None
        )
        try:
            clip = read_clip(path, kind=kind)
        except FaceAtlasError as exc:
            notes.append(f"skipped {path}: {exc}")
            continue
        track = observe(clip.frames, analyzer, fps=clip.fps)
        (challenge_side if asked is not None else passive_side).append(Presentation(path.name, kind, asked, track))

    for p in [*challenge_side, *passive_side]:
        p.result = judge(p.track, p.challenge, thresholds=th)
    replays = [p for p in challenge_side if p.kind == "replay"]
    if replays:
        expected = float(np.mean([1 / Challenge.space(len(a[2].actions)) for a in answers]))
        notes.append(
            "a replay of a recorded answer passes when the fresh challenge (as long as the recorded one) equals "
            f"it: 1 in {Challenge.space(length)} at length {length}, 1 in 3 for one action; "
            f"expected replay APCER here {expected:.1%}"
        )
    notes.append("bona fide answers are edited from real clips (real motion, re-ordered): see docs/LIVENESS.md")
    dataset = ", ".join(str(b) for b in bona_fide) + (f"; photos: {', '.join(map(str, photos))}" if photos else "")
    return LivenessReport(dataset, th, challenge_side, passive_side, notes)


def _swap_for(
    person: str,
    files: Sequence[Path],
    analyzer: Any,
    th: LivenessThresholds,
    length: int,
    rng: random.Random,
    size: tuple[int, int],
) -> tuple[str, Challenge, Clip] | None:
    """A photo-swap attack from one person's photos: the most frontal at rest, and the photos whose
    head pose (read like the clip's) is turned or tipped past the thresholds for the actions."""
    from faceatlas.image import load_image
    from faceatlas.video.attacks import swap_attack

    shots = []
    for path in files:
        try:
            image = load_image(path)
        except FaceAtlasError:
            continue
        faces = analyzer.detect(image)
        if faces:
            face = max(faces, key=lambda f: f.box.area)
            if face.pose is not None:
                shots.append((face.pose.yaw, face.pose.pitch, face_crop(image, face.box.as_xyxy()), path.name))
    if len(shots) < 2:
        return None
    neutral = min(shots, key=lambda s: abs(s[0]) + abs(s[1]))
    margin = 2.0
    by_action: dict[str, np.ndarray] = {}
    left = max(shots, key=lambda s: s[0] - neutral[0])
    right = min(shots, key=lambda s: s[0] - neutral[0])
    nod = max(shots, key=lambda s: abs(s[1] - neutral[1]) - abs(s[0] - neutral[0]))
    if left[0] - neutral[0] >= th.turn_deg + margin:
        by_action["turn_left"] = left[2]
    if neutral[0] - right[0] >= th.turn_deg + margin:
        by_action["turn_right"] = right[2]
    if abs(nod[1] - neutral[1]) >= th.nod_deg + margin and abs(nod[0] - neutral[0]) < th.turn_deg:
        by_action["nod"] = nod[2]
    if not by_action:
        return None
    available = list(by_action)
    actions = [rng.choice(available)]
    while len(actions) < length and any(a != actions[-1] for a in available):
        actions.append(rng.choice([a for a in available if a != actions[-1]]))
    challenge = Challenge(tuple(actions))
    clip = swap_attack(neutral[2], by_action, challenge.actions, size=size, seed=rng.randrange(1 << 30))
    return f"{person} (print_swap) for {challenge}", challenge, clip


def _all_challenges(length: int) -> list[Challenge]:
    sequences: list[tuple[str, ...]] = [(a,) for a in ACTIONS]
    for _ in range(length - 1):
        sequences = [(*s, a) for s in sequences for a in ACTIONS if a != s[-1]]
    return [Challenge(s) for s in sequences]


def write(report: LivenessReport, out: str | os.PathLike[str]) -> list[Path]:
    """``result.json`` and ``report.txt`` in ``out``."""
    from faceatlas.eval.report import json_safe

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    result, text = folder / "result.json", folder / "report.txt"
    result.write_text(json.dumps(json_safe(report.to_dict()), indent=2) + "\n")
    text.write_text(report.table() + "\n")
    return [result, text]
