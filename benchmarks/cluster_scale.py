"""Clustering at scale: FaceClusterer's seconds per stage and peak memory from 100k to 1M faces.

    python benchmarks/cluster_scale.py                                  # 100k, 200k, 500k, 1M
    python benchmarks/cluster_scale.py --sizes 100000 200000 --baseline 100000 200000
    python benchmarks/cluster_scale.py --sizes 100000 --ef-search 128   # the k-NN graph's efSearch

Data: the LFW DevTest faces (../shared/data/lfw_devtest, 1,549 images of 963 people, primary
face through ``embed_cache.embed_identity_folders``: dlib + MTCNN, cached under
~/.cache/faceatlas-bench) plus seeded synthetic faces from ``index_search.synthetic`` fitted to
them (their within- and between-person covariances), up to each size. Full LFW is not needed.
Qualities: 1.0, except a seeded ``--gated`` fraction (default 1 %) at 0.1, below the 0.3 gate,
so the quality gate's attach step runs at scale too. Photos (``groups``, one person once per
photo): 1 + geometric faces each (mean 1.5), faces drawn into them at random.

Each size runs ``FaceClusterer()`` (defaults) in a fresh process: seconds of each stage (building
the neighbour index, searching it, the linkage, attaching gated faces, the rest) and the peak RSS
during ``fit`` (VmHWM, reset just before). Scores: pairwise and BCubed F against the true people,
on all faces and on the real DevTest faces alone. ``--baseline`` sizes run the same with the k-NN
graph as it was before this benchmark's change: the gallery's HNSW index (M 32, efConstruction
80, efSearch 256 up to 300k / 768 up to 2M, re-ranked), pinned here so that other changes to
``vector_index`` do not move it. Sizes not run are not extrapolated here.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import LFW_DEVTEST, machine, require

COMMAND = "python benchmarks/cluster_scale.py " + shlex.join(sys.argv[1:])
STAGES = ("build", "search", "linkage", "attach")


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def faces(n: int, seed: int, gated: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """(unit embeddings, true person per face, qualities, photo per face, how many are real), seeded."""
    from embed_cache import embed_identity_folders
    from index_search import fitted_space, synthetic

    emb, labels, _ = embed_identity_folders(require(LFW_DEVTEST / "images", "LFW DevTest"))
    _, real_ids = np.unique(labels, return_inverse=True)
    rng = np.random.default_rng(seed)
    real = min(n, len(emb))
    synth, synth_ids, _, _ = synthetic(rng, fitted_space(emb, real_ids), n - real)
    x = np.concatenate([emb[:real].astype(np.float32), synth])
    truth = np.concatenate([real_ids[:real], synth_ids + real_ids.max() + 1])
    quality = np.where(rng.random(n) < gated, 0.1, 1.0)
    # photos of 1 + geometric faces (mean 1.5), drawn at random: mostly of different people
    sizes = rng.geometric(2 / 3, n)
    photo = np.repeat(np.arange(n), sizes)[:n][rng.permutation(n)]
    return x, truth, quality, photo, real


class PinnedGalleryNeighbours:
    """The k-NN graph before this change: the gallery's HNSW index with the parameters it had."""

    def __init__(self, x: np.ndarray) -> None:
        from faceatlas.clustering import graph
        from faceatlas.vector_index import ExactIndex, HNSWIndex

        self.x = x
        self.index: ExactIndex | HNSWIndex
        if len(x) >= graph.HNSW_FROM:
            ef = 256 if len(x) <= 300_000 else 768 if len(x) <= 2_000_000 else 1024
            self.index = HNSWIndex(x.shape[1], m=32, ef_construction=80, ef_search=ef, rerank=32)
        else:
            self.index = ExactIndex(x.shape[1])
        self.index.add(np.arange(len(x), dtype=np.int64), x)

    def of_rows(self, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        rows = np.asarray(rows, dtype=np.int64)
        want = min(k + 1, len(self.x))
        if want <= 1 or not len(rows):
            return np.zeros((len(rows), 0), np.int64), np.zeros((len(rows), 0), np.float32)
        found = [self.index.search(self.x[rows[i : i + 4096]], want) for i in range(0, len(rows), 4096)]
        sims, ids = np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found])
        is_self = ids == rows[:, None]
        keep = ~is_self
        keep[is_self.sum(axis=1) == 0, -1] = False
        return ids[keep].reshape(len(rows), want - 1), sims[keep].reshape(len(rows), want - 1).astype(np.float32)

    def of_vectors(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        sims, ids = self.index.search(np.ascontiguousarray(queries, np.float32), min(k, len(self.x)))
        return ids, sims.astype(np.float32)


def worker(n: int, seed: int, gated: float, baseline: bool, ef_search: int | None, attach_exact: bool = False) -> dict:
    """One size, in its own process: build the data, then fit with peak RSS reset just before."""
    from faceatlas.clustering import FaceClusterer, clusterer, graph
    from faceatlas.eval.clustering import clustering_metrics

    x, truth, quality, photo, real = faces(n, seed, gated)
    stages = dict.fromkeys(STAGES, 0.0)
    cpu = dict.fromkeys(STAGES, 0.0)

    def timing(name, fn):
        def wrapped(*a, **k):
            started, cpu_started = time.perf_counter(), time.process_time()
            try:
                return fn(*a, **k)
            finally:
                stages[name] += time.perf_counter() - started
                cpu[name] += time.process_time() - cpu_started

        return wrapped

    neighbours = PinnedGalleryNeighbours if baseline else graph.Neighbours
    if ef_search is not None:
        graph.HNSW_EF_SEARCH = ef_search
    if attach_exact:
        clusterer.ATTACH_EXACT_UP_TO = 2**62  # every gated face against every cluster
    neighbours.__init__ = timing("build", neighbours.__init__)  # type: ignore[method-assign]
    neighbours.of_rows = timing("search", neighbours.of_rows)  # type: ignore[method-assign]
    clusterer.Neighbours = neighbours  # type: ignore[misc]
    clusterer.average_linkage = timing("linkage", clusterer.average_linkage)
    FaceClusterer._attach = timing("attach", FaceClusterer._attach)  # type: ignore[method-assign]
    gc.collect()
    before = _status_kb("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (peak RSS) to the current RSS
        reset = True
    except OSError:
        reset = False
    load = os.getloadavg()[0]
    started, cpu_started = time.perf_counter(), time.process_time()
    labels = FaceClusterer().fit(x, qualities=quality, groups=photo).labels_
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    peak = _status_kb("VmHWM")
    everyone = clustering_metrics(truth.tolist(), labels.tolist())
    real_only = clustering_metrics(truth[:real].tolist(), labels[:real].tolist())
    return {
        "n": n,
        "real": real,
        "graph": "pinned gallery HNSW (before)" if baseline else "clustering's own HNSW",
        "ef_search": None if baseline else graph.HNSW_EF_SEARCH,
        "attach_exact": attach_exact,
        "seconds": seconds,
        **{f"{s}_s": stages[s] for s in STAGES},
        "rest_s": seconds - sum(stages.values()),
        "cpu_s": cpu_seconds,
        **{f"{s}_cpu_s": cpu[s] for s in STAGES},
        "rss_before_mb": before / 1024,
        "peak_mb": peak / 1024,
        "peak_reset": reset,
        "gated": int((quality < 0.3).sum()),
        "photos": len(np.unique(photo)),
        "load_start": load,
        "load_end": os.getloadavg()[0],
        "pf": everyone.pairwise_f1,
        "bf": everyone.bcubed_f1,
        "pp": everyone.pairwise_precision,
        "pr": everyone.pairwise_recall,
        "real_pf": real_only.pairwise_f1,
        "real_bf": real_only.bcubed_f1,
        "clusters": everyone.n_clusters,
        "unassigned": everyone.n_unclustered,
    }


HEADER = (
    "| faces | k-NN graph | fit s (CPU s) | build s | search s | linkage s | attach s | rest s | peak RSS MB "
    "| RSS before MB | pairwise F | BCubed F | DevTest faces: pairwise F / BCubed F | clusters | load |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def row(r: dict) -> str:
    graph = r["graph"] + (f", efSearch {r['ef_search']}" if r["ef_search"] else "")
    graph += ", gated faces against every cluster" if r.get("attach_exact") else ""

    def stage(name: str) -> str:
        return f"{r[name + '_s']:.1f} ({r[name + '_cpu_s']:.0f})"

    return (
        f"| {r['n']:,} | {graph} | **{r['seconds']:.1f}** ({r['cpu_s']:.0f}) | {stage('build')} | {stage('search')} "
        f"| {stage('linkage')} | {stage('attach')} | {r['rest_s']:.1f} | **{r['peak_mb']:,.0f}** "
        f"| {r['rss_before_mb']:,.0f} | {r['pf']:.3f} | {r['bf']:.3f} | {r['real_pf']:.3f} / {r['real_bf']:.3f} "
        f"| {r['clusters']:,} | {r['load_start']:.1f}-{r['load_end']:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 200_000, 500_000, 1_000_000])
    parser.add_argument("--baseline", type=int, nargs="*", default=[], help="sizes to run with the graph before")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gated", type=float, default=0.01, help="fraction of faces below the quality gate")
    parser.add_argument("--ef-search", type=int, help="efSearch of the clustering's k-NN graph")
    parser.add_argument("--attach-exact", action="store_true", help="score gated faces against every cluster")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--worker-baseline", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = worker(args.worker, args.seed, args.gated, args.worker_baseline, args.ef_search, args.attach_exact)
        print(json.dumps(result))
        return
    print(f"Machine: {machine()}\nCommand: `{COMMAND.strip()}`\n\n{HEADER}", flush=True)
    runs = [(n, True) for n in sorted(args.baseline)] + [(n, False) for n in sorted(args.sizes)]
    runs.sort(key=lambda run: (run[0], not run[1]))  # each size: the baseline first, then the change
    for n, baseline in runs:
        command = [sys.executable, __file__, "--worker", str(n), "--seed", str(args.seed), "--gated", str(args.gated)]
        command += ["--worker-baseline"] if baseline else []
        command += ["--ef-search", str(args.ef_search)] if args.ef_search and not baseline else []
        command += ["--attach-exact"] if args.attach_exact else []
        done = subprocess.run(command, check=False, capture_output=True, text=True)
        if done.returncode:
            print(
                f"| {n:,} | {'before' if baseline else 'after'}: failed (exit {done.returncode}) "
                f"{done.stderr.strip().splitlines()[-1:]} |",
                flush=True,
            )
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        print(row(result), flush=True)
        print(json.dumps(result), file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
