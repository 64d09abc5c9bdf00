"""LFW pairs accuracy, side by side: faceatlas vs face_recognition vs dlib's own alignment.

    python benchmarks/lfw_pairs.py [--view2] [--limit N] [--embedder NAME ...]

Rows (same pairs, 10-fold protocol, a missed face counts as "different"):
  faceatlas            MTCNN + dlib's 5-point shape predictor + get_face_chip warp + ONNX ResNet
  faceatlas+flip       the same with flip test-time augmentation
  faceatlas landmarks-warp   the same faces warped from MTCNN's own five points (no shape predictor)
  face_recognition     face_recognition.face_locations (HOG) + face_encodings (dlib)
  faceatlas NAME       another embedder (--embedder NAME, repeatable) on the same detections, with
                       its own default alignment (and +flip)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import LFW_DEVTEST, LFW_FULL, machine, require  # noqa: E402

from faceatlas.eval.metrics import verification_report  # noqa: E402
from faceatlas.eval.pairs import read_lfw_pairs, score_pairs  # noqa: E402
from faceatlas.image import load_image  # noqa: E402
from faceatlas.pipeline import FaceAnalyzer, primary_face  # noqa: E402


def faceatlas_embeddings(
    paths: list[Path], flip_too: bool, embedders: tuple[str, ...] = ("dlib_resnet",), detector: str | None = None
) -> dict[str, dict[Path, np.ndarray | None]]:
    """Embeddings per variant, all from the same detections (primary face nearest the centre)."""
    analyzer = (FaceAnalyzer(detector=detector) if detector else FaceAnalyzer()).load()
    variants: dict[str, FaceAnalyzer] = {}
    for name in embedders:
        label = "faceatlas" if name == "dlib_resnet" else f"faceatlas {name}"
        variants[label] = analyzer if name == "dlib_resnet" else FaceAnalyzer(embedder=name).load()
        if name == "dlib_resnet":
            variants["faceatlas landmarks-warp"] = FaceAnalyzer(aligner="landmarks").load()
        if flip_too:
            variants[f"{label}+flip"] = FaceAnalyzer(embedder=name, flip=True).load()
    out: dict[str, dict[Path, np.ndarray | None]] = {name: {} for name in variants}
    for start in range(0, len(paths), 32):
        chunk = paths[start : start + 32]
        images = [load_image(p) for p in chunk]
        for path, image, faces in zip(chunk, images, analyzer.detector.detect_batch(images), strict=True):
            face = primary_face(faces, (image.shape[1], image.shape[0]), "central")
            for name, variant in variants.items():
                out[name][path] = None if face is None else variant.embed_faces(image, [face])[0]
    return out


def face_recognition_embeddings(paths: list[Path]) -> dict[Path, np.ndarray | None]:
    import face_recognition

    out: dict[Path, np.ndarray | None] = {}
    for path in paths:
        image = face_recognition.load_image_file(str(path))
        boxes = face_recognition.face_locations(image)  # HOG, upsample 1: the library default
        if not boxes:
            out[path] = None
            continue
        h, w = image.shape[:2]
        # the box nearest the centre, as for faceatlas
        top, right, bottom, left = min(
            boxes, key=lambda b: np.hypot((b[1] + b[3]) / 2 - w / 2, (b[0] + b[2]) / 2 - h / 2) / max(1, b[2] - b[0])
        )
        vec = face_recognition.face_encodings(image, [(top, right, bottom, left)])[0]
        out[path] = vec / np.linalg.norm(vec)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--view2", action="store_true", help="full LFW View 2 (6,000 pairs) instead of View 1 DevTest")
    parser.add_argument("--limit", type=int, default=0, help="first N pairs only (quick look)")
    parser.add_argument("--no-face-recognition", action="store_true")
    parser.add_argument("--no-flip", action="store_true")
    parser.add_argument("--embedder", action="append", help="embedder(s) to compare (default: dlib_resnet)")
    parser.add_argument("--detector", help="the detector for every row (default: faceatlas' default)")
    args = parser.parse_args()
    if args.view2:
        root = require(LFW_FULL, "full LFW")
        pairs = read_lfw_pairs(root / "pairs.txt", root / "lfw-deepfunneled")
    else:
        root = require(LFW_DEVTEST, "LFW View 1 DevTest")
        pairs = read_lfw_pairs(root / "pairs.txt", root / "images")
    if args.limit:
        pairs = pairs[: args.limit]
    paths = sorted({p.a for p in pairs} | {p.b for p in pairs})
    print(f"# {len(pairs)} pairs over {len(paths)} images, detector {args.detector or 'default'}; {machine()}")
    t0 = time.perf_counter()
    embedders = tuple(args.embedder or ["dlib_resnet"])
    methods = faceatlas_embeddings(paths, flip_too=not args.no_flip, embedders=embedders, detector=args.detector)
    print(f"# faceatlas embeddings: {time.perf_counter() - t0:.0f} s")
    if not args.no_face_recognition:
        t0 = time.perf_counter()
        methods["face_recognition"] = face_recognition_embeddings(paths)
        print(f"# face_recognition embeddings: {time.perf_counter() - t0:.0f} s")
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    print(f"{'method':24s} {'accuracy':>16s} {'AUC':>8s} {'EER':>7s} {'TAR@1e-2':>9s} {'failed':>7s}")
    for name, emb in methods.items():
        scores, failed = score_pairs(pairs, emb)
        scores = np.where(failed, -2.0, scores)
        r = verification_report(scores, same, folds, failed)
        tar = r.tar_at_far["0.01"]
        print(
            f"{name:24s} {100 * r.accuracy_mean:8.2f} ± {100 * r.accuracy_std:4.2f}% {r.auc:8.5f} "
            f"{100 * r.eer:6.2f}% {'n/a' if tar is None else f'{100 * tar:8.2f}%'} {r.n_failed:7d}"
        )


if __name__ == "__main__":
    main()
