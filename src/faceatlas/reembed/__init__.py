"""Move a gallery or a photo collection to another embedder, in place: embedding spaces never mix.

>>> from faceatlas.reembed import open_target, reembed_collection, reembed_gallery
>>> analyzer = FaceAnalyzer(embedder="facenet")
>>> with CollectionStore.open("collection.db") as store:
...     print(reembed_collection(store, analyzer))           # faces embedded again from their photos
>>> with open_store("people.db") as store:
...     print(reembed_gallery(store, analyzer, "~/people"))   # a gallery keeps no images: give them again

What stays: every face's id, and so the people and their names and metadata (gallery), the
clusters, their names and the user's corrections (collection). What changes: every embedding, and
the model the store is bound to, together in one transaction once every face has its new
embedding (``staging``: resumable; until then the store is usable with its old model). Faces that
cannot be embedded again (a photo missing or changed, a gallery face whose image is not given)
stop the run before anything is switched, unless the caller drops them (``drop_missing``). The
report gives figures on the user's own labels in both spaces (``figures``).

``faceatlas reembed GALLERY_OR_COLLECTION --embedder NAME_OR_PATH`` is the command (``_reembed_cli``).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any, Literal

from faceatlas.errors import FaceAtlasError
from faceatlas.reembed.collection import plan_collection, reembed_collection
from faceatlas.reembed.figures import LabelFigures, label_figures
from faceatlas.reembed.gallery import plan_gallery, reembed_gallery
from faceatlas.reembed.report import (
    MissingPhotosError,
    ReembedPlan,
    ReembedReport,
    UnmatchedFacesError,
    Unusable,
)

__all__ = [
    "LabelFigures",
    "MissingPhotosError",
    "NotAStoreError",
    "ReembedPlan",
    "ReembedReport",
    "UnmatchedFacesError",
    "Unusable",
    "label_figures",
    "open_target",
    "plan_collection",
    "plan_gallery",
    "reembed_collection",
    "reembed_gallery",
    "store_kind",
]


class NotAStoreError(FaceAtlasError):
    """The location given is neither a faceatlas gallery nor a faceatlas collection."""


def store_kind(location: str | os.PathLike[str]) -> Literal["gallery", "collection"]:
    """Whether ``location`` is a gallery (a ``postgresql://`` URL, or a gallery file) or a collection
    file, from the mark each SQLite store writes in its header (``PRAGMA application_id``)."""
    from faceatlas.collection.store import APPLICATION_ID as COLLECTION_ID
    from faceatlas.gallery.sqlite_store import APPLICATION_ID as GALLERY_ID

    text = os.fspath(location)
    if isinstance(text, str) and text.startswith(("postgresql://", "postgres://")):
        return "gallery"
    path = Path(text).expanduser()
    if not path.is_file():
        what = "a folder" if path.is_dir() else "nothing"
        raise NotAStoreError(f"{path} is {what}: pass a gallery (file or postgresql:// URL) or a collection file")
    try:  # SQLite's own reading, read-only: never a descriptor of ours on a file SQLite may hold
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise NotAStoreError(f"{path} is not a faceatlas gallery or collection ({exc})") from exc
    if app_id == GALLERY_ID:
        return "gallery"
    if app_id == COLLECTION_ID:
        return "collection"
    raise NotAStoreError(
        f"{path} is a SQLite file but not a faceatlas gallery or collection (application_id {app_id:#x})"
    )


def open_target(location: str | os.PathLike[str]) -> Any:
    """The store at ``location``, opened (never created): a ``GalleryStore`` or a ``CollectionStore``."""
    if store_kind(location) == "gallery":
        from faceatlas.gallery.store import open_store

        return open_store(location, create=False)
    from faceatlas.collection.store import CollectionStore

    return CollectionStore.open(Path(location).expanduser(), create=False)
