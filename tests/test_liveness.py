"""Challenge-response liveness: geometry on synthetic landmark tracks, attacks built from real
photos end to end, and bona fide answers from real video when a clip is on this machine."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

from faceatlas.errors import InvalidArgumentError
from faceatlas.pose import MEAN_FACE_3D, estimate_pose, pose_to_rotation
from faceatlas.types import Pose
from faceatlas.video.liveness import (
    Challenge,
    FaceTrack,
    LivenessThresholds,
    Observation,
    depth_ratio,
    expected_parallax,
    judge,
    nose_parallax,
)

LFW = Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw_devtest" / "images"
LFW = LFW if LFW.is_dir() else Path("/work/shared/data/lfw_devtest/images")
VIDEO_DIR = Path.home() / "faceatlas-data" / "video"
REAL_CLIPS = ("orlando_bloom.avi", "short_hamilton_clip.mp4", "hpe_demo.gif")


# -- synthetic landmark tracks ------------------------------------------------------------------------


def _camera_points(pose: tuple[float, float], *, planar: bool = False, distance: float = 600.0) -> np.ndarray:
    """The mean face's five points (mm) turned by (yaw, pitch), 600 mm from a perspective camera, in pixels.
    ``planar``: the points pressed flat onto the plane of the eyes (a photo), turned the same way."""
    points = MEAN_FACE_3D.copy()
    if planar:
        points[:, 2] = 38.0
    rotated = (pose_to_rotation(Pose(pose[0], pose[1], 0.0)) @ (points - [0, 0, 38.0]).T).T + [0, 0, distance]
    focal = 800.0
    return focal * rotated[:, :2] / rotated[:, 2:3] + [320, 240]


def _path(actions: tuple[str, ...], fps: float = 15.0) -> list[tuple[float, float]]:
    """(yaw, pitch) per frame: rest, and each action out to 25 deg and back."""
    extreme = {"turn_left": (25.0, 0.0), "turn_right": (-25.0, 0.0), "nod": (0.0, -20.0)}
    poses = [(0.0, 0.0)] * 8
    for action in actions:
        y, p = extreme[action]
        ramp = [0.5 - 0.5 * math.cos(math.pi * k / 6) for k in range(7)]
        poses += [(y * u, p * u) for u in ramp] + [(y, p)] * 2 + [(y * u, p * u) for u in reversed(ramp)]
        poses += [(0.0, 0.0)] * 4
    return poses


def _track(poses, *, planar: bool = False, embeddings=None, fps: float = 15.0, extra_face: float = 0.0) -> FaceTrack:
    rng = np.random.default_rng(0)
    base = rng.normal(size=128)
    observations = []
    for k, pose in enumerate(poses):
        points = _camera_points(pose, planar=planar) + rng.normal(0, 0.3, size=(5, 2))
        # a fooled pose reader: the planar track reports the pose it was built with
        read = Pose(pose[0], pose[1], 0.0) if planar else estimate_pose(points, (640, 480))
        emb = base + rng.normal(0, 0.05, size=128) if embeddings is None else embeddings[k]
        emb = emb / np.linalg.norm(emb)
        observations.append(
            Observation(k / fps, 2 if extra_face else 1, points, read.yaw, read.pitch, read.roll, emb, 0.9, extra_face)
        )
    return FaceTrack(tuple(observations), "synthetic", 0.9)


def test_challenge_is_random_serialisable_and_checked():
    seen = {str(Challenge.random()) for _ in range(60)}
    assert len(seen) > 5  # secrets-backed: varied
    for text in seen:
        actions = text.split(",")
        assert len(actions) == 3 and all(a != b for a, b in zip(actions, actions[1:], strict=False))
    challenge = Challenge.random(4, rng=random.Random(1))
    assert Challenge.from_json(json.loads(json.dumps(challenge.to_json()))) == challenge
    assert len(challenge.instructions()) == 4
    assert Challenge.space(3) == 12
    with pytest.raises(InvalidArgumentError):
        Challenge(("turn_left", "turn_left"))
    with pytest.raises(InvalidArgumentError):
        Challenge(("wink",))
    with pytest.raises(InvalidArgumentError):
        Challenge.from_json({"actions": "nod"})


def test_nose_parallax_separates_a_head_from_a_plane():
    ref_head, ref_flat = _camera_points((0, 0)), _camera_points((0, 0), planar=True)
    for pose in ((20, 0), (-25, 5), (0, -18), (15, 12)):
        head = nose_parallax(ref_head, _camera_points(pose))
        flat = nose_parallax(ref_flat, _camera_points(pose, planar=True))
        expected = expected_parallax((0, 0, 0), (pose[0], pose[1], 0))
        assert head is not None and flat is not None
        assert np.hypot(*flat) < 0.01  # one homography explains a plane exactly
        assert np.hypot(*head) > 0.1  # a 20-deg turn moves the nose ~0.2 IOD off the plane
        assert 0.7 < depth_ratio(head, expected) < 1.3
        assert abs(depth_ratio(flat, expected)) < 0.1


def test_a_head_performing_the_challenge_is_live_and_the_order_matters():
    challenge = Challenge(("turn_left", "nod", "turn_right"))
    track = _track(_path(challenge.actions))
    result = judge(track, challenge)
    assert result.is_live, result.reasons
    assert [a.action for a in result.actions] == list(challenge.actions)
    assert result.scores["depth"] is not None and result.scores["depth"] > 0.7
    wrong = judge(track, Challenge(("turn_right", "nod", "turn_left")))
    assert not wrong.is_live and "asked for" in wrong.reasons[0]
    slow = judge(track, challenge, thresholds=LivenessThresholds(time_limit=1.0))
    assert not slow.is_live and any("took" in r for r in slow.reasons)
    assert json.dumps(result.to_json())


def test_a_plane_that_fools_the_pose_reader_fails_on_depth():
    challenge = Challenge(("turn_right", "turn_left"))
    result = judge(_track(_path(challenge.actions), planar=True), challenge)
    assert not result.is_live
    assert any("flat picture" in r for r in result.reasons), result.reasons
    assert result.scores["depth"] is not None and result.scores["depth"] < 0.2


def test_identity_second_face_and_swapped_photos_refuse():
    challenge = Challenge(("turn_left", "turn_right"))
    poses = _path(challenge.actions)
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=128), rng.normal(size=128)
    swapped = [a if k < len(poses) // 2 else b for k in range(len(poses))]
    impostor = judge(_track(poses, embeddings=swapped), challenge)
    assert not impostor.is_live and any("same person" in r for r in impostor.reasons)
    crowded = judge(_track(poses, extra_face=0.8), challenge)
    assert not crowded.is_live and any("second face" in r for r in crowded.reasons)
    # photos of a frontal and a turned head swapped by hand: the pose jumps instead of turning
    jumpy = [(0.0, 0.0)] * 10 + [(25.0, 0.0)] * 6 + [(0.0, 0.0)] * 6 + [(-25.0, 0.0)] * 6 + [(0.0, 0.0)] * 6
    swap = judge(_track(jumpy), challenge)
    assert not swap.is_live and any("jumped" in r for r in swap.reasons), swap.reasons


def test_swap_attack_shows_each_print_in_turn():
    from skimage import data

    from faceatlas.video.attacks import swap_attack

    face = data.astronaut()[:220, 120:330]
    turned = np.ascontiguousarray(face[:, ::-1])
    clip = swap_attack(face, {"turn_left": turned}, ("turn_left",), fps=10.0, hold=0.5, rest=0.5)
    assert clip.kind == "print_swap" and len(clip) == 15 and clip.frames[0].shape == (240, 320, 3)
    with pytest.raises(InvalidArgumentError, match="no photo"):
        swap_attack(face, {}, ("nod",))


def test_bad_frames_are_typed_errors():
    from faceatlas.video.liveness import check_liveness

    with pytest.raises(InvalidArgumentError, match="fps"):
        check_liveness([np.zeros((8, 8, 3), np.uint8)], analyzer=object())  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="uint8 RGB"):
        check_liveness([(0.0, np.zeros((8, 8), np.uint8))], analyzer=object())  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        check_liveness(["nope"], analyzer=object())  # type: ignore[arg-type]


# -- end to end: attacks built from real faces ---------------------------------------------------------


@pytest.fixture(scope="module")
def analyzer():
    import faceatlas

    return faceatlas.FaceAnalyzer().load()


def _print_of(analyzer, photo: np.ndarray) -> np.ndarray:
    from faceatlas.eval.liveness import face_crop

    faces = analyzer.detect(photo)
    assert faces, "no face in the test photo"
    return face_crop(photo, max(faces, key=lambda f: f.box.area).box.as_xyxy())


def test_printed_photos_turned_before_the_camera_are_rejected(analyzer):
    from skimage import data

    from faceatlas.video.attacks import planar_attack
    from faceatlas.video.liveness import check_liveness, observe

    challenge = Challenge(("turn_left", "turn_right", "nod"))
    photo = _print_of(analyzer, data.astronaut())
    for bend in (0.0, 0.12):
        clip = planar_attack(photo, challenge.actions, fps=10.0, bend=bend)
        track = observe(clip.frames, analyzer, fps=clip.fps)
        result = judge(track, challenge)
        assert result.faces >= 0.9 * len(clip)  # the attack shows a face the whole time
        assert not result.is_live, result.to_json()
        assert result.scores["challenge"] == 0.0  # turning the sheet does not turn the head printed on it
        assert not judge(track).is_live  # passive: no head turn, so no depth to see
    assert not check_liveness(clip.frames[:20], challenge, analyzer, fps=clip.fps).is_live


def test_replayed_clip_of_a_photo_is_rejected_and_written(analyzer, tmp_path):
    from skimage import data

    from faceatlas.video.attacks import planar_attack, replay_attack, write_clip
    from faceatlas.video.liveness import check_liveness

    challenge = Challenge(("nod", "turn_left"))
    shown = planar_attack(_print_of(analyzer, data.astronaut()), challenge.actions, fps=10.0, size=(320, 240))
    replay = replay_attack(shown, seed=2)
    assert len(replay) == len(shown) and replay.frames[0].shape == (240, 320, 3)
    result = check_liveness(replay.frames, challenge, analyzer, fps=replay.fps)
    assert not result.is_live
    path = tmp_path / "replay.mp4"
    write_clip(replay, path)
    assert path.stat().st_size > 1000


@pytest.mark.skipif(not LFW.is_dir(), reason=f"LFW photos not present at {LFW}")
def test_lfw_prints_are_rejected(analyzer):
    from faceatlas.image import load_image
    from faceatlas.video.attacks import planar_attack
    from faceatlas.video.liveness import check_liveness

    people = sorted(p for p in LFW.iterdir() if p.is_dir())[:2]
    rng = random.Random(5)
    for person in people:
        photo = load_image(sorted(person.glob("*.jpg"))[0])
        challenge = Challenge.random(3, rng=rng)
        clip = planar_attack(_print_of(analyzer, photo), challenge.actions, fps=10.0, seed=rng.randrange(100))
        assert not check_liveness(clip.frames, challenge, analyzer, fps=clip.fps).is_live


def _real_clip() -> Path | None:
    return next((VIDEO_DIR / n for n in REAL_CLIPS if (VIDEO_DIR / n).is_file() and (VIDEO_DIR / n).stat().st_size), None)


@pytest.mark.skipif(_real_clip() is None, reason=f"no real face clip in {VIDEO_DIR} ({', '.join(REAL_CLIPS)})")
def test_bona_fide_answers_cut_from_real_motion_pass(analyzer):
    from faceatlas.eval.liveness import build_answer, find_ramps, read_clip
    from faceatlas.video.liveness import check_liveness, observe

    path = _real_clip()
    assert path is not None
    clip = read_clip(path, max_width=320, max_seconds=6.0)
    track = observe(clip.frames, analyzer, fps=clip.fps)
    ramps = find_ramps(track, LivenessThresholds())
    if not ramps:
        pytest.skip(f"{path.name} has no real head turn or nod from rest to cut an answer from")
    ramp = max(ramps, key=lambda r: abs(r.degrees))
    challenge = Challenge((ramp.action,))
    answer = build_answer(clip, track, challenge, [ramp])
    assert answer is not None
    result = check_liveness(answer.frames, challenge, analyzer, fps=answer.fps)
    assert result.is_live, result.to_json()


def test_eval_liveness_command_reports_apcer(tmp_path):
    import cv2
    from skimage import data
    from typer.testing import CliRunner

    from faceatlas.cli import app

    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "astronaut.png"), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["eval", "liveness", "--photos", str(photos), "--out", str(out), "--length", "2"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "result.json").read_text())
    apcer = report["challenge"]["apcer"]
    assert set(apcer) == {"print", "print_bent", "print_curved"}
    assert report["challenge"]["apcer_worst"] == 0.0
    assert "APCER" in (out / "report.txt").read_text()
    usage = CliRunner().invoke(app, ["eval", "liveness", "--out", str(out)])
    assert usage.exit_code == 2
