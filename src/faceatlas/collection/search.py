"""Search by example over every face of a collection: named or not, ranked, filtered, open set.

>>> with CollectionStore.open("collection.db") as store:
...     result = search_faces(store, "who-is-this.jpg", filter=FaceFilter(taken_from="2019-01-01", unnamed=True))
...     result.matched, [(h.face.path, round(h.similarity, 3)) for h in result.hits[:3]]

**"No match" is an answer, calibrated.** A stranger's face is still somebody's nearest neighbour,
so a hit counts as a match only at or above ``open_set_threshold(card, fpir, comparisons)`` (the
gallery's rule, with the collection's model card), where ``comparisons`` is the number of faces the
search compares the probe with: those that pass the filter. That is where a stranger can be falsely
matched, so FPIR(t) = 1 − (1 − f(t))^N holds for that N; counting every face of the collection
instead would make a narrow search (one folder, one month) stricter than its FPIR asks, and a
search over a large collection's 1M faces capped at the card's strictest point anyway. When nothing
reaches the threshold, ``matched`` is False and ``hits`` still lists the nearest faces, each flagged.

**A filter never shrinks recall.** The filters (capture date, folder, person/cluster, unnamed) pick
the allowed faces first, from metadata held in memory; the shared index layer
(``faceatlas.vector_index``, the same index kind a gallery uses, from ``create_index``) then
searches only those: exactly when they are few (``FILTER_EXACT_BELOW``), otherwise with the filter
inside the HNSW walk, falling back to exact for a query the walk leaves short. Filtering an
unfiltered top-k afterwards ("post-filter") is never done: at 1 % selectivity it returns almost
nothing. benchmarks/face_search.py measures recall against exact and latency of each strategy.

**Kept up to date cheaply.** A ``FaceSearcher`` reads the store's faces once and then, before each
search, a change token (SQLite: microseconds) and, when it moved (or on PostgreSQL, always), a
fingerprint of aggregate queries (faces: count, max id, sum of cluster labels; photos: count, max
id, path lengths). When the faces changed it re-reads the
face table and adds or removes only what changed (new faces have larger ids: the store never reuses
one), so an HNSW graph is not rebuilt; when only clusters or photos changed, only their metadata.
Names are read at every search (few rows), so a rename shows at once.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from faceatlas.collection.store import UNASSIGNED, ClusterNotFoundError, CollectionError, FaceInfo
from faceatlas.errors import InvalidArgumentError, ModelError, NoFaceError

DEFAULT_K = 20
DEFAULT_FPIR = 0.01
MAX_K = 1000


class SearchFilterError(InvalidArgumentError):
    """A search filter names what the collection does not hold (a person, a folder) or cannot be
    read (a date); the message says what arrived and what is accepted."""


class EmptyCollectionError(CollectionError):
    """The collection holds no face yet: there is nothing to search (index photos first)."""


# --- the request and the answer ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FaceFilter:
    """Which faces a search may return; every field is optional and they combine with AND.

    - ``taken_from`` / ``taken_to``: ISO dates or datetimes (inclusive; a date ``taken_to`` means
      through the end of that day), compared with the photo's EXIF capture time (camera local time).
      A photo without a capture time is left out once either is set.
    - ``folder``: faces of photos under it: an absolute folder, or one relative to an indexed root.
    - ``clusters``: cluster ids (``-1``: faces the clusterer left unassigned).
    - ``person``: a cluster's name, case-insensitive.
    - ``unnamed``: only faces whose cluster has no name (unclustered and unassigned faces too).
    """

    taken_from: str | None = None
    taken_to: str | None = None
    folder: str | None = None
    clusters: tuple[int, ...] = ()
    person: str | None = None
    unnamed: bool = False

    @property
    def active(self) -> bool:
        return bool(
            self.taken_from or self.taken_to or self.folder or self.clusters or self.person is not None or self.unnamed
        )


@dataclass(frozen=True, slots=True)
class FaceHit:
    """One face found: the stored face, its similarity to the probe (cosine, higher = more alike),
    whether it reaches the search's threshold, its photo's capture time and its cluster's name."""

    face: FaceInfo
    similarity: float
    above_threshold: bool
    taken_at: str | None  # the photo's EXIF capture time, "YYYY-MM-DDTHH:MM:SS" (None: unknown)
    person: str | None  # the name of its cluster (None: unnamed, unassigned or not clustered)


