"""``index_folder``: bring a collection up to date with a folder of photos, resumably.

A re-run does only what changed since the last one:

- a file whose (size, mtime) match its row is not read at all;
- otherwise it is hashed: the same bytes only update (size, mtime); other bytes are analysed
  again and replace the photo and its faces;
- a new file whose bytes are those of a file that vanished was moved or renamed: its row follows
  it, keeping its faces, clusters and the user's constraints;
- files gone from the folder are forgotten with their faces;
- an image that cannot be decoded gets a row saying so, so it is not retried until it changes.

Every photo is written in one transaction (photo row and all its faces), so a job killed at any
moment loses at most the photo it was analysing, and the next run picks it up.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from faceatlas.collection.store import CollectionError, CollectionStore, model_tag
from faceatlas.errors import InvalidImageError, ModelError
from faceatlas.types import Face

#: photo extensions indexed (lower case); .heic/.heif are added when pillow-heif is installed
PHOTO_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
HEIF_EXTENSIONS = frozenset({".heic", ".heif"})
_HASH_CHUNK = 1 << 20

Kind = Literal["new", "changed"]
Progress = Callable[[int, int], None]  # (files done, files in the folder)


@dataclass
class IndexReport:
    """What one ``index_folder`` run did, photo by photo counts; ``problems`` lists (path, reason)."""

    root: str
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    moved: int = 0
    removed: int = 0
    unreadable: int = 0  # new or changed files found unreadable (stored as such: not retried until they change)
    faces_added: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        summary = (
            f"{self.root}: {self.new} new, {self.changed} changed, {self.unchanged} unchanged, "
            f"{self.moved} moved, {self.removed} removed; {self.faces_added} face(s) added; "
            f"{self.unreadable} unreadable"
        )
        lines = [summary]
        lines += [f"  {path}: {why}" for path, why in self.problems]
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class _Outcome:
    """One file analysed: what to store, or ``error`` (a passing problem: nothing is stored, so retried)."""

    rel: str
    kind: Kind
    sha256: str = ""
    size: int = 0
    mtime_ns: int = 0
    width: int | None = None
    height: int | None = None
    faces: tuple[Face, ...] = ()
    status: str = "ok"
    error: str | None = None


# --- the job --------------------------------------------------------------------------------------


def index_folder(
    root: str | os.PathLike[str],
    store: CollectionStore,
    analyzer: Any = None,
    *,
    workers: int = 1,
    progress: Progress | None = None,
) -> IndexReport:
    """Index every photo under ``root`` into ``store``; see the module docstring.

    ``analyzer``: a ``FaceAnalyzer`` (or anything with ``analyze(image) -> list[Face]`` and
    ``embedder.card``), a zero-argument factory of one (a class, ``functools.partial``), or None
    for ``FaceAnalyzer()``. With ``workers > 1`` photos are analysed in that many spawned
    processes, each building its own analyzer once, so the analyzer must be None or a picklable
    factory; the store is written by this process only, in folder order.
    ``progress(done, total)`` is called after each file.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    folder = Path(root).expanduser().resolve()
    if not folder.is_dir():
        raise CollectionError(f"{root} is not a folder; pass the folder of photos to index")
    factory, local = _resolve_analyzer(analyzer, workers)
    store.bind_model(model_tag(local))  # refuses another model before any work
    base, prefix = _adopt_root(store, folder)
    files = {prefix + path.relative_to(folder).as_posix(): path for path in list_photos(folder)}
    report = IndexReport(str(folder))
    done = itertools.count(1)

    def tick() -> None:
        if progress is not None:
            progress(next(done), len(files))

    plan, vanished = _settle_cheap(files, store, base, prefix, report, tick)
    try:
        outcomes = _analyse_here(local, plan) if workers == 1 else _analyse_in_pool(factory, plan, workers)
        with closing(outcomes):
            for outcome in outcomes:
                _store_outcome(outcome, store, base, report)
                tick()
    except BrokenProcessPool as exc:
        raise CollectionError(
            f"a worker process failed to start or died while indexing {folder} (out of memory? its error is "
            "printed above); the photos stored so far are kept: run again, with fewer workers, to resume"
        ) from exc
    report.removed = store.remove_photos(vanished, base)
    return report


def list_photos(folder: Path) -> list[Path]:
    """Image files under ``folder``, sorted; hidden files and folders skipped, symlinked folders not followed."""
    extensions = PHOTO_EXTENSIONS | (HEIF_EXTENSIONS if heif_available() else frozenset())
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [
            Path(dirpath, name)
            for name in filenames
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in extensions
        ]
    return sorted(found)


