"""faceatlas.parallel: how many workers, ordered results from a pool this process helps, and the
folder commands giving the same answers on every core as in one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from face_photos import varied_photos
from PIL import Image

from faceatlas import parallel
from faceatlas.errors import InvalidArgumentError
from faceatlas.parallel import WorkerError, default_workers, map_ordered, parse_bytes, resolve_workers


def test_sizes_parse_as_binary_units():
    assert parse_bytes("4G") == 4 << 30
    assert parse_bytes("1500M") == 1500 << 20
    assert parse_bytes("2.5GB") == int(2.5 * (1 << 30))
    assert parse_bytes(" 512 MiB ") == 512 << 20
    assert parse_bytes("800000000") == 800_000_000
    for bad in ("", "lots", "4X", "-1G", "1.2.3G"):
        with pytest.raises(InvalidArgumentError, match="size such as 4G"):
            parse_bytes(bad)


def test_workers_are_cores_within_the_memory_budget_and_the_work(monkeypatch):
    monkeypatch.setattr(parallel, "usable_cores", lambda: 8)
    monkeypatch.setenv(parallel.MEMORY_BUDGET_ENV, "64G")
    assert default_workers() == 8  # every core
    assert default_workers(images=10_000) == 8
    assert default_workers(images=3 * parallel.MIN_IMAGES_PER_WORKER) == 3  # no more than the work needs
    assert default_workers(images=5) == 1  # a few images: here, no process started
    monkeypatch.setenv(parallel.MEMORY_BUDGET_ENV, f"{3 * parallel.WORKER_BYTES + 1}")
    assert default_workers(images=10_000) == 3  # the budget holds three workers
    monkeypatch.setenv(parallel.MEMORY_BUDGET_ENV, "1M")
    assert default_workers(images=10_000) == 1  # never fewer than one
    monkeypatch.setenv(parallel.MEMORY_BUDGET_ENV, "a lot")
    with pytest.raises(InvalidArgumentError, match=parallel.MEMORY_BUDGET_ENV):
        default_workers()
    monkeypatch.delenv(parallel.MEMORY_BUDGET_ENV)
    monkeypatch.setattr(parallel, "available_memory", lambda: 4 * parallel.WORKER_BYTES)
    assert default_workers() == 2  # half of what is free
    assert resolve_workers(5, images=1) == 5  # asked for: as asked
    with pytest.raises(InvalidArgumentError, match="at least 1"):
        resolve_workers(0)


# Picklable pieces for the pools (spawned workers import this module to find them).
class Tagger:
    """A worker's state: knows which process built it."""

    def __init__(self) -> None:
        self.pid = os.getpid()


def tag(state: Tagger, item: int) -> tuple[int, int, int]:
    return item, item * item, state.pid


def die_on_seven(state: Tagger, item: int) -> int:
    if item == 7 and str(os.getpid()) != os.environ["TEST_PARALLEL_PARENT"]:
        os._exit(3)  # a worker killed (as by the OOM killer): no exception to send back
    return item


def test_results_come_in_order_from_the_workers_and_this_process():
    results = list(map_ordered(Tagger, tag, range(200), workers=3))
    assert [(i, sq) for i, sq, _ in results] == [(i, i * i) for i in range(200)]
    pids = {pid for *_, pid in results}
    assert os.getpid() in pids  # this process helped instead of waiting
    assert len(pids - {os.getpid()}) >= 1  # and spawned workers did the rest
    assert list(map_ordered(Tagger, tag, [], workers=2)) == []


def test_one_worker_runs_here_with_the_state_given():
    local = Tagger()
    local.pid = -1  # not built by the factory: the one passed is used
    assert [pid for *_, pid in map_ordered(Tagger, tag, range(5), workers=1, local=local)] == [-1] * 5


def test_a_worker_that_dies_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("TEST_PARALLEL_PARENT", str(os.getpid()))  # the workers inherit it
    with pytest.raises(WorkerError, match="fewer workers"):
        list(map_ordered(Tagger, die_on_seven, [7] * 12, workers=2))


