"""Turning images into one face each, for protocols that compare whole images."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from faceatlas.errors import InvalidImageError
from faceatlas.eval.source import ImageResult
from faceatlas.image import load_image
from faceatlas.pipeline import FaceAnalyzer, primary_face
from faceatlas.types import Face


def primary_faces(
    results: Mapping[Path, ImageResult], strategy: Literal["largest", "central"] = "central"
) -> dict[Path, Face | None]:
    """Each image's primary face (see :func:`faceatlas.pipeline.primary_face`); None if none or unreadable."""
    return {
        path: primary_face(result.faces, (result.width, result.height), strategy) if result.ok else None
        for path, result in results.items()
    }


def primary_embeddings(
    analyzer: FaceAnalyzer, paths: Sequence[Path], strategy: Literal["largest", "central"] = "central"
) -> list[np.ndarray | None]:
    """The embedding of each image's primary face; None where no face is found or the file is bad."""
    images: list[np.ndarray | None] = []
    for path in paths:
        try:
            images.append(load_image(path))
        except InvalidImageError:
            images.append(None)
    readable = [img for img in images if img is not None]
    results = iter(analyzer.analyze_batch(readable))
    out: list[np.ndarray | None] = []
    for img in images:
        if img is None:
            out.append(None)
            continue
        face = primary_face(next(results), (img.shape[1], img.shape[0]), strategy)
        out.append(None if face is None else face.embedding)
    return out
