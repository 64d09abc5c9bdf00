"""``FaceClusterer``: group faces by person, with constraints, a quality gate, and incremental runs.

>>> labels = FaceClusterer().fit(embeddings, groups=photo_ids).labels_      # -1 = unassigned
>>> more = FaceClusterer().fit(all_embeddings, initial_labels=labels_then_minus_2_for_new).labels_

How it decides (see ``linkage.py`` for the algorithm):
- **Threshold.** Two clusters merge while their average face-to-face cosine similarity is at
  least ``threshold``. By default it comes from the embedder's model card, so a new embedder
  needs no re-tuning: each merge is an open-set decision among a face's ``k`` neighbours, so the
  per-comparison false-accept rate is the one that keeps the false-positive rate of the whole
  decision at ``fpir`` (1 %, the gallery's default): far = 1 - (1 - fpir)^(1/k), about 3.3e-4
  for k = 30. ``far`` sets the per-comparison rate directly.
- **Seeds.** Two single faces start a cluster only if each is the other's nearest neighbour
  (``mutual_seeds``): a face that missed its own person's cluster does not pair up with the
  next stranger instead.
- **Consensus.** A face that average linkage left on its own, whose ``k`` nearest neighbours
  all pass the threshold and all lie in one cluster, joins it (``consensus``): it matches k of
  that cluster's faces one by one, but a big cluster is more varied than any one face's
  neighbourhood, so its average fell short.
- **Constraints.** ``groups`` (e.g. photo ids): faces of one group never share a cluster.
  ``cannot_link`` pairs never share one either; ``must_link`` pairs always do (they start merged).
- **Quality gate.** Faces below ``min_quality`` take no part in merging, so a blurred or tiny
  face cannot bridge two people; afterwards each joins the cluster it is clearly closest to (its
  average similarity passes the threshold and beats the runner-up by ``attach_margin``), or
  stays unassigned (-1).
- **Incremental.** With ``initial_labels`` (a label per row; -2 for rows not clustered yet),
  existing clusters keep their labels, only the new faces' neighbourhoods are searched, and new
  faces join existing clusters or form new ones (with the next free labels). Existing clusters
  stay whole, except small ones (at most ``reopen`` faces, not in ``frozen_labels``, e.g. named
  ones) that a new face's neighbourhood reaches: they rest on the least evidence and the new
  face is new evidence, so their faces are placed afresh (keeping the label where they stay
  together).
  An existing cluster that now holds a cannot-link pair (or two faces of one photo) gives up the
  fewest faces that resolve it, and they are placed again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin

from faceatlas.clustering.graph import Neighbours, unit_rows
from faceatlas.clustering.linkage import Nodes, average_linkage
from faceatlas.errors import InvalidArgumentError, ModelError

NOT_CLUSTERED = -2  # in initial_labels: a face no earlier run has seen
UNASSIGNED = -1
EDGE_SLACK = 0.05  # k-NN edges this far below the threshold cannot start a merge: dropped
ATTACH_EXACT_UP_TO = 4_000_000  # gated faces × clusters scored exactly; above, only the clusters near each face


def default_card() -> Any:
    """The default embedder's card (user calibration included), for a clusterer given no card:
    embeddings from ``faceatlas.analyze``. A collection passes the card of the model it is bound to."""
    from faceatlas.models.cards import DLIB_RESNET_CARD, get_card

    return get_card(DLIB_RESNET_CARD.name)


class FaceClusterer(ClusterMixin, BaseEstimator):
    """Average linkage on the k-NN graph, with photo and user constraints (see module docstring).

    Parameters: ``threshold`` (cosine; None = from ``card``, see the module doc: ``fpir`` or
    ``far``), ``k`` neighbours per face, ``mutual_seeds``, ``min_quality`` (None = no gate),
    ``consensus``, ``reopen`` (faces; 0 = keep every existing cluster), ``attach_margin``,
    ``card``: the embedder's model card, whose calibrated thresholds fix the merge threshold (None =
    the default embedder's; a collection passes the card of the model it is bound to).
    After ``fit``: ``labels_`` (int64, -1 unassigned), ``threshold_``, ``n_clusters_``.
    """

    def __init__(
        self,
        threshold: float | None = None,
        *,
        fpir: float = 1e-2,
        far: float | None = None,
        k: int = 30,
        mutual_seeds: bool = True,
        consensus: bool = True,
        reopen: int = 10,
        min_quality: float | None = 0.3,
        attach_margin: float = 0.02,
        card: Any = None,
    ) -> None:
        self.threshold = threshold
        self.fpir = fpir
        self.far = far
        self.k = k
        self.mutual_seeds = mutual_seeds
        self.consensus = consensus
        self.reopen = reopen
        self.min_quality = min_quality
        self.attach_margin = attach_margin
        self.card = card

    def fit(
        self,
        X: np.ndarray,
        y: None = None,
        *,
        qualities: Sequence[float] | np.ndarray | None = None,
        groups: Sequence[Any] | np.ndarray | None = None,
        must_link: np.ndarray | Sequence[tuple[int, int]] | None = None,
        cannot_link: np.ndarray | Sequence[tuple[int, int]] | None = None,
        initial_labels: Sequence[int] | np.ndarray | None = None,
        frozen_labels: Sequence[int] | None = None,
    ) -> FaceClusterer:
        if not np.issubdtype(np.asarray(X).dtype, np.floating):
            raise InvalidArgumentError(f"embeddings must be floating point, got dtype {np.asarray(X).dtype}")
        x = unit_rows(X)
        n = len(x)
        if self.k < 1:
            raise InvalidArgumentError(f"k must be at least 1, got {self.k}")
        if self.reopen < 0:
            raise InvalidArgumentError(f"reopen is a number of faces (0 = never), got {self.reopen}")
        frozen = np.asarray([] if frozen_labels is None else list(frozen_labels))
        if frozen.size and not np.issubdtype(frozen.dtype, np.integer):
            raise InvalidArgumentError(f"frozen_labels must be cluster labels (integers), got dtype {frozen.dtype}")
        self.threshold_ = self._threshold()
        quality = _per_row(qualities, n, "qualities", float, default=1.0)
        group = _encode_groups(groups, n)
        must, cannot = _pairs(must_link, n, "must_link"), _pairs(cannot_link, n, "cannot_link")
        initial = _per_row(initial_labels, n, "initial_labels", int, default=NOT_CLUSTERED).astype(np.int64)

        gated = np.zeros(n, bool) if self.min_quality is None else quality < self.min_quality
        gated &= initial < 0  # faces already in a cluster stay where they are
        initial = _resolve_conflicts(x, initial, group, cannot)
        earlier = initial.copy()  # the labels clusters keep, reopened or not
        if len(must):
            root = _union(n, must, initial)
            gated[np.isin(root, root[must.ravel()])] = False  # a user's must-link outranks the gate
        active = np.flatnonzero(~gated)  # gated faces sit out of merging
        neighbours = Neighbours(x if len(active) == n else x[active])  # no copy of a million faces when none sit out

        # the faces this run must place (all, or the new ones and the clusters they reopen)
        incremental = bool((initial >= 0).any())
        searching = active[initial[active] < 0] if incremental else active
        ids, sims = neighbours.of_rows(np.searchsorted(active, searching), self.k)
        if incremental and self.reopen > 0:
            reopened = self._reopen(initial, active, ids, sims, frozen.astype(np.int64))
            if len(reopened):
                initial[reopened] = NOT_CLUSTERED
                more = neighbours.of_rows(np.searchsorted(active, reopened), self.k)
                searching = np.concatenate([searching, reopened])
                ids, sims = np.concatenate([ids, more[0]]), np.concatenate([sims, more[1]])
        searching_rows = np.searchsorted(active, searching)

        # nodes: the connected groups of must-links and existing clusters
        root = _union(n, must, initial)
        node_roots, node_of_active = np.unique(root[active], return_inverse=True)
        node_of = np.full(n, -1, np.int64)
        node_of[active] = node_of_active
        nodes = _nodes(x, active, node_of_active, len(node_roots), group, cannot)

        edges = self._edges(active, searching, ids, sims, node_of)
        nearest = _Nearest(neighbours, active, searching_rows, ids, sims)
        nearest.complete(_singles(nodes, edges))
        clusters = average_linkage(nodes, edges, self.threshold_, seed_ok=nearest.mutual if self.mutual_seeds else None)

        labels = np.full(n, UNASSIGNED, np.int64)
        for label, faces in enumerate(clusters):
            labels[np.asarray(faces, dtype=np.int64)] = label
        if self.consensus:
            _join_by_consensus(labels, searching, active[ids], sims, self.threshold_, self.k, group, cannot)
        placed = np.flatnonzero(labels >= 0)
        sizes = np.bincount(labels[placed], minlength=len(clusters))
        sums = _sum_by(x[placed], labels[placed], len(clusters))
        photos: list[set[int]] = [set() for _ in clusters]
        for face in placed[group[placed] >= 0].tolist():
            photos[labels[face]].add(int(group[face]))
        self._attach(x, np.flatnonzero(gated), labels, sums, sizes, photos, group, cannot, neighbours, active)
        self.labels_ = _renumber(labels, earlier)
        self.n_clusters_ = len(np.unique(self.labels_[self.labels_ >= 0]))
        return self

    def _threshold(self) -> float:
        if self.threshold is not None:
            threshold = float(self.threshold)
            if not -1.0 <= threshold <= 1.0:
                raise InvalidArgumentError(f"threshold is a cosine similarity in [-1, 1], got {threshold}")
            return threshold
        far = self.far
        if far is None:
            if not 0.0 < self.fpir < 1.0:
                raise InvalidArgumentError(f"fpir must be a rate in (0, 1), got {self.fpir!r}")
            far = 1.0 - (1.0 - self.fpir) ** (1.0 / self.k)
        card = self.card or default_card()
        if not getattr(card, "thresholds", True):  # a stand-in card without the field decides for itself
            raise ModelError(
                f"the embedder {card.name!r} has no calibrated thresholds, so the merge threshold cannot be derived "
                "from a false-merge rate: calibrate it (faceatlas models calibrate --embedder NAME_OR_PATH "
                "--folder people/), or pass threshold="
            )
        return float(card.threshold_for(far))

    def _reopen(
        self, initial: np.ndarray, active: np.ndarray, ids: np.ndarray, sims: np.ndarray, frozen: np.ndarray
    ) -> np.ndarray:
        """Faces of the existing clusters of at most ``reopen`` faces that a new face's neighbours
        (``ids``: rows of ``active``) reach (by an edge that could start a merge), minus ``frozen`` clusters: placed afresh.
        Small clusters rest on the least evidence, and a new face nearby is new evidence; big ones
        stay as they are, so a person does not change under the user with every import."""
        reached = initial[active[ids[(ids >= 0) & (sims >= self.threshold_ - EDGE_SLACK)]]]
        reached = np.unique(reached[reached >= 0])
        sizes = np.bincount(initial[initial >= 0])
        reached = reached[sizes[reached] <= self.reopen]
        reached = reached[~np.isin(reached, frozen)]
        return np.flatnonzero(np.isin(initial, reached))

    def _edges(
        self, active: np.ndarray, searching: np.ndarray, ids: np.ndarray, sims: np.ndarray, node_of: np.ndarray
    ) -> np.ndarray:
        """Node pairs joined by a k-NN edge (``ids``, ``sims`` of the searching faces, as active rows)."""
        if ids.size == 0:
            return np.zeros((0, 2), np.int64)
        source = np.repeat(np.searchsorted(active, searching), ids.shape[1])
        keep = (ids.ravel() >= 0) & (sims.ravel() >= self.threshold_ - EDGE_SLACK)
        pairs = np.stack([source[keep], ids.ravel()[keep]], axis=1)
        return node_of[active[pairs]]

    def _attach(
        self,
        x: np.ndarray,
        faces: np.ndarray,
        labels: np.ndarray,
        sums: np.ndarray,
        sizes: np.ndarray,
        photos: list[set[int]],
        group: np.ndarray,
        cannot: np.ndarray,
        neighbours: Neighbours,
        active: np.ndarray,
    ) -> None:
        """Gated faces join the cluster they clearly belong to (clusters as merged, not updated).

        Each face is scored against every cluster while faces × clusters is small; beyond
        ``ATTACH_EXACT_UP_TO`` (gated faces × clusters grows as n²), against the clusters its
        ``k`` nearest active faces are in: a cluster whose average passes the threshold (or
        comes within the margin of the best) has a face at least that similar, so those are the
        clusters that can decide, unless more than ``k`` faces are closer still."""
        if not len(faces) or not len(sums):
            return
        if len(faces) * len(sums) <= ATTACH_EXACT_UP_TO:
            best, top, runner_up = _best_clusters_exact(x[faces], sums, sizes)
        else:
            near, _ = neighbours.of_vectors(x[faces], self.k)
            near_labels = np.where(near >= 0, labels[active[near.clip(0)]], UNASSIGNED)
            best, top, runner_up = _best_clusters_among(x[faces], near_labels, sums, sizes)
        clear = (top >= self.threshold_) & (top - runner_up >= self.attach_margin)
        banned = _partners(cannot)
        for face, target in zip(faces[clear].tolist(), best[clear].tolist(), strict=True):
            if group[face] >= 0 and group[face] in photos[target]:
                continue
            if banned.get(face) and (labels[list(banned[face])] == target).any():
                continue
            labels[face] = target
            if group[face] >= 0:
                photos[target].add(int(group[face]))


# --- helpers ---------------------------------------------------------------------------------


def _per_row(values: Any, n: int, name: str, kind: type, default: float) -> np.ndarray:
    if values is None:
        return np.full(n, default, dtype=np.float64 if kind is float else np.int64)
    array = np.asarray(values)
    if array.shape != (n,):
        raise InvalidArgumentError(f"{name} must have one value per embedding ({n}), got shape {array.shape}")
    if kind is float:
        array = array.astype(np.float64)
        if not np.isfinite(array).all():
            raise InvalidArgumentError(f"{name} hold NaN or inf")
        return array
    if not np.issubdtype(array.dtype, np.integer):
        raise InvalidArgumentError(f"{name} must be integers, got dtype {array.dtype}")
    if (array < NOT_CLUSTERED).any():
        raise InvalidArgumentError(f"{name} must be >= {NOT_CLUSTERED} (-2 new, -1 unassigned, 0.. a cluster)")
    return array.astype(np.int64)


def _encode_groups(groups: Any, n: int) -> np.ndarray:
    """Group ids as 0.. (any hashable values; None means no group), -1 for none."""
    if groups is None:
        return np.full(n, -1, np.int64)
    values = list(groups)
    if len(values) != n:
        raise InvalidArgumentError(f"groups must have one value per embedding ({n}), got {len(values)}")
    codes: dict[Any, int] = {}
    return np.array([-1 if v is None else codes.setdefault(v, len(codes)) for v in values], dtype=np.int64)


def _pairs(pairs: Any, n: int, name: str) -> np.ndarray:
    if pairs is None:
        return np.zeros((0, 2), np.int64)
    array = np.asarray(pairs, dtype=np.int64).reshape(-1, 2) if len(pairs) else np.zeros((0, 2), np.int64)
    if ((array < 0) | (array >= n)).any():
        raise InvalidArgumentError(f"{name} holds an index outside 0..{n - 1}")
    return array


def _resolve_conflicts(x: np.ndarray, initial: np.ndarray, group: np.ndarray, cannot: np.ndarray) -> np.ndarray:
    """Existing clusters that hold a cannot-link pair or two faces of one photo give up as few
    faces as it takes (most conflicts first, then the least typical), which are placed afresh."""
    initial = initial.copy()
    conflicts: dict[int, list[tuple[int, int]]] = {}
    for a, b in cannot.tolist():
        if initial[a] >= 0 and initial[a] == initial[b]:
            conflicts.setdefault(int(initial[a]), []).append((a, b))
    placed = np.flatnonzero((initial >= 0) & (group >= 0))
    if len(placed):
        order = placed[np.lexsort((group[placed], initial[placed]))]
        same = (initial[order][1:] == initial[order][:-1]) & (group[order][1:] == group[order][:-1])
        for i in np.flatnonzero(same).tolist():
            conflicts.setdefault(int(initial[order[i]]), []).append((int(order[i]), int(order[i + 1])))
    for label, pairs in conflicts.items():
        members = np.flatnonzero(initial == label)
        centre = x[members].sum(axis=0)
        typical = {int(f): float(x[f] @ centre) for f in members}
        pairs = list(pairs)
        while pairs:
            degree: dict[int, int] = {}
            for a, b in pairs:
                degree[a] = degree.get(a, 0) + 1
                degree[b] = degree.get(b, 0) + 1
            out = max(degree, key=lambda f: (degree[f], -typical[f]))
            initial[out] = NOT_CLUSTERED
            pairs = [(a, b) for a, b in pairs if out not in (a, b)]
    return initial


def _union(n: int, must: np.ndarray, initial: np.ndarray) -> np.ndarray:
    """Each face's representative: faces of one existing cluster or joined by must-links share one."""
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    placed = np.flatnonzero(initial >= 0)
    if len(placed):
        _, first = np.unique(initial[placed], return_index=True)
        heads = dict(zip(initial[placed][first].tolist(), placed[first].tolist(), strict=True))
        for i in placed.tolist():
            parent[i] = heads[int(initial[i])]
    for a, b in must.tolist():
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(i) for i in range(n)], dtype=np.int64)


