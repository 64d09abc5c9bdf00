"""Average linkage on the k-NN graph, exact where it matters, with cannot-link constraints.

For unit embeddings the average cosine similarity between two groups is a dot product of sums:
mean(a·b for a in A, b in B) = (ΣA · ΣB) / (|A| |B|). So UPGMA needs no pairwise matrix: each
cluster keeps its sum and size, and a merge candidate is scored exactly in O(d). Candidates are
the cluster pairs joined by at least one k-NN edge; pairs with no face among each other's k
nearest neighbours are never merged (at a face-verification threshold they would not be).
Merges happen best first while the average similarity is at least ``threshold``; a merge that
would put two faces of one photo (or a user's cannot-link pair) in one cluster is refused and that
pair is never proposed again.

Two single faces start a cluster only if ``seed_ok`` agrees (the clusterer asks that each be the
other's nearest neighbour). Without it, a face that nearly joined its own person's cluster but
fell short would pair with its next-best match instead, typically another unmatched face of a
different person: the main source of false clusters when many people appear only once.

After each merge the new cluster's neighbours are all scored again. Old scores cannot stand in as
upper bounds ("reducibility"): avg(A∪B, C) is a weighted mean of avg(A, C) and avg(B, C), but when
no edge joins B and C, avg(B, C) was never a candidate and may be the larger. A pair can then climb
past the threshold after a merge, and rescoring it only when an old entry comes up would miss it.
(tests/test_clustering.py has such a case.) The new scores go into the merged cluster's own list,
sorted. A heap holds only the first current entry of each list, one per cluster rather than one
per scored pair, and the merges and their order are those of a single heap of all entries.
Neighbour lists are arrays that may still name merged clusters; ``owner`` maps those to the
clusters they joined.
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
    pairs = _unique_pairs(np.asarray(edges, dtype=np.int64).reshape(-1, 2), m)
    adjacency = _adjacency(pairs, m)  # may name clusters merged since: ``owner`` names their heirs
    owner = np.arange(m)  # the live cluster each node is now part of
    merged: list[list[int]] = [[] for _ in range(m)]  # the nodes each live cluster has taken in
    version = [0] * m
    alive = [True] * m
    refused: set[tuple[int, int]] = set()

    # Entries (-score, a, b, a's version, b's version), a < b, each in the list of the cluster that
    # scored it (the first ones in one sorted array, list m), best first. A heap holds each list's
    # first entry that is still current; the smallest is the best pair anywhere.
    scores = _pair_scores(sums, sizes, pairs)
    good = scores >= threshold
    first_a, first_b, first_score = pairs[good, 0], pairs[good, 1], scores[good]
    order = np.lexsort((first_b, first_a, -first_score))
    first_a, first_b, first_score = first_a[order].tolist(), first_b[order].tolist(), first_score[order].tolist()
    del pairs, scores, good, order
    lists: list[list[Entry]] = [[] for _ in range(m)]
    cursor = [0] * (m + 1)
    token: list[Token | None] = [None] * (m + 1)
    heap: list[Token] = []

    def settle(x: int) -> None:
        """Point x's token at the first current entry of its list (stale ones are skipped for good)."""
        j = cursor[x]
        if x == m:
            while j < len(first_a):
                a, b = first_a[j], first_b[j]
                if alive[a] and alive[b] and version[a] == version[b] == 0:
                    break
                j += 1
            found = (-first_score[j], first_a[j], first_b[j], 0, 0, m) if j < len(first_a) else None
        else:
            entries = lists[x]
            while j < len(entries):
                _, a, b, va, vb = entries[j]
                if alive[a] and alive[b] and version[a] == va and version[b] == vb:
                    break
                j += 1
            found = (*entries[j], x) if j < len(entries) else None
        cursor[x] = j
        token[x] = found
        if found is not None:
            heapq.heappush(heap, found)

    for x in range(m + 1):
        settle(x)
    while heap:
        top = heapq.heappop(heap)
        x = top[5]
        if token[x] is not top:
            continue  # x's list has moved on since
        _, a, b, va, vb, _ = top
        cursor[x] += 1
        if not (alive[a] and alive[b]) or version[a] != va or version[b] != vb:
            settle(x)  # went stale while it was x's token: one side has merged since
            continue
        if _conflict(a, b, photos, forbidden, members) or (
            seed_ok is not None and sizes[a] == sizes[b] == 1 and not seed_ok(members[a][0], members[b][0])
        ):
            refused.add((a, b))  # final: constraints only grow, singles stay single
            settle(x)
            continue
        if sizes[a] < sizes[b]:  # the bigger keeps its index: fewer nodes to hand over
            a, b = b, a
        sums[a] += sums[b]
        sizes[a] += sizes[b]
        members[a].extend(members[b])
        photos[a] |= photos[b]
        forbidden[a] |= forbidden[b]
        alive[b] = False
        members[b], photos[b], forbidden[b] = [], set(), set()
        version[a] += 1
        merged[b].append(b)
        owner[merged[b]] = a  # a node moves only into a cluster at least twice its size: O(log n) moves
        merged[a].extend(merged[b])
        others = owner[np.concatenate((adjacency[a], adjacency[b]))]
        others.sort()
        distinct = others != a
        distinct[1:] &= others[1:] != others[:-1]
        adjacency[a] = others = others[distinct]
        adjacency[b], lists[b], token[b], merged[b] = _NONE, [], None, []
        entries = []
        if len(others):
            scores = sums[others] @ sums[a] / (sizes[others] * sizes[a])
            keep = scores >= threshold
            for c, score in zip(others[keep].tolist(), scores[keep].tolist(), strict=True):
                lo, hi = (a, c) if a < c else (c, a)
                if (lo, hi) not in refused:
                    entries.append((-score, lo, hi, version[lo], version[hi]))
            entries.sort()
        lists[a], cursor[a] = entries, 0
        settle(a)
        if x == m:
            settle(m)
    return [members[i] for i in range(m) if alive[i]]


_NONE = np.zeros(0, dtype=np.int64)
Entry = tuple[float, int, int, int, int]  # (-score, a, b, a's version, b's version) with a < b
Token = tuple[float, int, int, int, int, int]  # an entry and the list it is the first current one of


def _unique_pairs(edges: np.ndarray, m: int) -> np.ndarray:
    """The distinct node pairs (lo < hi) among ``edges``, sorted; self-loops dropped. One sort of
    int64 keys, far faster than ``np.unique(..., axis=0)`` over millions of rows."""
    lo, hi = np.minimum(edges[:, 0], edges[:, 1]), np.maximum(edges[:, 0], edges[:, 1])
    keys = np.sort((lo * m + hi)[lo != hi])
    keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])] if len(keys) else keys
    return np.stack([keys // m, keys % m], axis=1)


def _adjacency(pairs: np.ndarray, m: int) -> list[np.ndarray]:
    """Each node's neighbours, an array each."""
    node = np.concatenate([pairs[:, 0], pairs[:, 1]])
    other = np.concatenate([pairs[:, 1], pairs[:, 0]])[np.argsort(node, kind="stable")]
    return np.split(other, np.cumsum(np.bincount(node, minlength=m))[:-1]) if m else []


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
