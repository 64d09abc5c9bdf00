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

from faceatlas._cli_util import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_USAGE,
    DetectorOption,
    EmbedderOption,
    WorkersOption,
    analyzer_kwargs,
    err,
    guard,
)

CHOOSE = "--face i"  # how a CLI user picks one face of several, for the skip reasons
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


def _open(
    db: str | None, create: bool = True, detector: str | None = None, embedder: str | None = None, **options: Any
):
    """The gallery; with --detector/--embedder, with those models (the embedder defaults to the
    one the gallery was built with, which a gallery picks by itself when neither is given)."""
    from faceatlas.gallery.gallery import Gallery

    location = gallery_location(db)
    if "://" not in location:
        Path(location).parent.mkdir(parents=True, exist_ok=True)
    if detector is None and embedder is None:
        return Gallery.open(location, create=create, **options)
    import functools

    from faceatlas.gallery.store import open_store
    from faceatlas.models.catalog import embedder_for_tag
    from faceatlas.pipeline import FaceAnalyzer

    store = open_store(location, create=create)
    try:
        chosen = embedder_for_tag(store.model(), embedder, where="the gallery")
        FaceAnalyzer(**analyzer_kwargs(detector, str(chosen)))  # an unknown model is refused now, not in a worker
        # a picklable factory: with workers each process builds the same analyzer
        analyzer = functools.partial(FaceAnalyzer, **analyzer_kwargs(detector, str(chosen)))
    except BaseException:
        store.close()
        raise
    return Gallery(store, analyzer, **options)


def enroll(
    images: Annotated[
        list[Path],
        typer.Argument(
            help="With --person: image files or folders. Without: folders holding a subfolder per person.",
            readable=False,  # an unreadable image is bad input (exit 3, reported), not a usage error
        ),
    ],
    person: Annotated[
        str | None,
        typer.Option(help="Who the images show. Without it, each subfolder of the folders given is a person."),
    ] = None,
    face: Annotated[
        int | None, typer.Option(help="In images with several faces, enrol this one (0 = largest).")
    ] = None,
    min_quality: Annotated[float, typer.Option(min=0.0, max=1.0, help="Skip faces below this quality.")] = 0.3,
    db: Db = None,
    detector: DetectorOption = None,
    embedder: EmbedderOption = None,
    workers: WorkersOption = None,
) -> None:
    """Enrol people; prints what was added and what was skipped (and why).

    With --person NAME every image given (and every image in the folders given) is NAME's.
    Without it, each argument is a folder with one subfolder per person, named after them
    (people/ada/*.jpg, people/bob/*.jpg). A folder of loose images needs --person, and a folder
    holding both images and subfolders is refused (exit 2). A person whose every image is refused
    is not created (exit 3, with the reasons).
    """

    def run() -> int:
        from faceatlas.errors import InvalidNameError
        from faceatlas.image import iter_image_files
        from faceatlas.names import validate_person_name

        if person is not None:
            name = validate_person_name(person)  # InvalidNameError: exit 3 with the rule broken
            files = [f for item in images for f in (iter_image_files(item) if item.is_dir() else [item])]
            jobs = {name: files}
        else:
            if not all(p.is_dir() for p in images):
                err("without --person every argument must be a folder holding a subfolder per person")
                return EXIT_USAGE
            folders: dict[Path, list[Path]] = {}
            for folder in images:
                try:
                    folders[folder] = _person_folders(folder)
                except _NotPeople as exc:
                    err(str(exc))
                    return EXIT_USAGE
            jobs, bad = {}, []
            for sub in (sub for subs in folders.values() for sub in subs):
                try:  # every folder's name is checked before anyone is enrolled
                    jobs.setdefault(validate_person_name(sub.name), []).extend(iter_image_files(sub))
                except InvalidNameError as exc:
                    bad.append(f"{sub}: the folder's name is not a person's name ({exc}); rename the folder")
            if bad:
                for line in bad:
                    err(line)
                return EXIT_BAD_INPUT
        sources = None if person is not None else list(images)
        return _enroll_jobs(db, jobs, face, min_quality, sources, detector, embedder, workers)

    raise typer.Exit(guard(run))


class _NotPeople(Exception):
    """A folder given without --person that is not a folder of person folders (a usage error)."""


def _person_folders(folder: Path) -> list[Path]:
    """The person subfolders of a folder of people (hidden entries ignored); _NotPeople says what to do when not."""
    from faceatlas.image import IMAGE_EXTENSIONS

    entries = sorted(e for e in folder.iterdir() if not e.name.startswith("."))
    subfolders = [e for e in entries if e.is_dir()]
    loose = [e for e in entries if e.is_file() and e.suffix.lower() in IMAGE_EXTENSIONS]
    if subfolders and loose:
        raise _NotPeople(
            f"{folder}/ holds both images ({len(loose)}) and subfolders ({len(subfolders)}): put each person's "
            f"images in a subfolder named after them ({folder}/NAME/), or enrol the loose images with --person NAME"
        )
    if loose:
        raise _NotPeople(
            f"{folder}/ holds images, not a subfolder per person: to enrol them as one person pass --person NAME; "
            f"for several people put each one's images in {folder}/NAME/"
        )
    if not subfolders:
        raise _NotPeople(f"{folder}/ holds no images and no subfolders: expected {folder}/NAME/ for each person")
    return subfolders


