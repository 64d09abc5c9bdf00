"""Faces in video (issue 15): per-track identification, ID switches, speed, latency and memory,
on clips built from real LFW DevTest faces (faceatlas.video.scenes), tracking side by side with the
naive per-frame decision.

    python benchmarks/video.py [--quick] [--json out.json] [--parts accuracy,speed,memory]

The split: every DevTest person with at least two photos is enrolled (a temporary gallery) from about
half of their photos; their other photos walk through the clips. People with a single photo are
strangers (never enrolled): they walk through too, and a stranger's track named as anyone is a false
positive (FPIR). Clips: 640x360 at 25 fps, people entering, crossing (the nearer occludes the
farther), stopping, walking toward the camera, leaving, a hard cut in every other clip; written as
mp4 and read back through ``faceatlas.video.source`` (sampling by time: native 25, 10 and 5 fps).

Reported:
* accuracy: per closed track, its ground-truth visit is the one it covers in most of its frames
  (IoU >= 0.3 with a face showing at least half of itself); accuracy = tracks of enrolled people
  named correctly, FPIR = stranger tracks named as someone; tracks with no face under them are
  "ghosts". ID switches (CLEAR-MOT): a visit's matched track id changes; fragments: its match is
  interrupted and resumes; tracks per visit. Beside it, the naive per-frame decision over the same
  tracks: every detection identified on its own at the same FPIR, then a plurality vote (unknown
  votes too), and "any frame" (named by the first frame that matches, as per-frame alerting does).
* latency: from a visit first showing half its face to its track's first person_seen or
  unknown_person event, in video seconds and in wall seconds (from feeding that frame).
* speed: wall clock of the whole ``track()`` over a clip (decode, detect, embed, track, decide)
  at 720p and 1080p for each sampling rate and detect_every: frames processed per second of wall
  time, and the real-time factor (video seconds per wall second; >= 1 keeps up with a live camera).
* memory: a 10-minute stream (5 fps, 640x360, people coming and going) fed to a VideoTracker; RSS
  every minute (it must stay flat: closed tracks are not kept).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import LFW_DEVTEST, machine, require

import faceatlas
from faceatlas.video.scenes import MIN_VISIBLE, GroundTruth, Scene, build_scene, lfw_people

IOU_MATCH = 0.3
SAMPLING = (None, 10.0, 5.0)  # None: every frame (the clip's native 25 fps)
DETECT_EVERY = (1, 2, 5)


def load_avg() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- the people -------------------------------------------------------------------------------------


@dataclass
class Split:
    enrolled: dict[str, list[Path]]  # photos enrolled
    walkers: dict[str, list[Path]]  # enrolled people's other photos: they walk through clips
    strangers: dict[str, list[Path]]  # never enrolled


def split_people(root: Path, seed: int) -> Split:
    rng = np.random.default_rng(seed)
    enrolled, walkers, strangers = {}, {}, {}
    for name, photos in lfw_people(root).items():
        if len(photos) == 1:
            strangers[name] = photos
            continue
        order = [photos[i] for i in rng.permutation(len(photos))]
        k = max(1, len(photos) // 2)
        enrolled[name], walkers[name] = order[:k], order[k:]
    return Split(enrolled, walkers, strangers)


def build_gallery(split: Split, path: Path) -> faceatlas.Gallery:
    """Every enrolled person from their enrolment photos (the largest face of each: LFW photos
    sometimes show a second person at the edge)."""
    gallery = faceatlas.Gallery.open(path)
    people = {n: [str(p) for p in ps] for n, ps in split.enrolled.items()}
    faces, nothing = 0, 0
    for _name, report in gallery.enroll_many(people, face=0):
        if isinstance(report, Exception):
            nothing += 1
        else:
            faces += len(report.added)
    print(
        f"gallery: {len(gallery.people())} people, {faces} faces from {sum(map(len, people.values()))} photos"
        f" ({nothing} people with nothing enrollable), fpir {gallery.fpir}",
        flush=True,
    )
    return gallery


def clip_people(split: Split, rng: np.random.Generator, n_enrolled: int, n_strangers: int) -> dict[str, list[Path]]:
    known = sorted(split.walkers)
    strange = sorted(split.strangers)
    chosen = {n: split.walkers[n] for n in rng.choice(known, n_enrolled, replace=False)}
    chosen.update({n: split.strangers[n] for n in rng.choice(strange, n_strangers, replace=False)})
    return chosen


# -- watching a VideoTracker work (benchmark only: the per-step detail the package keeps private) ---


class _Analyzer:
    """The analyzer, remembering the faces of the last frame it analysed."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.faces: list[Any] = []

    def analyze(self, pixels: Any) -> list[Any]:
        self.faces = self.inner.analyze(pixels)
        return self.faces

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class _Steps:
    """The FaceTracker, remembering its last step."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.last: Any = None

    def update(self, *args: Any, **kwargs: Any) -> Any:
        self.last = self.inner.update(*args, **kwargs)
        return self.last

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        self.last = self.inner.predict(*args, **kwargs)
        return self.last

    def finish(self) -> Any:
        return self.inner.finish()


@dataclass
class Run:
    """What one pass of a VideoTracker over a clip produced."""

    frames: list[tuple[int, float]] = field(default_factory=list)  # (source index, time) per frame fed
    fed_wall: list[float] = field(default_factory=list)
    hypotheses: list[dict[int, np.ndarray]] = field(default_factory=list)  # per frame fed: track -> box
    detected: list[bool] = field(default_factory=list)  # per frame fed: analysed (or tracked by motion)
    embeddings: dict[int, list[np.ndarray]] = field(default_factory=lambda: defaultdict(list))
    events: list[tuple[Any, float]] = field(default_factory=list)  # (event, wall time when emitted)
    tracks: list[Any] = field(default_factory=list)
    wall: float = 0.0


def run_tracker(frames: Any, gallery: Any, analyzer: Any, *, detect_every: int) -> Run:
    from faceatlas.video.tracking import VideoTracker

    spy = _Analyzer(analyzer)
    tracker = VideoTracker(gallery, spy, detect_every=detect_every)
    steps = _Steps(tracker._tracker)
    tracker._tracker = steps
    run = Run()
    begin = time.perf_counter()

    def take(events: list[Any]) -> None:
        now = time.perf_counter()
        for event in events:
            run.events.append((event, now))
            if event.kind == "track_closed" and event.track is not None:
                run.tracks.append(event.track)

    for frame in frames:
        run.frames.append((int(frame.index), float(frame.time)))
        run.fed_wall.append(time.perf_counter())
        events = tracker.feed(frame)
        step = steps.last
        lost = set(step.lost)
        run.hypotheses.append({t: np.asarray(b) for t, b in step.boxes.items() if t not in lost})
        run.detected.append(bool(tracker.detected))
        if tracker.detected:
            for face, tid in zip(spy.faces, step.track_ids.tolist(), strict=True):
                if tid >= 0 and face.embedding is not None:
                    run.embeddings[tid].append(np.asarray(face.embedding, np.float32))
        take(events)
    take(tracker.finish())
    run.wall = time.perf_counter() - begin
    return run


# -- scoring against the ground truth ---------------------------------------------------------------


def visit_ids(truth: GroundTruth) -> list[int]:
    """Per appearance, its visit: the part after a cut continues the visit it was cut from."""
    out = list(range(len(truth.appearances)))
    for i, a in enumerate(truth.appearances):
        if a.after_cut:
            for j, b in enumerate(truth.appearances):
                if j != i and b.person == a.person and not b.after_cut and abs(b.end - a.start) < 1e-6:
                    out[i] = out[j]
            # a visit cut twice: chain to the earlier part's own visit
            for j, b in enumerate(truth.appearances):
                if j != i and b.person == a.person and b.after_cut and abs(b.end - a.start) < 1e-6:
                    out[i] = out[j]
    return out


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (n, 4) with every box in b (m, 4), xyxy."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def _assign(gt: np.ndarray, hyp: np.ndarray) -> list[tuple[int, int]]:
    from scipy.optimize import linear_sum_assignment

    if not len(gt) or not len(hyp):
        return []
    overlap = iou(gt, hyp)
    rows, cols = linear_sum_assignment(-overlap)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if overlap[r, c] >= IOU_MATCH]


@dataclass
class Mot:
    """CLEAR-MOT counts over a set of frames."""

    gt: int = 0  # faces that had to be tracked (showing at least half of themselves)
    misses: int = 0
    false_positives: int = 0
    switches: int = 0
    fragments: int = 0
    last: dict[int, int] = field(default_factory=dict)  # visit -> the track id it last matched
    matched: dict[int, bool] = field(default_factory=dict)  # visit -> matched at its latest frame

    def add(
        self,
        visits: list[int],
        required: list[Any],
        tids: list[int],
        pairs: list[tuple[int, int]],
        false_positives: int,
    ) -> None:
        self.gt += len(required)
        self.misses += len(required) - len(pairs)
        self.false_positives += false_positives
        matched_g = {r for r, _c in pairs}
        for r, c in pairs:
            v = visits[required[r].appearance]
            if v in self.last and self.last[v] != tids[c]:
                self.switches += 1
            if self.matched.get(v) is False:
                self.fragments += 1
            self.last[v], self.matched[v] = tids[c], True
        for r, f in enumerate(required):
            if r not in matched_g and visits[f.appearance] in self.matched:
                self.matched[visits[f.appearance]] = False

    def summary(self) -> dict[str, Any]:
        gt = max(self.gt, 1)
        return {
            "id_switches": self.switches,
            "fragments": self.fragments,
            "miss_rate": round(self.misses / gt, 4),
            "false_positives_per_face": round(self.false_positives / gt, 4),
            "mota": round(1 - (self.misses + self.false_positives + self.switches) / gt, 4),
        }


@dataclass
class Scored:
    tracks: list[dict[str, Any]]  # per closed track: its visit, person (truth), names given
    visits: dict[int, dict[str, Any]]  # per visit: person, enrolled, first shown, its tracks
    every_frame: Mot = field(default_factory=Mot)  # every frame fed (boxes predicted between detections too)
    detected: Mot = field(default_factory=Mot)  # the frames detected only: the tracker's own assignments


def score(run: Run, truth: GroundTruth, enrolled: set[str], gallery: Any) -> Scored:
    visits = visit_ids(truth)
    kept = {t.id for t in run.tracks}
    cover: dict[int, Counter[int]] = defaultdict(Counter)  # track -> visit -> detected frames matched
    out = Scored([], {})
    for (index, _t), hyps, detected in zip(run.frames, run.hypotheses, run.detected, strict=True):
        hyps = {tid: b for tid, b in hyps.items() if tid in kept}  # tracks too short to report are noise
        faces = truth.at(index) if index < truth.frames else ()
        required = [f for f in faces if f.visible >= MIN_VISIBLE]
        ignorable = [f for f in faces if f.visible < MIN_VISIBLE]
        tids = list(hyps)
        hyp_boxes = np.array([hyps[t] for t in tids], np.float64).reshape(-1, 4)
        pairs = _assign(np.array([f.box for f in required], np.float64).reshape(-1, 4), hyp_boxes)
        matched_h = {c for _r, c in pairs}
        rest = [c for c in range(len(tids)) if c not in matched_h]
        if rest and ignorable:  # a track on a face mostly hidden or cut by the edge is no false positive
            ig = _assign(np.array([f.box for f in ignorable], np.float64), hyp_boxes[rest])
            rest = [c for i, c in enumerate(rest) if i not in {cc for _r, cc in ig}]
        out.every_frame.add(visits, required, tids, pairs, len(rest))
        if detected:
            out.detected.add(visits, required, tids, pairs, len(rest))
            for r, c in pairs:
                cover[tids[c]][visits[required[r].appearance]] += 1
    # per visit
    for i, a in enumerate(truth.appearances):
        v = visits[i]
        info = out.visits.setdefault(v, {})
        info["person"] = a.person
        info["enrolled"] = a.person in enrolled
        shown = truth.first_visible(i)
        if shown is not None and (info.get("shown") is None or shown < info["shown"]):
            info["shown"] = shown
    for v, info in out.visits.items():
        info["tracks"] = sorted(tid for tid, c in cover.items() if c.get(v, 0) > 0)
    # per track, with the naive per-frame decisions beside the tracker's
    fpir = gallery.fpir
    for t in run.tracks:
        c = cover.get(t.id, Counter())
        v = max(c, key=lambda k: (c[k], -k)) if c and max(c.values()) > 0 else None
        person = out.visits[v]["person"] if v is not None else None
        vectors = run.embeddings.get(t.id, [])
        names: list[str | None] = []
        if vectors:
            names = [r.person for r in gallery.identify(np.stack(vectors), k=1, fpir=fpir)]
        votes = Counter(names)
        top = votes.most_common(2)
        vote = None
        if top and top[0][0] is not None and (len(top) == 1 or top[0][1] > top[1][1]):
            vote = top[0][0]
        any_frame = next((n for n in names if n is not None), None)
        out.tracks.append(
            {
                "track": t.id,
                "visit": v,
                "truth": person,
                "enrolled": person in enrolled if person is not None else None,
                "frames": t.frames,
                "tracker": t.person,
                "vote": vote,
                "any_frame": any_frame,
            }
        )
    return out


def summarise(scored: list[Scored]) -> dict[str, Any]:
    tracks = [t for s in scored for t in s.tracks]
    visits = [v for s in scored for v in s.visits.values()]
    out: dict[str, Any] = {}
    for rule in ("tracker", "vote", "any_frame"):
        known = [t for t in tracks if t["enrolled"]]
        strangers = [t for t in tracks if t["enrolled"] is False]
        ghosts = [t for t in tracks if t["truth"] is None]
        out[rule] = {
            "accuracy": _rate(sum(t[rule] == t["truth"] for t in known), len(known)),
            "wrong_person": _rate(sum(t[rule] is not None and t[rule] != t["truth"] for t in known), len(known)),
            "fpir": _rate(sum(t[rule] is not None for t in strangers), len(strangers)),
            "ghosts_named": f"{sum(t[rule] is not None for t in ghosts)}/{len(ghosts)}",
            # a stranger has one photo, shown in each of their visits: count each stranger once
            "fpir_people": _rate(
                len({t["truth"] for t in strangers if t[rule] is not None}), len({t["truth"] for t in strangers})
            ),
        }
    out["tracks"] = len(tracks)
    out["visits"] = len(visits)
    out["tracks_per_visit"] = round(float(np.mean([len(v["tracks"]) for v in visits if v["tracks"]] or [0])), 3)
    out["visits_never_tracked"] = sum(1 for v in visits if not v["tracks"])
    for name in ("detected", "every_frame"):
        total = Mot()
        for s in scored:
            part = getattr(s, name)
            for f in ("gt", "misses", "false_positives", "switches", "fragments"):
                setattr(total, f, getattr(total, f) + getattr(part, f))
        out[name] = total.summary()
        out[name]["id_switches_per_track"] = round(total.switches / max(len(tracks), 1), 3)
    return out


def _rate(k: int, n: int) -> dict[str, Any]:
    return {"k": int(k), "n": int(n), "rate": round(k / n, 4) if n else None}


def latencies(run: Run, scored: Scored) -> dict[str, Any]:
    """From a visit's face first showing to its track's first person_seen/unknown_person event; and,
    for enrolled people, to the first person_seen that names them rightly."""
    visit_of = {t["track"]: t["visit"] for t in scored.tracks}
    first: dict[int, tuple[Any, float]] = {}
    named: dict[int, tuple[Any, float]] = {}
    for event, wall in run.events:
        v = visit_of.get(event.track_id)
        if v is None or event.kind not in ("person_seen", "unknown_person"):
            continue
        first.setdefault(v, (event, wall))
        if event.kind == "person_seen" and event.person == scored.visits[v]["person"]:
            named.setdefault(v, (event, wall))
    times = np.array([t for _i, t in run.frames])
    out: dict[str, Any] = {"video_s": [], "wall_s": [], "named_video_s": [], "kinds": Counter(), "no_event": 0}
    for v, info in scored.visits.items():
        shown = info.get("shown")
        if shown is None:
            continue
        k = int(np.searchsorted(times, shown - 1e-9))
        if k >= len(times):
            continue
        if v not in first:
            out["no_event"] += 1
            continue
        event, wall = first[v]
        out["video_s"].append(max(0.0, event.time - shown))
        out["wall_s"].append(max(0.0, wall - run.fed_wall[k]))
        out["kinds"][event.kind] += 1
        if v in named:
            out["named_video_s"].append(max(0.0, named[v][0].time - shown))
    out["kinds"] = dict(out["kinds"])
    return out


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


# -- the parts --------------------------------------------------------------------------------------


def part_accuracy(args: argparse.Namespace, split: Split, gallery: Any, tmp: Path) -> dict[str, Any]:
    from faceatlas.video.source import open_video

    rng = np.random.default_rng(args.seed)
    clips: list[tuple[Path, Scene]] = []
    begin = time.perf_counter()
    for i in range(args.clips):
        people = clip_people(split, rng, args.enrolled_per_clip, args.strangers_per_clip)
        scene = build_scene(
            people,
            width=640,
            height=360,
            fps=25.0,
            seconds=args.seconds,
            seed=args.seed * 1000 + i,
            crowd=2,
            gap=1.0,
            cuts=(args.seconds / 2,) if i % 2 else (),
        )
        clips.append((scene.write(tmp / f"clip{i}.mp4"), scene))
    print(
        f"accuracy clips: {len(clips)} x {args.seconds:.0f} s built in {time.perf_counter() - begin:.0f} s", flush=True
    )
    enrolled = set(split.enrolled)
    stills = still_baseline(clips, gallery, enrolled)
    print(
        f"the clips' photos as stills: accuracy {_fmt(stills['accuracy'], counts=True)},"
        f" FPIR {_fmt(stills['fpir'], counts=True)}",
        flush=True,
    )
    analyzer = gallery.analyzer
    results: dict[str, Any] = {}
    for fps in SAMPLING:
        for every in DETECT_EVERY:
            key = f"fps={fps or 'native'} detect_every={every}"
            load_before = load_avg()
            scored, lat_v, lat_w, lat_n, kinds, no_event, fed, wall = [], [], [], [], Counter(), 0, 0, 0.0
            for path, scene in clips:
                with open_video(path, fps=fps) as video:
                    run = run_tracker(video, gallery, analyzer, detect_every=every)
                s = score(run, scene.truth, enrolled, gallery)
                scored.append(s)
                lat = latencies(run, s)
                lat_v += lat["video_s"]
                lat_w += lat["wall_s"]
                lat_n += lat["named_video_s"]
                kinds.update(lat["kinds"])
                no_event += lat["no_event"]
                fed += len(run.frames)
                wall += run.wall
            summary = summarise(scored)
            summary["latency"] = {
                "video_s_median": _pct(lat_v, 50),
                "video_s_p90": _pct(lat_v, 90),
                "wall_s_median": _pct(lat_w, 50),
                "wall_s_p90": _pct(lat_w, 90),
                "named_video_s_median": _pct(lat_n, 50),
                "named_video_s_p90": _pct(lat_n, 90),
                "named_visits": len(lat_n),
                "first_event": dict(kinds),
                "visits_without_event": no_event,
            }
            summary["track_details"] = [t for sc in scored for t in sc.tracks]
            summary["frames_fed"] = fed
            summary["wall_s"] = round(wall, 1)
            summary["load"] = f"{load_before} -> {load_avg()}"
            results[key] = summary
            t, v = summary["tracker"], summary["vote"]
            print(
                f"{key:30s} tracks {summary['tracks']:4d}  acc {t['accuracy']['rate']} (vote {v['accuracy']['rate']})"
                f"  fpir {t['fpir']['k']}/{t['fpir']['n']} (vote {v['fpir']['k']}, any {summary['any_frame']['fpir']['k']};"
                f" people {t['fpir_people']['k']}/{t['fpir_people']['n']})"
                f"  idsw/track {summary['detected']['id_switches_per_track']} ({summary['every_frame']['id_switches_per_track']})  lat {summary['latency']['video_s_median']} s"
                f"  [{wall:.0f} s, load {summary['load']}]",
                flush=True,
            )
    return {
        "clips": len(clips),
        "seconds": args.seconds,
        "size": "640x360",
        "native_fps": 25.0,
        "stills": stills,
        "results": results,
    }


def still_baseline(clips: list[tuple[Path, Scene]], gallery: Any, enrolled: set[str]) -> dict[str, Any]:
    """Every photo the clips show, identified as a still photo (the largest face) against the same
    gallery: how much of the error is the photos themselves rather than the video."""
    known, strangers = [0, 0], [0, 0]
    for _path, scene in clips:
        used = {(a.person, a.photo) for a in scene.appearances}
        for person, photo in sorted(used):
            found = gallery.identify(scene.portraits[person][photo].pixels)
            name = max(found, key=lambda r: r.face.box.area).person if found else None
            if person in enrolled:
                known[0] += name == person
                known[1] += 1
            else:
                strangers[0] += name is not None
                strangers[1] += 1
    return {"accuracy": _rate(*known), "fpir": _rate(*strangers)}


def part_speed(args: argparse.Namespace, split: Split, gallery: Any, tmp: Path) -> dict[str, Any]:
    from faceatlas.video.tracking import track

    rng = np.random.default_rng(args.seed + 1)
    results: dict[str, Any] = {}
    list(track(_warm(tmp, split, rng), gallery=gallery))  # models loaded before any clock starts
    for width, height in ((1280, 720), (1920, 1080)):
        people = clip_people(split, rng, 3, 2)
        scene = build_scene(
            people, width=width, height=height, fps=25.0, seconds=args.speed_seconds, seed=args.seed + width
        )
        path = scene.write(tmp / f"speed{height}.mp4", truth=False)
        for fps in SAMPLING:
            for every in args.speed_detect_every:
                load_before = load_avg()
                begin, cpu = time.perf_counter(), time.process_time()
                frames = [0]
                tracks = list(track(_counted(path, fps, frames), gallery=gallery, detect_every=every))
                wall, cpu = time.perf_counter() - begin, time.process_time() - cpu
                key = f"{height}p fps={fps or 'native'} detect_every={every}"
                results[key] = {
                    "frames_processed": frames[0],
                    "wall_s": round(wall, 2),
                    "frames_per_s": round(frames[0] / wall, 2),
                    "realtime_factor": round(scene.seconds / wall, 3),
                    "cpu_s_per_frame": round(cpu / max(frames[0], 1), 4),
                    "tracks": len(tracks),
                    "load": f"{load_before} -> {load_avg()}",
                }
                r = results[key]
                print(
                    f"{key:34s} {r['frames_per_s']:6.2f} frames/s  x{r['realtime_factor']:.2f} real time"
                    f"  ({frames[0]} frames in {wall:.1f} s, {r['cpu_s_per_frame']} CPU-s/frame, load {r['load']})",
                    flush=True,
                )
    return {"seconds": args.speed_seconds, "native_fps": 25.0, "results": results}


def _counted(path: Path, fps: float | None, count: list[int]) -> Any:
    """The clip's frames, decoded by faceatlas.video.source, counted as they go."""
    from faceatlas.video.source import open_video

    with open_video(path, fps=fps) as video:
        for frame in video:
            count[0] += 1
            yield frame


