"""The `faceatlas` command: a thin layer over the Python API.

Exit codes scripts can rely on (every error is mapped in one place: faceatlas._cli_util):
  0    success (verify: the same person)
  1    verify: not the same person
  2    usage error (bad option or argument)
  3    bad input: a file could not be read or written, or verify found no face (other files still done)
  4    a model could not be loaded or run
  70   internal error (a bug: please report it; FACEATLAS_DEBUG=1 prints the traceback)
  130  interrupted (Ctrl-C); 141: the output pipe was closed early
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from faceatlas._cli_util import (
    EXIT_BAD_INPUT,
    EXIT_NO_MATCH,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    DetectorOption,
    EmbedderOption,
    FaceAtlasGroup,
    WorkersOption,
    analyzer_kwargs,
    build_analyzer,
    check_rate,
    output_file,
    output_folder,
)
from faceatlas._cli_util import (
    err as _err,
)
from faceatlas._cli_util import (
    guard as _guard,
)
from faceatlas._cli_util import (
    progress as _progress,
)
from faceatlas._reembed_cli import reembed_command
from faceatlas.collection.blur_cli import blur_command
from faceatlas.collection.cli import (
    born_command,
    cluster_command,
    clusters_command,
    export_command,
    index_command,
    merge_clusters_command,
    name_command,
    not_this_person_command,
    private_command,
    split_command,
    stage_command,
)
from faceatlas.collection.faces_cli import faces_app
from faceatlas.collection.privacy_cli import export_person_command, forget_command
from faceatlas.collection.review_cli import review_app
from faceatlas.collection.search_cli import search_command
from faceatlas.eval.cli import eval_app
from faceatlas.gallery.cli import enroll as enroll_command
from faceatlas.gallery.cli import identify as identify_command
from faceatlas.gallery.cli import people_app
from faceatlas.models.cli import models_app
from faceatlas.server.cli import openapi_command, serve_command
from faceatlas.server.keys_cli import app as keys_app
from faceatlas.video.cli import video_command

app = typer.Typer(
    cls=FaceAtlasGroup,  # maps every error of every subcommand to a message and an exit code
    add_completion=False,
    no_args_is_help=True,
    help="Offline face detection, embedding and verification.",
)
app.add_typer(eval_app, name="eval")
app.add_typer(people_app, name="people")
app.add_typer(keys_app, name="keys", help="API keys for `faceatlas serve`.")
app.add_typer(models_app, name="models")
app.add_typer(faces_app, name="faces")
app.add_typer(review_app, name="review")
app.command("serve")(serve_command)
app.command("openapi")(openapi_command)
app.command("enroll")(enroll_command)
app.command("identify")(identify_command)
app.command("index")(index_command)
app.command("export")(export_command)
app.command("cluster")(cluster_command)
app.command("reembed")(reembed_command)
app.command("video")(video_command)
app.command("blur")(blur_command)
app.command("search")(search_command)
app.command("forget")(forget_command)
app.command("export-person")(export_person_command)
people_app.command("clusters")(clusters_command)
people_app.command("name")(name_command)
people_app.command("merge-clusters")(merge_clusters_command)
people_app.command("split")(split_command)
people_app.command("not-this-person")(not_this_person_command)
people_app.command("private")(private_command)
people_app.command("born")(born_command)
people_app.command("stage")(stage_command)


def _expand(inputs: list[Path], unlisted: list[OSError]) -> Iterator[Path]:
    """The image files named and those in the folders named; folders that cannot be listed go to ``unlisted``."""
    from faceatlas.image import iter_image_files

    for item in inputs:
        if item.is_dir():
            yield from iter_image_files(item, on_error=unlisted.append)
        else:
            yield item  # a missing file is reported when it is read


def _run_images(
    inputs: list[Path],
    min_face_size: int,
    embed: bool,
    draw: Path | None,
    detector: str | None = None,
    embedder: str | None = None,
    workers: int | None = None,
) -> int:
    from faceatlas._image_job import ImageTask, run_images

    unlisted: list[OSError] = []
    paths = list(_expand(inputs, unlisted))
    for exc in unlisted:
        _err(f"skipped folder {exc.filename}: {exc.strerror or exc}")
    if not paths:
        _err("no images found in the given paths")
        return EXIT_BAD_INPUT
    target = None if draw is None else _draw_target(draw, len(paths), "--draw")  # checked before the models load
    options = {**analyzer_kwargs(detector, embedder), "min_face_size": min_face_size}
    build_analyzer(detector, embedder, min_face_size=min_face_size)  # a model name unknown: refused before any work
    tasks = [ImageTask(path, None if target is None else target(path)) for path in paths]
    bad = len(unlisted)
    with _progress(len(paths)) as progress:
        task = progress.add_task("faces", total=len(paths))
        for record in run_images(tasks, embed, options, workers):
            if "error" in record:
                bad += 1
                _err(f"skipped {record['path']}: {record['error']}")
            typer.echo(json.dumps(record))
            progress.advance(task)
    return EXIT_BAD_INPUT if bad else EXIT_OK


def _draw_target(draw: Path, n_images: int, option: str) -> Callable[[Path], Path]:
    """Where each annotated image goes. A path ending in an image suffix (out.png) is one file, for
    one image, in a folder that must exist; any other path is a folder, created (and said so) if
    missing, that gets NAME.faces.png per image."""
    from faceatlas.image import IMAGE_EXTENSIONS

    if draw.suffix.lower() in IMAGE_EXTENSIONS:
        if n_images != 1:
            raise CommandError(
                f"{option} {draw} names one image file, but {n_images} images were given; pass a folder", EXIT_USAGE
            )
        output_file(draw, option)
        return lambda path: draw
    output_folder(draw, f"{option} folder {draw}")
    return lambda path: draw / f"{path.stem}.faces.png"


MinFace = Annotated[int, typer.Option(min=8, help="Smallest face to find, in pixels (smaller is slower).")]


@app.command()
def detect(
    images: Annotated[list[Path], typer.Argument(help="Image files or folders.", readable=False)],
    draw: Annotated[
        Path | None,
        typer.Option(
            help="Write annotated images: a file such as out.png (one image; its folder must exist), "
            "else a folder (created if missing) of NAME.faces.png.",
            readable=False,
        ),
    ] = None,
    min_face_size: MinFace = 20,
    detector: DetectorOption = None,
    embedder: EmbedderOption = None,
    workers: WorkersOption = None,
) -> None:
    """Find faces; print one JSON line per image (box, score, landmarks, pose, quality), in input order.

    The quality is measured on the face aligned for the embedder (--embedder), which is not run."""
    raise typer.Exit(_guard(lambda: _run_images(images, min_face_size, False, draw, detector, embedder, workers)))


@app.command()
def embed(
    images: Annotated[list[Path], typer.Argument(help="Image files or folders.", readable=False)],
    min_face_size: MinFace = 20,
    detector: DetectorOption = None,
    embedder: EmbedderOption = None,
    workers: WorkersOption = None,
) -> None:
    """Find and embed faces; print one JSON line per image with each face's embedding, in input order."""
    raise typer.Exit(_guard(lambda: _run_images(images, min_face_size, True, None, detector, embedder, workers)))


