"""LFW pairs accuracy, side by side: faceatlas vs face_recognition vs dlib's own alignment.

    python benchmarks/lfw_pairs.py [--view2] [--limit N]

Rows (same pairs, 10-fold protocol, a missed face counts as "different"):
  faceatlas            MTCNN + 5-point similarity warp + ONNX ResNet (this package)
  faceatlas+flip       the same with flip test-time augmentation
  dlib-chip            the same MTCNN faces, aligned by dlib's 5-point shape predictor and
                       get_face_chip(150, 0.25), embedded by the same ONNX ResNet
  face_recognition     face_recognition.face_locations (HOG) + face_encodings (dlib)
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


def faceatlas_embeddings(paths: list[Path], flip_too: bool) -> dict[str, dict[Path, np.ndarray | None]]:
    """Embeddings per method; also the dlib-chip variant on the same detected faces."""
    import dlib
    import importlib.util

    models = Path(next(iter(importlib.util.find_spec("face_recognition_models").submodule_search_locations))) / "models"
    predictor = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    analyzer = FaceAnalyzer().load()
    out: dict[str, dict[Path, np.ndarray | None]] = {"faceatlas": {}, "faceatlas+flip": {}, "dlib-chip": {}}
    flipper = FaceAnalyzer(flip=True).load() if flip_too else None
    batch = 32
    for start in range(0, len(paths), batch):
        chunk = paths[start : start + batch]
        images = [load_image(p) for p in chunk]
        results = analyzer.detect_batch(images)
        chips, crops, owners = [], [], []
        for path, image, faces in zip(chunk, images, results, strict=True):
            face = primary_face(faces, (image.shape[1], image.shape[0]), "central")
            for key in out:
                out[key][path] = None
            if face is None:
                continue
            b = face.box
            rect = dlib.rectangle(int(b.x1), int(b.y1), int(b.x2), int(b.y2))
            chips.append(dlib.get_face_chip(image, predictor(image, rect), size=150, padding=0.25))
            crops.append(face)
            owners.append((path, image))
        if not owners:
            continue
        ours = np.concatenate([analyzer.embed_faces(img, [f]) for (p, img), f in zip(owners, crops, strict=True)])
        theirs = analyzer.embedder.embed(np.stack(chips))
        flipped = (
            np.concatenate([flipper.embed_faces(img, [f]) for (p, img), f in zip(owners, crops, strict=True)])
            if flipper
            else None
        )
        for k, (path, _img) in enumerate(owners):
            out["faceatlas"][path] = ours[k]
            out["dlib-chip"][path] = theirs[k]
            if flipped is not None:
                out["faceatlas+flip"][path] = flipped[k]
    if not flip_too:
        del out["faceatlas+flip"]
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
    print(f"# {len(pairs)} pairs over {len(paths)} images; {machine()}")
    t0 = time.perf_counter()
    methods = faceatlas_embeddings(paths, flip_too=not args.no_flip)
    print(f"# faceatlas embeddings: {time.perf_counter() - t0:.0f} s")
    if not args.no_face_recognition:
        t0 = time.perf_counter()
        methods["face_recognition"] = face_recognition_embeddings(paths)
        print(f"# face_recognition embeddings: {time.perf_counter() - t0:.0f} s")
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    print(f"{'method':18s} {'accuracy':>16s} {'AUC':>8s} {'EER':>7s} {'TAR@1e-2':>9s} {'failed':>7s}")
    for name, emb in methods.items():
        scores, failed = score_pairs(pairs, emb)
        scores = np.where(failed, -2.0, scores)
        r = verification_report(scores, same, folds, failed)
        tar = r.tar_at_far["0.01"]
        print(
            f"{name:18s} {100 * r.accuracy_mean:8.2f} ± {100 * r.accuracy_std:4.2f}% {r.auc:8.5f} "
            f"{100 * r.eer:6.2f}% {'n/a' if tar is None else f'{100 * tar:8.2f}%'} {r.n_failed:7d}"
        )


if __name__ == "__main__":
    main()
