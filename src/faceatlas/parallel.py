"""Process pools for folder jobs: one spawned process per core, each building its models once.

Why processes and not threads: on a 2-core machine one process with 2 ONNX Runtime threads gave
1.9× face_recognition's faces/s, two processes with one thread each 3.5× (MTCNN era; RetinaFace:
4.8× against 9.2×, ``benchmarks/speed.py``). The networks' convolutions are small, so intra-op
threading leaves cores idle, and the Python between the models (decode, alignment, pose) holds
the GIL. Each worker gets ``cores // workers`` ONNX Runtime threads (``FACEATLAS_NUM_THREADS``,
unless the user set it).

How many workers (``default_workers``): every usable core, within a memory budget, and no more
than there is work for. The budget is ``$FACEATLAS_MEMORY_BUDGET`` (``4G``, ``1500M``) or else
half of the memory available when the job starts; a worker is counted at ``WORKER_BYTES``.

Workers share the converted-model cache: each opens the same ONNX files, which this process
converts (the first run ever) before any worker starts, as it loads its own models first
(:func:`map_ordered`). They die with their parent, even when it is killed with ``kill -9``: a
worker left behind would hold its models' memory for nothing.

Within a process the stages run one after the other (decode, detect, align, embed, a batch of
images at a time); they overlap across processes, which is what keeps every core busy when each
process has one core's worth of threads.
"""

from __future__ import annotations

import ctypes
import itertools
import multiprocessing
import os
import re
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Generic, Self, TypeVar

from faceatlas.errors import FaceAtlasError, InvalidArgumentError
from faceatlas.models.runtime import THREADS_ENV

MEMORY_BUDGET_ENV = "FACEATLAS_MEMORY_BUDGET"
# Peak RSS of one process running the default pipeline: ~270 MB on LFW-size images, ~620 MB on
# group photos up to 1024 px (benchmarks/cli_speed.py), ~525 MB with FaceNet on LFW; with headroom.
WORKER_BYTES = 700 << 20

Item = TypeVar("Item")
Result = TypeVar("Result")


class WorkerError(FaceAtlasError, RuntimeError):
    """A worker process failed to start or died (killed for memory, most often)."""


# --- how many workers -------------------------------------------------------------------------


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def parse_bytes(text: str) -> int:
    """``"4G"``, ``"1500M"``, ``"2.5GB"``, ``"800000000"`` → bytes (powers of 1024)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*", text, flags=re.IGNORECASE)
    if match is None:
        raise InvalidArgumentError(f"expected a size such as 4G or 1500M, got {text!r}")
    scale = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[match.group(2).upper()]
    return int(float(match.group(1)) * scale)


def available_memory() -> int | None:
    """Bytes of memory available now (Linux: MemAvailable), or None where that cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def memory_budget() -> int | None:
    """The bytes a job's workers may use together: ``$FACEATLAS_MEMORY_BUDGET``, else half of
    the memory available now; None when neither can be known (then cores alone decide)."""
    value = os.environ.get(MEMORY_BUDGET_ENV)
    if value:
        try:
            return parse_bytes(value)
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(f"${MEMORY_BUDGET_ENV}: {exc}") from exc
    available = available_memory()
    return None if available is None else available // 2


# A worker starts in ~2 s (imports, models) while one image takes 10-100 ms: fewer images than
# this per worker are done sooner in this process.
MIN_IMAGES_PER_WORKER = 16


