"""FaceTracker on synthetic boxes: motion, occlusion, cuts, low scores, irregular and sparse sampling."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faceatlas.errors import InvalidArgumentError
from faceatlas.video.tracker import FaceTracker, TrackerStep

FPS = 30.0


def box(cx: float, cy: float, w: float = 60.0, h: float = 80.0) -> np.ndarray:
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def unit(seed: int, dim: int = 16) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=dim)
    return v / np.linalg.norm(v)


def step(tracker: FaceTracker, time: float, boxes: list[np.ndarray], scores=None, embeddings=None) -> TrackerStep:
    arr = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    s = np.full(len(arr), 0.9) if scores is None else np.asarray(scores, dtype=np.float64)
    e = None if embeddings is None else np.array(embeddings)
    return tracker.update(time, arr, s, e)


def test_two_faces_moving_linearly_keep_their_ids() -> None:
    tracker = FaceTracker()
    first = None
    for i in range(50):
        t = i / FPS
        out = step(tracker, t, [box(50 + 120 * t, 100), box(400, 300 - 90 * t, 40, 50)])
        ids = tuple(out.track_ids)
        first = first or ids
        assert ids == first and -1 not in ids
        assert out.lost == () and out.closed == () and set(out.boxes) == set(ids)
    assert len(set(first)) == 2 and tracker.finish() == tuple(sorted(first))


def test_crossing_paths_keep_ids_by_motion() -> None:
    tracker = FaceTracker()
    ids = None
    for i in range(60):  # they pass each other near frame 30, overlapping heavily for several frames
        x = 8.0 * i
        out = step(tracker, i / FPS, [box(40 + x, 100), box(520 - x, 110)])
        if ids is None:
            ids = tuple(out.track_ids)
        assert tuple(out.track_ids) == ids, f"switch at frame {i}"
    # the boxes overlapped at the crossing: IoU alone (no motion) would have been ambiguous
    assert len(set(ids)) == 2


def test_a_face_occluded_for_half_a_second_is_matched_again_by_motion() -> None:
    tracker = FaceTracker()
    seen = []
    for i in range(60):
        t = i / FPS
        visible = not 20 <= i < 35  # 15 frames = 0.5 s hidden
        out = step(tracker, t, [box(100 + 150 * t, 200)] if visible else [])
        if visible:
            seen.append(int(out.track_ids[0]))
        else:
            assert out.lost == (seen[0],) and out.closed == ()
            # the predicted box keeps moving with the face
            assert abs((out.boxes[seen[0]][0] + 30) - (100 + 150 * t)) < 10
    assert set(seen) == {seen[0]}


def _cut(second_embedding: np.ndarray) -> tuple[list[TrackerStep], int]:
    tracker = FaceTracker(reid_similarity=0.6)
    face = unit(0)
    steps = [
        step(tracker, i / FPS, [box(100 + 2 * i, 150)], embeddings=[face + 0.05 * unit(i + 10)]) for i in range(20)
    ]
    first = int(steps[0].track_ids[0])
    for i in range(20, 40):  # a cut: the same face (or not) at the other side of the frame
        steps.append(step(tracker, i / FPS, [box(500, 300)], embeddings=[second_embedding]))
    return steps, first


def test_a_cut_is_reassociated_by_embedding() -> None:
    steps, first = _cut(unit(0) + 0.1 * unit(99))
    assert steps[20].revived == (first,) and int(steps[20].track_ids[0]) == first
    assert all(int(s.track_ids[0]) == first for s in steps) and not any(s.closed for s in steps)
    assert all(s.revived == () for s in steps[21:])


def test_a_cut_to_another_face_starts_a_new_track_and_closes_the_old_one() -> None:
    steps, first = _cut(unit(1))
    new = int(steps[20].track_ids[0])
    assert new != first and steps[20].revived == () and steps[20].lost == (first,)
    assert all(int(s.track_ids[0]) == new for s in steps[20:])
    # a lost track that never comes back is closed once, when it no longer can (last seen at frame 9)
    tracker = FaceTracker(reid_similarity=0.6, lost_seconds=0.2, reid_seconds=0.5)
    reports = []
    for i in range(60):
        out = step(tracker, i / FPS, [box(100, 150)] if i < 10 else [box(500, 300)], embeddings=[unit(int(i >= 10))])
        reports.extend((i, c) for c in out.closed)
        if i == 10:
            old = out.lost
    assert len(old) == 1 and reports == [(25, old[0])]  # 25/30 - 9/30 > reid_seconds


def test_reassociation_needs_a_threshold_and_a_recent_track() -> None:
    for tracker, gap in ((FaceTracker(), 0.1), (FaceTracker(reid_similarity=0.6, reid_seconds=1.0), 1.5)):
        first = step(tracker, 0.0, [box(100, 150)], embeddings=[unit(0)])
        later = step(tracker, gap, [box(500, 300)], embeddings=[unit(0)])  # the same face, elsewhere
        assert later.revived == () and int(later.track_ids[0]) != int(first.track_ids[0])
    # within reid_seconds (past lost_seconds): the same face comes back under its id
    tracker = FaceTracker(reid_similarity=0.6, lost_seconds=0.2, reid_seconds=1.0)
    first = step(tracker, 0.0, [box(100, 150)], embeddings=[unit(0)])
    assert step(tracker, 0.5, []).lost == (1,)
    later = step(tracker, 0.9, [box(110, 150)], embeddings=[unit(0)])
    assert later.revived == (1,) and later.track_ids.tolist() == [1]


def test_bad_input_changes_nothing() -> None:
    tracker = FaceTracker()
    for i in range(5):
        step(tracker, i / FPS, [box(100 + 5 * i, 100)])
    with pytest.raises(InvalidArgumentError):
        tracker.update(9.0, np.array([[0, 0, 1]]), np.ones(1))  # a later time, but refused
    out = step(tracker, 5 / FPS, [box(125, 100)])
    assert out.track_ids.tolist() == [1] and out.lost == ()


def test_low_score_detections_extend_a_track_but_never_start_one() -> None:
    tracker = FaceTracker()
    out = step(tracker, 0.0, [box(100, 100)], scores=[0.3])
    assert out.track_ids.tolist() == [-1] and out.boxes == {}
    out = step(tracker, 0.1, [box(100, 100)], scores=[0.9])
    tid = int(out.track_ids[0])
    for i in range(2, 10):  # an occluded face: the detector is unsure, the track holds
        out = step(tracker, i / 10, [box(100 + i, 100), box(400, 400)], scores=[0.2, 0.2])
        assert out.track_ids.tolist() == [tid, -1] and out.lost == ()
    out = step(tracker, 1.0, [box(110, 100)], scores=[0.05])  # under low_score: ignored
    assert out.track_ids.tolist() == [-1] and out.lost == (tid,)


def test_irregular_time_steps_keep_ids_and_motion_in_seconds() -> None:
    rng = np.random.default_rng(3)
    times = np.cumsum(rng.uniform(0.01, 0.25, size=40))
    tracker = FaceTracker()
    ids = set()
    for t in times:  # 200 px/s: a 0.25 s gap moves the face most of its width
        out = step(tracker, float(t), [box(100 + 200 * t, 200), box(700 - 150 * t, 400, 50, 50)])
        ids.add(tuple(out.track_ids))
    assert len(ids) == 1
    out = tracker.predict(float(times[-1]) + 0.4)
    a = int(next(iter(ids))[0])
    predicted_cx = (out.boxes[a][0] + out.boxes[a][2]) / 2
    assert abs(predicted_cx - (100 + 200 * (times[-1] + 0.4))) < 5


def test_detection_every_nth_frame_with_predict_in_between() -> None:
    tracker = FaceTracker()
    ids = None
    for i in range(100):  # a new track has no velocity yet: 25 px between detections, 60 px wide
        t = i / FPS
        truth = [box(60 + 150 * t, 100), box(600 - 150 * t, 140)]  # they cross at 1.8 s
        if i % 5:
            out = tracker.predict(t)
            assert out.track_ids.shape == (0,) and out.lost == ()
            if i > 20:
                for tid, b in zip(ids, truth, strict=True):
                    assert np.abs(out.boxes[tid] - b).max() < 8
        else:
            out = step(tracker, t, truth)
            ids = ids or tuple(int(x) for x in out.track_ids)
            assert tuple(out.track_ids) == ids, f"switch at frame {i}"


def test_closed_ids_are_reported_exactly_once_and_never_reused() -> None:
    tracker = FaceTracker(lost_seconds=0.2)  # re-association off: closed after lost_seconds
    closed: list[int] = []
    given_ids: set[int] = set()
    for i in range(100):
        t = i / FPS
        boxes = [box(100, 100)] if (i // 20) % 2 == 0 else []  # on 20 frames, off 20 frames
        out = step(tracker, t, boxes)
        closed.extend(out.closed)
        given_ids.update(int(x) for x in out.track_ids)
        assert not set(out.closed) & set(out.boxes)
    assert len(closed) == len(set(closed)) == 2 and len(given_ids) == 3
    assert tracker.finish() == (max(given_ids),) and tracker.finish() == ()
    assert int(step(tracker, 10.0, [box(100, 100)]).track_ids[0]) == max(given_ids) + 1


def test_predict_closes_tracks_too_and_finish_closes_the_rest() -> None:
    tracker = FaceTracker(lost_seconds=0.5)
    step(tracker, 0.0, [box(100, 100), box(300, 100)])
    step(tracker, 0.1, [box(100, 100)])
    assert tracker.predict(0.5).closed == ()
    out = tracker.predict(0.7)
    assert out.closed == (2,) and set(out.boxes) == {1}
    assert tracker.finish() == (1,)


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda t: t.update(0, np.zeros((2, 3)), np.ones(2)), "(n, 4)"),
        (lambda t: t.update(0, np.array([[0, 0, np.nan, 1]]), np.ones(1)), "NaN"),
        (lambda t: t.update(0, np.array([[5, 0, 1, 1]]), np.ones(1)), "x2 > x1"),
        (lambda t: t.update(0, np.array([[0, 0, 1, 1]]), np.ones(2)), "scores"),
        (lambda t: t.update(0, np.array([[0, 0, 1, 1]]), np.ones(1), np.ones((2, 4))), "embeddings"),
        (lambda t: t.update(0, np.array([[0, 0, 1, 1]]), np.ones(1), np.zeros((1, 4))), "zero"),
        (lambda t: t.update(float("nan"), np.zeros((0, 4)), np.zeros(0)), "finite"),
        (lambda t: (t.predict(2.0), t.predict(1.0)), "backwards"),
        (lambda t: t.predict("soon"), "number"),
        (lambda t: FaceTracker(low_score=0.6, high_score=0.5), "low_score"),
        (lambda t: FaceTracker(match_iou=0), "match_iou"),
        (lambda t: FaceTracker(reid_seconds=-1), "reid_seconds"),
        (lambda t: FaceTracker(reid_similarity=2), "reid_similarity"),
    ],
)
def test_invalid_input_raises_a_clear_error(call, words: str) -> None:
    tracker = FaceTracker()
    with pytest.raises(InvalidArgumentError, match=re.escape(words)):
        call(tracker)


def test_embedding_dimension_must_not_change_and_nan_rows_mean_none() -> None:
    tracker = FaceTracker(reid_similarity=0.5)
    out = tracker.update(
        0, np.array([box(100, 100), box(300, 100)]), np.ones(2), np.array([unit(0), np.full(16, np.nan)])
    )
    assert (out.track_ids > 0).all()
    with pytest.raises(InvalidArgumentError, match="dimension"):
        tracker.update(0.1, np.array([box(100, 100)]), np.ones(1), unit(0, 8)[None])


def test_empty_frames_are_fine() -> None:
    tracker = FaceTracker()
    out = tracker.update(0.0, np.zeros((0, 4)), np.zeros(0), np.zeros((0, 16)))
    assert out.track_ids.shape == (0,) and out.boxes == {} and tracker.finish() == ()


frames = st.lists(
    st.tuples(
        st.floats(0.0, 0.5),  # time step
        st.lists(
            st.tuples(st.floats(0, 600), st.floats(0, 400), st.floats(5, 150), st.floats(5, 150), st.floats(0, 1)),
            max_size=6,
        ),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(frames, st.booleans())
def test_ids_are_never_reused_and_boxes_stay_finite(sequence, use_predict) -> None:
    tracker = FaceTracker(reid_similarity=0.8, lost_seconds=0.3, reid_seconds=0.8)
    t, closed, live = 0.0, set(), set()
    for k, (dt, dets) in enumerate(sequence):
        t += dt
        if use_predict and k % 3 == 2:
            out = tracker.predict(t)
        else:
            boxes = np.array([[x, y, x + w, y + h] for x, y, w, h, _ in dets]).reshape(-1, 4)
            scores = np.array([s for *_, s in dets])
            embeddings = np.array([unit(int(x) % 3) for x, *_ in dets]).reshape(len(dets), 16)
            out = tracker.update(t, boxes, scores, embeddings)
            tracked = [int(i) for i in out.track_ids if i >= 0]
            assert len(tracked) == len(set(tracked))  # one detection per track
            assert not set(tracked) & closed  # a closed id never comes back
            assert set(tracked) <= set(out.boxes)
        assert not set(out.closed) & closed and not set(out.closed) & set(out.boxes)
        closed |= set(out.closed)
        assert not set(out.boxes) & closed
        assert set(out.lost) <= set(out.boxes)
        assert all(np.isfinite(b).all() and b[2] > b[0] and b[3] > b[1] for b in out.boxes.values())
        live |= set(out.boxes)
    assert set(tracker.finish()) == live - closed