def _far_outside(far: float, card: Any) -> str | None:
    """Why --far cannot be used with ``card`` (outside its calibrated rates), or None."""
    calibrated = sorted(t.far for t in card.thresholds)
    if calibrated and not calibrated[0] <= far <= calibrated[-1]:
        return (
            f"--far {far:g} is outside the rates calibrated for {card.name} ({calibrated[0]:g} to {calibrated[-1]:g}); "
            "pass a rate in that range, or --threshold"
        )
    return None


def _verify_side(analyzer: Any, path: Path, name: str) -> Any:
    """The embedding of the largest face in ``path`` (NoFaceError, exit 3, if there is none)."""
    from faceatlas.errors import NoFaceError
    from faceatlas.pipeline import primary_face

    face = primary_face(analyzer.analyze(path))
    if face is None:
        raise NoFaceError(f"no face was found in {name} ({path}); verify needs one face per side")
    return face.embedding


@app.command()
def verify(
    a: Annotated[Path, typer.Argument(help="First image (its largest face is used).", readable=False)],
    b: Annotated[Path, typer.Argument(help="Second image.", readable=False)],
    far: Annotated[
        float | None, typer.Option(callback=check_rate, help="Target false-accept rate (default 1e-3).")
    ] = None,
    threshold: Annotated[
        float | None, typer.Option(min=-1.0, max=1.0, help="Cosine threshold instead of a FAR.")
    ] = None,
    detector: DetectorOption = None,
    embedder: EmbedderOption = None,
) -> None:
    """Are A and B the same person? Prints JSON; exit 0 if yes, 1 if no, 3 if a face is missing.

    The threshold is the embedder's for --far: your own calibration (`faceatlas models calibrate`),
    else the one its card ships with."""

    def run() -> int:
        from faceatlas.models.calibration import with_user_calibration
        from faceatlas.verification import cosine_similarity, decide

        if far is not None and threshold is not None:
            _err("pass --far or --threshold, not both")
            return EXIT_USAGE
        analyzer = build_analyzer(detector, embedder)  # the model cards only: nothing loads yet
        card = with_user_calibration(analyzer.embedder.card)
        outside = None if far is None else _far_outside(far, card)
        if outside is not None:  # a usage error before any image is read
            _err(outside)
            return EXIT_USAGE
        similarity = cosine_similarity(_verify_side(analyzer, a, "a"), _verify_side(analyzer, b, "b"))
        match = decide(similarity, card, far=far, threshold=threshold)
        typer.echo(
            json.dumps(
                {
                    "same_person": match.is_match,
                    "similarity": round(match.similarity, 4),
                    "threshold": round(match.threshold, 4),
                    "far": match.far,
                }
            )
        )
        return EXIT_OK if match.is_match else EXIT_NO_MATCH

    raise typer.Exit(_guard(run))


@app.command()
def demo(
    out: Annotated[
        Path,
        typer.Option(
            help="Where to write the annotated image: a file (its folder must exist) or a folder.", readable=False
        ),
    ] = Path("faceatlas-demo.png"),
) -> None:
    """Run the whole pipeline on a photo that ships with matplotlib (Grace Hopper); writes
    faceatlas-demo.png in the current folder unless --out says where."""

    def run() -> int:
        import matplotlib.cbook

        import faceatlas
        from faceatlas._image_job import draw, face_json

        path = Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
        target = _draw_target(out, 1, "--out")(path)  # checked before the models load
        image = faceatlas.load_image(path)
        faces = faceatlas.analyze(image)
        draw(image, faces, target)
        typer.echo(f"{path}: {len(faces)} face(s); annotated image written to {target.absolute()}")
        for face in faces:
            typer.echo(json.dumps(face_json(face)))
        if faces:
            mirrored = image[:, ::-1].copy()  # the same person, seen in a mirror
            match = faceatlas.verify(faces[0], mirrored)
            typer.echo(
                f"verify(photo, mirrored photo): same person = {match.is_match}, "
                f"similarity {match.similarity:.3f} (threshold {match.threshold:.3f} at FAR {match.far:g})"
            )
        return EXIT_OK

    raise typer.Exit(_guard(run))


if __name__ == "__main__":  # pragma: no cover
    app()
