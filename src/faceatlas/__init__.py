"""faceatlas: offline-first face detection, alignment, embedding and verification.

>>> import faceatlas
>>> faces = faceatlas.analyze("photo.jpg")       # models load on first use, not at import
>>> faceatlas.verify("a.jpg", "b.jpg").is_match

Nothing heavy is imported here: the verbs load their modules when first called.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it (imported on first attribute access, PEP 562)
_EXPORTS = {
    "analyze": "faceatlas.api",
    "analyze_batch": "faceatlas.api",
    "detect": "faceatlas.api",
    "detect_batch": "faceatlas.api",
    "embed": "faceatlas.api",
    "verify": "faceatlas.api",
    "track": "faceatlas.video.tracking",
    "Track": "faceatlas.video.tracking",
    "default_analyzer": "faceatlas.api",
    "FaceAnalyzer": "faceatlas.pipeline",
    "Gallery": "faceatlas.gallery.gallery",
    "cluster": "faceatlas.clustering",
    "FaceClusterer": "faceatlas.clustering",
    "load_image": "faceatlas.image",
    "align_face": "faceatlas.align",
    "create_detector": "faceatlas.detectors",
    "list_detectors": "faceatlas.detectors",
    "create_embedder": "faceatlas.embedders",
    "list_embedders": "faceatlas.embedders",
    "get_card": "faceatlas.models.cards",
    "list_models": "faceatlas.models.catalog",
    "ModelInfo": "faceatlas.models.catalog",
    "Box": "faceatlas.types",
    "Face": "faceatlas.types",
    "Landmarks": "faceatlas.types",
    "Match": "faceatlas.types",
    "Pose": "faceatlas.types",
    "Quality": "faceatlas.types",
    "FaceAtlasError": "faceatlas.errors",
    "InvalidImageError": "faceatlas.errors",
    "ImageTooLargeError": "faceatlas.errors",
    "UnsupportedImageError": "faceatlas.errors",
    "ModelError": "faceatlas.errors",
    "UnknownModelError": "faceatlas.errors",
    "NoFaceError": "faceatlas.errors",
}

__all__ = sorted(_EXPORTS)  # noqa: PLE0605 - a list, built from the one table of names


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'faceatlas' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # for type checkers and IDEs only
    from faceatlas.align import align_face
    from faceatlas.api import analyze, analyze_batch, default_analyzer, detect, detect_batch, embed, verify
    from faceatlas.detectors import create_detector, list_detectors
    from faceatlas.embedders import create_embedder, list_embedders
    from faceatlas.errors import (
        FaceAtlasError,
        ImageTooLargeError,
        InvalidImageError,
        ModelError,
        NoFaceError,
        UnknownModelError,
        UnsupportedImageError,
    )
    from faceatlas.image import load_image
    from faceatlas.models.cards import get_card
    from faceatlas.models.catalog import ModelInfo, list_models
    from faceatlas.pipeline import FaceAnalyzer
    from faceatlas.types import Box, Face, Landmarks, Match, Pose, Quality
    from faceatlas.video.tracking import Track, track