@dataclass(frozen=True, slots=True)
class FaceSearchResult:
    """The ranked faces (best first) and the open-set decision.

    ``matched`` is False ("no match at FPIR x") when no hit reaches ``threshold``; the hits are then
    the nearest faces all the same, each ``above_threshold=False``. ``searched``: the faces that
    passed the filter (the comparisons the threshold is calibrated for); ``strategy``: how they were
    searched ("exact", "exact-prefilter", "ann", "ann-filtered"); ``notes``: caveats in words."""

    hits: tuple[FaceHit, ...]
    threshold: float
    fpir: float
    matched: bool
    searched: int
    strategy: str
    notes: tuple[str, ...] = ()
    total: int = 0  # faces in the collection

    def describe(self) -> str:
        if self.matched:
            passed = sum(h.above_threshold for h in self.hits)
            return f"{passed} match(es) at FPIR {self.fpir:g} among {self.searched} faces searched"
        return f"no match at FPIR {self.fpir:g} among {self.searched} faces searched"


# --- the searcher --------------------------------------------------------------------------------


@dataclass
class _Meta:
    """What the filters read, one entry per indexed face (row), ascending by face id."""

    face_ids: np.ndarray  # int64
    face_photo_ids: np.ndarray  # int64: each face's photo
    clusters: np.ndarray  # int64: cluster id, UNASSIGNED or NOT_CLUSTERED
    # per photo, ascending by id, and a last entry that stands for a photo not read yet (no date, no folder)
    photo_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # per face: index of its photo
    taken: np.ndarray = field(default_factory=lambda: np.full(1, np.datetime64("NaT"), "datetime64[s]"))
    files: np.ndarray = field(default_factory=lambda: np.array(["\0"]))  # "root/path" (posix), str array
    paths: np.ndarray = field(default_factory=lambda: np.array(["\0"]))  # path relative to its root
    folders: dict[str, np.ndarray] = field(default_factory=dict)  # folder filter -> photos under it (cached)


