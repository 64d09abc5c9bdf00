"""`faceatlas index PHOTO_DIR` and `faceatlas export --html OUT_DIR`: thin layers over the collection.

The collection is ``--db``, else ``$FACEATLAS_COLLECTION``, else ``collection.db`` in the user
data folder: a file path (SQLite), or a ``postgresql://`` URL (PostgreSQL + pgvector, the store
the machines of a Ray cluster share; docs/COLLECTION.md).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from faceatlas._cli_util import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_USAGE,
    DetectorOption,
    EmbedderOption,
    WorkersOption,
    analyzer_kwargs,
    check_rate,
    err,
    guard,
    output_folder,
    progress,
)

Db = Annotated[
    str | None,
    typer.Option(help="Collection: a file (SQLite) or a postgresql:// URL. Default $FACEATLAS_COLLECTION."),
]
_POSTGRES = ("postgresql://", "postgres://")  # store.POSTGRES_SCHEMES, without importing the store


def collection_location(db: str | os.PathLike[str] | None) -> Path:
    """The collection file: --db, else $FACEATLAS_COLLECTION, else the user's collection.db."""
    if db is not None:
        return Path(db)
    if os.environ.get("FACEATLAS_COLLECTION"):
        return Path(os.environ["FACEATLAS_COLLECTION"])
    import platformdirs

    return Path(platformdirs.user_data_dir("faceatlas")) / "collection.db"


def collection_target(db: str | None) -> str | Path:
    """What --db (else $FACEATLAS_COLLECTION) names: a postgresql:// URL as it is, else the file."""
    named = db if db is not None else os.environ.get("FACEATLAS_COLLECTION") or None
    if named is not None and named.startswith(_POSTGRES):
        return named
    return collection_location(db).expanduser()


def _open(db: str | None, create: bool):
    from faceatlas.collection.store import CollectionStore

    target = collection_target(db)
    if create and isinstance(target, Path):
        output_folder(target.parent, f"the folder of --db {target}", announce=False)
    return CollectionStore.open(target, create=create)


def index_command(
    photo_dir: Annotated[Path, typer.Argument(help="Folder of photos (searched recursively).", readable=False)],
    db: Db = None,
    workers: WorkersOption = None,
    detector: DetectorOption = None,
    embedder: EmbedderOption = None,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="auto|ADDRESS",
            help="Analyse the photos on a Ray cluster: auto ($RAY_ADDRESS, else a cluster on this machine, else a "
            "local one for this job) or host:6379 / ray://host:10001. --workers is then the number of actors "
            "(default: the cluster's CPUs). The photos must be at the same path on every node. See docs/RAY.md.",
        ),
    ] = None,
    video_fps: Annotated[
        float,
        typer.Option(
            "--video-fps", min=0.01, max=120, help="Frames analysed per second of a video (its faces are tracks)."
        ),
    ] = 2.0,  # collection.video.DEFAULT_VIDEO_FPS (not imported here: the CLI starts light)
    names_from: Annotated[
        list[str] | None,
        typer.Option(
            "--names-from",
            metavar="picasa[:CONTACTS_XML]|takeout:FOLDER",
            help="Also take people's names from Picasa's .picasa.ini files (with the profile's contacts.xml, if "
            "given), or from a Google Takeout folder's per-photo JSON. Repeatable. Face regions in the photos' XMP "
            "and .xmp sidecars are always read.",
        ),
    ] = None,
) -> None:
    """Index a folder of photos and videos: new and changed files are analysed, deleted ones forgotten.

    Safe to interrupt: a re-run resumes, and unchanged files are not even read. A video's faces are
    tracks, each stored once with the time it appears. Names in the photos' face regions (XMP, as
    digiKam, Lightroom, Picasa and Immich write them) become people, as your own corrections.
    """
    sources = [_names_source(value) for value in names_from or ()]

    def run() -> int:
        from faceatlas.collection.indexer import index_folder

        if not photo_dir.is_dir():  # before --db is opened: no new, empty collection for a mistyped folder
            err(f"{photo_dir} is not a folder; pass the folder of photos to index")
            return EXIT_BAD_INPUT
        for kind, where in sources:
            if where is not None and not (where.is_dir() if kind == "takeout" else where.is_file()):
                err(f"--names-from {kind}:{where}: no such {'folder' if kind == 'takeout' else 'file'}")
                return EXIT_BAD_INPUT
        with _open(db, create=True) as store, progress(2) as bar:
            analyzer = None  # None: the collection's own embedder (the default for a new one)
            if detector is not None or embedder is not None:
                import functools

                from faceatlas.models.catalog import embedder_for_tag
                from faceatlas.pipeline import FaceAnalyzer

                chosen = str(embedder_for_tag(store.model(), embedder, where="the collection"))
                # a picklable factory: with --workers each process builds the same analyzer
                analyzer = functools.partial(FaceAnalyzer, **analyzer_kwargs(detector, chosen))
            task = None

            def advance(done: int, total: int) -> None:
                nonlocal task
                if task is None:
                    task = bar.add_task("indexing", total=total)
                bar.update(task, completed=done)

            # workers=None: one process per core (none spawned for a few photos)
            if ray is None:
                report = index_folder(
                    photo_dir, store, analyzer, workers=workers, progress=advance, video_fps=video_fps
                )
            else:
                from faceatlas.collection.ray_index import index_folder_ray

                report = index_folder_ray(
                    photo_dir, store, analyzer, address=ray, workers=workers, progress=advance, log=err,
                    video_fps=video_fps,
                )  # fmt: skip
            typer.echo(str(report))
            for kind, where in sources:
                typer.echo(str(_import_names(store, photo_dir, kind, where)))
        return EXIT_BAD_INPUT if report.problems else EXIT_OK

    raise typer.Exit(guard(run))


