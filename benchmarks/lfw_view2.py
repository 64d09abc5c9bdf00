"""LFW View 2 (6,000 pairs, 10 official folds): faceatlas vs face_recognition.

    python benchmarks/lfw_view2.py

faceatlas embeds every LFW image once (shared with calibrate_thresholds.py through the
embedding cache); face_recognition (HOG + dlib ResNet) embeds the View 2 images in 2 processes.
A missed face counts as "different".
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import LFW_FULL, machine, require  # noqa: E402
from embed_cache import CACHE, embed_identity_folders  # noqa: E402
from lfw_pairs import face_recognition_embeddings  # noqa: E402

from faceatlas.eval.metrics import verification_report  # noqa: E402
from faceatlas.eval.pairs import read_lfw_pairs, score_pairs  # noqa: E402


def _fr_chunk(paths: list[Path]) -> dict[Path, np.ndarray | None]:
    return face_recognition_embeddings(paths)


def face_recognition_cached(paths: list[Path]) -> dict[Path, np.ndarray | None]:
    cached = CACHE / "face_recognition_view2.npz"
    if cached.exists():
        data = np.load(cached)
        return {Path(p): (v if ok else None) for p, v, ok in zip(data["paths"], data["emb"], data["ok"])}
    t0 = time.perf_counter()
    with mp.get_context("spawn").Pool(2) as pool:
        parts = pool.map(_fr_chunk, [paths[0::2], paths[1::2]])
    out = {**parts[0], **parts[1]}
    print(f"# face_recognition embeddings: {time.perf_counter() - t0:.0f} s (2 processes)")
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(
        cached,
        paths=np.array([str(p) for p in out]),
        emb=np.stack([v if v is not None else np.zeros(128) for v in out.values()]),
        ok=np.array([v is not None for v in out.values()]),
    )
    return out


def main() -> None:
    root = require(LFW_FULL, "full LFW")
    pairs = read_lfw_pairs(root / "pairs.txt", root / "lfw-deepfunneled")
    paths = sorted({p.a for p in pairs} | {p.b for p in pairs})
    print(f"# LFW View 2: {len(pairs)} pairs over {len(paths)} images; {machine()}")
    emb, _labels, kept = embed_identity_folders(root / "lfw-deepfunneled")
    ours: dict[Path, np.ndarray | None] = {p: None for p in paths}
    ours.update({p: e for p, e in zip(kept, emb) if p in ours})
    methods = {"faceatlas": ours, "face_recognition": face_recognition_cached(paths)}
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    print(f"{'method':18s} {'accuracy':>16s} {'AUC':>8s} {'EER':>7s} {'TAR@1e-2':>9s} {'TAR@1e-3':>9s} {'failed':>7s}")
    for name, vectors in methods.items():
        scores, failed = score_pairs(pairs, vectors)
        r = verification_report(np.where(failed, -2.0, scores), same, folds, failed)
        tars = [r.tar_at_far[k] for k in ("0.01", "0.001")]
        tar_text = " ".join("      n/a" if t is None else f"{100 * t:8.2f}%" for t in tars)
        print(f"{name:18s} {100 * r.accuracy_mean:8.2f} ± {100 * r.accuracy_std:4.2f}% {r.auc:8.5f} "
              f"{100 * r.eer:6.2f}% {tar_text} {r.n_failed:7d}")


if __name__ == "__main__":
    main()
