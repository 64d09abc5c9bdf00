"""How many answers a user needs to label a collection: the review queue against naming every cluster.

A simulated user answers truthfully (from the labels) on a labelled set of faces, starting from
a clustering: faceatlas' ``FaceClusterer`` or an Immich-style DBSCAN (``clustering.baselines``:
Euclidean eps 0.5, min_samples 3 on dlib's raw descriptors, here the unit embeddings times
``DLIB_RAW_NORM``, their median norm on LFW: Euclidean 0.5 there is cosine 0.938). After each
answer the BCubed F of the labelling is measured; the report gives the answers needed to reach
each target F (0.95, 0.99), or says it was not reached within the budget.

Strategies:

- **queue**: the review queue (``clustering.questions.plan_questions``, what ``faceatlas review``
  asks), ``batch`` questions planned at a time, each answered in turn. An answer acts as the
  collection's corrections do, at once (no re-clustering is needed for it to show, so none is
  run): "yes" to a merge joins the two (an unassigned face joins the cluster), "no" stores
  cannot-links (each best face with every face of the other side) so the pair is never asked
  again; "yes" to a member question confirms the face, "no" takes it out (unassigned,
  cannot-linked with the rest of its cluster). A question an earlier answer of its batch made
  stale is dropped uncounted. The user answers from the faces shown: a merge is "yes" when the
  two best faces are one person, a member question when the face is its cluster's best face's person.
- **group queue**: "which of these are Ada?" — one cluster (the anchor) shown with up to
  ``GROUP_SIZE`` candidates (``clustering.questions.plan_group``): clusters likely its person,
  each by its best face (chance of one person from the best pair of faces), and faces of its own
  cluster likely not (from their average similarity to the rest); the question asked is the one
  whose likely candidates add up to the most expected corrections; where none is likely anywhere,
  the likeliest single one. The user ticks the candidates that are the anchor's person: ticked
  clusters join the anchor (a batch accept), ticked own faces are confirmed; the other clusters are
  cannot-linked with it, and the other own faces leave it, kept apart from the anchor and the faces
  confirmed with it (``review.answer_group``). Cost: one answer when all candidates are alike (all
  yes, all no), else 1 + the number in the minority (each a tick against the default).
- Both queues learn from the answers as the collection's does (``learn``, the default: the
  chances are ``Calibration.fit`` of the answers so far).
- **name every cluster**: the user names each cluster once from its cover (best) face, largest
  first (unassigned faces are clusters of one): one answer, and the cluster's faces take that
  name (clusters of one name become one person). An impure cluster then costs one more answer
  per face of another person, each moved to its own person's name (generous: one answer, even
  when that person has no name yet).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from faceatlas.clustering.questions import (
    DEFAULT_SCALE,
    GROUP_FLOOR,
    GROUP_SIZE,
    Calibration,
    plan_group,
    plan_questions,
)
from faceatlas.errors import InvalidArgumentError

__all__ = [
    "DLIB_RAW_NORM",
    "TARGETS",
    "LabellingReport",
    "LabellingRun",
    "bcubed_f",
    "dbscan_start",
    "evaluate_labelling",
    "group_review_run",
    "name_every_cluster",
    "review_queue_run",
]

DLIB_RAW_NORM = 1.419  # median norm of dlib's raw descriptors on LFW (docs/BENCHMARKS.md, issue 5)
TARGETS = (0.95, 0.99)


def bcubed_f(truth: np.ndarray, labels: np.ndarray) -> float:
    """BCubed F1 of ``labels`` (-1: a singleton each) against integer ``truth`` (as ``clustering_metrics``)."""
    t = np.asarray(truth, dtype=np.int64)
    p = np.asarray(labels, dtype=np.int64).copy()
    n = len(t)
    if n == 0:
        return 1.0
    loose = p < 0
    p[loose] = p.max(initial=0) + 1 + np.arange(int(loose.sum()))
    _, ti = np.unique(t, return_inverse=True)
    _, pi = np.unique(p, return_inverse=True)
    width = int(pi.max()) + 1
    cells, n_ij = np.unique(ti * width + pi, return_counts=True)
    a_size = np.bincount(ti)[cells // width]
    b_size = np.bincount(pi)[cells % width]
    nf = n_ij.astype(np.float64)
    precision = float((nf**2 / b_size).sum() / n)
    recall = float((nf**2 / a_size).sum() / n)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


@dataclass
class LabellingRun:
    """One strategy from one start: BCubed F after each answer (``curve[0]``: before any)."""

    start: str
    strategy: str
    curve: list[float]
    reached: dict[float, int | None]  # target F -> answers needed (None: not within the budget)
    budget: int
    seconds: float = 0.0
    labels: np.ndarray | None = None  # the labelling at the end

    def to_dict(self) -> dict:
        return {
            "start": self.start,
            "strategy": self.strategy,
            "answers": len(self.curve) - 1,
            "f_start": self.curve[0],
            "f_end": self.curve[-1],
            "reached": {str(k): v for k, v in self.reached.items()},
            "budget": self.budget,
            "seconds": self.seconds,
        }


def _reached(curve: list[float], targets: Sequence[float]) -> dict[float, int | None]:
    values = np.asarray(curve)
    out: dict[float, int | None] = {}
    for target in targets:
        hit = np.flatnonzero(values >= target)
        out[target] = int(hit[0]) if len(hit) else None
    return out


def _best_rows(labels: np.ndarray, qualities: np.ndarray) -> dict[int, int]:
    """Cluster -> its best face (highest quality, first row on ties), as the collection shows it."""
    rows = np.flatnonzero(labels >= 0)
    order = rows[np.lexsort((rows, -qualities[rows]))]
    best: dict[int, int] = {}
    for row in order.tolist():
        best.setdefault(int(labels[row]), row)
    return best


def review_queue_run(
    embeddings: np.ndarray,
    truth: np.ndarray,
    start: np.ndarray,
    *,
    threshold: float,
    scale: float = DEFAULT_SCALE,
    qualities: np.ndarray | None = None,
    budget: int = 2000,
    batch: int = 10,
    targets: Sequence[float] = TARGETS,
    start_name: str = "",
    learn: bool = True,
) -> LabellingRun:
    """The review queue answered truthfully (see the module doc), until the queue is empty, the
    ``budget`` is spent or the last target is reached."""
    import time

    began = time.perf_counter()
    x = np.asarray(embeddings, dtype=np.float64)
    t = np.asarray(truth, dtype=np.int64)
    labels = np.asarray(start, dtype=np.int64).copy()
    quality = np.ones(len(t)) if qualities is None else np.asarray(qualities, dtype=np.float64)
    cannot: list[np.ndarray] = []
    confirmed = np.zeros(len(t), bool)
    curve = [bcubed_f(t, labels)]
    goal = max(targets) if targets else 1.0
    said: list[tuple[str, float, bool]] = []  # the answers so far, as the queue learns from them
    while len(curve) - 1 < budget and curve[-1] < goal:
        pairs = np.concatenate(cannot) if cannot else None
        bent = Calibration.fit(said, threshold=threshold, scale=scale) if learn else None
        questions = plan_questions(
            x, labels, threshold=threshold, scale=scale, qualities=quality, cannot=pairs, confirmed=confirmed,
            limit=batch, calibration=bent,
        )  # fmt: skip
        if not questions:
            break
        node = {row: int(labels[row]) for q in questions for row in q.rows}
        fresh: list[np.ndarray] = []  # cannot-links of this batch: the plan knew the others
        answered = len(curve)
        for q in questions:
            a, b = q.rows
            if any(int(labels[row]) != node[row] for row in (a, b)) or (
                q.kind == "merge" and labels[a] >= 0 and labels[a] == labels[b]
            ):
                continue  # stale: an earlier answer of the batch changed these faces' clusters
            if q.kind == "merge" and _merge_banned(labels, a, b, fresh):
                continue
            same = t[a] == t[b]
            said.append((q.kind, q.similarity, bool(same)))
            if q.kind == "merge":
                side_a, side_b = _side(labels, a), _side(labels, b)
                if same:
                    _merge(labels, a, b)
                else:
                    fresh += [_cross(a, side_b), _cross(b, side_a)]
                    cannot += fresh[-2:]
            elif same:
                confirmed[a] = True
            else:
                rest = np.flatnonzero(labels == labels[a])
                labels[a] = -1
                cannot.append(_cross(a, rest[rest != a]))
            curve.append(bcubed_f(t, labels))
            if len(curve) - 1 >= budget or curve[-1] >= goal:
                break
        if len(curve) == answered:
            break  # every question of the batch was stale: nothing left to learn
    return LabellingRun(start_name, "queue", curve, _reached(curve, targets), budget, time.perf_counter() - began)


def _side(labels: np.ndarray, row: int) -> np.ndarray:
    return np.flatnonzero(labels == labels[row]) if labels[row] >= 0 else np.array([row])


def _cross(row: int, others: np.ndarray) -> np.ndarray:
    return np.stack([np.full(len(others), row), others], axis=1).astype(np.int64)


def _merge_banned(labels: np.ndarray, a: int, b: int, cannot: list[np.ndarray]) -> bool:
    """A "no" earlier in the batch now spans these two (their clusters grew): not asked again."""
    if not cannot:
        return False
    pairs = np.concatenate(cannot)
    in_a, in_b = np.isin(pairs, _side(labels, a)), np.isin(pairs, _side(labels, b))
    return bool(((in_a[:, 0] & in_b[:, 1]) | (in_b[:, 0] & in_a[:, 1])).any())


def _merge(labels: np.ndarray, a: int, b: int) -> None:
    la, lb = int(labels[a]), int(labels[b])
    if la >= 0 and lb >= 0:
        labels[labels == lb] = la
    elif la >= 0:
        labels[b] = la
    elif lb >= 0:
        labels[a] = lb
    else:
        labels[[a, b]] = int(labels.max(initial=-1)) + 1


def group_review_run(
    embeddings: np.ndarray,
    truth: np.ndarray,
    start: np.ndarray,
    *,
    threshold: float,
    scale: float = DEFAULT_SCALE,
    qualities: np.ndarray | None = None,
    budget: int = 2000,
    group: int = GROUP_SIZE,
    floor: float = GROUP_FLOOR,
    targets: Sequence[float] = TARGETS,
    start_name: str = "",
    learn: bool = True,
    stop_gain: float = 0.0,
) -> LabellingRun:
    """Group merge questions answered truthfully (see the module doc): "which of these are Ada?"."""
    import time

    began = time.perf_counter()
    x = np.asarray(embeddings, dtype=np.float64)
    t = np.asarray(truth, dtype=np.int64)
    labels = np.asarray(start, dtype=np.int64).copy()
    loose = np.flatnonzero(labels < 0)
    labels[loose] = labels.max(initial=-1) + 1 + np.arange(len(loose))  # an unassigned face: a node of its own
    quality = np.ones(len(t)) if qualities is None else np.asarray(qualities, dtype=np.float64)
    cannot: list[tuple[int, int]] = []
    confirmed = np.zeros(len(t), bool)
    curve = [bcubed_f(t, labels)]
    goal = max(targets) if targets else 1.0
    said: list[tuple[str, float, bool]] = []
    while len(curve) - 1 < budget and curve[-1] < goal:
        asked = plan_group(
            x, labels, threshold=threshold, scale=scale, qualities=quality, size=group, floor=floor,
            cannot=np.array(cannot, dtype=np.int64).reshape(-1, 2), confirmed=confirmed,
            calibration=Calibration.fit(said, threshold=threshold, scale=scale) if learn else None,
        )  # fmt: skip
        if asked is None or asked.gain < stop_gain:
            break
        person = t[asked.anchor_row]  # the user answers from the faces shown
        same = [k for k, row in enumerate(asked.rows) if t[row] == person]
        kinds = asked.kinds or ("merge",) * len(asked.rows)
        said += [(_CURVE[kind], sim, k in same) for k, (kind, sim) in enumerate(zip(kinds, asked.similarity))]
        ticked_own = [row for k, (kind, row) in enumerate(zip(kinds, asked.rows)) if kind == "member" and k in same]
        confirmed[ticked_own] = True  # first, as answer_group confirms them before it takes the others out
        for k, (kind, row) in enumerate(zip(kinds, asked.rows, strict=True)):
            if kind == "member":  # a face of the anchor's cluster: stays confirmed, or leaves it
                if k not in same:  # kept apart from the anchor and the faces confirmed with it (review.answer_group)
                    anchor_side = np.flatnonzero((labels == labels[row]) & confirmed)
                    cannot += [(row, int(r)) for r in [asked.anchor_row, *anchor_side.tolist()] if r != row]
                    labels[row] = labels.max() + 1
            elif k in same:
                labels[labels == labels[row]] = labels[asked.anchor_row]
            else:  # cannot-links as the collection stores a "no": each best face with the other side
                cannot += [(asked.anchor_row, int(r)) for r in np.flatnonzero(labels == labels[row])]
                cannot += [(row, int(r)) for r in np.flatnonzero(labels == labels[asked.anchor_row])]
        cost = 1 + min(len(same), len(asked.rows) - len(same))
        curve += [curve[-1]] * (cost - 1) + [bcubed_f(t, labels)]
    curve = curve[: budget + 1]
    run = LabellingRun(start_name, "group queue", curve, _reached(curve, targets), budget, time.perf_counter() - began)
    run.labels = labels
    return run


_CURVE = {"merge": "group", "member": "member"}  # a group question's candidate kind -> its calibration curve


def name_every_cluster(
    truth: np.ndarray,
    start: np.ndarray,
    *,
    qualities: np.ndarray | None = None,
    budget: int = 2000,
    targets: Sequence[float] = TARGETS,
    start_name: str = "",
) -> LabellingRun:
    """The user names every cluster from its cover face, largest first (see the module doc)."""
    import time

    began = time.perf_counter()
    t = np.asarray(truth, dtype=np.int64)
    labels = np.asarray(start, dtype=np.int64).copy()
    n = len(t)
    loose = np.flatnonzero(labels < 0)
    labels[loose] = labels.max(initial=-1) + 1 + np.arange(len(loose))  # each unassigned face: a cluster of one
    quality = np.ones(n) if qualities is None else np.asarray(qualities, dtype=np.float64)
    best = _best_rows(labels, quality)
    ids, first, sizes = np.unique(labels, return_index=True, return_counts=True)
    order = ids[np.lexsort((first, -sizes))]
    named = labels.copy()  # a named face's label is n + its person's code: one person per name
    curve = [bcubed_f(t, named)]
    goal = max(targets) if targets else 1.0
    for cluster in order.tolist():
        if len(curve) - 1 >= budget or curve[-1] >= goal:
            break
        faces = np.flatnonzero(labels == cluster)
        person = t[best[cluster]]
        named[faces] = n + person
        curve.append(bcubed_f(t, named))
        for row in faces[t[faces] != person].tolist():
            if len(curve) - 1 >= budget or curve[-1] >= goal:
                break
            named[row] = n + t[row]
            curve.append(bcubed_f(t, named))
    return LabellingRun(
        start_name, "name every cluster", curve, _reached(curve, targets), budget, time.perf_counter() - began
    )


def dbscan_start(embeddings: np.ndarray) -> np.ndarray:
    """Immich-style DBSCAN (``BASELINES["dbscan"]``) on the unit embeddings scaled to dlib's raw norm."""
    from faceatlas.clustering.baselines import BASELINES

    return np.asarray(BASELINES["dbscan"]().fit(np.asarray(embeddings, dtype=np.float64) * DLIB_RAW_NORM).labels_)


