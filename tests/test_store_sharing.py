"""The service and the CLI share one data folder safely (issue 12, section 1).

On POSIX, closing *any* descriptor of a file drops all of the process's fcntl locks on it,
SQLite's included. The service once read the header of its collection with a plain ``open()``
whenever a job opened a second store, so a CLI process run meanwhile thought it was the file's
last user, checkpointed and deleted the WAL that the service was still writing into: names set
through the API went nowhere and the file could end up damaged. These tests hold both sides of
that line: in one process (fast), and with a real ``faceatlas serve`` beside real CLI processes.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from faceatlas.collection.store import CollectionStore
from faceatlas.gallery.sqlite_store import SqliteStore
from faceatlas.server.keys import KeyStore

LINUX_PROC = Path("/proc/self/fd").is_dir()
needs_proc = pytest.mark.skipif(not LINUX_PROC, reason="reads open descriptors from /proc (Linux)")


def _deleted_files(pid: int | str, under: Path) -> list[str]:
    """The files under ``under`` that process ``pid`` holds open although they were unlinked."""
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.endswith("(deleted)") and target.startswith(str(under)):
            found.append(target)
    return found


def _integrity(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [row[0] for row in conn.execute("PRAGMA integrity_check")]
    finally:
        conn.close()


# --- in one process: a second store must not cost the first one its locks -----------------------

_COUNT_ROWS = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
print(sum(conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables))
"""


def write_seen_elsewhere(path: Path) -> int:
    """How many rows another process reads in the file (the WAL included)."""
    run = subprocess.run([sys.executable, "-c", _COUNT_ROWS, str(path)], capture_output=True, text=True, check=True)
    return int(run.stdout)


