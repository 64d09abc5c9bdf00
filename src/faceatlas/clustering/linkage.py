"""Average linkage on the k-NN graph, exact where it matters, with cannot-link constraints.

For unit embeddings the average cosine similarity between two groups is a dot product of sums:
mean(a·b for a in A, b in B) = (ΣA · ΣB) / (|A| |B|). So UPGMA needs no pairwise matrix: each
cluster keeps its sum and size, and a merge candidate is scored exactly in O(d). Candidates are
the cluster pairs joined by at least one k-NN edge; pairs with no face among each other's k
nearest neighbours are never merged (at a face-verification threshold they would not be).
Merges happen best first (a heap with lazy invalidation) while the average similarity is at
least ``threshold``; a merge that would put two faces of one photo (or a user's cannot-link
pair) in one cluster is refused and that pair is never proposed again.

Two single faces start a cluster only if ``seed_ok`` agrees (the clusterer asks that each be the
other's nearest neighbour). Without it, a face that nearly joined its own person's cluster but
fell short would pair with its next-best match instead, typically another unmatched face of a
different person: the main source of false clusters when many people appear only once.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Nodes:
    """Starting clusters: each a set of faces with their embedding sum (float64)."""

    sums: np.ndarray  # (m, d)
    sizes: np.ndarray  # (m,) float64
    members: list[list[int]]  # face indices per node
    photos: list[set[int]] = field(default_factory=list)  # photo (group) ids per node; empty: no groups
    forbidden: list[set[int]] = field(default_factory=list)  # faces each node may not be joined with


def average_linkage(
    nodes: Nodes, edges: np.ndarray, threshold: float, seed_ok: Callable[[int, int], bool] | None = None
) -> list[list[int]]:
    """Merge nodes joined by ``edges`` ((e, 2) node index pairs) best first; the resulting clusters
    as lists of face indices (every face of every node, each exactly once). ``seed_ok(face, face)``
    decides whether two single faces may start a cluster."""
    m = len(nodes.sizes)
    sums, sizes = nodes.sums, nodes.sizes.astype(np.float64)
    members = [list(v) for v in nodes.members]
    photos = nodes.photos or [set() for _ in range(m)]
    forbidden = nodes.forbidden or [set() for _ in range(m)]
    adjacency: list[set[int]] = [set() for _ in range(m)]
    for a, b in edges.tolist():
        if a != b:
            adjacency[a].add(b)
            adjacency[b].add(a)
    version = [0] * m
    alive = [True] * m
    refused: set[tuple[int, int]] = set()

    heap: list[tuple[float, int, int, int, int]] = []
    if len(edges):
        pairs = np.unique(np.sort(edges[edges[:, 0] != edges[:, 1]], axis=1), axis=0)
        scores = _pair_scores(sums, sizes, pairs)
        good = scores >= threshold
        heap = [(-s, a, b, 0, 0) for s, (a, b) in zip(scores[good].tolist(), pairs[good].tolist(), strict=True)]
        heapq.heapify(heap)

    while heap:
        _, a, b, va, vb = heapq.heappop(heap)
        if not (alive[a] and alive[b]) or version[a] != va or version[b] != vb:
            continue  # a stale entry: one side has merged since
        if _conflict(a, b, photos, forbidden, members) or (
            seed_ok is not None and sizes[a] == sizes[b] == 1 and not seed_ok(members[a][0], members[b][0])
        ):
            refused.add((min(a, b), max(a, b)))  # final: constraints only grow, singles stay single
            continue
        if sizes[a] < sizes[b]:  # the bigger keeps its index: fewer adjacency updates
            a, b = b, a
        sums[a] += sums[b]
        sizes[a] += sizes[b]
        members[a].extend(members[b])
        photos[a] |= photos[b]
        forbidden[a] |= forbidden[b]
        alive[b] = False
        members[b], photos[b], forbidden[b] = [], set(), set()
        version[a] += 1
        for c in adjacency[b]:
            if c != a:
                adjacency[c].discard(b)
                adjacency[c].add(a)
        adjacency[a] |= adjacency[b]
        adjacency[a] -= {a, b}
        adjacency[b] = set()
        if not adjacency[a]:
            continue
        others = np.fromiter(adjacency[a], dtype=np.int64)
        scores = sums[others] @ sums[a] / (sizes[others] * sizes[a])
        for c, score in zip(others.tolist(), scores.tolist(), strict=True):
            if score >= threshold and (min(a, c), max(a, c)) not in refused:
                heapq.heappush(heap, (-score, min(a, c), max(a, c), version[min(a, c)], version[max(a, c)]))
    return [members[i] for i in range(m) if alive[i]]


def _pair_scores(sums: np.ndarray, sizes: np.ndarray, pairs: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """Average similarity of each node pair, a chunk at a time (gathering every pair's two sums at
    once would take pairs × d × 16 bytes: 4.7 GB for 100,000 faces)."""
    scores = np.empty(len(pairs))
    for start in range(0, len(pairs), chunk):
        a, b = pairs[start : start + chunk, 0], pairs[start : start + chunk, 1]
        scores[start : start + chunk] = np.einsum("ij,ij->i", sums[a], sums[b]) / (sizes[a] * sizes[b])
    return scores


def _conflict(a: int, b: int, photos: list[set[int]], forbidden: list[set[int]], members: list[list[int]]) -> bool:
    """Would merging a and b put two faces of one photo, or a cannot-link pair, together?"""
    if photos[a] and photos[b] and not photos[a].isdisjoint(photos[b]):
        return True
    if forbidden[a] and not forbidden[a].isdisjoint(members[b]):
        return True
    return bool(forbidden[b]) and not forbidden[b].isdisjoint(members[a])
