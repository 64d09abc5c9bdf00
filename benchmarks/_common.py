"""Shared helpers for the benchmark scripts (not part of the package)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
LFW_DEVTEST = SHARED_DATA / "lfw_devtest"
# Full LFW (see ../shared/data/README.md): deep-funneled images + View 2 pairs.txt
LFW_FULL = Path(os.environ.get("FACEATLAS_LFW", Path.home() / "faceatlas-data" / "lfw"))


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name"):
                cpu = line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def require(path: Path, what: str) -> Path:
    if not path.exists():
        raise SystemExit(f"{what} not found at {path}; see ../shared/data/README.md")
    return path
