"""Calibrate the embedder's similarity thresholds for target false-accept rates.

    python benchmarks/calibrate_thresholds.py [--root DIR] [--embedder NAME] [--detector NAME]

Every image of a folder-per-identity set (default: full LFW, 13,233 images, ~87 M impostor
pairs) is embedded once; all pairs of different identities are impostors, all pairs of the same
identity genuine. Prints the thresholds to paste into faceatlas/models/cards.py with the FAR
and TAR they give.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import LFW_FULL, machine, require  # noqa: E402
from embed_cache import embed_identity_folders  # noqa: E402

from faceatlas.verification import FARCalibrator  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, default=LFW_FULL / "lfw-deepfunneled")
    parser.add_argument("--embedder", default="dlib_resnet", help="a faceatlas embedder name (default dlib_resnet)")
    parser.add_argument("--detector", default="mtcnn", help="a faceatlas detector name (default mtcnn, as the cards)")
    args = parser.parse_args()
    emb, labels, _ = embed_identity_folders(
        require(args.root, "image folders"), embedder=args.embedder, detector=args.detector
    )
    sims = emb @ emb.T
    upper = np.triu_indices(len(emb), k=1)
    scores = sims[upper]
    same = labels[upper[0]] == labels[upper[1]]
    del sims
    cal = FARCalibrator(targets=(1e-2, 1e-3, 1e-4, 1e-5, 1e-6)).fit(scores, same)
    print(f"# {args.embedder} after {args.detector} on {args.root}: {len(emb)} faces, {len(set(labels))} identities, "
          f"{cal.n_genuine_} genuine and {cal.n_impostors_} impostor pairs; {machine()}")
    print(f"{'target FAR':>10s} {'threshold':>10s} {'FAR reached':>12s} {'TAR':>8s}")
    for t, th, far, tar in zip(cal.targets, cal.thresholds_, cal.far_, cal.tar_):
        print(f"{t:10.0e} {th:10.4f} {far:12.2e} {100 * tar:7.2f}%")
    print(f"\n{args.embedder.upper()}_THRESHOLDS = (")
    for t, th in zip(cal.targets, cal.thresholds_):
        print(f"    CalibratedThreshold({t:g}, {th:.4f}),")
    print(")")


if __name__ == "__main__":
    main()
