"""``index_folder(workers=N)``: the worker processes end when the indexing process dies, kill -9 included.

A real process indexes a folder with two spawned workers (and itself) whose analyzer never finishes a photo; once both
workers are analysing, the parent is killed with SIGKILL (so none of its own cleanup runs), and
the workers must be gone within seconds instead of living on, re-parented, with their models.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process semantics")

# run as a script (not -c): spawned workers re-import it to unpickle the analyzer factory
SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path

    import faceatlas.collection.indexer as indexer
    import faceatlas.parallel as parallel
    from faceatlas.collection import CollectionStore
    from faceatlas.models.cards import DLIB_RESNET_CARD

    if os.environ.get("TEST_NO_PDEATHSIG"):  # also in the workers: they import this file
        parallel._USE_PDEATHSIG = False  # only the portable watch (as on macOS)


    class Embedder:
        card = DLIB_RESNET_CARD
        dim = 128


    class Stuck:
        embedder = Embedder()

        def analyze(self, image):
            Path(os.environ["TEST_MARKS"], str(os.getpid())).touch()  # this worker is analysing
            time.sleep(300)
            return []


    if __name__ == "__main__":
        with CollectionStore.open(sys.argv[2]) as store:
            indexer.index_folder(sys.argv[1], store, Stuck, workers=3)  # this process and two spawned
    """
)
START_S = 90.0  # two spawned workers importing numpy and faceatlas on a busy 2-core box
GONE_S = 10.0


def alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (dead, not yet reaped by an init that may never reap) is not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc (macOS)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def parent_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None


@pytest.mark.parametrize("watch", ["pdeathsig", "poll"])
def test_workers_end_when_the_indexing_process_is_killed(tmp_path, watch):
    photos, marks = tmp_path / "photos", tmp_path / "marks"
    photos.mkdir()
    marks.mkdir()
    for i in range(6):
        Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(photos / f"p{i}.png")
    script = tmp_path / "index_stuck.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "TEST_MARKS": str(marks)}
    if watch == "poll":
        env["TEST_NO_PDEATHSIG"] = "1"
    parent = subprocess.Popen(
        [sys.executable, str(script), str(photos), str(tmp_path / "c.db")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    workers: list[int] = []
    try:
        deadline = time.monotonic() + START_S
        while len(workers) < 2:
            assert parent.poll() is None, f"the indexing process ended early: {parent.communicate()[0].decode()}"
            assert time.monotonic() < deadline, "the two workers never started analysing"
            time.sleep(0.1)
            workers = sorted(int(p.name) for p in marks.iterdir() if int(p.name) != parent.pid)
        assert all(alive(pid) for pid in workers)
        if sys.platform.startswith("linux"):
            assert {parent_of(pid) for pid in workers} == {parent.pid}  # the pool's workers, not strangers

        parent.send_signal(signal.SIGKILL)
        parent.wait(GONE_S)
        deadline = time.monotonic() + GONE_S
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = [pid for pid in workers if alive(pid)]
        assert not left, f"workers {left} outlived the indexing process ({watch})"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for pid in workers:  # what the old code left behind, so that the test run does not keep it
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
