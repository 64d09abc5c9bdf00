"""Each protocol end to end: faces from a FaceRunner → metrics → result.json, report.txt, plots.

These are what `faceatlas eval` calls, and what a script calls to evaluate any FaceSource (the
face_recognition baseline in ``benchmarks/`` goes through exactly these functions). Each returns
(files written, notes for the user).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from faceatlas.errors import FaceAtlasError, InvalidArgumentError
from faceatlas.eval.pairs import Pair, evaluate_pairs, plot_verification
from faceatlas.eval.report import write_outputs
from faceatlas.eval.source import FaceRunner

Written = tuple[list[Path], list[str]]
CLUSTERING_SCORES = (
    "pairwise_precision",
    "pairwise_recall",
    "pairwise_f1",
    "bcubed_precision",
    "bcubed_recall",
    "bcubed_f1",
    "nmi",
)


def pairs(pair_list: list[Pair], runner: FaceRunner, out: str | Path, dataset: str) -> Written:
    """1:1 verification: 10-fold accuracy, AUC, EER, TAR@FAR, ROC/DET/histograms, fairness by group."""
    runner.reset_stats()
    evaluation = evaluate_pairs(pair_list, runner)
    same = np.array([p.same for p in pair_list])
    reports: dict = {"verification": evaluation.report}
    plots = {"verification.png": lambda path: plot_verification(evaluation.scores, same, path, dataset)}
    notes = list(evaluation.report.notes)
    fairness = evaluation.fairness
    if fairness is not None:
        from faceatlas.eval.fairness import plot_fairness

        reports["fairness"] = fairness
        plots["fairness.png"] = lambda path: plot_fairness(fairness, path)
        notes += list(fairness.notes)
    written = write_outputs(
        out, "pairs verification", reports, source=runner.source.key, dataset=dataset, stats=runner.stats, plots=plots
    )
    return written, notes


def _primary_embeddings(items: list, runner: FaceRunner) -> tuple[np.ndarray, np.ndarray, dict]:
    """(embeddings with NaN rows where no face, found mask, primary faces) for labelled images."""
    from faceatlas.eval.runner import primary_faces

    results = runner.results([item.path for item in items], embed=True)
    faces = primary_faces(results, "central")
    dim = next((len(f.embedding) for f in faces.values() if f is not None and f.embedding is not None), 0)
    vectors = np.full((len(items), dim), np.nan, dtype=np.float32)
    found = np.zeros(len(items), dtype=bool)
    for i, item in enumerate(items):
        face = faces.get(item.path)
        if face is not None and face.embedding is not None:
            vectors[i], found[i] = face.embedding, True
    return vectors, found, faces


def _face_crop(path: Path, face, margin: float = 0.25) -> np.ndarray:
    from faceatlas.image import load_image

    image = load_image(path)
    x1, y1, x2, y2 = face.box.as_xyxy()
    pad = margin * max(x2 - x1, y2 - y1)
    h, w = image.shape[:2]
    top, left = max(int(y1 - pad), 0), max(int(x1 - pad), 0)
    return np.ascontiguousarray(image[top : min(int(y2 + pad), h), left : min(int(x2 + pad), w)])


def clustering(
    items: list,
    runner: FaceRunner,
    out: str | Path,
    dataset: str,
    threshold: float,
    sheet_clusters: int = 6,
    method: str = "default",
) -> Written:
    """Cluster every image's primary face and score it against the labels.

    ``method``: ``"default"`` is faceatlas' clusterer (``FaceClusterer``, with each face's quality);
    ``"reference"`` the O(n²) scikit-learn average-linkage clusterer at the same threshold.
    """
    runner.reset_stats()
    from faceatlas.eval.clustering import baseline_cluster, clustering_metrics, contact_sheet, mixed_clusters

    if method not in ("default", "reference"):
        raise InvalidArgumentError(f"method must be 'default' or 'reference', got {method!r}")
    vectors, found, faces = _primary_embeddings(items, runner)
    predicted: list = [None] * len(items)
    if found.any():
        if method == "reference":
            labels = baseline_cluster(vectors[found], threshold)
        else:
            from faceatlas.clustering import FaceClusterer

            qualities = [_quality(faces[items[i].path]) for i in np.flatnonzero(found)]
            labels = FaceClusterer(threshold).fit(vectors[found], qualities=qualities).labels_
        for i, label in zip(np.flatnonzero(found), labels, strict=True):
            predicted[i] = None if label < 0 else int(label)
    truth = [item.label for item in items]
    report = clustering_metrics(truth, predicted)
    reports: dict = {"clustering": report}
    notes = list(report.notes)
    fairness = _group_report(
        items,
        lambda mask: _scalars(_subset_dict(clustering_metrics, truth, predicted, mask)),
        higher_is_better=CLUSTERING_SCORES,
        spread=CLUSTERING_SCORES,
    )
    if fairness is not None:
        reports["fairness"] = fairness
        notes += fairness.notes

    def sheet(path: Path) -> None:
        mixed = mixed_clusters(truth, predicted, sheet_clusters)
        rows = [[_face_crop(items[i].path, faces[items[i].path]) for i in cluster.indices[:12]] for cluster in mixed]
        contact_sheet(rows, [cluster.title() for cluster in mixed], path)

    written = write_outputs(
        out,
        f"clustering ({'faceatlas FaceClusterer' if method == 'default' else 'reference agglomerative clusterer'}, "
        f"similarity threshold {threshold:.4f})",
        reports,
        source=runner.source.key,
        dataset=dataset,
        stats=runner.stats,
        plots={"mixed_clusters.png": sheet},
    )
    return written, notes


def labelling(
    items: list,
    runner: FaceRunner,
    out: str | Path,
    dataset: str,
    threshold: float,
    scale: float,
    budget: int = 2000,
    batch: int = 10,
) -> Written:
    """A user answering truthfully: answers needed to reach BCubed F 0.95 and 0.99 by the review
    queue and by naming every cluster, from faceatlas' clusterer and from an Immich-style DBSCAN
    (``faceatlas.eval.labelling``). Images without a face take no part (noted)."""
    runner.reset_stats()
    from faceatlas.eval.labelling import evaluate_labelling

    vectors, found, faces = _primary_embeddings(items, runner)
    kept = np.flatnonzero(found)
    if len(kept) < 2:
        raise InvalidArgumentError(f"labelling needs at least 2 faces, found {len(kept)} in {len(items)} images")
    qualities = np.array([_quality(faces[items[i].path]) for i in kept])
    report = evaluate_labelling(
        vectors[kept], [items[i].label for i in kept], threshold=threshold, scale=scale, qualities=qualities,
        budget=budget, batch=batch,
    )  # fmt: skip
    if len(kept) < len(items):
        report.notes.append(f"{len(items) - len(kept)} of {len(items)} images had no face and take no part")

    def curves(path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.5))
        for run in report.runs:
            style = "-" if run.strategy == "queue" else "--"
            ax.plot(range(len(run.curve)), run.curve, style, label=f"{run.strategy} (from {run.start})")
        for target in report.targets:
            ax.axhline(target, color="grey", linewidth=0.6)
        ax.set_xlabel("answers")
        ax.set_ylabel("BCubed F")
        ax.set_title(f"labelling effort: {report.n_faces} faces of {report.n_people} people")
        ax.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    written = write_outputs(
        out,
        f"labelling (a truthful user; similarity threshold {threshold:.4f}, gain scale {scale:.4f})",
        {"labelling": report},
        source=runner.source.key,
        dataset=dataset,
        stats=runner.stats,
        plots={"labelling_curves.png": curves},
    )
    return written, list(report.notes)


def _quality(face: Any) -> float:
    return 1.0 if face is None or face.quality is None else float(face.quality.score)


def identification(
    items: list,
    runner: FaceRunner,
    out: str | Path,
    dataset: str,
    n_enrol: int = 1,
    nonmated_fraction: float = 0.5,
    seed: int = 0,
) -> Written:
    """Open-set 1:N: enrol a gallery split into a faceatlas gallery, search it with mated and
    non-mated probes through the gallery's own search (``Gallery.scores``, what ``identify`` ranks)."""
    runner.reset_stats()
    from faceatlas.eval.identification import GallerySearch, gallery_open_set_report, plot_det, split_gallery_probes

    vectors, _found, faces = _primary_embeddings(items, runner)
    labels = [item.label for item in items]
    split = split_gallery_probes(labels, n_enrol=n_enrol, nonmated_fraction=nonmated_fraction, seed=seed)
    qualities = [_quality(faces.get(items[i].path)) for i in split.gallery]  # the gallery's template weights
    search = GallerySearch(vectors[split.gallery], [labels[i] for i in split.gallery], qualities)
    probe_labels = [labels[i] for i in split.probes]

    def report_for(probe_mask: np.ndarray):
        return gallery_open_set_report(
            search,
            vectors[split.probes][probe_mask],
            [label for label, keep in zip(probe_labels, probe_mask, strict=True) if keep],
            np.asarray(split.probe_mated)[probe_mask],
        )

    with search:
        report = report_for(np.ones(len(split.probes), dtype=bool))
        probe_items = [items[i] for i in split.probes]
        fairness = _group_report(
            probe_items,
            lambda mask: _scalars(report_for(mask).to_dict(), keep=("rank_rates", "fnir_at_fpir")),
            higher_is_better=tuple(f"rank_rates.{k}" for k in report.rank_rates),
            spread=(
                *(f"rank_rates.{k}" for k in report.rank_rates),
                *(f"fnir_at_fpir.{k}" for k in report.fnir_at_fpir),
            ),
        )
    reports: dict = {"identification": report}
    notes = list(report.notes)
    if fairness is not None:
        reports["fairness"] = fairness
        notes += fairness.notes
    written = write_outputs(
        out,
        f"open-set identification (enrol {n_enrol} image(s) per identity, {nonmated_fraction:.0%} of identities held out)",
        reports,
        source=runner.source.key,
        dataset=dataset,
        stats=runner.stats,
        plots={"det_cmc.png": lambda path: plot_det(report, path)},
    )
    return written, notes


