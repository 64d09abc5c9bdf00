"""``index_folder``: bring a collection up to date with a folder of photos, resumably.

A re-run does only what changed since the last one:

- a file whose (size, mtime) match its row is not read at all;
- otherwise it is hashed: the same bytes only update (size, mtime); other bytes are analysed
  again and replace the photo and its faces;
- a new file whose bytes are those of a file that vanished was moved or renamed: its row follows
  it, keeping its faces, clusters and the user's constraints;
- files gone from the folder are forgotten with their faces;
- an image that cannot be decoded gets a row saying so, so it is not retried until it changes.

Videos (``collection.video.VIDEO_EXTENSIONS``) are indexed with the photos, under the same rules
(one row, of kind "video"; a corrupt one is stored as unreadable): their faces are tracks, one
face per track, with the time it was seen at (``collection.video``).

Every photo is written in one transaction (photo row and all its faces), so a job killed at any
moment loses at most the photo it was analysing, and the next run picks it up.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import os
import time
from collections.abc import Callable, Generator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from stat import S_ISREG
from typing import Any, Literal

from faceatlas._files import sha256_file
from faceatlas.collection.store import (
    CollectionError,
    CollectionStore,
    FaceOrigin,
    MediaKind,
    NewPhoto,
    VideoMoment,
    model_tag,
)
from faceatlas.collection.video import DEFAULT_VIDEO_FPS, VIDEO_EXTENSIONS, check_fps, is_video, video_faces
from faceatlas.errors import FaceAtlasError, InvalidArgumentError, InvalidImageError, ModelError
from faceatlas.image import heif_available, image_extensions, iter_image_files
from faceatlas.parallel import WorkerError, map_ordered, resolve_workers
from faceatlas.types import Face

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
    videos: int = 0  # of the files stored this run (new, changed, unreadable), the videos
    tracks: int = 0  # faces added from videos: one per track
    named: int = 0  # faces named by their photo's metadata (face regions) and put in that person's cluster
    problems: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (path, what was odd in its metadata): not failures

    def __str__(self) -> str:
        summary = (
            f"{self.root}: {self.new} new, {self.changed} changed, {self.unchanged} unchanged, "
            f"{self.moved} moved, {self.removed} removed; {self.faces_added} face(s) added; "
            f"{len(self.problems)} problem(s) ({self.unreadable} unreadable)"
        )  # every unreadable photo is one of the problems listed below: the counts agree
        if self.videos:
            summary += f"; videos: {self.videos}, with {self.tracks} face track(s)"
        if self.named:
            summary += f"; {self.named} face(s) named by the photos' face regions"
        lines = [summary]
        lines += [f"  {path}: {why}" for path, why in self.problems]
        lines += [f"  {path}: note: {what}" for path, what in self.notes]
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
    media: MediaKind = "photo"
    duration: float | None = None
    moments: tuple[VideoMoment, ...] | None = None  # a video's: one per face
    damage: tuple[str, ...] = ()  # a video read only up to some damage: what it said (the faces before are kept)
    taken_at: str | None = None  # EXIF capture time
    names: tuple[str | None, ...] = ()  # per face, the name its photo's metadata gives it (empty: none named)
    origins: tuple[FaceOrigin, ...] | None = None  # per face; None: all detected
    notes: tuple[str, ...] = ()  # what was odd in the photo's metadata (regions skipped...)


# --- the job --------------------------------------------------------------------------------------


def index_folder(
    root: str | os.PathLike[str],
    store: CollectionStore,
    analyzer: Any = None,
    *,
    workers: int | None = 1,
    progress: Progress | None = None,
    allowed_roots: Sequence[str | os.PathLike[str]] | None = None,
    video_fps: float = DEFAULT_VIDEO_FPS,
) -> IndexReport:
    """Index every photo (and video) under ``root`` into ``store``; see the module docstring.

    ``analyzer``: a ``FaceAnalyzer`` (or anything with ``analyze(image) -> list[Face]`` and
    ``embedder.card``), a zero-argument factory of one (a class, ``functools.partial``), or None
    for ``FaceAnalyzer`` with the embedder the collection is bound to (the default for a new one;
    a collection of a bring-your-own model needs its analyzer passed). With ``workers > 1`` photos
    are analysed in that many spawned processes, each building its own analyzer once, so the
    analyzer must be None or a picklable factory; the store is written by this process only, in
    folder order. ``workers=None``: one per core within the memory budget
    (``faceatlas.parallel.default_workers``; the CLI's default), or 1 for an analyzer object.
    Worker processes are spawned: a script that uses them needs the ``if __name__ == "__main__":``
    guard.
    ``progress(done, total)`` is called after each file.

    ``allowed_roots``: the folders this run may read (the service passes its photo roots). Then
    ``root`` must lie inside one, and a file whose real path (symlinks resolved) leads outside them
    is skipped and listed in ``problems``; it is read through its real path, never through a link
    swapped in since. None (the CLI): the folder named is trusted, and links are followed.

    ``video_fps``: frames analysed per second of a video (sampled by time).
    """
    if workers is not None and workers < 1:
        raise InvalidArgumentError(f"workers must be at least 1, got {workers}")
    job = _start_job(root, store, analyzer, workers or 1, progress, allowed_roots)
    job.video_fps = check_fps(video_fps)
    factory, local, plan, folder = job.factory, job.analyzer, job.plan, job.folder
    if workers is None:  # automatic: an analyzer object cannot be sent to other processes
        workers = 1 if factory is None else resolve_workers(None, len(plan))
    try:
        follow, fps = job.follow, job.video_fps
        outcomes = (
            _analyse_here(local, plan, follow, fps)
            if workers == 1
            else _analyse_in_pool(factory, plan, workers, follow, fps)
        )
        with closing(outcomes):
            for outcome in outcomes:
                job.store_outcome(outcome)
    except WorkerError as exc:
        raise CollectionError(
            f"a worker process failed to start or died while indexing {folder} (out of memory? its error is "
            "printed above); the photos stored so far are kept: run again, with fewer workers, to resume"
        ) from exc
    return job.finish()


@dataclass
class _IndexJob:
    """An index run once its cheap part is done (``_start_job``): what is left to analyse, and how
    to store and finish. ``index_folder`` and ``ray_index.index_folder_ray`` differ only in where
    ``plan`` is analysed."""

    folder: Path
    store: CollectionStore
    base: str  # the root the photos are filed under
    plan: list[tuple[str, Path, Kind]]
    vanished: list[str]
    follow: bool  # False when confined: the plan holds real paths, read without following a link
    report: IndexReport
    tick: Callable[[], None]
    factory: Callable[[], Any] | None  # for analyzers built elsewhere (worker processes, Ray actors)
    analyzer: Any  # this process's
    # photos per write transaction: 1 = each photo committed as it comes. More (the Ray driver, whose
    # outcomes arrive faster than one commit each can keep up with) holds analysed photos back until
    # ``batch`` are ready or the oldest waited ``max_wait_s``: a kill loses those too (still "in flight")
    batch: int = 1
    max_wait_s: float = 1.0
    video_fps: float = DEFAULT_VIDEO_FPS
    sidecars_due: list[tuple[str, Path]] = field(default_factory=list)  # unchanged photos, edited sidecars
    _pending: list[_Outcome] = field(default_factory=list)
    _since: float = 0.0  # when the oldest pending outcome arrived (time.monotonic)

    def store_outcome(self, outcome: _Outcome) -> None:
        if self.batch <= 1 or outcome.error is not None:
            self.flush()  # in order: a problem is reported after the photos analysed before it
            _store_outcome(outcome, self.store, self.base, self.report)
            self.tick()
            return
        if not self._pending:
            self._since = time.monotonic()
        self._pending.append(outcome)
        if len(self._pending) >= self.batch or time.monotonic() - self._since >= self.max_wait_s:
            self.flush()

    def flush(self) -> None:
        """Store the photos held back, in one transaction."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        ids = self.store.add_photos([_new_photo(outcome, self.base) for outcome in pending])
        for photo_id, outcome in zip(ids, pending, strict=True):
            _name_faces(self.store, photo_id, outcome, self.report)
            _count_stored(outcome, self.report)
            self.tick()

    def finish(self) -> IndexReport:
        """Forget the files gone from the folder, last: a run killed before keeps them, so the next
        run still sees a file moved meanwhile as moved."""
        self.flush()
        self._reread_sidecars()
        self.report.removed = self.store.remove_photos(self.vanished, self.base)
        return self.report

    def _reread_sidecars(self) -> None:
        """Name the faces of unchanged photos whose sidecar was edited since (another photo tool
        tagged them): their regions are read again, their faces not analysed again."""
        if not self.sidecars_due:
            return
        from faceatlas.collection.names_import import NamesImport, apply_regions
        from faceatlas.xmp import read_regions

        records = {p.path: p for p in self.store.photos(self.base)}
        found = NamesImport("sidecars")
        for rel, path in self.sidecars_due:
            record = records.get(rel)
            if record is None or record.kind != "photo" or record.status != "ok" or record.width is None:
                continue
            try:
                regions = read_regions(path, size=(record.width, record.height or 0))
            except FaceAtlasError as exc:
                self.report.notes.append((rel, f"face regions: {exc}"))
                continue
            self.report.notes.extend((rel, problem) for problem in regions.problems)
            apply_regions(self.store, record, regions.regions, self.analyzer, found)
            self.store.mark_read(record.id)
        self.report.named += found.tagged
        self.report.notes.extend(found.problems)


def _start_job(
    root: str | os.PathLike[str],
    store: CollectionStore,
    analyzer: Any,
    workers: int,
    progress: Progress | None,
    allowed_roots: Sequence[str | os.PathLike[str]] | None,
) -> _IndexJob:
    """Check the folder, bind the model, walk the folder and settle every file that needs no analysis."""
    folder = Path(root).expanduser().resolve()
    if not folder.is_dir():
        raise CollectionError(f"{root} is not a folder; pass the folder of photos to index")
    allowed = None if allowed_roots is None else [Path(r).expanduser().resolve() for r in allowed_roots]
    if allowed is not None and not _inside(folder, allowed):
        raise CollectionError(f"{root} is not inside the folders this run may read ({', '.join(map(str, allowed))})")
    factory, local = _resolve_analyzer(analyzer, workers, store)
    store.bind_model(model_tag(local))  # refuses another model before any work
    base, prefix = _adopt_root(store, folder)
    unlisted: list[OSError] = []  # folders that could not be listed: reported, not silently skipped
    files = {prefix + path.relative_to(folder).as_posix(): path for path in list_photos(folder, unlisted.append)}
    report = IndexReport(str(folder))
    unread: list[str] = []  # their paths' prefixes: photos stored under them are kept, not forgotten
    for exc in unlisted:
        where = Path(str(exc.filename)).relative_to(folder).as_posix() if exc.filename else "."
        unread.append(prefix if where == "." else prefix + where + "/")
        report.problems.append((prefix + where + "/", f"cannot read this folder: {exc.strerror or exc}"))
    if allowed is not None:
        files = _confine(files, allowed, report)
    done = itertools.count(1)

    def tick() -> None:
        if progress is not None:
            progress(next(done), len(files))

    due: list[tuple[str, Path]] = []
    plan, vanished = _settle_cheap(files, store, base, prefix, report, tick, unread, due)
    job = _IndexJob(folder, store, base, plan, vanished, allowed is None, report, tick, factory, local)
    job.sidecars_due = due
    return job


def list_photos(folder: Path, on_error: Callable[[OSError], None] | None = None) -> list[Path]:
    """Image and video files under ``folder``, sorted: the same walk as every other command's
    (``faceatlas.image.iter_image_files``). A folder that cannot be listed is skipped;
    ``on_error(exc)`` is told of each."""
    return list(iter_image_files(folder, on_error=on_error, extensions=image_extensions() | VIDEO_EXTENSIONS))


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


def _confine(files: dict[str, Path], allowed: Sequence[Path], report: IndexReport) -> dict[str, Path]:
    """``files`` by their real paths, less those that lead outside ``allowed`` (listed in ``report``).

    Folder links are never followed by the walk; a file link is, so where it leads is checked here.
    """
    kept = {}
    for rel, path in files.items():
        try:
            real = path.resolve()  # a dangling link stays inside if its target would: its read then fails
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
            report.problems.append((rel, f"cannot read: {exc}"))
            continue
        if _inside(real, allowed):
            kept[rel] = real
        else:
            report.problems.append((rel, "a link to a file outside the folders this run may read: skipped"))
    return kept


def _resolve_analyzer(analyzer: Any, workers: int, store: Any = None) -> tuple[Callable[[], Any] | None, Any]:
    """(factory for worker processes, analyzer for this process). None: the embedder the collection
    is bound to (a registered one; a bring-your-own model must be passed), the default for a new one."""
    if analyzer is None:
        from faceatlas.models.catalog import analyzer_options
        from faceatlas.pipeline import FaceAnalyzer

        options = analyzer_options(store.model() if store is not None else None, where="the collection")
        factory = functools.partial(FaceAnalyzer, **options)  # picklable: the workers build the same one
        return factory, factory()  # loads nothing until used: in a pool only its card is read here
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
    unread: Sequence[str] = (),
    sidecars_due: list[tuple[str, Path]] | None = None,
) -> tuple[list[tuple[str, Path, Kind]], list[str]]:
    """Deal with every file that needs no analysis; returns (files to analyse, paths to forget).
    Unchanged photos whose sidecar changed since they were indexed go to ``sidecars_due``.

    Photos stored under a folder that could not be listed (``unread``: path prefixes) are neither
    forgotten nor taken as the source of a move: the folder may be readable again next run."""
    stored = store.photo_states(base, prefix)
    vanished = {
        rel: state
        for rel, state in stored.items()
        if rel not in files and not any(rel.startswith(folder) for folder in unread)
    }
    moved_from: dict[str, list[str]] = {}  # sha256 -> vanished paths with those bytes
    for rel, state in vanished.items():
        moved_from.setdefault(state.sha256, []).append(rel)
    plan: list[tuple[str, Path, Kind]] = []
    for rel, path in files.items():
        old = stored.get(rel)
        try:
            stat = path.stat()
            if not S_ISREG(stat.st_mode):  # a FIFO named like a photo would block the hash below forever
                raise OSError(f"{path.name} is not a regular file")
            if old is not None and (old.size, old.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
                report.unchanged += 1
                if sidecars_due is not None and _sidecar_newer(path, old.indexed_at):
                    sidecars_due.append((rel, path))
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


def _sidecar_newer(photo: Path, indexed_at: str) -> bool:
    """Whether one of the photo's sidecars was written after the photo was indexed."""
    from faceatlas.xmp.regions import sidecar_candidates

    sidecars = sidecar_candidates(photo)
    if not sidecars or not indexed_at:
        return False
    try:
        since = datetime.fromisoformat(indexed_at).timestamp()
        return any(side.stat().st_mtime > since for side in sidecars)
    except (OSError, ValueError):
        return False


def _store_outcome(outcome: _Outcome, store: CollectionStore, root: str, report: IndexReport) -> None:
    if outcome.error is not None:
        report.problems.append((outcome.rel, outcome.error))
        return
    (photo_id,) = store.add_photos([_new_photo(outcome, root)])
    _name_faces(store, photo_id, outcome, report)
    _count_stored(outcome, report)


def _new_photo(outcome: _Outcome, root: str) -> NewPhoto:
    return NewPhoto(
        outcome.rel, root, outcome.sha256, outcome.size, outcome.mtime_ns,
        outcome.width, outcome.height, outcome.faces, outcome.status,
        outcome.media, outcome.duration, outcome.moments, outcome.taken_at, outcome.origins,
    )  # fmt: skip


def _name_faces(store: CollectionStore, photo_id: int, outcome: _Outcome, report: IndexReport) -> None:
    """The names the photo's face regions gave its faces, made corrections (``regions.tag_faces``)."""
    if not any(outcome.names):
        return
    from faceatlas.collection.regions import tag_faces

    stored: dict[tuple[float, ...], int] = {face.box: face.id for face in store.faces_of_photo(photo_id)}
    tags = []
    for face, name in zip(outcome.faces, outcome.names, strict=True):
        face_id = stored.get(tuple(float(v) for v in face.box.as_xyxy()))
        if name is not None and face_id is not None:  # None: a detection dropped where the user removed one
            tags.append((face_id, name))
    tagged = tag_faces(store, tags)
    report.named += tagged.tagged
    report.notes.extend((outcome.rel, problem) for problem in tagged.problems)


def _count_stored(outcome: _Outcome, report: IndexReport) -> None:
    report.notes.extend((outcome.rel, note) for note in outcome.notes)
    report.faces_added += len(outcome.faces)
    if outcome.media == "video":
        report.videos += 1
        report.tracks += len(outcome.faces)
        report.problems.extend((outcome.rel, f"partly read: {why}") for why in outcome.damage)
    if outcome.status != "ok":  # counted apart from new/changed: the user has something to fix
        report.unreadable += 1
        report.problems.append((outcome.rel, outcome.status))
    elif outcome.kind == "new":
        report.new += 1
    else:
        report.changed += 1


# --- analysis, here or in worker processes ------------------------------------------------------


def analyse_file(
    analyzer: Any, rel: str, path: Path, kind: Kind, follow: bool = True, video_fps: float = DEFAULT_VIDEO_FPS
) -> _Outcome:
    """Read, hash, decode and analyse one file. The hash and the faces come from the same bytes.
    ``follow=False``: ``path`` is a real path, and a symlink found there now is refused, not read.
    A video is analysed by ``analyse_video``."""
    from faceatlas.image import capture_time, load_image

    if is_video(path):
        return analyse_video(analyzer, rel, path, kind, follow, video_fps)
    try:
        stat, data = _read(path, follow)
    except OSError as exc:
        return _Outcome(rel, kind, error=f"cannot read: {exc}")
    found = _Outcome(rel, kind, hashlib.sha256(data).hexdigest(), stat.st_size, stat.st_mtime_ns)
    try:
        image = load_image(data)
        faces = tuple(analyzer.analyze(image))
        named = _regions(analyzer, path, data, image, faces)
    except InvalidImageError as exc:
        return _replace(found, status=f"unreadable: {exc}")
    except ModelError:
        raise  # every photo would fail: end the job
    except Exception as exc:  # noqa: BLE001 - one odd photo must not end a job over thousands; not stored, so retried
        return _replace(found, error=f"analysis failed: {type(exc).__name__}: {exc}")
    return _replace(
        found,
        width=image.shape[1],
        height=image.shape[0],
        faces=tuple(named.faces),
        taken_at=capture_time(data),
        names=tuple(named.names) if any(named.names) else (),
        origins=tuple(named.origins),
        notes=tuple(named.problems),
    )


def _regions(analyzer: Any, path: Path, data: bytes, image: Any, faces: tuple[Face, ...]) -> Any:
    """The photo's faces with the names of its face regions (``collection.regions``); metadata that
    cannot be read is a note, never a reason to lose the photo."""
    from faceatlas.collection.regions import RegionFaces, attach_regions
    from faceatlas.xmp import read_regions

    try:
        found = read_regions(path, data=data, size=(image.shape[1], image.shape[0]))
    except FaceAtlasError as exc:
        return RegionFaces(list(faces), [None] * len(faces), ["detected"] * len(faces), [f"face regions: {exc}"])
    named = attach_regions(analyzer, image, faces, found.regions)
    named.problems[:0] = list(found.problems)
    return named


def analyse_video(
    analyzer: Any, rel: str, path: Path, kind: Kind, follow: bool = True, fps: float = DEFAULT_VIDEO_FPS
) -> _Outcome:
    """Hash and analyse one video, through one descriptor (never read whole into memory): its
    tracks become its faces (``collection.video.video_faces``). A file that is no video this
    faceatlas reads is stored as unreadable, as an undecodable photo is."""
    try:
        fh = _open(path, follow)
    except OSError as exc:
        return _Outcome(rel, kind, error=f"cannot read: {exc}")
    with fh:
        try:
            stat = os.fstat(fh.fileno())
            digest = hashlib.sha256()
            while block := fh.read(1 << 20):
                digest.update(block)
        except OSError as exc:
            return _Outcome(rel, kind, error=f"cannot read: {exc}")
        found = _Outcome(rel, kind, digest.hexdigest(), stat.st_size, stat.st_mtime_ns, media="video")
        # confined (the service): decode the file hashed, not whatever the path leads to by now
        opened = f"/proc/self/fd/{fh.fileno()}"
        source = opened if not follow and os.path.exists(opened) else str(path)
        try:
            seen = video_faces(analyzer, source, fps)
        except ModelError:
            raise  # every file would fail: end the job
        except FaceAtlasError as exc:  # InvalidVideoError: not a video, corrupt, a codec not supported
            return _replace(found, status=f"unreadable: {str(exc).replace(source, path.name)}")
        except Exception as exc:  # noqa: BLE001 - as for photos: one odd video must not end a job; retried
            return _replace(found, error=f"analysis failed: {type(exc).__name__}: {exc}")
    return _replace(
        found,
        width=seen.width,
        height=seen.height,
        duration=seen.duration,
        faces=seen.faces,
        moments=seen.moments,
        damage=tuple(why.replace(source, path.name) for why in seen.problems),
    )


def _open(path: Path, follow: bool) -> Any:
    """``path`` opened for reading, a regular file (see ``_read``)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | (0 if follow else getattr(os, "O_NOFOLLOW", 0))
    fh = os.fdopen(os.open(path, flags), "rb")
    if not S_ISREG(os.fstat(fh.fileno()).st_mode):
        fh.close()
        raise OSError(f"{path.name} is not a regular file")
    return fh


def _read(path: Path, follow: bool) -> tuple[os.stat_result, bytes]:
    """(stat, bytes) of one regular file, through one descriptor: the stat is taken before reading,
    so a file changing meanwhile gets a new mtime and is redone. Non-blocking open: a FIFO named
    like a photo is refused, not waited on."""
    with _open(path, follow) as fh:
        return os.fstat(fh.fileno()), fh.read()


def _replace(outcome: _Outcome, **changes: Any) -> _Outcome:
    return dataclasses.replace(outcome, **changes)


def _analyse_here(
    analyzer: Any, plan: list[tuple[str, Path, Kind]], follow: bool, fps: float = DEFAULT_VIDEO_FPS
) -> Generator[_Outcome]:
    for rel, path, kind in plan:
        yield analyse_file(analyzer, rel, path, kind, follow, fps)


def _analyse_in_worker(analyzer: Any, item: tuple[str, Path, Kind, bool, float]) -> _Outcome:
    rel, path, kind, follow, fps = item
    return analyse_file(analyzer, rel, path, kind, follow, fps)


def _analyse_in_pool(
    factory: Callable[[], Any] | None,
    plan: list[tuple[str, Path, Kind]],
    workers: int,
    follow: bool,
    fps: float = DEFAULT_VIDEO_FPS,
) -> Generator[_Outcome]:
    """Outcomes in plan order, computed a few files ahead by ``workers`` processes: this one and
    ``workers - 1`` spawned ones (``faceatlas.parallel.map_ordered``)."""
    if not plan:
        return
    from faceatlas.pipeline import FaceAnalyzer

    items = ((rel, path, kind, follow, fps) for rel, path, kind in plan)
    yield from map_ordered(
        functools.partial(_worker_analyzer, factory or FaceAnalyzer), _analyse_in_worker, items, workers
    )


def _worker_analyzer(factory: Callable[[], Any]) -> Any:
    heif_available()  # registers the HEIF opener in this process too
    return factory()
