"""Background jobs for the service: indexing a folder into a collection, clustering it.

A ``JobManager`` runs submitted jobs one at a time, first in first out, in one daemon worker
thread. Serial on purpose: indexing and clustering both write the one SQLite collection (a
second writer would only queue on its write lock), indexing already saturates the CPU through
the models, and a cluster job queued after an index job must see the faces that job adds.

A job is a function of a ``JobContext``: it reports ``progress(done, total, message)`` and, at
that call or at ``check()``, raises ``JobCancelled`` once a cancel was asked. Every public method
may be called from any thread; what they return are snapshots (``Job``, frozen, with copied
dicts) that stay as they were while the job moves on, so a route can serialise one freely.

>>> jobs = JobManager()
>>> job = jobs.submit("index", {"folder": "/photos"}, index_job(Path("c.db"), Path("/photos")))
>>> jobs.get(job.id).state, jobs.get(job.id).done        # ("running", 120), say
>>> jobs.cancel(job.id)                                  # stops after the photo being stored
>>> jobs.shutdown()
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

from faceatlas.errors import FaceAtlasError, InvalidArgumentError

if TYPE_CHECKING:
    from faceatlas.collection.store import CollectionStore

logger = logging.getLogger("faceatlas.server")

# the collection a job works on, lent for the job's length: the service lends its one shared store
StoreProvider = Callable[[], AbstractContextManager["CollectionStore"]]

JobState = Literal["queued", "running", "done", "failed", "cancelled"]
FINISHED_STATES: frozenset[str] = frozenset({"done", "failed", "cancelled"})
INTERNAL_ERROR = "internal error (see the server log)"
MAX_PROBLEMS = 50  # problems listed in an index job's result (their total is given too)
_MAX_ERROR_CHARS = 1000


class JobCancelled(Exception):
    """Raised inside a job (by ``JobContext.progress``/``check``) once its cancel was asked."""


class QueueFullError(FaceAtlasError):
    """``max_queued`` jobs are already waiting: the job was not accepted."""


class JobManagerClosedError(FaceAtlasError):
    """The manager was shut down: it accepts no more jobs."""


@dataclass(frozen=True)
class Job:
    """What a job is and how far it got, as of the moment this copy was taken.

    ``params`` and ``result`` are JSON-safe dicts; ``error`` is one line, never a traceback.
    ``cancel_requested``: a cancel was asked while it ran; it stops at its next progress report.
    """

    id: str
    kind: str
    params: dict[str, Any]
    state: JobState
    done: int = 0
    total: int | None = None
    message: str = ""
    result: dict[str, Any] | None = None
    error: str | None = None
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    cancel_requested: bool = False

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    def snapshot(self) -> Job:
        """A copy nobody else holds: frozen, with its own copies of ``params`` and ``result``."""
        return dataclasses.replace(self, params=copy.deepcopy(self.params), result=copy.deepcopy(self.result))

    def to_dict(self) -> dict[str, Any]:
        """Every field, as plain JSON-safe values (a new dict each call)."""
        return dataclasses.asdict(self)


@dataclass(eq=False)
class _Entry:
    """The manager's handle on a job that has not finished: its function and its cancel flag."""

    job_id: str
    fn: Callable[[JobContext], dict[str, Any] | None]
    cancel: threading.Event = dataclasses.field(default_factory=threading.Event)


class JobContext:
    """What a job function gets: report progress, and learn that it should stop."""

    def __init__(self, manager: JobManager, entry: _Entry) -> None:
        self._manager = manager
        self._entry = entry

    @property
    def job_id(self) -> str:
        return self._entry.job_id

    @property
    def cancelled(self) -> bool:
        """True once a cancel was asked (or the manager is shutting down)."""
        return self._entry.cancel.is_set()

    def check(self) -> None:
        """Raise ``JobCancelled`` if a cancel was asked; call it between units of work."""
        if self._entry.cancel.is_set():
            raise JobCancelled("cancelled")

    def progress(self, done: int, total: int | None, message: str = "") -> None:
        """Record how far the job got (``message``: "" keeps the last one), then ``check()``.

        The count is recorded even when it raises, so a cancelled job shows how far it got.
        """
        self._set(done, total, message)
        self.check()

    def _set(self, done: int, total: int | None, message: str = "") -> None:
        """Record progress without checking for a cancel (a finished job's last word)."""
        self._manager._progress(self._entry, int(done), None if total is None else int(total), message)


