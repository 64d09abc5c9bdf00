"""Open-set identification on LFW through the Gallery: scoring rules, calibration, and a baseline.

    python benchmarks/gallery_lfw.py [--lfw ~/faceatlas-data/lfw/lfw-deepfunneled] [--enrol 1]

The split (issue 4): people with at least ``enrol + 1`` images enrol their first ``enrol``; their
other images are mated probes; every image of a person with a single image is a non-mated probe.
Reported per scoring rule ("max" over faces, quality-weighted "template", "topk" mean):
rank-1 of mated probes, FNIR at FPIR 1 % and 0.1 % (thresholds set on the non-mated probes'
top scores: the best any threshold can do), and what the Gallery's own calibrated decision at
``fpir=1e-2`` actually gives (realised FPIR, FNIR) — the test of ``open_set_threshold``.

``--baseline`` adds face_recognition's documented recipe on the same split: the nearest enrolled
encoding is the answer when ``face_distance <= 0.6`` (``compare_faces``' tolerance). It needs
face_recognition's raw encodings (norm ~1.4, which the tolerance assumes), computed (slowly:
HOG) into the same eval cache.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import LFW_FULL, machine

from faceatlas.eval.runner import primary_faces
from faceatlas.eval.source import AnalyzerSource, FaceRunner
from faceatlas.gallery.gallery import Gallery
from faceatlas.image import iter_image_files

CACHE = Path.home() / ".cache" / "faceatlas-bench" / "eval-results.sqlite"


def load(root: Path, source) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(identity per image, embeddings with NaN rows where no face, qualities) for every image."""
    paths = sorted(iter_image_files(root))
    runner = FaceRunner(source, cache=CACHE, batch_size=32)
    faces = primary_faces(runner.results(paths), "central")
    labels = [p.parent.name for p in paths]
    dim = next(len(f.embedding) for f in faces.values() if f is not None)
    vectors = np.full((len(paths), dim), np.nan, dtype=np.float32)
    quality = np.zeros(len(paths), dtype=np.float32)
    for i, path in enumerate(paths):
        face = faces[path]
        if face is not None:
            vectors[i] = face.embedding
            quality[i] = face.quality.score if face.quality is not None else 1.0
    return labels, vectors, quality


def split(labels: list[str], enrol: int) -> tuple[list[int], list[int], np.ndarray]:
    by_person: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_person[label].append(i)
    gallery, probes, mated = [], [], []
    for indices in by_person.values():
        if len(indices) > enrol:
            gallery += indices[:enrol]
            probes += indices[enrol:]
            mated += [True] * (len(indices) - enrol)
        elif len(indices) == 1:
            probes += indices
            mated.append(False)
        # people with 2..enrol images neither enrol nor probe: they would be mated with no gallery entry
    return gallery, probes, np.array(mated)


def measure(top_names: list[str | None], top_scores: np.ndarray, truth: list[str], mated: np.ndarray) -> dict:
    """Rank-1, and FNIR at FPIR 1e-2 / 1e-3 with the threshold set on the non-mated top scores."""
    correct = np.array([n == t for n, t in zip(top_names, truth, strict=True)])
    nonmated = np.sort(top_scores[~mated])[::-1]
    out = {"rank1": float(correct[mated].mean())}
    for fpir in (1e-2, 1e-3):
        k = int(np.floor(fpir * len(nonmated)))  # k non-mated probes may pass
        t = np.nextafter(nonmated[k], np.inf) if k < len(nonmated) else -np.inf
        out[f"fnir@{fpir:g}"] = float(1.0 - (correct & (top_scores >= t))[mated].mean())
    return out


