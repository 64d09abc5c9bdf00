"""Photo collections: index folders of photos (and videos: one face per track, with its time),
cluster their faces by person, export a contact sheet.

>>> from faceatlas.collection import CollectionStore, index_folder, export_html, merge_clusters
>>> with CollectionStore.open("collection.db") as store:
...     print(index_folder("~/Pictures", store))      # resumable; a re-run only does what changed
...     export_html(store, "sheet")                    # sheet/index.html
...     merge_clusters(store, 7, into=3)               # corrections hold in every later clustering run

Nothing is imported until used, so the CLI (which imports ``collection.cli``) starts fast.
See docs/COLLECTION.md.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "HtmlExport": "faceatlas.collection.html",
    "export_html": "faceatlas.collection.html",
    "IndexReport": "faceatlas.collection.indexer",
    "index_folder": "faceatlas.collection.indexer",
    **{
        name: "faceatlas.collection.corrections"
        for name in ("name_cluster", "merge_clusters", "split_cluster", "not_this_person")
    },
    **{
        name: "faceatlas.collection.store"
        for name in (
            "NOT_CLUSTERED",
            "UNASSIGNED",
            "ClusterInfo",
            "ClusterNotFoundError",
            "CollectionError",
            "CollectionStore",
            "EnrollSummary",
            "FaceInfo",
            "FaceTable",
            "CorrectionConflictError",
            "FaceExistsError",
            "FaceNotFoundError",
            "InvalidCorrectionError",
            "ModelMismatchError",
            "NameTakenError",
            "NewPhoto",
            "PhotoNotFoundError",
            "PhotoRecord",
            "PhotoState",
            "VideoMoment",
        )
    },
    **{name: "faceatlas.collection.search" for name in ("FaceFilter", "FaceSearcher", "search_faces")},
    **{name: "faceatlas.collection.manual" for name in ("add_face", "remove_face")},
    "export_regions": "faceatlas.collection.xmp_export",
    "forget_person": "faceatlas.collection.forget",
    "export_person": "faceatlas.collection.export_person",
    "VIDEO_EXTENSIONS": "faceatlas.collection.video",
    "read_frame": "faceatlas.collection.video",
}

__all__ = sorted(_EXPORTS)  # noqa: PLE0605 - a list, built from the one table of names


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'faceatlas.collection' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
