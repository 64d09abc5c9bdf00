"""exiftool for the metadata tests: found on PATH, installed in CI (root, Debian), else a skip.

exiftool is the reference reader and writer of photo metadata (digiKam, Immich and most DAMs use
it or exiv2), so the XMP tests check faceatlas against it, not against itself. One exiftool
process runs many commands (``-execute`` in an argument file): each start costs ~0.2 s.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pytest

PACKAGE = "libimage-exiftool-perl"
EXIFTOOL = shutil.which("exiftool")


def _install_in_ci() -> None:
    """CI runs as root on a fresh Debian machine: install exiftool there so the tests really run."""
    if EXIFTOOL or os.environ.get("CI") != "true" or os.geteuid() != 0 or not shutil.which("apt-get"):
        return
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "timeout": 900}
    subprocess.run(["apt-get", "update"], check=False, **quiet)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", PACKAGE], check=False, env=env, **quiet)


def ensure_exiftool() -> str:
    """The exiftool executable; skips the calling module when there is none."""
    global EXIFTOOL
    if EXIFTOOL is None:
        _install_in_ci()
        EXIFTOOL = shutil.which("exiftool")
    if EXIFTOOL is None:
        pytest.skip(f"needs exiftool on PATH (apt-get install {PACKAGE})", allow_module_level=True)
    return EXIFTOOL


def exiftool(*args: str) -> str:
    """Run one exiftool command; its stdout. Fails the test on a non-zero exit."""
    done = subprocess.run([ensure_exiftool(), *args], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"exiftool {' '.join(args)}: {done.stderr}"
    return done.stdout


def exiftool_batch(commands: Sequence[Sequence[str]]) -> str:
    """Run several exiftool commands in one process (``-execute`` between them)."""
    lines: list[str] = []
    for command in commands:
        lines += [*command, "-execute"]
    with tempfile.NamedTemporaryFile("w", suffix=".args", delete=False, encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    try:
        return exiftool("-charset", "filename=utf8", "-@", fh.name)
    finally:
        os.unlink(fh.name)


def exiftool_json(paths: Sequence[Path], *tags: str) -> list[dict]:
    """``exiftool -j -struct`` of several files in one call, in the order given."""
    out = exiftool("-j", "-struct", "-G1", *tags, *(str(p) for p in paths))
    by_file = {Path(d["SourceFile"]).resolve(): d for d in json.loads(out)}
    return [by_file[Path(p).resolve()] for p in paths]


def mwg_struct(
    regions: Sequence[tuple[tuple[float, float, float, float], str | None, str]], dims: tuple[int, int]
) -> str:
    """exiftool struct syntax for ``RegionInfo``: ``regions`` are (stored normalised xyxy, name, type)."""
    items = []
    for (x0, y0, x1, y1), name, kind in regions:
        area = f"Area={{X={(x0 + x1) / 2:.8f},Y={(y0 + y1) / 2:.8f},W={x1 - x0:.8f},H={y1 - y0:.8f},Unit=normalized}}"
        named = f",Name={name}" if name else ""
        items.append(f"{{{area}{named},Type={kind}}}")
    return f"{{AppliedToDimensions={{W={dims[0]},H={dims[1]},Unit=pixel}},RegionList=[{','.join(items)}]}}"


def mp_struct(regions: Sequence[tuple[tuple[float, float, float, float], str]]) -> str:
    """exiftool struct syntax for ``RegionInfoMP``: (stored normalised xyxy, name)."""
    items = []
    for (x0, y0, x1, y1), name in regions:
        rect = f"{x0:.8f}|, {y0:.8f}|, {x1 - x0:.8f}|, {y1 - y0:.8f}"  # | escapes the commas
        items.append(f"{{PersonDisplayName={name},Rectangle={rect}}}")
    return f"{{Regions=[{','.join(items)}]}}"