def _partners(cannot: np.ndarray) -> dict[int, set[int]]:
    partners: dict[int, set[int]] = {}
    for a, b in cannot.tolist():
        partners.setdefault(a, set()).add(b)
        partners.setdefault(b, set()).add(a)
    return partners


def _sum_by(rows: np.ndarray, into: np.ndarray, m: int) -> np.ndarray:
    """(m, d) float64 sums of ``rows`` by ``into`` (0..m-1): one bincount per dimension, the same
    sums as ``np.add.at`` (in row order) and ~5x faster over a million rows."""
    sums = np.zeros((m, rows.shape[1]))
    for j in range(rows.shape[1]):
        sums[:, j] = np.bincount(into, weights=rows[:, j], minlength=m)
    return sums


def _nodes(
    x: np.ndarray, active: np.ndarray, node_of_active: np.ndarray, m: int, group: np.ndarray, cannot: np.ndarray
) -> Nodes:
    sums = _sum_by(x[active], node_of_active, m)
    sizes = np.bincount(node_of_active, minlength=m).astype(np.float64)
    members: list[list[int]] = [[] for _ in range(m)]
    for face, node in zip(active.tolist(), node_of_active.tolist(), strict=True):
        members[node].append(face)
    photos: list[set[int]] = [set() for _ in range(m)]
    if (group >= 0).any():
        for face, node in zip(active.tolist(), node_of_active.tolist(), strict=True):
            if group[face] >= 0:
                photos[node].add(int(group[face]))
    forbidden: list[set[int]] = [set() for _ in range(m)]
    if len(cannot):
        node_of = dict(zip(active.tolist(), node_of_active.tolist(), strict=True))
        for a, b in cannot.tolist():
            if a in node_of:
                forbidden[node_of[a]].add(b)
            if b in node_of:
                forbidden[node_of[b]].add(a)
    return Nodes(sums, sizes, members, photos, forbidden)


