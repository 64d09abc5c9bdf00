"""Where evaluation protocols get faces from, and the cache that makes re-runs fast.

A protocol asks a :class:`FaceSource` for the faces of many image files. The source runs a
face system (faceatlas's pipeline, or a baseline such as face_recognition in ``benchmarks/``)
and the :class:`ResultCache` keeps each image's result under (the source's ``key``, the sha256 of
the file's bytes): a renamed or copied file hits the cache, an edited file misses it, and an
interrupted run resumes where it stopped because results are committed batch by batch.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import platformdirs

from faceatlas._files import sha256_file
from faceatlas.errors import InvalidArgumentError, InvalidImageError
from faceatlas.image import load_image
from faceatlas.types import Box, Face, Landmarks, Pose, Quality

# bump when the stored layout or what a source computes changes: old entries stop matching
CACHE_SCHEMA = 2  # 2: a seventh quality column, the heuristic behind a learned score


@dataclass(frozen=True, slots=True)
class ImageResult:
    """One image's faces (best first), or the reason it could not be read."""

    faces: tuple[Face, ...]
    width: int
    height: int
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class FaceSource(Protocol):
    """A face system under evaluation.

    ``key`` names the configuration completely (models, options): two sources with the same key
    must give the same faces, since the cache trusts it.
    """

    key: str

    def analyze_images(self, images: Sequence[np.ndarray], embed: bool) -> list[list[Face]]: ...


class AnalyzerSource:
    """faceatlas's own pipeline as a :class:`FaceSource`.

    Built from ``FaceAnalyzer`` options (``AnalyzerSource(detector="mtcnn", flip=True)``) it can
    be rebuilt in worker processes (``FaceRunner(workers=2)``); built around an existing
    analyzer it runs in this process only.
    """

    def __init__(self, analyzer: object | None = None, key: str | None = None, **options: object) -> None:
        from faceatlas.pipeline import FaceAnalyzer

        if analyzer is not None and options:
            raise TypeError("pass either an analyzer or FaceAnalyzer options, not both")
        self._options = None if analyzer is not None else options
        self.analyzer: FaceAnalyzer = analyzer if analyzer is not None else FaceAnalyzer(**options)  # type: ignore[assignment,arg-type]
        self.key = key or analyzer_key(self.analyzer)

    def factory(self) -> Callable[[], FaceSource] | None:
        """A picklable way to build this source again in another process (None if there is none)."""
        return None if self._options is None else functools.partial(AnalyzerSource, key=self.key, **self._options)

    def analyze_images(self, images: Sequence[np.ndarray], embed: bool) -> list[list[Face]]:
        if embed:
            return self.analyzer.analyze_batch(images)
        return self.analyzer.detect_batch(images)


def analyzer_key(analyzer: object) -> str:
    """A readable key from a FaceAnalyzer's parts (class names and the options that change output)."""
    parts = []
    for role in ("detector", "aligner", "embedder"):
        part = getattr(analyzer, role)
        options = {
            name: getattr(part, name)
            for name in (
                "min_face_size",
                "score_threshold",
                "nms_threshold",
                "scales",
                "thresholds",
                "nms_thresholds",
                "scale_factor",
                "refine_landmarks",
                "max_size",
                "flip",
                "input_size",
            )
            if isinstance(getattr(part, name, None), (int, float, bool, str, tuple))
        }
        if getattr(part, "int8", False) is True:  # only when set: float32 keys stay as they were
            options["int8"] = True
        card = getattr(part, "card", None)
        if card is not None:  # a user's ONNX file: its name and digest, not just the class
            options["model"] = f"{card.name}@{card.version}"
        described = ",".join(f"{k}={v}" for k, v in sorted(options.items()))
        parts.append(f"{type(part).__name__}({described})")
    from faceatlas import __version__
    from faceatlas.pose import POSE_MODEL

    model = getattr(analyzer, "quality_model", None)
    learned = "" if model is None else f"+quality({model.method})"  # heuristic-only keys stay as they were
    return f"faceatlas-{__version__}:" + "+".join(parts) + f"+pose({POSE_MODEL})" + learned


def file_digest(path: Path) -> str:
    return sha256_file(path)  # in chunks: a large file is not read into memory whole


# -- storage --------------------------------------------------------------------------------------


_COLUMNS = ("boxes", "scores", "landmarks", "pose", "quality", "embeddings")


