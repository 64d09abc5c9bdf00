"""Clustering faces by person: ``FaceClusterer`` (the default), baselines, and ``cluster()``."""

from __future__ import annotations

from typing import Any

import numpy as np

from faceatlas.clustering.clusterer import NOT_CLUSTERED, UNASSIGNED, FaceClusterer

__all__ = ["NOT_CLUSTERED", "UNASSIGNED", "FaceClusterer", "cluster"]


def cluster(embeddings: np.ndarray, **options: Any) -> np.ndarray:
    """One label per embedding row from the default clusterer (-1 = unassigned).

    ``options``: ``qualities``, ``groups`` (e.g. photo ids), ``must_link``, ``cannot_link``,
    ``initial_labels`` go to :meth:`FaceClusterer.fit`; anything else (``threshold``, ``far``,
    ``k``, ``min_quality``…) to :class:`FaceClusterer`.
    """
    fit_keys = {"qualities", "groups", "must_link", "cannot_link", "initial_labels"}
    fit_options = {key: value for key, value in options.items() if key in fit_keys}
    params = {key: value for key, value in options.items() if key not in fit_keys}
    return FaceClusterer(**params).fit(embeddings, **fit_options).labels_
