"""The life of one store connection, shared by every store (SQLite files, PostgreSQL): a leaf
module, so that the stores of different packages share it without importing one another."""

from __future__ import annotations

import threading
from typing import Any, Self


class ConnectionLifecycle:
    """``close()`` and the context manager every store shares: one connection behind one lock."""

    _lock: threading.Lock | threading.RLock
    _conn: Any

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
