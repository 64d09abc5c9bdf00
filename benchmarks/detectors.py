"""Every shipped detector side by side: WIDER AP, small-face recall, landmarks, speed, memory.

    python benchmarks/detectors.py [--threads 1]

On the WIDER FACE Handshaking subset (121 images, 641 valid faces; ../shared/data/wider_train)
each detector runs twice: at the evaluation operating point (`faceatlas eval detection`'s
defaults: score 0.02, min face 10 px — AP integrates the whole precision-recall curve) and at
the pipeline's own defaults (what `FaceAnalyzer()` keeps: recall and false positives there).
Landmarks: NME (inter-ocular) of the five points against dlib's 68-point annotations of its
group photos reduced to five (43 faces). Each detector runs in its own fresh process, so its
peak RSS is its own; models are loaded and warmed up before the clock.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import SHARED_DATA, machine, require  # noqa: E402

CONFIGS = {
    "mtcnn": {},
    "retinaface": {},
    "retinaface, no O-Net refinement": {"refine_landmarks": False},
    "retinaface, scales 1 + 1.5": {"scales": (1.0, 1.5)},
}
EVAL_OPTIONS = {"score_threshold": 0.02, "min_face_size": 10}


def _detector(name: str, options: dict, evaluation: bool):
    from faceatlas.detectors import create_detector

    base = name.split(",")[0]
    opts = dict(options)
    if evaluation:
        opts.update(EVAL_OPTIONS if base != "mtcnn" else {"min_face_size": 10})
    return create_detector(base, **opts).load()


def run(name: str, threads: int) -> dict:
    os.environ["FACEATLAS_NUM_THREADS"] = str(threads)
    from faceatlas.eval.detection import evaluate_detections, read_wider_gt
    from faceatlas.eval.landmarks import landmark_nme, read_dlib_xml
    from faceatlas.image import load_image

    options = CONFIGS[name]
    root = require(SHARED_DATA / "wider_train", "WIDER FACE Handshaking subset")
    samples = read_wider_gt(root / "wider_face_train_bbx_gt.txt", root / "images")
    images = [load_image(s.image) for s in samples]
    out: dict = {}
    for evaluation in (True, False):
        detector = _detector(name, options, evaluation)
        detector.detect(images[0])  # warm-up
        t0 = time.perf_counter()
        found = [detector.detect(im) for im in images]
        seconds = time.perf_counter() - t0
        preds = [
            (np.array([f.box.as_xyxy() for f in faces]).reshape(-1, 4) + 0.5, np.array([f.score for f in faces]))
            for faces in found
        ]
        report = evaluate_detections(samples, preds)
        key = "eval" if evaluation else "pipeline"
        out[key] = {
            "ap": report.settings["all"].ap,
            "recall": report.settings["all"].recall,
            "buckets": [(b.label, b.recall) for b in report.size_buckets],
            "detections": report.n_detections,
            "images_per_s": len(images) / seconds,
        }
    faces_dir = SHARED_DATA / "dlib_faces" / "examples" / "faces"
    detector = _detector(name, options, False)
    errors = []
    for xml in ("training_with_face_landmarks.xml", "testing_with_face_landmarks.xml"):
        for sample in read_dlib_xml(faces_dir / xml):
            faces = detector.detect(load_image(sample.image))
            gt_centre = sample.points.mean(0)
            best = min(faces, key=lambda f: np.linalg.norm(f.landmarks.points.mean(0) - gt_centre), default=None)
            errors.append(1.0 if best is None else float(landmark_nme(best.landmarks.points, sample.points)))
    out["nme"] = (float(np.mean(errors)), float(np.mean(np.array(errors) > 0.1)), len(errors))
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads per detector")
    args = parser.parse_args()
    print(f"# WIDER Handshaking subset (121 images, 641 faces) + dlib's 43 annotated faces; {machine()}")
    print(f"# {args.threads} ONNX Runtime thread(s); images/s at the pipeline's defaults")
    header = "| detector | AP (eval) | recall (eval) | <20 px | 20-40 | 40-80 | >=80 | recall (pipeline) | "
    header += "detections (pipeline) | NME | NME>0.1 | images/s | peak RSS MB |"
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    ctx = mp.get_context("spawn")
    for name in CONFIGS:
        with ctx.Pool(1) as pool:
            r = pool.apply(run, (name, args.threads))
        e, p = r["eval"], r["pipeline"]
        buckets = " | ".join(f"{rec:.3f}" for _label, rec in e["buckets"])
        print(
            f"| {name} | {e['ap']:.3f} | {e['recall']:.3f} | {buckets} | {p['recall']:.3f} | {p['detections']} | "
            f"{r['nme'][0]:.4f} | {r['nme'][1]:.3f} | {p['images_per_s']:.1f} | {r['peak_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