def _names_source(value: str) -> tuple[str, Path | None]:
    """``--names-from``'s value: ("picasa", contacts.xml or None) or ("takeout", folder)."""
    kind, _, where = value.partition(":")
    if kind not in ("picasa", "takeout") or (kind == "takeout" and not where):
        raise typer.BadParameter(
            f"{value!r}: use picasa, picasa:/path/to/contacts.xml or takeout:/path/to/Takeout",
            param_hint="--names-from",
        )
    return kind, Path(where).expanduser() if where else None


def _import_names(store, folder: Path, kind: str, where: Path | None):
    from faceatlas.collection.names_import import import_picasa, import_takeout

    if kind == "takeout":
        assert where is not None
        return import_takeout(store, where, folder if not folder.resolve().is_relative_to(where.resolve()) else None)
    from faceatlas.models.catalog import analyzer_options
    from faceatlas.pipeline import FaceAnalyzer

    return import_picasa(store, folder, FaceAnalyzer(**analyzer_options(store.model(), where="the collection")), where)


def export_command(
    html: Annotated[
        Path | None,
        typer.Option(help="Write a contact sheet (index.html + thumbnails) to this folder.", readable=False),
    ] = None,
    db: Db = None,
    max_faces: Annotated[int, typer.Option(min=1, help="Faces shown per person.")] = 24,
    xmp: Annotated[
        bool,
        typer.Option(
            "--xmp",
            help="Write named faces as MWG face regions into each photo's .xmp sidecar (digiKam, Lightroom...).",
        ),
    ] = False,
    write_originals: Annotated[
        bool,
        typer.Option(
            "--write-originals", help="With --xmp: write into the JPEGs themselves (their XMP only), not sidecars."
        ),
    ] = False,
    include_private: Annotated[
        bool, typer.Option("--include-private", help="With --xmp: write the names of private people too.")
    ] = False,
) -> None:
    """Export the collection: --html writes a contact sheet (one row of faces per person); --xmp
    writes the names into the photos' sidecars, where other photo tools read them."""

    def run() -> int:
        from faceatlas.collection.html import export_html
        from faceatlas.collection.xmp_export import export_regions

        if html is None and not xmp:
            err("pass --html OUT_DIR (a contact sheet) or --xmp (names into the photos' sidecars), or both")
            return EXIT_USAGE
        if write_originals and not xmp:
            err("--write-originals goes with --xmp")
            return EXIT_USAGE
        code = EXIT_OK
        with _open(db, create=False) as store:
            if html is not None:
                output_folder(html, f"--html folder {html}")  # once the collection opened: none made for a wrong --db
                result = export_html(store, html, max_faces=max_faces)
                typer.echo(str(result))
                for missing in result.missing:
                    err(f"missing photo: {missing}")
            if xmp:
                written = export_regions(store, in_place=write_originals, include_private=include_private)
                typer.echo(str(written))
                code = EXIT_BAD_INPUT if any(why.startswith("nothing") for _, why in written.problems) else code
        return code

    raise typer.Exit(guard(run))


