"""ONNX Runtime sessions: one per model file and process, created on first use, shared after.

CUDA is used when ``onnxruntime-gpu`` is installed and a GPU is visible; otherwise the CPU.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from faceatlas.errors import ModelError

if TYPE_CHECKING:
    import onnxruntime as ort

_SESSIONS: dict[tuple[str, tuple[str, ...], int], ort.InferenceSession] = {}
_LOCK = threading.Lock()
THREADS_ENV = "FACEATLAS_NUM_THREADS"


def default_providers() -> list[str]:
    """CUDA first when this onnxruntime build offers it, the CPU always last."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    wanted = [p for p in ("CUDAExecutionProvider",) if p in available]
    return [*wanted, "CPUExecutionProvider"]


def _default_threads() -> int:
    value = os.environ.get(THREADS_ENV)
    if value:
        try:
            return max(1, int(value))
        except ValueError as exc:
            raise ModelError(f"${THREADS_ENV} must be a whole number, got {value!r}") from exc
    return 0  # 0 lets onnxruntime use every physical core


def create_session(
    path: str | os.PathLike[str],
    providers: Sequence[str] | None = None,
    intra_op_threads: int | None = None,
) -> ort.InferenceSession:
    """A cached ``InferenceSession`` for ``path`` (same path, providers, threads → same object)."""
    import onnxruntime as ort

    provs = tuple(providers) if providers else tuple(default_providers())
    threads = _default_threads() if intra_op_threads is None else intra_op_threads
    key = (str(Path(path).resolve()), provs, threads)
    with _LOCK:
        session = _SESSIONS.get(key)
        if session is None:
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.log_severity_level = 3  # warnings about unused providers are noise here
            # Spinning worker threads burn the cores between the many small calls of a
            # detection cascade, and on a busy machine they starve the other process.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.enable_cpu_mem_arena = False
            try:
                session = ort.InferenceSession(str(path), sess_options=options, providers=list(provs))
            except Exception as exc:
                raise ModelError(f"onnxruntime could not load {path}: {exc}") from exc
            _SESSIONS[key] = session
    return session
