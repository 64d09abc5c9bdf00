"""The habits CI keeps: ``ruff check``, ``ruff format --check`` and ``mypy`` pass on ``src/``.

The tools run as the CI box runs them, from the repository root with the configuration in
pyproject.toml (``[tool.ruff]``, ``[tool.mypy]``); they come with the ``test`` extra.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(module: str, *args: str, timeout: float = 300) -> None:
    """Run ``python -m module args`` in the repository root; fail with its output unless it exits 0."""
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (it comes with the test extra: pip install -e '.[test]')")
    command = [sys.executable, "-m", module, *args]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip()
        pytest.fail(f"`{' '.join([module, *args])}` exited {proc.returncode}:\n{output}", pytrace=False)


def test_ruff_check() -> None:
    _run("ruff", "check", "src")


def test_ruff_format() -> None:
    _run("ruff", "format", "--check", "src")


@pytest.mark.slow
def test_mypy() -> None:
    _run("mypy")  # files, plugins and per-module settings: [tool.mypy] in pyproject.toml
