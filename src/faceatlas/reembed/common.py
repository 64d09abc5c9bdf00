"""What re-embedding a gallery and a collection share: the target's tag, checking what the new
embedder returned, the verification threshold of a model, and the figures of two spaces."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from faceatlas.collection.store import model_tag as target_tag  # noqa: F401 - the tag a store binds for an analyzer
from faceatlas.errors import FaceAtlasError, ModelMismatchError
from faceatlas.gallery.store import ModelTag
from faceatlas.reembed.figures import VERIFY_FAR, LabelFigures, label_figures

Progress = Callable[[int, int], None]  # (faces embedded, faces to embed)
ATTEMPTS = 3  # embed-then-swap rounds, when faces keep being added meanwhile
_NORM_TOLERANCE = 1e-3  # as the stores


def checked_vectors(vectors: Any, count: int, tag: ModelTag) -> np.ndarray:
    """The new embedder's output as (count, dim) unit float32 rows, or an error before anything is
    staged: a model whose output is not the dimension it declares would mix two spaces."""
    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim != 2 or x.shape != (count, tag.dim):
        got = f"{x.shape[1]}-d" if x.ndim == 2 else f"shape {x.shape}"
        raise ModelMismatchError(
            f"the embedder {tag} returned {got} embeddings for {count} face(s), not {tag.dim}-d ones as its card "
            "says: it is not the model it claims to be; check the model file and its card (<model>.onnx.card.json). "
            "Nothing was switched"
        )
    norms = np.linalg.norm(x, axis=1)
    if not np.isfinite(x).all() or (np.abs(norms - 1.0) > _NORM_TOLERANCE).any():
        raise ModelMismatchError(
            f"the embedder {tag} returned embeddings that are not finite unit vectors; nothing was switched"
        )
    return x


def threshold_of(card: Any) -> float | None:
    """The card's verification threshold at ``VERIFY_FAR`` (the user's calibration over the shipped
    one), or None when it has none."""
    if card is None:
        return None
    try:
        from faceatlas.models.calibration import with_user_calibration

        return float(with_user_calibration(card).threshold_for(VERIFY_FAR))
    except FaceAtlasError:  # no calibrated thresholds (a bring-your-own model without a calibration)
        return None


def card_of_tag(tag: ModelTag | None) -> Any:
    """The card of a store's old model, where faceatlas knows it (not a bring-your-own model: a store
    records no file), else None: the "before" figures then go without the pairwise ones."""
    if tag is None:
        return None
    try:
        from faceatlas.models.catalog import card_for_tag

        return card_for_tag(tag)
    except FaceAtlasError:
        return None


def before_after(
    old: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    new: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    thresholds: tuple[float | None, float | None],
) -> tuple[LabelFigures | None, LabelFigures | None]:
    """Figures of both spaces on the faces present in both; each side is (face ids, labels,
    qualities, embeddings). None when fewer than two labelled faces remain."""
    common = np.intersect1d(old[0], new[0])
    if len(common) < 2:
        return None, None
    out = []
    for (ids, labels, qualities, vectors), threshold in zip((old, new), thresholds, strict=True):
        rows = np.searchsorted(ids, common)  # ids ascending
        out.append(label_figures(vectors[rows], labels[rows], qualities[rows], threshold))
    return out[0], out[1]