def default_workers(images: int | None = None, worker_bytes: int = WORKER_BYTES) -> int:
    """Processes for a job over ``images`` images: every usable core, within the memory budget,
    and at most one per ``MIN_IMAGES_PER_WORKER`` images. 1 means: do it in this process."""
    workers = usable_cores()
    budget = memory_budget()
    if budget is not None:
        workers = min(workers, max(1, budget // max(1, worker_bytes)))
    if images is not None:
        workers = min(workers, max(1, images // MIN_IMAGES_PER_WORKER))
    return max(1, workers)


def resolve_workers(workers: int | None, images: int | None = None) -> int:
    """``workers`` as asked (at least 1), or :func:`default_workers` for None (automatic)."""
    if workers is None:
        return default_workers(images)
    if workers < 1:
        raise InvalidArgumentError(f"workers must be at least 1, got {workers}")
    return workers


# --- the pool ------------------------------------------------------------------------------------

_STATE: Any = None  # what the worker's factory built (its analyzer): one per process
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_USE_PDEATHSIG = sys.platform.startswith("linux")  # elsewhere only the watching thread (tests turn it off too)
_PARENT_POLL_S = 0.5


def _init_worker(factory: Callable[[], Any] | None, threads: int, parent: int) -> None:
    global _STATE
    _die_with_parent(parent)  # first: a parent killed while the models load must not leave this behind
    os.environ.setdefault(THREADS_ENV, str(threads))  # N workers x all cores each would oversubscribe
    _STATE = None if factory is None else factory()


def _die_with_parent(parent: int) -> None:
    """End this worker when the process ``parent`` dies, even by ``kill -9`` (which runs no cleanup
    of the parent's, so nothing there can stop the pool). A worker holds nothing to save (only the
    parent writes results), so it is killed outright.

    Linux: the kernel sends SIGKILL when the parent goes (``PR_SET_PDEATHSIG``; to the kernel the
    parent is the thread that started the worker, which is the one that makes and drains the pool,
    so it outlives the pool). Everywhere: a daemon thread polls ``getppid()``, which changes once
    the parent is gone (the only watch where prctl is missing, e.g. macOS). The parent is checked
    once more after arming both, as it may have died before.
    """
    if _USE_PDEATHSIG:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no usable libc (a static build): the thread below still watches
            pass
    if os.getppid() != parent:  # died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="faceatlas-parent-watch", daemon=True).start()


def _call(fn: Callable[[Any, Any], Any], item: Any) -> Any:
    return fn(_STATE, item)


def worker_state() -> Any:
    """In a worker: what its factory built. (For functions a pool runs that need it directly.)"""
    return _STATE


_END = object()


class _Done(Generic[Result]):
    """A result computed in this process, queued among the workers' futures to keep the order."""

    __slots__ = ("value",)

    def __init__(self, value: Result) -> None:
        self.value = value


class ProcessPool:
    """``workers`` spawned processes, each running ``factory()`` once; ``imap`` maps over them in order.

    >>> with ProcessPool(functools.partial(FaceAnalyzer), 2) as pool:
    ...     for faces in pool.imap(analyse_one, paths):   # analyse_one(analyzer, path)
    ...         ...

    Spawned, never forked: a forked copy of a process that already runs ONNX Runtime threads can
    hang. ``factory`` and the mapped function must be picklable (module-level functions, classes,
    ``functools.partial`` of them).
    """

    def __init__(self, factory: Callable[[], Any] | None, workers: int, threads: int | None = None) -> None:
        if workers < 1:
            raise InvalidArgumentError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        threads = threads if threads is not None else max(1, usable_cores() // workers)
        self._executor = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(factory, threads, os.getpid()),
        )

    def imap(
        self,
        fn: Callable[[Any, Item], Result],
        items: Iterable[Item],
        ahead: int | None = None,
        helper: tuple[Any] | None = None,
    ) -> Generator[Result]:
        """``fn(state, item)`` for each item, computed ``ahead`` items in advance (default 4 per
        worker, which bounds the memory results wait in), yielded in the items' order.

        ``helper=(state,)``: this process computes items too, with ``state``, whenever the next
        result in order is not ready yet (see :func:`map_ordered`)."""
        todo = iter(items)
        ahead = ahead or 4 * self.workers
        try:
            # each entry: a worker's future, or a result this process computed; the workers are kept
            # ``ahead`` items busy at every turn, so this process's own work never starves them
            pending: deque[Future[Result] | _Done[Result]] = deque()
            queued = 0  # workers' futures not yet taken from ``pending``
            while True:
                for item in itertools.islice(todo, max(0, ahead - queued)):
                    pending.append(self._executor.submit(_call, fn, item))
                    queued += 1
                if not pending:
                    return
                head = pending[0]
                if helper is not None and isinstance(head, Future) and not head.done():
                    mine = next(todo, _END)
                    if mine is not _END:
                        pending.append(_Done(fn(helper[0], mine)))  # type: ignore[arg-type]
                        continue
                pending.popleft()
                if isinstance(head, _Done):
                    result = head.value
                else:
                    result = head.result()
                    queued -= 1
                yield result
        except BrokenProcessPool as exc:
            raise WorkerError(
                "a worker process failed to start or died (out of memory? its error is printed above); "
                f"run again with fewer workers, or set ${MEMORY_BUDGET_ENV} lower"
            ) from exc

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)  # Ctrl-C: do not wait for the whole queue

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def map_ordered(
    factory: Callable[[], Any] | None,
    fn: Callable[[Any, Item], Result],
    items: Iterable[Item],
    workers: int,
    local: Any = None,
) -> Generator[Result]:
    """``fn(state, item)`` for each item, yielded in the items' order, by ``workers`` processes.

    ``workers == 1``: here, with ``local`` (or what ``factory`` builds). Otherwise this process is
    one of the workers: ``workers - 1`` are spawned, and while the next result in order is not
    ready this process computes the next item itself with its own ``factory()`` (its models get
    ``cores // workers`` threads, like the others'). So no core waits while the workers start
    (~1 s each: imports and models), and a job shorter than that is done here alone.
    """
    if workers == 1:
        state = local if local is not None else (None if factory is None else factory())
        for item in items:
            yield fn(state, item)
        return
    threads = max(1, usable_cores() // workers)
    with ProcessPool(factory, workers - 1, threads=threads) as pool:
        helper = _built_with_threads(factory, threads)
        yield from pool.imap(fn, items, helper=(helper,))


def _built_with_threads(factory: Callable[[], Any] | None, threads: int) -> Any:
    """``factory()`` with its models loaded now, with ``threads`` ONNX Runtime threads each (unless
    the user set ``$FACEATLAS_NUM_THREADS``): sessions keep the count they were opened with."""
    if factory is None:
        return None
    saved = os.environ.get(THREADS_ENV)
    os.environ.setdefault(THREADS_ENV, str(threads))
    try:
        state = factory()
        load = getattr(state, "load", None)
        if callable(load):
            load()
        return state
    finally:
        if saved is None:
            os.environ.pop(THREADS_ENV, None)
