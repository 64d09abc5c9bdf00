"""Pairs verification protocol (LFW-format pairs files and a plain CSV), with a ROC plot."""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceatlas.errors import FaceAtlasError
from faceatlas.eval.metrics import VerificationReport, verification_report

N_FOLDS = 10


@dataclass(frozen=True, slots=True)
class Pair:
    a: Path
    b: Path
    same: bool
    fold: int


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
                f"{pairs_file}: line {line_no} has {len(parts)} fields; "
                "expected 'name i j' or 'name1 i name2 j'"
            )
        if header is not None:
            fold = number // (2 * header[1])
        else:
            fold = counts[same] % N_FOLDS
            counts[same] += 1
        pairs.append(Pair(a, b, same, fold))
    return pairs


def read_csv_pairs(csv_file: str | Path) -> list[Pair]:
    """A plain CSV: ``path_a,path_b,same[,fold]`` (header optional; same is 1/0/true/false)."""
    base = Path(csv_file).parent
    truthy = {"1", "true", "yes", "same"}
    rows = [r for r in csv.reader(Path(csv_file).read_text().splitlines()) if r and r[0].strip()]
    if rows and rows[0][0].strip().lower() in {"path_a", "a", "image_a"}:
        rows = rows[1:]
    pairs, counts = [], {True: 0, False: 0}
    for k, row in enumerate(rows):
        if len(row) not in (3, 4):
            raise FaceAtlasError(f"{csv_file}: row {k + 1} has {len(row)} columns; expected path_a,path_b,same[,fold]")
        same = row[2].strip().lower() in truthy
        fold = int(row[3]) if len(row) == 4 else counts[same] % N_FOLDS
        counts[same] += 1
        pairs.append(Pair(base / row[0].strip(), base / row[1].strip(), same, fold))
    return pairs


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


def embed_images(
    paths: Iterable[Path],
    embed_batch: Callable[[list[Path]], list[np.ndarray | None]],
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
) -> dict[Path, np.ndarray | None]:
    """Embeddings of each image's primary face (None for no face or an unreadable image)."""
    unique = sorted(set(paths))
    out: dict[Path, np.ndarray | None] = {}
    for start in range(0, len(unique), batch_size):
        chunk = unique[start : start + batch_size]
        for path, vector in zip(chunk, embed_batch(chunk), strict=True):
            out[path] = vector
        if progress:
            progress(len(chunk))
    return out


def run_pairs(
    pairs: list[Pair],
    embed_batch: Callable[[list[Path]], list[np.ndarray | None]],
    output_dir: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[VerificationReport, np.ndarray]:
    """Embed every image once, score the pairs, and (optionally) write result.json and roc.png."""
    embeddings = embed_images([p.a for p in pairs] + [p.b for p in pairs], embed_batch, progress=progress)
    scores, failed = score_pairs(pairs, embeddings)
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    # -inf breaks ROC code; any score below the lowest real one gives the same ordering
    finite = scores[np.isfinite(scores)]
    floor = (finite.min() if finite.size else 0.0) - 1.0
    report = verification_report(np.where(failed, floor, scores), same, folds, failed)
    if output_dir is not None:
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "result.json").write_text(json.dumps(dataclasses.asdict(report), indent=2))
        plot_roc(np.where(failed, floor, scores), same, out / "roc.png")
    return report, scores


def plot_roc(scores: np.ndarray, same: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(same, scores)
    fig, (ax_roc, ax_hist) = plt.subplots(1, 2, figsize=(10, 4))
    ax_roc.plot(np.maximum(fpr, 1e-5), tpr)
    ax_roc.set_xscale("log")
    ax_roc.set_xlabel("false accept rate")
    ax_roc.set_ylabel("true accept rate")
    ax_roc.set_title("ROC")
    ax_roc.grid(True, which="both", alpha=0.3)
    bins = np.linspace(scores.min(), scores.max(), 50)
    ax_hist.hist(scores[same], bins=bins, alpha=0.6, label="same person")
    ax_hist.hist(scores[~same], bins=bins, alpha=0.6, label="different people")
    ax_hist.set_xlabel("cosine similarity")
    ax_hist.legend()
    ax_hist.set_title("scores")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
