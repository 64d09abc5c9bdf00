"""The models and stores one service process shares across requests.

- **Models load once, lazily** (immich's ML service): the first request that needs faces pays the
  load, and ``/readyz`` or ``Engine.load()`` can pay it up front.
- **Bounded admission.** At most ``analysis_threads`` requests analyse images at once and at most
  ``max_waiting`` more wait for a turn. Any more are refused at once (``Overloaded``: 503 with
  Retry-After), before their upload is decoded, instead of piling up decoded images until the
  process is killed for memory.
- **One gallery, one lock.** The gallery's in-memory state (templates, calibration) is caught up
  from its store's change log under a lock; analysis runs outside it, so searches queue only
  behind the matrix work, never behind another request's face detection.
- **One collection store.** Opened on first use and kept: opening checks the file's integrity
  (tens of milliseconds for a large collection), which no thumbnail should pay. Its one SQLite
  connection is shared by the request threads behind the store's lock, one transaction at a time;
  in WAL mode each transaction sees what other processes committed before it began. Index and
  cluster jobs borrow this same store (one store per file per process), so nothing in the
  process ever opens the file a second time.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

from faceatlas.errors import FaceAtlasError
from faceatlas.server.settings import Settings

if TYPE_CHECKING:
    import numpy as np

    from faceatlas.collection.store import CollectionStore
    from faceatlas.embedders import Embedder
    from faceatlas.gallery.gallery import Gallery
    from faceatlas.types import Face


class Analyzer(Protocol):
    """What the engine needs of a face analyzer (a ``FaceAnalyzer``, or a test's stand-in)."""

    embedder: Embedder  # its model card names the model and its calibrated thresholds

    def analyze(self, image: np.ndarray) -> list[Face]: ...


class Overloaded(FaceAtlasError):
    """Too many requests are already waiting for the model."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Engine:
    """The analyzer, gallery and collection of one process (see the module docstring)."""

    def __init__(self, settings: Settings, analyzer_factory: Callable[[], Analyzer] | None = None) -> None:
        self.settings = settings
        self._factory = analyzer_factory
        self._models: tuple[str | None, str | None] = (None, None)
        if analyzer_factory is None:  # the settings' models, described from their cards (nothing loads)
            from faceatlas.models.catalog import card_of

            self._models = (
                _described(card_of(settings.detector, "detector")),
                _described(card_of(settings.embedder, "embedder")),
            )
        self._analyzer: Analyzer | None = None
        self._gallery: Gallery | None = None
        self._load_lock = threading.Lock()
        self.gallery_lock = threading.RLock()
        self.collection_lock = threading.RLock()  # held by every correction and by cluster jobs
        self._collection: CollectionStore | None = None  # once opened
        self._collection_file: tuple[int, int] | None = None  # (device, inode) of the file it opened
        self._retired: list[CollectionStore] = []  # stores of a file since replaced: requests may still hold them
        self._collection_open = threading.Lock()
        # the models run on these threads only: a request thread waits for one. Few threads touch
        # the models' big buffers, so the allocator keeps few arenas, and RSS stays flat even when
        # a flood rotates dozens of request threads through the image routes
        self._pool = ThreadPoolExecutor(settings.analysis_threads, thread_name_prefix="faceatlas-analysis")
        self._admitted = 0
        self._admit_lock = threading.Lock()
        self.model_load_seconds: float | None = None
        self.faces_analysed = 0
        self.on_model_load: Callable[[float], None] | None = None
        self.on_faces: Callable[[int], None] | None = None

    # -- models --------------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._analyzer is not None

    def analyzer(self) -> Analyzer:
        if self._analyzer is None:
            with self._load_lock:
                if self._analyzer is None:
                    started = time.perf_counter()
                    analyzer = (self._factory or self.model_factory())()
                    load = getattr(analyzer, "load", None)
                    if callable(load):
                        load()
                    self.model_load_seconds = time.perf_counter() - started
                    if self.on_model_load is not None:
                        self.on_model_load(self.model_load_seconds)
                    self._analyzer = analyzer
        return self._analyzer

    def load(self) -> None:
        self.analyzer()

    def model_factory(self) -> Callable[[], Analyzer]:
        """The analyzer FACEATLAS_DETECTOR / FACEATLAS_EMBEDDER name, as a picklable factory: what
        this process builds, and what an index job's worker processes build too."""
        from faceatlas.pipeline import FaceAnalyzer

        return functools.partial(FaceAnalyzer, detector=self.settings.detector, embedder=self.settings.embedder)

    def bound_models(self) -> tuple[str | None, str | None]:
        """("name version" of the detector, of the embedder) the service runs; None for what an
        injected analyzer (``create_app(analyzer_factory=...)``) does not say before it loads."""
        if self._factory is None:
            return self._models
        analyzer = self._analyzer
        embedder = getattr(analyzer, "embedder", None)
        card = getattr(embedder, "card", None)
        detector_card = getattr(getattr(analyzer, "detector", None), "card", None)
        return _described(detector_card), _described(card)

    @contextlib.contextmanager
    def admit(self) -> Iterator[None]:
        """Count one image request against the bound, or refuse it at once (``Overloaded``).

        Taken before the upload is decoded (an async dependency of the image routes), so a refused
        request costs neither a worker thread nor a decoded image."""
        limit = self.settings.analysis_threads + self.settings.max_waiting
        with self._admit_lock:
            if self._admitted >= limit:
                raise Overloaded(
                    f"the server is busy: {self._admitted} image requests are in progress or waiting "
                    f"(FACEATLAS_MAX_WAITING={self.settings.max_waiting}); retry shortly"
                )
            self._admitted += 1
        try:
            yield
        finally:
            with self._admit_lock:
                self._admitted -= 1

    @property
    def waiting(self) -> int:
        return max(0, self._admitted - self.settings.analysis_threads)

    def analyze(self, pixels: np.ndarray) -> list[Face]:
        """Every face in a decoded image, with embeddings, largest first (one analysis slot)."""
        faces = self._pool.submit(self._analyze, pixels).result()
        self.faces_analysed += len(faces)
        if self.on_faces is not None:
            self.on_faces(len(faces))
        return faces

    def _analyze(self, pixels: np.ndarray) -> list[Face]:
        return sorted(self.analyzer().analyze(pixels), key=lambda f: -f.box.area)

    # -- stores --------------------------------------------------------------------------------

    def gallery(self) -> Gallery:
        if self._gallery is None:
            with self.gallery_lock:
                if self._gallery is None:
                    from faceatlas.gallery.gallery import Gallery

                    self._gallery = Gallery.open(self.settings.gallery_location, analyzer=_Deferred(self))
        return self._gallery

    @contextlib.contextmanager
    def collection(self) -> Iterator[CollectionStore]:
        """The photo collection store (created if missing), shared by every request: see the module
        docstring. A context manager, so that a request says how long it uses it; leaving it does
        not close the store (``close`` does)."""
        yield self._collection_store()

    def _collection_store(self) -> CollectionStore:
        path = self.settings.collection_location  # a PostgreSQL URL has no file id: opened once
        store = self._collection
        if store is not None and _file_id(path) == self._collection_file:
            return store
        with self._collection_open:
            if self._collection is not None and _file_id(path) == self._collection_file:
                return self._collection
            from faceatlas.collection.store import CollectionStore

            # none yet, or the file was deleted or replaced since (a fresh start): open what is there now
            if self._collection is not None:
                self._retired.append(self._collection)
            self._collection, self._collection_file = None, None
            store = CollectionStore.open(path)
            self._collection, self._collection_file = store, _file_id(path)
            return store

    def close(self) -> None:
        with self.gallery_lock:
            if self._gallery is not None:
                self._gallery.close()
                self._gallery = None
        with self._collection_open:  # it reopens if the engine serves again
            for store in (*self._retired, self._collection):
                if store is not None:
                    store.close()
            self._collection, self._collection_file, self._retired = None, None, []


def _described(card: Any) -> str | None:
    return None if card is None else f"{card.name} {card.version}"


def _file_id(path: os.PathLike[str] | str) -> tuple[int, int] | None:
    """(device, inode) of a file, or None if it is not there: tells the same file from a new one."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


class _Deferred:
    """The analyzer as the gallery sees it: loaded when the gallery first needs it, not when opened,
    and used through the engine's admission so enrolment counts against the same bound."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine.analyzer(), name)

    def analyze(self, image: np.ndarray) -> list[Face]:
        return self._engine.analyze(image)
