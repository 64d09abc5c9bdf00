"""Detection on the WIDER FACE Handshaking subset: faceatlas's MTCNN vs dlib's HOG, side by side.

    python benchmarks/wider_detection.py

IoU >= 0.5, invalid faces ignored (a detection on one is neither right nor wrong); recall over
all detections, AP as the area under the monotone precision envelope (VOC all-points), recall
by face size (longer side of the ground-truth box). Not the official full-val benchmark.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import SHARED_DATA, machine, require  # noqa: E402

from faceatlas.image import load_image  # noqa: E402

ROOT = SHARED_DATA / "wider_train"
SIZE_BUCKETS = [(0, 20), (20, 40), (40, 80), (80, 10**6)]


def load_ground_truth() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(image name, boxes xyxy, invalid mask) per image, from wider_face_*_bbx_gt.txt."""
    lines = (ROOT / "wider_face_train_bbx_gt.txt").read_text().split("\n")
    out, i = [], 0
    while i < len(lines) and lines[i].strip():
        name, n = lines[i].strip(), int(lines[i + 1])
        rows = [[int(x) for x in lines[i + 2 + j].split()[:10]] for j in range(n)]
        i += 2 + max(n, 1)  # an image with no face still has one all-zero line
        a = np.array(rows, dtype=np.float64).reshape(-1, 10)
        boxes = np.c_[a[:, 0], a[:, 1], a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]]
        out.append((name, boxes, (a[:, 7] == 1) | (a[:, 2] <= 0) | (a[:, 3] <= 0)))
    return out


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def evaluate(gt, dets, threshold: float = 0.5) -> tuple[float, float, int, int]:
    """(recall, AP, valid faces, false positives)."""
    records, n_valid, found = [], 0, 0
    for (_name, g, invalid), (d, s) in zip(gt, dets, strict=True):
        n_valid += int((~invalid).sum())
        order = np.argsort(-s)
        d, s = d[order], s[order]
        used = np.zeros(len(g), bool)
        m = iou_matrix(d, g) if len(d) and len(g) else np.zeros((len(d), len(g)))
        for k in range(len(d)):
            candidates = np.flatnonzero((m[k] >= threshold) & ~used & ~invalid)
            if len(candidates):
                used[candidates[np.argmax(m[k, candidates])]] = True
                records.append((s[k], 1))
            elif not (len(g) and (m[k][invalid] >= threshold).any()):
                records.append((s[k], 0))
        found += int((used & ~invalid).sum())
    records.sort(key=lambda r: -r[0])
    tp = np.cumsum([r[1] for r in records])
    fp = np.cumsum([1 - r[1] for r in records])
    recall, precision = tp / n_valid, tp / np.maximum(tp + fp, 1)
    mrec = np.r_[0, recall, recall[-1] if len(recall) else 0]
    mpre = np.r_[1, precision, 0]
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    ap = float(np.sum((mrec[1:] - mrec[:-1]) * mpre[1:]))
    return found / n_valid, ap, n_valid, int(fp[-1]) if len(fp) else 0


def run_faceatlas(gt, images) -> list[tuple[np.ndarray, np.ndarray]]:
    from faceatlas.detectors.mtcnn import MTCNNDetector

    detector = MTCNNDetector().load()
    out = []
    for image in images:
        faces = detector.detect(image)
        # +0.5: our pixel-centre coordinates to WIDER's pixel-edge boxes
        out.append((np.array([f.box.as_xyxy() for f in faces]).reshape(-1, 4) + 0.5, np.array([f.score for f in faces])))
    return out


def run_hog(gt, images) -> list[tuple[np.ndarray, np.ndarray]]:
    import dlib

    detector = dlib.get_frontal_face_detector()
    out = []
    for image in images:
        rects, scores, _ = detector.run(image, 1, 0.0)  # face_recognition's default: upsample once
        boxes = [[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects]
        out.append((np.array(boxes, float).reshape(-1, 4), np.array(scores)))
    return out


def main() -> None:
    require(ROOT, "WIDER FACE Handshaking subset")
    gt = load_ground_truth()
    images = [load_image(ROOT / "images" / name) for name, _, _ in gt]
    print(f"# WIDER FACE train, Handshaking: {len(gt)} images; {machine()}")
    print(f"{'detector':26s} {'recall@0.5':>10s} {'AP':>7s} {'FP':>5s} {'img/s':>6s}   recall by size " +
          " ".join(f"[{lo},{hi if hi < 10**6 else 'inf'})" for lo, hi in SIZE_BUCKETS))
    for name, run in (("faceatlas MTCNN", run_faceatlas), ("dlib HOG (face_recognition)", run_hog)):
        t0 = time.perf_counter()
        dets = run(gt, images)
        rate = len(images) / (time.perf_counter() - t0)
        recall, ap, n_valid, fp = evaluate(gt, dets)
        by_size = []
        for lo, hi in SIZE_BUCKETS:
            sub = []
            for nm, g, inv in gt:
                side = np.maximum(g[:, 2] - g[:, 0], g[:, 3] - g[:, 1])
                sub.append((nm, g, inv | ~((side >= lo) & (side < hi))))
            r, _, n, _ = evaluate(sub, dets)
            by_size.append(f"{r:.2f} (n={n})")
        print(f"{name:26s} {recall:10.3f} {ap:7.3f} {fp:5d} {rate:6.2f}   " + "  ".join(by_size))
    print(f"# {n_valid} valid faces")


if __name__ == "__main__":
    main()
