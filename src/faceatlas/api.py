"""The front door: a handful of verbs on a shared, lazily loaded default pipeline."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from faceatlas.errors import InvalidArgumentError, NoFaceError
from faceatlas.pipeline import FaceAnalyzer, ImageSource, primary_face
from faceatlas.types import Face, Match
from faceatlas.verification import cosine_similarity, decide

_DEFAULT: FaceAnalyzer | None = None
_LOCK = threading.Lock()


def default_analyzer() -> FaceAnalyzer:
    """The process-wide pipeline the top-level functions use (created on first call)."""
    global _DEFAULT
    with _LOCK:
        if _DEFAULT is None:
            _DEFAULT = FaceAnalyzer()
        return _DEFAULT


def detect(image: ImageSource) -> list[Face]:
    """Every face in ``image``: box, score, five landmarks, pose and quality, best first.

    An image with no face gives ``[]``; an image that cannot be read raises InvalidImageError.
    """
    return default_analyzer().detect(image)


def detect_batch(images: Sequence[ImageSource]) -> list[list[Face]]:
    return default_analyzer().detect_batch(images)


def analyze(image: ImageSource) -> list[Face]:
    """Like :func:`detect`, and each face also carries ``face.embedding`` (128 floats, unit norm)."""
    return default_analyzer().analyze(image)


def analyze_batch(images: Sequence[ImageSource]) -> list[list[Face]]:
    return default_analyzer().analyze_batch(images)


def embed(image: ImageSource, faces: Sequence[Face] | None = None) -> np.ndarray:
    """Embeddings ``(n_faces, 128)`` of the faces in ``image`` (found now, or the ``faces`` given)."""
    analyzer = default_analyzer()
    if faces is None:  # one pass: analyze aligns each face once for quality and embedding
        found = analyzer.analyze(image)
        if not found:
            return np.empty((0, analyzer.embedder.dim), dtype=np.float32)
        return np.stack([f.embedding for f in found])  # type: ignore[misc]
    return analyzer.embed_faces(image, faces)


def _embedding_of(item: ImageSource | Face | np.ndarray, name: str) -> np.ndarray:
    if isinstance(item, Face):
        if item.embedding is None:
            raise InvalidArgumentError(f"{name} is a Face without an embedding; get it from analyze(), not detect()")
        return item.embedding
    if isinstance(item, np.ndarray) and item.ndim == 1:
        return item
    faces = analyze(item)
    face = primary_face(faces)
    if face is None:
        raise NoFaceError(f"no face was found in {name} ({_describe(item)}); verify needs one face per side")
    return face.embedding  # type: ignore[return-value]


def _describe(item: object) -> str:
    if isinstance(item, np.ndarray):
        return f"array {item.shape}"
    text = str(item)
    return text if len(text) < 120 else text[:117] + "..."


def verify(
    a: ImageSource | Face | np.ndarray,
    b: ImageSource | Face | np.ndarray,
    *,
    far: float | None = None,
    threshold: float | None = None,
) -> Match:
    """Are ``a`` and ``b`` the same person?

    Each side is an image (its largest face is used), a :class:`Face` from :func:`analyze`, or an
    embedding vector. The decision uses the threshold calibrated for a false-accept rate of
    ``far`` (default 1e-3; lower is stricter) or an explicit cosine ``threshold``.
    """
    similarity = cosine_similarity(_embedding_of(a, "a"), _embedding_of(b, "b"))
    return decide(similarity, default_analyzer().embedder.card, far=far, threshold=threshold)
