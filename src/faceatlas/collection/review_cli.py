"""`faceatlas review`: the review queue in a terminal, thin over ``faceatlas.collection.review``.

``faceatlas review`` asks the questions one at a time (y / n / s, q to stop; from a terminal a key
is enough, from a pipe one reply a line), re-planning after every ``--batch`` answers so later
questions see earlier answers. ``--list`` prints the queue without asking (``--json``: one object
a line, the REST API's shape). ``faceatlas review accept CLUSTER... --into C`` is the batch accept. ``--groups`` asks group
questions instead ("which of these are this person?", ``review.group_question``): the reply names
the candidates that are (``1 3``, ``all``, ``none``), the others are kept apart.
"""

from __future__ import annotations

import json
import sys
from contextlib import AbstractContextManager, nullcontext
from typing import Annotated, Any

import typer

from faceatlas._cli_util import EXIT_OK, err, guard
from faceatlas.collection.cli import Db, GalleryOption, _open

review_app = typer.Typer(
    no_args_is_help=False,
    invoke_without_command=True,
    help="Label the collection by answering the questions that teach the most: 'Is this Ada?' yes / no / skip.",
)

_KEYS = {"y": "yes", "n": "no", "s": "skip", "yes": "yes", "no": "no", "skip": "skip"}


def _gallery(location: str | None) -> AbstractContextManager[Any]:
    if location is None:
        return nullcontext(None)
    from faceatlas.gallery.gallery import Gallery

    return Gallery.open(location)


def describe_question(store: Any, question: Any) -> str:
    """The question as a person reads it ("Is this Ada?" when one side is named), and where each face is."""
    from faceatlas.collection.review import question_text

    names = {c.id: c.name for c in store.clusters()}

    def side(face_id: int, cluster: int | None, size: int) -> str:
        face = store.face(face_id)
        box = ",".join(f"{v:.0f}" for v in face.box)
        at = f" at {face.time:.1f} s" if face.time is not None else ""
        where = f"face {face.id}: {face.file} [{box}]{at}"
        if question.kind == "member" and face_id == question.faces[0]:
            return f"  {where}"
        if cluster is None:
            return f"  an unassigned face, {where}"
        who = repr(names[cluster]) if names.get(cluster) else f"cluster {cluster}"
        return f"  {who} ({size} faces), shown by {where}"

    clusters = question.clusters if question.kind == "merge" else (None, question.clusters[1])
    lines = [side(f, c, n) for f, c, n in zip(question.faces, clusters, question.sizes, strict=True)]
    head = f"{question_text(question, names)}  (similarity {question.similarity:.3f}, chance {question.p_same:.0%})"
    return "\n".join([head, *lines])


def _read_reply() -> str | None:
    """y / n / s, or None to stop (q, end of input)."""
    while True:
        if sys.stdin.isatty():
            typer.echo("[y]es  [n]o  [s]kip  [q]uit > ", nl=False)
            key = typer.getchar().lower()
            typer.echo(key)
        else:
            line = sys.stdin.readline()
            if not line:
                return None
            key = line.strip().lower()
        if key in ("q", "quit", "\x03", "\x04"):
            return None
        if key in _KEYS:
            return _KEYS[key]
        err(f"answer y (yes), n (no), s (skip) or q (quit), not {key!r}")


@review_app.callback()
def review_command(
    ctx: typer.Context,
    db: Db = None,
    gallery: GalleryOption = None,
    limit: Annotated[int, typer.Option(min=1, help="Stop after this many answers (skips included).")] = 50,
    batch: Annotated[int, typer.Option(min=1, help="Plan again after this many answers.")] = 5,
    list_only: Annotated[
        bool, typer.Option("--list", help="Print the queue (--limit questions) without asking.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --list: one JSON object a line.")] = False,
    include_private: Annotated[
        bool, typer.Option("--include-private", help="Ask about private people too (hidden by default).")
    ] = False,
    threshold: Annotated[
        float | None, typer.Option(help="Similarity threshold of the clustering (default: the bound model's).")
    ] = None,
    groups: Annotated[
        bool,
        typer.Option(
            "--groups", help="Ask group questions: 'which of these are this person?' (numbers, all, none, s, q)."
        ),
    ] = False,
) -> None:
    """Answer the review queue's questions: each answer is stored as a correction the clusterer honours."""
    if ctx.invoked_subcommand is not None:
        return

    def run() -> int:
        from faceatlas.collection import review

        with _open(db, create=False) as store, _gallery(gallery) as opened:
            session = review.ReviewSession(store, gallery=opened, include_private=include_private, threshold=threshold)
            if list_only:
                for question in session.queue(limit=limit):
                    if as_json:
                        typer.echo(json.dumps(review.question_payload(store, question)))
                    else:
                        typer.echo(describe_question(store, question) + "\n")
                return EXIT_OK
            if groups:
                return _ask_groups(store, opened, limit, include_private, threshold)
            return _ask(store, session, limit, batch)

    raise typer.Exit(guard(run))