def _subset_dict(metric, truth: list, predicted: list, mask: np.ndarray) -> dict:
    keep = np.flatnonzero(mask)
    return metric([truth[i] for i in keep], [predicted[i] for i in keep]).to_dict()


def _scalars(document: dict, keep: tuple[str, ...] | None = None) -> dict[str, float | None]:
    """The numeric entries of a report's dict, one level of sub-dicts flattened as ``outer.inner``."""
    out: dict[str, float | None] = {}
    for key, value in document.items():
        if isinstance(value, dict) and (keep is None or key in keep):
            out.update({f"{key}.{k}": v for k, v in value.items() if v is None or isinstance(v, (int, float))})
        elif keep is None and isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = value
    return out


def _group_report(items: list, metric_fn, higher_is_better: tuple[str, ...], spread: tuple[str, ...]):
    """A fairness report over the items' ``group`` labels, or None when the data carries none."""
    groups = [getattr(item, "group", None) for item in items]
    if all(g is None for g in groups):
        return None
    from faceatlas.eval.fairness import group_metrics

    return group_metrics(groups, metric_fn, higher_is_better=higher_is_better, spread_metrics=spread)


def detection(samples: list, runner: FaceRunner, out: str | Path, dataset: str, **options) -> Written:
    """Detection AP (official WIDER FACE rules), recall by face size, PR curves, images/s."""
    runner.reset_stats()
    from faceatlas.eval.detection import Prediction, evaluate_detections, plot_pr

    results = runner.results([s.image for s in samples], embed=False)
    predictions: list[Prediction] = []
    for sample in samples:
        result = results[sample.image]
        if not result.ok:
            predictions.append(None)
            continue
        boxes = np.array([f.box.as_xyxy() for f in result.faces], dtype=np.float64).reshape(-1, 4)
        predictions.append((boxes, np.array([f.score for f in result.faces], dtype=np.float64)))
    report = evaluate_detections(samples, predictions, **options)
    groups = {name: result for name, result in report.settings.items() if name.startswith("group=")}
    if len(groups) >= 2:  # the fairness summary: the settings table already lists each group
        for measure in ("ap", "recall"):
            values = {name: getattr(result, measure) for name, result in groups.items()}
            best, worst = max(values, key=values.__getitem__), min(values, key=values.__getitem__)
            report.notes.append(
                f"{measure} spread between groups: {100 * (values[best] - values[worst]):.2f} points "
                f"(best {best} {100 * values[best]:.2f}%, worst {worst} {100 * values[worst]:.2f}%)"
            )
    written = write_outputs(
        out,
        "face detection",
        {"detection": report},
        source=runner.source.key,
        dataset=dataset,
        stats=runner.stats,
        plots={"precision_recall.png": lambda path: plot_pr(report, path, dataset)},
    )
    return written, list(report.notes)


