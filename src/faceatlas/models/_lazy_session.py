"""An ONNX Runtime session opened once, on first use, by whichever thread asks first."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:  # at run time ONNX Runtime is imported lazily, on first use
    import onnxruntime as ort


class LazySession(ABC):
    """Base of the models that run one ONNX session: ``load()`` opens it now, ``_loaded()`` on first use.

    Subclasses open their model in :meth:`_open`; it runs at most once per instance (under a lock,
    so concurrent first calls share one session), and again only if it raised.
    """

    _session: ort.InferenceSession | None
    _lock: threading.Lock

    def _init_session(self) -> None:
        self._session = None
        self._lock = threading.Lock()

    @abstractmethod
    def _open(self) -> ort.InferenceSession:
        """Find (converting or fetching first where the model needs it) and open the model's session."""

    def load(self) -> Self:
        """Open the model now rather than on first use; later calls are free."""
        self._loaded()
        return self

    def _loaded(self) -> ort.InferenceSession:
        with self._lock:
            if self._session is None:
                self._session = self._open()
            return self._session
