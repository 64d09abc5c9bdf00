"""The review queue (issue 17): questions in order of gain, answers stored as constraints, and the labelling simulation."""

from __future__ import annotations

import numpy as np
import pytest

from faceatlas.clustering import FaceClusterer
from faceatlas.clustering.questions import plan_questions
from faceatlas.collection import CollectionStore, NewPhoto, review
from faceatlas.collection.grouping import cluster_collection
from faceatlas.eval.labelling import bcubed_f, group_review_run, name_every_cluster, review_queue_run
from faceatlas.gallery.store import ModelTag
from faceatlas.types import Box, Face, Landmarks, Pose, Quality

DIM = 16


def people(n_people: int = 3, per_person: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.eye(DIM)[:n_people]
    x = np.repeat(centres, per_person, axis=0) + 0.05 * rng.normal(size=(n_people * per_person, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), np.repeat(np.arange(n_people), per_person)


def test_the_first_questions_are_the_true_merges_and_same_photo_pairs_are_never_asked():
    x, truth = people()
    split = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5])  # each person in two clusters
    plan = plan_questions(x, split, threshold=0.9, scale=0.02, limit=3)
    assert [q.kind for q in plan] == ["merge"] * 3
    assert all(truth[q.rows[0]] == truth[q.rows[1]] for q in plan)
    groups = np.full(len(x), -1)
    groups[[0, 3]] = 7  # clusters 0 and 1 share a photo
    plan = plan_questions(x, split, threshold=0.9, scale=0.02, groups=groups, limit=20)
    assert not any({split[q.rows[0]], split[q.rows[1]]} == {0, 1} for q in plan if q.kind == "merge")


def test_the_queue_reaches_f_099_in_fewer_answers_than_naming_every_cluster():
    x, truth = people(4, 8)
    start = np.arange(len(x)) // 2  # every person split into 4 clusters of 2
    queue = review_queue_run(x, truth, start, threshold=0.9, scale=0.02, budget=200)
    named = name_every_cluster(truth, start, budget=200)
    assert queue.reached[0.99] is not None and named.reached[0.99] is not None
    assert queue.reached[0.99] < named.reached[0.99]
    assert bcubed_f(truth, truth) == pytest.approx(1.0)


def face(x: float, vector: np.ndarray) -> Face:
    return Face(
        box=Box(x, 10.0, x + 40.0, 50.0), score=0.99, landmarks=Landmarks(np.full((5, 2), x + 20)),
        pose=Pose(0.0, 0.0, 0.0), quality=Quality(0.9, 1, 1, 1, 1, 1), embedding=vector,
    )  # fmt: skip


@pytest.fixture
def store(tmp_path):
    x, truth = people(2, 4)
    with CollectionStore.open(tmp_path / "c.db") as s:
        s.bind_model(ModelTag("fake", "1", DIM))
        s.add_photos([NewPhoto(f"{i}.jpg", "/p", f"{i:064d}", 1, 1, 400, 300, [face(0, v)]) for i, v in enumerate(x)])
        ids = s.face_table().face_ids.tolist()
        s.set_clusters(ids, [0, 0, 1, 1, 2, 2, 3, 3])  # each person in two clusters
        yield s, truth, ids


def test_answers_become_constraints_a_full_clustering_honours_and_a_no_is_not_asked_again(store):
    s, truth, ids = store
    queue = review.review_queue(s, limit=10, threshold=0.9)
    first = queue[0]
    assert first.kind == "merge" and truth[ids.index(first.faces[0])] == truth[ids.index(first.faces[1])]
    wrong = next(q for q in queue if q.kind == "merge" and truth[ids.index(q.faces[0])] != truth[ids.index(q.faces[1])])
    review.answer(s, wrong, "no")
    again = review.review_queue(s, limit=20, threshold=0.9)
    assert wrong.key not in {q.key for q in again}
    review.answer(s, first, "yes")
    merged = {s.face(f).cluster for f in first.faces}
    assert len(merged) == 1
    cluster_collection(s, FaceClusterer(threshold=0.9), full=True)
    assert len({s.face(f).cluster for f in first.faces}) == 1
    assert s.face(wrong.faces[0]).cluster != s.face(wrong.faces[1]).cluster
    session = review.ReviewSession(s, threshold=0.9)
    top = session.queue(limit=1)
    if top:
        session.answer(top[0], "skip")
        assert top[0].key not in {q.key for q in review_queue_with(session)}