def quality(pair_list: list[Pair], runner: FaceRunner, out: str | Path, dataset: str, fmr: float = 1e-2) -> Written:
    """Error-versus-discard of every quality scorer the system has, on one figure."""
    runner.reset_stats()
    from faceatlas.eval.edc import compare_quality_scorers, plot_edc

    evaluation = evaluate_pairs(pair_list, runner)
    same = np.array([p.same for p in pair_list])
    genuine = np.where(evaluation.failed, -np.inf, evaluation.scores)[same]
    impostor = evaluation.scores[~same & ~evaluation.failed]
    scorers = {name: q[same] for name, q in evaluation.quality.items()}
    report = compare_quality_scorers(genuine, impostor, scorers, fmr=fmr)
    notes = list(report.notes)
    if not evaluation.quality:
        notes.append("this system gives no quality score: only the random and oracle references are shown")
    written = write_outputs(
        out,
        f"quality: error versus discard (FNMR at FMR {fmr:g})",
        {"edc": report},
        source=runner.source.key,
        dataset=dataset,
        stats=runner.stats,
        plots={"edc.png": lambda path: plot_edc(report, path, title=dataset)},
    )
    return written, notes


def _predictions(results: dict) -> dict:
    """image → [(box xyxy, five points)] or None, as the landmark matcher wants them."""
    return {
        path: [(np.array(f.box.as_xyxy()), f.landmarks.points) for f in result.faces] if result.ok else None
        for path, result in results.items()
    }


