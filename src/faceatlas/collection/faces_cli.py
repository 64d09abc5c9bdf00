"""`faceatlas faces add|remove|list`: faces by hand, thin over ``faceatlas.collection.manual``."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer

from faceatlas._cli_util import EXIT_OK, guard
from faceatlas.collection.cli import Db, GalleryOption, _open

faces_app = typer.Typer(no_args_is_help=True, help="Faces by hand: draw one the detector missed, remove a false one.")


def _gallery(location: str | None) -> AbstractContextManager[Any]:
    """The gallery to keep in step (opened), or None."""
    if location is None:
        return nullcontext(None)
    from faceatlas.gallery.gallery import Gallery

    return Gallery.open(location)


def _box(text: str) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not x1,y1,x2,y2 (four numbers, pixels)") from None
    if len(values) != 4:
        raise typer.BadParameter(f"{text!r} is not x1,y1,x2,y2 (four numbers, pixels)")
    return values[0], values[1], values[2], values[3]


@faces_app.command("add")
def add_command(
    photo: Annotated[Path, typer.Argument(help="A photo of the collection (its file).", readable=False)],
    box: Annotated[
        str, typer.Option(help="x1,y1,x2,y2: the face's box in pixels of the photo as shown (EXIF-rotated).")
    ],
    person: Annotated[str | None, typer.Option(help="Who it is: put in that person's cluster.")] = None,
    db: Db = None,
    gallery: GalleryOption = None,
) -> None:
    """Add a face the detector missed, by its box; it is kept in every later index run."""
    corners = _box(box)

    def run() -> int:
        from faceatlas.collection.manual import add_face
        from faceatlas.models.catalog import analyzer_options
        from faceatlas.pipeline import FaceAnalyzer

        with _open(db, create=False) as store:
            analyzer = FaceAnalyzer(**analyzer_options(store.model(), where="the collection"))
            with _gallery(gallery) as opened:
                face = add_face(store, photo, corners, analyzer, person=person, gallery=opened)
            name = store.cluster(face.cluster).name if face.cluster is not None and face.cluster >= 0 else None
        found = "landmarks found in the box" if face.score > 0 else "no face detected there: aligned from the box"
        typer.echo(f"face {face.id} added to {face.path} ({found})" + (f", as {name!r}" if name else ""))
        return EXIT_OK

    raise typer.Exit(guard(run))


@faces_app.command("remove")
def remove_command(
    face_id: Annotated[int, typer.Argument(help="The face's id (see `faceatlas faces list PHOTO`).")],
    db: Db = None,
    gallery: GalleryOption = None,
) -> None:
    """Remove a face (a false detection): later index runs do not bring it back."""

    def run() -> int:
        from faceatlas.collection.manual import remove_face

        with _open(db, create=False) as store, _gallery(gallery) as opened:
            face = remove_face(store, face_id, opened)
        typer.echo(f"face {face.id} removed from {face.path}")
        return EXIT_OK

    raise typer.Exit(guard(run))


@faces_app.command("list")
def list_command(
    photo: Annotated[Path, typer.Argument(help="A photo of the collection (its file).", readable=False)],
    db: Db = None,
) -> None:
    """The faces of one photo: id, box, origin (detected, manual, region), cluster and name."""

    def run() -> int:
        from faceatlas.collection.manual import find_photo

        with _open(db, create=False) as store:
            record = find_photo(store, photo)
            names = {c.id: c.name for c in store.clusters()}
            faces = store.faces_of_photo(record.id)
        typer.echo(f"{'id':>6}  {'box':<25}  {'origin':<8}  cluster  name")
        for face in faces:
            box = ",".join(f"{v:.0f}" for v in face.box)
            cluster = "" if face.cluster is None else str(face.cluster)
            name = names.get(face.cluster) or "" if face.cluster is not None else ""
            typer.echo(f"{face.id:>6}  {box:<25}  {face.origin:<8}  {cluster:>7}  {name}")
        return EXIT_OK

    raise typer.Exit(guard(run))