def review_queue_with(session: review.ReviewSession) -> list[review.Question]:
    return review.review_queue(session.store, limit=20, skip=session.skipped, threshold=0.9)


def test_the_cli_lists_asks_and_batch_accepts(store, tmp_path):
    import json

    from typer.testing import CliRunner

    from faceatlas.cli import app

    s, truth, ids = store
    db = str(tmp_path / "c.db")
    cli = CliRunner()
    listed = cli.invoke(app, ["review", "--db", db, "--threshold", "0.9", "--list", "--json", "--limit", "3"])
    assert listed.exit_code == 0, listed.output
    questions = [json.loads(line) for line in listed.output.splitlines()]
    assert questions and questions[0]["kind"] == "merge" and questions[0]["text"] == "Same person?"
    assert [shown["face"] for shown in questions[0]["shown"]] == questions[0]["faces"]
    first = questions[0]["faces"]
    assert truth[ids.index(first[0])] == truth[ids.index(first[1])]
    asked = cli.invoke(app, ["review", "--db", db, "--threshold", "0.9", "--limit", "1"], input="maybe\ny\n")
    assert asked.exit_code == 0, asked.output
    assert "answer y (yes)" in asked.output and "answered: 1 yes, 0 no, 0 skipped" in asked.output
    assert len({s.face(f).cluster for f in first}) == 1  # the yes merged them
    left = sorted({c.id for c in s.clusters()} - {s.face(first[0]).cluster})
    accepted = cli.invoke(app, ["review", "accept", *map(str, left[1:]), "--into", str(left[0]), "--db", db])
    assert accepted.exit_code == 0, accepted.output
    assert len({s.face(f).cluster for f in ids}) == 2
    missing = cli.invoke(app, ["review", "accept", "999", "--into", str(left[0]), "--db", db])
    assert missing.exit_code != 0 and "999" in missing.output


def test_group_questions_label_a_split_collection_in_fewer_answers_than_naming():
    x, truth = people(4, 12, seed=3)
    start = np.arange(len(x)) // 2  # every person split into 6 clusters of 2
    group = group_review_run(x, truth, start, threshold=0.9, scale=0.02, budget=200)
    queue = review_queue_run(x, truth, start, threshold=0.9, scale=0.02, budget=200)
    named = name_every_cluster(truth, start, budget=200)
    assert group.reached[0.99] is not None and named.reached[0.99] is not None
    assert 2 * group.reached[0.99] <= named.reached[0.99]
    assert queue.reached[0.99] is not None and group.reached[0.99] < queue.reached[0.99]
    assert group.curve[group.reached[0.99]] >= 0.99 and all(np.diff(group.curve) >= 0)  # merges of one person only


def test_a_group_question_shows_the_likely_clusters_and_its_answer_merges_and_cannot_links(store):
    s, truth, ids = store
    asked = review.group_question(s, threshold=0.9)
    assert asked is not None and asked.members
    person = truth[ids.index(asked.anchor)]
    same = [m.faces[1] for m in asked.members if truth[ids.index(m.faces[1])] == person]
    assert same  # the person's other cluster is among the candidates
    with pytest.raises(review.InvalidCorrectionError):
        review.answer_group(s, asked, [999_999])
    anchor_cluster = s.face(asked.anchor).cluster
    review.answer_group(s, asked, same)
    assert {s.face(f).cluster for f in same} == {anchor_cluster}  # the anchor keeps its cluster id
    for member in asked.members:
        if member.faces[1] not in same:
            assert s.face(member.faces[1]).cluster != anchor_cluster
    cluster_collection(s, FaceClusterer(threshold=0.9), full=True)
    assert len({s.face(f).cluster for f in [asked.anchor, *same]}) == 1
    again = review.group_question(s, threshold=0.9)
    assert again is None or again.anchor != asked.anchor or not {m.faces[1] for m in again.members} & set(same)
    with pytest.raises(review.StaleQuestionError):
        review.answer_group(s, asked, [])  # its faces have moved since


def test_the_cli_asks_group_questions(store, tmp_path):
    from typer.testing import CliRunner

    from faceatlas.cli import app

    s, truth, ids = store
    db = str(tmp_path / "c.db")
    asked = CliRunner().invoke(
        app, ["review", "--db", db, "--threshold", "0.9", "--groups", "--limit", "1"], input="7 x\nall\n"
    )
    assert asked.exit_code == 0, asked.output
    assert "Which of these are this person?" in asked.output and "answer with numbers" in asked.output
    assert "answered 1 group questions" in asked.output
    assert len({c.id for c in s.clusters() if c.n_faces}) < 4  # something merged


