"""The review queue: "Is this Ada? yes / no / skip" questions that label a collection in the fewest answers.

>>> from faceatlas.collection import CollectionStore, review
>>> with CollectionStore.open("collection.db") as store:
...     session = review.ReviewSession(store)
...     for question in session.queue(limit=20):
...         session.answer(question, "yes")          # or "no", or "skip"

Which questions, in which order: ``faceatlas.clustering.questions`` (the planner the labelling
evaluation measures, ``faceatlas eval labelling``). In short: merges of clusters whose average
similarity is just below the merge threshold, the biggest first (gain = the smaller cluster's
size x the chance they are one person, a logistic of the similarity in one decade of the card's
false-accept rate); never two clusters with a face in one photo, never a pair already answered
"no"; then the faces least like the rest of their cluster ("is this face this cluster's person?").
An unassigned face is a node of its own: a merge question can join it to a cluster.

The queue learns from the answers. Each yes or no is remembered in the collection (kind,
similarity shown, answer, under the bound model: ``CollectionStore.record_review_answers``), and
the chances behind the gains are the card's curve bent by them (``Calibration``): in a library of
strangers the merges just below the threshold soon turn out to be "no", and the queue turns to
the faces least like their cluster; where people are split into many clusters, the merges are
mostly "yes", and it keeps asking them.

Every answer is a correction (``corrections``), stored as the constraints later clusterings honour:

- merge, yes: ``merge_clusters`` (the smaller cluster into the bigger, or into the named one); an
  unassigned face is moved into the cluster and must-linked with its best face; two unassigned
  faces become a new cluster, must-linked.
- merge, no: each side's best face is cannot-linked with *every* face of the other side (as
  ``split_cluster`` does, and for the same reason: a side is not one node in a full run, so one
  pair would not keep them apart). The pair is not asked again: a cannot-link spans it.
- member, yes: the face is must-linked with its cluster's best face: it stays in a full run, and
  that link marks it confirmed, so it is not asked again.
- member, no: ``not_this_person``.
- group questions (``group_question``, "which of these are Ada?"): each candidate is a merge
  question (another cluster or unassigned face) or a member question (a face of Ada's own
  cluster that may not be Ada), answered as above: ticked "yes", not ticked "no".
- skip: nothing is stored; a ``ReviewSession`` remembers it (in memory, for the session only), so
  a skipped question comes back in a later session.

``accept_subcluster`` merges several clusters into one at once (the batch accept). Refusals are
the corrections' typed errors; ``StaleQuestionError`` when the collection changed since the
question was asked (its faces are no longer where it says).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from faceatlas.clustering.questions import (
    DEFAULT_SCALE,
    GROUP_SIZE,
    Calibration,
    Candidate,
    card_scale,
    plan_group,
    plan_questions,
)
from faceatlas.collection import corrections
from faceatlas.collection.store import (
    CollectionStore,
    CorrectionConflictError,
    InvalidCorrectionError,
)

__all__ = [
    "REPLIES",
    "Answered",
    "GroupQuestion",
    "Question",
    "ReviewSession",
    "StaleQuestionError",
    "accept_subcluster",
    "answer",
    "answer_group",
    "group_question",
    "question_payload",
    "question_text",
    "review_queue",
]

Reply = Literal["yes", "no", "skip"]
NOT_ASKED = -2  # the planner's label for faces that take no part (never clustered; private people)
REPLIES: tuple[str, ...] = ("yes", "no", "skip")


class StaleQuestionError(CorrectionConflictError):
    """The collection changed since the question was asked: its faces are not where it says."""


@dataclass(frozen=True)
class Question:
    """One question, in face and cluster ids.

    ``kind`` "merge": are the node of ``faces[0]`` and the node of ``faces[1]`` one person? (each
    shown by its best face; ``clusters``: their cluster ids, None for an unassigned face).
    ``kind`` "member": is face ``faces[0]`` the person of cluster ``clusters[1]`` (shown by its
    best face ``faces[1]``)? ``clusters[0]`` is then the face's cluster, the same one.
    """

    kind: Literal["merge", "member"]
    faces: tuple[int, int]
    clusters: tuple[int | None, int | None]
    sizes: tuple[int, int]
    gain: float  # the faces a "yes" (merge) or a "no" (member) is expected to put right
    similarity: float
    p_same: float

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.kind, *self.faces)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "faces": list(self.faces),
            "clusters": list(self.clusters),
            "sizes": list(self.sizes),
            "gain": round(self.gain, 4),
            "similarity": round(self.similarity, 4),
            "p_same": round(self.p_same, 4),
        }


@dataclass(frozen=True)
class Answered:
    """What an answer did: ``change`` is the correction's result (None: nothing to change)."""

    question: Question
    reply: str
    change: Any = None


