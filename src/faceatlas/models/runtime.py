"""Model sessions: one per (model file, providers, threads) and process, created on first use, shared after.

Two backends answer the same calls (``run``, ``get_inputs``, ``get_outputs``):

- **onnxruntime** ``InferenceSession``: ``providers`` are its names. CUDA is used when
  ``onnxruntime-gpu`` is installed and a GPU is visible; otherwise the CPU.
- **torch** (:class:`faceatlas.models.torch_backend.TorchSession`, ``pip install "faceatlas[torch]"``):
  the graph converted once by onnx2torch. Chosen by a pseudo-provider, the only entry of
  ``providers``: ``"torch"`` (CUDA when torch sees a GPU, else the CPU), ``"torch:cpu"``,
  ``"torch:cuda"``, ``"torch:cuda:N"``, each optionally ending ``":fp16"`` or ``":fp32"``. Asking
  for CUDA where torch sees no GPU is a :class:`ModelError`, not a quiet fallback to the CPU.

When ``providers`` is not given, ``FACEATLAS_BACKEND`` picks:

- ``auto`` (the default): onnxruntime's CUDA provider when this onnxruntime build has it; else the
  torch backend on CUDA when an NVIDIA driver is loaded (``/dev/nvidiactl``), torch and onnx2torch
  are installed and torch sees the GPU (torch is imported only after the two cheap checks pass, so
  a machine without a GPU never pays for it); else onnxruntime on the CPU.
- ``onnxruntime``: onnxruntime only (CUDA first when offered).
- ``torch``: the torch backend, CUDA when torch sees a GPU, else the CPU.

``FACEATLAS_FP16=1`` runs the torch backend in fp16 autocast wherever it is chosen and the provider
does not say ``:fp16`` / ``:fp32`` itself; onnxruntime ignores it. ``FACEATLAS_NUM_THREADS`` sets
the CPU threads (for torch: its process-wide pool).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from faceatlas.errors import InvalidArgumentError, ModelError
from faceatlas.models import torch_backend

if TYPE_CHECKING:
    import onnxruntime as ort

_SESSIONS: dict[tuple[str, tuple[str, ...], int], ort.InferenceSession] = {}
_LOCK = threading.Lock()
THREADS_ENV = "FACEATLAS_NUM_THREADS"
BACKEND_ENV = "FACEATLAS_BACKEND"
FP16_ENV = "FACEATLAS_FP16"
BACKENDS = ("auto", "onnxruntime", "torch")


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


def _env_backend() -> str:
    value = (os.environ.get(BACKEND_ENV) or "auto").strip().lower()
    if value not in BACKENDS:
        raise ModelError(f"${BACKEND_ENV} must be one of {', '.join(BACKENDS)}, got {value!r}")
    return value


def _env_fp16() -> bool:
    value = (os.environ.get(FP16_ENV) or "0").strip().lower()
    if value not in ("0", "1", "true", "false", "yes", "no", ""):
        raise ModelError(f"${FP16_ENV} must be 1 or 0, got {value!r}")
    return value in ("1", "true", "yes")


@functools.cache
def torch_cuda_usable() -> bool:
    """Whether the torch backend can take a GPU here; imports torch only once the cheap checks pass."""
    if not torch_backend.nvidia_gpu_visible():
        return False
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("onnx2torch") is None:
        return False
    try:
        torch = torch_backend.import_torch()
    except ModelError:  # installed but broken: onnxruntime on the CPU still works
        return False
    return bool(torch.cuda.is_available())


def resolve_providers(providers: Sequence[str] | None) -> tuple[str, ...]:
    """The providers a session is created (and cached) with: ``providers`` checked, or the default
    ``FACEATLAS_BACKEND`` picks; a torch pseudo-provider comes back with its precision settled."""
    if providers:
        provs = tuple(providers)
    else:
        backend = _env_backend()
        if backend == "torch":
            provs = (torch_backend.PREFIX,)
        else:
            provs = tuple(default_providers())
            if backend == "auto" and "CUDAExecutionProvider" not in provs and torch_cuda_usable():
                provs = (f"{torch_backend.PREFIX}:cuda",)
    specs = [torch_backend.parse_provider(p) for p in provs]
    spec = next((s for s in specs if s is not None), None)
    if spec is None:
        return provs
    if len(provs) != 1:
        raise InvalidArgumentError(
            f"a torch pseudo-provider must be the only entry of providers (the torch backend does not fall back "
            f"along the list), got {list(provs)}"
        )
    if spec.fp16 is None:
        spec = dataclasses.replace(spec, fp16=_env_fp16())
    return (spec.name(),)


def create_session(
    path: str | os.PathLike[str],
    providers: Sequence[str] | None = None,
    intra_op_threads: int | None = None,
) -> ort.InferenceSession:
    """A cached session for ``path`` (same path, providers, threads → same object): an onnxruntime
    ``InferenceSession``, or a :class:`~faceatlas.models.torch_backend.TorchSession` with the same
    calls when the providers (or ``FACEATLAS_BACKEND``) choose torch; see the module doc."""
    provs = resolve_providers(providers)
    threads = _default_threads() if intra_op_threads is None else intra_op_threads
    key = (str(Path(path).resolve()), provs, threads)
    with _LOCK:
        session = _SESSIONS.get(key)
        if session is None:
            torch_spec = torch_backend.parse_provider(provs[0])
            if torch_spec is not None:
                session = torch_backend.TorchSession(path, torch_spec.device, bool(torch_spec.fp16), threads)
            else:
                session = _onnxruntime_session(path, provs, threads)
            _SESSIONS[key] = session
    return session


def _onnxruntime_session(path: str | os.PathLike[str], provs: tuple[str, ...], threads: int) -> ort.InferenceSession:
    import onnxruntime as ort

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
        return ort.InferenceSession(str(path), sess_options=options, providers=list(provs))
    except Exception as exc:
        raise ModelError(f"onnxruntime could not load {path}: {exc}") from exc
