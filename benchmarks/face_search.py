"""Searching every face with filters: recall@k against exact filtered search, and latency, per strategy.

    python benchmarks/face_search.py                    # 100k faces
    python benchmarks/face_search.py --sizes 100000 1000000
    python benchmarks/face_search.py --quick            # 5k faces, a few queries: a smoke test
    python benchmarks/face_search.py --hard             # index_search.py's harder generator

Data: ``index_search.py``'s seeded face-like generator (real LFW faces mixed in when cached), each
face given what the collection's filters read: a capture time (uniform over ten years; a filter of
selectivity s is a date range holding a fraction s of the faces: 0.1 %, 1 %, 10 %, 50 %), and its
identity as its cluster ("person": the query's own person, the typical "more photos of her" filter).
Queries are new faces of enrolled people (``make_gallery``).

Strategies, each answering ``k`` (default 20) faces among those the filter passes:

- ``exact``: ``ExactIndex.search(allowed=)``, brute force over the allowed faces (the truth).
- ``prefilter``: ``HNSWIndex.search(allowed=)`` forced exact over the allowed vectors.
- ``in-graph``: ``HNSWIndex.search(allowed=)`` forced through the graph with faiss' ``IDSelectorBitmap``
  (efSearch widened by 1 / sqrt(fraction passing), up to ``HNSW_EF_FILTERED_MAX``).
- ``auto``: ``HNSWIndex.search(allowed=)`` as shipped: exact when at most ``FILTER_EXACT_BELOW``
  or ``FILTER_EXACT_FRACTION`` of the faces pass, else in the graph with a widened beam.
- ``postfilter``: unfiltered HNSW top-k', kept if allowed, k' doubled until k pass (up to 4096,
  then exact): what "ANN, then filter" costs; not used by faceatlas.

Recall@k is |found ∩ exact| / |exact| per query, averaged; latency is one query per call, after a
warm-up, wall time (the load average is printed: other work on the machine moves it), and includes
building the allowed-id array from the mask as ``FaceSearcher`` does.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine
from index_search import EASY, HARD, find_real, make_gallery

from faceatlas.vector_index import FILTER_EXACT_BELOW, FILTER_EXACT_FRACTION, ExactIndex, HNSWIndex

SELECTIVITIES = (0.001, 0.01, 0.1, 0.5)
POSTFILTER_MAX = 4096


def run(n: int, args: argparse.Namespace, real) -> list[tuple]:
    g = make_gallery(n, args.queries, args.seed, real, HARD if args.hard else EASY)
    rng = np.random.default_rng(args.seed + 1)
    ids = np.arange(n, dtype=np.int64)
    taken = rng.random(n)  # capture time as a rank in [0, 1): a date range of width s passes a fraction s
    clusters = g.labels
    exact = ExactIndex(g.vectors.shape[1], capacity=n)
    exact.add(ids, g.vectors)
    hnsw = HNSWIndex(g.vectors.shape[1])
    t0 = time.perf_counter()
    for s in range(0, n, 100_000):
        hnsw.add(ids[s : s + 100_000], g.vectors[s : s + 100_000])
    build = time.perf_counter() - t0
    print(f"n={n}: HNSW built in {build:.0f} s", flush=True)
    filters: list[tuple[str, object]] = [("none", None)]
    for s in SELECTIVITIES:
        start = rng.random(len(g.queries)) * (1 - s)
        filters.append((f"date {s:.1%}", [(a, a + s) for a in start]))
    filters.append(("person", None))
    rows = []
    for name, ranges in filters:
        masks = []
        for qi in range(len(g.queries)):
            if name == "none":
                masks.append(None)
            elif name == "person":
                masks.append(clusters == g.query_labels[qi])
            else:
                a, b = ranges[qi]  # type: ignore[index]
                masks.append((taken >= a) & (taken < b))
        rows.extend(measure(name, g.queries, masks, exact, hnsw, args.k, n))
    return [(n, build, *row) for row in rows]


def measure(name, queries, masks, exact, hnsw, k, n) -> list[tuple]:
    truth = []
    for q, mask in zip(queries, masks, strict=True):
        allowed = None if mask is None else np.flatnonzero(mask)
        truth.append(exact.search(q[None], k, allowed=allowed)[1][0])
    passed = float(np.mean([n if m is None else m.sum() for m in masks]))
    out = []
    strategies = {
        "exact": lambda q, allowed, mask: exact.search(q, k, allowed=allowed)[1][0],
        "prefilter": lambda q, allowed, mask: _forced(hnsw, 10**12, 1.0, q, k, allowed),
        "in-graph": lambda q, allowed, mask: _forced(hnsw, 0, 0.0, q, k, allowed),
        "auto": lambda q, allowed, mask: _forced(hnsw, FILTER_EXACT_BELOW, FILTER_EXACT_FRACTION, q, k, allowed),
    }
    if name != "none":
        strategies["postfilter"] = lambda q, allowed, mask: _postfilter(hnsw, exact, q, k, mask, allowed)
    else:
        strategies = {"exact": strategies["exact"], "hnsw": strategies["auto"]}
    for strategy, search in strategies.items():
        found, times = [], []
        for i, (q, mask) in enumerate(zip(queries, masks, strict=True)):
            if i == 0:  # warm-up
                search(q[None], None if mask is None else np.flatnonzero(mask), mask)
            t0 = time.perf_counter()
            allowed = None if mask is None else np.flatnonzero(mask)
            found.append(search(q[None], allowed, mask))
            times.append(time.perf_counter() - t0)
        recall = np.mean([len(set(f[f >= 0].tolist()) & set(t[t >= 0].tolist())) / max(1, (t >= 0).sum())
                          for f, t in zip(found, truth, strict=True)])  # fmt: skip
        p50, p99 = np.percentile(times, [50, 99]) * 1e3
        out.append((name, passed, strategy, float(recall), float(p50), float(p99)))
        print(f"  {name:>11} ({passed:>9.0f} faces) {strategy:>10}: recall@{k} {recall:.3f}  "
              f"p50 {p50:7.2f} ms  p99 {p99:7.2f} ms", flush=True)  # fmt: skip
    return out


def _forced(hnsw: HNSWIndex, exact_below: int, fraction: float, q: np.ndarray, k: int, allowed) -> np.ndarray:
    hnsw.filter_exact_below, hnsw.filter_exact_fraction = exact_below, fraction
    return hnsw.search(q, k, allowed=allowed)[1][0]


def _postfilter(hnsw: HNSWIndex, exact: ExactIndex, q: np.ndarray, k: int, mask: np.ndarray, allowed) -> np.ndarray:
    fetch = k
    try:
        while fetch <= POSTFILTER_MAX:
            hnsw.ef_search = max(fetch, 384)
            _, ids = hnsw.search(q, fetch)
            row = ids[0][ids[0] >= 0]
            keep = row[mask[row]]
            if len(keep) >= k or len(row) < fetch:
                return keep[:k]
            fetch *= 2
        return exact.search(q, k, allowed=allowed)[1][0]
    finally:
        hnsw.ef_search = None


def store_run(n: int, args: argparse.Namespace) -> None:
    """End to end through a SQLite collection of n faces: the searcher's first build, the staleness
    check before each search, and ``FaceSearcher.search`` (20 hits looked up in the store)."""
    import tempfile

    from faceatlas.collection.search import FaceFilter, FaceSearcher
    from faceatlas.collection.store import CollectionStore, NewPhoto
    from faceatlas.gallery.store import ModelTag
    from faceatlas.models.cards import DLIB_RESNET_CARD
    from faceatlas.types import Box, Face, Landmarks

    g = make_gallery(n, args.queries, args.seed, None, HARD if args.hard else EASY)
    with tempfile.TemporaryDirectory() as tmp, CollectionStore.open(Path(tmp) / "c.db") as store:
        store.bind_model(ModelTag(DLIB_RESNET_CARD.name, DLIB_RESNET_CARD.version, g.vectors.shape[1]))
        t0 = time.perf_counter()
        marks = Landmarks(np.full((5, 2), 20.0))
        for s in range(0, n, 5000):
            batch = [
                NewPhoto(f"{i % 100:02d}/{i}.jpg", "/photos", f"{i:064x}", 1, i, 100, 100,
                         [Face(Box(0, 0, 40, 40), 0.99, marks, embedding=g.vectors[i])],
                         taken_at=f"{2010 + i % 10}-{1 + i % 12:02d}-{1 + i % 28:02d}T10:00:00")
                for i in range(s, min(n, s + 5000))
            ]  # fmt: skip
            store.add_photos(batch)
        store.set_clusters(np.arange(1, n + 1), g.labels[:n] % 1_000_000)
        print(f"store of {n} faces written in {time.perf_counter() - t0:.0f} s", flush=True)
        searcher = FaceSearcher(store)
        t0 = time.perf_counter()
        searcher.refresh()
        print(f"first refresh (face table + photos + index): {time.perf_counter() - t0:.1f} s", flush=True)
        checks = []
        for _ in range(20):
            t0 = time.perf_counter()
            searcher.refresh()
            checks.append(time.perf_counter() - t0)
        print(f"staleness check, nothing changed: p50 {np.median(checks) * 1e3:.1f} ms", flush=True)
        for name, wanted in (
            ("none", FaceFilter()),
            ("date 1 year", FaceFilter(taken_from="2015-01-01", taken_to="2015-12-31")),
            ("folder 1%", FaceFilter(folder="07")),
            ("date+folder", FaceFilter(taken_from="2015-01-01", taken_to="2015-12-31", folder="07")),
        ):
            times = []
            for q in g.queries[:50]:
                t0 = time.perf_counter()
                result = searcher.search(q, k=args.k, filter=wanted)
                times.append(time.perf_counter() - t0)
            p50, p99 = np.percentile(times, [50, 99]) * 1e3
            print(f"  search, filter {name:>12}: {result.searched:>8} faces, {result.strategy:>15}, "
                  f"p50 {p50:.1f} ms, p99 {p99:.1f} ms (staleness check included)", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("-k", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hard", action="store_true")
    parser.add_argument("--quick", action="store_true", help="5k faces, 20 queries")
    parser.add_argument("--store", type=int, metavar="N", help="instead: end to end through a SQLite collection")
    args = parser.parse_args()
    if args.store:
        print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}")
        store_run(args.store, args)
        return
    if args.quick:
        args.sizes, args.queries = [5000], 20
    real = None if args.quick else find_real()
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}; real faces: {real[2] if real else 'none'}")
    print(f"k={args.k}, {args.queries} queries, FILTER_EXACT_BELOW={FILTER_EXACT_BELOW}, "
          f"FILTER_EXACT_FRACTION={FILTER_EXACT_FRACTION}, hard={args.hard}")  # fmt: skip
    rows = []
    for n in args.sizes:
        rows.extend(run(n, args, real))
    print("\n| faces | filter | faces passing | strategy | recall@k | p50 ms | p99 ms |")
    print("|---:|---|---:|---|---:|---:|---:|")
    for n, _build, name, passed, strategy, recall, p50, p99 in rows:
        print(f"| {n:,} | {name} | {passed:,.0f} | {strategy} | {recall:.3f} | {p50:.2f} | {p99:.2f} |")
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
