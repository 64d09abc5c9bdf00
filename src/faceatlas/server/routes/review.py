"""The review queue over HTTP: "Is this Ada? yes / no / skip", thin over ``faceatlas.collection.review``.

- ``GET /v1/collection/review``: the questions worth most, best first (``question_payload`` each).
  The service keeps no session: a client remembers the questions it skipped and passes their keys
  back (``skip=merge:12:40``, repeated), as ``ReviewSession`` does in memory for the CLI.
- ``POST /v1/collection/review/answer``: one reply. The question is found again by its key
  (kind and faces) in the queue as it is now, so only a question the queue would ask is answered;
  one it no longer asks (the collection changed: a merge, a correction, a cluster job) is refused
  with ``StaleQuestionError`` (409), as is one whose faces moved from the ``clusters`` it was
  asked with. Answers are the library's corrections, stored as the constraints cluster jobs honour.
- ``POST /v1/collection/review/accept``: the batch accept (``accept_subcluster``).
- ``GET /v1/collection/review/group``: one group question ("which of these are this person?",
  ``group_question``; skipped anchors passed back as ``skip``), and
  ``POST /v1/collection/review/group/answer``: its answer (``answer_group``), refused (409) when
  the group the queue would ask now is not the one shown (another anchor, other candidates).

Answers hold the collection lock, then the gallery lock, as every correction does: a yes may merge
a named cluster, whose faces are a person of the service's gallery. Private people take part only
for a caller who may see them (``include_private``; a 403 for one who may not, as marking them is);
the rest of the privacy rules are ``faceatlas.server.privacy``'s (a hidden face or cluster: 404).
Typed refusals map to HTTP by ``server.errors.rules``; this module maps none itself.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from faceatlas.server.auth import Reader, Writer
from faceatlas.server.errors import ServiceError
from faceatlas.server.privacy import can_see_private, check_visible_cluster, check_visible_face, hidden_for
from faceatlas.server.schemas import MAX_ID
from faceatlas.server.state import engine_of, settings_of

router = APIRouter(prefix="/v1", tags=["collection"])

MAX_QUESTIONS = 100  # questions one GET returns at most
FIND_IN = 1000  # questions planned to find the one answered (it may have moved down the queue)
MAX_SKIPS = 1000

Id = Annotated[int, Field(ge=0, le=MAX_ID)]


class ReviewFace(BaseModel):
    face: int = Field(description="a collection face id (its crop: GET /v1/collection/faces/{id}/thumbnail)")
    photo: int = Field(description="its photo's id")
    path: str = Field(description="its photo's path, inside the folder it was indexed from")
    box: list[float] = Field(min_length=4, max_length=4, description="[x1, y1, x2, y2] pixels")
    time: float | None = Field(description="seconds into a video (null: a photo)")
    cluster: int | None = Field(description="the cluster it stands for (null: an unassigned face)")
    name: str | None = Field(description="that cluster's name (null: unnamed)")


class ReviewQuestion(BaseModel):
    kind: Literal["merge", "member"] = Field(
        description="merge: are the two sides one person? member: is faces[0] the person of cluster clusters[1]?"
    )
    faces: list[int] = Field(min_length=2, max_length=2, description="the two faces shown")
    clusters: list[int | None] = Field(min_length=2, max_length=2, description="their clusters (null: unassigned)")
    sizes: list[int] = Field(min_length=2, max_length=2, description="faces on each side")
    gain: float = Field(description="faces the answer is expected to put right")
    similarity: float
    p_same: float = Field(description="the chance the two sides are one person")
    shown: list[ReviewFace] = Field(description="each face, to show it")
    text: str = Field(description='the question as words: "Is this Ada?", "Same person?"')


class ReviewQueue(BaseModel):
    questions: list[ReviewQuestion] = Field(description="best first; empty: nothing left to ask")


class ReviewAnswerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["merge", "member"]
    faces: list[Id] = Field(min_length=2, max_length=2, description="the question's faces, as listed")
    reply: Literal["yes", "no", "skip"]
    clusters: list[Id | None] | None = Field(
        None,
        min_length=2,
        max_length=2,
        description="the question's clusters, as listed: given, an answer after its faces moved is refused (409)",
    )
    include_private: bool = Field(False, description="as the queue was asked (private people take part in it)")


class ReviewAnswered(BaseModel):
    kind: Literal["merge", "member"]
    faces: list[int]
    reply: Literal["yes", "no", "skip"]
    stored: bool = Field(description="whether the answer changed the collection (a skip changes nothing)")
    clusters: list[int | None] = Field(description="each face's cluster now (null: unassigned)")


class ReviewAcceptRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    clusters: list[Id] = Field(min_length=1, max_length=1000, description="clusters that are all one person")
    into: Id = Field(description="the cluster they join (it keeps its id and name)")


class ReviewCluster(BaseModel):
    id: int
    name: str | None
    n_faces: int


@router.get("/collection/review", response_model=ReviewQueue, summary="The review queue: questions to answer")
def review_queue(
    request: Request,
    _: Reader,
    limit: Annotated[int, Query(ge=1, le=MAX_QUESTIONS, description="at most this many questions")] = 20,
    include_private: Annotated[
        bool, Query(description="ask about private people too (a key that may see them)")
    ] = False,
    skip: Annotated[
        list[str] | None,
        Query(
            max_length=MAX_SKIPS,
            description="a question skipped, as KIND:FACE:FACE (e.g. merge:12:40); repeat for each",
        ),
    ] = None,
) -> ReviewQueue:
    """The questions whose answers label the collection in the fewest answers, best first (see
    `faceatlas review`): merges of clusters just below the merge threshold, then faces least like
    their cluster."""
    from faceatlas.collection import review

    _may_include(request, include_private)
    skipped = [_skip_key(text) for text in skip or ()]
    with engine_of(request).collection() as store:
        hide = hidden_for(request, store)
        questions = review.review_queue(
            store,
            limit=limit,
            skip=skipped,
            embedder=settings_of(request).embedder,
            include_private=include_private,
        )
        shown = [q for q in questions if not hide.clusters.intersection(q.clusters)]  # a name hidden elsewhere
        return ReviewQueue(questions=[ReviewQuestion(**review.question_payload(store, q)) for q in shown])


@router.post("/collection/review/answer", response_model=ReviewAnswered, summary="Answer a review question")
def answer_question(request: Request, _: Writer, body: ReviewAnswerRequest) -> ReviewAnswered:
    """A yes or no is stored as a correction later cluster jobs honour (a merge, a face taken out,
    must- and cannot-links); a skip stores nothing (pass its key back as `skip` to the queue). A
    question the queue (with the same `include_private`) no longer asks, or whose faces moved from
    its `clusters`, is refused (409): ask the queue again."""
    from faceatlas.collection import review

    _may_include(request, body.include_private)
    engine = engine_of(request)
    key = (body.kind, body.faces[0], body.faces[1])
    with engine.collection_lock, engine.collection() as store, engine.gallery_lock:
        hide = hidden_for(request, store)
        for face in body.faces:
            check_visible_face(request, store.face(face), store, hide)  # 404 for a missing or hidden face
        asked = review.review_queue(  # the queue as asked (skips only leave questions out: not needed here)
            store, limit=FIND_IN, embedder=settings_of(request).embedder, include_private=body.include_private
        )
        question = next((q for q in asked if q.key == key), None)
        if question is None:
            raise review.StaleQuestionError(
                f"the review queue no longer asks {body.kind} {body.faces[0]}:{body.faces[1]} (the collection "
                "changed since it was asked, or it was answered): ask the queue again"
            )
        if body.clusters is not None:
            question = dataclasses.replace(question, clusters=(body.clusters[0], body.clusters[1]))
        review.answer(store, question, body.reply, gallery=engine.gallery())
        now = [store.face(face).cluster for face in body.faces]
    return ReviewAnswered(
        kind=body.kind,
        faces=list(body.faces),
        reply=body.reply,
        stored=body.reply != "skip",
        clusters=[None if c is None or c < 0 else int(c) for c in now],
    )


@router.post("/collection/review/accept", response_model=ReviewCluster, summary="Accept clusters as one person")
def accept_clusters(request: Request, _: Writer, body: ReviewAcceptRequest) -> ReviewCluster:
    """The batch accept ("all of these are Ada"): every cluster merges into `into`, one merge each,
    in order; a refused merge (two named people, a shared photo: 409) stops there, the merges
    before it stay. Returns `into` as it is then."""
    from faceatlas.collection.review import accept_subcluster

    engine = engine_of(request)
    with engine.collection_lock, engine.collection() as store, engine.gallery_lock:
        hide = hidden_for(request, store)
        for cluster in dict.fromkeys([body.into, *body.clusters]):
            check_visible_cluster(request, store.cluster(cluster), store, hide)  # 404: missing or hidden
        accept_subcluster(store, body.clusters, body.into, gallery=engine.gallery())
        info = store.cluster(body.into)
    return ReviewCluster(id=info.id, name=info.name, n_faces=info.n_faces)


class ReviewGroup(BaseModel):
    anchor: int = Field(description="the face the candidates are asked about")
    anchor_shown: ReviewFace = Field(description="the anchor face, to show it")
    candidates: list[int] = Field(description="each member's candidate face, in order (what `same` picks from)")
    members: list[ReviewQuestion] = Field(
        description=(
            "one question per candidate: a merge (faces[0] the anchor, faces[1] the candidate: another person "
            "or an unassigned face; shown[1] shows it) or a member (faces[0] the candidate: a face of the "
            "anchor's own person that may not be them, shown[0]; faces[1] the anchor)"
        )
    )


class ReviewGroupAsked(BaseModel):
    question: ReviewGroup | None = Field(description="null: nothing left to ask")


class ReviewGroupAnswerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    anchor: Id = Field(description="the question's anchor face, as shown")
    candidates: list[Id] = Field(
        min_length=1, max_length=MAX_QUESTIONS, description="the candidate faces shown, in order"
    )
    same: list[Id] = Field(max_length=MAX_QUESTIONS, description="those of the candidates that are the anchor's person")
    include_private: bool = Field(False, description="as the question was asked")
    skip: list[Id] = Field(
        [], max_length=MAX_SKIPS, description="the anchors skipped when it was asked (its GET's skip)"
    )


class ReviewGroupAnswered(BaseModel):
    merged: int = Field(description="candidates answered yes (the anchor's person: joined it, or confirmed in it)")
    kept_apart: int = Field(
        description="candidates answered no (cannot-linked with the anchor's person; a face of its cluster left it)"
    )


@router.get(
    "/collection/review/group", response_model=ReviewGroupAsked, summary="A group question: which are this person?"
)
def review_group(
    request: Request,
    _: Reader,
    include_private: Annotated[
        bool, Query(description="ask about private people too (a key that may see them)")
    ] = False,
    skip: Annotated[
        list[Id] | None,
        Query(max_length=MAX_SKIPS, description="an anchor face skipped; repeat for each"),
    ] = None,
) -> ReviewGroupAsked:
    """The group question worth most now: an anchor face and its candidates, each a merge question
    (a person or face most likely the anchor's person) or a member question (a face of the anchor's
    own person least like the rest); see `faceatlas review`. Null when nothing is left to ask."""
    from faceatlas.collection import review

    _may_include(request, include_private)
    with engine_of(request).collection() as store:
        hide = hidden_for(request, store)
        question = review.group_question(
            store, skip=skip or (), embedder=settings_of(request).embedder, include_private=include_private
        )
        if question is None or any(hide.clusters.intersection(m.clusters) for m in question.members):
            return ReviewGroupAsked(question=None)  # a name hidden elsewhere: not asked of this caller
        members = [review.question_payload(store, m) for m in question.members]
        anchor_side = 1 if question.members[0].kind == "member" else 0
        return ReviewGroupAsked(
            question=ReviewGroup(
                anchor=question.anchor,
                anchor_shown=ReviewFace(**members[0]["shown"][anchor_side]),
                candidates=list(question.candidates),
                members=[ReviewQuestion(**m) for m in members],
            )
        )


@router.post("/collection/review/group/answer", response_model=ReviewGroupAnswered, summary="Answer a group question")
def answer_group_question(request: Request, _: Writer, body: ReviewGroupAnswerRequest) -> ReviewGroupAnswered:
    """`same`: the candidates that are the anchor's person; the others are not. The group the queue
    (with the same `include_private` and `skip`) would ask now must be the one shown (its anchor and its
    candidates, in order), else 409: ask again. A face of `same` not among `candidates`: 422."""
    from faceatlas.collection import review
    from faceatlas.collection.store import InvalidCorrectionError

    _may_include(request, body.include_private)
    if not set(body.same) <= set(body.candidates):
        raise InvalidCorrectionError(
            f"same: faces {sorted(set(body.same) - set(body.candidates))} are not among the candidates shown"
        )
    engine = engine_of(request)
    with engine.collection_lock, engine.collection() as store, engine.gallery_lock:
        hide = hidden_for(request, store)
        for face in dict.fromkeys([body.anchor, *body.candidates]):
            check_visible_face(request, store.face(face), store, hide)  # 404 for a missing or hidden face
        question = review.group_question(
            store, skip=body.skip, embedder=settings_of(request).embedder, include_private=body.include_private
        )
        if question is None or question.anchor != body.anchor or list(question.candidates) != list(body.candidates):
            raise review.StaleQuestionError(
                f"the review queue no longer asks the group of face {body.anchor} with these candidates (the "
                "collection changed since it was asked, or it was answered): ask the queue again"
            )
        done = review.answer_group(store, question, body.same, gallery=engine.gallery())
    return ReviewGroupAnswered(
        merged=sum(a.reply == "yes" for a in done), kept_apart=sum(a.reply == "no" for a in done)
    )


def _may_include(request: Request, include_private: bool) -> None:
    if include_private and not can_see_private(request):
        raise ServiceError(
            403,
            "forbidden",
            "this key may not see private people, so it may not be asked about them: leave include_private "
            "out, or use an admin key or one made with --private",
        )


def _skip_key(text: str) -> tuple[str, int, int]:
    """``merge:12:40`` -> ("merge", 12, 40) (``Question.key``); a 422 for anything else."""
    kind, _, rest = text.partition(":")
    a, _, b = rest.partition(":")
    if kind in ("merge", "member") and all(v.isascii() and v.isdigit() and len(v) < 19 for v in (a, b)):
        return kind, int(a), int(b)
    raise ServiceError(
        422, "invalid_request", f"skip: {text[:80]!r} is not a question's key; give KIND:FACE:FACE, e.g. merge:12:40"
    )
