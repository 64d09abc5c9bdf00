"""``index_folder_ray`` / ``faceatlas index --ray``: the collection a Ray Data pipeline builds is the
one the single-process index builds, and a job interrupted anyhow resumes with nothing twice.

Against a real local Ray cluster (2 CPUs, started once for the module) and the real default
models, on a few small real face photos (installed sample images, plus LFW ones when
../shared/data is present), a face-less photo and a corrupt file.
"""

from __future__ import annotations

import functools
import os
import pickle
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceatlas.collection import CollectionStore, index_folder
from faceatlas.errors import ClusterError, ModelError

ray = pytest.importorskip("ray", reason='Ray not installed: pip install "faceatlas[ray]"')
pytest.importorskip("ray.data", reason='Ray Data not installed: pip install "faceatlas[ray]"')

from faceatlas.collection import ray_index
from faceatlas.collection.ray_index import index_folder_ray

TESTS = Path(__file__).resolve().parent
MAGENTA = (255, 0, 255)  # the colour of the face-less photo the crashing analyzers trip on
LFW = TESTS.parent.parent / "shared" / "data" / "lfw_devtest" / "images"


# --- analyzers the actors build (by reference: the workers import this module, see ray_cluster) ---


def _tripped(image: np.ndarray) -> bool:
    return bool((image == MAGENTA).all())


class CrashingAnalyzer:
    """The default analyzer, except that the magenta photo kills its actor's process (as a decoder
    crash or the kernel's OOM killer would): every time, or only the first (``once``: a marker file)."""

    def __init__(self, marker: str | None = None) -> None:
        from faceatlas.pipeline import FaceAnalyzer

        self.real = FaceAnalyzer()
        self.embedder = self.real.embedder
        self.marker = marker

    def analyze(self, image: np.ndarray) -> list:
        if _tripped(image):
            if self.marker is None:
                os._exit(3)
            if not os.path.exists(self.marker):
                Path(self.marker).touch()
                os._exit(3)
        return self.real.analyze(image)


class BrokenModel:
    """An analyzer whose model cannot run: a ModelError, which ends the job (every photo would fail)."""

    def __init__(self) -> None:
        from faceatlas.pipeline import FaceAnalyzer

        self.embedder = FaceAnalyzer().embedder

    def analyze(self, image: np.ndarray) -> list:
        from faceatlas.errors import ModelError

        raise ModelError("the model file is damaged (test)")


# --- the cluster, the photos, the reference collection -------------------------------------------------


@pytest.fixture(scope="module")
def ray_cluster():
    """One real local Ray cluster for the module (starting one costs seconds). Its workers find
    this test module on PYTHONPATH (the analyzers above are pickled by reference)."""
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), saved]))
    try:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory, grace_hopper_path) -> Path:
    skimage_data = pytest.importorskip("skimage.data")
    folder = tmp_path_factory.mktemp("photos")
    Image.fromarray(skimage_data.astronaut()).resize((256, 256)).save(folder / "astronaut.png")
    (folder / "people").mkdir()
    Image.open(grace_hopper_path).reduce(2).save(folder / "people" / "grace.jpg")
    Image.new("RGB", (64, 48), MAGENTA).save(folder / "magenta.png")  # no face
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")  # unreadable: stored as such
    if LFW.is_dir():  # a few more real faces when the development data is here
        for path in sorted(LFW.glob("*/*.jpg"))[:4]:
            shutil.copy(path, folder / "people" / path.name)
    return folder


def snapshot(store: CollectionStore) -> dict[str, tuple]:
    """Every photo by path: its bytes, status and size, and its faces (box, score, embedding) in order."""
    table = store.face_table()
    embedding_of = dict(zip(table.face_ids.tolist(), table.embeddings, strict=True))
    shot = {}
    for photo in store.photos():
        faces = tuple((f.idx, f.box, f.score, embedding_of[f.id]) for f in store.faces_of_photo(photo.id))
        shot[photo.path] = (photo.sha256, photo.status, photo.width, photo.height, photo.n_faces, faces)
    return shot


