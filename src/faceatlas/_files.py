"""Small file helpers shared by every layer (a leaf module: the standard library only)."""

from __future__ import annotations

import hashlib
import os


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """The hex SHA-256 of a file's bytes, read ``chunk`` bytes at a time (memory stays flat).

    For photos and model weights. Never for a database file another connection in this process
    may hold open: closing any descriptor of a file drops the process's POSIX locks on it.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
