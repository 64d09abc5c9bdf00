"""Faces followed through frames, one decision per track (faceatlas.video.tracking), on real faces:
scikit-image's astronaut (enrolled) and matplotlib's Grace Hopper (a stranger) walking across a frame."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceatlas.errors import InvalidArgumentError

FPS = 8.0
SIZE = (480, 320)  # width, height


@dataclass(frozen=True)
class Frame:
    index: int
    time: float
    pixels: np.ndarray


def _faces() -> tuple[np.ndarray, np.ndarray]:
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image provides the test photo")
    import matplotlib.cbook

    astronaut = skimage_data.astronaut()[20:260, 120:330]  # her head and shoulders
    hopper = np.asarray(Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    hopper = hopper[40:420, 60:460]
    return _resized(astronaut, 130), _resized(hopper, 130)


def _resized(image: np.ndarray, height: int) -> np.ndarray:
    width = round(image.shape[1] * height / image.shape[0])
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))


def walking_clip(n: int = 24, *, gap: tuple[int, int] | None = None) -> list[Frame]:
    """Two people crossing the frame in opposite directions, in separate lanes; ``gap``: frames
    [a, b) are blank (a cut to an empty scene), after which both are back where they were."""
    first, second = _faces()
    frames = []
    for i in range(n):
        canvas = np.full((SIZE[1], SIZE[0], 3), 90, np.uint8)
        canvas[:, :, 1] = np.linspace(60, 140, SIZE[0], dtype=np.uint8)[None, :]  # not a flat wall
        if gap is None or not gap[0] <= i < gap[1]:
            t = i / max(n - 1, 1)
            for face, x, y in ((first, 10 + t * 160, 20), (second, 330 - t * 160, 170)):
                h, w = face.shape[:2]
                x0, y0 = round(x), round(y)
                canvas[y0 : y0 + min(h, SIZE[1] - y0), x0 : x0 + w] = face[: SIZE[1] - y0]
        frames.append(Frame(i, i / FPS, canvas))
    return frames


@pytest.fixture(scope="module")
def analyzer():
    from faceatlas.pipeline import FaceAnalyzer

    return FaceAnalyzer().load()


@pytest.fixture(scope="module")
def gallery(tmp_path_factory, analyzer):
    from faceatlas.gallery.gallery import Gallery

    first, _second = _faces()
    path = tmp_path_factory.mktemp("gallery") / "people.db"
    gallery = Gallery.open(path, analyzer=analyzer)
    gallery.enroll("astronaut", [_resized(first, 220)])
    yield gallery
    gallery.close()


def test_two_people_give_two_tracks_one_decision_each(gallery, analyzer):
    from faceatlas.video.tracking import track

    tracks = list(track(walking_clip(), gallery, analyzer=analyzer))
    assert len(tracks) == 2
    named = {t.person for t in tracks}
    assert named == {"astronaut", None}  # Grace Hopper is not enrolled: unknown, not the nearest name
    for t in tracks:
        assert t.frames >= 20  # followed through (nearly) every frame
        assert 0.0 <= t.start < t.end <= 23 / FPS + 1e-9
        assert t.best and len(t.best) <= 5
        assert t.best[0].face.quality.score >= t.best[-1].face.quality.score
        assert abs(float(np.linalg.norm(t.template)) - 1.0) < 1e-4
        assert t.threshold is not None and t.fpir == gallery.fpir
        line = json.loads(json.dumps(t.to_json()))
        assert line["person"] == t.person and len(line["box"]) == 4
    known = next(t for t in tracks if t.person)
    assert known.score >= known.threshold
    stranger = next(t for t in tracks if t.person is None)
    assert stranger.score is None or stranger.score < stranger.threshold


def test_events_announce_each_visit_once(gallery, analyzer):
    from faceatlas.video.tracking import VideoTracker

    tracker = VideoTracker(gallery, analyzer)
    events = list(tracker.feed_all(walking_clip()))
    closed = [e for e in events if e.kind == "track_closed"]
    assert len(closed) == 2 and len({e.track_id for e in closed}) == 2
    by_track = {e.track_id: [x.kind for x in events if x.track_id == e.track_id] for e in closed}
    for e in closed:
        kinds = by_track[e.track_id]
        assert kinds[0] == "track_started" and kinds[-1] == "track_closed"
        if e.person == "astronaut":
            seen = next(x for x in events if x.track_id == e.track_id and x.kind == "person_seen")
            assert seen.person == "astronaut" and seen.time < e.time  # announced before the track ended
            assert "unknown_person" not in kinds
        else:
            assert kinds.count("unknown_person") == 1 and "person_seen" not in kinds


def test_detection_every_third_frame_tracks_the_same_people(gallery, analyzer):
    from faceatlas.video.tracking import track

    tracks = list(track(walking_clip(), gallery, analyzer=analyzer, detect_every=3))
    assert sorted(t.person or "" for t in tracks) == ["", "astronaut"]
    assert all(6 <= t.frames <= 8 for t in tracks)  # 8 of 24 frames analysed


def test_without_a_gallery_tracks_only(analyzer):
    from faceatlas.video.tracking import track

    tracks = list(track(walking_clip(12), analyzer=analyzer))
    assert len(tracks) == 2
    assert all(t.person is None and t.score is None and t.fpir is None for t in tracks)


def test_a_cut_and_back_keeps_each_persons_track(analyzer):
    """After 4 blank frames (half a second) both people are back: re-associated by embedding or
    motion, not new tracks."""
    from faceatlas.video.tracking import track

    tracks = list(track(walking_clip(24, gap=(10, 14)), analyzer=analyzer))
    assert len(tracks) == 2


def test_draw_writes_every_frame(tmp_path, analyzer):
    import cv2

    from faceatlas.video.tracking import track

    out = tmp_path / "out.mp4"
    frames = walking_clip(12)
    list(track(frames, analyzer=analyzer, draw=out, fps=FPS))
    capture = cv2.VideoCapture(str(out))
    assert capture.isOpened()
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == len(frames)
    ok, image = capture.read()
    assert ok and image.shape[:2] == (SIZE[1], SIZE[0])
    capture.release()


def test_bad_arguments_are_refused(tmp_path, analyzer):
    from faceatlas.video.tracking import VideoTracker, track

    with pytest.raises(InvalidArgumentError, match="detect_every"):
        VideoTracker(analyzer=analyzer, detect_every=0)
    with pytest.raises(InvalidArgumentError, match="fpir"):
        VideoTracker(analyzer=analyzer, fpir=2.0)
    with pytest.raises(InvalidArgumentError, match="fps"):
        next(track(walking_clip(2), analyzer=analyzer, fps=-1))
    with pytest.raises(InvalidArgumentError, match="ending in"):
        list(track(walking_clip(2), analyzer=analyzer, draw=tmp_path / "out.gif"))


def write_clip(path: Path, frames: list[Frame], fps: float = FPS) -> Path:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, SIZE)
    for frame in frames:
        writer.write(cv2.cvtColor(frame.pixels, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def test_cli_prints_one_line_per_track(tmp_path, gallery):
    pytest.importorskip("faceatlas.video.source", reason="the video source module is not built yet")
    from typer.testing import CliRunner

    from faceatlas.cli import app

    clip = write_clip(tmp_path / "walk.mp4", walking_clip())
    result = CliRunner().invoke(app, ["video", str(clip), "--db", str(gallery.store.path)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert sorted(line["person"] or "" for line in lines) == ["", "astronaut"]
    assert all(line["end"] > line["start"] >= 0 for line in lines)


def test_a_stream_that_gives_up_still_yields_its_open_tracks(analyzer):
    """A stream that fails for good mid-way: the tracks still open are closed and yielded before
    the error, so nothing seen is lost."""
    from faceatlas.errors import StreamError
    from faceatlas.video.tracking import track

    def dying_stream():
        yield from walking_clip(12)
        raise StreamError("the camera stopped answering")

    seen = []
    with pytest.raises(StreamError, match="stopped answering"):
        for t in track(dying_stream(), analyzer=analyzer):
            seen.append(t)
    assert len(seen) == 2
