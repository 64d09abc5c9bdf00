"""Fusing a person's (or a track's) faces into one template: quality- and diversity-aware means.

A template is one unit vector standing for several unit face embeddings. How the faces are weighted
matters once there are many of them: a plain mean lets a burst of near-identical photos (or video
frames) outvote the few that show the person differently, and lets a blurred or mislabelled face
pull the template as much as a sharp one. The fusions here are training-free:

* ``"mean"``: every face the same.
* ``"quality_mean"``: weighted by quality (floored at QUALITY_FLOOR). What galleries and tracks
  used first, and what the model card's face-versus-template thresholds were calibrated for.
* ``"quality_softmax"``: weights ``exp(quality / temperature)``: the best faces dominate more sharply.
* ``"robust"`` (the default): the quality-weighted mean, with each face down-weighted by how much less
  like the person's medoid it is than their typical face (``_typicality``): a blurred, tiny, or
  mislabelled face, or a frame where a tracker slipped onto someone else, counts less. With one or
  two faces there is no majority to judge by, and it is the quality-weighted mean.
* ``"cluster"``: Cluster and Aggregate (the idea of CAFace, Kim et al. 2022, without its trained
  network): faces are grouped by average-linkage agglomerative clustering on cosine distance, each
  group is fused by quality, and the groups are then combined with weight ``(group quality sum) **
  alpha``: alpha 1 is ``quality_mean``, alpha 0 gives each distinct view one vote however many
  near-duplicates it has.

docs/BENCHMARKS.md ("Templates that fuse", benchmarks/template_fusion.py) measures them on LFW and
on a degraded group-photo proxy. DEFAULT_FUSION is the one chosen on validation people that also
measured better on held-out ones: "robust" cut FNIR at FPIR 1 % on the small-face proxy and on
mixed galleries and tied on clean LFW; clustering (one vote per view) lost everywhere, since an
LFW person's photos form one tight group under this embedder. The model card's face-versus-template
thresholds are calibrated for DEFAULT_FUSION (benchmarks/calibrate_templates.py).
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np

from faceatlas.errors import InvalidArgumentError

Fusion = Literal["mean", "quality_mean", "quality_softmax", "robust", "cluster"]
FUSIONS: tuple[Fusion, ...] = get_args(Fusion)
DEFAULT_FUSION: Fusion = "robust"  # measured best on held-out people (docs/BENCHMARKS.md "Templates that fuse")
PER_FACE: frozenset[Fusion] = frozenset({"mean", "quality_mean"})  # a face's weight is its own: a running sum does

QUALITY_FLOOR = 1e-3  # a face's weight is its quality, floored so no face counts for nothing
SOFTMAX_TEMPERATURE = 0.1  # quality_softmax: qualities 0.1 apart weigh e times apart
ROBUST_SCALE = 0.1  # robust: a face this much (cosine) below the typical face's similarity weighs 1/e as much
CLUSTER_DISTANCE = 0.06  # cluster: one view below this 1 - cosine (average linkage); dlib ResNet LFW photos of
# one person are mostly within 0.09 of each other (one group), so views only separate below that
CLUSTER_ALPHA = 0.5  # cluster: a group's weight is its quality sum to this power
MAX_CLUSTER_FACES = 2000  # cluster: beyond this many faces the O(n^2) linkage is skipped (quality_mean)


def fuse(
    embeddings: np.ndarray,
    qualities: np.ndarray | None = None,
    method: Fusion = DEFAULT_FUSION,
    **params: float,
) -> np.ndarray:
    """One unit float32 template from ``embeddings`` (n x d unit rows, n >= 1) and their
    ``qualities`` (n; None: all 1), by ``method`` (see the module doc); ``params`` override the
    method's defaults (temperature, scale, distance, alpha)."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or not len(x):
        raise InvalidArgumentError(f"fuse needs an n x d array of embeddings with n >= 1, got shape {x.shape}")
    q = np.ones(len(x)) if qualities is None else np.asarray(qualities, dtype=np.float64).reshape(-1)
    if len(q) != len(x):
        raise InvalidArgumentError(f"{len(x)} embeddings but {len(q)} qualities: give one quality per embedding")
    return _unit(fusion_weights(x, q, method, **params) @ x)


def fuse_groups(
    embeddings: np.ndarray, qualities: np.ndarray, owners: np.ndarray, method: Fusion = DEFAULT_FUSION
) -> tuple[np.ndarray, np.ndarray]:
    """(Owners ascending, one unit float32 template each as rows): each owner's faces fused by
    ``method``, as ``fuse`` would. One vectorised weighted sum; only the weights of people with
    several faces are worked out person by person for the fusions that look at all of a person's
    faces (tens of microseconds each, docs/BENCHMARKS.md "Templates that fuse")."""
    if not len(owners):
        return np.zeros(0, np.int64), np.zeros((0, embeddings.shape[1]), np.float32)
    order = np.argsort(owners, kind="stable")  # stable: a person's faces summed in the order given
    ids, starts = np.unique(owners[order], return_index=True)
    weights = np.maximum(np.nan_to_num(qualities[order].astype(np.float64), nan=0.0), QUALITY_FLOOR)
    if method == "mean":
        weights = np.ones(len(order))
    elif method not in PER_FACE:  # person by person, only those with several faces (one face is its own template)
        counts = np.diff(np.r_[starts, len(order)])
        for a, n in zip(starts[counts > 1].tolist(), counts[counts > 1].tolist(), strict=True):
            rows = order[a : a + n]
            weights[a : a + n] = fusion_weights(embeddings[rows].astype(np.float64), qualities[rows], method)
    sums = np.add.reduceat(embeddings[order] * weights[:, None], starts, axis=0)
    return ids, (sums / np.linalg.norm(sums, axis=1, keepdims=True)).astype(np.float32)


