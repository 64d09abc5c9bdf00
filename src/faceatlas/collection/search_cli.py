"""`faceatlas search FACE.jpg`: every face of the collection like the one in FACE.jpg, ranked.

A thin layer over ``faceatlas.collection.search``: "no match at FPIR x" when no face reaches the
calibrated threshold (exit 1, as `faceatlas verify` says "different"), the nearest faces all the same.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from faceatlas._cli_util import EXIT_NO_MATCH, EXIT_OK, DetectorOption, EmbedderOption, check_rate, guard
from faceatlas.collection.cli import Db, _open


def search_command(
    face: Annotated[
        Path | None,
        typer.Argument(help="An image: its largest face is searched for.", readable=False, show_default=False),
    ] = None,
    db: Db = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=1000, help="Faces listed.")] = 20,
    fpir: Annotated[
        float,
        typer.Option(callback=check_rate, help="Open-set operating point: false-positive identification rate."),
    ] = 0.01,
    taken_from: Annotated[
        str | None, typer.Option("--from", help="Only photos taken on or after this date (YYYY-MM-DD[THH:MM:SS]).")
    ] = None,
    taken_to: Annotated[str | None, typer.Option("--to", help="Only photos taken on or before this date.")] = None,
    folder: Annotated[
        str | None, typer.Option(help="Only photos under this folder (absolute, or relative to an indexed root).")
    ] = None,
    person: Annotated[str | None, typer.Option(help="Only faces of the cluster of this name.")] = None,
    cluster: Annotated[
        list[int] | None, typer.Option("--cluster", help="Only faces of this cluster id (repeatable; -1: unassigned).")
    ] = None,
    unnamed: Annotated[bool, typer.Option("--unnamed", help="Only faces nobody has named.")] = False,
    face_id: Annotated[
        int | None, typer.Option("--face-id", min=0, help="Search by a face of the collection instead of an image.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per face, then one summary line.")] = False,
    detector: DetectorOption = None,
    embedder: EmbedderOption = None,
) -> None:
    """Find every face in the collection like the face in an image: named or not, best first.

    Exit 0 when a face matches at --fpir, 1 for "no match" (the nearest faces are still listed)."""

    def run() -> int:
        from faceatlas._cli_util import CommandError
        from faceatlas.collection.search import FaceFilter, FaceSearcher, search_faces

        if (face is None) == (face_id is None):
            raise CommandError("give an image (FACE.jpg) or --face-id N, not both and not neither", code=2)
        wanted = FaceFilter(
            taken_from=taken_from,
            taken_to=taken_to,
            folder=_folder(folder),
            clusters=tuple(cluster or ()),
            person=person,
            unnamed=unnamed,
        )
        with _open(db, create=False) as store:
            searcher = FaceSearcher(store, embedder=embedder)
            if face_id is not None:
                result = search_faces(store, face_id, k=k, filter=wanted, fpir=fpir, searcher=searcher)
            else:
                analyzer = None
                if detector is not None or embedder is not None:
                    from faceatlas._cli_util import build_analyzer
                    from faceatlas.models.catalog import embedder_for_tag

                    chosen = embedder_for_tag(store.model(), embedder, where="the collection")
                    analyzer = build_analyzer(detector, str(chosen))
                result = search_faces(
                    store, str(face), k=k, filter=wanted, fpir=fpir, analyzer=analyzer, searcher=searcher
                )
        _print(result, as_json)
        return EXIT_OK if result.matched else EXIT_NO_MATCH

    raise typer.Exit(guard(run))


def _folder(folder: str | None) -> str | None:
    """A folder that exists here is taken as this machine's path (absolute); else relative to a root."""
    if folder is None:
        return None
    path = Path(folder).expanduser()
    return str(path.resolve()) if not path.is_absolute() and path.is_dir() else folder


def _print(result, as_json: bool) -> None:
    if as_json:
        for hit in result.hits:
            typer.echo(
                json.dumps(
                    {
                        "face_id": hit.face.id,
                        "photo": str(hit.face.file),
                        "box": [round(v, 1) for v in hit.face.box],
                        "similarity": round(hit.similarity, 4),
                        "match": hit.above_threshold,
                        "cluster": hit.face.cluster,
                        "person": hit.person,
                        "taken_at": hit.taken_at,
                        "time": hit.face.time,
                    }
                )
            )
        summary = {
            "matched": result.matched,
            "threshold": round(result.threshold, 4),
            "fpir": result.fpir,
            "searched": result.searched,
            "total": result.total,
            "strategy": result.strategy,
            "notes": list(result.notes),
        }
        typer.echo(json.dumps({"summary": summary}))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=None, show_edge=False)
    for column, justify in (("face", "right"), ("photo", "left"), ("box", "left"), ("similarity", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    table.add_column("person / cluster")
    table.add_column("taken")
    for hit in result.hits:
        mark = "" if hit.above_threshold else " (below)"
        who = hit.person or (
            "unassigned" if hit.face.cluster == -1 else "not clustered" if hit.face.cluster is None else ""
        )
        cluster = "" if hit.face.cluster is None or hit.face.cluster < 0 else f" #{hit.face.cluster}"
        box = ",".join(f"{v:.0f}" for v in hit.face.box)
        table.add_row(
            str(hit.face.id),
            str(hit.face.file),
            box,
            f"{hit.similarity:.3f}{mark}",
            f"{who}{cluster}",
            hit.taken_at or "",
        )
    console = Console(width=200, soft_wrap=True)
    if result.hits:
        console.print(table)
    line = f"{result.describe()} (threshold {result.threshold:.3f}, {result.strategy})"
    typer.echo(line if result.matched else f"{line}; the nearest faces are listed")
    for note in result.notes:
        typer.echo(f"note: {note}")