# --- the commands -----------------------------------------------------------------------------------


def _photos(folder: Path, n: int) -> list[Path]:
    """``n`` real-face photos and one broken file, ``05_broken.jpg``, among them."""
    paths = varied_photos(folder, n)
    (folder / "05_broken.jpg").write_bytes(b"not a jpeg")
    return paths


def _cli(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "faceatlas.cli", *map(str, args)], capture_output=True, text=True, check=False
    )


def test_embed_on_every_core_prints_what_one_process_prints(tmp_path):
    folder = tmp_path / "photos"
    _photos(folder, 18)
    one = _cli("embed", folder, "--workers", "1")
    many = _cli("embed", folder, "--workers", "3")  # this process and two spawned
    assert one.returncode == many.returncode == 3, one.stderr + many.stderr  # the broken file: reported
    lines_one = [json.loads(line) for line in one.stdout.splitlines()]
    lines_many = [json.loads(line) for line in many.stdout.splitlines()]
    assert [r["path"] for r in lines_many] == sorted(str(p) for p in folder.iterdir())  # input order
    assert [r["path"] for r in lines_one] == [r["path"] for r in lines_many]
    broken = [r for r in lines_many if "error" in r]
    assert [Path(r["path"]).name for r in broken] == ["05_broken.jpg"] and "05_broken.jpg" in many.stderr
    found = 0
    for a, b in zip(lines_one, lines_many, strict=True):
        assert ("error" in a) == ("error" in b)
        assert len(a.get("faces", [])) == len(b.get("faces", []))
        for fa, fb in zip(a.get("faces", []), b.get("faces", []), strict=True):
            assert np.allclose(fa["box"], fb["box"], atol=0.05)
            assert float(np.dot(fa["embedding"], fb["embedding"])) > 0.9999
            found += 1
    assert found >= 17  # a face in (almost) every photo


def test_enroll_many_in_workers_enrols_what_one_process_enrols(tmp_path):
    from faceatlas.gallery.gallery import Gallery

    folder = tmp_path / "photos"
    paths = _photos(folder, 8)
    people = {"astronaut": [str(p) for p in paths[0::2]], "grace": [str(p) for p in paths[1::2]], "nobody": []}
    reports, matrices = {}, {}
    for workers in (1, 2):
        with Gallery.open(tmp_path / f"g{workers}.db") as gallery:
            reports[workers] = dict(gallery.enroll_many(people, workers=workers))
            matrices[workers] = gallery.store.face_matrix()
    for name in ("astronaut", "grace"):
        assert reports[1][name].added and len(reports[1][name].added) == len(reports[2][name].added)
        assert [s.kind for s in reports[1][name].skips] == [s.kind for s in reports[2][name].skips]
    assert type(reports[1]["nobody"]).__name__ == type(reports[2]["nobody"]).__name__ == "NothingEnrolledError"
    assert len(matrices[1].embeddings) == len(matrices[2].embeddings) >= 6
    assert np.allclose(matrices[1].embeddings, matrices[2].embeddings, atol=1e-5)  # the same faces, in order


def test_a_batch_too_big_for_memory_is_retried_image_by_image(tmp_path):
    from faceatlas._image_job import ImageTask, analyse_chunk

    class Cramped:
        """Runs out of memory on batches of several images, and on one image wider than 300 px."""

        def detect_batch(self, images):
            if len(images) > 1:
                raise MemoryError
            return [self.detect(images[0])]

        def detect(self, image):
            if image.shape[1] > 300:
                raise MemoryError
            return []

    paths = []
    for k, width in enumerate((200, 400, 250)):
        paths.append(tmp_path / f"{k}.png")
        Image.fromarray(np.zeros((100, width, 3), np.uint8)).save(paths[-1])
    records = analyse_chunk(Cramped(), [ImageTask(p) for p in paths], embed=False)
    assert [r["path"] for r in records] == [str(p) for p in paths]
    assert records[0]["faces"] == [] and records[2]["faces"] == []  # done one by one
    assert "out of memory analysing this 400x100 image" in records[1]["error"] and "faces" not in records[1]
