"""Face-versus-template impostor thresholds by template size, for the model card; and the plain
face-to-face thresholds, both with the default pipeline.

    python benchmarks/calibrate_templates.py [--root DIR] [--seed 0] [--scores 30000000] [--embedder NAME]
        [--cache lfw_default.npz]

A gallery's "template" is a person's embeddings fused by ``faceatlas.templates.DEFAULT_FUSION``
(``faceatlas.gallery.gallery.person_templates``, used here as is; the fusion is printed, and the card's
thresholds hold for that fusion only). A stranger's face is nearer to
such a mean than to one face, so a template gallery too small to calibrate itself needs the FAR of
face-versus-template comparisons by template size, measured offline: that is what this prints.

Data: full LFW (deep-funneled), embedded once by ``FaceAnalyzer()`` (lfw_default_embeddings.py).
The people are split at random (``--seed``) into two halves: the card is calibrated on the first
and checked on the second, so ``small_galleries.py`` can measure galleries of people the card never
saw. For each template size k, in rounds: every person of the half with at least k faces gets one
template of k of their faces, drawn at random; every person of the half gives one face, drawn at
random, as a probe; each probe against every other person's template is an impostor score. So each
person weighs the same, whatever their number of photos (LFW has 530 of George W Bush). Rounds go
on until ``--scores`` impostor scores (at most 2,000 rounds); a FAR is reported where at least
MIN_TAIL of them lie above its threshold.

The face-to-face thresholds are computed as benchmarks/calibrate_thresholds.py does (every pair of
full LFW), but from these default-pipeline embeddings.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import LFW_FULL, machine, require
from lfw_default_embeddings import Embedded, embed_default

from faceatlas._thresholds import false_accepts_allowed, observed_far, threshold_at_far
from faceatlas.gallery.gallery import MIN_TAIL, person_templates
from faceatlas.models.cards import get_card
from faceatlas.templates import DEFAULT_FUSION
from faceatlas.types import FaceMatrix
from faceatlas.verification import FARCalibrator

SIZES = (1, 2, 3, 5, 10, 20)
FARS = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
MAX_ROUNDS = 2000


def load_cache(path: Path) -> Embedded:
    """An embeddings cache as ``embed_default`` returns it, read from ``path``."""
    data = np.load(path, allow_pickle=False)
    paths = [str(p) for p in data["paths"]]
    names = sorted({Path(p).parent.name for p in paths})
    index = {n: i for i, n in enumerate(names)}
    labels = np.array([index[Path(p).parent.name] for p in paths], np.int64)
    return Embedded(data["emb"], data["quality"], labels, names, paths)


def split_people(n_people: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(Calibration people, held-out people): label ids, a random half each."""
    order = np.random.default_rng(seed).permutation(n_people)
    return np.sort(order[: n_people // 2]), np.sort(order[n_people // 2 :])


def rows_by_person(labels: np.ndarray, people: np.ndarray) -> dict[int, np.ndarray]:
    order = np.argsort(labels, kind="stable")
    ids, starts = np.unique(labels[order], return_index=True)
    groups = np.split(order, starts[1:])
    wanted = set(people.tolist())
    return {int(i): g for i, g in zip(ids, groups, strict=True) if int(i) in wanted}


def templates(data: Embedded, groups: list[np.ndarray]) -> np.ndarray:
    """One unit template per group of face rows, formed exactly as the gallery forms them."""
    rows = np.concatenate(groups)
    owners = np.repeat(np.arange(len(groups)), [len(g) for g in groups])
    matrix = FaceMatrix(np.arange(len(rows)), owners, data.emb[rows], data.quality[rows])
    _ids, units = person_templates(matrix)
    return units


def impostor_scores(
    data: Embedded, groups: dict[int, np.ndarray], k: int, target: int, rng: np.random.Generator
) -> tuple[np.ndarray, int, int]:
    """(Face-versus-other-person's-template scores for templates of k faces, rounds, template owners)."""
    people = np.array(sorted(groups))
    eligible = np.array([p for p in people if len(groups[p]) >= k])
    per_round = len(eligible) * (len(people) - 1)
    rounds = min(max(math.ceil(target / per_round), 1), MAX_ROUNDS)
    out = []
    for _ in range(rounds):
        probe_rows = np.array([rng.choice(groups[p]) for p in people])
        units = templates(data, [rng.choice(groups[p], k, replace=False) for p in eligible])
        sims = data.emb[probe_rows] @ units.T
        out.append(sims[people[:, None] != eligible[None, :]])
    return np.concatenate(out), rounds, len(eligible)


def genuine_scores(data: Embedded, groups: dict[int, np.ndarray], k: int, rng: np.random.Generator) -> np.ndarray:
    """Per person with more than k faces, 20 draws of a k-face template against one of their other faces."""
    out = []
    for rows in groups.values():
        if len(rows) <= k:
            continue
        for _ in range(20):
            pick = rng.permutation(rows)
            out.append(float(data.emb[pick[k]] @ templates(data, [pick[:k]])[0]))
    return np.array(out)


def calibrated(scores: np.ndarray) -> list[tuple[float, float]]:
    """(FAR, threshold) at each FAR these scores can measure (at least MIN_TAIL above the cut)."""
    return [(far, threshold_at_far(scores, far)) for far in FARS if false_accepts_allowed(len(scores), far) >= MIN_TAIL]


def face_to_face(data: Embedded) -> FARCalibrator:
    sims = data.emb @ data.emb.T
    upper = np.triu_indices(len(data.emb), k=1)
    scores = sims[upper]
    same = data.labels[upper[0]] == data.labels[upper[1]]
    del sims, upper
    return FARCalibrator(targets=FARS).fit(scores, same)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, default=LFW_FULL / "lfw-deepfunneled")
    parser.add_argument("--seed", type=int, default=0, help="the person split (small_galleries.py uses the same)")
    parser.add_argument("--scores", type=int, default=30_000_000, help="impostor scores per template size")
    parser.add_argument("--no-face-to-face", action="store_true")
    parser.add_argument("--embedder", default="dlib_resnet", help="the embedder whose card is calibrated")
    parser.add_argument("--cache", type=Path, help="an npz lfw_default_embeddings.py wrote (emb, quality, paths)")
    args = parser.parse_args()
    if args.cache is not None:
        data = load_cache(args.cache)
    else:
        data = embed_default(
            require(args.root, "LFW image folders"), embedder=None if args.embedder == "dlib_resnet" else args.embedder
        )
    prefix = args.embedder.upper()
    print(
        f"# {len(data.emb)} faces of {len(data.names)} people from {args.cache or args.root}; templates fused by "
        f"{DEFAULT_FUSION!r}; {machine()}",
        flush=True,
    )

    if not args.no_face_to_face:
        started = time.perf_counter()
        cal = face_to_face(data)
        print(
            f"\n## face to face, every pair: {cal.n_genuine_} genuine, {cal.n_impostors_} impostor "
            f"({time.perf_counter() - started:.0f} s)"
        )
        card = {t.far: t.similarity for t in get_card(args.embedder).thresholds}
        print(f"{'FAR':>7s} {'threshold':>10s} {'card now':>9s} {'change':>8s} {'FAR reached':>12s} {'TAR':>8s}")
        for t, th, far, tar in zip(cal.targets, cal.thresholds_, cal.far_, cal.tar_, strict=True):
            now = card.get(t, float("nan"))
            print(f"{t:7.0e} {th:10.4f} {now:9.4f} {th - now:+8.4f} {far:12.2e} {100 * tar:7.2f}%")
        print(f"{prefix}_THRESHOLDS = (")
        for t, th in zip(cal.targets, cal.thresholds_, strict=True):
            print(f"    CalibratedThreshold({t:g}, {th:.4f}),")
        print(")", flush=True)

    calibration, held_out = split_people(len(data.names), args.seed)
    groups_a = rows_by_person(data.labels, calibration)
    groups_b = rows_by_person(data.labels, held_out)
    print(
        f"\n## face versus template, seed {args.seed}: calibration half {len(groups_a)} people "
        f"({sum(map(len, groups_a.values()))} faces), held-out half {len(groups_b)} people "
        f"({sum(map(len, groups_b.values()))} faces)"
    )
    print(
        "| faces | templates (people) | impostor scores | rounds | FAR | threshold | held-out FAR at it "
        "| held-out threshold | held-out TAR at it |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    table: dict[int, list[tuple[float, float]]] = {}
    for k in SIZES:
        started = time.perf_counter()
        rng_a, rng_b = np.random.default_rng([args.seed, k, 0]), np.random.default_rng([args.seed, k, 1])
        scores_a, rounds, owners = impostor_scores(data, groups_a, k, args.scores, rng_a)
        points = calibrated(scores_a)
        if not points:
            print(f"| {k} | {owners} | {len(scores_a)} | {rounds} | too few scores for any FAR |")
            continue
        table[k] = points
        del scores_a
        scores_b, _, owners_b = impostor_scores(data, groups_b, k, args.scores, rng_b)
        genuine_b = genuine_scores(data, groups_b, k, rng_b)
        held = dict(calibrated(scores_b))
        for far, th in points:
            b = held.get(far)
            print(
                f"| {k} | {owners} ({owners_b} held out) | {len(scores_b):,} | {rounds} | {far:.0e} | {th:.4f} "
                f"| {observed_far(scores_b, th):.2e} | {'' if b is None else f'{b:.4f}'} "
                f"| {100 * float((genuine_b >= th).mean()):.2f}% |"
            )
        del scores_b
        print(f"<!-- k={k}: {time.perf_counter() - started:.0f} s -->", flush=True)

    # Averaging more faces can only bring a template nearer to everyone, so at each FAR the threshold
    # for k faces is made at least that for fewer (where sampling noise, mostly at 20 faces and few
    # people, says otherwise): the card's interpolation between sizes is then monotone too.
    print(f"\n# from benchmarks/calibrate_templates.py --seed {args.seed} (calibration half of LFW), monotone in k")
    print(f"{prefix}_TEMPLATE_THRESHOLDS: tuple[TemplateThresholds, ...] = (")
    floor: dict[float, float] = {}
    for k, points in table.items():
        monotone = []
        for far, th in points:
            floor[far] = max(floor.get(far, -np.inf), th)
            monotone.append((far, floor[far]))
        inner = ", ".join(f"CalibratedThreshold({far:g}, {th:.4f})" for far, th in monotone)
        print(f"    TemplateThresholds({k}, ({inner})),")
    print(")")


if __name__ == "__main__":
    main()