def review_queue(
    store: CollectionStore,
    *,
    limit: int = 20,
    skip: Iterable[tuple[str, int, int]] = (),
    threshold: float | None = None,
    card: Any = None,
    embedder: str | os.PathLike[str] | None = None,
    include_private: bool = False,
) -> list[Question]:
    """The ``limit`` questions worth most, best first (see the module doc). ``skip``: keys
    (``Question.key``) not to ask. The threshold and the gain's scale come from the card of the
    model the store is bound to (a clusterer's default threshold on it), unless given. Faces of
    private people take no part unless ``include_private`` (a question would show them)."""
    if limit < 1:
        raise InvalidCorrectionError(f"a queue needs room for at least one question, got limit {limit}")
    inputs = _planner_inputs(store, threshold, card, embedder, include_private)
    if len(inputs.face_ids) < 2:
        return []
    face_ids, labels = inputs.face_ids, inputs.labels
    row_of = {int(face): row for row, face in enumerate(face_ids.tolist())}
    skipped = {(kind, row_of[a], row_of[b]) for kind, a, b in skip if a in row_of and b in row_of}
    plan = plan_questions(
        inputs.embeddings, labels, threshold=inputs.threshold, scale=inputs.scale, qualities=inputs.qualities,
        groups=inputs.groups, cannot=inputs.cannot, confirmed=inputs.confirmed, skip=skipped, limit=limit,
        calibration=inputs.calibration,
    )  # fmt: skip
    return [_question(c, face_ids, labels) for c in plan]


@dataclass(frozen=True)
class _Inputs:
    face_ids: np.ndarray
    labels: np.ndarray
    embeddings: np.ndarray
    qualities: np.ndarray
    groups: np.ndarray
    cannot: np.ndarray
    confirmed: np.ndarray
    threshold: float
    scale: float
    calibration: Calibration = field(default_factory=Calibration)  # the answers so far (see the module doc)


def _planner_inputs(
    store: CollectionStore, threshold: float | None, card: Any, embedder: Any, include_private: bool
) -> _Inputs:
    """The store as the planners take it (see ``review_queue``)."""
    from faceatlas.clustering.clusterer import FaceClusterer
    from faceatlas.collection.grouping import occasions, with_bound_card

    table = store.face_table()
    if len(table) < 2:  # nothing to plan: the planners are not called
        empty = np.zeros(0, np.int64)
        return _Inputs(empty, empty, np.zeros((0, 0)), np.zeros(0), empty, np.zeros((0, 2), np.int64), empty, 0.0, 1.0)
    clusterer = FaceClusterer(threshold, card=card)
    if threshold is None and card is None:
        clusterer = with_bound_card(clusterer, store, embedder)
    cut = clusterer._threshold()
    scale = card_scale(clusterer.card) if clusterer.card is not None else DEFAULT_SCALE
    face_ids = np.asarray(table.face_ids, dtype=np.int64)
    row_of = {int(face): row for row, face in enumerate(face_ids.tolist())}
    labels = np.asarray(table.clusters, dtype=np.int64)
    if not include_private:
        hidden = [c.id for c in store.clusters() if c.private]
        labels = np.where(np.isin(labels, hidden), NOT_ASKED, labels)
    photos = np.asarray(table.photo_ids, dtype=np.int64)
    groups, together = occasions(face_ids, photos, store.video_tracks(), row_of)
    must, cannot = store.constraints()
    cannot_rows = np.concatenate([_rows(cannot, row_of), together])
    confirmed = _confirmed(store, labels, face_ids, _rows(must, row_of), np.asarray(table.qualities))
    learned = Calibration.fit(store.review_answers(_answers_model(store)), threshold=float(cut), scale=float(scale))
    return _Inputs(
        face_ids, labels, np.asarray(table.embeddings), np.asarray(table.qualities), groups, cannot_rows, confirmed,
        float(cut), float(scale), learned,
    )  # fmt: skip