def _join_by_consensus(
    labels: np.ndarray,
    faces: np.ndarray,
    neighbours: np.ndarray,
    sims: np.ndarray,
    threshold: float,
    k: int,
    group: np.ndarray,
    cannot: np.ndarray,
) -> None:
    """A face left on its own whose ``k`` nearest neighbours (``neighbours``, face indices, with
    ``sims``) all pass the threshold and all lie in one cluster joins that cluster, unless a
    photo or cannot-link forbids it. It matches k of that cluster's faces one by one, yet the
    cluster's average fell short: a big cluster is more varied than any one face's neighbourhood."""
    if neighbours.shape[1] < k or not len(faces):
        return
    alone = np.bincount(labels[labels >= 0], minlength=1)[labels[faces].clip(0)] == 1
    theirs = labels[neighbours]
    agree = alone & (sims.min(axis=1) >= threshold) & (theirs == theirs[:, :1]).all(axis=1) & (theirs[:, 0] >= 0)
    if not agree.any():
        return
    banned = _partners(cannot)
    photos: dict[int, set[int]] = {}  # cluster -> its photos, for the faces that have one
    if (group[faces[agree]] >= 0).any():
        for face in np.flatnonzero((labels >= 0) & (group >= 0)).tolist():
            photos.setdefault(int(labels[face]), set()).add(int(group[face]))
    for face, target in zip(faces[agree].tolist(), theirs[agree, 0].tolist(), strict=True):
        if group[face] >= 0 and group[face] in photos.get(target, ()):
            continue
        if face in banned and (labels[list(banned[face])] == target).any():
            continue
        labels[face] = target
        if group[face] >= 0:
            photos.setdefault(target, set()).add(int(group[face]))