def run_gallery(labels, vectors, quality, enrol: int, scoring: str) -> dict:
    gallery_idx, probe_idx, mated = split(labels, enrol)
    with tempfile.TemporaryDirectory() as tmp, Gallery.open(Path(tmp) / "g.db", scoring=scoring) as g:
        by_person: dict[str, list[int]] = defaultdict(list)
        for i in gallery_idx:
            if not np.isnan(vectors[i]).any():  # a failure to enrol: the person has no entry
                by_person[labels[i]].append(i)
        started = time.perf_counter()
        for person, idx in by_person.items():
            g.enroll_embeddings(person, vectors[idx], qualities=quality[idx], sources=[str(i) for i in idx])
        enrol_s = time.perf_counter() - started
        found = ~np.isnan(vectors[probe_idx]).any(axis=1)
        started = time.perf_counter()
        results = g.identify(vectors[probe_idx][found], k=1)
        search_s = time.perf_counter() - started
    names: list[str | None] = [None] * len(probe_idx)
    scores = np.full(len(probe_idx), -np.inf)
    decided: list[str | None] = [None] * len(probe_idx)
    for j, r in zip(np.flatnonzero(found), results, strict=True):
        names[j], scores[j], decided[j] = r.candidates[0].person, r.candidates[0].score, r.person
    truth = [labels[i] for i in probe_idx]
    out = measure(names, scores, truth, mated)
    out["calibrated_fpir"] = float(np.mean([d is not None for d, m in zip(decided, mated, strict=True) if not m]))
    out["calibrated_fnir"] = float(np.mean([d != t for d, t, m in zip(decided, truth, mated, strict=True) if m]))
    out["threshold"] = results[0].threshold if results else float("nan")
    out.update(
        people=len(by_person),
        mated=int(mated.sum()),
        nonmated=int((~mated).sum()),
        enrol_s=enrol_s,
        ms_per_probe=1e3 * search_s / max(found.sum(), 1),
    )
    return out


def run_baseline(labels, vectors, enrol: int, tolerance: float = 0.6) -> dict:
    """face_recognition's recipe: nearest enrolled encoding, accepted when its distance <= tolerance."""
    gallery_idx, probe_idx, mated = split(labels, enrol)
    gallery_idx = [i for i in gallery_idx if not np.isnan(vectors[i]).any()]
    known = vectors[gallery_idx]
    names, scores, decided = [], [], []
    for i in probe_idx:
        if np.isnan(vectors[i]).any():
            names.append(None), scores.append(-np.inf), decided.append(None)
            continue
        distances = np.linalg.norm(known - vectors[i], axis=1)  # face_recognition.face_distance
        best = int(np.argmin(distances))
        names.append(labels[gallery_idx[best]])
        scores.append(-distances[best])  # higher = more alike, for the FPIR-set thresholds
        decided.append(labels[gallery_idx[best]] if distances[best] <= tolerance else None)
    truth = [labels[i] for i in probe_idx]
    out = measure(names, np.array(scores), truth, mated)
    out["calibrated_fpir"] = float(np.mean([d is not None for d, m in zip(decided, mated, strict=True) if not m]))
    out["calibrated_fnir"] = float(np.mean([d != t for d, t, m in zip(decided, truth, mated, strict=True) if m]))
    out["threshold"] = tolerance
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lfw", type=Path, default=LFW_FULL / "lfw-deepfunneled")
    parser.add_argument("--enrol", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--baseline", action="store_true")
    args = parser.parse_args()
    print(f"# {machine()}; images under {args.lfw}")
    labels, vectors, quality = load(args.lfw, AnalyzerSource())
    base = None
    if args.baseline:
        sys.path.insert(0, str(Path(__file__).parent))
        from baseline_face_recognition import FaceRecognitionSource

        base = load(args.lfw, FaceRecognitionSource(normalize=False))
    print(
        "| enrol | system / scoring | people | mated / non-mated | rank-1 | FNIR@FPIR 1e-2 | FNIR@FPIR 1e-3 "
        "| decision at fpir=1e-2: threshold, real FPIR, FNIR | ms/probe |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for enrol in args.enrol:
        for scoring in ("max", "template", "topk"):
            r = run_gallery(labels, vectors, quality, enrol, scoring)
            print(
                f"| {enrol} | faceatlas, {scoring} | {r['people']} | {r['mated']} / {r['nonmated']} | {100 * r['rank1']:.2f}% "
                f"| {100 * r['fnir@0.01']:.2f}% | {100 * r['fnir@0.001']:.2f}% | {r['threshold']:.4f}, "
                f"{100 * r['calibrated_fpir']:.2f}%, {100 * r['calibrated_fnir']:.2f}% | {r['ms_per_probe']:.2f} |"
            )
        if base is not None:
            r = run_baseline(base[0], base[1], enrol)
            print(
                f"| {enrol} | face_recognition, nearest + tolerance 0.6 | | | {100 * r['rank1']:.2f}% | {100 * r['fnir@0.01']:.2f}% "
                f"| {100 * r['fnir@0.001']:.2f}% | 0.6 (distance), {100 * r['calibrated_fpir']:.2f}%, "
                f"{100 * r['calibrated_fnir']:.2f}% | |"
            )


if __name__ == "__main__":
    main()