def _answers_model(store: CollectionStore) -> str:
    """The key review answers are remembered under: the bound model's name-version (similarities
    of another model mean other things)."""
    tag = store.model()
    return "unbound" if tag is None else f"{tag.name}-{tag.version}"


def _remember(store: CollectionStore, answers: Iterable[tuple[str, float, bool]]) -> None:
    store.record_review_answers(answers, _answers_model(store))


@dataclass(frozen=True)
class GroupQuestion:
    """ "Which of these are the person of face ``anchor``?": each of ``members`` is a merge question
    (``faces[0]`` the anchor's shown face, ``faces[1]`` a candidate's: another cluster or an
    unassigned face) or a member question (``faces[0]`` a face of the anchor's cluster that may not
    be its person, ``faces[1]`` the anchor). Answered by ``answer_group`` with the candidates that
    are the anchor's person."""

    anchor: int
    members: tuple[Question, ...]

    @property
    def key(self) -> tuple[str, int, int]:
        return ("group", self.anchor, len(self.members))

    @property
    def candidates(self) -> tuple[int, ...]:
        """The candidate face of each member, in order."""
        return tuple(candidate_face(m) for m in self.members)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "group", "anchor": self.anchor, "candidates": list(self.candidates),
            "members": [m.to_dict() for m in self.members],
        }  # fmt: skip


def candidate_face(member: Question) -> int:
    """The face a group question's member asks about (the other face is the anchor)."""
    return member.faces[0] if member.kind == "member" else member.faces[1]


def group_question(
    store: CollectionStore,
    *,
    skip: Iterable[int] = (),
    threshold: float | None = None,
    card: Any = None,
    embedder: str | os.PathLike[str] | None = None,
    include_private: bool = False,
    size: int = GROUP_SIZE,
) -> GroupQuestion | None:
    """The group question worth most now (``clustering.questions.plan_group``), None when nothing is
    left to ask; ``skip``: anchor face ids not to ask about. Arguments as ``review_queue``'s."""
    inputs = _planner_inputs(store, threshold, card, embedder, include_private)
    if len(inputs.face_ids) < 2:
        return None
    face_ids, labels = inputs.face_ids, inputs.labels
    row_of = {int(face): row for row, face in enumerate(face_ids.tolist())}
    planned = plan_group(
        inputs.embeddings, labels, threshold=inputs.threshold, scale=inputs.scale, qualities=inputs.qualities,
        groups=inputs.groups, cannot=inputs.cannot, size=size, skip=[row_of[f] for f in skip if f in row_of],
        calibration=inputs.calibration, confirmed=inputs.confirmed,
    )  # fmt: skip
    if planned is None:
        return None

    def cluster(row: int) -> int | None:
        return int(labels[row]) if labels[row] >= 0 else None

    anchor = planned.anchor_row
    anchor_face, anchor_cluster = int(face_ids[anchor]), cluster(anchor)
    anchor_size = int((labels == labels[anchor]).sum()) if labels[anchor] >= 0 else 1
    kinds = planned.kinds or ("merge",) * len(planned.rows)
    members = []
    for kind, row, n, similarity, p in zip(
        kinds, planned.rows, planned.sizes, planned.similarity, planned.p_same, strict=True
    ):
        if kind == "member":  # a face of the anchor's cluster: "is this face its person?"
            members.append(
                Question("member", (int(face_ids[row]), anchor_face), (anchor_cluster, anchor_cluster),
                         (1, anchor_size), float(1 - p), float(similarity), float(p))
            )  # fmt: skip
        else:
            members.append(
                Question("merge", (anchor_face, int(face_ids[row])), (anchor_cluster, cluster(row)), (anchor_size, n),
                         float(min(anchor_size, n) * p), float(similarity), float(p))
            )  # fmt: skip
    return GroupQuestion(anchor_face, tuple(members))