def strangers(n_people: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mostly one-photo people in 64-d, far apart: a library of strangers."""
    rng = np.random.default_rng(seed)
    counts = rng.choice([1, 1, 1, 2, 3], size=n_people)
    centres = rng.normal(size=(n_people, 64))
    truth = np.repeat(np.arange(n_people), counts)
    x = centres[truth] / np.linalg.norm(centres[truth], axis=1, keepdims=True)
    x = x + 0.25 * rng.normal(size=x.shape) / 8
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), truth


def test_the_calibration_follows_the_answers_and_keeps_to_the_cards_curve_without_them():
    from faceatlas.clustering.questions import MIN_SLOPE, Calibration

    plain = Calibration.fit([], threshold=0.6, scale=0.02)
    assert plain.curve("merge") == (0.0, 1.0)
    assert plain.chance("merge", 0.6, 0.6, 0.02) == pytest.approx(0.5)
    nos = [("merge", 0.59, False)] * 40 + [("merge", 0.62, True)] * 5
    learned = Calibration.fit(nos, threshold=0.6, scale=0.02)
    assert learned.chance("merge", 0.59, 0.6, 0.02) < 0.1 < plain.chance("merge", 0.59, 0.6, 0.02)
    assert learned.curve("member") == (0.0, 1.0)  # one kind's answers leave the others alone
    few = Calibration.fit(nos[:2], threshold=0.6, scale=0.02)  # a couple of answers bend it a little
    assert learned.chance("merge", 0.59, 0.6, 0.02) < few.chance("merge", 0.59, 0.6, 0.02) < 0.5
    mixed = [("member", 0.6, True), ("member", 0.6, False), ("member", 0.7, False)] * 10
    assert Calibration.fit(mixed, threshold=0.6, scale=0.02).curve("member")[1] >= MIN_SLOPE  # never decreasing


def test_a_group_question_takes_intruders_out_of_an_impure_cluster():
    from faceatlas.clustering.questions import plan_group

    x, truth = people(2, 4)
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 1])  # cluster 0 holds a face of the other person
    asked = plan_group(x, labels, threshold=0.9, scale=0.02)
    assert asked is not None and "member" in asked.kinds
    doubt = {row: p for kind, row, p in zip(asked.kinds, asked.rows, asked.p_same, strict=True) if kind == "member"}
    assert min(doubt, key=doubt.__getitem__) == 4 and asked.labels[asked.kinds.index("member")] == 0
    assert asked.anchor_row not in doubt  # the face shown for the person is not asked about
    start = np.array([0, 0, 0, 0, 0, 1, 1, 1])
    run = group_review_run(x, truth, start, threshold=0.9, scale=0.02, budget=10)
    # one question takes it out (two answers: the tick that differs from the rest), then it joins its person
    assert run.reached[0.99] is not None and run.reached[0.99] <= 4 and run.curve[-1] == pytest.approx(1.0)


def test_on_a_library_of_strangers_group_questions_split_impure_clusters_before_naming_would():
    x, truth = strangers()
    start = truth.copy()
    rng = np.random.default_rng(1)
    order = rng.permutation(truth.max() + 1)
    for a, b in zip(order[:24:2], order[1:24:2], strict=True):
        start[truth == b] = a  # twelve clusters of two strangers each
    group = group_review_run(x, truth, start, threshold=0.5, scale=0.05, budget=300)
    named = name_every_cluster(truth, start, budget=300)
    assert group.reached[0.99] is not None and named.reached[0.99] is not None
    assert group.reached[0.99] < named.reached[0.99]


@pytest.fixture
def impure(collection_target):  # a SQLite file, and a PostgreSQL schema (tests/conftest.py)
    x, truth = people(2, 4)
    with CollectionStore.open(collection_target) as s:
        s.bind_model(ModelTag("fake", "1", DIM))
        s.add_photos([NewPhoto(f"{i}.jpg", "/p", f"{i:064d}", 1, 1, 400, 300, [face(0, v)]) for i, v in enumerate(x)])
        ids = s.face_table().face_ids.tolist()
        s.set_clusters(ids, [0, 0, 0, 0, 0, 0, 1, 1])  # two of B's four faces grouped with A
        yield s, truth, ids


def test_a_group_answer_takes_intruders_out_keeps_them_apart_from_the_person_only_and_is_remembered(impure):
    s, truth, ids = impure
    asked = review.group_question(s, threshold=0.9)
    assert asked is not None
    person = truth[ids.index(asked.anchor)]
    members = [m for m in asked.members if m.kind == "member"]
    assert {ids.index(m.faces[0]) for m in members} >= {4, 5} and all(m.faces[1] == asked.anchor for m in members)
    same = [f for f in asked.candidates if truth[ids.index(f)] == person]
    review.answer_group(s, asked, same)
    a_cluster = s.face(asked.anchor).cluster
    assert [s.face(ids[k]).cluster == a_cluster for k in range(4)] == [True] * 4
    assert all(s.face(ids[k]).cluster in (None, -1) or s.face(ids[k]).cluster != a_cluster for k in (4, 5))
    _, cannot = s.constraints()
    apart = {tuple(sorted(p)) for p in cannot.tolist()}
    assert (min(ids[4], ids[5]), max(ids[4], ids[5])) not in apart  # B's two faces may still be put together
    assert any(ids[4] in p and asked.anchor in p for p in apart)
    remembered = s.review_answers("fake-1")
    expected = [("member" if m.kind == "member" else "group", m.similarity, review.candidate_face(m) in same)
                for m in asked.members]  # fmt: skip
    assert [(k, round(v, 6), y) for k, v, y in sorted(remembered)] == [(k, round(v, 6), y) for k, v, y in sorted(expected)]
    assert review._planner_inputs(s, 0.9, None, None, False).calibration.curve("member") != (0.0, 1.0)
    cluster_collection(s, FaceClusterer(threshold=0.9), full=True)
    assert len({s.face(ids[k]).cluster for k in range(4, 8)}) == 1  # B is one person again, apart from A
    assert s.face(ids[4]).cluster != s.face(ids[0]).cluster


def test_review_answers_are_checked_kept_per_model_and_the_latest_kept(impure):
    s, *_ = impure
    with pytest.raises(review.InvalidCorrectionError):
        s.record_review_answers([("guess", 0.5, True)], "fake-1")
    with pytest.raises(review.InvalidCorrectionError):
        s.record_review_answers([("merge", float("nan"), True)], "fake-1")
    assert s.record_review_answers([("merge", 0.1 * k, k % 2 == 0) for k in range(5)], "fake-1") == 5
    s.record_review_answers([("member", 0.9, True)], "other-2")
    assert [kind for kind, *_ in s.review_answers("fake-1")] == ["merge"] * 5
    assert len(s.review_answers("fake-1", limit=3)) == 3 and s.review_answers("other-2") == [("member", 0.9, True)]
    review.answer(s, review.review_queue(s, limit=1, threshold=0.9)[0], "no")  # a standalone answer is kept too
    assert len(s.review_answers("fake-1")) == 6


def test_two_big_clusters_of_one_person_are_found_though_their_faces_nearest_are_all_their_own():
    from faceatlas.clustering.questions import GROUP_FACE_NEIGHBOURS, _single_links, plan_group

    rng = np.random.default_rng(5)
    per = GROUP_FACE_NEIGHBOURS + 4
    centre, offset = np.eye(DIM)[0], 0.08 * np.eye(DIM)[1]
    halves = [centre + offset, centre - offset]
    x = np.concatenate([h + 0.003 * rng.normal(size=(per, DIM)) for h in halves] + [np.eye(DIM)[2:6]])
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    labels = np.array([0] * per + [1] * per + [2, 3, 4, 5])
    own = (x[:per] @ x[:per].T)[0, 1:].min() > (x[:per] @ x[per : 2 * per].T).max()
    assert own  # each face's nearest faces are all of its own cluster
    lo, hi, link = _single_links(x, np.arange(len(x)), labels, 6)
    pair = np.flatnonzero((lo == 0) & (hi == 1))
    assert len(pair) == 1 and link[pair[0]] == pytest.approx(float((x[:per] @ x[per : 2 * per].T).max()), abs=1e-5)
    asked = plan_group(x, labels, threshold=float(link[pair[0]]) - 0.01, scale=0.01)
    assert asked is not None and {asked.anchor, *asked.labels} >= {0, 1}