class FaceSearcher:
    """Search every face of one collection (a ``CollectionStore``); see the module docstring.

    ``kind``: the index kind (``create_index``: "auto" is exact below 200k faces, HNSW above);
    ``card``: the model card thresholds come from (default: the card of the model the collection
    is bound to; ``embedder``: its file, for a bring-your-own model). Thread-safe: a lock serialises
    catching up with the store and searching (the index is not safe to mutate while searched).
    """

    def __init__(
        self,
        store: Any,
        *,
        kind: str = "auto",
        card: Any = None,
        embedder: str | os.PathLike[str] | None = None,
    ) -> None:
        self.store = store
        self.kind = kind
        self._card = card
        self._embedder = embedder
        self._lock = threading.RLock()
        self._index: Any = None
        self._meta: _Meta | None = None
        self._faces_print: tuple | None = None
        self._photos_print: tuple | None = None
        self._token: tuple | None = None  # SQLite's cheap "did anything change" (see _fingerprint)
        self.refreshes = 0  # times the face table was re-read (for tests and the benchmark)

    def __len__(self) -> int:
        with self._lock:
            self.refresh()
            return 0 if self._meta is None else len(self._meta.face_ids)

    @property
    def card(self) -> Any:
        if self._card is None:
            tag = self.store.model()
            if tag is None:
                raise EmptyCollectionError(self._empty_message())
            from faceatlas.models.catalog import card_for_tag

            self._card = card_for_tag(tag, self._embedder, where="the collection")
        return self._card

    # -- keeping up with the store --

    def refresh(self) -> bool:
        """Catch up with the store if it changed since the last look; whether anything was re-read."""
        with self._lock:
            prints = self._fingerprint()
            if prints is None:
                return False
            token, faces_print, photos_print = prints
            if faces_print == self._faces_print and photos_print == self._photos_print and self._meta is not None:
                self._token = token
                return False
            if faces_print != self._faces_print or self._meta is None:
                self._reload_faces()
            self._reload_photos()  # their faces' rows into the photo arrays change with either
            self._token, self._faces_print, self._photos_print = token, faces_print, photos_print
            return True

    def _fingerprint(self) -> tuple[tuple | None, tuple, tuple] | None:
        """(change token, faces' and photos' fingerprints), or None when the token says nothing changed.

        The fingerprints are aggregates that move whenever a face, its cluster or a photo's place
        changes: a scan of two index columns and of the photos (portable SQL: SQLite and PostgreSQL
        alike), ~20 ms at 100k faces. On SQLite a token answers first, in microseconds: the
        connection's own changes (``total_changes``) and other connections' commits
        (``PRAGMA data_version``); only when it moved are the aggregates read."""
        with self.store._transaction(write=False) as conn:  # the store's own read transaction
            token = None
            if isinstance(conn, sqlite3.Connection):
                token = (int(conn.execute("PRAGMA data_version").fetchone()[0]), int(conn.total_changes))
                if token == self._token and self._meta is not None:
                    return None
            faces = conn.execute(
                "SELECT COUNT(*), COALESCE(MAX(id), 0), COALESCE(SUM(COALESCE(cluster, -2)), 0) FROM faces"
            ).fetchone()
            photos = conn.execute(
                "SELECT COUNT(*), COALESCE(MAX(id), 0), COALESCE(SUM(LENGTH(root) + LENGTH(path)), 0) FROM photos"
            ).fetchone()
        return token, tuple(int(v) for v in faces), tuple(int(v) for v in photos)

    def _reload_faces(self) -> None:
        from faceatlas.vector_index import create_index

        table = self.store.face_table()
        self.refreshes += 1
        ids = np.asarray(table.face_ids, dtype=np.int64)
        if self._index is None or self._index.dim != table.embeddings.shape[1]:
            self._index = create_index(len(ids), table.embeddings.shape[1] or 1, self.kind)
            indexed = np.zeros(0, np.int64)
        else:
            indexed = self._meta.face_ids if self._meta is not None else np.zeros(0, np.int64)
        gone = np.setdiff1d(indexed, ids, assume_unique=True)
        if len(gone):
            self._index.remove(gone)
        new = ~np.isin(ids, indexed, assume_unique=True)
        if new.any():
            self._index.add(ids[new], table.embeddings[new])
        if getattr(self._index, "needs_rebuild", False):  # HNSW after many deletions: start afresh
            self._index = create_index(len(ids), table.embeddings.shape[1], self.kind)
            self._index.add(ids, table.embeddings)
        self._meta = _Meta(
            face_ids=ids,
            face_photo_ids=np.asarray(table.photo_ids, dtype=np.int64),
            clusters=np.asarray(table.clusters, dtype=np.int64),
        )

    def _reload_photos(self) -> None:
        meta = self._meta
        if meta is None:
            return
        photos = sorted(self.store.photos(), key=lambda p: p.id)
        photo_ids = np.array([p.id for p in photos], dtype=np.int64)
        taken = [_as_datetime64(getattr(p, "taken_at", None)) for p in photos]
        meta.taken = np.array([*taken, np.datetime64("NaT")], dtype="datetime64[s]")
        meta.files = np.array([str(PurePosixPath(Path(p.root).as_posix(), p.path)) for p in photos] + ["\0"])
        meta.paths = np.array([p.path for p in photos] + ["\0"])
        meta.folders = {}
        # a face whose photo was stored after photos() read them points at the last entry until the next look
        at = np.searchsorted(photo_ids, meta.face_photo_ids)
        found = at < len(photo_ids)
        found[found] = photo_ids[at[found]] == meta.face_photo_ids[found]
        meta.photo_rows = np.where(found, at, len(photo_ids)).astype(np.int64)

    # -- searching --

    def search(
        self,
        embedding: np.ndarray,
        *,
        k: int = DEFAULT_K,
        filter: FaceFilter = FaceFilter(),  # the word the API speaks
        fpir: float = DEFAULT_FPIR,
        exclude: Sequence[int] = (),
        hidden: Collection[int] = (),
    ) -> FaceSearchResult:
        """The ``k`` faces most like ``embedding`` (a ``(dim,)`` unit vector of the collection's
        model) among those ``filter`` allows, and whether any is a match at ``fpir``.
        ``exclude``: face ids never returned (the probe itself, when it is a stored face).
        ``hidden``: cluster ids searched as if they were not there (private people, for a caller
        who may not see them): never returned, not counted, and a filter naming one is refused
        as one naming a missing cluster or person is."""
        from faceatlas.gallery.gallery import open_set_threshold

        k = _check_k(k)
        with self._lock:
            self.refresh()
            meta = self._meta
            if meta is None or not len(meta.face_ids):
                raise EmptyCollectionError(self._empty_message())
            query = self._query(embedding)
            hide = frozenset(int(c) for c in hidden)
            names = {cid: name for cid, name in self._names().items() if cid not in hide}
            mask = self._allowed(filter, names, hide)
            total = len(meta.face_ids)
            if hide:
                visible = ~np.isin(meta.clusters, np.array(sorted(hide), dtype=np.int64))
                mask &= visible
                total = int(visible.sum())  # hidden faces are not counted either
            if exclude:
                mask &= ~np.isin(meta.face_ids, np.asarray(exclude, dtype=np.int64))
            searched = int(mask.sum())
            threshold, notes = open_set_threshold(self.card, fpir, searched)
            if searched == 0:
                notes = (*notes, "no face passes the filter")
                return FaceSearchResult((), threshold, fpir, False, 0, "none", notes, total)
            everything = searched == len(meta.face_ids)
            allowed = None if everything else meta.face_ids[mask]
            scores, ids = self._index.search(query, k, allowed=allowed)
            strategy = self._strategy(searched, everything)
            rows = np.searchsorted(meta.face_ids, ids[0][ids[0] >= 0])
            taken = [meta.taken[meta.photo_rows[r]] for r in rows]
            hits = []
            for face_id, score, when in zip(ids[0][ids[0] >= 0].tolist(), scores[0].tolist(), taken, strict=False):
                face = self.store.face(face_id)
                person = names.get(face.cluster) if face.cluster is not None else None
                hits.append(FaceHit(face, float(score), float(score) >= threshold, _iso(when), person))
        matched = bool(hits) and hits[0].above_threshold
        return FaceSearchResult(tuple(hits), float(threshold), fpir, matched, searched, strategy, notes, total)

    def embedding_of(self, face_id: int) -> np.ndarray:
        """The stored embedding of a collection face (to search by an existing face)."""
        with self._lock:
            self.refresh()
            if self._meta is None or not np.isin(face_id, self._meta.face_ids):
                self.store.face(face_id)  # FaceNotFoundError, worded by the store
                raise CollectionError(f"face {face_id} was stored a moment ago; search again")  # a race, at most
            vectors: np.ndarray = self._index.vectors(np.array([face_id], dtype=np.int64))
            return vectors[0]

    def _strategy(self, searched: int, everything: bool) -> str:
        approximate = hasattr(self._index, "filter_strategy") or hasattr(self._index, "trained")
        if not approximate:
            return "exact" if everything else "exact-prefilter"
        if everything:
            return "ann"
        choose = getattr(self._index, "filter_strategy", None)
        return str(choose(searched)) if choose is not None else "ann-filtered"

    def _query(self, embedding: np.ndarray) -> np.ndarray:
        from faceatlas.vector_index import unit_rows

        x = np.asarray(embedding)
        dim = self._index.dim
        if x.dtype.kind != "f" or x.ndim not in (1, 2) or x.shape[-1] != dim or (x.ndim == 2 and len(x) != 1):
            raise InvalidArgumentError(
                f"a search needs one embedding of the collection's model: a ({dim},) float array, got "
                f"{x.dtype} {x.shape}"
            )
        return unit_rows(x.reshape(1, dim), dim)

    def _names(self) -> dict[int, str]:
        """Named clusters (id -> name): few rows, read at every search so a rename shows at once."""
        with self.store._transaction(write=False) as conn:
            rows = conn.execute("SELECT id, name FROM clusters WHERE name IS NOT NULL").fetchall()
        return {int(i): str(name) for i, name in rows}

    def _allowed(self, wanted: FaceFilter, names: dict[int, str], hide: frozenset[int]) -> np.ndarray:
        """Which faces (rows) the filter passes."""
        meta = self._meta
        if meta is None:
            return np.zeros(0, bool)
        mask = np.ones(len(meta.face_ids), bool)
        if not wanted.active:
            return mask
        if wanted.taken_from or wanted.taken_to:
            start = _parse_when(wanted.taken_from, "taken_from", end=False)
            stop = _parse_when(wanted.taken_to, "taken_to", end=True)
            if start is not None and stop is not None and start > stop:
                raise SearchFilterError(
                    f"taken_from {wanted.taken_from} is after taken_to {wanted.taken_to}; swap them"
                )
            taken = meta.taken[meta.photo_rows]
            known = ~np.isnat(taken)
            mask &= known
            if start is not None:
                mask &= known & (taken >= start)
            if stop is not None:
                mask &= known & (taken <= stop)
        if wanted.folder:
            mask &= self._under_folder(wanted.folder)[meta.photo_rows]
        clusters: set[int] | None = None
        if wanted.clusters:
            clusters = {self._check_cluster(c, hide) for c in wanted.clusters}
        if wanted.person is not None:
            found = {cid for cid, name in names.items() if name.casefold() == wanted.person.strip().casefold()}
            if not found:
                raise SearchFilterError(
                    f"no person named {wanted.person!r} in the collection; name a cluster first "
                    "(faceatlas people name CLUSTER NAME), or filter by cluster id"
                )
            clusters = found if clusters is None else clusters & found
        if clusters is not None:
            mask &= np.isin(meta.clusters, np.array(sorted(clusters), dtype=np.int64))
        if wanted.unnamed:
            mask &= ~np.isin(meta.clusters, np.array(sorted(names), dtype=np.int64))
        return mask

    def _check_cluster(self, cluster: int, hide: frozenset[int]) -> int:
        try:
            cid = int(cluster)
        except (TypeError, ValueError):
            raise SearchFilterError(f"a cluster id is an integer (-1: unassigned), got {cluster!r}") from None
        if cid == UNASSIGNED:
            return cid
        if cid < 0:
            raise SearchFilterError(f"a cluster id is >= 0, or -1 for unassigned faces; got {cid}")
        if cid in hide:  # worded as a missing one: the answer does not tell a hidden cluster from none
            raise ClusterNotFoundError(f"no cluster {cid} in collection {self.store.location}", cid)
        self.store.cluster(cid)  # ClusterNotFoundError when there is none
        return cid

    def _under_folder(self, folder: str) -> np.ndarray:
        """Per photo: whether it lies under ``folder`` (absolute, or relative to an indexed root);
        kept until the photos change, as a user pages through one folder's results."""
        meta = self._meta
        if meta is None:
            return np.zeros(0, bool)
        if folder not in meta.folders:
            if len(meta.folders) > 64:
                meta.folders.clear()
            meta.folders[folder] = self._match_folder(meta, folder)
        return meta.folders[folder]

    @staticmethod
    def _match_folder(meta: _Meta, folder: str) -> np.ndarray:
        text = str(folder).strip()
        if not text:
            raise SearchFilterError("folder is empty; pass a folder, absolute or relative to an indexed root")
        if os.path.isabs(os.path.expanduser(text)):
            given = Path(os.path.expanduser(text))
            prefixes = {given.as_posix().rstrip("/") + "/", Path(os.path.normpath(given)).as_posix().rstrip("/") + "/"}
            try:
                prefixes.add(given.resolve().as_posix().rstrip("/") + "/")
            except OSError:  # a folder that cannot be resolved is matched as written
                pass
            hits = np.zeros(len(meta.files), bool)
            for prefix in prefixes:
                hits |= np.char.startswith(meta.files, prefix)
        else:
            rel = PurePosixPath(Path(text).as_posix())
            if ".." in rel.parts:
                raise SearchFilterError(f"folder {text!r} leaves its root ('..'); pass it absolute instead")
            prefix = "" if str(rel) in ("", ".") else str(rel).rstrip("/") + "/"
            hits = np.char.startswith(meta.paths, prefix)
        if not hits.any():
            raise SearchFilterError(
                f"no photo of the collection is under folder {text!r}; pass a folder absolute or relative "
                "to an indexed root"
            )
        return hits

    def _empty_message(self) -> str:
        return (
            f"collection {self.store.location} holds no face yet, so there is nothing to search; "
            "index photos first (faceatlas index PHOTO_DIR, or POST /v1/jobs/index)"
        )


