"""INT8 dlib ResNet against float32: accuracy cost on LFW View 1 DevTest pairs, and speed.

    python benchmarks/int8.py

Calibration uses other photos than the evaluation (as a user would: their own): the largest face
of each WIDER Handshaking and dlib group photo (../shared/data). Then every LFW DevTest image is
detected once (RetinaFace, the default), aligned, and embedded by both models; the 1,000 pairs
are scored with each: 10-fold accuracy (a threshold chosen on 9 folds), ROC AUC, TAR at FAR 1e-2
and at the card's FAR 1e-3 threshold, and the cosine between the two models' embeddings of each
face. Speed: the embedder alone on one thread (batch 32), and 2 processes × 1 thread.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import SHARED_DATA, machine, require  # noqa: E402


def _throughput(args: tuple[str, bool, int]) -> float:
    cache, int8, seconds = args
    os.environ["FACEATLAS_NUM_THREADS"] = "1"
    from faceatlas.embedders.dlib_resnet import DlibResNetEmbedder

    embedder = DlibResNetEmbedder(cache_dir=cache, int8=int8, batch_size=32)
    crops = np.random.default_rng(0).integers(0, 255, (32, 150, 150, 3), dtype=np.uint8)
    embedder.embed(crops)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        embedder.embed(crops)
        done += len(crops)
    return done / (time.perf_counter() - started)


def main() -> None:
    from faceatlas.embedders.dlib_resnet import DlibResNetEmbedder
    from faceatlas.eval.metrics import kfold_accuracy, roc_auc, roc_curve, tar_at_far
    from faceatlas.eval.pairs import read_lfw_pairs
    from faceatlas.image import load_image
    from faceatlas.models.cards import DLIB_RESNET_CARD
    from faceatlas.quantization import quantize_embedder
    from faceatlas.pipeline import FaceAnalyzer, primary_face

    lfw = require(SHARED_DATA / "lfw_devtest", "LFW DevTest")
    calibration = sorted((SHARED_DATA / "wider_train" / "images").rglob("*.jpg"))
    calibration += sorted((SHARED_DATA / "dlib_faces" / "examples" / "faces").glob("*.jpg"))
    cache = tempfile.mkdtemp(prefix="faceatlas-int8-bench-")
    print(f"machine: {machine()}; load average {os.getloadavg()}")
    report = quantize_embedder("dlib_resnet", calibration, cache_dir=cache)
    print(report, "\n")

    pairs = read_lfw_pairs(lfw / "pairs.txt", lfw / "images")
    paths = sorted({p for pair in pairs for p in (pair.a, pair.b)})
    analyzer = FaceAnalyzer()
    fp32 = DlibResNetEmbedder(cache_dir=cache, int8=False)
    int8 = DlibResNetEmbedder(cache_dir=cache, int8=True)
    vectors: dict[str, dict[Path, np.ndarray | None]] = {"float32": {}, "int8": {}}
    for path in paths:
        image = load_image(path)
        face = primary_face(analyzer.detect(image))
        crop = None if face is None else analyzer.aligner.align(image, [face])
        vectors["float32"][path] = None if crop is None else fp32.embed(crop)[0]
        vectors["int8"][path] = None if crop is None else int8.embed(crop)[0]
    both = [p for p in paths if vectors["float32"][p] is not None]
    agreement = np.array([float(vectors["float32"][p] @ vectors["int8"][p]) for p in both])
    same = np.array([pair.same for pair in pairs])
    folds = np.array([pair.fold for pair in pairs])
    threshold = next(t.similarity for t in DLIB_RESNET_CARD.thresholds if t.far == 1e-3)
    print(f"{len(both)} of {len(paths)} images with a face; cosine(float32, int8) per face: "
          f"mean {agreement.mean():.5f}, p1 {np.percentile(agreement, 1):.5f}, min {agreement.min():.5f}\n")
    print("| model | 10-fold accuracy | ROC AUC | TAR @ FAR 1e-2 | TAR at the card's FAR 1e-3 threshold | FAR there |")
    print("|---|---|---|---|---|---|")
    for name, table in vectors.items():
        scores = np.array([
            -1.0 if table[p.a] is None or table[p.b] is None else float(table[p.a] @ table[p.b]) for p in pairs
        ])
        accuracy, _ = kfold_accuracy(scores, same, folds)
        fpr, tpr, _ = roc_curve(same, scores)
        tar = float(np.mean(scores[same] >= threshold))
        far = float(np.mean(scores[~same] >= threshold))
        print(f"| {name} | {accuracy.mean():.4f} ± {accuracy.std():.4f} | {roc_auc(same, scores):.4f} | "
              f"{tar_at_far(fpr, tpr, 1e-2):.4f} | {tar:.4f} | {far:.4f} |")

    print("\n| embedder alone (random crops, batch 32) | float32 faces/s | int8 faces/s | × |")
    print("|---|---|---|---|")
    for processes in (1, 2):
        rates = {}
        for int8_flag in (False, True):
            with ProcessPoolExecutor(processes) as pool:
                rates[int8_flag] = sum(pool.map(_throughput, [(cache, int8_flag, 6.0)] * processes))
        print(f"| {processes} process(es) × 1 thread | {rates[False]:.1f} | {rates[True]:.1f} | "
              f"{rates[True] / rates[False]:.2f} |")
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