def _singles(nodes: Nodes, edges: np.ndarray) -> list[int]:
    """Faces that are a node on their own and can take part in a merge."""
    touched = np.unique(edges.ravel()).tolist() if len(edges) else []
    return [nodes.members[node][0] for node in touched if len(nodes.members[node]) == 1]


class _Nearest:
    """Each face's two nearest neighbours, to ask whether two faces are each other's nearest."""

    def __init__(self, neighbours: Neighbours, active: np.ndarray, rows: np.ndarray, ids: np.ndarray, sims: np.ndarray):
        self.neighbours = neighbours
        self.row_of = np.full(int(active[-1]) + 1 if len(active) else 0, -1, np.int64)  # face -> active row
        self.row_of[active] = np.arange(len(active))
        m = len(active)
        self.ids = np.full((m, 2), -1, np.int64)  # active rows of the two nearest; -1: none
        self.sims = np.full((m, 2), -np.inf)
        self.known = np.zeros(m, bool)
        self._keep(rows, ids, sims)

    def _keep(self, rows: np.ndarray, ids: np.ndarray, sims: np.ndarray) -> None:
        take = min(2, ids.shape[1])
        self.ids[rows, :take] = ids[:, :take]
        self.sims[rows, :take] = sims[:, :take]
        self.known[rows] = True

    def complete(self, faces: list[int]) -> None:
        """Look up the faces whose neighbours were not searched (earlier runs' single faces)."""
        rows = self.row_of[np.asarray(faces, dtype=np.int64)]
        rows = rows[~self.known[rows]] if len(rows) else rows
        if len(rows):
            self._keep(rows, *self.neighbours.of_rows(rows, 2))

    def _best_other(self, row: int, other: int) -> float:
        first = self.ids[row, 0]
        return float(self.sims[row, 0] if first != other else self.sims[row, 1])

    def mutual(self, face_a: int, face_b: int) -> bool:
        """Are faces a and b each other's nearest neighbour (ties count)?"""
        a, b = int(self.row_of[face_a]), int(self.row_of[face_b])
        score = float(self.neighbours.x[a] @ self.neighbours.x[b])
        return score >= self._best_other(a, b) and score >= self._best_other(b, a)


