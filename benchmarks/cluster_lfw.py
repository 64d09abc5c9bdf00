"""Clustering LFW by person: faceatlas' clusterers against what users get today, incremental runs, scale.

    python benchmarks/cluster_lfw.py                       # all three measurements
    python benchmarks/cluster_lfw.py --only quality        # quality table only
    python benchmarks/cluster_lfw.py --only sweep          # FaceClusterer by FAR, Chinese Whispers by seed
    python benchmarks/cluster_lfw.py --only incremental --chunks 5
    python benchmarks/cluster_lfw.py --only scale --sizes 25000 50000 100000

Data: every image of LFW (deep-funneled), its primary face ("central", as every LFW protocol
here) from faceatlas' pipeline, through the eval results cache (``gallery_lfw.load``). One image
has no face found: it is left out, so "all" is 13,232 faces, not 13,233.

**quality**: on people with at least 2 images (9,164 images of 1,680 people; 9,163 faces) and on all faces
(single-image people as distractors): pairwise and BCubed precision / recall / F of faceatlas'
clusterers on its unit embeddings (with the quality scores), and of the recipes users get today
on dlib's **raw** descriptors of the same faces (their Euclidean thresholds were tuned for
those, norm ~1.44): dlib's Chinese Whispers at 0.5, DBSCAN eps 0.5 min_samples 3 (Immich-like),
HDBSCAN with sklearn's defaults, average linkage at 0.5. The raw descriptors are computed once
(the same face, aligned by the same aligner, through ``embed_raw``) and cached as an .npz under
~/.cache/faceatlas-bench; ``raw / ||raw||`` is checked against the cached embedding.

**incremental**: all faces, seeded shuffle, added in ``--chunks`` chunks: ``FaceClusterer`` with
``initial_labels`` (the previous labels, -2 for the new faces), by default and with
``reopen=0``, vs a full re-run on everything so far; scores after each chunk and seconds per chunk.

**scale**: the LFW faces plus seeded synthetic face-like embeddings (``index_search.synthetic``,
fitted to the real ones) up to each size; qualities of synthetic faces are drawn from LFW's.
Each size runs in a fresh subprocess: fit seconds and peak RSS during the fit. 1,000,000 is
extrapolated by a power law through the two largest sizes, not measured.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import LFW_FULL, REPO, machine

CACHE = Path.home() / ".cache" / "faceatlas-bench"
COMMAND = "python benchmarks/cluster_lfw.py " + shlex.join(sys.argv[1:])


# -- data ----------------------------------------------------------------------------------------


def load_lfw(root: Path):
    """(paths, identity per face, unit embeddings, qualities, source) for images with a face."""
    from gallery_lfw import load

    from faceatlas.eval.source import AnalyzerSource
    from faceatlas.image import iter_image_files

    source = AnalyzerSource()
    paths = sorted(iter_image_files(root))
    labels, vectors, quality = load(root, source)
    found = ~np.isnan(vectors).any(axis=1)
    missing = [str(p.relative_to(root)) for p, ok in zip(paths, found, strict=True) if not ok]
    keep = np.flatnonzero(found)
    return (
        [paths[i] for i in keep],
        np.array([labels[i] for i in keep]),
        vectors[keep],
        quality[keep],
        source,
        missing,
    )


def raw_descriptors(paths: list[Path], source, batch: int = 32, save_every: int = 1024) -> np.ndarray:
    """dlib's unnormalised descriptors of each image's primary face, cached (resumable) in an .npz.

    The face is the one ``gallery_lfw.load`` used (``primary_faces(..., "central")`` over the
    cached results), aligned by the analyzer's aligner and run through ``embed_raw``. Keys are
    ``raw`` and ``paths`` (not ``emb``/``labels``: ``index_search.find_real`` must not take these
    unnormalised vectors for unit embeddings).
    """
    from gallery_lfw import CACHE as RESULTS

    from faceatlas.eval.runner import primary_faces
    from faceatlas.eval.source import FaceRunner
    from faceatlas.image import load_image

    key = hashlib.sha256(f"{source.key}|{'|'.join(map(str, paths))}".encode()).hexdigest()[:16]
    final = CACHE / f"raw-descriptors-{key}.npz"
    partial = CACHE / f"raw-descriptors-{key}.partial.npz"
    if final.exists():
        with np.load(final, allow_pickle=False) as data:
            return data["raw"]
    raw = np.full((len(paths), 128), np.nan, np.float32)
    done = 0
    if partial.exists():
        with np.load(partial, allow_pickle=False) as data:
            done = int(data["done"])
            raw[:done] = data["raw"][:done]
        print(f"  resuming raw descriptors at {done}/{len(paths)}", file=sys.stderr, flush=True)
    faces = primary_faces(FaceRunner(source, cache=RESULTS, batch_size=32).results(paths), "central")
    analyzer = source.analyzer
    started = time.perf_counter()
    CACHE.mkdir(parents=True, exist_ok=True)
    for start in range(done, len(paths), batch):
        chunk = paths[start : start + batch]
        crops = np.concatenate([analyzer.aligner.align(load_image(p), [faces[p]]) for p in chunk])
        raw[start : start + len(chunk)] = analyzer.embedder.embed_raw(crops)
        end = start + len(chunk)
        if end % save_every < batch or end == len(paths):
            np.savez(partial, raw=raw, done=end)
            rate = (end - done) / (time.perf_counter() - started)
            print(
                f"  raw descriptors {end}/{len(paths)}, {rate:.1f} faces/s, "
                f"~{(len(paths) - end) / rate / 60:.1f} min left",
                file=sys.stderr,
                flush=True,
            )
    np.savez(final, raw=raw, paths=np.array([str(p) for p in paths]))
    partial.unlink(missing_ok=True)
    return raw


def check_raw(raw: np.ndarray, emb: np.ndarray) -> tuple[int, float]:
    """(faces whose raw / ||raw|| is not the cached embedding (cosine <= 0.9999), lowest cosine)."""
    unit = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    cosine = np.einsum("ij,ij->i", unit.astype(np.float64), emb.astype(np.float64))
    return int((cosine <= 0.9999).sum()), float(cosine.min())


# -- measuring -----------------------------------------------------------------------------------


def score(truth: np.ndarray, labels: np.ndarray) -> dict:
    from faceatlas.eval.clustering import clustering_metrics

    r = clustering_metrics(truth.tolist(), np.asarray(labels).tolist())
    return {
        "pp": r.pairwise_precision,
        "pr": r.pairwise_recall,
        "pf": r.pairwise_f1,
        "bp": r.bcubed_precision,
        "br": r.bcubed_recall,
        "bf": r.bcubed_f1,
        "clusters": r.n_clusters,
        "unassigned": r.n_unclustered,
    }


def timed(fit) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    labels = fit()
    return np.asarray(labels), time.perf_counter() - started


def quality_runs(unit: np.ndarray, quality: np.ndarray, raw: np.ndarray) -> list[tuple[str, str, object]]:
    """(row name, input, fit → labels) for every clusterer compared."""
    from sklearn.cluster import HDBSCAN, AgglomerativeClustering

    from faceatlas.clustering import FaceClusterer
    from faceatlas.clustering.baselines import BASELINES

    def ours(**params):
        model = FaceClusterer(**params)
        threshold = model.fit(unit[:2]).threshold_
        shown = ", ".join(f"{k}={v!r}" for k, v in params.items())
        name = f"faceatlas FaceClusterer({shown})" + (" default" if not params else "")
        return (
            f"{name} (cosine {threshold:.4f})",
            "unit + qualities",
            lambda: FaceClusterer(**params).fit(unit, qualities=quality).labels_,
        )

    threshold = FaceClusterer().fit(unit[:2]).threshold_
    runs = [ours(), ours(far=1e-3), ours(far=1e-4)]
    runs += [ours(mutual_seeds=False), ours(consensus=False)]
    runs.append(
        (
            (
                f"reference: sklearn average linkage, cosine distance {1 - threshold:.4f} "
                "(the default's threshold; exact UPGMA, O(n²))"
            ),
            "unit",
            lambda: (
                AgglomerativeClustering(
                    n_clusters=None, metric="cosine", linkage="average", distance_threshold=1 - threshold
                )
                .fit(unit)
                .labels_
            ),
        )
    )
    runs += [
        (
            "HDBSCAN min_cluster_size=2 on unit embeddings",
            "unit",
            lambda: HDBSCAN(min_cluster_size=2, copy=True).fit(unit).labels_,
        ),
        (
            "today: Chinese Whispers, Euclidean 0.5, 100 iterations (dlib/face_recognition)",
            "raw",
            lambda: BASELINES["chinese_whispers"]().fit(raw).labels_,
        ),
    ]
    try:
        import dlib

        runs.append(
            (
                "check: dlib.chinese_whispers_clustering(raw, 0.5) itself",
                "raw",
                lambda: dlib.chinese_whispers_clustering(
                    [dlib.vector(r) for r in raw.astype(np.float64).tolist()], 0.5
                ),
            )
        )
    except ImportError:
        pass
    runs += [
        ("today: DBSCAN eps 0.5, min_samples 3 (Immich-like)", "raw", lambda: BASELINES["dbscan"]().fit(raw).labels_),
        (
            "today: HDBSCAN, sklearn defaults (min_cluster_size 5)",
            "raw",
            lambda: BASELINES["hdbscan"]().fit(raw).labels_,
        ),
        (
            "today: average linkage, Euclidean 0.5",
            "raw",
            lambda: BASELINES["agglomerative"]().fit(raw).labels_,
        ),
    ]
    return runs


HEADER = (
    "| clusterer | input | pairwise P | pairwise R | pairwise F | BCubed P | BCubed R | BCubed F "
    "| clusters | unassigned | seconds |\n|---|---|---|---|---|---|---|---|---|---|---|"
)


def quality(people, emb, quality_scores, raw, multi: np.ndarray, skip_dlib: bool) -> list[str]:
    out = []
    for title, mask in (
        (f"People with at least 2 images: {mask_desc(people, multi)}", multi),
        (f"All faces (single-image people as distractors): {mask_desc(people, np.ones(len(people), bool))}", None),
    ):
        idx = np.flatnonzero(mask) if mask is not None else np.arange(len(people))
        truth = people[idx]
        out += ["", f"**{title}**", "", HEADER]
        for name, on, fit in quality_runs(emb[idx], quality_scores[idx], raw[idx]):
            if skip_dlib and name.startswith("check: dlib"):
                continue
            print(f"  {title[:30]}…: {name}", file=sys.stderr, flush=True)
            labels, seconds = timed(fit)
            s = score(truth, labels)
            out.append(
                f"| {name} | {on} | {s['pp']:.3f} | {s['pr']:.3f} | {s['pf']:.3f} | {s['bp']:.3f} | {s['br']:.3f} "
                f"| **{s['bf']:.3f}** | {s['clusters']:,} | {s['unassigned']:,} | {seconds:.1f} |"
            )
            print(out[-1], file=sys.stderr, flush=True)
            gc.collect()
    return out


SWEEP_FARS = (1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5)


def sweep(people, emb, quality_scores, raw, multi: np.ndarray, seeds: int) -> list[str]:
    """FaceClusterer across the card's FAR range, and Chinese Whispers' spread over seeds."""
    from faceatlas.clustering import FaceClusterer
    from faceatlas.clustering.baselines import ChineseWhispers

    subsets = (("≥ 2 images", np.flatnonzero(multi)), ("all faces", np.arange(len(people))))
    out = [
        "",
        (
            "**FaceClusterer(far=...) by threshold** (pairwise F / BCubed F; the default's threshold is cosine "
            f"{FaceClusterer().fit(emb[:2]).threshold_:.4f})"
        ),
        "",
        "| far | cosine threshold | " + " | ".join(name for name, _ in subsets) + " |",
        "|---|---|" + "---|" * len(subsets),
    ]
    for far in SWEEP_FARS:
        cells = []
        for _, idx in subsets:
            model = FaceClusterer(far=far).fit(emb[idx], qualities=quality_scores[idx])
            s = score(people[idx], model.labels_)
            cells.append(f"{s['pf']:.3f} / {s['bf']:.3f}")
        out.append(f"| {far:g} | {model.threshold_:.4f} | " + " | ".join(cells) + " |")
        print(out[-1], file=sys.stderr, flush=True)
    out += [
        "",
        f"**Chinese Whispers (Euclidean 0.5) over seeds 0-{seeds - 1}** (min-max; its random visiting order)",
        "",
        "| subset | pairwise F | BCubed F | clusters |",
        "|---|---|---|---|",
    ]
    for name, idx in subsets:
        runs = [score(people[idx], ChineseWhispers(seed=seed).fit(raw[idx]).labels_) for seed in range(seeds)]
        spread = {k: (min(r[k] for r in runs), max(r[k] for r in runs)) for k in ("pf", "bf", "clusters")}
        out.append(
            f"| {name} | {spread['pf'][0]:.3f}-{spread['pf'][1]:.3f} | {spread['bf'][0]:.3f}-{spread['bf'][1]:.3f} "
            f"| {spread['clusters'][0]:,}-{spread['clusters'][1]:,} |"
        )
        print(out[-1], file=sys.stderr, flush=True)
    return out


def mask_desc(people: np.ndarray, mask: np.ndarray) -> str:
    return f"{int(mask.sum()):,} faces, {len(np.unique(people[mask])):,} people"


def incremental(people, emb, quality_scores, chunks: int, seed: int) -> list[str]:
    from faceatlas.clustering import FaceClusterer

    order = np.random.default_rng(seed).permutation(len(people))
    parts = np.array_split(order, chunks)
    out = [
        "",
        (
            f"**Incremental vs full re-run**: {len(order):,} faces in {chunks} chunks (seed {seed} shuffle): "
            "FaceClusterer() default (reopens small clusters new faces reach), FaceClusterer(reopen=0) "
            "(keeps every existing cluster), and a full re-run on everything so far"
        ),
        "",
        (
            "| chunk | faces so far | seconds: default / reopen=0 / full re-run "
            "| pairwise F / BCubed F: default | reopen=0 | full re-run | clusters (default / reopen=0 / full) |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    previous = {10: np.zeros(0, np.int64), 0: np.zeros(0, np.int64)}
    totals = [0.0, 0.0, 0.0]
    for c in range(chunks):
        idx = np.concatenate(parts[: c + 1])
        x, q, truth = emb[idx], quality_scores[idx], people[idx]
        runs = {}
        for reopen in (10, 0):
            initial = np.concatenate([previous[reopen], np.full(len(parts[c]), -2, np.int64)])
            runs[reopen] = timed(
                lambda: FaceClusterer(reopen=reopen).fit(x, qualities=q, initial_labels=initial).labels_  # noqa: B023
            )
            previous[reopen] = runs[reopen][0]
        full, full_s = timed(lambda: FaceClusterer().fit(x, qualities=q).labels_)  # noqa: B023
        seconds = [runs[10][1], runs[0][1], full_s]
        totals = [t + s for t, s in zip(totals, seconds, strict=True)]
        scores = [score(truth, runs[10][0]), score(truth, runs[0][0]), score(truth, full)]
        out.append(
            f"| {c + 1} | {len(idx):,} | "
            + " / ".join(f"{s:.1f}" for s in seconds)
            + " | "
            + " | ".join(f"{s['pf']:.3f} / {s['bf']:.3f}" for s in scores)
            + " | "
            + " / ".join(f"{s['clusters']:,}" for s in scores)
            + " |"
        )
        print(out[-1], file=sys.stderr, flush=True)
    out.append("| all | | " + " / ".join(f"{t:.1f}" for t in totals) + " | | | | |")
    return out


# -- scale ---------------------------------------------------------------------------------------


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def scale_worker(n: int, seed: int, root: Path) -> dict:
    """One size, in its own process: build the data, then fit with peak RSS reset just before."""
    from index_search import fitted_space, synthetic

    import faceatlas.clustering.clusterer as clusterer_module
    import faceatlas.clustering.graph as graph_module
    from faceatlas.clustering import FaceClusterer

    _, people, emb, quality_scores, _, _ = load_lfw(root)
    _, ids = np.unique(people, return_inverse=True)
    rng = np.random.default_rng(seed)
    space = fitted_space(emb, ids)
    extra = max(0, n - len(emb))
    synth, synth_ids, _ = synthetic(rng, space, extra) if extra else (np.zeros((0, emb.shape[1]), np.float32), [], None)
    x = np.concatenate([emb[:n], synth])
    truth = np.concatenate([ids[:n], np.asarray(synth_ids, np.int64) + ids.max() + 1])
    q = np.concatenate([quality_scores[:n], rng.choice(quality_scores, extra)])

    stages = {"knn": 0.0, "linkage": 0.0}

    def timing(name, fn):
        def wrapped(*a, **k):
            started = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                stages[name] += time.perf_counter() - started

        return wrapped

    # stage times: building and searching the neighbour index, and the merging
    if hasattr(graph_module, "Neighbours"):
        graph_module.Neighbours.__init__ = timing("knn", graph_module.Neighbours.__init__)
        graph_module.Neighbours.of_rows = timing("knn", graph_module.Neighbours.of_rows)
    elif hasattr(clusterer_module, "knn_graph"):
        clusterer_module.knn_graph = timing("knn", clusterer_module.knn_graph)
    clusterer_module.average_linkage = timing("linkage", clusterer_module.average_linkage)
    gc.collect()
    before = _status_kb("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (peak RSS) to the current RSS
        reset = True
    except OSError:
        reset = False
    labels, seconds = timed(lambda: FaceClusterer().fit(x, qualities=q).labels_)
    peak = _status_kb("VmHWM")
    s = score(truth, labels)
    return {
        "n": len(x),
        "real": min(n, len(emb)),
        "seconds": seconds,
        "knn_s": stages["knn"],
        "linkage_s": stages["linkage"],
        "rss_before_mb": before / 1024,
        "peak_mb": peak / 1024,
        "peak_reset": reset,
        "gated": int((q < 0.3).sum()),
        **s,
    }


def _power_law(xs: list[float], ys: list[float], x: float) -> tuple[float, float]:
    (x1, x2), (y1, y2) = xs[-2:], ys[-2:]
    exponent = float(np.log(y2 / y1) / np.log(x2 / x1))
    return float(y2 * (x / x2) ** exponent), exponent


def scale(sizes: list[int], seed: int, root: Path) -> list[str]:
    rows = []
    for n in sorted(sizes):
        print(f"  scale: {n:,} faces (subprocess)", file=sys.stderr, flush=True)
        done = subprocess.run(
            [sys.executable, __file__, "--scale-worker", str(n), "--seed", str(seed), "--lfw", str(root)],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"  {rows[-1]}", file=sys.stderr, flush=True)
    out = [
        "",
        (
            f"**Scale**: FaceClusterer() default on LFW faces + seeded synthetic faces (seed {seed}), "
            "one fresh process per size"
        ),
        "",
        (
            "| faces | of them real | fit s | k-NN s | linkage s | peak RSS during fit MB "
            "| RSS before fit MB | pairwise F | BCubed F | clusters |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['n']:,} | {r['real']:,} | {r['seconds']:.1f} | {r['knn_s']:.1f} | {r['linkage_s']:.1f} "
            f"| {r['peak_mb']:,.0f} | {r['rss_before_mb']:,.0f} | {r['pf']:.3f} | {r['bf']:.3f} | {r['clusters']:,} |"
        )
    if len(rows) >= 2:
        xs = [r["n"] for r in rows]

        def fit(key: str) -> str:
            values = [r[key] if key != "growth" else r["peak_mb"] - r["rss_before_mb"] for r in rows]
            if min(values) <= 0:
                return "n/a"
            value, exponent = _power_law(xs, values, 1e6)
            return f"~{value:,.0f} (n^{exponent:.2f})"

        out.append(
            f"| 1,000,000 (**extrapolated**: power law through the two largest) | | {fit('seconds')} "
            f"| {fit('knn_s')} | {fit('linkage_s')} | fit's own growth {fit('growth')} MB | | | | |"
        )
    if not all(r["peak_reset"] for r in rows):
        out.append("(peak RSS could not be reset before the fit: it includes building the data)")
    return out


def code_version() -> str:
    """The commit measured, and whether the clustering code differed from it."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True, cwd=REPO
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "src/faceatlas/clustering"],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit.stdout.strip() + (
        " + uncommitted changes in src/faceatlas/clustering" if dirty.stdout.strip() else ""
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lfw", type=Path, default=LFW_FULL / "lfw-deepfunneled")
    parser.add_argument("--only", choices=["quality", "sweep", "incremental", "scale"], nargs="+")
    parser.add_argument("--chunks", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=[25_000, 50_000, 100_000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-dlib-check", action="store_true", help="skip dlib's own Chinese Whispers")
    parser.add_argument("--cw-seeds", type=int, default=5)
    parser.add_argument("--scale-worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scale_worker:
        print(json.dumps(scale_worker(args.scale_worker, args.seed, args.lfw)))
        return
    only = set(args.only or ["quality", "sweep", "incremental", "scale"])
    print(f"load average {os.getloadavg()[0]:.2f} at the start", file=sys.stderr)
    out = [f"Machine: {machine()}", f"Command: `{COMMAND.strip()}`", f"Code: {code_version()}"]
    if only & {"quality", "sweep", "incremental"}:
        paths, people, emb, quality_scores, source, missing = load_lfw(args.lfw)
        out.append(
            f"Data: {len(people):,} LFW faces (deep-funneled, primary face, faceatlas' pipeline); "
            f"no face found in {len(missing)} image(s), left out: {', '.join(missing)}"
        )
    if only & {"quality", "sweep"}:
        raw = raw_descriptors(paths, source)
        bad, lowest = check_raw(raw, emb)
        out.append(
            f"Raw dlib descriptors of the same faces: norm {np.percentile(np.linalg.norm(raw, axis=1), 50):.3f} "
            f"(median); raw/||raw|| vs faceatlas' embedding: {bad} of {len(raw):,} faces below cosine 0.9999 "
            f"(lowest {lowest:.6f})"
        )
        # people with >= 2 images in LFW (counting the image without a face)
        counts: dict[str, int] = {}
        for p in [*people.tolist(), *(m.split("/")[0] for m in missing)]:
            counts[p] = counts.get(p, 0) + 1
        multi = np.array([counts[p] >= 2 for p in people])
    if "quality" in only:
        out += quality(people, emb, quality_scores, raw, multi, args.no_dlib_check)
    if "sweep" in only:
        out += sweep(people, emb, quality_scores, raw, multi, args.cw_seeds)
    if "incremental" in only:
        out += incremental(people, emb, quality_scores, args.chunks, args.seed)
    if "scale" in only:
        out += scale(args.sizes, args.seed, args.lfw)
    out.append("")
    out.append(f"load average {os.getloadavg()[0]:.2f} at the end")
    print("\n".join(out))


if __name__ == "__main__":
    main()
