"""Whole-process speed of the default `faceatlas embed FOLDER/` against face_recognition, all cores.

    python benchmarks/cli_speed.py [--lfw 400] [--repeat 1] [--int8]

What the user runs, timed from the shell: each configuration is one fresh command over a folder
of images, start-up, model loading and JSON output included, wall clock, with the peak memory of
its whole process tree (sampled every 50 ms). Side by side in one run, as ratios:

- face_recognition on every core: `face_recognition`'s own API in a process pool of one worker
  per core (dlib is single-threaded), HOG detection (its default, one upsampling) and
  `face_encodings`, one JSON line per image, as faceatlas prints;
- faceatlas's default `faceatlas embed FOLDER/` (one process per core), and `--workers 1` (one
  process with one ONNX Runtime thread per core) to show what the pool buys;
- with ``--int8``: the default command with `FACEATLAS_INT8=1`, after `faceatlas models quantize
  dlib_resnet` calibrated on the WIDER photos (so never on the LFW images it is timed on).

Datasets (../shared/data): LFW-size images (250×250, `--lfw` of them) and group photos (WIDER
FACE Handshaking, 121 images up to 1024 px, plus dlib's 9 example group photos). faces/s counts
the faces each system found; photos/s is the fairer figure on group photos, where
face_recognition finds far fewer of the small faces.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import SHARED_DATA, machine, require  # noqa: E402

FACE_RECOGNITION_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from multiprocessing import Pool
    from pathlib import Path

    def one(path):
        import face_recognition
        image = face_recognition.load_image_file(path)
        boxes = face_recognition.face_locations(image)
        vectors = face_recognition.face_encodings(image, boxes)
        return {"path": path, "faces": [{"box": list(b), "embedding": [round(float(x), 6) for x in v]}
                                        for b, v in zip(boxes, vectors)]}

    if __name__ == "__main__":
        exts = {".jpg", ".jpeg", ".png"}
        paths = sorted(str(p) for p in Path(sys.argv[1]).rglob("*") if p.suffix.lower() in exts)
        with Pool(len(os.sched_getaffinity(0))) as pool:
            for record in pool.imap(one, paths, chunksize=4):
                print(json.dumps(record))
    """
)


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def run(command: list[str], out: Path, env: dict[str, str] | None = None) -> tuple[float, float, int, int]:
    """(seconds, peak MB of the process tree, images, faces) of one command writing JSON lines to ``out``."""
    peak = 0
    with out.open("w") as fh:
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=fh, stderr=subprocess.PIPE, env=env)
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, _tree_rss(proc.pid))
                time.sleep(0.05)

        watcher = threading.Thread(target=sample, daemon=True)
        watcher.start()
        _, err = proc.communicate()
        seconds = time.perf_counter() - started
        done.set()
        watcher.join()
    if proc.returncode not in (0, 3):  # 3: some image had a problem, reported, others done
        raise SystemExit(f"{command} failed ({proc.returncode}): {err.decode()[-2000:]}")
    records = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    return seconds, peak / 2**20, len(records), sum(len(r.get("faces", [])) for r in records)


def folder_of(paths: list[Path], where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    for k, path in enumerate(paths):
        os.symlink(path, where / f"{k:05d}_{path.name}")
    return where


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=int, default=400, help="LFW images in the LFW-size set")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each configuration (the best is kept)")
    parser.add_argument("--int8", action="store_true", help="also time the int8 embedder")
    args = parser.parse_args()
    lfw = sorted(require(SHARED_DATA / "lfw_devtest" / "images", "LFW DevTest").rglob("*.jpg"))[: args.lfw]
    groups = sorted(require(SHARED_DATA / "wider_train" / "images", "WIDER subset").rglob("*.jpg"))
    groups += sorted((SHARED_DATA / "dlib_faces" / "examples" / "faces").glob("*.jpg"))
    faceatlas = shutil.which("faceatlas") or sys.exit("the faceatlas command is not installed (pip install -e .)")
    tmp = Path(tempfile.mkdtemp(prefix="faceatlas-cli-speed-"))
    script = tmp / "face_recognition_embed.py"
    script.write_text(FACE_RECOGNITION_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("FACEATLAS_NUM_THREADS", "FACEATLAS_MEMORY_BUDGET")}
    subprocess.run([faceatlas, "models", "install", "retinaface"], check=False, capture_output=True)  # fetched once
    configs = {
        "face_recognition, one process per core": [sys.executable, str(script)],
        "faceatlas embed (default: one process per core)": [faceatlas, "embed"],
        "faceatlas embed --workers 1 (one process, all cores as threads)": [faceatlas, "embed", "--workers", "1"],
    }
    envs = {name: env for name in configs}
    if args.int8:
        wider = SHARED_DATA / "wider_train" / "images"
        subprocess.run([faceatlas, "models", "quantize", "dlib_resnet", "--images", str(wider)], check=True)
        configs["faceatlas embed, FACEATLAS_INT8=1"] = [faceatlas, "embed"]
        envs["faceatlas embed, FACEATLAS_INT8=1"] = {**env, "FACEATLAS_INT8": "1"}
    print(f"machine: {machine()}; load average before: {os.getloadavg()}")
    for label, paths in (("LFW-size (250x250)", lfw), ("group photos (WIDER Handshaking + dlib)", groups)):
        folder = folder_of(paths, tmp / label.split()[0])
        print(f"\n### {label}: {len(paths)} images\n")
        print("| configuration | images | faces | seconds | photos/s | faces/s | × photos/s | × faces/s | peak MB |")
        print("|---|---|---|---|---|---|---|---|---|")
        base = None
        for name, command in configs.items():
            best = min(
                (run([*command, str(folder)], tmp / "out.jsonl", envs[name]) for _ in range(args.repeat)),
                key=lambda r: r[0],
            )
            seconds, peak, images, faces = best
            rates = (images / seconds, faces / seconds)
            base = base or rates
            print(
                f"| {name} | {images} | {faces} | {seconds:.2f} | {rates[0]:.1f} | {rates[1]:.1f} | "
                f"{rates[0] / base[0]:.2f} | {rates[1] / base[1]:.2f} | {peak:,.0f} |"
            )
    print(f"\nload average after: {os.getloadavg()}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