def _warm(tmp: Path, split: Split, rng: np.random.Generator) -> Any:
    scene = build_scene(clip_people(split, rng, 1, 0), width=320, height=240, fps=5, seconds=2, seed=1)
    return scene.frames()


def part_memory(args: argparse.Namespace, split: Split, gallery: Any) -> dict[str, Any]:
    from faceatlas.video.tracking import VideoTracker

    rng = np.random.default_rng(args.seed + 2)
    people = clip_people(split, rng, min(40, len(split.walkers)), 20)
    minutes = args.memory_minutes
    scene = build_scene(
        people,
        width=640,
        height=360,
        fps=5.0,
        seconds=60.0 * minutes,
        seed=args.seed + 3,
        crowd=3,
        gap=2.0,
        cuts=tuple(60.0 * m + 30 for m in range(0, minutes, 3)),
    )
    tracker = VideoTracker(gallery)
    samples = []
    closed = 0
    begin = time.perf_counter()
    load_before = load_avg()
    per_minute = int(60 * scene.fps)
    for frame in scene.frames():
        for event in tracker.feed(frame):
            closed += event.kind == "track_closed"
        if frame.index % per_minute == 0:
            samples.append(
                {
                    "minute": frame.index // per_minute,
                    "rss_mb": round(rss_mb(), 1),
                    "closed": closed,
                    "live": len(tracker._live),
                }
            )
            print(
                f"memory: minute {samples[-1]['minute']:2d}  RSS {samples[-1]['rss_mb']:.1f} MB  "
                f"tracks closed {closed}  live {samples[-1]['live']}",
                flush=True,
            )
    closed += sum(e.kind == "track_closed" for e in tracker.finish())
    samples.append({"minute": minutes, "rss_mb": round(rss_mb(), 1), "closed": closed, "live": 0})
    print(f"memory: end        RSS {samples[-1]['rss_mb']:.1f} MB  tracks closed {closed}", flush=True)
    after_warmup = [s["rss_mb"] for s in samples if s["minute"] >= 1]
    slope = (
        float(np.polyfit([s["minute"] for s in samples if s["minute"] >= 1], after_warmup, 1)[0])
        if len(after_warmup) > 2
        else None
    )
    return {
        "minutes": minutes,
        "fps": scene.fps,
        "size": "640x360",
        "visits": len(scene.appearances),
        "samples": samples,
        "rss_growth_mb_after_minute_1": round(after_warmup[-1] - after_warmup[0], 1) if after_warmup else None,
        "rss_slope_mb_per_minute": None if slope is None else round(slope, 2),
        "wall_s": round(time.perf_counter() - begin, 1),
        "load": f"{load_before} -> {load_avg()}",
    }