def assert_same_collection(got: dict[str, tuple], want: dict[str, tuple]) -> None:
    assert sorted(got) == sorted(want)
    for path, (*head, faces) in got.items():
        *want_head, want_faces = want[path]
        assert head == want_head, path
        assert len(faces) == len(want_faces), path
        for (idx, box, score, vector), (w_idx, w_box, w_score, w_vector) in zip(faces, want_faces, strict=True):
            assert idx == w_idx
            np.testing.assert_allclose(box, w_box, atol=1e-3, err_msg=path)
            assert score == pytest.approx(w_score, abs=1e-5)
            np.testing.assert_allclose(vector, w_vector, atol=1e-5, err_msg=path)


@pytest.fixture(scope="module")
def reference(photos, tmp_path_factory):
    """The single-process index of ``photos``: (report, snapshot)."""
    db = tmp_path_factory.mktemp("reference") / "c.db"
    with CollectionStore.open(db) as store:
        report = index_folder(photos, store, workers=1)
        return report, snapshot(store)


def counts(report) -> tuple[int, ...]:
    return (report.new, report.changed, report.unchanged, report.moved, report.removed, report.unreadable)


# --- tests ------------------------------------------------------------------------------------------


def test_an_address_that_does_not_answer_is_a_clear_error_quickly_and_writes_nothing(photos, tmp_path):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    db = tmp_path / "c.db"
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        started = time.monotonic()
        with CollectionStore.open(db) as store, pytest.raises(ClusterError, match="no Ray cluster answers at"):
            index_folder_ray(photos, store, address=address, connect_timeout_s=5)
        assert time.monotonic() - started < 10
        with CollectionStore.open(db) as store:
            assert store.photos() == [] and store.model() is None  # not even the model was bound
    with CollectionStore.open(db) as store, pytest.raises(ClusterError, match="host:port"):
        index_folder_ray(photos, store, address="no-port-here")


def test_the_ray_index_equals_the_local_one_and_a_rerun_adds_nothing(ray_cluster, photos, reference, tmp_path):
    want_report, want = reference
    ticks: list[tuple[int, int]] = []
    lines: list[str] = []
    with CollectionStore.open(tmp_path / "c.db") as store:
        report = index_folder_ray(
            photos, store, workers=2, batch_size=1, progress=lambda d, t: ticks.append((d, t)), log=lines.append
        )
        assert_same_collection(snapshot(store), want)
        assert counts(report) == counts(want_report) and report.faces_added == want_report.faces_added
        assert sorted(report.problems) == sorted(want_report.problems)  # the corrupt file, as locally
        assert any("broken.jpg" in path and "unreadable" in why for path, why in report.problems)
        total = len(want)
        assert [d for d, _ in ticks] == list(range(1, total + 1)) and {t for _, t in ticks} == {total}
        assert any("this process's Ray connection" in line for line in lines)

        again = index_folder_ray(photos, store, workers=2)
        assert counts(again) == (0, 0, total, 0, 0, 0) and again.faces_added == 0
        assert_same_collection(snapshot(store), want)


def test_an_actor_that_dies_once_is_restarted_and_its_batch_retried(ray_cluster, photos, reference, tmp_path):
    factory = functools.partial(CrashingAnalyzer, marker=str(tmp_path / "crashed"))
    with CollectionStore.open(tmp_path / "c.db") as store:
        report = index_folder_ray(photos, store, factory, workers=2, batch_size=2)
        assert (tmp_path / "crashed").exists()  # it did die
        assert counts(report) == counts(reference[0])
        assert_same_collection(snapshot(store), reference[1])


def test_a_job_whose_actor_keeps_dying_ends_clearly_then_a_rerun_resumes(
    ray_cluster, photos, reference, tmp_path, monkeypatch
):
    monkeypatch.setattr(ray_index, "_TASK_RETRIES", 1)  # each retry restarts an actor: seconds
    want = reference[1]
    with CollectionStore.open(tmp_path / "c.db") as store:
        with pytest.raises(ClusterError, match="run again to resume"):
            index_folder_ray(photos, store, CrashingAnalyzer, workers=2, batch_size=1)
        before = snapshot(store)
        assert "magenta.png" not in before
        assert_same_collection(before, {path: want[path] for path in before})  # what was stored is whole

        report = index_folder_ray(photos, store, workers=2, batch_size=1)
        assert report.new + report.unreadable == len(want) - len(before)  # only what was missing
        assert report.unchanged == len(before)
        assert_same_collection(snapshot(store), want)


