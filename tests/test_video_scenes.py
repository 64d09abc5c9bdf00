"""Synthetic clips of real faces (faceatlas.video.scenes): ground truth, occlusion, determinism,
mp4 output; and, with the LFW DevTest photos, two enrolled people crossing tracked end to end."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from faceatlas.video.scenes import (
    Appearance,
    Effects,
    GroundTruth,
    Keyframe,
    Portrait,
    Scene,
    build_scene,
    lfw_people,
)

LFW = Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw_devtest" / "images"
CLEAN = Effects(jitter=0.0, blur=0.0, noise=0.0, jpeg=None, drift=0.0)


def _portrait(colour: tuple[int, int, int], size: tuple[int, int] = (120, 100)) -> Portrait:
    """A flat-coloured 'photo' whose face box is known: enough for geometry, no model needed."""
    h, w = size
    pixels = np.empty((h, w, 3), np.uint8)
    pixels[:] = colour
    return Portrait(pixels, (0.2 * w, 0.2 * h, 0.8 * w, 0.8 * h), f"flat{colour}")


PEOPLE = {
    "red": [_portrait((220, 30, 30)), _portrait((200, 40, 40)), _portrait((180, 20, 20))],
    "blue": [_portrait((30, 30, 220)), _portrait((40, 40, 200))],
    "green": [_portrait((30, 200, 30))],
}


def test_boxes_lie_inside_the_frame_and_visibility_is_a_fraction() -> None:
    scene = build_scene(PEOPLE, width=320, height=240, fps=10, seconds=8, seed=1, crowd=3)
    assert scene.truth.frames == scene.frame_count == 80
    seen = 0
    for faces in scene.truth.faces:
        for face in faces:
            x1, y1, x2, y2 = face.box
            assert 0 <= x1 < x2 <= 320 and 0 <= y1 < y2 <= 240
            assert 0.0 <= face.visible <= 1.0
            seen += 1
    assert seen > 0
    # intervals are the runs where a face shows at least half of itself
    for person, runs in scene.truth.intervals.items():
        for start, end in runs:
            index = round(start * scene.fps)
            assert any(f.person == person and f.visible >= 0.5 for f in scene.truth.at(index))
            assert end >= start


def _crossing(seconds: float = 2.0) -> Scene:
    """red (far, small) walks right, blue (near, large) walks left: they meet mid-frame at t = 1 s."""
    far = Appearance("red", 0, (Keyframe(0.0, 40, 120, 60), Keyframe(seconds, 280, 120, 60)))
    near = Appearance("blue", 0, (Keyframe(0.0, 280, 125, 80), Keyframe(seconds, 40, 125, 80)))
    return Scene(PEOPLE, [far, near], width=320, height=240, fps=10, seconds=seconds, effects=CLEAN)


def test_the_nearer_face_occludes_the_farther() -> None:
    scene = _crossing()
    middle = 10  # t = 1 s: both centres at x = 160
    faces = {f.person: f for f in scene.truth.at(middle)}
    assert faces["blue"].depth > faces["red"].depth
    assert faces["blue"].visible == 1.0
    assert faces["red"].visible < 0.2
    pixels = scene.render(middle)
    assert tuple(pixels[120, 160]) == (30, 30, 220)  # the near (blue) face is drawn over the far one
    # before they meet both show whole
    assert all(f.visible == 1.0 for f in scene.truth.at(2))
    # the far face's interval is interrupted by the occlusion
    assert len(scene.truth.intervals["red"]) == 2
    assert len(scene.truth.intervals["blue"]) == 1


def test_a_seed_gives_the_same_scene_and_another_seed_another() -> None:
    a = build_scene(PEOPLE, width=160, height=120, fps=8, seconds=4, seed=7)
    b = build_scene(PEOPLE, width=160, height=120, fps=8, seconds=4, seed=7)
    c = build_scene(PEOPLE, width=160, height=120, fps=8, seconds=4, seed=8)
    assert a.truth.to_json() == b.truth.to_json()
    for fa, fb in zip(a.frames(step=5), b.frames(step=5), strict=True):
        assert np.array_equal(fa.pixels, fb.pixels)
    assert a.truth.to_json() != c.truth.to_json()


def test_appearances_of_a_person_use_different_photos_and_a_cut_splits_visits() -> None:
    scene = build_scene(PEOPLE, width=320, height=240, fps=5, seconds=40, seed=3, cuts=(20.0,), crowd=2)
    by_person: dict[str, list[Appearance]] = {}
    for a in sorted(scene.appearances, key=lambda a: a.start):
        by_person.setdefault(a.person, []).append(a)
    reds = [a.photo for a in by_person["red"] if not a.after_cut]
    assert len(reds) >= 2 and all(p != q for p, q in itertools.pairwise(reds))
    assert {a.person for a in scene.appearances} == set(PEOPLE)
    after = [a for a in scene.appearances if a.after_cut]
    for a in after:  # it goes on from the cut, mirrored across the frame
        assert a.start == pytest.approx(20.0)
    # nobody is in two places at once
    for visits in by_person.values():
        for p, q in itertools.pairwise(visits):
            assert q.start >= p.end - 1e-9


def test_written_mp4_reads_back_with_its_ground_truth(tmp_path: Path) -> None:
    cv2 = pytest.importorskip("cv2")
    scene = build_scene(PEOPLE, width=160, height=120, fps=10, seconds=2, seed=2)
    path = scene.write(tmp_path / "clip.mp4")
    capture = cv2.VideoCapture(str(path))
    count = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        assert frame.shape == (120, 160, 3)
        count += 1
    capture.release()
    assert count == scene.frame_count == 20
    truth = GroundTruth.from_json(json.loads(path.with_suffix(".json").read_text()))
    assert truth == scene.truth


def test_bad_arguments_are_typed_errors() -> None:
    from faceatlas.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError):
        build_scene({}, seconds=2)
    with pytest.raises(InvalidArgumentError):
        Scene(PEOPLE, [Appearance("nobody", 0, (Keyframe(0, 1, 1, 10), Keyframe(1, 2, 2, 10)))], seconds=1)
    with pytest.raises(InvalidArgumentError):
        _crossing().render(999)


# -- end to end with real faces -------------------------------------------------------------------


@pytest.fixture(scope="module")
def lfw_pair() -> dict[str, list[Path]]:
    if not LFW.is_dir():
        pytest.skip(f"LFW DevTest images not found at {LFW} (see ../shared/data/README.md)")
    people = lfw_people(LFW, min_photos=3)
    names = sorted(people)[:2]
    return {n: people[n] for n in names}


def test_two_enrolled_people_crossing_give_two_tracks_with_their_names(
    lfw_pair: dict[str, list[Path]], tmp_path: Path
) -> None:
    import faceatlas
    from faceatlas.video.tracking import track

    gallery = faceatlas.Gallery.open(tmp_path / "g.db")
    for name, photos in lfw_pair.items():
        gallery.enroll(name, photos[:1])
    # the clip shows another photo of each: the one a still-image search names most surely, so the
    # test is about what video adds or loses, not about LFW's hardest pairs
    clip = {}
    for name, photos in lfw_pair.items():
        scores = [gallery.identify(str(p))[0] for p in photos[1:]]
        clip[name] = [max(zip(scores, photos[1:], strict=True), key=lambda sp: sp[0].score or 0.0)[1]]
    scene = build_scene(clip, width=320, height=240, fps=10, seconds=4, seed=0, speed=(0.3, 0.35), crowd=2)
    assert {a.kind for a in scene.appearances} == {"pair"}  # they walk past each other
    tracks = [t for t in track(scene.frames(), gallery=gallery) if t.frames >= 5]
    assert sorted(t.person or "" for t in tracks) == sorted(lfw_pair)
    gallery.close()
