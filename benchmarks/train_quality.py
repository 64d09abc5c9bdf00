"""Train and evaluate the learned quality model of an embedder card (CR-FIQA's pseudo-labels).

    python benchmarks/train_quality.py extract [--root DIR] [--embedder NAME] [--out FILE]
    python benchmarks/train_quality.py train FILE [--ship]
    python benchmarks/train_quality.py eval FILE
    python benchmarks/train_quality.py speed [--repeat 30] [--embedder NAME]

``extract`` runs every image of a labelled identity-folder set (full LFW by default, see
../shared/data/README.md) through the pipeline's detection, alignment and heuristic quality, and
keeps each image's central face: its measurements (``learned_quality.MEASUREMENTS``), its embedding
and its mirror image's embedding. ``train`` splits the *people* in two halves (seeded): on the first
it computes each face's CR-FIQA pseudo-label — cosine to its own identity's centre (leave-one-out)
over cosine to the nearest other identity's centre, + 1 — and fits a one-hidden-layer MLP
(scikit-learn, 16 units) on the measurements and the face/mirror cosine (``--no-mirror``: without it); ``--ship`` writes the numpy model into
src/faceatlas/models/quality/<card>.npz. ``eval`` scores the other half's faces with the heuristic,
the learned model and random, and reports error-versus-discard (FNMR at FMR 1e-3 and 1e-2 as the
lowest-quality pairs go, pAUC to 20 %) on all genuine/impostor pairs of the held-out people and on
the pose-varied subset (the two faces' yaw differ by >= 20 degrees).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import LFW_FULL, REPO, machine, require

SEED = 17
SHIP = REPO / "src" / "faceatlas" / "models" / "quality"


def extract(root: Path, out: Path, embedder: str | None, batch: int = 32) -> None:
    import cv2

    from faceatlas.image import load_image
    from faceatlas.learned_quality import card_key, measurements
    from faceatlas.pipeline import FaceAnalyzer, primary_face

    analyzer = FaceAnalyzer() if embedder is None else FaceAnalyzer(embedder=embedder)
    analyzer.load()
    paths = sorted(root.glob("*/*.jpg"))
    meas, crops, kept, yaws = [], [], [], []
    emb, flip = [], []
    held: list[tuple[np.ndarray, list]] = []  # each kept face's image and [face], for further parts' alignment
    started = time.perf_counter()

    def flush() -> None:
        if crops:
            vectors, mirrored = analyzer.embed_aligned([im for im, _ in held], [f for _, f in held], np.stack(crops), True)
            emb.append(vectors)
            flip.append(mirrored)
            crops.clear()
            held.clear()

    for start in range(0, len(paths), batch):
        chunk = paths[start : start + batch]
        pixels = [load_image(p) for p in chunk]
        faces, all_crops = analyzer._detect_and_align(pixels)  # the pipeline's own steps, crops kept
        for path, image, found, found_crops in zip(chunk, pixels, faces, all_crops, strict=True):
            face = primary_face(found, (image.shape[1], image.shape[0]), "central")
            if face is None or face.quality is None or face.pose is None:
                continue
            crop = found_crops[found.index(face)]
            grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
            meas.append(measurements(grey, face.landmarks, face.pose, face.quality))
            yaws.append(face.pose.yaw)
            crops.append(crop)
            held.append((image, [face]))
            kept.append(str(path.relative_to(root)))
        flush()
        if start % (batch * 40) == 0:
            print(f"  {start + len(chunk)}/{len(paths)} images, {time.perf_counter() - started:.0f} s", flush=True)
    np.savez(
        out, meas=np.stack(meas), emb=np.concatenate(emb), flip=np.concatenate(flip), yaw=np.array(yaws, np.float32),
        paths=np.array(kept), embedder=np.array(card_key(analyzer.embedder.card)), root=np.array(str(root)),
    )  # fmt: skip
    print(f"{len(kept)}/{len(paths)} images with a face -> {out} ({time.perf_counter() - started:.0f} s, {machine()})")


def _load(path: Path) -> dict:
    data = dict(np.load(path, allow_pickle=False))
    names = np.array([p.split("/")[0] for p in data["paths"].tolist()])
    _, data["labels"] = np.unique(names, return_inverse=True)
    return data


def split_people(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the training and held-out halves, split by person (seeded)."""
    people = np.unique(labels)
    rng = np.random.default_rng(SEED)
    train_people = rng.permutation(people)[: len(people) // 2]
    train = np.isin(labels, train_people)
    return np.flatnonzero(train), np.flatnonzero(~train)


def pseudo_labels(emb: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CR-FIQA's certainty ratio of each face of a person with >= 2 faces: leave-one-out cosine to its
    own centre over (cosine to the nearest other centre + 1 + eps); and the rows it is defined for."""
    people, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    sums = np.zeros((len(people), emb.shape[1]))
    np.add.at(sums, inverse, emb)
    rows = np.flatnonzero(counts[inverse] >= 2)
    own = sums[inverse[rows]] - emb[rows]
    own /= np.linalg.norm(own, axis=1, keepdims=True)
    ccs = np.einsum("ij,ij->i", emb[rows], own)
    centres = sums / np.linalg.norm(sums, axis=1, keepdims=True)
    others = emb[rows] @ centres.T
    others[np.arange(len(rows)), inverse[rows]] = -np.inf
    nnccs = others.max(axis=1)
    return ccs / (nnccs + 1.0 + 1e-6), rows


def features(data: dict, rows: np.ndarray, mirror: bool = True) -> np.ndarray:
    """The model's inputs (``QualityModel.inputs``): measurements, and the face/mirror cosine."""
    parts = [data["meas"][rows]]
    if mirror:
        parts.append(np.einsum("ij,ij->i", data["emb"][rows], data["flip"][rows])[:, None])
    return np.concatenate(parts, axis=1).astype(np.float32)


def fit(x: np.ndarray, y: np.ndarray, heuristic: np.ndarray, mirror: bool = True, hidden: int = 16):
    from sklearn.neural_network import MLPRegressor

    from faceatlas.learned_quality import MEASUREMENTS, MIRROR, QualityModel

    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    mlp = MLPRegressor(hidden_layer_sizes=(hidden,), alpha=1.0, max_iter=500, early_stopping=True, random_state=SEED)
    mlp.fit((x - mean) / scale, y)
    model = QualityModel(
        embedder="", mean=mean.astype(np.float32), scale=scale.astype(np.float32),
        w1=mlp.coefs_[0].astype(np.float32), b1=mlp.intercepts_[0].astype(np.float32),
        w2=mlp.coefs_[1][:, 0].astype(np.float32), b2=float(mlp.intercepts_[1][0]), ranks=np.zeros(1, np.float32),
        levels=np.zeros(1, np.float32), inputs=(*MEASUREMENTS, MIRROR) if mirror else MEASUREMENTS,
    )  # fmt: skip
    quantiles = np.linspace(0.0, 1.0, 201)
    ranks = np.quantile(model.raw(x), quantiles).astype(np.float32)
    levels = np.quantile(heuristic, quantiles).astype(np.float32)
    return QualityModel(**{**model.__dict__, "ranks": ranks, "levels": levels})


def train(path: Path, ship: bool, mirror: bool = True) -> None:
    from dataclasses import replace

    from faceatlas.learned_quality import model_file

    data = _load(path)
    train_rows, _ = split_people(data["labels"])
    y, defined = pseudo_labels(data["emb"][train_rows], data["labels"][train_rows])
    rows = train_rows[defined]
    started = time.perf_counter()
    model = fit(features(data, rows, mirror), y, data["meas"][rows, 5], mirror)
    held_y, held_rows = _held_labels(data)
    pred = model.raw(features(data, held_rows, mirror))
    from scipy.stats import spearmanr

    print(
        f"trained on {len(rows)} faces of {len(np.unique(data['labels'][rows]))} people in "
        f"{time.perf_counter() - started:.0f} s; held-out Spearman(pred, CR label) {spearmanr(pred, held_y)[0]:.3f}, "
        f"heuristic {spearmanr(data['meas'][held_rows, 5], held_y)[0]:.3f}"
    )
    if ship:
        SHIP.mkdir(parents=True, exist_ok=True)
        embedder = str(data["embedder"])
        shipped = replace(
            model, embedder=embedder,
            trained_on=f"{len(rows)} faces of {len(np.unique(data['labels'][rows]))} LFW people (seed {SEED} half)",
        )  # fmt: skip
        target = SHIP / model_file(embedder)
        shipped.save(target)
        print(f"wrote {target} ({target.stat().st_size / 1024:.0f} KiB)")


def _held_labels(data: dict) -> tuple[np.ndarray, np.ndarray]:
    _, held = split_people(data["labels"])
    y, defined = pseudo_labels(data["emb"][held], data["labels"][held])
    return y, held[defined]


def evaluate(path: Path, mirror: bool = True) -> None:
    from faceatlas.eval.edc import compare_quality_scorers, pairwise_quality

    data = _load(path)
    train_rows, held = split_people(data["labels"])
    y, defined = pseudo_labels(data["emb"][train_rows], data["labels"][train_rows])
    model = fit(features(data, train_rows[defined], mirror), y, data["meas"][train_rows[defined], 5], mirror)
    learned = np.zeros(len(data["labels"]), np.float32)
    learned[held] = model.score(features(data, held, mirror))
    heuristic = data["meas"][:, 5]
    rng = np.random.default_rng(SEED)
    a, b, genuine = _pairs(data["labels"], held, rng)
    scores = np.einsum("ij,ij->i", data["emb"][a], data["emb"][b])
    pose_varied = np.abs(data["yaw"][a] - data["yaw"][b]) >= 20
    qualities = {
        "heuristic": heuristic,
        "learned": learned,
        "mirror cosine alone": features(data, np.arange(len(learned)))[:, -1],
    }
    groups = (("all held-out pairs", np.ones(len(a), bool)), ("pose-varied pairs (|yaw a - yaw b| >= 20)", pose_varied))
    for name, keep in groups:
        g = keep & genuine
        print(f"\n{name}: {int(g.sum())} genuine, {int((~genuine).sum())} impostor (all held-out impostors)")
        for fmr in (1e-3, 1e-2):
            report = compare_quality_scorers(
                scores[g], scores[~genuine],
                {k: pairwise_quality(q[a[g]], q[b[g]]) for k, q in qualities.items()}, fmr=fmr,
            )  # fmt: skip
            print(report.table())
            at = _nearest_index(report, 0.2)
            fnmr = {k: c.fnmr for k, c in report.curves.items()}
            for k in ("heuristic", "learned"):
                cut = 1 - fnmr[k][at] / fnmr[k][0] if fnmr[k][0] else float("nan")
                print(f"  {k}: FNMR {fnmr[k][0]:.4f} -> {fnmr[k][at]:.4f} at 20 % discard ({100 * cut:.1f} % cut)")


def _nearest_index(report, fraction: float) -> int:
    fractions = next(iter(report.curves.values())).discard_fractions
    return int(np.argmin(np.abs(np.asarray(fractions) - fraction)))


def _pairs(labels: np.ndarray, held: np.ndarray, rng: np.random.Generator):
    """Every genuine pair of held-out people with <= 30 faces each (bigger ones sampled), and 20 impostors per genuine."""
    by_person: dict[int, list[int]] = {}
    for row in held.tolist():
        by_person.setdefault(int(labels[row]), []).append(row)
    ga, gb = [], []
    for rows in by_person.values():
        if len(rows) < 2:
            continue
        rows = rng.permutation(rows)[:30].tolist()
        for i in range(len(rows)):
            for j in range(i + 1, len(rows)):
                ga.append(rows[i])
                gb.append(rows[j])
    n_imp = 20 * len(ga)
    ia, ib = rng.choice(held, n_imp), rng.choice(held, n_imp)
    different = labels[ia] != labels[ib]
    a = np.concatenate([ga, ia[different]])
    b = np.concatenate([gb, ib[different]])
    genuine = np.concatenate([np.ones(len(ga), bool), np.zeros(int(different.sum()), bool)])
    return a, b, genuine


def speed(repeat: int, embedder: str | None = None) -> None:
    """The pipeline's cost with the learned quality against the heuristic only, interleaved, as a ratio."""
    import skimage.data
    from matplotlib import cbook

    from faceatlas.image import load_image
    from faceatlas.pipeline import FaceAnalyzer

    images = [skimage.data.astronaut(), load_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))]
    chosen = {} if embedder is None else {"embedder": embedder}
    learned, heuristic = FaceAnalyzer(**chosen).load(), FaceAnalyzer(quality="heuristic", **chosen).load()
    times: dict[str, list[float]] = {"learned": [], "heuristic": []}
    for _ in range(repeat):
        for name, analyzer in (("learned", learned), ("heuristic", heuristic)):
            started = time.perf_counter()
            analyzer.analyze_batch(images)
            times[name].append(time.perf_counter() - started)
    median = {name: float(np.median(t)) * 1000 / len(images) for name, t in times.items()}
    model = learned.quality_model
    x = np.tile(model.mean, (1000, 1))
    started = time.perf_counter()
    model.score(x)
    per_face = (time.perf_counter() - started) * 1000 / 1000
    print(
        f"analyze, median ms per one-face image: learned {median['learned']:.1f}, heuristic {median['heuristic']:.1f} "
        f"(x{median['learned'] / median['heuristic']:.2f}); the model alone {per_face * 1000:.1f} us a face; {machine()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("extract")
    p.add_argument("--root", type=Path, default=LFW_FULL / "lfw-deepfunneled")
    p.add_argument("--embedder")
    p.add_argument("--out", type=Path, default=Path.home() / ".cache" / "faceatlas-bench" / "quality_features.npz")
    for name in ("train", "eval"):
        p = sub.add_parser(name)
        p.add_argument("file", type=Path)
        p.add_argument("--no-mirror", dest="mirror", action="store_false", help="without the face/mirror agreement")
        if name == "train":
            p.add_argument("--ship", action="store_true")
    p = sub.add_parser("speed")
    p.add_argument("--repeat", type=int, default=30)
    p.add_argument("--embedder")
    args = parser.parse_args()
    if args.command == "speed":
        speed(args.repeat, args.embedder)
    elif args.command == "extract":
        args.out.parent.mkdir(parents=True, exist_ok=True)
        extract(require(args.root, "labelled identity folders"), args.out, args.embedder)
    elif args.command == "train":
        train(args.file, args.ship, args.mirror)
    else:
        evaluate(args.file, args.mirror)


if __name__ == "__main__":
    main()
