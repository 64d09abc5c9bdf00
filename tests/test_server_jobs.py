"""The service's background jobs: one worker thread, FIFO, progress, cancelling, and the index and
cluster jobs over a real collection file (a fake analyzer reads its faces from the pixels, as in
test_collection.py, so no model loads)."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceatlas.collection import CollectionError, CollectionStore, grouping
from faceatlas.errors import FaceAtlasError
from faceatlas.models.cards import DLIB_RESNET_CARD
from faceatlas.server.jobs import (
    INTERNAL_ERROR,
    Job,
    JobCancelled,
    JobContext,
    JobManager,
    JobManagerClosedError,
    QueueFullError,
    cluster_job,
    index_job,
)
from faceatlas.types import Box, Face, Landmarks, Pose, Quality

DIM = 128
DIRECTIONS = np.linalg.qr(np.random.default_rng(1).normal(size=(DIM, DIM)))[0].astype(np.float32)
SIDE = 64
TIMEOUT = 5.0  # generous upper bound for waits; every test takes far less when things work


# --- helpers ---------------------------------------------------------------------------------------


class FakeEmbedder:
    card = DLIB_RESNET_CARD
    dim = DIM


class FakeAnalyzer:
    """A photo's colour says what is in it: red // 50 faces, of people starting at green // 25."""

    embedder = FakeEmbedder()

    def analyze(self, image: np.ndarray) -> list[Face]:
        red, green, _ = (int(v) for v in image[SIDE // 2, SIDE // 2])
        return [self._face(k, round(green / 25)) for k in range(round(red / 50))]

    @staticmethod
    def _face(k: int, who: int) -> Face:
        size = 30 - 8 * k
        vector = DIRECTIONS[(who + k) % 4] + 0.05 * DIRECTIONS[16 + k]
        return Face(
            box=Box(2 + 10 * k, 2, 2 + 10 * k + size, 2 + size),
            score=0.99,
            landmarks=Landmarks(np.full((5, 2), 10.0)),
            pose=Pose(0.0, 0.0, 0.0),
            quality=Quality(0.9, 1, 1, 1, 1, 1),
            embedding=(vector / np.linalg.norm(vector)).astype(np.float32),
        )


class GatedAnalyzer(FakeAnalyzer):
    """Holds its ``stop_at``-th photo until ``go`` is set, having set ``reached``."""

    def __init__(self, stop_at: int, reached: threading.Event, go: threading.Event) -> None:
        self.calls, self.stop_at, self.reached, self.go = 0, stop_at, reached, go

    def analyze(self, image: np.ndarray) -> list[Face]:
        self.calls += 1
        if self.calls == self.stop_at:
            self.reached.set()
            assert self.go.wait(TIMEOUT)
        return super().analyze(image)


def photo(path: Path, faces: int, who: int, tag: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.zeros((SIDE, SIDE, 3), np.uint8)
    pixels[...] = (50 * faces, 25 * who, tag)
    Image.fromarray(pixels).save(path)


def make_tree(root: Path, n: int = 6) -> dict[str, int]:
    """``n`` readable photos (0 to 3 faces each) and one broken one; returns {path: faces}."""
    expected = {f"{'sub/' if i % 2 else ''}{i:02d}.png": i % 4 for i in range(n)}
    for i, (rel, faces) in enumerate(expected.items()):
        photo(root / rel, faces, who=i % 3, tag=i)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return expected


def faces_per_photo(db: Path) -> dict[str, int]:
    with CollectionStore.open(db, create=False) as store:
        return {p.path: p.n_faces for p in store.photos() if p.status == "ok"}


def face_keys(db: Path) -> Counter:
    """Every face as (photo path, idx, box): what two indexings of one folder must agree on."""
    with CollectionStore.open(db, create=False) as store:
        return Counter((p.path, f.idx, f.box) for p in store.photos() for f in store.faces_of_photo(p.id))


def wait_until(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


def gate_job(started: threading.Event, release: threading.Event) -> Callable[[JobContext], dict]:
    """A job that says it started, then holds the worker until ``release``."""

    def fn(ctx: JobContext) -> dict:
        started.set()
        assert release.wait(TIMEOUT)
        return {"gate": True}

    return fn


def until_cancelled(ctx: JobContext) -> dict:
    while True:
        ctx.check()
        time.sleep(0.005)


@pytest.fixture
def manager() -> Iterator[JobManager]:
    jobs = JobManager()
    yield jobs
    assert jobs.shutdown(timeout=TIMEOUT)


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    root = tmp_path / "photos"
    return root, make_tree(root)


# --- the manager ----------------------------------------------------------------------------------


def test_jobs_run_one_at_a_time_in_submission_order(manager):
    lock, log, running, overlap = threading.Lock(), [], [0], [0]

    def job(name: str) -> Callable[[JobContext], dict]:
        def fn(ctx: JobContext) -> dict:
            with lock:
                running[0] += 1
                overlap[0] = max(overlap[0], running[0])
                log.append(name)
            time.sleep(0.01)
            with lock:
                running[0] -= 1
            return {"name": name}

        return fn

    started, release = threading.Event(), threading.Event()
    first = manager.submit("gate", {}, gate_job(started, release))
    assert started.wait(TIMEOUT)
    jobs = [manager.submit("step", {"i": i}, job(f"job{i}")) for i in range(5)]
    assert [manager.get(j.id).state for j in jobs] == ["queued"] * 5  # the worker is busy with the gate
    assert manager.get(first.id).state == "running"
    release.set()
    finished = [manager.wait(j.id, TIMEOUT) for j in jobs]
    assert log == [f"job{i}" for i in range(5)] and overlap[0] == 1
    assert [j.state for j in finished] == ["done"] * 5
    assert [j.result for j in finished] == [{"name": f"job{i}"} for i in range(5)]
    assert all(a.finished_at <= b.started_at for a, b in pairwise(finished))
    assert [j.id for j in manager.list()] == [j.id for j in reversed(jobs)] + [first.id]  # newest first


def test_progress_is_visible_from_another_thread_while_running(manager):
    reported, release = threading.Event(), threading.Event()

    def fn(ctx: JobContext) -> dict:
        ctx.progress(3, 10, "reading photos")
        ctx.progress(4, 10)  # no message: the last one stays
        reported.set()
        assert release.wait(TIMEOUT)
        return {"ok": 1}

    queued = manager.submit("work", {"folder": "/x"}, fn)
    assert queued.state == "queued" and queued.started_at is None and queued.created_at > 0
    assert reported.wait(TIMEOUT)
    seen = []
    reader = threading.Thread(target=lambda: seen.append(manager.get(queued.id)))
    reader.start()
    reader.join(TIMEOUT)
    (running,) = seen
    assert (running.state, running.done, running.total, running.message) == ("running", 4, 10, "reading photos")
    assert running.started_at is not None and running.finished_at is None and not running.finished
    release.set()
    done = manager.wait(queued.id, TIMEOUT)
    assert (done.state, done.result, done.error) == ("done", {"ok": 1}, None)
    assert running.state == "running"  # a snapshot does not move with the job
    done.result["ok"] = 2  # nor does changing a copy change the job
    done.params["folder"] = "/y"
    again = manager.get(queued.id)
    assert again.result == {"ok": 1} and again.params == {"folder": "/x"}
    assert again.to_dict()["result"] == {"ok": 1} and isinstance(again, Job)


def test_params_must_be_json_safe_and_are_copied(manager):
    params = {"folder": "/photos", "tags": ("a", "b")}
    job = manager.submit("work", params, lambda ctx: {})
    params["folder"] = "/elsewhere"
    assert manager.get(job.id).params == {"folder": "/photos", "tags": ["a", "b"]}
    for bad in ({"path": Path("/photos")}, {"x": float("nan")}, ["not", "a", "dict"]):
        with pytest.raises(TypeError, match="params"):
            manager.submit("work", bad, lambda ctx: {})
    with pytest.raises(ValueError, match="kind"):
        manager.submit("", {}, lambda ctx: {})


def test_cancel_a_queued_job(manager):
    started, release = threading.Event(), threading.Event()
    gate = manager.submit("gate", {}, gate_job(started, release))
    assert started.wait(TIMEOUT)
    ran = threading.Event()
    queued = manager.submit("work", {}, lambda ctx: ran.set())
    cancelled = manager.cancel(queued.id)
    assert cancelled.state == "cancelled" and cancelled.finished_at is not None and cancelled.started_at is None
    assert manager.get(queued.id).state == "cancelled"
    release.set()
    assert manager.wait(gate.id, TIMEOUT).state == "done"
    after = manager.submit("work", {}, lambda ctx: {})  # the worker went on past the cancelled job
    assert manager.wait(after.id, TIMEOUT).state == "done"
    assert not ran.is_set() and manager.get(queued.id).state == "cancelled"


def test_cancel_a_running_job(manager):
    job = manager.submit("loop", {}, until_cancelled)
    wait_until(lambda: manager.get(job.id).state == "running")
    asked = time.monotonic()
    answer = manager.cancel(job.id)
    assert answer.state == "running" and answer.cancel_requested  # asked, not yet stopped
    ended = manager.wait(job.id, TIMEOUT)
    assert time.monotonic() - asked < 0.5
    assert ended.state == "cancelled" and ended.error is None and ended.result is None and ended.finished_at
    assert manager.cancel(job.id) == ended  # finished: left as it is
    assert manager.cancel("no-such-job") is None


def test_a_job_that_finishes_without_checking_again_is_done(manager):
    asked, release = threading.Event(), threading.Event()

    def fn(ctx: JobContext) -> dict:
        asked.set()
        assert release.wait(TIMEOUT)
        return {"cancelled_seen": ctx.cancelled}

    job = manager.submit("work", {}, fn)
    assert asked.wait(TIMEOUT)
    manager.cancel(job.id)
    release.set()
    ended = manager.wait(job.id, TIMEOUT)
    assert (ended.state, ended.result, ended.cancel_requested) == ("done", {"cancelled_seen": True}, True)


class DiskOnFire(FaceAtlasError):
    pass


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (CollectionError("/x/c.db is not a faceatlas collection"), "CollectionError: /x/c.db is not a faceatlas collection"),
        (DiskOnFire("two lines\n  of message"), "DiskOnFire: two lines | of message"),
        (ValueError("workers must be at least 1"), "ValueError: workers must be at least 1"),
        (FileNotFoundError(2, "No such file or directory", "/x"), "FileNotFoundError: [Errno 2] No such file or directory: '/x'"),
        (RuntimeError("secret internals"), INTERNAL_ERROR),
        (KeyError("k"), INTERNAL_ERROR),
    ],
)  # fmt: skip
def test_a_failing_job_says_why_in_one_line(manager, caplog, error, expected):
    def fn(ctx: JobContext) -> dict:
        ctx.progress(1, 2)
        raise error

    with caplog.at_level(logging.INFO, logger="faceatlas.server"):
        job = manager.submit("work", {}, fn)
        ended = manager.wait(job.id, TIMEOUT)
    assert (ended.state, ended.error, ended.result, ended.done) == ("failed", expected, None, 1)
    assert "Traceback" not in ended.error and "\n" not in ended.error
    if expected == INTERNAL_ERROR:  # the details go to the log, with the traceback
        (record,) = [r for r in caplog.records if r.exc_info]
        assert record.name == "faceatlas.server" and job.id in record.getMessage()
    after = manager.submit("work", {}, lambda ctx: {"alive": True})  # the worker survived
    assert manager.wait(after.id, TIMEOUT).result == {"alive": True}


@pytest.mark.parametrize("returned", [{"path": Path("/x")}, {"x": float("inf")}, [1, 2]])
def test_a_result_that_cannot_be_sent_fails_the_job(manager, returned):
    job = manager.submit("work", {}, lambda ctx: returned)
    ended = manager.wait(job.id, TIMEOUT)
    assert (ended.state, ended.error, ended.result) == ("failed", INTERNAL_ERROR, None)


def test_queue_full():
    with JobManager(max_queued=2) as jobs:
        started, release = threading.Event(), threading.Event()
        jobs.submit("gate", {}, gate_job(started, release))
        assert started.wait(TIMEOUT)  # running: not waiting, so not counted
        waiting = [jobs.submit("work", {}, lambda ctx: {}) for _ in range(2)]
        with pytest.raises(QueueFullError, match="2 jobs are already waiting") as info:
            jobs.submit("work", {}, lambda ctx: {})
        assert isinstance(info.value, FaceAtlasError)
        assert len(jobs.list()) == 3  # the refused job left no trace
        jobs.cancel(waiting[0].id)
        extra = jobs.submit("work", {}, lambda ctx: {})  # a place came free
        release.set()
        assert jobs.wait(extra.id, TIMEOUT).state == "done"


def test_only_the_newest_finished_jobs_are_kept():
    with JobManager(max_jobs_kept=3) as jobs:
        started, release = threading.Event(), threading.Event()
        gate = jobs.submit("gate", {}, gate_job(started, release))
        assert started.wait(TIMEOUT)
        queued = [jobs.submit("work", {"i": i}, lambda ctx: {}) for i in range(5)]
        assert len(jobs.list()) == 6  # unfinished jobs are never dropped
        release.set()
        assert jobs.wait(queued[-1].id, TIMEOUT).state == "done"
        assert [j.params["i"] for j in jobs.list()] == [4, 3, 2]
        assert jobs.get(gate.id) is None and jobs.get(queued[1].id) is None
    with pytest.raises(ValueError, match="at least 1"):
        JobManager(max_jobs_kept=0)


def test_shutdown_cancels_everything_and_stops_the_thread():
    before = set(threading.enumerate())
    jobs = JobManager()
    running = jobs.submit("loop", {}, until_cancelled)
    (worker,) = set(threading.enumerate()) - before
    assert worker.daemon and worker.name == "faceatlas-jobs"
    wait_until(lambda: jobs.get(running.id).state == "running")
    queued = jobs.submit("work", {}, lambda ctx: {})
    t0 = time.monotonic()
    assert jobs.shutdown(timeout=TIMEOUT) is True
    assert time.monotonic() - t0 < 0.5 and not worker.is_alive()
    assert jobs.get(running.id).state == "cancelled"
    assert jobs.get(queued.id).state == "cancelled" and "shutting down" in jobs.get(queued.id).message
    with pytest.raises(JobManagerClosedError):
        jobs.submit("work", {}, lambda ctx: {})
    assert jobs.shutdown() is True  # again: harmless
    assert JobManager().shutdown() is True  # never started a thread


def test_job_cancelled_raised_by_the_job_itself_counts_as_cancelled(manager):
    def fn(ctx: JobContext) -> dict:
        raise JobCancelled("gave up: the folder went away")

    ended = manager.wait(manager.submit("work", {}, fn).id, TIMEOUT)
    assert (ended.state, ended.message) == ("cancelled", "gave up: the folder went away")


# --- the index and cluster jobs -------------------------------------------------------------------


def test_index_job_indexes_a_folder(manager, tree, tmp_path):
    root, expected = tree
    db = tmp_path / "c.db"
    job = manager.submit("index", {"folder": str(root)}, index_job(db, root, FakeAnalyzer))
    ended = manager.wait(job.id, TIMEOUT)
    assert ended.state == "done", ended.error
    assert ended.done == ended.total == len(expected) + 1  # every file, the broken one too
    result = ended.result
    assert result["root"] == str(root.resolve())
    assert (result["new"], result["unreadable"], result["faces_added"]) == (6, 1, sum(expected.values()))
    assert (result["changed"], result["unchanged"], result["moved"], result["removed"]) == (0, 0, 0, 0)
    assert result["problems_total"] == 1 and result["problems"][0]["path"] == "broken.jpg"
    assert result["problems"][0]["reason"].startswith("unreadable")
    assert "6 new" in ended.message
    assert faces_per_photo(db) == expected

    again = manager.wait(manager.submit("index", {}, index_job(db, root, FakeAnalyzer)).id, TIMEOUT)
    assert (again.result["unchanged"], again.result["new"], again.result["faces_added"]) == (7, 0, 0)
    assert again.done == again.total == 7


def test_index_job_of_a_missing_folder_fails_clearly(manager, tmp_path):
    job = manager.submit("index", {}, index_job(tmp_path / "c.db", tmp_path / "nowhere", FakeAnalyzer))
    ended = manager.wait(job.id, TIMEOUT)
    assert ended.state == "failed"
    assert ended.error.startswith("CollectionError: ") and "nowhere is not a folder" in ended.error


def test_cancelled_index_job_keeps_what_it_stored_and_a_rerun_resumes(manager, tmp_path):
    root = tmp_path / "photos"
    expected = make_tree(root, n=10)
    db, clean_db = tmp_path / "c.db", tmp_path / "clean.db"
    reached, go = threading.Event(), threading.Event()
    job = manager.submit("index", {}, index_job(db, root, lambda: GatedAnalyzer(4, reached, go)))
    assert reached.wait(TIMEOUT)  # the 4th photo is being analysed
    assert manager.get(job.id).done == 3
    manager.cancel(job.id)
    go.set()
    ended = manager.wait(job.id, TIMEOUT)
    assert ended.state == "cancelled" and ended.done == 4 and ended.total == 11
    assert "index the folder again to resume" in ended.message

    partial = faces_per_photo(db)  # the photo in hand was stored; nothing after it; none half there
    assert sorted(partial) == sorted(expected)[:4]
    assert all(expected[path] == n for path, n in partial.items())

    rerun = manager.wait(manager.submit("index", {}, index_job(db, root, FakeAnalyzer)).id, TIMEOUT)
    assert rerun.state == "done" and rerun.done == rerun.total == 11
    assert (rerun.result["unchanged"], rerun.result["new"], rerun.result["unreadable"]) == (4, 6, 1)
    clean = manager.wait(manager.submit("index", {}, index_job(clean_db, root, FakeAnalyzer)).id, TIMEOUT)
    assert clean.state == "done"
    resumed = face_keys(db)
    assert resumed == face_keys(clean_db) and max(resumed.values()) == 1  # same faces, none twice
    assert sum(resumed.values()) == sum(expected.values())


def test_cluster_job(manager, tree, tmp_path):
    root, expected = tree
    db = tmp_path / "c.db"
    assert manager.wait(manager.submit("index", {}, index_job(db, root, FakeAnalyzer)).id, TIMEOUT).state == "done"
    n_faces = sum(expected.values())

    first = manager.wait(manager.submit("cluster", {"full": False}, cluster_job(db, False)).id, TIMEOUT)
    assert first.state == "done", first.error
    result = first.result
    assert set(result) == {"faces", "placed", "clusters", "unassigned", "new_clusters", "dated_out"}
    assert (result["faces"], result["placed"]) == (n_faces, n_faces)
    assert 1 <= result["clusters"] == result["new_clusters"] <= n_faces
    with CollectionStore.open(db, create=False) as store:
        clusters = store.clusters()
        assert len(clusters) == result["clusters"]
        assert sum(c.n_faces for c in clusters) + result["unassigned"] == n_faces
    assert first.done == first.total == n_faces and "clusters" in first.message

    second = manager.wait(manager.submit("cluster", {}, cluster_job(db, False)).id, TIMEOUT).result
    assert (second["faces"], second["placed"], second["new_clusters"]) == (n_faces, 0, 0)
    full = manager.wait(manager.submit("cluster", {}, cluster_job(db, True)).id, TIMEOUT).result
    assert (full["faces"], full["placed"]) == (n_faces, n_faces)


def test_a_cluster_job_prepares_the_review_queue_so_its_first_question_does_not_search(
    manager, tree, tmp_path, monkeypatch
):
    from faceatlas.clustering import graph, questions
    from faceatlas.collection import review

    root, _ = tree
    db = tmp_path / "c.db"
    assert manager.wait(manager.submit("index", {}, index_job(db, root, FakeAnalyzer)).id, TIMEOUT).state == "done"
    questions._NEIGHBOURS_CACHE.clear()
    ended = manager.wait(manager.submit("cluster", {}, cluster_job(db, False)).id, TIMEOUT)
    assert ended.state == "done" and questions._NEIGHBOURS_CACHE  # the faces' neighbours, searched
    searches = []
    monkeypatch.setattr(graph, "knn_graph", lambda *a, **k: searches.append(a) or (_ for _ in ()).throw(AssertionError))
    with CollectionStore.open(db, create=False) as store:
        review.group_question(store)
    assert searches == []  # the review page's first question reused them


def test_cluster_job_of_a_missing_collection_fails_and_creates_nothing(manager, tmp_path):
    ended = manager.wait(manager.submit("cluster", {}, cluster_job(tmp_path / "none.db", False)).id, TIMEOUT)
    assert ended.state == "failed" and ended.error.startswith("CollectionError: no collection at")
    assert not (tmp_path / "none.db").exists()


def test_a_cluster_job_cancelled_while_clustering_writes_nothing(manager, tree, tmp_path, monkeypatch):
    root, _ = tree
    db = tmp_path / "c.db"
    assert manager.wait(manager.submit("index", {}, index_job(db, root, FakeAnalyzer)).id, TIMEOUT).state == "done"
    reached, go = threading.Event(), threading.Event()

    class SlowClusterer(grouping.FaceClusterer):
        def fit(self, *args, **kwargs):
            reached.set()
            assert go.wait(TIMEOUT)
            return super().fit(*args, **kwargs)

    monkeypatch.setattr(grouping, "FaceClusterer", SlowClusterer)
    job = manager.submit("cluster", {}, cluster_job(db, False))
    assert reached.wait(TIMEOUT)
    manager.cancel(job.id)
    go.set()
    assert manager.wait(job.id, TIMEOUT).state == "cancelled"
    with CollectionStore.open(db, create=False) as store:
        assert store.clusters() == [] and len(store.cluster_faces(None)) == len(store.face_table())
