"""How a person's faces are fused into one template: open-set identification by fusion and enrolment size.

    python benchmarks/template_fusion.py degrade [--out FILE]          # build the group-photo proxy once
    python benchmarks/template_fusion.py eval [--cache FILE] [--quality FILE] [--rounds 5] [--seed 0]
    python benchmarks/template_fusion.py eval --cache ~/.cache/faceatlas-bench/lfw_group_proxy.npz
    python benchmarks/template_fusion.py eval --mix ~/.cache/faceatlas-bench/lfw_group_proxy.npz

``eval`` compares the fusions of ``faceatlas.templates`` (FUSIONS) on faces embedded once by the
default pipeline (``--cache``: an npz with ``emb``, ``quality``, ``paths``, as
lfw_default_embeddings.py writes it; default /tmp/lfw_default.npz). ``--quality`` takes the quality
array from another npz (key ``quality``, same rows) or .npy, so the comparison can be rerun with a
learned quality score (``--mix-quality`` likewise for the ``--mix`` rows). ``--mix``: each image is
taken at random (1/2) from a second cache, the proxy below: galleries and probes mixing sharp and
degraded photos of the same people, where weighting by quality should matter most.

Protocol (open set, NIST FRVT style). The people are split at random (``--seed``) into a validation
half, on which a fusion and its parameters are chosen, and a held-out half, on which it is reported.
Within a half, for each enrolment size k: every person with at least k+1 faces enrols k of them,
drawn at random (``--rounds`` draws); their remaining faces are mated probes. Non-mated probes are
the faces of people not enrolled (fewer than k+1 faces); half of them (by person) calibrate the
threshold at FPIR 1 %, the other half report FPIR, so the threshold is not chosen on the scores it
is judged on. FNIR: a mated probe whose mate is not at rank 1 with a score at or above the
threshold. Rank-1: the mate is the top template (closed set). Each enrolled person weighs the same in
FNIR and rank-1 (LFW has 530 photos of George W Bush), as each probe's error is weighted by
1/(their number of probes).

``degrade`` makes the "group-photo" proxy: each LFW image is downscaled so the face is 20-40 px
between the eyes (deep-funneled LFW has about 45 px), blurred (Gaussian, sigma 0.4-1.2), saved as
JPEG (quality 30-70) and pasted at a random place on a 640x480 grey canvas; then the default
pipeline embeds it again. A proxy, not a labelled group-photo set: the poses and expressions are
LFW's; only the size, blur and compression of faces in group photos are imitated.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import LFW_FULL, machine

DEFAULT_CACHE = Path("/tmp/lfw_default.npz")
PROXY_CACHE = Path.home() / ".cache" / "faceatlas-bench" / "lfw_group_proxy.npz"
NOMINAL_EYES_PX = 45.0  # inter-eye distance of a deep-funneled LFW face (250x250 image)
SIZES = (1, 3, 10, 30)
FPIR = 0.01


# -- the group-photo proxy -----------------------------------------------------------------------------


def degraded(path: str) -> np.ndarray:
    """``path``'s image as a small, blurred, compressed face on a 640x480 canvas (seeded by the path)."""
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(int(hashlib.sha256(path.encode()).hexdigest()[:12], 16))
    image = Image.open(path).convert("RGB")
    scale = rng.uniform(20.0, 40.0) / NOMINAL_EYES_PX
    small = image.resize((max(8, round(image.width * scale)), max(8, round(image.height * scale))), Image.BILINEAR)
    small = small.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.4, 1.2))))
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=int(rng.integers(30, 71)))
    small = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    canvas = Image.new("RGB", (640, 480), (118, 118, 118))
    canvas.paste(small, (int(rng.integers(0, 640 - small.width)), int(rng.integers(0, 480 - small.height))))
    return np.asarray(canvas)