@dataclass
class LabellingReport:
    n_faces: int
    n_people: int
    threshold: float
    scale: float
    runs: list[LabellingRun] = field(default_factory=list)
    targets: tuple[float, ...] = TARGETS
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "faces": self.n_faces,
            "people": self.n_people,
            "threshold": self.threshold,
            "scale": self.scale,
            "runs": [run.to_dict() for run in self.runs],
            "notes": self.notes,
        }

    def answers(self, start: str, strategy: str, target: float) -> int | None:
        run = next((r for r in self.runs if r.start == start and r.strategy == strategy), None)
        return None if run is None else run.reached[target]

    def table(self) -> str:
        def cell(run: LabellingRun, target: float) -> str:
            hit = run.reached[target]
            return f"{hit}" if hit is not None else f"not in {len(run.curve) - 1}"

        head = ["start", "strategy", "F at start"] + [f"answers to F {t:g}" for t in self.targets] + ["seconds"]
        rows = [
            [run.start, run.strategy, f"{run.curve[0]:.3f}"]
            + [cell(run, t) for t in self.targets]
            + [f"{run.seconds:.1f}"]
            for run in self.runs
        ]
        widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
        lines = ["  ".join(f"{v:<{w}}" for v, w in zip(r, widths, strict=True)) for r in [head, *rows]]
        for start in dict.fromkeys(run.start for run in self.runs):
            for target in self.targets:
                named = self.answers(start, "name every cluster", target)
                for strategy in ("queue", "group queue"):
                    queue = self.answers(start, strategy, target)
                    if queue and named:
                        ratio, word = (named / queue, "fewer") if queue <= named else (queue / named, "more")
                        lines.append(
                            f"{start}: the {strategy} needs {ratio:.1f}x {word} answers than naming every cluster "
                            f"to F {target:g}"
                        )
        return "\n".join(lines + [f"note: {note}" for note in self.notes])


