"""Delete a person everywhere faceatlas stored their name: the gallery and the photo collection.

>>> from faceatlas.collection.forget import forget_person
>>> with Gallery.open("gallery.db") as gallery, CollectionStore.open("collection.db") as collection:
...     report = forget_person("Ada", gallery, collection)
...     print("\\n".join(report.lines()))
removed 'Ada' from gallery /home/me/gallery.db: 12 face(s)
unnamed cluster 3 in collection /home/me/collection.db (its faces stay clustered)
erased: SQLite's secure_delete zeroed the deleted rows in the gallery file
...

The one home of "delete a person", used by ``faceatlas people delete`` and ``DELETE /v1/people/{name}``:

- **gallery**: the person, their faces and embeddings (``Gallery.delete_person``), then
  ``GalleryStore.compact``: SQLite empties its WAL (secure_delete has zeroed the rows), PostgreSQL
  rewrites the tables with ``VACUUM FULL`` (a plain VACUUM leaves the bytes in free space).
- **collection**: every cluster named so loses the name (``CollectionStore.forget_name``); its
  faces stay clustered, as unnamed faces of one person. Nothing else in a collection holds names.
- **kept**, each with why: photo paths that contain the name (the user's files), PostgreSQL's
  write-ahead log, rows an older transaction could still see, a WAL another connection held.

The stores are separate files (or servers), so this is two transactions, not one; run again after
a failure, it finishes the job (a person found in neither is PersonNotFoundError).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from faceatlas.gallery.store import GalleryStore, PersonNotFoundError

if TYPE_CHECKING:
    from faceatlas.collection.store import CollectionStore
    from faceatlas.gallery.gallery import Gallery


@dataclass(frozen=True)
class DeleteReport:
    """What ``forget_person`` removed where, how it erased it, and what it kept (and why)."""

    name: str
    gallery: str | None  # where the gallery is (a path, or a URL without its password); None: none given
    faces: int | None  # faces removed from the gallery; None: the person was not in it
    collection: str | None  # the collection file looked in; None: none given
    clusters: tuple[int, ...] = ()  # clusters that carried the name, now unnamed
    erased: tuple[str, ...] = ()  # how the deleted bytes were erased
    kept: tuple[str, ...] = ()  # what remains and why: sentences that name no file or URL

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
        for cluster in self.clusters:
            out.append(f"unnamed cluster {cluster} in collection {self.collection} (its faces stay clustered)")
        out += [f"erased: {line}" for line in self.erased]
        out += [f"kept: {line}" for line in self.kept]
        return out


def forget_person(
    name: str, gallery: Gallery | None, collection: CollectionStore | None = None, *, full: bool = True
) -> DeleteReport:
    """Delete ``name`` from the gallery and take it off the collection's clusters (see the module doc).

    ``full=False`` leaves the rewrite of a PostgreSQL gallery's faces table (minutes when it holds
    many faces, during which searches wait) to a later compaction; the name is erased either way,
    and the report says what was kept. PersonNotFoundError when neither store has the name.
    """
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