def cluster_command(
    db: Db = None,
    full: Annotated[
        bool, typer.Option("--full", help="Re-cluster every face (names and corrections still hold).")
    ] = False,
    fpir: Annotated[
        float,
        typer.Option(
            callback=check_rate, help="False-merge rate per decision, from which the merge threshold is derived."
        ),
    ] = 1e-2,
    embedder: Annotated[
        str | None,
        typer.Option(
            help="The path of the bring-your-own model the collection was indexed with (a collection records "
            "its name, not its file); registered models are found by name."
        ),
    ] = None,
) -> None:
    """Group the collection's faces by person: new faces join people or form new ones.

    The merge threshold comes from the calibrated thresholds of the embedder the collection was
    built with (your own calibration of it, if any: `faceatlas models calibrate`)."""

    def run() -> int:
        from faceatlas.clustering import FaceClusterer
        from faceatlas.collection.grouping import cluster_collection

        with _open(db, create=False) as store:
            report = cluster_collection(store, FaceClusterer(fpir=fpir), full=full, embedder=embedder)
        typer.echo(str(report))
        return EXIT_OK

    raise typer.Exit(guard(run))


def clusters_command(
    db: Db = None,
    limit: Annotated[int, typer.Option(min=0, help="Show at most this many (0 = all).")] = 0,
) -> None:
    """List the collection's people (clusters), largest first, with their face counts."""

    def run() -> int:
        with _open(db, create=False) as store:
            infos = store.clusters()
            unassigned = len(store.cluster_faces(-1))
            waiting = len(store.cluster_faces(None))
        shown = infos[: limit or None]
        if shown:
            typer.echo(f"{'id':>6}  {'faces':>6}  name")
        for info in shown:
            life = [f"born {info.born}"] if info.born else []
            life += [f"life stage of {info.person}"] if info.person is not None else []
            typer.echo(
                f"{info.id:>6}  {info.n_faces:>6}  {info.name or ''}" + (f"  ({', '.join(life)})" if life else "")
            )
        typer.echo(f"{len(infos)} people; {unassigned} faces unassigned, {waiting} not clustered yet")
        return EXIT_OK

    raise typer.Exit(guard(run))


def name_command(
    cluster: Annotated[int, typer.Argument(help="Cluster id (see `faceatlas people clusters`).")],
    name: Annotated[str, typer.Argument(help="Who it is.")],
    db: Db = None,
    gallery: Annotated[
        str | None,
        typer.Option(help="Also enrol the named people in this gallery (file or postgresql:// URL)."),
    ] = None,
) -> None:
    """Name a cluster; with --gallery its faces are enrolled for identification too."""

    def run() -> int:
        with _open(db, create=False) as store:
            if cluster not in {info.id for info in store.clusters()}:
                err(f"no cluster {cluster} in {store.location}")
                return EXIT_BAD_INPUT
            store.name_cluster(cluster, name)
            typer.echo(f"cluster {cluster} is {name!r}")
            if gallery is not None:
                from faceatlas.gallery.gallery import Gallery

                with Gallery.open(gallery) as opened:
                    typer.echo(str(store.enroll_named(opened)))
        return EXIT_OK

    raise typer.Exit(guard(run))


# -- corrections: each holds in every later clustering run (docs/CLUSTERING.md, constraints) ------

GalleryOption = Annotated[
    str | None,
    typer.Option(help="Keep this gallery (file or postgresql:// URL) in step with the named clusters."),
]


def _correct(db: str | None, gallery: str | None, fix) -> int:
    """Run one correction on the collection (and the gallery, if given); report its outcome."""

    def run() -> int:
        with _open(db, create=False) as store:
            if gallery is None:
                typer.echo(fix(store, None))
                return EXIT_OK
            from faceatlas.gallery.gallery import Gallery

            with Gallery.open(gallery) as opened:
                typer.echo(fix(store, opened))
        return EXIT_OK

    return guard(run)


def merge_clusters_command(
    source: Annotated[int, typer.Argument(help="The cluster whose faces move.")],
    into: Annotated[int, typer.Argument(help="The cluster that keeps its id and name.")],
    db: Db = None,
    gallery: GalleryOption = None,
) -> None:
    """Merge two clusters: the same person (later runs keep them together)."""
    from faceatlas.collection.corrections import merge_clusters

    def fix(store, opened) -> str:
        result = merge_clusters(store, source, into, opened)
        return f"cluster {source} merged into {into}: {len(result.faces)} faces"

    raise typer.Exit(_correct(db, gallery, fix))


def split_command(
    cluster: Annotated[int, typer.Argument(help="The cluster to split.")],
    faces: Annotated[list[int], typer.Argument(help="Face ids that become a new cluster.")],
    db: Db = None,
    gallery: GalleryOption = None,
) -> None:
    """Split faces off a cluster into a new one (later runs keep them apart)."""
    from faceatlas.collection.corrections import split_cluster

    def fix(store, opened) -> str:
        result = split_cluster(store, cluster, faces, opened)
        return f"{len(result.faces)} faces split off cluster {cluster} into new cluster {result.cluster.id}"

    raise typer.Exit(_correct(db, gallery, fix))