def heif_available() -> bool:
    """Teach Pillow HEIC/HEIF when the optional ``pillow-heif`` package is installed (not a dependency)."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def _resolve_analyzer(analyzer: Any, workers: int) -> tuple[Callable[[], Any] | None, Any]:
    """(factory for worker processes, analyzer for this process)."""
    if analyzer is None:
        from faceatlas.pipeline import FaceAnalyzer

        return None, FaceAnalyzer()  # loads nothing until used: in a pool only its card is read here
    if isinstance(analyzer, type) or not hasattr(analyzer, "analyze"):
        return analyzer, analyzer()
    if workers > 1:
        raise CollectionError(
            "with workers > 1 each process builds its own analyzer: pass a factory (e.g. "
            "functools.partial(FaceAnalyzer, min_face_size=40)) or None, not an analyzer object"
        )
    return None, analyzer


def _adopt_root(store: CollectionStore, folder: Path) -> tuple[str, str]:
    """(root, path prefix) to file ``folder``'s photos under, so no photo is ever stored twice.

    A folder inside an indexed root is filed under that root (its paths prefixed); indexed roots
    inside the folder are re-filed under it first.
    """
    for known in store.roots():
        if folder.is_relative_to(known):
            rel = folder.relative_to(known).as_posix()
            return known, "" if rel == "." else rel + "/"
    for known in store.roots():
        if Path(known).is_relative_to(folder):
            store.rebase_root(known, str(folder), Path(known).relative_to(folder).as_posix() + "/")
    return str(folder), ""


def _settle_cheap(
    files: dict[str, Path],
    store: CollectionStore,
    base: str,
    prefix: str,
    report: IndexReport,
    tick: Callable[[], None],
) -> tuple[list[tuple[str, Path, Kind]], list[str]]:
    """Deal with every file that needs no analysis; returns (files to analyse, paths to forget)."""
    stored = store.photo_states(base, prefix)
    vanished = {rel: state for rel, state in stored.items() if rel not in files}
    moved_from: dict[str, list[str]] = {}  # sha256 -> vanished paths with those bytes
    for rel, state in vanished.items():
        moved_from.setdefault(state.sha256, []).append(rel)
    plan: list[tuple[str, Path, Kind]] = []
    for rel, path in files.items():
        old = stored.get(rel)
        try:
            stat = path.stat()
            if old is not None and (old.size, old.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
                report.unchanged += 1
            elif old is None and not moved_from:
                plan.append((rel, path, "new"))  # nothing it could have moved from: no need to hash twice
                continue
            elif old is not None and sha256_file(path) == old.sha256:
                store.touch_photo(rel, base, stat.st_size, stat.st_mtime_ns)
                report.unchanged += 1
            elif old is not None:
                plan.append((rel, path, "changed"))
                continue
            elif sources := moved_from.get(sha256_file(path)):
                source = sources.pop()
                store.move_photo(source, rel, base, stat.st_size, stat.st_mtime_ns)
                del vanished[source]
                report.moved += 1
            else:
                plan.append((rel, path, "new"))
                continue
        except OSError as exc:  # vanished or unreadable since the walk: next run retries it
            report.problems.append((rel, f"cannot read: {exc}"))
        tick()
    return plan, list(vanished)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _store_outcome(outcome: _Outcome, store: CollectionStore, root: str, report: IndexReport) -> None:
    if outcome.error is not None:
        report.problems.append((outcome.rel, outcome.error))
        return
    store.add_photo(
        outcome.rel, root, outcome.sha256, outcome.size, outcome.mtime_ns,
        outcome.width, outcome.height, outcome.faces, outcome.status,
    )  # fmt: skip
    report.faces_added += len(outcome.faces)
    if outcome.status != "ok":  # counted apart from new/changed: the user has something to fix
        report.unreadable += 1
        report.problems.append((outcome.rel, outcome.status))
    elif outcome.kind == "new":
        report.new += 1
    else:
        report.changed += 1


# --- analysis, here or in worker processes ------------------------------------------------------


def analyse_file(analyzer: Any, rel: str, path: Path, kind: Kind) -> _Outcome:
    """Read, hash, decode and analyse one file. The hash and the faces come from the same bytes."""
    from faceatlas.image import load_image

    try:
        stat = path.stat()  # before reading: a file changing meanwhile gets a new mtime, so is redone
        data = path.read_bytes()
    except OSError as exc:
        return _Outcome(rel, kind, error=f"cannot read: {exc}")
    found = _Outcome(rel, kind, hashlib.sha256(data).hexdigest(), stat.st_size, stat.st_mtime_ns)
    try:
        image = load_image(data)
        faces = tuple(analyzer.analyze(image))
    except InvalidImageError as exc:
        return _replace(found, status=f"unreadable: {exc}")
    except ModelError:
        raise  # every photo would fail: end the job
    except Exception as exc:  # noqa: BLE001 - one odd photo must not end a job over thousands; not stored, so retried
        return _replace(found, error=f"analysis failed: {type(exc).__name__}: {exc}")
    return _replace(found, width=image.shape[1], height=image.shape[0], faces=faces)


def _replace(outcome: _Outcome, **changes: Any) -> _Outcome:
    return dataclasses.replace(outcome, **changes)


def _analyse_here(analyzer: Any, plan: list[tuple[str, Path, Kind]]) -> Iterator[_Outcome]:
    for rel, path, kind in plan:
        yield analyse_file(analyzer, rel, path, kind)


_WORKER_ANALYZER: Any = None


def _init_worker(factory: Callable[[], Any] | None, threads: int) -> None:
    global _WORKER_ANALYZER
    from faceatlas.models.runtime import THREADS_ENV

    os.environ.setdefault(THREADS_ENV, str(threads))  # N workers x all cores each would oversubscribe
    heif_available()
    if factory is None:
        from faceatlas.pipeline import FaceAnalyzer

        factory = FaceAnalyzer
    _WORKER_ANALYZER = factory()


def _analyse_in_worker(rel: str, path: Path, kind: Kind) -> _Outcome:
    return analyse_file(_WORKER_ANALYZER, rel, path, kind)


def _analyse_in_pool(
    factory: Callable[[], Any] | None, plan: list[tuple[str, Path, Kind]], workers: int
) -> Iterator[_Outcome]:
    """Outcomes in plan order, computed by ``workers`` spawned processes a few files ahead."""
    if not plan:
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    pool = ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker, initargs=(factory, threads)
    )
    try:
        todo = iter(plan)
        pending = deque(pool.submit(_analyse_in_worker, *item) for item in itertools.islice(todo, 4 * workers))
        while pending:
            outcome = pending.popleft().result()
            for item in itertools.islice(todo, 1):
                pending.append(pool.submit(_analyse_in_worker, *item))
            yield outcome
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # Ctrl-C: do not wait for the whole queue
