"""The cost of one group question ("which of these are Ada?") as a collection grows: the sparse
single link ``plan_group`` uses (each face's nearest faces, each node's nearest nodes by centre)
against the full node-by-node matrix it replaced, side by side, each in a fresh process (time and
peak memory).

    python benchmarks/review_scale.py [--faces 10000 50000 200000] [--dense-up-to 20000]

The collection is synthetic: 128-d unit vectors of people with 1-40 photos (a long tail, most
with few), each face its person's centre plus noise; a third of the people with >= 4 photos are
split into two clusters, 5 % of the faces are unassigned and 2 % sit in another person's cluster:
what a review queue meets after a clustering. The dense baseline is the matrix alone (the best
pair of faces of every two nodes, O(nodes²) memory), not a whole question.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine

DIM = 128


def library(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    counts: list[int] = []
    while sum(counts) < n:
        counts.append(int(min(40, rng.zipf(1.8))))
    truth = np.repeat(np.arange(len(counts)), counts)[:n]
    centres = rng.normal(size=(len(counts), DIM))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = centres[truth] + 0.6 * rng.normal(size=(n, DIM)) / np.sqrt(DIM)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = truth.copy()
    big = np.flatnonzero(np.bincount(truth) >= 4)
    split = rng.choice(big, len(big) // 3, replace=False)
    for person in split.tolist():
        faces = np.flatnonzero(truth == person)
        labels[faces[: len(faces) // 2]] = len(counts) + person
    labels[rng.random(n) < 0.05] = -1
    wrong = rng.random(n) < 0.02
    labels[wrong] = rng.choice(labels[labels >= 0], int(wrong.sum()))
    return x.astype(np.float32), labels


def dense_links(x: np.ndarray, labels: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """The replaced computation: the (nodes, nodes) matrix of best face-to-face cosines."""
    rows = np.flatnonzero(labels >= -1)
    lab = labels[rows]
    _, node = np.unique(np.where(lab >= 0, lab, -1 - np.arange(len(lab))), return_inverse=True)
    m = int(node.max()) + 1
    order = np.argsort(node, kind="stable")
    nodes, xs = node[order], x[rows][order]
    starts = np.flatnonzero(np.concatenate([[True], nodes[1:] != nodes[:-1]]))
    link = np.full((m, m), -np.inf, dtype=np.float32)
    for start in range(0, len(xs), chunk):
        block = np.maximum.reduceat(xs[start : start + chunk] @ xs.T, starts, axis=1)
        np.maximum.at(link, nodes[start : start + chunk], block)
    return link.astype(np.float64)


def one(kind: str, n: int) -> dict:
    from faceatlas.clustering.questions import plan_group  # both: the same imports in memory

    x, labels = library(n)
    started = time.perf_counter()
    if kind == "dense":
        link = dense_links(x, labels)
        out = {"nodes": len(link)}
    else:
        asked = plan_group(x, labels, threshold=0.55, scale=0.03)
        out = {"candidates": 0 if asked is None else len(asked.rows)}
    out.update(seconds=time.perf_counter() - started, peak_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if kind == "sparse" and asked is not None:  # the answer "all of them": the next question, same faces
        for label in asked.labels:
            labels[labels == label] = asked.anchor
        started = time.perf_counter()
        plan_group(x, labels, threshold=0.55, scale=0.03)
        out["next_seconds"] = time.perf_counter() - started
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--faces", type=int, nargs="+", default=[10_000, 50_000, 200_000])
    parser.add_argument("--dense-up-to", type=int, default=20_000, help="the dense matrix needs nodes² x 12 bytes")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]))))
        return
    print(f"one group question, {machine()}")
    for n in args.faces:
        x, labels = library(n)
        base = {"faces": n, "nodes": len(np.unique(labels[labels >= 0])) + int((labels == -1).sum())}
        base["data_mib"] = x.nbytes / 2**20
        for kind in ("sparse", "dense"):
            if kind == "dense" and n > args.dense_up_to:
                print(f"  {n:>7,} faces, {base['nodes']:,} nodes  dense: skipped (a {base['nodes']**2 * 12 / 2**30:.0f} GiB matrix)")
                continue
            run = subprocess.run([sys.executable, __file__, "--one", kind, str(n)], capture_output=True, text=True)
            if run.returncode:
                print(f"  {n:>7,} faces  {kind}: failed ({run.stderr.strip().splitlines()[-1:]})")
                continue
            got = json.loads(run.stdout)
            then = f", the next {got['next_seconds']:.2f} s" if "next_seconds" in got else ""
            print(
                f"  {n:>7,} faces, {base['nodes']:,} nodes  {kind:6s} {got['seconds']:7.2f} s{then}  peak"
                f" {got['peak_mib']:7.0f} MiB  (the vectors alone {base['data_mib']:.0f} MiB)",
                flush=True,
            )


if __name__ == "__main__":
    main()