class RunningTemplate:
    """A template kept up to date face by face (a video track's): a weighted running sum for the
    per-face fusions, the faces themselves for the others (fused when the template is asked for)."""

    def __init__(self, method: Fusion = DEFAULT_FUSION, floor: float = QUALITY_FLOOR) -> None:
        if method not in FUSIONS:
            raise InvalidArgumentError(f"fusion must be one of {', '.join(FUSIONS)}; got {method!r}")
        self.method, self.floor = method, floor
        self._sum: np.ndarray | None = None
        self._faces: list[np.ndarray] = []
        self._qualities: list[float] = []

    def add(self, embedding: np.ndarray, quality: float) -> None:
        if self.method in PER_FACE:
            weight = 1.0 if self.method == "mean" else max(quality, self.floor)
            weighted = weight * np.asarray(embedding, dtype=np.float64)
            self._sum = weighted if self._sum is None else self._sum + weighted
        else:
            self._faces.append(np.asarray(embedding, dtype=np.float32))
            self._qualities.append(quality)

    def template(self) -> np.ndarray:
        """The unit float32 template (empty before any face)."""
        if self._sum is not None:
            return _unit(self._sum)
        if not self._faces:
            return np.zeros(0, np.float32)
        q = np.maximum(np.array(self._qualities), self.floor)
        return fuse(np.stack(self._faces), q, self.method)


def fusion_weights(
    embeddings: np.ndarray, qualities: np.ndarray, method: Fusion, floor: float = QUALITY_FLOOR, **params: float
) -> np.ndarray:
    """Each face's (non-negative) weight in its template under ``method``, qualities floored at
    ``floor``: the template is the normalised weighted sum. One face alone is its own template."""
    q = np.maximum(np.nan_to_num(np.asarray(qualities, dtype=np.float64), nan=0.0), floor)
    if method == "mean":
        return np.ones(len(q))
    if method == "quality_mean":
        return q
    if method == "quality_softmax":
        t = params.get("temperature", SOFTMAX_TEMPERATURE)
        return np.exp((q - q.max()) / t)
    if method == "robust":
        return q * _typicality(embeddings, params.get("scale", ROBUST_SCALE))
    if method == "cluster":
        return _cluster_weights(
            embeddings, q, params.get("distance", CLUSTER_DISTANCE), params.get("alpha", CLUSTER_ALPHA)
        )
    raise InvalidArgumentError(f"fusion must be one of {', '.join(FUSIONS)}; got {method!r}")


def _typicality(x: np.ndarray, scale: float) -> np.ndarray:
    """exp(-(drop below the median) / scale) of each face's similarity to the medoid (the face most
    similar to all the others): 1 for typical faces, small for the odd one out. With two faces or
    fewer there is no majority to trust, so every face is typical."""
    if len(x) < 3:
        return np.ones(len(x))
    medoid = int(np.argmax(x @ x.sum(axis=0)))  # the row sums of x x^T, in O(n d): tracks have many frames
    to_medoid = x @ x[medoid]
    drop = np.maximum(np.median(to_medoid) - to_medoid, 0.0)
    return np.exp(-drop / scale)


def cluster_labels(x: np.ndarray, distance: float) -> np.ndarray:
    """Average-linkage agglomerative groups (0..g-1) of unit rows ``x``, cut at cosine distance ``distance``."""
    if len(x) < 2:
        return np.zeros(len(x), np.int64)
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    d = np.clip(1.0 - x @ x.T, 0.0, 2.0)
    np.fill_diagonal(d, 0.0)
    tree = linkage(squareform(d, checks=False), method="average")
    return fcluster(tree, t=distance, criterion="distance").astype(np.int64) - 1


def _cluster_weights(x: np.ndarray, q: np.ndarray, distance: float, alpha: float) -> np.ndarray:
    """Weights giving sum over groups of (group quality sum) ** alpha times the group's quality-weighted
    mean: within a group a face weighs by quality, and a group's total weight is its mass ** alpha."""
    if len(x) < 3 or len(x) > MAX_CLUSTER_FACES:
        return q
    labels = cluster_labels(x, distance)
    mass = np.bincount(labels, weights=q)
    return q * mass[labels] ** (alpha - 1.0)


def _unit(v: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    return (v / norm if norm > 0 else v).astype(np.float32)