def build_proxy(root: Path, out: Path, batch: int = 16) -> None:
    from faceatlas.pipeline import FaceAnalyzer, primary_face

    analyzer = FaceAnalyzer()
    analyzer.load()
    paths = sorted(str(p) for p in root.glob("*/*.jpg"))
    vectors, qualities, kept = [], [], []
    started = time.perf_counter()
    for start in range(0, len(paths), batch):
        chunk = paths[start : start + batch]
        images = [degraded(p) for p in chunk]
        for path, image, faces in zip(chunk, images, analyzer.analyze_batch(images), strict=True):
            face = primary_face(faces, (image.shape[1], image.shape[0]), "central")
            if face is not None and face.embedding is not None:
                vectors.append(face.embedding)
                qualities.append(face.quality.score if face.quality is not None else 1.0)
                kept.append(path)
        if start % (batch * 50) == 0:
            print(
                f"  {start + len(chunk)}/{len(paths)} images, {len(kept)} faces, {time.perf_counter() - started:.0f} s",
                flush=True,
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        out, emb=np.stack(vectors).astype(np.float32), quality=np.array(qualities, np.float32), paths=np.array(kept)
    )
    print(f"{len(kept)}/{len(paths)} degraded images with a face, {time.perf_counter() - started:.0f} s; {machine()}")


# -- identification ------------------------------------------------------------------------------------

# The candidates: (fusion, parameters); each fusion's parameters are chosen on the validation half.
CANDIDATES: tuple[tuple[str, dict[str, float]], ...] = (
    ("mean", {}),
    ("quality_mean", {}),
    *(("quality_softmax", {"temperature": t}) for t in (0.02, 0.05, 0.1, 0.2)),
    *(("robust", {"scale": s}) for s in (0.03, 0.05, 0.1, 0.2)),
    *(("cluster", {"distance": d, "alpha": a}) for d in (0.04, 0.06, 0.09, 0.15) for a in (0.0, 0.5)),
)


@dataclass(frozen=True)
class Faces:
    emb: np.ndarray
    quality: np.ndarray
    labels: np.ndarray
    names: list[str]


def _qualities(cache: Path, data: Mapping[str, np.ndarray], quality: Path | None) -> np.ndarray:
    if quality is None:
        return np.asarray(data["quality"], np.float32)
    q = np.load(quality)["quality"] if quality.suffix == ".npz" else np.load(quality)
    if len(q) != len(data["paths"]):
        raise SystemExit(f"{quality}: {len(q)} qualities for {len(data['paths'])} faces in {cache}")
    return np.asarray(q, np.float32)


def load_faces(cache: Path, quality: Path | None, mix: Path | None = None, mix_quality: Path | None = None) -> Faces:
    """The faces of ``cache``; with ``mix``, each image found there too is taken from it with
    probability 1/2 (seeded): galleries and probes of clean and degraded photos mixed."""
    data = np.load(cache, allow_pickle=False)
    paths = [str(p) for p in data["paths"]]
    emb, q = data["emb"].astype(np.float32), _qualities(cache, data, quality)
    if mix is not None:
        other = np.load(mix, allow_pickle=False)
        at = {str(p): i for i, p in enumerate(other["paths"])}
        other_q = _qualities(mix, other, mix_quality)
        swap = [(i, at[p]) for i, p in enumerate(paths) if p in at]
        chosen = np.random.default_rng(0).random(len(swap)) < 0.5
        mine, theirs = (np.array([pair[j] for pair, c in zip(swap, chosen, strict=True) if c]) for j in (0, 1))
        emb[mine], q[mine] = other["emb"][theirs], other_q[theirs]
    names = sorted({Path(p).parent.name for p in paths})
    index = {n: i for i, n in enumerate(names)}
    labels = np.array([index[Path(p).parent.name] for p in paths], np.int64)
    return Faces(emb, q, labels, names)


def groups_of(labels: np.ndarray, people: np.ndarray) -> list[np.ndarray]:
    order = np.argsort(labels, kind="stable")
    ids, starts = np.unique(labels[order], return_index=True)
    wanted = set(people.tolist())
    return [g for i, g in zip(ids, np.split(order, starts[1:]), strict=True) if int(i) in wanted]


@dataclass(frozen=True)
class Draw:
    """One round's enrolment at size k within one half of the people."""

    enrolled: list[np.ndarray]  # per enrolled person, the rows enrolled
    mated: np.ndarray  # probe rows
    mated_owner: np.ndarray  # index into enrolled
    mated_weight: np.ndarray  # 1 / (the owner's number of probes)
    calibrate: np.ndarray  # non-mated rows that set the threshold
    report: np.ndarray  # non-mated rows FPIR is reported on