_OTHER_PROCESS = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
conn.close()  # the last connection of the last user checkpoints and deletes the WAL
"""


@needs_proc
@pytest.mark.parametrize(
    ("opener", "write"),
    [
        (lambda p: CollectionStore.open(p), lambda s: s.add_photo("a.jpg", "/photos", "0" * 64, 1, 1, 1, 1, [])),
        (lambda p: SqliteStore(p), lambda s: s.add_person("Ada")),
        (lambda p: KeyStore.open(p), lambda s: s.create("Ada", "read")),
    ],
    ids=["collection", "gallery", "keys"],
)
def test_opening_a_second_store_keeps_the_first_ones_locks(tmp_path: Path, opener, write) -> None:
    path = tmp_path / "store.db"
    first = opener(path)
    try:
        second = opener(path)  # a job, say; it once read the header with open()/close()
        second.close()
        subprocess.run([sys.executable, "-c", _OTHER_PROCESS, str(path)], check=True)
        assert _deleted_files("self", tmp_path) == [], "another process deleted the WAL this process still uses"
        assert Path(f"{path}-wal").exists()
        before = write_seen_elsewhere(path)
        write(first)  # goes into the WAL on disk, where every other process reads it
        assert write_seen_elsewhere(path) > before
    finally:
        first.close()
    assert _integrity(path) == ["ok"]


def test_a_header_check_never_opens_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The one rule that keeps the locks: a store never opens its database with Python's open()."""
    import builtins

    path = tmp_path / "c.db"
    CollectionStore.open(path).close()
    opened: list[str] = []
    real_open = builtins.open

    def watching_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(os.fspath(file) if isinstance(file, (str, os.PathLike)) else repr(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", watching_open)
    monkeypatch.setattr(Path, "open", lambda self, *a, **k: watching_open(self, *a, **k))
    for store in (CollectionStore.open(path), CollectionStore.open(path, create=False)):
        store.close()
    assert [name for name in opened if name.startswith(str(path))] == []


# --- a real service beside real CLI processes ------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Service:
    """``faceatlas serve`` in its own process, and a small client for its API."""

    def __init__(self, work: Path, env: dict[str, str], token: str) -> None:
        self.port, self.token = _free_port(), token
        self.log = open(work / "serve.log", "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "faceatlas.cli", "serve", "--port", str(self.port)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{self.base}/readyz", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the service did not start: {(work / 'serve.log').read_text()[-2000:]}")
            time.sleep(0.2)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(self, method: str, path: str, body: Any = None, files: bytes | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}"}
        data = None
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        if files is not None:
            boundary = "faceatlasboundary"
            data = (
                (
                    f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="a.jpg"\r\n'
                    f"Content-Type: image/jpeg\r\n\r\n"
                ).encode()
                + files
                + f"\r\n--{boundary}--\r\n".encode()
            )
            headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        request = urllib.request.Request(self.base + path, method=method, data=data, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:
                return answer.status, json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def job(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        status, job = self.call("POST", f"/v1/jobs/{kind}", body)
        assert status == 202, job
        while job["state"] in ("queued", "running"):
            time.sleep(0.1)
            status, job = self.call("GET", f"/v1/jobs/{job['id']}")
        return job

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def _photo_folder(folder: Path, sources: list[np.ndarray], tag: int) -> Path:
    """Photos of real faces, each file distinct (a shifted copy), so each round adds new photos."""
    folder.mkdir(parents=True, exist_ok=True)
    for number, pixels in enumerate(sources):
        shifted = np.roll(pixels, 3 * tag + 1, axis=1)
        Image.fromarray(shifted).save(folder / f"r{tag}-{number}.jpg", quality=92)
    return folder


@needs_proc
@pytest.mark.slow
def test_service_and_cli_processes_share_the_collection_and_gallery(
    tmp_path: Path, analyzer: Any, astronaut: np.ndarray, grace_hopper: np.ndarray
) -> None:
    """Index and cluster jobs through the API while CLI processes read and write the same files:
    no WAL is ever deleted under the service, every write is seen from the other side, and both
    files pass SQLite's integrity check at the end."""
    del analyzer  # only to have the models converted in this run's cache before processes share it
    data, photos = tmp_path / "data", tmp_path / "photos"
    photos.mkdir()
    env = {
        **os.environ,
        "FACEATLAS_DATA_DIR": str(data),
        "FACEATLAS_PHOTO_ROOTS": json.dumps([str(photos)]),
        "FACEATLAS_NUM_THREADS": "1",
    }
    collection, gallery = data / "collection.db", data / "gallery.db"

    def cli(*args: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "faceatlas.cli", *map(str, args)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    created = cli("keys", "create", "lock-test", "--scope", "admin")
    assert created.returncode == 0, created.stderr
    service = _Service(tmp_path, env, created.stdout.strip().splitlines()[-1])
    counts = {"api_jobs": 0, "cli_reads": 0, "cli_writes": 0, "api_names_seen_by_cli": 0, "cli_people_seen_by_api": 0}
    try:
        sources = [astronaut, grace_hopper]
        for round_ in range(3):
            _photo_folder(photos / f"round{round_}", sources, round_)
            cli_folder = _photo_folder(tmp_path / f"cli{round_}", sources[::-1], 10 + round_)
            # an API index job runs while CLI processes read the collection and write into it
            status, job = service.call("POST", "/v1/jobs/index", {"folder": str(photos / f"round{round_}")})
            assert status == 202, job
            results: dict[str, subprocess.CompletedProcess[str]] = {}
            commands = {
                "read": ("people", "clusters", "--db", collection),
                "index": ("index", cli_folder, "--db", collection),
                "enroll": (
                    "enroll",
                    "--person",
                    f"cli-person-{round_}",
                    cli_folder / f"r{10 + round_}-1.jpg",
                    "--db",
                    gallery,
                ),
            }
            threads = [
                threading.Thread(target=lambda k=k, c=c, r=results: r.__setitem__(k, cli(*c)))
                for k, c in commands.items()
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            for kind, result in results.items():
                assert result.returncode == 0, (kind, result.stdout, result.stderr)
            counts["cli_reads"] += 1
            counts["cli_writes"] += 2
            while job["state"] in ("queued", "running"):
                time.sleep(0.1)
                job = service.call("GET", f"/v1/jobs/{job['id']}")[1]
            assert job["state"] == "done", job
            assert service.job("cluster", {})["state"] == "done"
            counts["api_jobs"] += 2
            assert _deleted_files(service.process.pid, data) == [], "a CLI process deleted the service's WAL"

            # the API sees what the CLI wrote: the CLI's photos, and its gallery person
            status, listing = service.call("GET", "/v1/collection/photos?limit=500")
            assert status == 200
            names = {Path(photo["path"]).name for photo in listing["photos"]}  # paths are relative to their folder
            assert {p.name for p in cli_folder.glob("*.jpg")} <= names
            status, people = service.call("GET", "/v1/people")
            assert f"cli-person-{round_}" in {person["name"] for person in people["people"]}
            counts["cli_people_seen_by_api"] += 1

            # the CLI sees what the API wrote: a cluster named through the API
            status, clusters = service.call("GET", "/v1/collection/clusters")
            target = sorted(clusters["clusters"], key=lambda c: c["id"])[round_ % len(clusters["clusters"])]
            name = f"api-name-{round_}"  # a name, or a new name for a named cluster (and its person)
            status, named = service.call("PATCH", f"/v1/collection/clusters/{target['id']}", {"name": name})
            assert status == 200, named
            listed = cli("people", "clusters", "--db", collection)
            assert listed.returncode == 0 and name in listed.stdout, listed.stdout
            people_cli = cli("people", "list", "--db", gallery)
            assert name in people_cli.stdout, people_cli.stdout  # naming enrolled into the service's gallery
            counts["api_names_seen_by_cli"] += 1
            assert _deleted_files(service.process.pid, data) == []
    finally:
        service.stop()
    assert _integrity(collection) == ["ok"]
    assert _integrity(gallery) == ["ok"]
    print("lock test counts:", counts)
    assert counts["api_names_seen_by_cli"] == 3