# --- the front door ------------------------------------------------------------------------------


def search_faces(
    store: Any,
    probe: Any,
    *,
    k: int = DEFAULT_K,
    filter: FaceFilter = FaceFilter(),
    fpir: float = DEFAULT_FPIR,
    analyzer: Any = None,
    searcher: FaceSearcher | None = None,
) -> FaceSearchResult:
    """Search ``store``'s faces for the person in ``probe``: an image (path, bytes, array: its
    largest face is embedded by ``analyzer``, default a ``FaceAnalyzer`` of the collection's model),
    an embedding (a ``(dim,)`` float array), or a stored face's id (an ``int``: that face is not
    returned). ``searcher``: one kept between calls (the service keeps one per collection)."""
    searcher = searcher or FaceSearcher(store)
    if isinstance(probe, (int, np.integer)) and not isinstance(probe, bool):
        embedding = searcher.embedding_of(int(probe))
        return searcher.search(embedding, k=k, filter=filter, fpir=fpir, exclude=(int(probe),))
    if isinstance(probe, np.ndarray) and probe.dtype.kind == "f" and probe.ndim == 1:
        return searcher.search(probe, k=k, filter=filter, fpir=fpir)
    embedding = probe_embedding(store, probe, analyzer)
    return searcher.search(embedding, k=k, filter=filter, fpir=fpir)