def _pack(result: ImageResult) -> tuple:
    """A row: sizes, error, then each per-face array as raw bytes (None where a stage did not run).

    Raw ``tobytes`` columns instead of npz or pickle: loading is a ``frombuffer`` per column,
    fast enough that a cached re-run is dominated by the metrics, and nothing executes code.
    """
    faces = result.faces
    n = len(faces)

    def column(values: list, dtype: type) -> bytes:
        return np.asarray(values, dtype=dtype).tobytes()

    pose = quality = embeddings = None
    if n and all(f.pose is not None for f in faces):
        pose = column([[f.pose.yaw, f.pose.pitch, f.pose.roll] for f in faces], np.float64)  # type: ignore[union-attr]
    if n and all(f.quality is not None for f in faces):
        quality = column([_quality_row(f.quality) for f in faces], np.float64)  # type: ignore[arg-type]
    dim = 0
    if n and all(f.embedding is not None for f in faces):
        embeddings = column([f.embedding for f in faces], np.float32)
        dim = len(faces[0].embedding)  # type: ignore[arg-type]
    return (
        result.width,
        result.height,
        n,
        dim,
        result.error,
        column([f.box.as_xyxy() for f in faces], np.float64),
        column([f.score for f in faces], np.float64),
        column([f.landmarks.points for f in faces], np.float32),
        pose,
        quality,
        embeddings,
    )


def _quality_row(quality: Quality) -> list[float]:
    """score, the five components, and a learned score's heuristic (NaN: the score is the heuristic)."""
    heuristic = math.nan if quality.heuristic is None else quality.heuristic
    return [quality.score, *quality.components().values(), heuristic]


def _quality_of(row: np.ndarray) -> Quality:
    score, size, sharpness, pose, exposure, confidence, *rest = row.tolist()
    plain = Quality(score, size, sharpness, pose, exposure, confidence)
    if not rest or math.isnan(rest[0]):  # no seventh column: a row cached before learned quality
        return plain
    return dataclasses.replace(plain, heuristic=rest[0], method="learned")


def _unpack(row: tuple) -> ImageResult:
    width, height, n, dim, error, boxes, scores, landmarks, pose, quality, embeddings = row
    boxes = np.frombuffer(boxes, np.float64).reshape(n, 4)
    scores = np.frombuffer(scores, np.float64)
    landmarks = np.frombuffer(landmarks, np.float32).reshape(n, 5, 2)
    poses = np.frombuffer(pose, np.float64).reshape(n, 3) if pose is not None else None
    qualities = np.frombuffer(quality, np.float64).reshape(n, -1) if quality is not None and n else None
    vectors = np.frombuffer(embeddings, np.float32).reshape(n, dim) if embeddings is not None else None
    faces = tuple(
        Face(
            box=Box(*boxes[i].tolist()),
            score=float(scores[i]),
            landmarks=Landmarks(landmarks[i]),
            pose=Pose(*poses[i].tolist()) if poses is not None else None,
            quality=_quality_of(qualities[i]) if qualities is not None else None,
            embedding=vectors[i] if vectors is not None else None,
        )
        for i in range(n)
    )
    return ImageResult(faces, width, height, error)


