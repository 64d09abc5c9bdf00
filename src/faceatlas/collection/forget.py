"""Forget a person everywhere faceatlas keeps them: the gallery, the photo collection, the sidecars it wrote.

>>> from faceatlas.collection.forget import forget_person
>>> with Gallery.open("gallery.db") as gallery, CollectionStore.open("collection.db") as collection:
...     report = forget_person("Ada", gallery, collection)
...     print("\\n".join(report.lines()))
removed 'Ada' from gallery /home/me/gallery.db: 12 face(s)
removed cluster 3 from collection /home/me/collection.db: 40 face(s) with their embeddings, 2 correction(s)
erased: SQLite's secure_delete zeroed the deleted rows in the gallery file
...

The one home of "delete a person", used by ``faceatlas forget`` / ``POST /v1/people/{name}/forget``
(everything) and ``faceatlas people delete`` / ``DELETE /v1/people/{name}`` (``keep_faces=True``:
the gallery person and the clusters' name only). What ``forget_person`` removes:

- **gallery**: every person whose name matches (NFC, surrounding spaces, case ignored: the report
  says when the stored case differed), their faces and embeddings (``Gallery.delete_person``), then
  ``GalleryStore.compact``: SQLite empties its WAL (secure_delete has zeroed the rows), PostgreSQL
  rewrites the tables with ``VACUUM FULL`` (a plain VACUUM leaves the bytes in free space).
- **collection**: every cluster so named: its faces (embeddings, landmarks, scores), the corrections
  (constraints) on them (cascade), the cluster row with its name. The faces' boxes are kept as
  removed detections (``rejected``: four numbers, no embedding, no name: no biometric data), so
  analysing a photo again does not bring the person back. Then erased: SQLite (secure_delete zeroes
  deleted rows and freed pages) empties its WAL, VACUUMing first if a freed page still holds bytes;
  PostgreSQL rewrites faces, constraints and clusters (``VACUUM FULL``, their indexes with them).
- **sidecars faceatlas wrote** (``CollectionStore.sidecars``): the person's regions are taken out
  (``faceatlas.xmp.remove_names``); a sidecar that cannot be changed is reported, the rest go on.
- **caches**: a forgotten face's thumbnail URL answers 404 at once; the service's face search
  index drops the faces (``FaceSearcherCache.forget``, by the route).
- **kept**, each with why: the user's photos and their paths (which may contain the name), exports
  the user made (HTML contact sheets: faceatlas does not track where they went), browsers' cached
  thumbnails (until their max-age), PostgreSQL's write-ahead log, replicas and backups.

The stores are separate files (or servers), so this is several transactions, not one; run again
after a failure, it finishes the job (a person found nowhere is PersonNotFoundError).
"""

from __future__ import annotations

import contextlib
import sqlite3
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faceatlas.gallery.store import GalleryStore, PersonNotFoundError

if TYPE_CHECKING:
    from faceatlas.collection.store import CollectionStore
    from faceatlas.gallery.gallery import Gallery

#: what the service's Cache-Control says (server/routes/collection.py CACHE): how long a browser may keep a thumbnail
BROWSER_CACHE = "an hour (max-age=3600)"
BOXES_KEPT = (
    "the boxes of the removed faces stay as removed detections (four numbers per face: no embedding, no name, no "
    "biometric data), so analysing those photos again does not bring the person back; a photo resized or "
    "re-cropped since is analysed afresh: its faces come back unnamed and unclustered"
)
NOT_TRACKED = (
    "your photos, their file and folder names, and exports you made (HTML contact sheets, archives) are yours: "
    "faceatlas does not change or track them; delete them yourself"
)
BROWSERS = (
    f"web browsers that showed the person's thumbnails through `faceatlas serve` may keep cached copies for up to "
    f"{BROWSER_CACHE}; their URLs now answer 404"
)