class JobManager:
    """Runs jobs one at a time, FIFO, in one daemon thread (see the module docstring).

    At most ``max_queued`` jobs wait (``submit`` raises ``QueueFullError`` beyond); the newest
    ``max_jobs_kept`` finished jobs are kept for ``get``/``list``, older ones are forgotten.
    """

    def __init__(self, max_jobs_kept: int = 100, max_queued: int = 16) -> None:
        if max_jobs_kept < 1 or max_queued < 1:
            raise InvalidArgumentError(
                f"max_jobs_kept and max_queued must be at least 1, got {max_jobs_kept} and {max_queued}"
            )
        self.max_jobs_kept = int(max_jobs_kept)
        self.max_queued = int(max_queued)
        self._cond = threading.Condition(threading.Lock())  # guards everything below
        self._jobs: dict[str, Job] = {}  # every job kept, in submission order; values are never mutated
        self._entries: dict[str, _Entry] = {}  # jobs queued or running
        self._queue: deque[_Entry] = deque()
        self._finished: deque[str] = deque()  # finished job ids, oldest first: the order they are dropped in
        self._running: _Entry | None = None
        self._closed = False
        self._thread: threading.Thread | None = None  # started by the first submit (not at import, not pre-fork)

    # --- the public API ---

    def submit(self, kind: str, params: dict[str, Any], fn: Callable[[JobContext], dict[str, Any] | None]) -> Job:
        """Queue ``fn`` to run after the jobs before it; returns the queued job.

        ``params`` (what the job was asked to do, shown to clients) must be JSON-safe; so must
        the dict ``fn`` returns, which becomes ``result``.
        """
        if not isinstance(kind, str) or not kind:
            raise InvalidArgumentError(f"a job's kind must be a non-empty string, got {kind!r}")
        if not callable(fn):
            raise TypeError(f"a job's function must be callable, got {fn!r}")
        params = _json_copy(params, "params")
        with self._cond:
            if self._closed:
                raise JobManagerClosedError("the job manager is shut down; it accepts no more jobs")
            if len(self._queue) >= self.max_queued:
                raise QueueFullError(
                    f"{len(self._queue)} jobs are already waiting (at most {self.max_queued}); "
                    "wait for one to finish, or cancel one, then submit again"
                )
            job_id = secrets.token_hex(6)
            while job_id in self._jobs:
                job_id = secrets.token_hex(6)
            job = Job(id=job_id, kind=kind, params=params, state="queued", created_at=time.time())
            entry = _Entry(job_id, fn)
            self._jobs[job_id] = job
            self._entries[job_id] = entry
            self._queue.append(entry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="faceatlas-jobs", daemon=True)
                self._thread.start()
            self._cond.notify_all()
            return job.snapshot()

    def get(self, job_id: str) -> Job | None:
        """The job as it is now, or None if unknown (or forgotten: see ``max_jobs_kept``)."""
        with self._cond:
            job = self._jobs.get(job_id)
            return None if job is None else job.snapshot()

    def list(self) -> list[Job]:
        """Every job kept, newest first."""
        with self._cond:
            return [job.snapshot() for job in reversed(self._jobs.values())]

    def cancel(self, job_id: str) -> Job | None:
        """Cancel a job: a queued one at once; a running one stops at its next progress report
        (``cancel_requested`` says so meanwhile); a finished one is left as it is. None if unknown."""
        with self._cond:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            entry = self._entries.get(job_id)
            if job.state == "queued" and entry is not None:
                self._queue.remove(entry)
                job = self._finish(entry, state="cancelled", message="cancelled before it started")
            elif job.state == "running" and entry is not None:
                job = self._ask_to_stop(entry)
            return job.snapshot()

    def wait(self, job_id: str, timeout: float | None = None) -> Job | None:
        """Block until the job has finished (or ``timeout`` seconds passed); returns it as it is then."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while (job := self._jobs.get(job_id)) is not None and not job.finished:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._cond.wait(left)
            return None if job is None else job.snapshot()

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> bool:
        """Refuse new jobs, cancel the queued ones, ask the running one to stop, and stop the thread.

        With ``wait``, block until the thread has ended (at most ``timeout`` seconds). Returns
        whether it has; a job that never reports progress keeps it alive until the job ends (it
        is a daemon thread: it does not keep the process alive).
        """
        with self._cond:
            self._closed = True
            while self._queue:
                entry = self._queue.popleft()
                self._finish(entry, state="cancelled", message="cancelled: the server is shutting down")
            if self._running is not None:
                self._ask_to_stop(self._running)
            thread = self._thread
            self._cond.notify_all()
        if thread is None:
            return True
        if wait and thread is not threading.current_thread():
            thread.join(timeout)
        return not thread.is_alive()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # --- the worker thread ---

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:  # closed, nothing left
                    return
                entry = self._queue.popleft()
                self._running = entry
                self._replace(entry.job_id, state="running", started_at=time.time())
            state, result, error, message = self._run(entry)
            with self._cond:
                self._running = None
                self._finish(entry, state=state, result=result, error=error, message=message)

    def _run(self, entry: _Entry) -> tuple[JobState, dict[str, Any] | None, str | None, str | None]:
        """Run one job; returns (state, result, error, message), never raises."""
        job_id = entry.job_id
        try:
            returned = entry.fn(JobContext(self, entry))
        except JobCancelled as exc:
            logger.info("job %s cancelled", job_id)
            return "cancelled", None, None, str(exc) or "cancelled"
        except (FaceAtlasError, ValueError, OSError) as exc:
            error = _one_line(f"{type(exc).__name__}: {exc}")
            logger.warning("job %s failed: %s", job_id, error)
            return "failed", None, error, "failed"
        except BaseException:  # whatever a job does, the worker thread must live on
            logger.exception("job %s failed with an unexpected error", job_id)
            return "failed", None, INTERNAL_ERROR, "failed"
        try:
            if returned is not None and not isinstance(returned, dict):
                raise TypeError(f"a job function must return a dict or None, got {type(returned).__name__}")
            result = None if returned is None else _json_copy(returned, "result")
        except (TypeError, ValueError):
            logger.exception("job %s returned a result that cannot be sent", job_id)
            return "failed", None, INTERNAL_ERROR, "failed"
        return "done", result, None, None

    # --- state changes (all with self._cond held) ---

    def _replace(self, job_id: str, **changes: Any) -> Job:
        job = self._jobs[job_id] = dataclasses.replace(self._jobs[job_id], **changes)
        return job

    def _ask_to_stop(self, entry: _Entry) -> Job:
        entry.cancel.set()
        return self._replace(entry.job_id, cancel_requested=True)

    def _finish(
        self,
        entry: _Entry,
        *,
        state: JobState,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        message: str | None = None,
    ) -> Job:
        """Record a job's end (``message`` None keeps the job's own, or says "done"), drop the
        oldest finished jobs beyond ``max_jobs_kept``, and wake ``wait``ers."""
        del self._entries[entry.job_id]
        if message is None:
            message = self._jobs[entry.job_id].message or state
        job = self._replace(
            entry.job_id, state=state, result=result, error=error, message=message, finished_at=time.time()
        )
        self._finished.append(entry.job_id)
        while len(self._finished) > self.max_jobs_kept:
            del self._jobs[self._finished.popleft()]
        self._cond.notify_all()
        return job

    def _progress(self, entry: _Entry, done: int, total: int | None, message: str) -> None:
        with self._cond:
            job = self._jobs.get(entry.job_id)
            if job is None or job.state != "running" or self._entries.get(entry.job_id) is not entry:
                return  # a context kept past its job's end: nothing to update
            changes: dict[str, Any] = {"done": done, "total": total}
            if message:
                changes["message"] = message
            self._replace(entry.job_id, **changes)


# --- the service's jobs ---------------------------------------------------------------------------


def index_job(
    collection: Path | StoreProvider,
    folder: Path,
    analyzer_factory: Callable[[], Any] | None = None,
    *,
    workers: int = 1,
    photo_roots: Sequence[Path] | None = None,
) -> Callable[[JobContext], dict[str, Any]]:
    """A job that indexes ``folder`` into ``collection``: the service passes its one shared store
    (``Engine.collection``: one store per file per process); a path opens a store of the job's own,
    created if missing.

    ``analyzer_factory`` is handed to ``index_folder`` as it is (None: ``FaceAnalyzer()``), so with
    ``workers > 1`` it must be picklable. Progress counts files. A cancel takes effect after the
    photo being stored: each photo is its own transaction, so everything indexed so far is kept
    and indexing again resumes (files gone from the folder are forgotten only by a run that ends).
    Returns the ``IndexReport``'s counts, and its first ``MAX_PROBLEMS`` problems.

    ``photo_roots`` (the service passes ``FACEATLAS_PHOTO_ROOTS``): the only folders the job may
    read; a file linking outside them is skipped and listed among the problems. None: no limit.
    """
    folder = Path(folder)
    opened = _store_provider(collection, create=True)

    def run(ctx: JobContext) -> dict[str, Any]:
        from faceatlas.collection.indexer import index_folder

        ctx.progress(0, None, f"indexing {folder}")
        seen: list[int | None] = [0, None]

        def forward(done: int, total: int) -> None:
            seen[:] = [done, total]
            ctx.progress(done, total)

        with opened() as store:
            try:
                report = index_folder(
                    folder, store, analyzer_factory, workers=workers, progress=forward, allowed_roots=photo_roots
                )
            except JobCancelled:
                done, total = seen
                raise JobCancelled(
                    f"cancelled after {done} of {total if total is not None else '?'} files; the photos indexed "
                    "so far are kept: index the folder again to resume"
                ) from None
        done, total = seen
        ctx._set(done or 0, total if total is not None else 0, str(report).splitlines()[0])
        return {
            "root": report.root,
            "new": report.new,
            "changed": report.changed,
            "unchanged": report.unchanged,
            "moved": report.moved,
            "removed": report.removed,
            "unreadable": report.unreadable,
            "faces_added": report.faces_added,
            "problems": [{"path": path, "reason": reason} for path, reason in report.problems[:MAX_PROBLEMS]],
            "problems_total": len(report.problems),
        }

    return run


def cluster_job(
    collection: Path | StoreProvider, full: bool = False, embedder: str | None = None
) -> Callable[[JobContext], dict[str, Any]]:
    """A job that clusters ``collection`` (the service's shared store, or a path that must exist); ``full``
    re-clusters every face. The clustering reports no progress; a cancel asked meanwhile is
    honoured before anything is written (the labels are saved in one transaction, or not at all).
    The merge threshold comes from the card of the model the collection is bound to; ``embedder``
    (the service's FACEATLAS_EMBEDDER) is how a bring-your-own model's card is found.
    Returns the ``ClusterReport``'s fields."""
    opened = _store_provider(collection, create=False)

    def run(ctx: JobContext) -> dict[str, Any]:
        from faceatlas.collection.grouping import cluster_collection

        ctx.progress(0, None, "re-clustering every face" if full else "clustering the new faces")
        with opened() as store:
            report = cluster_collection(_CheckBeforeWrite(store, ctx), full=full, embedder=embedder)
            ctx.progress(report.faces, report.faces, "preparing the review queue")
            _warm_review(store, embedder)
        ctx._set(report.faces, report.faces, str(report))
        return dataclasses.asdict(report)

    return run


def _warm_review(store: CollectionStore, embedder: str | None) -> None:
    """Plan one group question now, so the review page's first one does not wait for the search of
    every face's nearest faces (``clustering.questions``: kept in this process while the faces stay
    the same; 76 s at 200k faces on 2 cores). A failure here is the review page's to report, not
    the clustering's."""
    from faceatlas.collection import review

    try:
        review.group_question(store, embedder=embedder)
    except FaceAtlasError as exc:
        logger.warning("faceatlas: the review queue was not prepared after clustering: %s", exc)


def _store_provider(collection: Path | StoreProvider, *, create: bool) -> StoreProvider:
    """``collection`` as a provider of a store: a provider as it is, a path as a store of its own,
    opened for the job and closed after it."""
    if callable(collection):
        return collection
    path = Path(collection)

    @contextlib.contextmanager
    def own() -> Iterator[CollectionStore]:
        from faceatlas.collection.store import CollectionStore

        with CollectionStore.open(path, create=create) as store:
            yield store

    return own


class _CheckBeforeWrite:
    """A store whose ``set_clusters`` first checks for a cancel: the one write a clustering makes."""

    def __init__(self, store: Any, ctx: JobContext) -> None:
        self._store = store
        self._ctx = ctx

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def set_clusters(self, face_ids: Any, labels: Any) -> int:
        self._ctx.check()
        return self._store.set_clusters(face_ids, labels)


# --- helpers --------------------------------------------------------------------------------------


def _json_copy(value: Any, what: str) -> dict[str, Any]:
    """A deep copy of a dict as JSON would carry it; TypeError if it is not a dict or not JSON-safe."""
    if not isinstance(value, dict):
        raise TypeError(f"job {what} must be a dict, got {type(value).__name__}")
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"job {what} must be JSON-safe (str keys; str, numbers, bools, None, lists, dicts): {exc}"
        ) from None


def _one_line(text: str) -> str:
    line = " | ".join(part.strip() for part in text.splitlines() if part.strip())
    return line if len(line) <= _MAX_ERROR_CHARS else line[: _MAX_ERROR_CHARS - 1] + "…"