class ResultCache:
    """An SQLite file of results; ``stage`` is "detect" or "embed" (an embed entry serves both)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS results (source TEXT, digest TEXT, embedded INTEGER,"
            " width INTEGER, height INTEGER, n INTEGER, dim INTEGER, error TEXT, boxes BLOB, scores BLOB,"
            " landmarks BLOB, pose BLOB, quality BLOB, embeddings BLOB, PRIMARY KEY (source, digest))"
        )
        self._db.commit()

    def get(self, source: str, digests: Sequence[str], embed: bool) -> dict[str, ImageResult]:
        out: dict[str, ImageResult] = {}
        unique = list(dict.fromkeys(digests))
        for start in range(0, len(unique), 500):  # SQLite caps the number of bound variables
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT digest, width, height, n, dim, error, boxes, scores, landmarks, pose, quality, embeddings"
                f" FROM results WHERE source = ? AND embedded >= ? AND digest IN ({marks})",
                [source, int(embed), *chunk],
            )
            out.update({row[0]: _unpack(row[1:]) for row in rows})
        return out

    def put(self, source: str, items: dict[str, ImageResult], embed: bool) -> None:
        self._db.executemany(
            f"INSERT OR REPLACE INTO results VALUES ({','.join('?' * 14)})",
            [(source, digest, int(embed), *_pack(result)) for digest, result in items.items()],
        )
        self._db.commit()

    def close(self) -> None:
        self._db.close()


def default_cache_path() -> Path:
    root = os.environ.get("FACEATLAS_EVAL_CACHE") or Path(platformdirs.user_cache_dir("faceatlas")) / "eval"
    return Path(root).expanduser() / f"results-v{CACHE_SCHEMA}.sqlite"


# -- the runner ----------------------------------------------------------------------------------


@dataclass
class RunStats:
    images: int = 0
    cached: int = 0
    computed: int = 0
    unreadable: int = 0
    compute_seconds: float = 0.0
    errors: dict[str, str] = field(default_factory=dict)  # path → reason, for the report

    @property
    def images_per_second(self) -> float | None:
        return self.computed / self.compute_seconds if self.compute_seconds > 0 else None


class FaceRunner:
    """Gives a protocol every image's faces, from the cache where it can.

    ``cache=None`` uses :func:`default_cache_path`; ``cache=False`` turns caching off.
    ``workers > 1`` computes in that many processes (one ONNX Runtime thread each, which uses
    cores better than threads in one process); the source must offer ``factory()``.
    """

    def __init__(
        self,
        source: FaceSource,
        cache: ResultCache | Path | str | None | bool = None,
        batch_size: int = 16,
        progress: Callable[[int], None] | None = None,
        workers: int = 1,
    ) -> None:
        self.source = source
        if cache is False:
            self.cache: ResultCache | None = None
        elif isinstance(cache, ResultCache):
            self.cache = cache
        else:
            self.cache = ResultCache(Path(cache) if cache not in (None, True) else default_cache_path())  # type: ignore[arg-type]
        if batch_size < 1 or workers < 1:
            raise InvalidArgumentError("batch_size and workers must be at least 1")
        self.factory: Callable[[], FaceSource] | None = (
            getattr(source, "factory", lambda: None)() if workers > 1 else None
        )
        if workers > 1 and self.factory is None:
            raise InvalidArgumentError(
                "workers > 1 needs a source that can be rebuilt in a worker (a factory() method)"
            )
        self.batch_size = batch_size
        self.progress = progress
        self.workers = workers
        self.stats = RunStats()

    def reset_stats(self) -> RunStats:
        """Start counting afresh (each protocol reports its own images, not the runner's lifetime)."""
        self.stats = RunStats()
        return self.stats

    def results(self, paths: Sequence[Path], embed: bool = True) -> dict[Path, ImageResult]:
        """Each distinct path's :class:`ImageResult`; unreadable files get ``error`` set."""
        unique = sorted(set(map(Path, paths)))
        self.stats.images += len(unique)
        out: dict[Path, ImageResult] = {}
        digests: dict[Path, str] = {}
        for path in unique:
            try:
                digests[path] = file_digest(path)
            except OSError as exc:
                out[path] = ImageResult((), 0, 0, f"cannot read file: {exc.strerror or exc}")
        cached = self.cache.get(self.source.key, list(digests.values()), embed) if self.cache else {}
        todo = []
        for path, digest in digests.items():
            if digest in cached:
                out[path] = cached[digest]
                self.stats.cached += 1
            else:
                todo.append(path)
        if self.progress and len(unique) - len(todo):
            self.progress(len(unique) - len(todo))
        batches = [todo[i : i + self.batch_size] for i in range(0, len(todo), self.batch_size)]
        started = time.perf_counter()
        for computed in self._compute(batches, embed):
            out.update(computed)
            # committed batch by batch: an interrupted run keeps everything finished so far
            if self.cache:
                self.cache.put(self.source.key, {digests[p]: r for p, r in computed.items()}, embed)
            self.stats.computed += sum(r.ok for r in computed.values())
            if self.progress:
                self.progress(len(computed))
        self.stats.compute_seconds += time.perf_counter() - started if batches else 0.0
        for path, result in out.items():
            if not result.ok:
                self.stats.unreadable += 1
                self.stats.errors[str(path)] = result.error or ""
        return out

    def _compute(self, batches: list[list[Path]], embed: bool) -> Iterator[dict[Path, ImageResult]]:
        factory = self.factory  # None only with workers == 1 (__init__ refuses otherwise)
        if self.workers == 1 or len(batches) < 2 or factory is None:
            for batch in batches:
                yield analyze_paths(self.source, batch, embed)
            return
        from faceatlas.parallel import map_ordered

        yield from map_ordered(factory, functools.partial(_worker_batch, embed=embed), batches, self.workers)


def analyze_paths(source: FaceSource, paths: Sequence[Path], embed: bool) -> dict[Path, ImageResult]:
    """Load and analyse a batch of files; an unreadable one gets its error instead of faces."""
    out: dict[Path, ImageResult] = {}
    images, readable = [], []
    for path in paths:
        try:
            images.append(load_image(path))
            readable.append(path)
        except InvalidImageError as exc:
            out[path] = ImageResult((), 0, 0, str(exc))
    found = source.analyze_images(images, embed) if images else []
    for path, image, faces in zip(readable, images, found, strict=True):
        out[path] = ImageResult(tuple(faces), image.shape[1], image.shape[0])
    return out


def _worker_batch(source: FaceSource, paths: list[Path], embed: bool) -> dict[Path, ImageResult]:
    return analyze_paths(source, paths, embed)