def answer_group(
    store: CollectionStore, question: GroupQuestion, same: Iterable[int], gallery: Any = None
) -> list[Answered]:
    """The user's answer to a group question: ``same`` are the shown candidate faces that are the
    anchor's person (the others are not). The member candidates of ``same`` are answered "yes" first
    (confirmed), the others "no" (cannot-links; a face of the anchor's own cluster leaves it, kept
    apart from the anchor and the faces confirmed with it, not from the rest), then
    the clustered merge candidates of ``same`` join the anchor's cluster at once
    (``accept_subcluster``: the anchor keeps its id and name) and unassigned ones are answered "yes"
    one by one. Every candidate's answer is remembered for the queue's calibration.
    InvalidCorrectionError: a face of ``same`` that was not shown; StaleQuestionError as ``answer``."""
    chosen = {int(face) for face in same}
    shown = set(question.candidates)
    if not chosen <= shown:
        raise InvalidCorrectionError(f"faces {sorted(chosen - shown)} were not among this question's candidates")
    for member in question.members:
        _check_fresh(store, member)  # all or nothing: no answer is applied to a group that moved
    done = [_apply(store, m, "yes", gallery) for m in question.members
            if m.kind == "member" and candidate_face(m) in chosen]  # fmt: skip
    done += [_apply(store, m, "no", gallery, only_shown=True) for m in question.members
             if candidate_face(m) not in chosen]  # fmt: skip
    yes = [m for m in question.members if m.kind == "merge" and m.faces[1] in chosen]
    anchor_cluster = question.members[0].clusters[1 if question.members[0].kind == "member" else 0]
    clustered = [m for m in yes if anchor_cluster is not None and m.clusters[1] is not None]
    for member in yes:
        if member not in clustered:  # an unassigned side: one answer, against the anchor's cluster now
            now = store.face(question.anchor).cluster
            fresh = replace(member, clusters=(None if now is None or now < 0 else int(now), member.clusters[1]))
            done.append(_apply(store, fresh, "yes", gallery))
    if clustered:  # checked fresh above; the answers since moved none of their clusters
        assert anchor_cluster is not None
        result = accept_subcluster(
            store, [m.clusters[1] for m in clustered if m.clusters[1] is not None], anchor_cluster, gallery=gallery
        )
        done += [Answered(m, "yes", result) for m in clustered]
    _remember(store, [("group" if m.kind == "merge" else "member", m.similarity, candidate_face(m) in chosen)
                      for m in question.members])  # fmt: skip
    return done


def question_payload(store: CollectionStore, question: Question) -> dict[str, Any]:
    """``question.to_dict()`` with what a person needs to answer it: each face's photo, box and
    cluster name, and the question as words ("Is this Ada?" when one side is named)."""
    names = {c.id: c.name for c in store.clusters()}
    shown = []
    for face_id, cluster in zip(question.faces, question.clusters, strict=True):
        face = store.face(face_id)
        shown.append(
            {
                "face": face.id,
                "photo": face.photo_id,
                "path": face.path,
                "box": [round(v, 1) for v in face.box],
                "time": face.time,
                "cluster": cluster,
                "name": names.get(cluster) if cluster is not None else None,
            }
        )
    payload = question.to_dict()
    payload["shown"] = shown
    payload["text"] = question_text(question, names)
    return payload


