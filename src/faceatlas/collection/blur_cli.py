"""`faceatlas blur PHOTO|FOLDER --except NAMES -o OUT_DIR`: copies for sharing, other faces blurred.

A thin layer over ``faceatlas.collection.blur``: the collection is ``--db`` (else
$FACEATLAS_COLLECTION, else the user's), used when it exists; the gallery is ``--gallery`` (else
$FACEATLAS_GALLERY, else the user's), used when it exists, for photos the collection does not hold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from faceatlas._cli_util import EXIT_BAD_INPUT, EXIT_OK, err, guard


def blur_command(
    inputs: Annotated[list[Path], typer.Argument(help="Photos or folders (searched recursively).", readable=False)],
    out_dir: Annotated[Path, typer.Option("-o", "--out", help="Folder for the copies (never the photos' own).")],
    except_: Annotated[
        list[str],
        typer.Option("--except", help="People whose faces stay as they are (repeat, or separate with commas)."),
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
    db: Annotated[
        str | None, typer.Option(help="Collection (file or postgresql:// URL). Default $FACEATLAS_COLLECTION.")
    ] = None,
    gallery: Annotated[
        str | None, typer.Option(help="Gallery for photos not in the collection. Default $FACEATLAS_GALLERY.")
    ] = None,
    fpir: Annotated[
        float | None, typer.Option(min=1e-9, max=0.5, help="Identification's false-positive rate (gallery's default).")
    ] = None,
    keep_metadata: Annotated[
        bool,
        typer.Option("--keep-metadata", help="Keep camera, exposure and capture time (never GPS, names or XMP)."),
    ] = False,
) -> None:
    """Write copies of photos with every face blurred except those of the people named (for sharing).

    A face is kept only when it is surely one of them: a face of their named cluster in the
    collection, or identified as them in the gallery; every other face is blurred."""
    from contextlib import ExitStack

    from faceatlas.collection.blur import blur_faces
    from faceatlas.collection.cli import _POSTGRES, _open, collection_target
    from faceatlas.gallery.cli import gallery_location

    names = [name.strip() for given in except_ for name in given.split(",") if name.strip()]

    def exists(where: str | Path) -> bool:
        return isinstance(where, str) and where.startswith(_POSTGRES) or Path(where).expanduser().exists()

    def run() -> int:
        with ExitStack() as stack:
            collection_at = collection_target(db)
            store = stack.enter_context(_open(db, create=False)) if exists(collection_at) else None
            gallery_at = gallery_location(gallery)
            opened = None
            if gallery is not None or exists(gallery_at):
                from faceatlas.gallery.gallery import Gallery

                opened = stack.enter_context(Gallery.open(gallery_at, create=False))

            def told(done) -> None:
                if isinstance(done, tuple):
                    err(f"skipped {done[0]}: {done[1]}")
                else:
                    kept = f", kept {', '.join(done.kept)}" if done.kept else ""
                    typer.echo(f"{done.output}\t{done.blurred} blurred{kept}")

            report = blur_faces(
                inputs, out_dir, names, collection=store, gallery=opened, fpir=fpir,
                keep_metadata=keep_metadata, on_photo=told,
            )  # fmt: skip
        err(str(report))
        return EXIT_BAD_INPUT if report.skipped else EXIT_OK

    raise typer.Exit(guard(run))