def test_a_job_stopped_by_the_driver_keeps_what_it_stored_and_resumes(ray_cluster, photos, reference, tmp_path):
    class Stop(Exception):
        pass

    def stop_after_two(done: int, total: int) -> None:
        if done == 2:
            raise Stop

    want = reference[1]
    with CollectionStore.open(tmp_path / "c.db") as store:
        with pytest.raises(Stop):  # the caller's own error passes as it is
            index_folder_ray(photos, store, workers=2, batch_size=1, write_batch=1, progress=stop_after_two)
        stored = len(store.photos())
        assert stored == 2
        report = index_folder_ray(photos, store, workers=2)  # the stopped job's actors were released
        assert report.unchanged == stored and report.new + report.unreadable == len(want) - stored
        assert_same_collection(snapshot(store), want)


def test_a_model_that_cannot_run_ends_the_job_with_the_model_error(ray_cluster, photos, tmp_path):
    with CollectionStore.open(tmp_path / "c.db") as store:
        with pytest.raises(ModelError, match="damaged"):
            index_folder_ray(photos, store, BrokenModel, workers=1)
        assert store.photos() == []


def test_without_ray_installed_the_error_says_what_to_install(photos, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were absent
    monkeypatch.setitem(sys.modules, "ray.data", None)
    with CollectionStore.open(tmp_path / "c.db") as store, pytest.raises(ClusterError, match=r"faceatlas\[ray\]"):
        index_folder_ray(photos, store)
    with CollectionStore.open(tmp_path / "c.db") as store:
        assert store.photos() == []


def test_an_analyzer_object_is_refused(photos, tmp_path):
    from faceatlas.collection import CollectionError
    from faceatlas.pipeline import FaceAnalyzer

    with CollectionStore.open(tmp_path / "c.db") as store, pytest.raises(CollectionError, match="factory"):
        index_folder_ray(photos, store, FaceAnalyzer())


def test_an_actor_on_a_node_without_the_folder_says_so(tmp_path, monkeypatch):
    """What a node without the shared folder answers (one machine cannot host such a node)."""
    monkeypatch.setenv("FACEATLAS_NUM_THREADS", "1")  # what the actor sets in its process: undone after the test
    missing = tmp_path / "not-mounted-here"
    actor = ray_index._AnalyseBatch(None, str(missing), True)
    batch = {"rel": np.array(["a.jpg"]), "path": np.array([str(missing / "a.jpg")]), "kind": np.array(["new"])}
    (sent,) = actor(batch)["outcome"]
    fatal = pickle.loads(sent)
    assert isinstance(fatal.error, ClusterError) and "every node mounts at the same path" in str(fatal.error)


def test_cli_index_with_ray(ray_cluster, photos, reference, tmp_path):
    """``faceatlas index --ray auto`` in another process, given the cluster by ``$RAY_ADDRESS``."""
    db = tmp_path / "c.db"
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    command = [sys.executable, "-m", "faceatlas.cli", "index", str(photos), "--db", str(db), "--ray", "auto"]
    done = subprocess.run(
        [*command, "--workers", "2"], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 3, done.stderr  # the corrupt file is a problem: exit 3, as without --ray
    assert f"{reference[0].new} new" in done.stdout and "broken.jpg" in done.stdout
    assert "ray: connected to the cluster at" in done.stderr
    with CollectionStore.open(db) as store:
        assert_same_collection(snapshot(store), reference[1])


def test_the_ray_index_into_postgres_equals_the_local_one(ray_cluster, photos, reference, pg_url):
    """The shared store a cluster needs: the driver writes a PostgreSQL collection (issue 14)."""
    want_report, want = reference
    with CollectionStore.open(pg_url) as store:
        report = index_folder_ray(photos, store, workers=2, batch_size=1)
        assert counts(report) == counts(want_report) and report.faces_added == want_report.faces_added
        assert_same_collection(snapshot(store), want)
        again = index_folder_ray(photos, store, workers=2)
        assert counts(again) == (0, 0, len(want), 0, 0, 0) and again.faces_added == 0
