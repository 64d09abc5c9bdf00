"""`faceatlas enroll`, `faceatlas identify` and `faceatlas people …`: thin layers over Gallery.

The gallery is ``--db`` (a file path for SQLite, or a ``postgresql://`` URL), else
``$FACEATLAS_GALLERY``, else ``gallery.db`` in the user data folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from faceatlas._cli_util import EXIT_BAD_INPUT, EXIT_OK, EXIT_USAGE, err, guard

people_app = typer.Typer(no_args_is_help=True, help="List, rename, merge and delete enrolled people.")

Db = Annotated[
    str | None, typer.Option(help="Gallery: a file (SQLite) or postgresql:// URL. Default $FACEATLAS_GALLERY.")
]


def gallery_location(db: str | None) -> str:
    if db:
        return db
    if os.environ.get("FACEATLAS_GALLERY"):
        return os.environ["FACEATLAS_GALLERY"]
    import platformdirs

    return str(Path(platformdirs.user_data_dir("faceatlas")) / "gallery.db")


def _open(db: str | None, create: bool = True, **options: Any):
    from faceatlas.gallery.gallery import Gallery

    location = gallery_location(db)
    if "://" not in location:
        Path(location).parent.mkdir(parents=True, exist_ok=True)
    return Gallery.open(location, create=create, **options)


def enroll(
    images: Annotated[
        list[Path], typer.Argument(help="Image files, or folders (with --person) of one person's images.")
    ],
    person: Annotated[
        str | None, typer.Option(help="Who the images show. Without it, each folder is a person.")
    ] = None,
    face: Annotated[
        int | None, typer.Option(help="In images with several faces, enrol this one (0 = largest).")
    ] = None,
    min_quality: Annotated[float, typer.Option(min=0.0, max=1.0, help="Skip faces below this quality.")] = 0.3,
    db: Db = None,
) -> None:
    """Enrol people; prints what was added and what was skipped (and why)."""

    def run() -> int:
        from faceatlas.image import iter_image_files

        if person is None and not all(p.is_dir() for p in images):
            err("without --person every argument must be a folder named after its person")
            return EXIT_USAGE
        jobs: dict[str, list[Path]] = {}
        for item in images:
            name = person or item.name
            jobs.setdefault(name, []).extend(iter_image_files(item) if item.is_dir() else [item])
        unreadable = 0
        with _open(db, min_quality=min_quality) as gallery:
            for name, files in jobs.items():
                report = gallery.enroll(name, [str(f) for f in files], face=face)
                typer.echo(str(report))
                unreadable += sum(why.startswith("unreadable") for _, why in report.skipped)
        # other skips (no face, low quality, already enrolled) are answers, not bad input
        return EXIT_BAD_INPUT if unreadable else EXIT_OK

    raise typer.Exit(guard(run))


def identify(
    images: Annotated[list[Path], typer.Argument(help="Image files or folders.")],
    k: Annotated[int, typer.Option(min=1, help="Candidates per face.")] = 5,
    fpir: Annotated[float, typer.Option(help="Open-set operating point: false-positive identification rate.")] = 1e-2,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per image.")] = False,
    db: Db = None,
) -> None:
    """Who is in each image: every face, its candidates, and "unknown" where nobody passes."""

    def run() -> int:
        from faceatlas.errors import InvalidImageError
        from faceatlas.image import iter_image_files

        files = [f for item in images for f in (iter_image_files(item) if item.is_dir() else [item])]
        bad = 0
        with _open(db, create=False) as gallery:
            for file in files:
                try:
                    results = gallery.identify(str(file), k=k, fpir=fpir)
                except InvalidImageError as exc:
                    err(f"{file}: {exc}")
                    bad += 1
                    continue
                _print_results(file, results, as_json)
        return EXIT_BAD_INPUT if bad else EXIT_OK

    raise typer.Exit(guard(run))


def _print_results(file: Path, results: list, as_json: bool) -> None:
    if as_json:
        faces = [
            {
                "box": [round(v, 1) for v in r.face.box.as_xyxy()] if r.face else None,
                "person": r.person,
                "score": None if r.score is None else round(r.score, 4),
                "threshold": round(r.threshold, 4),
                "candidates": [{"person": c.person, "score": round(c.score, 4)} for c in r.candidates],
            }
            for r in results
        ]
        typer.echo(json.dumps({"path": str(file), "faces": faces}))
        return
    if not results:
        typer.echo(f"{file}: no face")
    for i, r in enumerate(results):
        who = r.person or "unknown"
        best = ", ".join(f"{c.person} {c.score:.3f}" for c in r.candidates[:3])
        typer.echo(f"{file} face {i}: {who}  (threshold {r.threshold:.3f}; {best})")


@people_app.command("list")
def people_list(db: Db = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Everyone enrolled, with their number of faces."""

    def run() -> int:
        with _open(db, create=False) as gallery:
            for p in gallery.people():
                typer.echo(
                    json.dumps({"name": p.name, "faces": p.n_faces, **p.metadata})
                    if as_json
                    else f"{p.name}\t{p.n_faces}"
                )
        return EXIT_OK

    raise typer.Exit(guard(run))


@people_app.command("rename")
def people_rename(old: str, new: str, db: Db = None) -> None:
    """Rename a person."""
    raise typer.Exit(guard(lambda: _with(db, lambda g: g.rename(old, new), f"renamed {old!r} to {new!r}")))


@people_app.command("merge")
def people_merge(source: str, target: str, db: Db = None) -> None:
    """Move every face of SOURCE to TARGET and delete SOURCE."""
    raise typer.Exit(guard(lambda: _with(db, lambda g: g.merge(source, target), f"merged {source!r} into {target!r}")))


@people_app.command("delete")
def people_delete(name: str, db: Db = None) -> None:
    """Delete a person and every face and embedding of theirs."""
    raise typer.Exit(guard(lambda: _with(db, lambda g: g.delete_person(name), f"deleted {name!r}")))


def _with(db: str | None, action, message: str) -> int:
    with _open(db, create=False) as gallery:
        action(gallery)
    typer.echo(message)
    return EXIT_OK
