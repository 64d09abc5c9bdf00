"""`faceatlas eval <protocol>`: each command reads a dataset, runs the protocol, writes a folder.

Every command writes ``result.json``, ``report.txt`` (also printed) and PNG plots into ``--out``,
and caches each image's faces per (system, file content) so a re-run — or a run resumed after
an interruption — only computes what is missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer

from faceatlas._cli_util import EXIT_OK, EXIT_USAGE, check_rate, err, guard, output_folder, progress
from faceatlas.detectors import DEFAULT_DETECTOR
from faceatlas.embedders import DEFAULT_EMBEDDER

eval_app = typer.Typer(no_args_is_help=True, help="Run standard evaluation protocols (results, tables and plots).")

Out = Annotated[Path, typer.Option(help="Folder for result.json, report.txt and the plots.", readable=False)]
Detector = Annotated[
    str, typer.Option(help="A detector name (see `faceatlas models list`), or a path to an .onnx file or model pack.")
]
Embedder = Annotated[
    str, typer.Option(help="An embedder name (see `faceatlas models list`), or a path to an .onnx file or model pack.")
]
Flip = Annotated[bool, typer.Option(help="Average each embedding with its mirror image's.")]
MinFace = Annotated[int, typer.Option(min=8, help="Smallest face to find, in pixels.")]
Cache = Annotated[bool, typer.Option(help="Reuse and store results per (system, image content).")]
CacheFile = Annotated[
    Path | None, typer.Option(help="The results cache (default: the user cache dir).", readable=False)
]
Batch = Annotated[int, typer.Option(min=1, help="Images per batch (and per cache commit).")]
Workers = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Processes computing faces. Default: one per core, within a memory budget ($FACEATLAS_MEMORY_BUDGET, "
        "else half the memory free at the start), and one for small jobs.",
    ),
]


class _System:
    """The options every protocol shares, turned into a FaceRunner with a progress bar."""

    def __init__(
        self,
        detector: str,
        embedder: str,
        flip: bool,
        min_face_size: int,
        cache: bool,
        cache_file: Path | None,
        batch_size: int,
        workers: int | None = None,
        detector_options: Mapping[str, object] | None = None,
    ) -> None:
        self.options = (detector, embedder, flip, min_face_size)
        self.detector_options = dict(detector_options or {})
        self.cache: bool | Path | None = cache_file if cache and cache_file else (None if cache else False)
        self.batch_size = batch_size
        self.workers = workers

    def run(self, body, total: int):  # body(runner) -> result, with a live progress bar
        from faceatlas.eval.source import AnalyzerSource, FaceRunner
        from faceatlas.parallel import resolve_workers

        detector, embedder, flip, min_face_size = self.options
        source = AnalyzerSource(
            detector=detector,
            embedder=embedder,
            flip=flip,
            min_face_size=min_face_size,
            detector_options=self.detector_options,
        )
        with progress(total) as bar:
            task = bar.add_task("images", total=total)
            runner = FaceRunner(
                source,
                cache=self.cache,
                batch_size=self.batch_size,
                progress=lambda n: bar.advance(task, n),
                workers=resolve_workers(self.workers, total),
            )
            return body(runner), runner


def _takes(detector: str, option: str) -> bool:
    """Whether ``detector`` (a name or path) accepts ``option``: creating one loads no model."""
    from faceatlas.detectors import create_detector

    try:
        create_detector(detector, **{option: 0.5})
    except TypeError:
        return False
    return True


def _finish(out: Path, written: list[Path], notes: list[str]) -> int:
    text = (out / "report.txt").read_text().rstrip()
    typer.echo(text)
    for note in dict.fromkeys(notes):
        if note not in text:  # some tables already list their notes
            err(f"note: {note}")
    typer.echo("written: " + ", ".join(str(p) for p in written))
    return EXIT_OK


@eval_app.command("pairs")
def pairs_command(
    pairs: Annotated[
        Path,
        typer.Argument(
            help="LFW pairs.txt (View 1 or 2), a CSV path_a,path_b,same[,fold[,group]], or a CFP root folder.",
            readable=False,
        ),
    ],
    images: Annotated[
        Path | None, typer.Option(help="Image root for an LFW pairs file (Name/Name_0001.jpg).", readable=False)
    ] = None,
    cfp_protocol: Annotated[str, typer.Option(help="For a CFP folder: FF or FP.")] = "FP",
    out: Out = Path("eval-pairs"),
    detector: Detector = DEFAULT_DETECTOR,
    embedder: Embedder = DEFAULT_EMBEDDER,
    flip: Flip = False,
    min_face_size: MinFace = 20,
    cache: Cache = True,
    cache_file: CacheFile = None,
    batch_size: Batch = 16,
    workers: Workers = None,
) -> None:
    """1:1 verification: 10-fold accuracy, AUC, EER, TAR@FAR; ROC, DET and score histograms."""

    def run() -> int:
        from faceatlas.eval import protocols

        pair_list = _read_pairs(pairs, images, cfp_protocol)
        if pair_list is None:
            return EXIT_USAGE
        output_folder(out, f"--out folder {out}")  # before the models load
        system = _System(detector, embedder, flip, min_face_size, cache, cache_file, batch_size, workers)
        n_images = len({p.a for p in pair_list} | {p.b for p in pair_list})
        (written, notes), _ = system.run(lambda r: protocols.pairs(pair_list, r, out, dataset=str(pairs)), n_images)
        return _finish(out, written, notes)

    raise typer.Exit(guard(run))


def _read_pairs(pairs: Path, images: Path | None, cfp_protocol: str):
    from faceatlas.eval.pairs import read_cfp_pairs, read_csv_pairs, read_lfw_pairs

    if pairs.is_dir():
        return read_cfp_pairs(pairs, cfp_protocol)
    if pairs.suffix.lower() == ".csv":
        return read_csv_pairs(pairs)
    if images is None:
        err("--images is required for an LFW-format pairs file")
        return None
    return read_lfw_pairs(pairs, images)


@eval_app.command("quality")
def quality_command(
    pairs: Annotated[Path, typer.Argument(help="A pairs file or CFP folder, as for `eval pairs`.", readable=False)],
    images: Annotated[Path | None, typer.Option(help="Image root for an LFW pairs file.", readable=False)] = None,
    cfp_protocol: Annotated[str, typer.Option(help="For a CFP folder: FF or FP.")] = "FP",
    fmr: Annotated[float, typer.Option(callback=check_rate, help="The FMR that fixes the decision threshold.")] = 1e-2,
    out: Out = Path("eval-quality"),
    detector: Detector = DEFAULT_DETECTOR,
    embedder: Embedder = DEFAULT_EMBEDDER,
    flip: Flip = False,
    min_face_size: MinFace = 20,
    cache: Cache = True,
    cache_file: CacheFile = None,
    batch_size: Batch = 16,
    workers: Workers = None,
) -> None:
    """Error-versus-discard: FNMR at a fixed FMR as the lowest-quality comparisons are dropped."""

    def run() -> int:
        from faceatlas.eval import protocols

        pair_list = _read_pairs(pairs, images, cfp_protocol)
        if pair_list is None:
            return EXIT_USAGE
        output_folder(out, f"--out folder {out}")  # before the models load
        system = _System(detector, embedder, flip, min_face_size, cache, cache_file, batch_size, workers)
        n_images = len({p.a for p in pair_list} | {p.b for p in pair_list})
        (written, notes), _ = system.run(
            lambda r: protocols.quality(pair_list, r, out, dataset=str(pairs), fmr=fmr), n_images
        )
        return _finish(out, written, notes)

    raise typer.Exit(guard(run))


LabelledData = Annotated[
    Path,
    typer.Argument(
        help="A folder of identity folders (root/<person>/<images>) or a CSV path,label[,group].", readable=False
    ),
]


def _read_labelled(data: Path) -> list:
    from faceatlas.eval.clustering import read_identity_csv, read_identity_folders

    return read_identity_csv(data) if data.suffix.lower() == ".csv" else read_identity_folders(data)


def _threshold(system: _System, far: float, threshold: float | None) -> float:
    if threshold is not None:
        return threshold
    from faceatlas.embedders import create_embedder

    try:
        return create_embedder(system.options[1]).card.threshold_for(far)
    except ValueError as exc:  # outside the calibrated range: the option is wrong (exit 2)
        raise typer.BadParameter(str(exc), param_hint="'--far'") from None


@eval_app.command("clustering")
def clustering_command(
    data: LabelledData,
    far: Annotated[
        float,
        typer.Option(callback=check_rate, help="Merge faces more alike than the embedder's threshold for this FAR."),
    ] = 1e-3,
    threshold: Annotated[float | None, typer.Option(help="A similarity threshold instead of --far.")] = None,
    method: Annotated[
        str, typer.Option(help="'default' (faceatlas' clusterer) or 'reference' (O(n^2) average linkage).")
    ] = "default",
    out: Out = Path("eval-clustering"),
    detector: Detector = DEFAULT_DETECTOR,
    embedder: Embedder = DEFAULT_EMBEDDER,
    flip: Flip = False,
    min_face_size: MinFace = 20,
    cache: Cache = True,
    cache_file: CacheFile = None,
    batch_size: Batch = 16,
    workers: Workers = None,
) -> None:
    """Cluster by person: pairwise and BCubed precision/recall/F, NMI; a sheet of mixed clusters."""

    def run() -> int:
        from faceatlas.eval import protocols

        items = _read_labelled(data)
        output_folder(out, f"--out folder {out}")  # before the models load
        system = _System(detector, embedder, flip, min_face_size, cache, cache_file, batch_size, workers)
        cut = _threshold(system, far, threshold)
        (written, notes), _ = system.run(
            lambda r: protocols.clustering(items, r, out, str(data), cut, method=method), len(items)
        )
        return _finish(out, written, notes)

    raise typer.Exit(guard(run))


@eval_app.command("labelling")
def labelling_command(
    data: LabelledData,
    far: Annotated[
        float,
        typer.Option(callback=check_rate, help="Cluster at the embedder's threshold for this FAR (as `cluster`)."),
    ] = 1e-3,
    threshold: Annotated[float | None, typer.Option(help="A similarity threshold instead of --far.")] = None,
    budget: Annotated[int, typer.Option(min=1, help="Most answers a strategy may give.")] = 2000,
    batch: Annotated[int, typer.Option(min=1, help="Questions the queue plans at a time.")] = 10,
    out: Out = Path("eval-labelling"),
    detector: Detector = DEFAULT_DETECTOR,
    embedder: Embedder = DEFAULT_EMBEDDER,
    flip: Flip = False,
    min_face_size: MinFace = 20,
    cache: Cache = True,
    cache_file: CacheFile = None,
    batch_size: Batch = 16,
    workers: Workers = None,
) -> None:
    """Answers a truthful user needs to reach BCubed F 0.95 / 0.99: the review queue vs naming every cluster."""

    def run() -> int:
        from faceatlas.clustering.questions import card_scale
        from faceatlas.embedders import create_embedder
        from faceatlas.eval import protocols

        items = _read_labelled(data)
        output_folder(out, f"--out folder {out}")  # before the models load
        system = _System(detector, embedder, flip, min_face_size, cache, cache_file, batch_size, workers)
        cut = _threshold(system, far, threshold)
        scale = card_scale(create_embedder(embedder).card)
        (written, notes), _ = system.run(
            lambda r: protocols.labelling(items, r, out, str(data), cut, scale, budget=budget, batch=batch),
            len(items),
        )
        return _finish(out, written, notes)

    raise typer.Exit(guard(run))


@eval_app.command("identification")
def identification_command(
    data: LabelledData,
    enrol: Annotated[int, typer.Option(min=1, help="Images enrolled per gallery identity.")] = 1,
    nonmated_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of identities kept out of the gallery.")
    ] = 0.5,
    seed: Annotated[int, typer.Option(help="Seed of the held-out identity draw.")] = 0,
    out: Out = Path("eval-identification"),
    detector: Detector = DEFAULT_DETECTOR,
    embedder: Embedder = DEFAULT_EMBEDDER,
    flip: Flip = False,
    min_face_size: MinFace = 20,
    cache: Cache = True,
    cache_file: CacheFile = None,
    batch_size: Batch = 16,
    workers: Workers = None,
) -> None:
    """Open-set 1:N search: rank-1/5 (CMC), FNIR at FPIR 1e-1/1e-2/1e-3, DET and CMC plots."""

    def run() -> int:
        from faceatlas.eval import protocols

        items = _read_labelled(data)
        output_folder(out, f"--out folder {out}")  # before the models load
        system = _System(detector, embedder, flip, min_face_size, cache, cache_file, batch_size, workers)
        (written, notes), _ = system.run(
            lambda r: protocols.identification(items, r, out, str(data), enrol, nonmated_fraction, seed), len(items)
        )
        return _finish(out, written, notes)

    raise typer.Exit(guard(run))


@eval_app.command("detection")
def detection_command(
    annotations: Annotated[
        Path,
        typer.Argument(
            help="WIDER FACE wider_face_*_bbx_gt.txt, or JSON annotations (a file or a folder of them).", readable=False
        ),
    ],
    images: Annotated[
        Path | None,
        typer.Option(help="Image root for a WIDER file (the folder holding the event folders).", readable=False),
    ] = None,
    difficulty: Annotated[
        Path | None,
        typer.Option(
            help="Folder (or one file) of the official wider_{easy,medium,hard}_val.mat lists.", readable=False
        ),
    ] = None,
    iou: Annotated[float, typer.Option(min=0.05, max=0.95, help="IoU a detection needs to count.")] = 0.5,
    out: Out = Path("eval-detection"),
    detector: Detector = DEFAULT_DETECTOR,
    min_face_size: MinFace = 10,
    score_threshold: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=0.99,
            help=(
                "Lowest detection score kept, for detectors that take one (RetinaFace, SCRFD, YuNet): AP "
                "integrates the whole precision-recall curve, so it runs below the pipeline's operating "
                "point (0.5), as WIDER FACE's own evaluation does. MTCNN keeps its cascade thresholds."
            ),
        ),
    ] = 0.02,
    cache: Cache = True,
    cache_file: CacheFile = None,
    batch_size: Batch = 16,
    workers: Workers = None,
) -> None:
    """Detection AP per setting (all / easy / medium / hard), recall by face size, PR plot."""

    def run() -> int:
        from faceatlas.eval import protocols
        from faceatlas.eval.detection import apply_wider_difficulty, read_json_annotations, read_wider_gt

        if annotations.is_dir() or annotations.suffix.lower() == ".json":
            samples = read_json_annotations(annotations)
        else:
            if images is None:
                err("--images is required for a WIDER FACE ground-truth file")
                return EXIT_USAGE
            samples = read_wider_gt(annotations, images)
        if difficulty is not None:
            samples = apply_wider_difficulty(samples, difficulty)
        output_folder(out, f"--out folder {out}")  # before the models load
        options = {"score_threshold": score_threshold} if _takes(detector, "score_threshold") else {}
        system = _System(
            detector, DEFAULT_EMBEDDER, False, min_face_size, cache, cache_file, batch_size, workers, options
        )
        (written, notes), _ = system.run(
            lambda r: protocols.detection(samples, r, out, str(annotations), iou_threshold=iou), len(samples)
        )
        return _finish(out, written, notes)

    raise typer.Exit(guard(run))


@eval_app.command("landmarks")
def landmarks_command(
    annotations: Annotated[
        list[Path],
        typer.Argument(
            help="dlib imglab XML file(s) with 68 points, or MTFL-style lists (path x1..x5 y1..y5 ...).", readable=False
        ),
    ],
    images: Annotated[Path | None, typer.Option(help="Image root for MTFL-style lists.", readable=False)] = None,
    group_by: Annotated[
        str | None, typer.Option(help="Report per group of a face attribute (MTFL: gender, smile, glasses, pose).")
    ] = None,
    out: Out = Path("eval-landmarks"),
    detector: Detector = DEFAULT_DETECTOR,
    min_face_size: MinFace = 20,
    cache: Cache = True,
    cache_file: CacheFile = None,
    batch_size: Batch = 16,
    workers: Workers = None,
) -> None:
    """Five-point landmark error (NME, inter-ocular), failure rate at 0.1 and the CED curve."""

    def run() -> int:
        from faceatlas.eval import protocols
        from faceatlas.eval.landmarks import LandmarkSet, read_dlib_xml, read_mtfl

        sets = []
        for file in annotations:
            if file.suffix.lower() == ".xml":
                sets.append(read_dlib_xml(file))
            elif images is None:
                err("--images is required for an MTFL-style list")
                return EXIT_USAGE
            else:
                sets.append(read_mtfl(file, images))
        samples = LandmarkSet(
            tuple(s for one in sets for s in one),
            sum(one.skipped for one in sets),
            tuple(n for one in sets for n in one.notes),
        )
        output_folder(out, f"--out folder {out}")  # before the models load
        system = _System(detector, DEFAULT_EMBEDDER, False, min_face_size, cache, cache_file, batch_size, workers)
        total = len({s.image for s in samples})
        dataset = ", ".join(str(a) for a in annotations)
        (written, notes), _ = system.run(lambda r: protocols.landmarks(samples, r, out, dataset, group_by), total)
        return _finish(out, written, notes)

    raise typer.Exit(guard(run))


@eval_app.command("pose")
def pose_command(
    folder: Annotated[
        Path,
        typer.Argument(help="An AFLW2000-3D folder (imageNNNNN.jpg + imageNNNNN.mat with Pose_Para).", readable=False),
    ],
    out: Out = Path("eval-pose"),
    detector: Detector = DEFAULT_DETECTOR,
    min_face_size: MinFace = 20,
    cache: Cache = True,
    cache_file: CacheFile = None,
    batch_size: Batch = 16,
    workers: Workers = None,
) -> None:
    """Head-pose error: yaw/pitch/roll MAE and geodesic error, by |yaw| bucket."""

    def run() -> int:
        from faceatlas.eval import protocols
        from faceatlas.eval.landmarks import read_aflw2000

        samples = read_aflw2000(folder)
        output_folder(out, f"--out folder {out}")  # before the models load
        system = _System(detector, DEFAULT_EMBEDDER, False, min_face_size, cache, cache_file, batch_size, workers)
        (written, notes), _ = system.run(lambda r: protocols.pose(samples, r, out, str(folder)), len(samples))
        return _finish(out, written, notes)

    raise typer.Exit(guard(run))


@eval_app.command("liveness")
def liveness_command(
    bona_fide: Annotated[
        list[Path] | None,
        typer.Option(
            "--bona-fide",
            help="Real face video (files or folders; repeatable): judged whole (passive) and cut into "
            "challenge answers from its real head movements.",
            readable=False,
        ),
    ] = None,
    photos: Annotated[
        list[Path] | None,
        typer.Option(
            help="Face photos (files or folders; repeatable) to print as attacks (flat and bent).", readable=False
        ),
    ] = None,
    attacks: Annotated[
        list[Path] | None,
        typer.Option(
            help="Attack clips of your own (folders; the type is the sub-folder's name; NAME.json "
            '{"challenge": [...]} gives the challenge a clip answers, else it is judged passively).',
            readable=False,
        ),
    ] = None,
    length: Annotated[int, typer.Option(min=1, max=8, help="Actions per challenge.")] = 3,
    min_depth: Annotated[float, typer.Option(min=0.0, help="Depth threshold (nose parallax / a 3D face's).")] = 0.4,
    max_photos: Annotated[int, typer.Option(min=1, help="At most this many photos (a seeded sample).")] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the challenges and the attacks' jitter.")] = 0,
    out: Out = Path("eval-liveness"),
    detector: Detector = DEFAULT_DETECTOR,
    embedder: Embedder = DEFAULT_EMBEDDER,
) -> None:
    """Challenge-response liveness: APCER per attack type (and the worst), BPCER and ACER (ISO/IEC 30107-3)."""

    def run() -> int:
        from faceatlas.eval.liveness import evaluate, write
        from faceatlas.pipeline import FaceAnalyzer
        from faceatlas.video.liveness import LivenessThresholds

        if not (bona_fide or photos or attacks):
            err("give --bona-fide clips, --photos to build attacks from, or --attacks clips (any of them)")
            return EXIT_USAGE
        output_folder(out, f"--out folder {out}")  # before the models load
        report = evaluate(
            bona_fide or [],
            photos=photos or [],
            attacks=attacks or [],
            analyzer=FaceAnalyzer(detector, embedder),
            thresholds=LivenessThresholds(min_depth=min_depth),
            length=length,
            max_photos=max_photos,
            seed=seed,
            progress=err,
        )
        return _finish(out, write(report, out), [])

    raise typer.Exit(guard(run))