def probe_embedding(store: Any, image: Any, analyzer: Any = None) -> np.ndarray:
    """The embedding of the largest face in ``image``, by an analyzer of the collection's model."""
    tag = store.model()
    if tag is None:
        raise EmptyCollectionError(
            f"collection {store.location} holds no face yet, so there is nothing to search; index photos first"
        )
    if analyzer is None:
        from faceatlas.models.catalog import embedder_for_tag
        from faceatlas.pipeline import FaceAnalyzer

        analyzer = FaceAnalyzer(embedder=embedder_for_tag(tag, None, where="the collection"))
    else:
        from faceatlas.collection.store import model_tag

        used = model_tag(analyzer)
        if used != tag:
            from faceatlas.errors import ModelMismatchError

            raise ModelMismatchError(
                f"the collection holds faces embedded by {tag.name} {tag.version}, but the probe would be embedded by "
                f"{used.name} {used.version}: two models' embeddings never compare; use the collection's model"
            )
    faces = analyzer.analyze(image)
    if not faces:
        raise NoFaceError("no face found in the image; send a photo where a face is clearly visible")
    face = max(faces, key=lambda f: f.box.area)
    if face.embedding is None:
        raise ModelError("the analyzer returned a face without an embedding")
    return np.asarray(face.embedding, dtype=np.float32)