def draws(groups: list[np.ndarray], k: int, rounds: int, seed: int) -> list[Draw]:
    out = []
    for r in range(rounds):
        rng = np.random.default_rng([seed, k, r])
        enrolled, mated, owner, strangers = [], [], [], []
        for g in groups:
            if len(g) > k:
                pick = rng.permutation(g)
                owner.append(np.full(len(g) - k, len(enrolled)))
                enrolled.append(pick[:k])
                mated.append(pick[k:])
            else:
                strangers.append(g)
        side = rng.random(len(strangers)) < 0.5
        owners = np.concatenate(owner)
        counts = np.bincount(owners)
        out.append(
            Draw(
                enrolled,
                np.concatenate(mated),
                owners,
                1.0 / counts[owners],
                np.concatenate([g for g, s in zip(strangers, side, strict=True) if s]),
                np.concatenate([g for g, s in zip(strangers, side, strict=True) if not s]),
            )
        )
    return out


def score(faces: Faces, draw: Draw, fusion: str, params: dict[str, float]) -> tuple[float, float, float]:
    """(FNIR at the calibrated FPIR-1 % threshold, rank-1, FPIR reached on the report half)."""
    from faceatlas._thresholds import threshold_at_far
    from faceatlas.templates import fuse

    templates = np.stack([fuse(faces.emb[g], faces.quality[g], fusion, **params) for g in draw.enrolled])  # type: ignore[arg-type]
    threshold = threshold_at_far((faces.emb[draw.calibrate] @ templates.T).max(axis=1), FPIR)
    fpir = float(((faces.emb[draw.report] @ templates.T).max(axis=1) >= threshold).mean())
    sims = faces.emb[draw.mated] @ templates.T
    top = sims.argmax(axis=1)
    hit = top == draw.mated_owner
    w = draw.mated_weight / draw.mated_weight.sum()
    fnir = float(w @ ~(hit & (sims.max(axis=1) >= threshold)))
    return fnir, float(w @ hit), fpir


def evaluate(faces: Faces, groups: list[np.ndarray], candidates, rounds: int, seed: int) -> dict:
    """{(fusion, params as a tuple), k: (FNIR, rank-1, FPIR, enrolled people, FNIR per round)}, means
    over rounds (every candidate sees the same draws, so per-round differences are paired)."""
    out = {}
    for k in SIZES:
        rounds_k = draws(groups, k, rounds, seed)
        for fusion, params in candidates:
            got = np.array([score(faces, d, fusion, params) for d in rounds_k])
            out[(fusion, tuple(sorted(params.items()))), k] = (*got.mean(axis=0), len(rounds_k[0].enrolled), got[:, 0])
    return out


def label(key: tuple[str, tuple[tuple[str, float], ...]]) -> str:
    fusion, params = key
    return fusion + (f" ({', '.join(f'{n} {v:g}' for n, v in params)})" if params else "")


