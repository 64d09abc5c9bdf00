"""`faceatlas forget NAME` and `faceatlas export-person NAME -o ARCHIVE.zip`: a person's data, removed or handed over.

Both look in the gallery (``--gallery``, else $FACEATLAS_GALLERY, else the default gallery) and
the collection (``--db``, else $FACEATLAS_COLLECTION, else the default collection); a store named
by an option must exist, one found by default may be missing (the person may be in the other).
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

import typer

from faceatlas._cli_util import EXIT_BAD_INPUT, EXIT_OK, err, guard

CollectionDb = Annotated[
    str | None,
    typer.Option("--db", help="Collection: a file (SQLite) or a postgresql:// URL. Default $FACEATLAS_COLLECTION."),
]
GalleryDb = Annotated[
    str | None,
    typer.Option("--gallery", help="Gallery: a file (SQLite) or postgresql:// URL. Default $FACEATLAS_GALLERY."),
]


def _stores(stack: ExitStack, db: str | None, gallery_db: str | None) -> tuple[Any, Any, str, Any]:
    """(gallery or None, collection or None, the gallery's location, the collection's) for the options."""
    from faceatlas.collection.cli import collection_target
    from faceatlas.collection.store import CollectionStore
    from faceatlas.gallery.cli import _open as open_gallery
    from faceatlas.gallery.cli import gallery_location

    location = gallery_location(gallery_db)
    where = collection_target(db)
    gallery = None
    if gallery_db or "://" in location or Path(location).exists():
        gallery = stack.enter_context(open_gallery(gallery_db, create=False))
    collection = None
    if db is not None or isinstance(where, str) or where.exists():
        collection = stack.enter_context(CollectionStore.open(where, create=False))
    return gallery, collection, location, where


def forget_command(
    name: Annotated[str, typer.Argument(help="The person's name (case and surrounding spaces are ignored).")],
    db: CollectionDb = None,
    gallery_db: GalleryDb = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Forget a person everywhere faceatlas keeps them: the gallery person and their faces, the
    collection's clusters of that name with their faces, embeddings and corrections, their regions in
    the sidecars faceatlas wrote; then erase the deleted bytes from disk. Prints what went where, and
    what was kept (your photos, your own exports) and why. Cannot be undone."""

    def run() -> int:
        from faceatlas.collection.forget import forget_person, matching_clusters, matching_people

        with ExitStack() as stack:
            gallery, collection, location, where = _stores(stack, db, gallery_db)
            if gallery is None and collection is None:
                err(f"cannot forget {name!r}: no gallery at {location} and no collection at {where}")
                return EXIT_BAD_INPUT
            if not yes:
                people = matching_people(gallery, name) if gallery is not None else []
                clusters = matching_clusters(collection, name) if collection is not None else []
                if people or clusters:  # nobody: forget_person says so, as an error
                    found = [f"gallery person {p!r}" for p in people]
                    found += [f"cluster {c} ({n!r}) with its faces" for c, n in clusters]
                    if not typer.confirm(f"Forget {', '.join(found)}? This cannot be undone", default=False):
                        typer.echo("nothing was changed")
                        return EXIT_OK
            report = forget_person(name, gallery, collection)
        for line in report.lines():
            typer.echo(line)
        return EXIT_OK

    raise typer.Exit(guard(run))


def export_person_command(
    name: Annotated[str, typer.Argument(help="The person's name (case and surrounding spaces are ignored).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The archive to write (a .zip).")],
    db: CollectionDb = None,
    gallery_db: GalleryDb = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the archive if it exists.")] = False,
) -> None:
    """Write everything faceatlas stores about a person (faces, boxes, photos, embeddings, corrections,
    enrolled gallery faces) as one .zip archive, for access or portability requests (GDPR Art. 15/20)."""

    def run() -> int:
        from faceatlas.collection.export_person import export_person

        with ExitStack() as stack:
            gallery, collection, location, where = _stores(stack, db, gallery_db)
            if gallery is None and collection is None:
                err(f"cannot export {name!r}: no gallery at {location} and no collection at {where}")
                return EXIT_BAD_INPUT
            path = export_person(name, gallery, collection, output, overwrite=force)
        typer.echo(f"wrote {path}")
        return EXIT_OK

    raise typer.Exit(guard(run))
