"""Pairs verification protocol (LFW-format pairs files and a plain CSV), with a ROC plot."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from faceatlas.errors import FaceAtlasError
from faceatlas.eval.metrics import VerificationReport, roc_curve, verification_report
from faceatlas.eval.runner import primary_faces
from faceatlas.eval.source import FaceRunner
from faceatlas.types import Face

if TYPE_CHECKING:
    from faceatlas.eval.fairness import FairnessReport

N_FOLDS = 10


@dataclass(frozen=True, slots=True)
class Pair:
    a: Path
    b: Path
    same: bool
    fold: int
    group: str | None = None  # e.g. a demographic label, for the fairness report


def _lfw_path(root: Path, name: str, index: str) -> Path:
    return root / name / f"{name}_{int(index):04d}.jpg"


def read_lfw_pairs(pairs_file: str | Path, images_dir: str | Path) -> list[Pair]:
    """Read LFW's ``pairs.txt`` (View 2: header ``folds n``; View 1: no header).

    Same-person lines are ``name i j``, different-person lines ``name1 i name2 j``. View 2's
    folds are its own; a file without a header is split into 10 folds that keep the
    same/different balance (line k of each kind goes to fold k mod 10).
    """
    root = Path(images_dir)
    lines = [line.split() for line in Path(pairs_file).read_text().splitlines() if line.strip()]
    if not lines:
        raise FaceAtlasError(f"{pairs_file} holds no pairs")
    header: tuple[int, int] | None = None
    if len(lines[0]) == 2 and all(x.isdigit() for x in lines[0]):
        header = (int(lines[0][0]), int(lines[0][1]))
        lines = lines[1:]
    pairs, counts = [], {True: 0, False: 0}
    for number, parts in enumerate(lines):
        line_no = number + 1 + (header is not None)
        indices = parts[1:] if len(parts) == 3 else parts[1::2]
        if len(parts) in (3, 4) and not all(i.isdigit() for i in indices):
            raise FaceAtlasError(f"{pairs_file}: line {line_no} has a non-numeric image number: {' '.join(parts)!r}")
        if len(parts) == 3:
            a, b, same = _lfw_path(root, parts[0], parts[1]), _lfw_path(root, parts[0], parts[2]), True
        elif len(parts) == 4:
            a, b, same = _lfw_path(root, parts[0], parts[1]), _lfw_path(root, parts[2], parts[3]), False
        else:
            raise FaceAtlasError(
                f"{pairs_file}: line {line_no} has {len(parts)} fields; expected 'name i j' or 'name1 i name2 j'"
            )
        if header is not None:
            fold = number // (2 * header[1])
        else:
            fold = counts[same] % N_FOLDS
            counts[same] += 1
        pairs.append(Pair(a, b, same, fold))
    return pairs


def read_csv_pairs(csv_file: str | Path) -> list[Pair]:
    """A plain CSV: ``path_a,path_b,same[,fold[,group]]``; paths relative to the CSV's folder.

    With a header row the columns are found by name (``path_a``, ``path_b``, ``same``, and
    optionally ``fold`` and ``group``), in any order; without one they are positional.
    ``same`` is 1/0, true/false, yes/no or same/different.
    """
    base = Path(csv_file).parent
    truthy, falsy = {"1", "true", "yes", "same"}, {"0", "false", "no", "different", "diff"}
    rows = [r for r in csv.reader(Path(csv_file).read_text().splitlines()) if r and r[0].strip()]
    columns = {"path_a": 0, "path_b": 1, "same": 2, "fold": 3, "group": 4}
    first = 1
    aliases = {"a": "path_a", "image_a": "path_a", "b": "path_b", "image_b": "path_b"}
    names = [aliases.get(c.strip().lower(), c.strip().lower()) for c in rows[0]] if rows else []
    if {"path_a", "same"} & set(names):
        missing = {"path_a", "path_b", "same"} - set(names)
        if missing:
            raise FaceAtlasError(f"{csv_file}: the header lacks the column(s) {sorted(missing)}")
        columns = {name: names.index(name) for name in columns if name in names}
        rows, first = rows[1:], 2
    if not rows:
        raise FaceAtlasError(f"{csv_file} holds no pairs")
    pairs, counts = [], {True: 0, False: 0}
    for k, row in enumerate(rows):
        where = f"{csv_file}: row {k + first}"
        if len(row) < 3 or len(row) > len(columns):
            raise FaceAtlasError(f"{where} has {len(row)} columns; expected path_a,path_b,same[,fold[,group]]")

        def cell(name: str, row: list[str] = row) -> str | None:
            i = columns.get(name)
            return row[i].strip() if i is not None and i < len(row) and row[i].strip() else None

        flag = (cell("same") or "").lower()
        if flag not in truthy | falsy:
            raise FaceAtlasError(f"{where}: 'same' is {flag!r}; use 1/0, true/false, yes/no or same/different")
        same = flag in truthy
        fold_text = cell("fold")
        if fold_text is not None and not fold_text.lstrip("-").isdigit():
            raise FaceAtlasError(f"{where}: fold {fold_text!r} is not an integer")
        fold = int(fold_text) if fold_text is not None else counts[same] % N_FOLDS
        counts[same] += 1
        pairs.append(Pair(base / str(cell("path_a")), base / str(cell("path_b")), same, fold, cell("group")))
    return pairs


def read_cfp_pairs(root: str | Path, protocol: str = "FP") -> list[Pair]:
    """CFP (Celebrities in Frontal-Profile): ``root`` is the folder holding ``Protocol/``.

    ``Protocol/Pair_list_F.txt`` and ``Pair_list_P.txt`` number the frontal and profile images
    (``k path`` lines, paths relative to ``Protocol/``); ``Protocol/Split/{FF,FP}/01..10/
    {same,diff}.txt`` hold ``i,j`` pairs of those numbers — for FP, i is frontal and j profile.
    The ten split folders are the ten folds.
    """
    protocol = protocol.upper()
    if protocol not in {"FF", "FP"}:
        raise FaceAtlasError(f"CFP protocol must be 'FF' or 'FP', got {protocol!r}")
    proto = Path(root) / "Protocol"
    if not proto.is_dir():
        proto = Path(root)  # the user pointed at Protocol/ itself
    lists = {kind: _cfp_list(proto / f"Pair_list_{kind}.txt") for kind in ("F", "P")}
    split_dirs = sorted(d for d in (proto / "Split" / protocol).glob("*") if d.is_dir())
    if not split_dirs:
        raise FaceAtlasError(f"no split folders under {proto / 'Split' / protocol}")
    second = lists["P"] if protocol == "FP" else lists["F"]
    pairs = []
    for fold, split in enumerate(split_dirs):
        for name, same in (("same.txt", True), ("diff.txt", False)):
            file = split / name
            if not file.exists():
                raise FaceAtlasError(f"missing CFP split file {file}")
            for line_no, line in enumerate(file.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    i, j = (int(x) for x in line.replace(",", " ").split())
                    pairs.append(Pair(lists["F"][i], second[j], same, fold))
                except (ValueError, KeyError):
                    raise FaceAtlasError(
                        f"{file}: line {line_no} is not a pair of known image numbers: {line!r}"
                    ) from None
    return pairs


def _cfp_list(file: Path) -> dict[int, Path]:
    if not file.exists():
        raise FaceAtlasError(f"missing CFP image list {file}")
    out = {}
    for line_no, line in enumerate(file.read_text().splitlines(), 1):
        parts = line.split(maxsplit=1)
        if not parts:
            continue
        if len(parts) != 2 or not parts[0].isdigit():
            raise FaceAtlasError(f"{file}: line {line_no} should be 'number path', got {line!r}")
        out[int(parts[0])] = (file.parent / parts[1].strip().replace("\\", "/")).resolve()
    return out


def score_pairs(pairs: list[Pair], embeddings: dict[Path, np.ndarray | None]) -> tuple[np.ndarray, np.ndarray]:
    """Cosine scores; a pair with a missing embedding scores -inf (counted as "different")."""
    scores = np.full(len(pairs), -np.inf)
    failed = np.zeros(len(pairs), dtype=bool)
    for i, pair in enumerate(pairs):
        ea, eb = embeddings.get(pair.a), embeddings.get(pair.b)
        if ea is None or eb is None:
            failed[i] = True
        else:
            scores[i] = float(np.dot(ea, eb))
    return scores, failed


def floor_failed(scores: np.ndarray, failed: np.ndarray) -> np.ndarray:
    """Failed pairs get a score below every real one: -inf breaks ROC code, the order is the same."""
    finite = scores[~failed & np.isfinite(scores)]
    floor = (finite.min() if finite.size else 0.0) - 1.0
    return np.where(failed, floor, scores)


@dataclass
class PairsEvaluation:
    """Everything one pairs run produced: the report and the per-pair arrays behind it."""

    report: VerificationReport
    pairs: list[Pair]
    scores: np.ndarray  # failed pairs floored below every real score
    failed: np.ndarray
    quality: dict[str, np.ndarray]  # scorer name → per-pair quality (min of the two faces)
    fairness: FairnessReport | None = None  # when the pairs carry groups


def evaluate_pairs(
    pairs: list[Pair],
    runner: FaceRunner,
    strategy: Literal["largest", "central"] = "central",
    fars: tuple[float, ...] = (1e-2, 1e-3, 1e-4),
) -> PairsEvaluation:
    """Embed every image once (through the runner's cache), score the pairs, build the report.

    Each image contributes its primary face (``strategy``); an image with no face or that
    cannot be read makes its pairs fail, and a failed pair counts as "different".
    """
    if not pairs:
        raise FaceAtlasError("no pairs to evaluate")
    results = runner.results([p.a for p in pairs] + [p.b for p in pairs], embed=True)
    faces = primary_faces(results, strategy)
    embeddings = {path: None if face is None else face.embedding for path, face in faces.items()}
    scores, failed = score_pairs(pairs, embeddings)
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    scores = floor_failed(scores, failed)
    report = verification_report(scores, same, folds, failed, fars)
    quality = pair_quality(pairs, faces)
    fairness = None
    if any(p.group is not None for p in pairs):
        from faceatlas.eval.fairness import pairs_fairness

        fairness = pairs_fairness(pairs, scores, same, failed)
    return PairsEvaluation(report, pairs, scores, failed, quality, fairness)


def pair_quality(pairs: list[Pair], faces: dict[Path, Face | None]) -> dict[str, np.ndarray]:
    """Per-pair quality for each scorer: the lower of the two faces' (0 where a face is missing)."""

    def per_image(face: Face | None) -> dict[str, float]:
        if face is None or face.quality is None:
            return {}
        heuristic = {} if face.quality.heuristic is None else {"heuristic": face.quality.heuristic}
        return {"quality": face.quality.score, **heuristic, **face.quality.components()}

    table = {path: per_image(face) for path, face in faces.items()}
    names = sorted({name for scores in table.values() for name in scores}, key=lambda n: n != "quality")
    return {
        name: np.array([min(table[p.a].get(name, 0.0), table[p.b].get(name, 0.0)) for p in pairs]) for name in names
    }


def plot_verification(scores: np.ndarray, same: np.ndarray, path: Path, title: str = "") -> None:
    """ROC (TAR vs FAR), DET (FNMR vs FMR, log-log) and the two score histograms, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fpr, tpr, _ = roc_curve(same, scores)
    # a log axis cannot show FMR 0: start the curves at the first measurable rate
    fpr, tpr = fpr[fpr > 0], tpr[fpr > 0]
    fig, (ax_roc, ax_det, ax_hist) = plt.subplots(1, 3, figsize=(15, 4.2))
    ax_roc.plot(fpr, tpr)
    ax_roc.set(xscale="log", xlabel="false accept rate (FMR)", ylabel="true accept rate", title="ROC")
    ax_roc.grid(True, which="both", alpha=0.3)
    fnr = 1.0 - tpr
    ax_det.plot(fpr, np.maximum(fnr, 1.0 / max(int(same.sum()), 1)))  # FNMR 0 drawn at one pair
    ax_det.set(xscale="log", yscale="log", xlabel="FMR", ylabel="FNMR", title="DET")
    ax_det.grid(True, which="both", alpha=0.3)
    bins = np.linspace(scores.min(), scores.max(), 50)
    ax_hist.hist(scores[same], bins=bins, alpha=0.6, label="same person")
    ax_hist.hist(scores[~same], bins=bins, alpha=0.6, label="different people")
    ax_hist.set(xlabel="similarity", title="scores")
    ax_hist.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