def question_text(question: Question, names: dict[int, str | None]) -> str:
    """ "Is this Ada?" when the other side is a named person, else "Same person?"."""
    if question.kind == "member":
        name = names.get(question.clusters[1]) if question.clusters[1] is not None else None
        return f"Is this {name}?" if name else "Is this face the same person as the rest of its cluster?"
    named = [names.get(c) for c in question.clusters if c is not None and names.get(c)]
    return f"Is this {named[0]}?" if len(named) == 1 else "Same person?"


def _rows(pairs: np.ndarray, row_of: dict[int, int]) -> np.ndarray:
    rows = [(row_of[a], row_of[b]) for a, b in np.asarray(pairs).reshape(-1, 2).tolist() if a in row_of and b in row_of]
    return np.array(rows, dtype=np.int64).reshape(-1, 2)


def _confirmed(
    store: CollectionStore, labels: np.ndarray, face_ids: np.ndarray, must: np.ndarray, qualities: np.ndarray
) -> np.ndarray:
    """Rows must-linked with their cluster's best face (a member question answered "yes")."""
    out = np.zeros(len(labels), bool)
    if not len(must):
        return out
    rows = np.flatnonzero(labels >= 0)
    order = rows[np.lexsort((face_ids[rows], -qualities[rows]))]  # the store's order: quality, then id
    best: dict[int, int] = {}
    for row in order.tolist():
        best.setdefault(int(labels[row]), row)
    for a, b in must.tolist():
        for face, other in ((a, b), (b, a)):
            if labels[face] >= 0 and best.get(int(labels[face])) == other:
                out[face] = True
    return out


def _question(candidate: Candidate, face_ids: np.ndarray, labels: np.ndarray) -> Question:
    a, b = candidate.rows

    def cluster(row: int) -> int | None:
        return int(labels[row]) if labels[row] >= 0 else None

    return Question(
        candidate.kind,
        (int(face_ids[a]), int(face_ids[b])),
        (cluster(a), cluster(b)),
        candidate.sizes,
        float(candidate.gain),
        float(candidate.similarity),
        float(candidate.p_same),
    )


def answer(store: CollectionStore, question: Question, reply: str, gallery: Any = None) -> Answered:
    """Apply the user's ``reply`` ("yes", "no" or "skip") to ``question`` as a correction (see the
    module doc). Refused: InvalidCorrectionError (another reply), StaleQuestionError, and the
    corrections' own refusals (e.g. DifferentPeopleError: a merge of two named clusters)."""
    done = _apply(store, question, reply, gallery)
    if reply != "skip":
        _remember(store, [(question.kind, question.similarity, reply == "yes")])
    return done


def _apply(
    store: CollectionStore, question: Question, reply: str, gallery: Any = None, only_shown: bool = False
) -> Answered:
    """``answer`` without remembering it: the correction alone. ``only_shown``: a member "no" keeps
    the face apart from the face shown for the person (and the faces must-linked to it) only."""
    if reply not in REPLIES:
        raise InvalidCorrectionError(f"a reply is one of {', '.join(REPLIES)}, got {reply!r}")
    if reply == "skip":
        return Answered(question, reply)
    face_a, face_b = _check_fresh(store, question)
    if question.kind == "member":
        if reply == "no":
            apart = [face_b.id] if only_shown else None
            return Answered(question, reply, corrections.not_this_person(store, face_a.id, gallery, apart))
        store.update_constraints(must=[(face_a.id, face_b.id)])
        return Answered(question, reply)
    cluster_a, cluster_b = question.clusters
    if reply == "no":
        side_a = [face_a.id] if cluster_a is None else [f.id for f in store.cluster_faces(cluster_a)]
        side_b = [face_b.id] if cluster_b is None else [f.id for f in store.cluster_faces(cluster_b)]
        pairs = {(min(face_a.id, f), max(face_a.id, f)) for f in side_b}
        pairs |= {(min(face_b.id, f), max(face_b.id, f)) for f in side_a}
        store.update_constraints(cannot=sorted(pairs))
        return Answered(question, reply)
    if cluster_a is not None and cluster_b is not None:
        into, source = _into(store, cluster_a, cluster_b)
        return Answered(question, reply, corrections.merge_clusters(store, source, into, gallery=gallery))
    if cluster_a is None and cluster_b is None:
        fresh = store.new_cluster()
        store.move_faces([face_a.id, face_b.id], fresh)
        store.update_constraints(must=[(face_a.id, face_b.id)])
        return Answered(question, reply, store.cluster(fresh))
    loose, held = (face_a, cluster_b) if cluster_a is None else (face_b, cluster_a)
    assert held is not None  # one of the two is a cluster here
    target: int = held
    clash = [f for f in store.faces_of_photo(loose.photo_id) if f.cluster == target and f.id != loose.id]
    if any(f.same_moment(loose) for f in clash):
        raise corrections.SharedPhotoError(
            f"cluster {target} has a face in photo {loose.photo_id} already; a person appears once per photo",
            -1,
            target,
            loose.photo_id,
            (clash[0].id, loose.id),
        )
    shown = store.cluster_faces(target)[0]
    store.move_faces([loose.id], target)
    store.update_constraints(must=[(loose.id, shown.id)])
    return Answered(question, reply, store.cluster(target))