def _ask(store: Any, session: Any, limit: int, batch: int) -> int:
    from faceatlas.errors import FaceAtlasError

    asked = 0
    counts = {"yes": 0, "no": 0, "skip": 0}
    while asked < limit:
        questions = session.queue(limit=min(batch, limit - asked))
        if not questions:
            typer.echo("no more questions: the clustering has nothing left it is unsure of")
            break
        for question in questions:
            typer.echo(f"\n[{asked + 1}] " + describe_question(store, question))
            reply = _read_reply()
            if reply is None:
                return _summary(counts)
            asked += 1
            try:
                done = session.answer(question, reply)
            except FaceAtlasError as exc:  # a stale question, two named people: say so, ask the next
                err(f"not stored: {exc}")
                session.skipped.add(question.key)
                break  # the plan may be stale: plan again
            counts[reply] += 1
            if done.change is not None and reply == "yes":
                typer.echo("  merged" if question.kind == "merge" else "  confirmed")
            if reply == "yes" and question.kind == "merge":
                break  # clusters changed: the rest of this plan may be stale
    return _summary(counts)


def _ask_groups(store: Any, gallery: Any, limit: int, include_private: bool, threshold: float | None) -> int:
    """Group questions one at a time: the reply names the candidates that are the anchor's person."""
    from faceatlas.collection import review
    from faceatlas.errors import FaceAtlasError

    skipped: set[int] = set()
    merged = refused = asked = 0
    while asked < limit:
        question = review.group_question(store, skip=skipped, threshold=threshold, include_private=include_private)
        if question is None:
            typer.echo("no more questions: the clustering has nothing left it is unsure of")
            break
        asked += 1
        typer.echo(f"\n[{asked}] " + describe_group(store, question))
        reply = _read_choice(len(question.members))
        if reply is None:
            break
        if isinstance(reply, str):  # "skip"
            skipped.add(question.anchor)
            continue
        same = [question.candidates[k] for k in reply]
        try:
            review.answer_group(store, question, same, gallery=gallery)
        except FaceAtlasError as exc:
            err(f"not stored: {exc}")
            continue
        merged += len(same)
        refused += len(question.members) - len(same)
    typer.echo(f"answered {asked} group questions: {merged} the same person, {refused} kept apart")
    return EXIT_OK


def describe_group(store: Any, question: Any) -> str:
    """The anchor and its numbered candidates, as a person reads them."""
    from faceatlas.collection import review

    names = {c.id: c.name for c in store.clusters()}
    anchor = store.face(question.anchor)
    cluster = None if anchor.cluster is None or anchor.cluster < 0 else int(anchor.cluster)
    who = repr(names[cluster]) if cluster is not None and names.get(cluster) else "this person"
    lines = [f"Which of these are {who}? (face {anchor.id}: {anchor.file})"]
    for k, member in enumerate(question.members, 1):
        face = store.face(review.candidate_face(member))
        if member.kind == "member":
            label = "grouped with them now"
        elif member.clusters[1] is None:
            label = "an unassigned face"
        else:
            label = f"cluster {member.clusters[1]} ({member.sizes[1]} faces)"
        lines.append(
            f"  {k}. {label}, face {face.id}: {face.file}  "
            f"(similarity {member.similarity:.3f}, chance {member.p_same:.0%})"
        )
    return "\n".join(lines)


def _read_choice(n: int) -> list[int] | str | None:
    """Candidate indexes (0-based) from "1 3", "all", "none"; "skip"; None to stop."""
    while True:
        if sys.stdin.isatty():
            typer.echo("numbers of the same person (e.g. 1 3), all, none, s(kip), q(uit) > ", nl=False)
        line = sys.stdin.readline()
        if not line:
            return None
        text = line.strip().lower().replace(",", " ")
        if text in ("q", "quit"):
            return None
        if text in ("s", "skip"):
            return "skip"
        if text in ("a", "all"):
            return list(range(n))
        if text in ("n", "none", "0"):
            return []
        try:
            picks = sorted({int(v) - 1 for v in text.split()})
        except ValueError:
            picks = [-1]
        if picks and all(0 <= k < n for k in picks):
            return picks
        err(f"answer with numbers 1-{n}, all, none, s or q, not {line.strip()!r}")


def _summary(counts: dict[str, int]) -> int:
    typer.echo(f"answered: {counts['yes']} yes, {counts['no']} no, {counts['skip']} skipped")
    return EXIT_OK


@review_app.command("accept")
def accept_command(
    clusters: Annotated[list[int], typer.Argument(help="Clusters that are all one person.")],
    into: Annotated[int, typer.Option(help="The cluster they join (keeps its id and name).")],
    db: Db = None,
    gallery: GalleryOption = None,
) -> None:
    """Batch accept: merge every CLUSTER into --into ("all of these are Ada")."""

    def run() -> int:
        from faceatlas.collection.review import accept_subcluster

        with _open(db, create=False) as store, _gallery(gallery) as opened:
            accept_subcluster(store, clusters, into, gallery=opened)
            info = store.cluster(into)
        label = repr(info.name) if info.name else f"cluster {info.id}"
        typer.echo(f"{label} now has {info.n_faces} faces")
        return EXIT_OK

    raise typer.Exit(guard(run))
