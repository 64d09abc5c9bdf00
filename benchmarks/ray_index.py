"""Indexing a folder on Ray (issue 14) against the local index, side by side, same photos.

    python benchmarks/ray_index.py [--images 150] [--batch-size 8]

LFW images (../shared/data/lfw_devtest) are copied to a temporary folder and indexed into a new
collection by each configuration, each in a fresh process (so its peak memory is its own):

- ``local 1 process``: ``index_folder(workers=1)`` (ONNX Runtime on all cores);
- ``local 2 processes``: ``index_folder(workers=2)`` (one core each);
- ``ray N actor(s)``: ``index_folder_ray(workers=N)`` on a local Ray instance with every core,
  started before the clock (its start is reported apart).

Times are end to end (model loading included: every configuration loads its models once per
process), photos/s and the ratio to ``local 1 process``. Peak memory is the highest sum of RSS
over the process and all its descendants (for Ray: GCS, raylet, workers and actors too), sampled.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Self

sys.path.insert(0, str(Path(__file__).parent))
from _common import LFW_DEVTEST, machine, require

CONFIGS = {
    "local 1 process": ("local", 1),
    "local 2 processes": ("local", 2),
    "ray 1 actor": ("ray", 1),
    "ray 2 actors": ("ray", 2),
}


class PeakMemory:
    """The highest sum of RSS of this process and its descendants, sampled every ``every`` s."""

    def __init__(self, every: float = 0.2) -> None:
        import psutil

        self.me, self.every, self.peak = psutil.Process(), every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            for proc in [self.me, *self.me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:  # ended meanwhile
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(self.every)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_one(kind: str, workers: int, folder: str, db: str, batch_size: int) -> dict:
    """One configuration, in this (fresh) process."""
    from faceatlas.collection import CollectionStore, index_folder

    result: dict = {}
    with PeakMemory() as memory, CollectionStore.open(db) as store:
        if kind == "ray":
            import ray

            from faceatlas.collection.ray_index import index_folder_ray

            started = time.perf_counter()
            ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
            result["cluster_start_s"] = time.perf_counter() - started
            started = time.perf_counter()
            report = index_folder_ray(folder, store, workers=workers, batch_size=batch_size, log=lambda _: None)
            result["seconds"] = time.perf_counter() - started
            ray.shutdown()
        else:
            started = time.perf_counter()
            report = index_folder(folder, store, workers=workers)
            result["seconds"] = time.perf_counter() - started
    result.update(photos=report.new + report.unreadable, faces=report.faces_added, peak_mb=memory.peak / 2**20)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--one", nargs=4, metavar=("KIND", "WORKERS", "FOLDER", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        kind, workers, folder, db = args.one
        print(json.dumps(run_one(kind, int(workers), folder, db, args.batch_size)))
        return

    images = sorted(require(LFW_DEVTEST / "images", "LFW DevTest images").glob("*/*.jpg"))[: args.images]
    print(f"{len(images)} LFW images, batch size {args.batch_size}; {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp, "photos")
        folder.mkdir()
        for path in images:
            shutil.copy(path, folder / path.name)
        rows = {}
        for name, (kind, workers) in CONFIGS.items():
            db = Path(tmp, f"{kind}{workers}.db")
            command = [sys.executable, __file__, "--batch-size", str(args.batch_size), "--one", kind, str(workers)]
            done = subprocess.run([*command, str(folder), str(db)], capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(f"{name}: failed\n{done.stderr[-2000:]}")
                continue
            rows[name] = json.loads(done.stdout.strip().splitlines()[-1])
    base = rows.get("local 1 process")
    print(
        "| configuration | photos | faces | seconds | photos/s | × local 1 process | peak memory (MB) | Ray start (s) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, row in rows.items():
        rate = row["photos"] / row["seconds"]
        ratio = f"{rate / (base['photos'] / base['seconds']):.2f}" if base else "-"
        start = f"{row['cluster_start_s']:.1f}" if "cluster_start_s" in row else "-"
        print(
            f"| {name} | {row['photos']} | {row['faces']} | {row['seconds']:.1f} | {rate:.1f} | {ratio} "
            f"| {row['peak_mb']:.0f} | {start} |"
        )


if __name__ == "__main__":
    main()
