"""Which questions to ask a user about a clustering, best first: the planner behind ``faceatlas review``.

It works on arrays (rows of a face table) so that the collection's review queue
(``faceatlas.collection.review``) and the labelling simulation (``faceatlas.eval.labelling``)
ask the very same questions.

- **Nodes.** Each cluster (label >= 0) is a node, and so is each unassigned face (label -1) on
  its own: a face the clusterer left out can still be joined to its person. Faces never clustered
  (-2) take no part.
- **Merge questions** ("are these two one person?") pair each node with its ``neighbours``
  nearest nodes by *average* face-to-face cosine similarity (the clusterer's own merge criterion,
  so "near the threshold" means what it means to the clusterer). Pairs are never asked when the
  two nodes share a photo (a person appears once per photo) or a cannot-link spans them (the
  question was answered "no" already, or the user said so another way).
- **Member questions** ("is this face this cluster's person?") ask about the faces of clusters
  of at least 3 faces that are least like the rest of their cluster (leave-one-out average
  similarity), unless the face is ``confirmed`` already.
- **Gain.** ``p`` = logistic((similarity - threshold) / scale): the chance the pair is one person,
  with ``scale`` one decade of false-accept rate on the model's card (``card_scale``), so the
  curve is in the card's impostor terms: ``p`` is 0.5 at the threshold and about 0.27 a decade of
  FAR looser. A merge's gain is ``min(size_a, size_b) * p``: the faces a "yes" puts right (the
  smaller side moves). A member question's gain is ``1 - p``: the chance its one face is wrong.
  The clusterer already merged everything above the threshold (unless a photo or cannot-link
  stopped it), so the first merge questions are the pairs just below it, biggest first.
- **Learning.** The card's curve is its calibration pairs'; how many of the pairs a clusterer left
  apart are one person depends on the library (few among strangers, most where people are split).
  ``Calibration`` bends the curve, one per question kind, by the user's answers so far (a logistic
  fit with the card's curve as its prior, never decreasing), and the planners take it.
- **Group questions** (``plan_group``): one anchor cluster, with the clusters likely its person
  (single link) and its own faces likely not (least like the rest), asked together.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from faceatlas.errors import InvalidArgumentError

__all__ = ["DEFAULT_SCALE", "Calibration", "Candidate", "card_scale", "plan_questions", "same_person_chance"]

DEFAULT_SCALE = 0.02  # cosine per logistic unit when the card cannot say (about a FAR decade for dlib)
MIN_MEMBER_CLUSTER = 3  # a face of a pair is as much "the outlier" as the other: no member questions there

QuestionKind = Literal["merge", "member"]


@dataclass(frozen=True)
class Candidate:
    """One question, in rows of the arrays given. ``rows``: the two faces shown (merge: each
    node's best face; member: the face asked about, then its cluster's best face)."""

    kind: QuestionKind
    gain: float
    similarity: float  # average face-to-face cosine (merge: between the nodes; member: face to the rest)
    p_same: float  # the chance the two are one person (see the module doc)
    rows: tuple[int, int]
    sizes: tuple[int, int]  # faces of each node (member: 1, and the cluster's)

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.kind, *self.rows)


def card_scale(card: Any, far: float = 1e-3) -> float:
    """One decade of false-accept rate in cosine on ``card`` (threshold at ``far`` minus the one at
    10 x ``far``); ``DEFAULT_SCALE`` when the card has no calibration there."""
    try:
        scale = float(card.threshold_for(far)) - float(card.threshold_for(10 * far))
    except Exception:  # noqa: BLE001 - no card, no thresholds, or a FAR outside its range: the default
        return DEFAULT_SCALE
    return scale if scale > 1e-4 else DEFAULT_SCALE


def same_person_chance(similarity: np.ndarray | float, threshold: float, scale: float) -> np.ndarray:
    """logistic((similarity - threshold) / scale)."""
    return _logistic((np.asarray(similarity, dtype=np.float64) - threshold) / scale)


def _logistic(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


#: how far a user's answers may bend the card's curve before many of them agree: the prior's spread
#: of the offset (in logistic units, one FAR decade each) and of the slope around 1
PRIOR_OFFSET_SD = 1.5
PRIOR_SLOPE_SD = 0.5


@dataclass(frozen=True)
class Calibration:
    """The card's curve bent by the user's own answers, one curve per question kind ("merge",
    "member", "group"): ``p = logistic(offset + slope * z)``, ``z = (similarity - threshold) /
    scale``. The card knows how often two faces at a similarity are one person among *its*
    calibration pairs; a library decides how many of the pairs the clusterer left apart are one
    person: few in a library of strangers (merge questions are mostly "no"), most in one where
    people are split into many clusters. :meth:`fit` learns that from the answers so far (a
    Gaussian prior on the card's curve, so a few answers bend it a little)."""

    curves: tuple[tuple[str, float, float], ...] = ()

    def curve(self, kind: str) -> tuple[float, float]:
        """(offset, slope) of ``kind``'s curve; (0, 1), the card's, when no answer bent it."""
        return next(((a, b) for k, a, b in self.curves if k == kind), (0.0, 1.0))

    def chance(self, kind: str, similarity: np.ndarray | float, threshold: float, scale: float) -> np.ndarray:
        offset, slope = self.curve(kind)
        return _logistic(offset + slope * (np.asarray(similarity, dtype=np.float64) - threshold) / scale)

    @classmethod
    def fit(cls, answers: Collection[tuple[str, float, bool]], *, threshold: float, scale: float) -> Calibration:
        """The curves that best explain ``answers`` ((kind, the similarity the question showed,
        whether the user said "same person")) under the prior (MAP, Newton's method)."""
        curves = []
        for kind in sorted({k for k, _, _ in answers}):
            z = np.array([(sim - threshold) / scale for k, sim, _ in answers if k == kind], dtype=np.float64)
            y = np.array([float(same) for k, _, same in answers if k == kind])
            curves.append((kind, *_map_logistic(np.clip(z, -30, 30), y)))
        return cls(tuple(curves))


def _map_logistic(z: np.ndarray, y: np.ndarray, steps: int = 25) -> tuple[float, float]:
    """(offset, slope) maximising the answers' likelihood times the prior N(0, PRIOR_OFFSET_SD) x
    N(1, PRIOR_SLOPE_SD), the slope at least ``MIN_SLOPE``: a higher similarity never makes one
    person less likely (a few answers at one similarity, some yes and some no, could say so)."""
    theta = _newton(z, y, np.array([0.0, 1.0]), steps, fit_slope=True)
    if theta[1] < MIN_SLOPE:
        theta = _newton(z, y, np.array([0.0, MIN_SLOPE]), steps, fit_slope=False)
    return float(theta[0]), float(theta[1])


MIN_SLOPE = 0.25


def _newton(z: np.ndarray, y: np.ndarray, start: np.ndarray, steps: int, fit_slope: bool) -> np.ndarray:
    prior_mean = np.array([0.0, 1.0])
    prior_precision = np.diag([PRIOR_OFFSET_SD**-2, PRIOR_SLOPE_SD**-2])
    design = np.stack([np.ones_like(z), z], axis=1)
    free = slice(None) if fit_slope else slice(0, 1)
    theta = start.copy()
    for _ in range(steps):
        p = _logistic(design @ theta)
        gradient = (design.T @ (y - p) - prior_precision @ (theta - prior_mean))[free]
        hessian = (-(design.T * (p * (1 - p))) @ design - prior_precision)[free, free]
        step = np.linalg.solve(hessian, gradient)
        theta[free] = theta[free] - step
        if np.abs(step).max() < 1e-6:
            break
    return theta


def plan_questions(
    embeddings: np.ndarray,
    labels: np.ndarray,
    *,
    threshold: float,
    scale: float = DEFAULT_SCALE,
    qualities: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    cannot: np.ndarray | None = None,
    confirmed: np.ndarray | None = None,
    skip: Collection[tuple[str, int, int]] = (),
    limit: int = 20,
    neighbours: int = 3,
    calibration: Calibration | None = None,
) -> list[Candidate]:
    """The ``limit`` questions of highest gain (see the module doc), best first.

    ``labels``: cluster per row (-1 unassigned, -2 not clustered); ``qualities``: a node's best
    face is its highest-quality one (ties: the first row); ``groups``: photo per row (-1: none), no
    question pairs two nodes with a face in one photo; ``cannot``: (m, 2) row pairs, no question
    pairs two nodes they span; ``confirmed``: rows the user confirmed in their cluster; ``skip``:
    ``Candidate.key`` values not to ask; ``calibration``: the chances as the user's answers so far
    bent them (``Calibration.fit``; None: the card's curve).
    """
    if limit < 1:
        raise InvalidArgumentError(f"limit must be >= 1, got {limit}")
    x, lab, quality, group, pairs = _checked(embeddings, labels, qualities, groups, cannot, scale)
    n = len(lab)
    sure = np.zeros(n, bool) if confirmed is None else np.asarray(confirmed, dtype=bool)
    skipped = set(skip)
    rows = np.flatnonzero(lab >= UNASSIGNED_LABEL)
    if not len(rows):
        return []
    node_of, sizes, best, _ = _nodes(lab, rows, quality)
    sums = _node_sums(x, rows, node_of, len(sizes))
    banned = _banned(node_of, group, pairs)
    out: list[Candidate] = []
    bent = calibration or Calibration()
    out += _merges(sums, sizes, best, banned, threshold, scale, neighbours, skipped, bent)
    doubt = _doubtful(x, rows, node_of, sums, sizes, best, sure, threshold, scale, bent, min_size=MIN_MEMBER_CLUSTER)
    out += _members(doubt, sizes, best, skipped, limit)
    out.sort(key=lambda c: (-c.gain, c.kind != "merge", c.rows))
    return out[:limit]


UNASSIGNED_LABEL = -1
GROUP_SIZE = 8  # candidates a group question shows beside its anchor
GROUP_FLOOR = 0.02  # the least chance of being the anchor's person a candidate needs to be shown
LIKELY = 0.5  # candidates at least this likely are asked together; else the likeliest alone


@dataclass(frozen=True)
class GroupCandidate:
    """One group question, "which of these are the anchor's person?", in rows and labels of the
    arrays given: ``anchor`` is a label (-1: an unassigned face, ``anchor_row`` alone). Each
    candidate is, by its ``kinds`` entry, a "merge" (a label, -1: the unassigned face at its row,
    shown by its best face) or a "member": a face of the anchor's own cluster that may not be its
    person (its label is the anchor's; ticked, it stays, confirmed; not ticked, it leaves)."""

    anchor: int
    anchor_row: int
    labels: tuple[int, ...]
    rows: tuple[int, ...]
    sizes: tuple[int, ...]
    similarity: tuple[float, ...]  # merge: the best face-to-face cosine with the anchor (single link);
    # member: the face's average cosine with the rest of its cluster
    p_same: tuple[float, ...]
    gain: float  # expected corrections: the merges' chances plus the members' chances of being wrong
    kinds: tuple[QuestionKind, ...] = ()  # per candidate; empty: all merges


def plan_group(
    embeddings: np.ndarray,
    labels: np.ndarray,
    *,
    threshold: float,
    scale: float = DEFAULT_SCALE,
    qualities: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    cannot: np.ndarray | None = None,
    size: int = GROUP_SIZE,
    floor: float = GROUP_FLOOR,
    skip: Collection[int] = (),
    calibration: Calibration | None = None,
    confirmed: np.ndarray | None = None,
) -> GroupCandidate | None:
    """The group question worth most (None: nothing left to ask). Nodes are compared by their best
    pair of faces (single link: a person split into clusters has some pair above the threshold, where
    the clusters' average similarity stays below it; measured in docs/BENCHMARKS.md), which costs
    a search of every face's nearest faces (``_single_links``; kept for the next question while the
    faces are the same). The anchor node whose likely
    candidates (chance >= ``LIKELY``, at most ``size``, never a banned pair: a shared photo or a
    cannot-link) add up to the most expected merges; where no anchor has a likely candidate, the
    single likeliest pair (chance >= ``floor``). The anchor's own doubtful faces are candidates too
    (members of its cluster, not ``confirmed``, whose chance of being its person, from their average
    similarity to the rest of the cluster, is below ``LIKELY``; gain: the chance they are wrong), so
    one question both joins fragments and takes intruders out. ``skip``: anchor rows (best faces) not
    to ask about. The arrays are as ``plan_questions`` takes them."""
    if size < 1:
        raise InvalidArgumentError(f"size must be >= 1, got {size}")
    x, lab, quality, group, pairs = _checked(embeddings, labels, qualities, groups, cannot, scale)
    rows = np.flatnonzero(lab >= UNASSIGNED_LABEL)
    if len(rows) < 2:
        return None
    node_of, sizes, best, node_label = _nodes(lab, rows, quality)
    m = len(sizes)
    banned = _banned(node_of, group, pairs)
    skipped = set(skip)
    bent = calibration or Calibration()
    asked_not = np.isin(best, list(skipped))
    anchor_of, other_of, link = _directed(*_single_links(x, rows, node_of, m), banned, m)
    chance = bent.chance("group", link, threshold, scale)
    chance[asked_not[anchor_of]] = 0.0
    edges_of: dict[int, list[int]] = {}  # anchor node -> its likely edges
    for e in np.flatnonzero(chance >= LIKELY)[np.argsort(-chance[chance >= LIKELY], kind="stable")].tolist():
        edges_of.setdefault(int(anchor_of[e]), []).append(e)
    sure = np.zeros(len(lab), bool) if confirmed is None else np.asarray(confirmed, dtype=bool)
    sums = _node_sums(x, rows, node_of, m)
    doubt_rows, doubt_node, doubt_rest, doubt_p = _doubtful(
        x, rows, node_of, sums, sizes, best, sure, threshold, scale, bent
    )
    doubt_p[asked_not[doubt_node]] = 1.0
    by_node: dict[int, list[int]] = {}
    for k in np.argsort(doubt_p, kind="stable").tolist():
        by_node.setdefault(int(doubt_node[k]), []).append(k)
    chosen: tuple[float, int, list[_Pick]] | None = None  # (gain, anchor node, its candidates)
    for i in sorted(set(edges_of) | set(by_node)):
        likely: list[_Pick] = [("merge", e, float(chance[e]), float(chance[e])) for e in edges_of.get(i, [])]
        likely += [("member", k, float(doubt_p[k]), 1.0 - float(doubt_p[k])) for k in by_node.get(i, [])
                   if doubt_p[k] < LIKELY]  # fmt: skip
        if likely:
            likely = sorted(likely, key=lambda c: -c[3])[:size]
            gain = sum(c[3] for c in likely)
            if chosen is None or gain > chosen[0]:
                chosen = (gain, i, likely)
    if chosen is None:  # nothing likely anywhere: the likeliest single merge or wrong face
        options: list[tuple[float, int, list[_Pick]]] = []
        if len(chance):
            e = int(np.argmax(chance))
            options.append((float(chance[e]), int(anchor_of[e]), [("merge", e, float(chance[e]), 0.0)]))
        if len(doubt_p):
            k = int(np.argmin(doubt_p))
            options.append((1.0 - float(doubt_p[k]), int(doubt_node[k]), [("member", k, float(doubt_p[k]), 0.0)]))
        if not options:
            return None
        gain, anchor, picked = max(options, key=lambda o: o[0])
        if gain < floor:
            return None
        chosen = (gain, anchor, picked)
    gain, anchor, picked = chosen

    def shown(kind: QuestionKind, k: int) -> tuple[int, int, int, float]:  # label, row, size, similarity
        if kind == "merge":  # k: an edge from the anchor
            j = int(other_of[k])
            return int(node_label[j]), int(best[j]), int(sizes[j]), float(link[k])
        return int(node_label[anchor]), int(doubt_rows[k]), 1, float(doubt_rest[k])

    parts = [shown(kind, j) for kind, j, _, _ in picked]
    return GroupCandidate(
        anchor=int(node_label[anchor]), anchor_row=int(best[anchor]), labels=tuple(p[0] for p in parts),
        rows=tuple(p[1] for p in parts), sizes=tuple(p[2] for p in parts), similarity=tuple(p[3] for p in parts),
        p_same=tuple(c[2] for c in picked), gain=float(gain), kinds=tuple(c[0] for c in picked),
    )  # fmt: skip


#: a group candidate as the planner weighs it: (kind, node (merge) or doubtful face's index (member),
#: chance of being the anchor's person, expected corrections)
_Pick = tuple[QuestionKind, int, float, float]


def _node_sums(x: np.ndarray, rows: np.ndarray, node_of: np.ndarray, m: int) -> np.ndarray:
    """(m, dim): the sum of each node's faces' embeddings."""
    sums = np.zeros((m, x.shape[1]))
    np.add.at(sums, node_of[rows], x[rows])
    return sums


def _doubtful(
    x: np.ndarray,
    rows: np.ndarray,
    node_of: np.ndarray,
    sums: np.ndarray,
    sizes: np.ndarray,
    best: np.ndarray,
    sure: np.ndarray,
    threshold: float,
    scale: float,
    calibration: Calibration,
    min_size: int = 2,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The faces of clusters of >= ``min_size`` that may not be their cluster's person: every one
    but the best face and the ``sure`` ones, with its node, its average cosine to the rest of its
    cluster and the chance it is the cluster's person from that ("member" curve)."""
    clustered = rows[sizes[node_of[rows]] >= max(min_size, 2)]  # an unassigned face is a node of one
    clustered = clustered[(best[node_of[clustered]] != clustered) & ~sure[clustered]]
    if not len(clustered):
        empty = np.zeros(0)
        return clustered, clustered, empty, empty
    node = node_of[clustered]
    own = np.einsum("ij,ij->i", x[clustered], x[clustered])
    rest = (np.einsum("ij,ij->i", x[clustered], sums[node]) - own) / (sizes[node] - 1)
    return clustered, node, rest, calibration.chance("member", rest, threshold, scale)


def _checked(
    embeddings: np.ndarray,
    labels: np.ndarray,
    qualities: np.ndarray | None,
    groups: np.ndarray | None,
    cannot: np.ndarray | None,
    scale: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The planners' arrays, checked, with their defaults filled in."""
    x = np.asarray(embeddings, dtype=np.float64)
    lab = np.asarray(labels, dtype=np.int64)
    n = len(lab)
    if x.ndim != 2 or len(x) != n:
        raise InvalidArgumentError(f"need one embedding row per label, got {x.shape} for {n} labels")
    if scale <= 0:
        raise InvalidArgumentError(f"scale must be > 0, got {scale}")
    quality = np.ones(n) if qualities is None else np.asarray(qualities, dtype=np.float64)
    group = np.full(n, -1, np.int64) if groups is None else np.asarray(groups, dtype=np.int64)
    pairs = np.zeros((0, 2), np.int64) if cannot is None else np.asarray(cannot, dtype=np.int64).reshape(-1, 2)
    return x, lab, quality, group, pairs


def _nodes(lab: np.ndarray, rows: np.ndarray, quality: np.ndarray) -> tuple[np.ndarray, ...]:
    """Nodes: clusters, then each unassigned face alone. (node of each row (-1: none), faces per
    node, each node's best face (highest quality, first row on ties), each node's label)."""
    clustered = rows[lab[rows] >= 0]
    cluster_ids, cluster_node = np.unique(lab[clustered], return_inverse=True)
    node_of = np.full(len(lab), -1, np.int64)
    node_of[clustered] = cluster_node
    loose = rows[lab[rows] == UNASSIGNED_LABEL]
    node_of[loose] = len(cluster_ids) + np.arange(len(loose))
    m = len(cluster_ids) + len(loose)
    sizes = np.bincount(node_of[rows], minlength=m)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    best = rows[np.lexsort((rows, -quality[rows], node_of[rows]))][starts]
    node_label = np.concatenate([cluster_ids, np.full(len(loose), UNASSIGNED_LABEL)])
    return node_of, sizes, best, node_label


GROUP_FACE_NEIGHBOURS = 16  # each face's nearest faces, searched for other nodes' (single link)
GROUP_NODE_NEIGHBOURS = 8  # each big node's nearest big nodes by centre, their best pair of faces found exactly


def _single_links(
    x: np.ndarray, rows: np.ndarray, node_of: np.ndarray, m: int, chunk: int = 1024
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The node pairs worth a group question, (i, j, single link) with i < j: the highest cosine
    between a face of one and a face of the other. The pairs are those some face's
    ``GROUP_FACE_NEIGHBOURS`` nearest faces span (the best pair found among them), and each big
    node's ``GROUP_NODE_NEIGHBOURS`` nearest big nodes by centre (two big clusters of one person,
    whose faces' nearest are all their own: their best pair computed exactly). Memory O(faces x k),
    never the O(nodes²) of a full matrix; the neighbours come from ``clustering.graph`` (exact below
    its ``HNSW_FROM`` faces, HNSW above)."""
    xs = np.ascontiguousarray(x[rows], np.float32)
    nodes = node_of[rows]
    near, sims = _face_neighbours(xs)
    found = near.ravel()
    a = np.repeat(nodes, near.shape[1])
    keep = found >= 0
    a, b, sim = a[keep], nodes[found[keep]], sims.ravel()[keep]
    cross = a != b
    keys = np.minimum(a[cross], b[cross]) * m + np.maximum(a[cross], b[cross])
    keys, where = np.unique(keys, return_inverse=True)
    link = np.full(len(keys), -np.inf)
    np.maximum.at(link, where, sim[cross].astype(np.float64))

    # a node with fewer faces than half the neighbours searched has some outside itself: only two
    # big nodes can hide from each other, and they are few
    big = np.flatnonzero(np.bincount(nodes, minlength=m) >= GROUP_FACE_NEIGHBOURS // 2)
    take = min(GROUP_NODE_NEIGHBOURS, len(big) - 1)
    if take < 1:
        return keys // m, keys % m, link
    order = np.argsort(nodes, kind="stable")
    bounds = np.searchsorted(nodes[order], np.arange(m + 1))
    faces_of = {int(i): order[bounds[i] : bounds[i + 1]] for i in big.tolist()}
    centres = np.stack([xs[faces_of[int(i)]].sum(axis=0) for i in big.tolist()])
    centres /= np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)
    near_nodes = []
    for start in range(0, len(big), chunk):
        block = centres[start : start + chunk] @ centres.T
        block[np.arange(len(block)), np.arange(start, start + len(block))] = -np.inf
        top = big[np.argpartition(-block, take - 1, axis=1)[:, :take]].ravel()
        mine = np.repeat(big[start : start + len(block)], take)
        near_nodes.append(np.minimum(mine, top) * m + np.maximum(mine, top))
    missing = np.setdiff1d(np.concatenate(near_nodes), keys)
    exact = np.array([float((xs[faces_of[k // m]] @ xs[faces_of[k % m]].T).max()) for k in missing.tolist()])
    keys, link = np.concatenate([keys, missing]), np.concatenate([link, exact])
    return keys // m, keys % m, link


_NEIGHBOURS_CACHE: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}  # the last faces' neighbours


def _face_neighbours(xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``knn_graph(xs, GROUP_FACE_NEIGHBOURS)``, kept for the same faces: answers change the
    clusters, not the faces, so the next question (another request, the same collection) reuses
    it (the search is O(faces²) below HNSW's size; the digest of the vectors costs ~10 ms a
    100k)."""
    import hashlib

    from faceatlas.clustering.graph import knn_graph

    key = hashlib.blake2b(xs.tobytes(), digest_size=16).digest() + str(xs.shape).encode()
    hit = _NEIGHBOURS_CACHE.get(key)  # one lookup: another request's thread may replace the entry
    if hit is None:
        hit = knn_graph(xs, GROUP_FACE_NEIGHBOURS)
        for array in hit:
            array.setflags(write=False)  # shared between questions
        _NEIGHBOURS_CACHE.clear()
        _NEIGHBOURS_CACHE[key] = hit
    return hit


def _directed(
    lo: np.ndarray, hi: np.ndarray, link: np.ndarray, banned: dict[int, set[int]], m: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each pair both ways (anchor, other, link), without the banned pairs (a shared photo, a
    cannot-link)."""
    if banned:
        ban = np.array([min(i, j) * m + max(i, j) for i, others in banned.items() for j in others], np.int64)
        allowed = ~np.isin(lo * m + hi, ban)
        lo, hi, link = lo[allowed], hi[allowed], link[allowed]
    return np.concatenate([lo, hi]), np.concatenate([hi, lo]), np.concatenate([link, link])


def _banned(node_of: np.ndarray, group: np.ndarray, cannot: np.ndarray) -> dict[int, set[int]]:
    """Node -> the nodes it is never asked about: a shared photo, or a cannot-link between them."""
    banned: dict[int, set[int]] = {}

    def ban(a: int, b: int) -> None:
        banned.setdefault(a, set()).add(b)
        banned.setdefault(b, set()).add(a)

    if len(cannot):
        a, b = node_of[cannot[:, 0]], node_of[cannot[:, 1]]
        span = (a >= 0) & (b >= 0) & (a != b)
        for i, j in set(zip(a[span].tolist(), b[span].tolist(), strict=True)):
            ban(i, j)
    in_photo = np.flatnonzero((group >= 0) & (node_of >= 0))
    if len(in_photo):
        by_photo: dict[int, set[int]] = {}
        for row in in_photo.tolist():
            by_photo.setdefault(int(group[row]), set()).add(int(node_of[row]))
        for nodes in by_photo.values():
            if len(nodes) > 1:
                listed = sorted(nodes)
                for k, i in enumerate(listed):
                    for j in listed[k + 1 :]:
                        ban(i, j)
    return banned


def _merges(
    sums: np.ndarray,
    sizes: np.ndarray,
    best: np.ndarray,
    banned: dict[int, set[int]],
    threshold: float,
    scale: float,
    neighbours: int,
    skipped: set[tuple[str, int, int]],
    calibration: Calibration,
    chunk: int = 1024,
) -> list[Candidate]:
    m = len(sizes)
    if m < 2:
        return []
    take = min(neighbours, m - 1)
    found: dict[tuple[int, int], float] = {}
    for start in range(0, m, chunk):
        stop = min(m, start + chunk)
        average = (sums[start:stop] @ sums.T) / np.outer(sizes[start:stop], sizes)
        average[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        for i in range(start, stop):
            if i in banned:
                average[i - start, list(banned[i])] = -np.inf
        top = np.argpartition(-average, take - 1, axis=1)[:, :take]
        for offset, near in enumerate(top.tolist()):
            i = start + offset
            for j in near:
                score = float(average[offset, j])
                if np.isfinite(score):
                    found[min(i, j), max(i, j)] = score
    out = []
    for (i, j), score in found.items():
        shown = (int(best[i]), int(best[j]))
        if ("merge", *shown) in skipped:
            continue
        p = float(calibration.chance("merge", score, threshold, scale))
        out.append(
            Candidate("merge", min(int(sizes[i]), int(sizes[j])) * p, score, p, shown, (int(sizes[i]), int(sizes[j])))
        )
    return out


def _members(
    doubt: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    sizes: np.ndarray,
    best: np.ndarray,
    skipped: set[tuple[str, int, int]],
    limit: int,
) -> list[Candidate]:
    """Member questions about the ``_doubtful`` faces, likeliest wrong first."""
    rows, node, rest, p = doubt
    if not len(rows):
        return []
    keep = np.argsort(p, kind="stable")[: limit + len(skipped)]  # the likeliest wrong faces: no more can be asked
    out = []
    for row, n_, score, chance in zip(
        rows[keep].tolist(), node[keep].tolist(), rest[keep].tolist(), p[keep].tolist(), strict=True
    ):
        shown = (int(row), int(best[n_]))
        if ("member", *shown) not in skipped:
            out.append(Candidate("member", 1.0 - chance, score, chance, shown, (1, int(sizes[n_]))))
    return out