def _check_fresh(store: CollectionStore, question: Question) -> tuple[Any, Any]:
    """The question's two faces, or StaleQuestionError when either is no longer where it says."""
    face_a, face_b = (store.face(face) for face in question.faces)
    for face, cluster in zip((face_a, face_b), question.clusters, strict=True):
        now = None if face.cluster is None or face.cluster < 0 else int(face.cluster)
        if now != cluster:
            raise StaleQuestionError(
                f"face {face.id} is now in {'no cluster' if now is None else f'cluster {now}'}, not "
                f"{'unassigned' if cluster is None else f'in cluster {cluster}'}: ask the queue again"
            )
    return face_a, face_b


def _into(store: CollectionStore, a: int, b: int) -> tuple[int, int]:
    """(into, source): the named cluster keeps its id, else the bigger one."""
    info_a, info_b = store.cluster(a), store.cluster(b)
    if info_b.name and not info_a.name:
        return b, a
    if info_a.name and not info_b.name:
        return a, b
    return (a, b) if info_a.n_faces >= info_b.n_faces else (b, a)


def accept_subcluster(
    store: CollectionStore, cluster_ids: Sequence[int], into: int, gallery: Any = None
) -> corrections.MergeResult:
    """Merge every cluster of ``cluster_ids`` into ``into`` (the batch accept: "all of these are
    Ada"), one ``merge_clusters`` each, in order; a refusal stops there (the merges before it
    stay: each is a correction of its own). Refused up front: InvalidCorrectionError (no cluster
    to merge), ClusterNotFoundError (any of them)."""
    sources = [int(c) for c in dict.fromkeys(cluster_ids) if int(c) != int(into)]
    if not sources:
        raise InvalidCorrectionError(f"name at least one cluster other than {into} to merge into it")
    for cluster in [int(into), *sources]:
        store.cluster(cluster)  # ClusterNotFoundError before anything changes
    result = None
    for source in sources:
        result = corrections.merge_clusters(store, source, int(into), gallery=gallery)
    assert result is not None
    return result


@dataclass
class ReviewSession:
    """A review in progress: the queue without the questions skipped so far (remembered here, in
    memory only), and the answers given."""

    store: CollectionStore
    gallery: Any = None
    embedder: str | os.PathLike[str] | None = None
    threshold: float | None = None  # None: the bound model's
    include_private: bool = False
    skipped: set[tuple[str, int, int]] = field(default_factory=set)
    answered: list[Answered] = field(default_factory=list)

    def queue(self, limit: int = 20) -> list[Question]:
        return review_queue(
            self.store,
            limit=limit,
            skip=self.skipped,
            threshold=self.threshold,
            embedder=self.embedder,
            include_private=self.include_private,
        )

    def answer(self, question: Question, reply: str) -> Answered:
        done = answer(self.store, question, reply, gallery=self.gallery)
        if reply == "skip":
            self.skipped.add(question.key)
        self.answered.append(done)
        return done