def evaluate_labelling(
    embeddings: np.ndarray,
    truth: Sequence[Hashable],
    *,
    threshold: float,
    scale: float = DEFAULT_SCALE,
    qualities: np.ndarray | None = None,
    budget: int = 2000,
    batch: int = 10,
    starts: Sequence[str] = ("faceatlas", "dbscan"),
    targets: Sequence[float] = TARGETS,
    clusterer: Any = None,
) -> LabellingReport:
    """Both strategies from each start (``"faceatlas"``: ``clusterer`` or ``FaceClusterer(threshold)``,
    with the qualities; ``"dbscan"``: ``dbscan_start``)."""
    x = np.asarray(embeddings, dtype=np.float32)
    labels = list(truth)
    if x.ndim != 2 or len(x) != len(labels) or not len(labels):
        raise InvalidArgumentError(f"need one label per embedding row, got {x.shape} and {len(labels)} labels")
    codes: dict[Hashable, int] = {}
    t = np.array([codes.setdefault(label, len(codes)) for label in labels], dtype=np.int64)
    report = LabellingReport(len(t), len(codes), threshold, scale, targets=tuple(targets))
    for start in starts:
        if start == "faceatlas":
            from faceatlas.clustering import FaceClusterer

            model = clusterer if clusterer is not None else FaceClusterer(threshold)
            initial = model.fit(x, qualities=qualities).labels_
        elif start == "dbscan":
            initial = dbscan_start(x)
        else:
            raise InvalidArgumentError(f"a start is 'faceatlas' or 'dbscan', got {start!r}")
        common: dict[str, Any] = {"qualities": qualities, "budget": budget, "targets": targets, "start_name": start}
        report.runs.append(review_queue_run(x, t, initial, threshold=threshold, scale=scale, batch=batch, **common))
        report.runs.append(group_review_run(x, t, initial, threshold=threshold, scale=scale, **common))
        report.runs.append(name_every_cluster(t, initial, **common))
    return report