def not_this_person_command(
    face: Annotated[int, typer.Argument(help="A face id (see `faceatlas export --html`).")],
    db: Db = None,
    gallery: GalleryOption = None,
) -> None:
    """Take a face out of its cluster, for good ("not this person")."""
    from faceatlas.collection.corrections import not_this_person

    def fix(store, opened) -> str:
        result = not_this_person(store, face, opened)
        return f"face {face} left cluster {result.former_id}"

    raise typer.Exit(_correct(db, gallery, fix))


def born_command(
    cluster: Annotated[int, typer.Argument(help="Cluster id (see `faceatlas people clusters`).")],
    born: Annotated[
        str | None, typer.Argument(help="The person's birth date, YYYY-MM-DD (leave out with --clear).")
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Forget the birth date.")] = False,
    db: Db = None,
) -> None:
    """Record when a cluster's person was born: later clusterings keep out of them the faces of
    photos dated (EXIF) before that day, which look-alike older relatives' are."""
    if (born is None) == (not clear):
        err("give a birth date (YYYY-MM-DD), or --clear to forget it")
        raise typer.Exit(EXIT_BAD_INPUT)

    def fix(store, opened) -> str:
        stored = store.set_birth_date(cluster, None if clear else born)
        who = store.cluster(cluster)
        label = f"cluster {cluster}" + (f" ({who.name})" if who.name else "")
        return f"{label}: born {stored}" if stored else f"{label}: birth date forgotten"

    raise typer.Exit(_correct(db, None, fix))


def stage_command(
    stage: Annotated[int, typer.Argument(help="The cluster that is one stage of a person's life (e.g. as a child).")],
    person: Annotated[int | None, typer.Argument(help="A cluster of that person (leave out with --unlink).")] = None,
    unlink: Annotated[bool, typer.Option("--unlink", help="Make the stage a person of its own again.")] = False,
    db: Db = None,
    gallery: GalleryOption = None,
) -> None:
    """Link a cluster to a person as a life stage: one person, the stage kept as a template of its
    own (a child's face and the adult's are far apart to any embedder), never merged by later runs."""
    from faceatlas.collection.corrections import link_life_stage, unlink_life_stage

    if (person is None) == (not unlink):
        err("give the person's cluster id, or --unlink")
        raise typer.Exit(EXIT_BAD_INPUT)

    def fix(store, opened) -> str:
        if person is None:  # --unlink
            result = unlink_life_stage(store, stage, opened)
            return f"cluster {stage} is a person of its own again ({len(result.faces)} faces)"
        result = link_life_stage(store, stage, person, opened)
        info = result.cluster
        return f"cluster {stage} is a life stage of cluster {info.person} ({info.name or 'unnamed'}): {len(result.faces)} faces"

    raise typer.Exit(_correct(db, gallery, fix))


def private_command(
    name: Annotated[str, typer.Argument(help="The person: a gallery name, or a named cluster's.")],
    off: Annotated[bool, typer.Option("--off", help="Make the person no longer private.")] = False,
    db: Db = None,
    gallery: Annotated[
        str | None,
        typer.Option(help="The gallery (file or postgresql:// URL). Default $FACEATLAS_GALLERY, else the user's."),
    ] = None,
) -> None:
    """Mark a person private: the service shows them only to keys allowed to see private people
    (both the gallery person and the collection's cluster of that name, whichever exist)."""
    from contextlib import ExitStack

    from faceatlas.collection.privacy import set_person_private
    from faceatlas.gallery.cli import gallery_location

    def exists(where: str | Path) -> bool:
        return isinstance(where, str) and where.startswith(_POSTGRES) or Path(where).expanduser().exists()

    def run() -> int:
        collection, people = collection_target(db), gallery_location(gallery)
        if not exists(collection) and not exists(people):
            err(f"no collection ({collection}) and no gallery ({people}): nobody to mark private")
            return EXIT_BAD_INPUT
        with ExitStack() as stack:
            store = stack.enter_context(_open(db, create=False)) if exists(collection) else None
            opened = None
            if exists(people):
                from faceatlas.gallery.gallery import Gallery

                opened = stack.enter_context(Gallery.open(people, create=False))
            change = set_person_private(name, not off, opened, store)
        where = [f"cluster {c}" for c in change.clusters] + (["the gallery"] if change.gallery else [])
        state = "private" if change.private else "not private"
        typer.echo(f"{name!r} is {state} ({', '.join(where)})")
        return EXIT_OK

    raise typer.Exit(guard(run))
