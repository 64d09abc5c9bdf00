"""End-to-end speed and peak memory: faceatlas vs face_recognition, side by side, same images.

    python benchmarks/speed.py [--images 200]

Both use both cores: face_recognition (dlib, one core per process) as a pool of 2 processes;
faceatlas as one process with 2 ONNX Runtime threads and as 2 processes with 1 thread each.
Models are loaded and warmed up before the clock starts (cold start is reported apart).
Each configuration runs in fresh processes, so peak RSS is its own.
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
from _common import LFW_DEVTEST, machine, require  # noqa: E402

GFLOP_PER_FACE = 0.54  # dlib ResNet, 150x150 input


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def fr_worker(paths: list[str]) -> tuple[int, float, float]:
    import face_recognition

    warm = face_recognition.load_image_file(paths[0])
    face_recognition.face_encodings(warm, face_recognition.face_locations(warm))
    t0 = time.perf_counter()
    faces = 0
    for p in paths:
        image = face_recognition.load_image_file(p)
        faces += len(face_recognition.face_encodings(image, face_recognition.face_locations(image)))
    return faces, time.perf_counter() - t0, _peak_mb()


def fa_worker(args: tuple[list[str], int, int, str] | tuple[list[str], int, int, str, str]) -> tuple[int, float, float]:
    paths, threads, batch, detector = args[:4]
    embedder = args[4] if len(args) > 4 else "dlib_resnet"
    os.environ["FACEATLAS_NUM_THREADS"] = str(threads)
    from faceatlas.image import load_image
    from faceatlas.pipeline import FaceAnalyzer

    analyzer = FaceAnalyzer(detector=detector, embedder=embedder).load()
    analyzer.analyze_batch([load_image(p) for p in paths[:batch]])  # warm-up
    t0 = time.perf_counter()
    faces = 0
    for start in range(0, len(paths), batch):
        chunk = paths[start : start + batch]
        faces += sum(len(f) for f in analyzer.analyze_batch(chunk))
    return faces, time.perf_counter() - t0, _peak_mb()


def run_pool(worker, jobs: list) -> tuple[int, float, float]:
    ctx = mp.get_context("spawn")
    with ctx.Pool(len(jobs)) as pool:
        results = pool.map(worker, jobs)
    faces = sum(r[0] for r in results)
    wall = max(r[1] for r in results)
    peak = sum(r[2] for r in results)  # processes run at once: their peaks add up
    return faces, wall, peak


def embedder_only(threads: int, batch: int = 32, rounds: int = 8) -> float:
    """Faces per second of the ONNX embedder alone on random crops (compute-bound part)."""
    os.environ["FACEATLAS_NUM_THREADS"] = str(threads)
    from faceatlas.embedders.dlib_resnet import DlibResNetEmbedder

    emb = DlibResNetEmbedder(batch_size=batch).load()
    crops = np.random.default_rng(0).integers(0, 255, (batch, 150, 150, 3), dtype=np.uint8)
    emb.embed(crops)
    t0 = time.perf_counter()
    for _ in range(rounds):
        emb.embed(crops)
    return batch * rounds / (time.perf_counter() - t0)


def sgemm_gflops() -> float:
    """What this CPU reaches on a large float32 matrix product (numpy's BLAS, all cores)."""
    a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    a @ a
    t0 = time.perf_counter()
    for _ in range(5):
        a @ a
    return 5 * 2 * 2048**3 / (time.perf_counter() - t0) / 1e9


def theoretical_gflops() -> float | None:
    """2 cores x clock x 32 float32 FLOP/cycle (two 8-wide AVX2 FMA units), if the clock is known."""
    try:
        mhz = next(float(line.split(":")[1]) for line in open("/proc/cpuinfo") if line.startswith("cpu MHz"))
    except (OSError, StopIteration, ValueError):
        return None
    return (os.cpu_count() or 1) * mhz / 1000.0 * 32


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--detectors", default="mtcnn,retinaface", help="faceatlas detectors, side by side")
    parser.add_argument("--embedders", default="", help="more embedders after RetinaFace, e.g. facenet,dlib_resnet+facenet")
    args = parser.parse_args()
    root = require(LFW_DEVTEST / "images", "LFW View 1 DevTest")
    paths = [str(p) for p in sorted(root.glob("*/*.jpg"))[: args.images]]
    halves = [paths[0::2], paths[1::2]]
    print(f"# {len(paths)} LFW images (250x250); {machine()}")

    t0 = time.perf_counter()
    cold = run_pool(fa_worker, [(paths[:1], 0, 1, "retinaface")])
    print(f"# faceatlas cold start (import, convert-or-load models, first image): {time.perf_counter() - t0:.1f} s")

    rows = {"face_recognition, 2 procs": run_pool(fr_worker, halves)}
    for det in args.detectors.split(","):
        rows[f"faceatlas {det}, 1 proc x 2 threads"] = run_pool(fa_worker, [(paths, 0, args.batch, det)])
        rows[f"faceatlas {det}, 2 procs x 1 thread"] = run_pool(fa_worker, [(h, 1, args.batch, det) for h in halves])
    for emb in filter(None, args.embedders.split(",")):
        jobs = [(h, 1, args.batch, "retinaface", emb) for h in halves]
        rows[f"faceatlas retinaface+{emb}, 2 procs x 1 thread"] = run_pool(fa_worker, jobs)
    base = rows["face_recognition, 2 procs"]
    print(f"{'configuration':44s} {'faces':>6s} {'seconds':>8s} {'faces/s':>8s} {'x fr':>6s} {'peak MB':>8s}")
    for name, (faces, wall, peak) in rows.items():
        rate = faces / wall
        print(f"{name:44s} {faces:6d} {wall:8.2f} {rate:8.1f} {rate / (base[0] / base[1]):6.2f} {peak:8.0f}")
    del cold

    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        rate2 = pool.apply(embedder_only, (0,))
    with ctx.Pool(2) as pool:
        rate1x2 = sum(pool.map(embedder_only, [1, 1]))
    peak = sgemm_gflops()
    theory = theoretical_gflops()
    for name, rate in (("1 proc x 2 threads", rate2), ("2 procs x 1 thread", rate1x2)):
        gflops = rate * GFLOP_PER_FACE
        line = (f"# embedder alone, {name}: {rate:.1f} faces/s = {gflops:.1f} GFLOP/s; "
                f"numpy sgemm reaches {peak:.0f} GFLOP/s here")
        if theory:
            line += f"; {100 * gflops / theory:.0f}% of the {theory:.0f} GFLOP/s AVX2-FMA peak"
        print(line)


if __name__ == "__main__":
    main()