def _best_clusters_exact(
    faces: np.ndarray, sums: np.ndarray, sizes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per face: the cluster with the highest average similarity, that average, the runner-up's
    average (-inf if none), over every cluster (emptied ones left out)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        averages = (faces.astype(np.float64) @ sums.T) / sizes[None, :]
    averages[:, sizes == 0] = -np.inf  # clusters emptied by a consensus join
    best = np.argmax(averages, axis=1)
    top = averages[np.arange(len(faces)), best]
    averages[np.arange(len(faces)), best] = -np.inf
    return best, top, averages.max(axis=1, initial=-np.inf)


def _best_clusters_among(
    faces: np.ndarray, candidates: np.ndarray, sums: np.ndarray, sizes: np.ndarray, chunk: int = 4096
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """As ``_best_clusters_exact``, over each face's ``candidates`` (cluster labels, -1 = none;
    repeats allowed), a chunk of faces at a time: (faces, candidates, d) float64 stays bounded."""
    best = np.zeros(len(faces), np.int64)
    top = np.full(len(faces), -np.inf)
    runner_up = np.full(len(faces), -np.inf)
    for start in range(0, len(faces), chunk):
        f, c = faces[start : start + chunk].astype(np.float64), candidates[start : start + chunk]
        valid = c >= 0
        valid[valid] = sizes[c[valid]] > 0  # clusters emptied by a consensus join
        cc = c.clip(0)
        with np.errstate(divide="ignore", invalid="ignore"):
            scores = np.einsum("id,ijd->ij", f, sums[cc]) / sizes[cc]
        scores[~valid] = -np.inf
        slot = np.argmax(scores, axis=1)
        rows = np.arange(len(f))
        best[start : start + len(f)] = cc[rows, slot]
        top[start : start + len(f)] = scores[rows, slot]
        others = np.where(cc != cc[rows, slot][:, None], scores, -np.inf)
        runner_up[start : start + len(f)] = others.max(axis=1, initial=-np.inf)
    return best, top, runner_up


def _renumber(labels: np.ndarray, initial: np.ndarray) -> np.ndarray:
    """Clusters keep the label they had (the most common earlier label among their faces, each
    earlier label used once, bigger clusters choosing first); new clusters take the next free
    labels in order of first face. One pass over the faces, not one per cluster."""
    out = np.full(len(labels), UNASSIGNED, np.int64)
    placed = np.flatnonzero(labels >= 0)
    if not len(placed):
        return out
    _, first, inverse, sizes = np.unique(labels[placed], return_index=True, return_inverse=True, return_counts=True)
    first = placed[first]  # each cluster's first face
    # each cluster's earlier labels, most common first (ties: the smaller label)
    had = initial[placed] >= 0
    pairs, counts = np.unique(np.stack([inverse[had], initial[placed][had]], axis=1), axis=0, return_counts=True)
    order = np.lexsort((pairs[:, 1], -counts, pairs[:, 0]))
    choices: dict[int, list[int]] = {}
    for cluster, earlier in pairs[order].tolist():
        choices.setdefault(cluster, []).append(earlier)
    chosen = np.full(len(sizes), UNASSIGNED, np.int64)
    taken: set[int] = set()
    for cluster in np.lexsort((first, -sizes)).tolist():
        label = next((value for value in choices.get(cluster, ()) if value not in taken), None)
        if label is not None:
            chosen[cluster] = label
            taken.add(label)
    next_free = int(max(initial.max(initial=-1), -1)) + 1
    for cluster in np.argsort(first, kind="stable").tolist():
        if chosen[cluster] == UNASSIGNED:
            while next_free in taken:
                next_free += 1
            chosen[cluster] = next_free
            taken.add(next_free)
    out[placed] = chosen[inverse]
    return out
