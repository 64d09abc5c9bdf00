"""``index_folder_ray``: ``index_folder`` with the photos analysed by a Ray Data pipeline (issue 14).

The job is the local one's (``indexer``): the same walk, the same cheap settling of unchanged and
moved files (``_settle_cheap``), the same per-photo analysis (``analyse_file``: read, hash, decode,
detect, embed) and the same storing, each photo whole (``_IndexJob.store_outcome``; in batches of
photos here, see below). Only where the analysis runs differs:

    plan (driver) ─▶ ray.data.from_items ─▶ map_batches(_AnalyseBatch actors) ─▶ driver writes the store

- Each actor (``num_cpus=1``, ``FACEATLAS_NUM_THREADS=1``) builds the analyzer once and then reads,
  decodes and analyses batches of files **by path**: the folder must be readable at the same path
  on every node (a shared filesystem); an actor on a node without it refuses to start, saying so.
  Reading on the workers keeps the driver's disk and network out of the way (a photo's bytes
  cross the network once, from the shared filesystem, never through the driver).
- Only the driver writes the store, as results arrive (not in folder order), so the SQLite file
  works as it does locally (a PostgreSQL collection works too: the shared store of a cluster). It
  commits ``write_batch`` photos per transaction (``add_photos``), or fewer once the oldest waited
  a second: one commit per photo would cap the driver near 200-250 photos/s on SQLite
  (docs/BENCHMARKS.md). A job stopped anywhere (Ctrl-C, a lost cluster, a worker that kept dying)
  stores what it holds and keeps every photo stored so far; a re-run resumes. A killed driver loses
  at most the photos it held back (one batch, or a second's worth).
- Videos are analysed by the actors too, each whole on one actor (``indexer.analyse_video``: its
  tracks are its faces); a long video holds its actor (and its batch) until it is done.
- A crashed actor is restarted and its batch retried (``_TASK_RETRIES`` times); a batch that
  keeps killing its actor (a file that crashes a decoder, memory) ends the job with ClusterError.

See docs/RAY.md.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import socket
import warnings
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from faceatlas.collection.indexer import IndexReport, Progress, _IndexJob, _Outcome, _start_job, analyse_file
from faceatlas.collection.store import CollectionError, CollectionStore
from faceatlas.collection.video import DEFAULT_VIDEO_FPS, check_fps
from faceatlas.errors import ClusterError, FaceAtlasError, InvalidArgumentError

if TYPE_CHECKING:
    import ray.data

Log = Callable[[str], None]

DEFAULT_WRITE_BATCH = 32  # photos per write transaction of the driver (1 = each photo committed alone)
DEFAULT_BATCH_SIZE = 8  # photos per Ray task: 0.2 s (LFW) to seconds of work, so Ray's per-task cost stays small
CONNECT_TIMEOUT_S = 10.0  # for an ADDRESS: how long a host:port may take to answer a TCP connect
_TASK_RETRIES = 3  # a batch whose actor died is retried on a restarted actor this many times
_RAY_MISSING = 'indexing with Ray needs the ray package: pip install "faceatlas[ray]"'

logger = logging.getLogger(__name__)


def index_folder_ray(
    root: str | os.PathLike[str],
    store: CollectionStore,
    analyzer_factory: Callable[[], Any] | None = None,
    *,
    address: str = "auto",
    workers: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
    allowed_roots: Sequence[str | os.PathLike[str]] | None = None,
    log: Log | None = None,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
    write_batch: int = DEFAULT_WRITE_BATCH,
    video_fps: float = DEFAULT_VIDEO_FPS,
) -> IndexReport:
    """Index every photo under ``root`` into ``store`` as ``index_folder`` does, analysing the photos
    in ``workers`` Ray actors (default: one per CPU of the cluster, no more than there are batches).

    ``address``: ``"auto"`` is ``$RAY_ADDRESS``, else a running cluster on this machine (``ray
    start``), else a local Ray instance started for this job (stopped when it ends);
    ``"host:6379"`` or ``"ray://host:10001"`` names a cluster, and one that does not answer within
    ``connect_timeout_s`` is a ClusterError, before anything is written. A process already
    connected (``ray.init``) keeps its connection, whatever ``address``. ``log(line)`` is told
    which of these happened (default: this module's logger).

    ``analyzer_factory``: a zero-argument factory (a class, ``functools.partial``) each actor calls
    once; None for ``FaceAnalyzer`` with the collection's embedder. An analyzer object is refused:
    it cannot be shared by actors. ``batch_size``: photos per Ray task. ``write_batch``: photos per
    write transaction (see the module docstring). ``progress``, ``allowed_roots``, ``video_fps``: as for
    ``index_folder``.

    Raises ClusterError when the cluster cannot be reached or its workers fail beyond retries, and
    ModelError when the models cannot run (every photo would fail); what was stored stays.
    """
    if workers is not None and workers < 1:
        raise InvalidArgumentError(f"workers must be at least 1, got {workers}")
    if batch_size < 1:
        raise InvalidArgumentError(f"batch_size must be at least 1, got {batch_size}")
    if write_batch < 1:
        raise InvalidArgumentError(f"write_batch must be at least 1, got {write_batch}")
    video_fps = check_fps(video_fps)
    if not isinstance(analyzer_factory, type) and hasattr(analyzer_factory, "analyze"):
        raise CollectionError(
            "with Ray each actor builds its own analyzer: pass a factory (e.g. "
            "functools.partial(FaceAnalyzer, min_face_size=40)) or None, not an analyzer object"
        )
    if not Path(root).expanduser().is_dir():  # before any cluster is started for a mistyped folder
        raise CollectionError(f"{root} is not a folder; pass the folder of photos to index")
    say = log if log is not None else logger.info
    with _connected(address, connect_timeout_s, say) as ray:  # first: a cluster that is not there writes nothing
        job = _start_job(root, store, analyzer_factory, 1, progress, allowed_roots)
        job.batch, job.video_fps = write_batch, video_fps
        if job.plan:
            actors = _actor_count(ray, workers, len(job.plan), batch_size)
            say(f"ray: analysing {len(job.plan)} photo(s) in {actors} actor(s)")
            _analyse_on_ray(ray, job, actors, batch_size)
        return job.finish()


# --- the cluster ------------------------------------------------------------------------------------


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # the pipeline needs Ray Data, not only Ray core
    except ImportError as exc:
        raise ClusterError(_RAY_MISSING) from exc
    return ray


@contextmanager
def _connected(address: str, timeout_s: float, say: Log) -> Iterator[Any]:
    """The ``ray`` module, connected as ``address`` asks; a Ray instance started here stops on exit."""
    ray = _import_ray()
    if ray.is_initialized():  # the caller connected this process already: its choice stands
        say("ray: using this process's Ray connection")
        yield ray
        return
    named = (os.environ.get("RAY_ADDRESS") or None) if address == "auto" else address
    started = False
    quiet = {"logging_level": logging.WARNING, "log_to_driver": True}
    if named is not None:
        _probe(named, timeout_s)
        try:
            ray.init(address=named, **quiet)
        except (ConnectionError, ValueError, RuntimeError, ImportError) as exc:  # ValueError: no ray[client]
            raise ClusterError(f"cannot connect to the Ray cluster at {named}: {exc}") from exc
        say(f"ray: connected to the cluster at {named} ({_cpus(ray)} CPUs)")
    else:
        try:
            ray.init(address="auto", **quiet)
            say(f"ray: connected to the Ray cluster running on this machine ({_cpus(ray)} CPUs)")
        except ConnectionError:  # none running: one for this job
            ray.init(num_cpus=_usable_cores(), include_dashboard=False, **quiet)
            started = True
            say(f"ray: no cluster found; started a local Ray instance ({_cpus(ray)} CPUs) for this job")
    try:
        yield ray
    finally:
        ray.shutdown()  # a cluster we only connected to keeps running; a local one started here stops
        if started:
            say("ray: local Ray instance stopped")


def _probe(address: str, timeout_s: float) -> None:
    """Fail fast (ClusterError) when ``host:port`` does not accept a TCP connection within
    ``timeout_s``: Ray itself retries an absent cluster for minutes."""
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ClusterError(f"a Ray address is host:port or ray://host:port (or auto), got {address!r}")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise ClusterError(
            f"no Ray cluster answers at {address} ({exc or 'timed out'} within {timeout_s:g} s); nothing was "
            "written. Check the address (`ray status` on the head node), or pass --ray auto for a local one"
        ) from exc


def _usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _cpus(ray: Any) -> int:
    return int(ray.cluster_resources().get("CPU", 0))


def _actor_count(ray: Any, workers: int | None, photos: int, batch_size: int) -> int:
    wanted = workers if workers is not None else max(1, _cpus(ray))
    return max(1, min(wanted, math.ceil(photos / batch_size) if workers is None else photos))


# --- the pipeline -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Fatal:
    """An actor's faceatlas error (a model that cannot run, a folder this node lacks), sent as data:
    Ray would deliver a raised one as its own wrapper, without the type."""

    error: FaceAtlasError


class _AnalyseBatch:
    """A Ray Data actor: builds the analyzer once, then analyses batches of (rel, path, kind)."""

    def __init__(
        self, factory: Callable[[], Any] | None, folder: str, follow: bool, video_fps: float = DEFAULT_VIDEO_FPS
    ) -> None:
        self.follow, self.video_fps = follow, video_fps
        self.failed: FaceAtlasError | None = None
        try:
            self.analyzer = self._build(factory, folder)
        except FaceAtlasError as exc:  # told to the driver with the first batch
            self.failed = exc

    @staticmethod
    def _build(factory: Callable[[], Any] | None, folder: str) -> Any:
        from faceatlas.image import heif_available
        from faceatlas.models.runtime import THREADS_ENV

        os.environ.setdefault(THREADS_ENV, "1")  # the actor holds one CPU: more threads would oversubscribe
        if not os.path.isdir(folder):
            raise ClusterError(
                f"the folder {folder} is not on Ray node {socket.gethostname()}: on a cluster the photos must be "
                "on a filesystem every node mounts at the same path (docs/RAY.md)"
            )
        heif_available()  # registers the HEIF opener in this process too
        if factory is None:
            from faceatlas.pipeline import FaceAnalyzer

            factory = FaceAnalyzer
        return factory()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            if self.failed is not None:
                raise self.failed
            outcomes: list[_Outcome | _Fatal] = [
                analyse_file(self.analyzer, str(rel), Path(str(path)), kind, self.follow, self.video_fps)
                for rel, path, kind in zip(batch["rel"], batch["path"], batch["kind"], strict=True)
            ]
        except FaceAtlasError as exc:  # ModelError: every photo would fail
            outcomes = [_Fatal(exc)]
        return {"outcome": np.array([pickle.dumps(outcome) for outcome in outcomes], dtype=object)}


def _analyse_on_ray(ray: Any, job: _IndexJob, actors: int, batch_size: int) -> None:
    """Analyse ``job.plan`` in ``actors`` actors; store each outcome as it arrives."""
    size = max(1, min(batch_size, math.ceil(len(job.plan) / actors)))  # a small job still reaches every actor
    rows = [{"rel": rel, "path": str(path), "kind": kind} for rel, path, kind in job.plan]
    with _quiet_ray_data(ray), warnings.catch_warnings():
        # Ray 2.5x deprecates the actor options below (no replacement yet); without them a batch that
        # kills its actor every time would be retried forever
        warnings.filterwarnings("ignore", "`ray_remote_args` is deprecated", DeprecationWarning)
        data = ray.data.from_items(rows, override_num_blocks=math.ceil(len(rows) / size))
        analysed = data.map_batches(
            _AnalyseBatch,
            fn_constructor_args=(job.factory, str(job.folder), job.follow, job.video_fps),
            batch_size=size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=1,
            max_restarts=-1,  # an actor that died (memory, a crash) is replaced...
            max_task_retries=_TASK_RETRIES,  # ...and its batch retried, a bounded number of times
        )
        try:
            with closing(_outcomes(analysed, job)) as outcomes:
                for outcome in outcomes:
                    job.store_outcome(outcome)  # its errors (a progress callback's, the store's) pass as they are
        finally:
            job.flush()  # what was analysed is kept, whatever stopped the job


def _outcomes(analysed: ray.data.Dataset, job: _IndexJob) -> Generator[_Outcome]:
    """The actors' outcomes as they arrive; an actor's faceatlas error raised here, Ray's failures
    as ClusterError."""
    try:
        for row in analysed.iter_rows():
            outcome = pickle.loads(row["outcome"])  # written by this job's own actors
            if isinstance(outcome, _Fatal):
                raise outcome.error
            yield outcome
    except FaceAtlasError:
        raise
    except Exception as exc:
        stored = job.report.new + job.report.changed + job.report.unreadable
        raise ClusterError(
            f"the Ray job indexing {job.folder} failed ({type(exc).__name__}: {_first_line(exc)}): a worker that "
            "kept dying (out of memory? a file that crashes the decoder?) or a lost cluster. The "
            f"{stored} photo(s) stored by this run are kept: run again to resume"
        ) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else "no message"


@contextmanager
def _quiet_ray_data(ray: Any) -> Iterator[None]:
    """No Ray Data progress bars or per-dataset log lines on the terminal: faceatlas reports progress."""
    context = ray.data.DataContext.get_current()
    saved = context.enable_progress_bars, context.print_on_execution_start
    data_logger = logging.getLogger("ray.data")
    level = data_logger.level
    context.enable_progress_bars, context.print_on_execution_start = False, False
    data_logger.setLevel(logging.WARNING)
    noticed = logging.getLogger("ray.data._internal.progress")  # "Progress bars disabled. To enable...": we did
    noticed.addFilter(_not_about_progress_bars)
    try:
        yield
    finally:
        context.enable_progress_bars, context.print_on_execution_start = saved
        data_logger.setLevel(level)
        noticed.removeFilter(_not_about_progress_bars)


def _not_about_progress_bars(record: logging.LogRecord) -> bool:
    return "progress bars" not in record.getMessage().lower()
