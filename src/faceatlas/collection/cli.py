"""`faceatlas index PHOTO_DIR` and `faceatlas export --html OUT_DIR`: thin layers over the collection.

The collection is ``--db PATH``, else ``$FACEATLAS_COLLECTION``, else ``collection.db`` in the
user data folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from faceatlas._cli_util import EXIT_BAD_INPUT, EXIT_OK, EXIT_USAGE, err, guard, progress

Db = Annotated[Path | None, typer.Option(help="Collection file. Default $FACEATLAS_COLLECTION.")]


def collection_location(db: Path | None) -> Path:
    if db is not None:
        return db
    if os.environ.get("FACEATLAS_COLLECTION"):
        return Path(os.environ["FACEATLAS_COLLECTION"])
    import platformdirs

    return Path(platformdirs.user_data_dir("faceatlas")) / "collection.db"


def _open(db: Path | None, create: bool):
    from faceatlas.collection.store import CollectionStore

    location = collection_location(db).expanduser()
    if create:
        location.parent.mkdir(parents=True, exist_ok=True)
    return CollectionStore.open(location, create=create)


def index_command(
    photo_dir: Annotated[Path, typer.Argument(help="Folder of photos (searched recursively).")],
    db: Db = None,
    workers: Annotated[int, typer.Option(min=1, help="Processes analysing photos at once.")] = 1,
) -> None:
    """Index a folder of photos: new and changed files are analysed, deleted ones forgotten.

    Safe to interrupt: a re-run resumes, and unchanged files are not even read.
    """

    def run() -> int:
        from faceatlas.collection.indexer import index_folder

        with _open(db, create=True) as store, progress(2) as bar:
            task = None

            def advance(done: int, total: int) -> None:
                nonlocal task
                if task is None:
                    task = bar.add_task("indexing", total=total)
                bar.update(task, completed=done)

            report = index_folder(photo_dir, store, workers=workers, progress=advance)
        typer.echo(str(report))
        return EXIT_BAD_INPUT if report.problems else EXIT_OK

    raise typer.Exit(guard(run))


def export_command(
    html: Annotated[
        Path | None, typer.Option(help="Write a contact sheet (index.html + thumbnails) to this folder.")
    ] = None,
    db: Db = None,
    max_faces: Annotated[int, typer.Option(min=1, help="Faces shown per person.")] = 24,
) -> None:
    """Export the collection; --html writes a contact sheet: one row of faces per person."""

    def run() -> int:
        from faceatlas.collection.html import export_html

        if html is None:
            err("pass --html OUT_DIR (the only export format so far)")
            return EXIT_USAGE
        with _open(db, create=False) as store:
            result = export_html(store, html, max_faces=max_faces)
        typer.echo(str(result))
        for missing in result.missing:
            err(f"missing photo: {missing}")
        return EXIT_OK

    raise typer.Exit(guard(run))