def run_eval(args: argparse.Namespace) -> None:
    faces = load_faces(args.cache, args.quality, args.mix, args.mix_quality)
    order = np.random.default_rng(args.seed).permutation(len(faces.names))
    validation, held_out = order[: len(order) // 2], order[len(order) // 2 :]
    groups_v, groups_h = groups_of(faces.labels, validation), groups_of(faces.labels, held_out)
    print(
        f"# {args.cache}: {len(faces.emb)} faces of {len(faces.names)} people; qualities from "
        f"{args.quality or 'the cache'}{f'; half the images from {args.mix}' if args.mix else ''}; {args.rounds} rounds, seed {args.seed}; {machine()}",
        flush=True,
    )
    started = time.perf_counter()
    val = evaluate(faces, groups_v, CANDIDATES, args.rounds, args.seed)
    print(
        f"\n## validation half ({len(groups_v)} people): FNIR @ FPIR 1 % / rank-1, by k "
        f"({time.perf_counter() - started:.0f} s)"
    )
    print("| fusion | " + " | ".join(f"k={k}" for k in SIZES) + " | mean FNIR k>1 |")
    print("|---|" + "---|" * (len(SIZES) + 1))
    keys = list(dict.fromkeys(key for key, _k in val))
    chosen: dict[str, tuple] = {}
    for key in keys:
        mean = float(np.mean([val[key, k][0] for k in SIZES if k > 1]))
        cells = " | ".join(f"{val[key, k][0]:.3f} / {val[key, k][1]:.3f}" for k in SIZES)
        print(f"| {label(key)} | {cells} | {mean:.4f} |")
        family = key[0] + (", one vote per view" if dict(key[1]).get("alpha") == 0.0 else "")
        if family not in chosen or mean < chosen[family][1]:
            chosen[family] = (key, mean)
    for extra in args.also:  # e.g. "robust:scale=0.1": reported on the held-out half beside the picks
        fusion, _, rest = extra.partition(":")
        params = {n: float(v) for n, v in (item.split("=") for item in rest.split(",") if item)}
        key = (fusion, tuple(sorted(params.items())))
        chosen[f"{label(key)}, asked for"] = (key, float("nan"))
    picks = list(dict.fromkeys((key[0], tuple(sorted(key[1]))) for key, _m in chosen.values()))
    picks = [(fusion, dict(params)) for fusion, params in picks]
    best = min(chosen.values(), key=lambda c: c[1])[0]
    print(f"\nvalidation winner (lowest mean FNIR over k>1): {label(best)}")
    started = time.perf_counter()
    held = evaluate(faces, groups_h, picks, args.rounds, args.seed + 1)
    sizes = {k: held[next(iter(held))[0], k][3] for k in SIZES}
    print(
        f"\n## held-out half ({len(groups_h)} people), each fusion with its validation-chosen parameters "
        f"({time.perf_counter() - started:.0f} s); enrolled people by k: "
        + ", ".join(f"k={k}: {n}" for k, n in sizes.items())
    )
    print(
        "| fusion | "
        + " | ".join(f"FNIR k={k}" for k in SIZES)
        + " | "
        + " | ".join(f"rank-1 k={k}" for k in SIZES)
        + " | FPIR reached (k=3) | FNIR minus quality_mean's, mean over k>1 (± s.e. over rounds) |"
    )
    print("|---|" + "---|" * (2 * len(SIZES) + 2))
    base = ("quality_mean", ())
    for key in dict.fromkeys(key for key, _m in chosen.values()):
        print(
            f"| {label(key)} | "
            + " | ".join(f"{held[key, k][0]:.3f}" for k in SIZES)
            + " | "
            + " | ".join(f"{held[key, k][1]:.3f}" for k in SIZES)
            + f" | {held[key, 3][2]:.4f} | {_paired(held, key, base)} |"
        )


def _paired(results: dict, key: tuple, base: tuple) -> str:
    diff = np.mean([results[key, k][4] - results[base, k][4] for k in SIZES if k > 1], axis=0)
    return f"{diff.mean():+.4f} ± {diff.std(ddof=1) / np.sqrt(len(diff)):.4f}"


def print_cost(faces: Faces) -> None:
    """What building every template costs, per fusion at its defaults: the gallery's full rebuild
    (all people) and one person's re-fusion after a change (what an enrolment costs)."""
    from faceatlas.templates import FUSIONS, fuse, fuse_groups

    print(f"\n## cost ({len(faces.emb)} faces of {len(faces.names)} people; best of 3)")
    print("| fusion | all templates | one person of 10 faces | one of 30 |")
    print("|---|---|---|---|")
    rng = np.random.default_rng(0)
    for fusion in FUSIONS:
        whole = min(_timed(fuse_groups, faces.emb, faces.quality, faces.labels, fusion) for _ in range(3))
        each = []
        for n in (10, 30):
            rows = rng.choice(len(faces.emb), n, replace=False)
            each.append(min(_timed(fuse, faces.emb[rows], faces.quality[rows], fusion) for _ in range(200)))
        print(f"| {fusion} | {1e3 * whole:.0f} ms | {1e3 * each[0]:.3f} ms | {1e3 * each[1]:.3f} ms |")


def _timed(work, *args) -> float:
    started = time.perf_counter()
    work(*args)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    deg = sub.add_parser("degrade")
    deg.add_argument("--root", type=Path, default=LFW_FULL / "lfw-deepfunneled")
    deg.add_argument("--out", type=Path, default=PROXY_CACHE)
    ev = sub.add_parser("eval")
    ev.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="npz: emb, quality, paths")
    ev.add_argument("--quality", type=Path, help="qualities to use instead (npz with 'quality', or .npy)")
    ev.add_argument("--mix", type=Path, help="a second cache (the proxy): half the images taken from it")
    ev.add_argument("--mix-quality", type=Path, help="qualities for --mix's rows instead of its own")
    ev.add_argument("--no-cost", action="store_true", help="skip the cost table")
    ev.add_argument("--also", action="append", default=[], help="fusion:name=value,... also held out")
    ev.add_argument("--rounds", type=int, default=5)
    ev.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.command == "degrade":
        build_proxy(args.root, args.out)
    else:
        run_eval(args)
        if not args.no_cost:
            print_cost(load_faces(args.cache, args.quality))


if __name__ == "__main__":
    main()
