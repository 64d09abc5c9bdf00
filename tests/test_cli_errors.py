"""The CLI never shows a traceback, and its exit codes are the documented ones (issue 12, section 3).

Each case runs a real `faceatlas` process and checks its exit code, that no traceback is printed,
and that the message names the problem. All but the demo fail before any model loads.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from faceatlas._cli_util import (
    EXIT_BAD_INPUT,
    EXIT_BROKEN_PIPE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
)


def faceatlas(*args: object, **options: Any) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "faceatlas.cli", *map(str, args)]
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=300, **options)


def python(code: str, *args: object, **options: Any) -> subprocess.CompletedProcess[str]:
    """Run ``code`` and then `faceatlas ARGS` in one process (to plant a bug or a Ctrl-C)."""
    main = f"{code}\nfrom faceatlas.cli import app\napp(args={[str(a) for a in args]!r}, prog_name='faceatlas')"
    return subprocess.run(
        [sys.executable, "-c", main], check=False, capture_output=True, text=True, timeout=300, **options
    )


def assert_clean(result: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == code, output
    assert "Traceback" not in output, output
    for word in words:
        assert word in output, output


@pytest.fixture
def place(tmp_path: Path, grace_hopper_path: Path) -> SimpleNamespace:
    """A photo, a regular file that paths are put under (unwritable even for root), an empty collection."""
    from faceatlas.collection.store import CollectionStore

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    photos = tmp_path / "photos"
    photos.mkdir()
    CollectionStore.open(tmp_path / "c.db", create=True).close()
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"path_a,path_b,same\n{grace_hopper_path},{grace_hopper_path},1\n")
    return SimpleNamespace(
        tmp=tmp_path, img=grace_hopper_path, blocker=blocker, photos=photos, db=tmp_path / "c.db", pairs=pairs
    )


Case = tuple[str, Callable[[SimpleNamespace], list[object]], int, tuple[str, ...]]
CASES: list[Case] = [
    ("verify-far-not-a-rate", lambda p: ["verify", p.img, p.img, "--far", "2"], EXIT_USAGE, ("--far", "between 0 and 1")),
    ("verify-far-uncalibrated", lambda p: ["verify", p.img, p.img, "--far", "1e-12"], EXIT_USAGE, ("calibrated",)),
    ("verify-threshold", lambda p: ["verify", p.img, p.img, "--threshold", "7"], EXIT_USAGE, ("--threshold",)),
    ("detect-draw-under-a-file", lambda p: ["detect", p.img, "--draw", p.blocker / "x.png"], EXIT_BAD_INPUT,
     ("--draw", "is a file")),
    ("detect-draw-file-for-two", lambda p: ["detect", p.img, p.img, "--draw", p.tmp / "x.png"], EXIT_USAGE,
     ("one image file", "2 images")),
    ("export-html-under-a-file", lambda p: ["export", "--html", p.blocker / "sheet", "--db", p.db], EXIT_BAD_INPUT,
     ("--html", "is a file")),
    ("index-db-under-a-file", lambda p: ["index", p.photos, "--db", p.blocker / "c.db"], EXIT_BAD_INPUT,
     ("--db", "is a file")),
    ("eval-pairs-missing", lambda p: ["eval", "pairs", p.tmp / "missing.txt", "--images", p.tmp], EXIT_BAD_INPUT,
     ("missing.txt", "No such file")),
    ("eval-identification-missing", lambda p: ["eval", "identification", p.tmp / "none.csv"], EXIT_BAD_INPUT,
     ("none.csv",)),
    ("eval-out-under-a-file", lambda p: ["eval", "pairs", p.pairs, "--out", p.blocker / "out"], EXIT_BAD_INPUT,
     ("--out", "is a file")),
    ("eval-quality-fmr", lambda p: ["eval", "quality", p.tmp / "x.csv", "--fmr", "0"], EXIT_USAGE, ("--fmr",)),
    ("cluster-fpir", lambda p: ["cluster", "--db", p.db, "--fpir", "3"], EXIT_USAGE, ("--fpir",)),
    ("openapi-out-under-a-file", lambda p: ["openapi", "--out", p.blocker / "o.json"], EXIT_BAD_INPUT,
     ("--out", "is a file")),
    ("keys-data-dir-is-a-file", lambda p: ["keys", "create", "ci", "--data-dir", p.blocker], EXIT_BAD_INPUT,
     ("--data-dir", "is a file")),
    ("gallery-under-a-file", lambda p: ["people", "list", "--db", p.blocker / "g.db"], EXIT_BAD_INPUT,
     ("a-file", "is a file")),
    ("demo-out-in-missing-folder", lambda p: ["demo", "--out", p.tmp / "nowhere" / "d.png"], EXIT_BAD_INPUT,
     ("--out", "does not exist")),
]  # fmt: skip


@pytest.mark.parametrize(("args", "code", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_command_line_gets_a_message_and_its_exit_code(place, args, code, words):
    assert_clean(faceatlas(*args(place)), code, *words)


def test_draw_into_a_missing_folder_is_refused_and_nothing_is_created(place):
    target = place.tmp / "nowhere" / "out.png"
    assert_clean(faceatlas("detect", place.img, "--draw", target), EXIT_BAD_INPUT, "does not exist")
    assert not target.parent.exists()


def test_a_draw_folder_is_created_and_said_so(place):
    folder = place.tmp / "new" / "drawn"
    result = faceatlas("detect", place.tmp / "missing.jpg", "--draw", folder)  # the image is missing: no model loads
    assert_clean(result, EXIT_BAD_INPUT, f"created folder {folder}", "missing.jpg")
    assert folder.is_dir()


def test_a_bug_exits_70_and_asks_for_a_report_and_debug_shows_the_traceback(place):
    plant = "import faceatlas.collection.cli as c\nc.collection_location = lambda db: 1 / 0"
    result = python(plant, "people", "clusters")
    assert_clean(result, EXIT_INTERNAL, "internal error: ZeroDivisionError", "please report", "FACEATLAS_DEBUG=1")
    debug = python(plant, "people", "clusters", env={**os.environ, "FACEATLAS_DEBUG": "1"})
    assert debug.returncode == EXIT_INTERNAL and "Traceback" in debug.stderr and "ZeroDivisionError" in debug.stderr


def test_ctrl_c_exits_130_quietly(place):
    plant = "import faceatlas.collection.cli as c\ndef stop(db):\n    raise KeyboardInterrupt\n"
    plant += "c.collection_location = stop"
    assert_clean(python(plant, "people", "clusters"), EXIT_INTERRUPTED, "interrupted")


def test_a_closed_output_pipe_exits_141_without_a_traceback():
    process = subprocess.Popen(
        [sys.executable, "-m", "faceatlas.cli", "openapi"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # like `| head` giving up before the first line comes
    stderr = process.stderr.read()
    assert process.wait(timeout=300) == EXIT_BROKEN_PIPE, stderr
    assert "Traceback" not in stderr and "Error" not in stderr, stderr


def test_people_clusters_prints_a_header(tmp_path):
    from typer.testing import CliRunner

    from faceatlas.cli import app
    from faceatlas.clustering import FaceClusterer
    from faceatlas.collection.grouping import cluster_collection
    from faceatlas.collection.store import CollectionStore
    from faceatlas.gallery.store import ModelTag
    from faceatlas.types import Box, Face, Landmarks, Quality

    rng = np.random.default_rng(0)
    with CollectionStore.open(tmp_path / "c.db", create=True) as store:
        store.bind_model(ModelTag("test", "1", 8))
        for i in range(3):
            vector = rng.normal(size=8).astype(np.float32)
            vector /= np.linalg.norm(vector)
            face = Face(Box(0, 0, 40, 40), 0.99, Landmarks(np.zeros((5, 2))), None, Quality(0.9, 1, 1, 1, 1, 1), vector)
            store.add_photo(f"p{i}.jpg", str(tmp_path), f"sha{i}", 1, 1, 50, 50, [face])
        cluster_collection(store, FaceClusterer(threshold=0.99))
    result = CliRunner().invoke(app, ["people", "clusters", "--db", str(tmp_path / "c.db")])
    assert result.exit_code == EXIT_OK, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["id", "faces", "name"] and len(lines) == 1 + 3 + 1, result.output


def test_demo_says_where_it_wrote(tmp_path):
    result = faceatlas("demo", cwd=tmp_path)  # no --out: the current folder
    assert_clean(result, EXIT_OK, f"written to {tmp_path.resolve() / 'faceatlas-demo.png'}")
    assert (tmp_path / "faceatlas-demo.png").stat().st_size > 1000


# -- unreadable files and folders: as root, chmod denies nothing, so these run as nobody ----------


@pytest.fixture
def unprivileged(tmp_path: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """A folder, and subprocess options under which a chmod 000 file really cannot be read."""
    if os.name != "posix":
        pytest.skip("POSIX permissions")
    if os.geteuid() != 0:
        yield tmp_path, {}
        for path in tmp_path.rglob("*"):  # let pytest clean up what was locked
            path.chmod(0o755)
        return
    base = Path(tempfile.mkdtemp(prefix="faceatlas-cli-"))  # pytest's tmp folders are closed to others
    base.chmod(0o777)
    env = {**os.environ, "HOME": str(base), "FACEATLAS_CACHE_DIR": str(base / "cache")}
    options: dict[str, Any] = {"user": 65534, "group": 65534, "extra_groups": [], "env": env, "cwd": base}
    try:
        probe = subprocess.run([sys.executable, "-c", "import faceatlas.cli"], check=False, capture_output=True, **options)
    except OSError as exc:  # e.g. the interpreter lives under a home folder closed to others
        shutil.rmtree(base)
        pytest.skip(f"cannot run {sys.executable} as user nobody here: {exc}")
    if probe.returncode != 0:
        shutil.rmtree(base)
        pytest.skip(f"cannot run faceatlas as user nobody here: {probe.stderr[-300:]!r}")
    try:
        yield base, options
    finally:
        shutil.rmtree(base)


def _locked(path: Path) -> Path:
    path.chmod(0)
    return path


def test_an_unreadable_image_named_directly_is_bad_input_not_a_usage_error(unprivileged, grace_hopper_path):
    base, options = unprivileged
    secret = _locked(Path(shutil.copy(grace_hopper_path, base / "secret.jpg")))
    result = faceatlas("detect", secret, **options)
    assert_clean(result, EXIT_BAD_INPUT, "secret.jpg", "permission denied")
    assert '"error"' in result.stdout  # its JSON line says so too, as for any other bad file


@pytest.mark.parametrize("command", [("enroll", "--person", "ada"), ("identify",)], ids=["enroll", "identify"])
def test_an_unreadable_image_given_to_the_gallery_commands_is_bad_input(unprivileged, grace_hopper_path, command):
    base, options = unprivileged
    if command[0] == "identify":  # needs a gallery to search
        enrolled = faceatlas("enroll", "--person", "grace", grace_hopper_path, "--db", base / "g.db", **options)
        assert enrolled.returncode == 0, enrolled.stderr
    secret = _locked(Path(shutil.copy(grace_hopper_path, base / "secret.jpg")))
    result = faceatlas(*command, secret, "--db", base / "g.db", **options)
    assert result.returncode == EXIT_BAD_INPUT, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "secret.jpg" in result.stdout + result.stderr


def test_an_unreadable_subfolder_is_reported_by_detect(unprivileged, grace_hopper_path):
    base, options = unprivileged
    (base / "photos" / "locked").mkdir(parents=True)
    shutil.copy(grace_hopper_path, base / "photos" / "locked" / "x.jpg")
    _locked(base / "photos" / "locked")
    result = faceatlas("detect", base / "photos", **options)
    assert_clean(result, EXIT_BAD_INPUT, f"skipped folder {base / 'photos' / 'locked'}", "Permission denied")


def test_index_reports_an_unreadable_subfolder_and_its_counts_agree_with_its_list(unprivileged, grace_hopper_path):
    base, options = unprivileged
    photos = base / "photos"
    (photos / "locked").mkdir(parents=True)
    shutil.copy(grace_hopper_path, photos / "locked" / "x.jpg")
    _locked(photos / "locked")
    (photos / "empty.jpg").write_bytes(b"")  # unreadable as an image: stored as such
    _locked(Path(shutil.copy(grace_hopper_path, photos / "secret.jpg")))  # cannot even be read
    result = faceatlas("index", photos, "--db", base / "c.db", **options)
    assert_clean(result, EXIT_BAD_INPUT, "locked/: cannot read this folder", "3 problem(s) (1 unreadable)")
    listed = [line for line in result.stdout.splitlines() if line.startswith("  ")]
    named = {line.split(":")[0].strip() for line in listed}
    assert len(listed) == 3 and named == {"locked/", "empty.jpg", "secret.jpg"}, result.stdout