def _enroll_jobs(
    db: str | None,
    jobs: dict[str, list[Path]],
    face: int | None,
    min_quality: float,
    folders: list[Path] | None,
    detector: str | None = None,
    embedder: str | None = None,
    workers: int | None = None,
) -> int:
    """Enrol each person of ``jobs``; prints every report and what happened. ``folders``: the
    folders of people the names came from (None: --person)."""
    from faceatlas.errors import NothingEnrolledError

    enrolled: list[str] = []
    refused: list[str] = []
    unreadable = False
    with _open(db, min_quality=min_quality, detector=detector, embedder=embedder) as gallery:
        people = {name: [str(f) for f in files] for name, files in jobs.items()}
        for name, report in gallery.enroll_many(people, face=face, workers=workers):
            if isinstance(report, NothingEnrolledError):
                exc = report
                state = "unchanged" if exc.existed else "not created"
                why = "every image was passed over" if exc.skipped else "no images"
                err(f"{name}: nothing enrolled ({state}): {why}")
                for skip in exc.skipped:
                    err(f"  skipped {skip.source}: {skip.reason(CHOOSE)}")
                refused.append(name)
                continue
            typer.echo(report.describe(CHOOSE))
            enrolled.append(name)
            unreadable |= any(s.kind == "unreadable" for s in report.skips)
    if folders is None:
        typer.echo(f"enrolled {', '.join(enrolled) or 'nobody'} (--person)")
    else:
        where = ", ".join(f"{f}/" for f in folders)
        typer.echo(f"enrolled {len(enrolled)} people from subfolders of {where}: {', '.join(enrolled) or '-'}")
    if refused:
        err(f"not enrolled (every image refused): {', '.join(refused)}")
    # other skips (no face, low quality, already enrolled) of a person who got faces are answers, not bad input
    return EXIT_BAD_INPUT if unreadable or refused else EXIT_OK


def identify(
    images: Annotated[list[Path], typer.Argument(help="Image files or folders.", readable=False)],
    k: Annotated[int, typer.Option(min=1, help="Candidates per face.")] = 5,
    fpir: Annotated[float, typer.Option(help="Open-set operating point: false-positive identification rate.")] = 1e-2,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per image.")] = False,
    db: Db = None,
    detector: DetectorOption = None,
    embedder: EmbedderOption = None,
) -> None:
    """Who is in each image: every face, its candidates, and "unknown" where nobody passes."""

    def run() -> int:
        from faceatlas.errors import InvalidImageError
        from faceatlas.image import iter_image_files

        files = [f for item in images for f in (iter_image_files(item) if item.is_dir() else [item])]
        bad = 0
        with _open(db, create=False, detector=detector, embedder=embedder) as gallery:
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
                private = {"private": True} if p.private else {}  # said only of private people
                typer.echo(
                    json.dumps({"name": p.name, "faces": p.n_faces, **p.metadata, **private})
                    if as_json
                    else f"{p.name}\t{p.n_faces}" + ("\tprivate" if p.private else "")
                )
        return EXIT_OK

    raise typer.Exit(guard(run))


@people_app.command("rename")
def people_rename(old: str, new: str, db: Db = None) -> None:
    """Rename a person (the new name: Unicode text, no control characters or '/', at most 100 characters)."""

    def run() -> int:
        with _open(db, create=False) as gallery:
            stored = gallery.rename(old, new)  # NFC, stripped
        typer.echo(f"renamed {old!r} to {stored!r}")
        return EXIT_OK

    raise typer.Exit(guard(run))


@people_app.command("merge")
def people_merge(source: str, target: str, db: Db = None) -> None:
    """Move every face of SOURCE to TARGET and delete SOURCE."""
    raise typer.Exit(guard(lambda: _with(db, lambda g: g.merge(source, target), f"merged {source!r} into {target!r}")))


@people_app.command("delete")
def people_delete(
    name: str,
    db: Db = None,
    collection: Annotated[
        str | None,
        typer.Option(
            help="Also take the name off this collection's clusters (a file or postgresql:// URL). Default "
            "$FACEATLAS_COLLECTION, else the default collection if there is one."
        ),
    ] = None,
    compact: Annotated[
        bool,
        typer.Option(
            help="PostgreSQL: rewrite the faces table now (VACUUM FULL: slow for a large gallery, searches wait) "
            "so no deleted face is left on disk. --no-compact leaves that to a later compaction; names are erased "
            "either way."
        ),
    ] = True,
) -> None:
    """Delete a person from the gallery (every face and embedding) and from the names of the collection's
    clusters (their faces stay clustered). Prints what went where, and what was kept and why. To remove
    the collection's faces of the person too, everywhere: `faceatlas forget NAME`."""

    def run() -> int:
        from contextlib import ExitStack

        from faceatlas.collection.cli import collection_target
        from faceatlas.collection.forget import forget_person
        from faceatlas.collection.store import CollectionStore

        # a store named by --db / --collection must be there; one found by default (or $FACEATLAS_…) may be
        # missing: the name may be stored in the other one only (the output says where nothing was found)
        location = gallery_location(db)
        where = collection_target(collection)  # a PostgreSQL URL as it is, else the file
        with ExitStack() as stack:
            gallery = None
            if db or "://" in location or Path(location).exists():
                gallery = stack.enter_context(_open(db, create=False))
            store = None
            if collection is not None or isinstance(where, str) or where.exists():
                store = stack.enter_context(CollectionStore.open(where, create=False))
            if gallery is None and store is None:
                err(f"cannot delete {name!r}: no gallery at {location} and no collection at {where}")
                return EXIT_BAD_INPUT
            report = forget_person(name, gallery, store, full=compact, keep_faces=True)  # `faceatlas forget`: all
        for line in report.lines():
            typer.echo(line)
        if gallery is None:
            typer.echo(f"no gallery at {location}: nothing to delete there")
        if store is None:
            typer.echo(f"no collection at {where}: no cluster names to clear")
        return EXIT_OK

    raise typer.Exit(guard(run))


def _with(db: str | None, action, message: str) -> int:
    with _open(db, create=False) as gallery:
        action(gallery)
    typer.echo(message)
    return EXIT_OK