# -- the tables ---------------------------------------------------------------------------------------


def print_tables(report: dict[str, Any]) -> None:
    acc = report.get("accuracy")
    if acc:
        print(
            f"\n## accuracy ({acc['clips']} clips x {acc['seconds']:.0f} s, {acc['size']}, native {acc['native_fps']:.0f} fps)"
        )
        print(
            "| sampling | detect_every | tracks | accuracy: tracker / vote / any frame | FPIR: tracker / vote / any frame"
            " | strangers named (people)"
            " | ID switches per track | fragments | tracks per visit | MOTA | first event, video s (median, p90)"
            " | wall s (median) | named, video s (median) |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for key, r in acc["results"].items():
            fps, every = key.split()
            cells = [fps.split("=")[1], every.split("=")[1], str(r["tracks"])]
            cells.append(" / ".join(_fmt(r[x]["accuracy"]) for x in ("tracker", "vote", "any_frame")))
            cells.append(" / ".join(_fmt(r[x]["fpir"], counts=True) for x in ("tracker", "vote", "any_frame")))
            cells.append(
                " / ".join(
                    f"{r[x]['fpir_people']['k']}/{r[x]['fpir_people']['n']}" for x in ("tracker", "vote", "any_frame")
                )
            )
            lat = r["latency"]
            det, every_frame = r["detected"], r["every_frame"]
            cells += [
                f"{det['id_switches_per_track']} ({every_frame['id_switches_per_track']})",
                f"{det['fragments']} ({every_frame['fragments']})",
                str(r["tracks_per_visit"]),
                f"{det['mota']} ({every_frame['mota']})",
                f"{lat['video_s_median']}, {lat['video_s_p90']}",
                str(lat["wall_s_median"]),
                f"{lat['named_video_s_median']} ({lat['named_visits']} visits)",
            ]
            print("| " + " | ".join(cells) + " |")
        print("ID switches, fragments, MOTA: on the frames detected (in brackets: every frame fed, with the boxes")
        print("predicted between detections)")
    speed = report.get("speed")
    if speed:
        print(
            f"\n## speed ({speed['seconds']:.0f} s clips at 25 fps, whole track(): decode + detect + embed + track + decide)"
        )
        print("| clip | sampling | detect_every | frames/s | real-time factor | CPU s per frame | load |")
        print("|---|---|---|---|---|---|---|")
        for key, r in speed["results"].items():
            size, fps, every = key.split()
            print(
                f"| {size} | {fps.split('=')[1]} | {every.split('=')[1]} | {r['frames_per_s']} | {r['realtime_factor']} | {r['cpu_s_per_frame']} | {r['load']} |"
            )
    mem = report.get("memory")
    if mem:
        print(f"\n## memory ({mem['minutes']} min at {mem['fps']:.0f} fps, {mem['size']}, {mem['visits']} visits)")
        print("| minute | " + " | ".join(str(s["minute"]) for s in mem["samples"]) + " |")
        print("|---|" + "---|" * len(mem["samples"]))
        print("| RSS MB | " + " | ".join(f"{s['rss_mb']:.0f}" for s in mem["samples"]) + " |")
        print(
            f"growth after minute 1: {mem['rss_growth_mb_after_minute_1']} MB, slope {mem['rss_slope_mb_per_minute']} MB/min"
        )


def _fmt(r: dict[str, Any], counts: bool = False) -> str:
    if r["rate"] is None:
        return "-"
    return f"{100 * r['rate']:.1f} % ({r['k']}/{r['n']})" if counts else f"{100 * r['rate']:.1f} %"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lfw", type=Path, default=LFW_DEVTEST / "images")
    parser.add_argument("--quick", action="store_true", help="fewer, shorter clips; 2 minutes of stream")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--parts", default="accuracy,speed,memory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clips", type=int)
    parser.add_argument("--seconds", type=float)
    args = parser.parse_args()
    require(args.lfw, "LFW DevTest images")
    args.clips = args.clips or (2 if args.quick else 12)
    args.seconds = args.seconds or (10.0 if args.quick else 15.0)
    args.enrolled_per_clip, args.strangers_per_clip = 3, 4
    args.speed_seconds = 4.0 if args.quick else 8.0
    args.speed_detect_every = (1, 5) if args.quick else DETECT_EVERY
    args.memory_minutes = 2 if args.quick else 10
    parts = set(args.parts.split(","))
    command = "python benchmarks/video.py " + " ".join(sys.argv[1:])
    report: dict[str, Any] = {
        "command": command.strip(),
        "machine": machine(),
        "load_start": load_avg(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    print(f"{report['command']}\n{report['machine']}, load {report['load_start']}", flush=True)
    split = split_people(args.lfw, args.seed)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        gallery = build_gallery(split, tmp / "g.db")
        report["gallery"] = {
            "people": len(split.enrolled),
            "strangers_available": len(split.strangers),
            "fpir": gallery.fpir,
        }
        if "accuracy" in parts:
            report["accuracy"] = part_accuracy(args, split, gallery, tmp)
        if "speed" in parts:
            report["speed"] = part_speed(args, split, gallery, tmp)
        if "memory" in parts:
            report["memory"] = part_memory(args, split, gallery)
        gallery.close()
    report["load_end"] = load_avg()
    print_tables(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))
        print(f"\nwritten {args.json}")


if __name__ == "__main__":
    main()