class FaceSearcherCache:
    """One ``FaceSearcher`` per collection store (what the service keeps): the index is built once
    and then only caught up with the store. A store the process replaced (the file was swapped)
    gets a searcher of its own; a closed store's searcher goes with it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._searchers: weakref.WeakKeyDictionary[Any, FaceSearcher] = weakref.WeakKeyDictionary()

    def get(self, store: Any) -> FaceSearcher:
        with self._lock:
            searcher = self._searchers.get(store)
            if searcher is None:
                searcher = self._searchers[store] = FaceSearcher(store)
            return searcher

    def forget(self, store: Any) -> None:
        """Drop the store's searcher (its index holds embeddings): after a person was forgotten
        (``collection.forget``), nothing of theirs stays in this process; the next search rebuilds it."""
        with self._lock:
            self._searchers.pop(store, None)


# --- helpers -------------------------------------------------------------------------------------


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= int(k) <= MAX_K:
        raise InvalidArgumentError(f"k must be an integer from 1 to {MAX_K}, got {k!r}")
    return int(k)


def _parse_when(value: str | None, name: str, *, end: bool) -> np.datetime64 | None:
    """An ISO date or datetime as datetime64[s]; a date ``taken_to`` is the end of that day."""
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip()
    try:
        if len(text) == 10:  # a date: YYYY-MM-DD
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time.max if end else time.min)
        else:
            moment = datetime.fromisoformat(text.replace(" ", "T", 1))
    except ValueError:
        raise SearchFilterError(
            f"{name} {value!r} is not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS (camera local time)"
        ) from None
    return np.datetime64(moment.replace(tzinfo=None, microsecond=0), "s")


def _as_datetime64(value: str | None) -> np.datetime64:
    """A stored capture time as datetime64[s] (NaT when unknown or unreadable)."""
    if not value:
        return np.datetime64("NaT")
    try:
        return np.datetime64(datetime.fromisoformat(str(value)).replace(tzinfo=None, microsecond=0), "s")
    except ValueError:
        return np.datetime64("NaT")


def _iso(when: np.datetime64) -> str | None:
    return None if np.isnat(when) else str(when.astype("datetime64[s]"))


__all__ = [
    "DEFAULT_FPIR",
    "DEFAULT_K",
    "EmptyCollectionError",
    "FaceFilter",
    "FaceHit",
    "FaceSearchResult",
    "FaceSearcher",
    "FaceSearcherCache",
    "SearchFilterError",
    "probe_embedding",
    "search_faces",
]