@dataclass(frozen=True)
class DeleteReport:
    """What ``forget_person`` removed where, how it erased it, and what it kept (and why)."""

    name: str
    gallery: str | None  # where the gallery is (a path, or a URL without its password); None: none given
    faces: int | None  # faces removed from the gallery; None: the person was not in it
    collection: str | None  # the collection file looked in; None: none given
    clusters: tuple[int, ...] = ()  # clusters that carried the name: removed (or, keep_faces, unnamed)
    erased: tuple[str, ...] = ()  # how the deleted bytes were erased
    kept: tuple[str, ...] = ()  # what remains and why: sentences that name no file or URL
    collection_faces: int | None = None  # faces removed from the collection; None: kept (keep_faces)
    constraints: int = 0  # corrections (constraints) removed with those faces
    matched: tuple[str, ...] = ()  # stored names that matched in another case or form than given
    sidecars: tuple[str, ...] = ()  # sidecars the person's regions were taken out of
    sidecar_problems: tuple[tuple[str, str], ...] = ()  # (sidecar, why it could not be changed)

    def lines(self) -> list[str]:
        """The report for a person to read, one line per fact, about the stores it was given (these
        lines name their locations)."""
        out = []
        if self.gallery is not None and self.faces is None:
            out.append(f"{self.name!r} was not in gallery {self.gallery}")
        elif self.gallery is not None:
            out.append(f"removed {self.name!r} from gallery {self.gallery}: {self.faces} face(s)")
        if self.collection is not None and not self.clusters:
            out.append(f"no cluster of collection {self.collection} was named {self.name!r}")
        if self.collection_faces is None:
            for cluster in self.clusters:
                out.append(f"unnamed cluster {cluster} in collection {self.collection} (its faces stay clustered)")
        elif self.clusters:
            ids = ", ".join(str(c) for c in self.clusters)
            out.append(
                f"removed cluster(s) {ids} from collection {self.collection}: {self.collection_faces} face(s) with "
                f"their embeddings, {self.constraints} correction(s)"
            )
        out += [f"matched {stored!r} (stored in another case or form than {self.name!r})" for stored in self.matched]
        out += [f"removed the person's regions from sidecar {path}" for path in self.sidecars]
        out += [f"could not change sidecar {path}: {why}" for path, why in self.sidecar_problems]
        out += [f"erased: {line}" for line in self.erased]
        out += [f"kept: {line}" for line in self.kept]
        return out

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (the API's answer)."""
        return {
            "name": self.name,
            "gallery_faces": self.faces,
            "clusters": list(self.clusters),
            "collection_faces": self.collection_faces,
            "constraints": self.constraints,
            "matched": list(self.matched),
            "sidecars": list(self.sidecars),
            "sidecar_problems": [{"sidecar": path, "reason": why} for path, why in self.sidecar_problems],
            "erased": list(self.erased),
            "kept": list(self.kept),
        }


def name_key(name: str) -> str:
    """How names are compared when forgetting or exporting: as ``faceatlas.names`` stores them (NFC,
    stripped), and case-insensitively (casefold), so "ada lovelace" finds "Ada Lovelace"."""
    return unicodedata.normalize("NFC", name).strip().casefold()


def matching_clusters(collection: CollectionStore, name: str) -> list[tuple[int, str]]:
    """(cluster id, stored name) of every cluster whose name matches ``name`` (``name_key``), by id."""
    key = name_key(name)
    return sorted((c.id, c.name) for c in collection.clusters() if c.name is not None and name_key(c.name) == key)


def matching_people(gallery: Gallery, name: str) -> list[str]:
    """The stored names of the gallery's people that match ``name`` (``name_key``)."""
    key = name_key(name)
    return sorted(p.name for p in gallery.store.list_people() if name_key(p.name) == key)


def forget_person(
    name: str,
    gallery: Gallery | None,
    collection: CollectionStore | None = None,
    *,
    full: bool = True,
    keep_faces: bool = False,
) -> DeleteReport:
    """Forget ``name`` everywhere (see the module doc): the gallery person(s), the collection's
    clusters of that name with their faces and corrections, the person's regions in the sidecars
    faceatlas wrote; then erase the deleted bytes.

    ``keep_faces=True`` is the older, narrower delete (``people delete``): the gallery person, and
    the name taken off the clusters named exactly so (their faces stay, clustered and unnamed).
    ``full=False`` leaves the rewrite of a PostgreSQL gallery's faces table (minutes when it holds
    many faces, during which searches wait) to a later compaction; the report says what was kept.
    PersonNotFoundError when no store has the name.
    """
    if keep_faces:
        return _unname(name, gallery, collection, full=full)
    people = matching_people(gallery, name) if gallery is not None else []
    clusters = matching_clusters(collection, name) if collection is not None else []
    if not people and not clusters:
        if gallery is not None and collection is None:
            gallery.store.get_person(name)  # the gallery's own message
        where = " or ".join(
            f"{kind} {place}"
            for kind, place in (
                ("gallery", None if gallery is None else _where(gallery.store)),
                ("collection", None if collection is None else collection.location),
            )
            if place is not None
        )
        raise PersonNotFoundError(f"nobody named {name!r} in {where or 'no store (none was given)'}")
    stored = {*people, *(n for _, n in clusters)}
    matched = tuple(sorted(n for n in stored if n != name))
    erased: list[str] = []
    kept: list[str] = []
    sidecars: list[str] = []
    problems: list[tuple[str, str]] = []
    faces: int | None = None
    if people:
        assert gallery is not None
        faces = sum(gallery.delete_person(person) for person in people)
        compaction = gallery.store.compact(full=full)
        erased += compaction.erased
        kept += compaction.kept
    collection_faces: int | None = None
    constraints = 0
    if collection is not None:
        if clusters:  # the sidecars first: should one fail and the run be repeated, the clusters still name them
            sidecars, problems = _clean_sidecars(collection, {name, *stored})
        collection_faces, constraints = _remove_clusters(collection, [c for c, _ in clusters])
        if clusters:
            done, why = _erase_collection(collection, full=full)
            erased += done
            kept += why
            kept.append(BOXES_KEPT)
        paths = _photo_paths_with(collection, stored | {name})
        if paths:
            kept.append(
                f"{paths} photo path(s) in the collection contain the name: they are the names of your files or "
                "folders, which faceatlas does not change (rename them, then index again)"
            )
    kept += [NOT_TRACKED, BROWSERS]
    return DeleteReport(
        name=name,
        gallery=None if gallery is None else _where(gallery.store),
        faces=faces,
        collection=None if collection is None else collection.location,
        clusters=tuple(c for c, _ in clusters),
        erased=tuple(erased),
        kept=tuple(kept),
        collection_faces=collection_faces if collection is not None else None,
        constraints=constraints,
        matched=matched,
        sidecars=tuple(sidecars),
        sidecar_problems=tuple(problems),
    )


def _remove_clusters(collection: CollectionStore, clusters: list[int]) -> tuple[int, int]:
    """Delete the clusters' faces (their constraints cascade) and the clusters, in one transaction,
    remembering the faces' boxes as removed detections; (faces removed, constraints removed)."""
    if not clusters:
        return 0, 0
    marks = ", ".join("?" * len(clusters))
    of_person = f"SELECT id FROM faces WHERE cluster IN ({marks})"
    with collection._transaction(write=True) as conn:
        (n_constraints,) = conn.execute(
            f"SELECT COUNT(*) FROM constraints WHERE face_a IN ({of_person}) OR face_b IN ({of_person})",
            [*clusters, *clusters],
        ).fetchone()
        conn.execute(
            f"INSERT INTO rejected (photo_id, box) SELECT photo_id, box FROM faces WHERE cluster IN ({marks})", clusters
        )
        n_faces = conn.execute(f"DELETE FROM faces WHERE cluster IN ({marks})", clusters).rowcount
        conn.execute(f"DELETE FROM clusters WHERE id IN ({marks})", clusters)
    return int(n_faces), int(n_constraints)


def _photo_paths_with(collection: CollectionStore, names: Iterable[str]) -> int:
    contains = collection._contains_sql.format(text="lower(root || '/' || path)")
    wanted = sorted({n.lower() for n in names})
    with collection._transaction(write=False) as conn:
        query = "SELECT COUNT(*) FROM photos WHERE " + " OR ".join([contains] * len(wanted))
        return int(conn.execute(query, wanted).fetchone()[0])


def _clean_sidecars(collection: CollectionStore, names: set[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Take the person's regions out of every sidecar faceatlas wrote; (sidecars changed, problems)."""
    recorded = collection.sidecars()
    if not recorded:
        return [], []
    try:
        from faceatlas.xmp import remove_names
    except ImportError as exc:  # the XMP writer is not part of this installation
        return [], [(path, f"faceatlas cannot edit XMP here ({exc})") for _, path in recorded]
    changed: list[str] = []
    problems: list[tuple[str, str]] = []
    roots: dict[int, str] = {}
    for photo_id, recorded_path in recorded:
        path = Path(recorded_path)
        if not path.is_absolute():  # relative to its photo's root, as the collection stores paths
            if photo_id not in roots:
                roots[photo_id] = collection.photo(photo_id).root
            path = Path(roots[photo_id], recorded_path)
        if not path.exists():
            continue  # deleted since: nothing left to clean
        try:
            removed = remove_names(path, names, embedded=path.suffix.lower() != ".xmp")
        except Exception as exc:  # noqa: BLE001 -- one sidecar's failure is reported; the others still get cleaned
            problems.append((str(path), str(exc) or type(exc).__name__))
            continue
        if removed:
            changed.append(str(path))
    return changed, problems


def _erase_collection(collection: CollectionStore, *, full: bool) -> tuple[list[str], list[str]]:
    """Erase what the deleted rows left on disk; (how it was erased, what was kept and why)."""
    from faceatlas.collection.store import SqliteCollectionStore

    if isinstance(collection, SqliteCollectionStore):
        return _erase_sqlite(collection, full=full)
    return _erase_postgres(collection)


def _erase_sqlite(collection: Any, *, full: bool) -> tuple[list[str], list[str]]:
    if collection.path is None:
        return ["the collection is in memory: nothing of it was on disk"], []
    erased = ["SQLite's secure_delete zeroed the deleted faces, corrections and names in the collection file"]
    kept: list[str] = []
    why = collection.empty_wal()
    with collection._lock:
        free = int(collection._db.execute("PRAGMA freelist_count").fetchone()[0])
    if free and full:
        # secure_delete zeroes the pages this delete freed; pages freed before, by a tool or an older
        # file without it, may still hold old rows: a VACUUM rewrites the file without any free page
        try:
            with collection._lock:  # outside any transaction: VACUUM cannot run in one
                collection._db.execute("VACUUM")
            erased.append(f"VACUUM rewrote the file without its {free} free page(s)")
            why = collection.empty_wal()
        except sqlite3.Error as exc:
            kept.append(
                f"the collection file could not be VACUUMed ({exc}); its {free} free page(s) were zeroed "
                "only if secure_delete was on when they were freed"
            )
    elif free:
        kept.append(
            f"the collection file was not VACUUMed (full=False): its {free} free page(s) hold nothing this "
            "delete freed (secure_delete zeroed those), but may hold rows freed without secure_delete"
        )
    if why is None:
        return [*erased, "the collection's WAL was checkpointed and emptied"], kept
    return erased, [*kept, why]


def _erase_postgres(collection: Any) -> tuple[list[str], list[str]]:
    """Rewrite the tables the delete touched (``VACUUM FULL``, indexes too), so no dead row version
    of a face, correction or name is left in their files."""
    import psycopg

    from faceatlas.gallery import postgres_store

    done: list[str] = []
    kept: list[str] = []
    with collection._lock:  # autocommit, no transaction of ours open: VACUUM cannot run inside one
        conn = collection._db
        conn.execute(f"SET lock_timeout = {int(postgres_store.COMPACT_LOCK_TIMEOUT_MS)}")  # as the gallery's compact
        try:
            for table in ("faces", "constraints", "clusters"):
                try:
                    conn.execute(f"VACUUM (FULL) {collection._s}.{table}")
                    done.append(table)
                except psycopg.Error as exc:
                    kept.append(
                        f"the collection's {table} table could not be rewritten ({str(exc).strip()}): its deleted "
                        f"rows stay in its free space until `VACUUM FULL {collection.schema}.{table}` runs"
                    )
        finally:
            with contextlib.suppress(psycopg.Error):
                conn.execute("RESET lock_timeout")
    erased = [f"VACUUM FULL rewrote the collection's {', '.join(done)} (and their indexes) without the deleted rows"]
    return (erased if done else []), [*kept, postgres_store.WAL_KEPT]


def _unname(name: str, gallery: Gallery | None, collection: CollectionStore | None, *, full: bool) -> DeleteReport:
    """The narrower delete (``keep_faces``): the gallery person, and the name off the clusters."""
    faces: int | None = None
    missing: PersonNotFoundError | None = None
    if gallery is not None:
        try:
            faces = gallery.delete_person(name)
        except PersonNotFoundError as exc:
            missing = exc
    forgotten = collection.forget_name(name) if collection is not None else None
    clusters = forgotten.clusters if forgotten is not None else ()
    if faces is None and not clusters:
        if missing is not None:  # the gallery's own message, as before there was a collection to look in
            raise missing
        if collection is None:
            raise PersonNotFoundError(f"cannot delete {name!r}: no gallery or collection to delete from")
        raise PersonNotFoundError(f"no cluster of collection {collection.location} is named {name!r} (and no gallery)")
    erased: list[str] = []
    kept: list[str] = []
    if faces is not None:
        assert gallery is not None
        compaction = gallery.store.compact(full=full)
        erased += compaction.erased
        kept += compaction.kept
    if forgotten is not None and clusters:
        if forgotten.erased:
            erased.append(forgotten.erased)
        if forgotten.wal_kept is not None:
            kept.append(forgotten.wal_kept)
    if forgotten is not None and forgotten.photo_paths:
        kept.append(
            f"{forgotten.photo_paths} photo path(s) in the collection contain {name!r}: they are the names of your "
            "files or folders, which faceatlas does not change (rename them, then index again)"
        )
    return DeleteReport(
        name=name,
        gallery=None if gallery is None else _where(gallery.store),
        faces=faces,
        collection=None if collection is None else collection.location,
        clusters=clusters,
        erased=tuple(erased),
        kept=tuple(kept),
    )


def _where(store: GalleryStore) -> str:
    """A store's location for a person to read: a PostgreSQL URL without its password."""
    if "://" in store.url:
        from faceatlas.gallery.postgres_store import redact

        return redact(store.url)
    return store.url
