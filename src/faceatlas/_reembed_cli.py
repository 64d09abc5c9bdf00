"""`faceatlas reembed GALLERY_OR_COLLECTION --embedder NAME_OR_PATH`: a thin layer over faceatlas.reembed."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from faceatlas._cli_util import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_USAGE,
    DetectorOption,
    build_analyzer,
    err,
    guard,
    progress,
)


def reembed_command(
    target: Annotated[
        str,
        typer.Argument(
            metavar="GALLERY_OR_COLLECTION",
            help="A gallery (a file, or a postgresql:// URL) or a collection file; which one is read from the file.",
        ),
    ],
    embedder: Annotated[
        str,
        typer.Option(
            "--embedder",
            help="The model to move to: a name (see `faceatlas models list`) or the path of an .onnx file or model "
            "pack.",
        ),
    ],
    images: Annotated[
        Path | None,
        typer.Option(
            help="Gallery: the folder of the images its faces were enrolled from (searched recursively); a gallery "
            "keeps no images. A collection reads its own photos.",
            readable=False,
        ),
    ] = None,
    detector: DetectorOption = None,
    drop_missing: Annotated[
        bool,
        typer.Option(
            "--drop-missing",
            help="Remove the faces that cannot be re-embedded (photos missing or changed, gallery faces whose image "
            "is not given) instead of stopping.",
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Switch without asking.")] = False,
) -> None:
    """Move a gallery or a collection to another embedder in place, keeping people, names and corrections.

    Every face is embedded again (a collection's from its photo, a gallery's from --images), then all
    embeddings and the model are switched at once: the two models' embeddings never mix. Safe to
    interrupt: a re-run with the same --embedder resumes. Prints identification figures on your own
    labels (enrolled people, named clusters) before and after. Exit 3 when faces cannot be re-embedded
    (nothing switched: restore them, give --images, or pass --drop-missing).
    """

    def run() -> int:
        from faceatlas.reembed import (
            open_target,
            plan_collection,
            plan_gallery,
            reembed_collection,
            reembed_gallery,
            store_kind,
        )

        kind = store_kind(target)
        if kind == "collection" and images is not None:
            err("--images is for a gallery: a collection re-embeds its faces from its own photos")
            return EXIT_USAGE
        analyzer = build_analyzer(detector, embedder)  # nothing loads yet: a bad name fails here, before any work
        with open_target(target) as store:
            plan = plan_gallery(store, analyzer, images) if kind == "gallery" else plan_collection(store, analyzer)
            for line in plan.lines():
                typer.echo(line)
            if plan.nothing_to_do:
                reembed_collection(store, analyzer) if kind == "collection" else reembed_gallery(store, analyzer, None)
                return EXIT_OK  # (that call only discards what an abandoned run had staged)
            if plan.unusable and not drop_missing:
                fix = (
                    "restore the photos (or run `faceatlas index` on their folder)"
                    if kind == "collection"
                    else ("pass the folder of their images (--images)")
                )
                err(f"nothing was switched: {fix}, or pass --drop-missing to remove those faces")
                return EXIT_BAD_INPUT
            if not yes and not _confirmed(plan.todo, plan.unusable_faces, str(plan.target)):
                return EXIT_USAGE if not sys.stdin.isatty() else EXIT_OK
            with progress(max(plan.todo, 2)) as bar:
                task = bar.add_task("re-embedding", total=plan.todo)

                def advance(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

                if kind == "gallery":
                    report = reembed_gallery(
                        store, analyzer, images, drop_missing=drop_missing, progress=advance, plan=plan
                    )
                else:
                    report = reembed_collection(store, analyzer, drop_missing=drop_missing, progress=advance, plan=plan)
        for line in report.lines():
            typer.echo(line)
        return EXIT_OK

    raise typer.Exit(guard(run))


def _confirmed(todo: int, dropped: int, target: str) -> bool:
    """Ask before switching; without a terminal to ask on, say to pass --yes."""
    if not sys.stdin.isatty():
        err("not switched: pass --yes to re-embed without being asked (no terminal to ask on)")
        return False
    removal = f", removing {dropped} face(s)" if dropped else ""
    if typer.confirm(f"Re-embed {todo} face(s) with {target}{removal}, and switch?", default=False, err=True):
        return True
    err("nothing was switched")
    return False