def landmarks(samples, runner: FaceRunner, out: str | Path, dataset: str, group_by: str | None = None) -> Written:
    """Five-point NME (inter-ocular), failure rate at 0.1, the CED curve; missed faces count as failures.

    ``group_by`` names a per-face attribute (e.g. MTFL's ``gender`` or ``glasses``) for a
    fairness report of the same figures per group.
    """
    runner.reset_stats()
    from faceatlas.eval.landmarks import landmark_report, match_predictions, plot_ced

    results = runner.results(sorted({s.image for s in samples}), embed=False)
    matches = match_predictions(samples, _predictions(results))
    report = matches.report()
    reports: dict = {"landmarks": report}
    notes = list(getattr(samples, "notes", ())) + list(report.notes)
    if group_by is not None:
        values = [s.attributes.get(group_by) for s in samples]
        if all(v is None for v in values):
            raise FaceAtlasError(f"no face in {dataset} has the attribute {group_by!r}")

        def per_group(mask: np.ndarray) -> dict:
            sub = landmark_report(matches.gt[mask], matches.pred[mask], missed=matches.missed[mask])
            return {"nme_mean": sub.nme_mean, "failure_rate": sub.failure_rate, "auc": sub.auc}

        items = [_Grouped(None if v is None else f"{group_by}={v}") for v in values]
        fairness = _group_report(
            items, per_group, higher_is_better=("auc",), spread=("nme_mean", "failure_rate", "auc")
        )
        reports["fairness"] = fairness
        notes += fairness.notes
    written = write_outputs(
        out,
        "five-point landmarks (NME, inter-ocular)",
        reports,
        source=runner.source.key,
        dataset=dataset,
        stats=runner.stats,
        plots={"ced.png": lambda path: plot_ced(report, path, title=dataset)},
    )
    return written, notes


@dataclass(frozen=True)
class _Grouped:
    group: str | None


def pose(samples, runner: FaceRunner, out: str | Path, dataset: str) -> Written:
    """Yaw/pitch/roll MAE (and geodesic error) against labelled poses, by |yaw| bucket."""
    runner.reset_stats()
    from faceatlas.eval.landmarks import LandmarkSample, match_predictions, plot_pose_errors, pose_errors

    results = runner.results(sorted({s.image for s in samples}), embed=False)
    as_landmarks = [LandmarkSample(s.image, s.points, s.box) for s in samples]
    matches = match_predictions(as_landmarks, _predictions(results))
    predicted = []
    for sample, points, missed in zip(samples, matches.pred, matches.missed, strict=True):
        # the matcher returns the matched face's points: find that face again to read its pose
        face = (
            None
            if missed
            else next(f for f in results[sample.image].faces if np.array_equal(f.landmarks.points, points))
        )
        predicted.append(None if face is None else face.pose)
    report = pose_errors([s.pose for s in samples], predicted)
    notes = list(getattr(samples, "notes", ())) + list(report.notes)
    written = write_outputs(
        out,
        "head pose (degrees)",
        {"pose": report},
        source=runner.source.key,
        dataset=dataset,
        stats=runner.stats,
        plots={"pose_errors.png": lambda path: plot_pose_errors(report, path, title=dataset)},
    )
    return written, notes
