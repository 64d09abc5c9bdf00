"""Small template galleries against strangers: does the 1 % FPIR hold at 2, 5, 10, 20, 50 people?

    python benchmarks/small_galleries.py [--draws 200] [--seed 0] [--parts small scoring large]

People: the held-out half of LFW from calibrate_templates.py's split (same ``--seed``), which the
card's face-versus-template statistics never saw; embeddings from the default pipeline
(lfw_default_embeddings.py). Each draw enrols G people picked at random among those with more than
``enrol`` photos, ``enrol`` photos each (``Gallery.enroll_embeddings`` with the faces' qualities),
and searches:
- strangers: one random photo of every held-out person not enrolled in this draw (FPIR: the share
  named as anyone);
- mated probes: one random other photo of each enrolled person (the share named correctly).

Decision rules, all at the gallery's default ``fpir=1e-2``:
- before: this release's card (face-to-face thresholds measured with MTCNN, no template statistics),
  so a small template gallery decides at the face-to-face threshold (with a note);
- face-to-face, re-measured: the same rule with the thresholds re-measured on the default pipeline;
- after: the card with its face-versus-template statistics (``template_open_set_threshold``).
Parts: ``small`` (the table above), ``scoring`` (``max`` / ``topk`` scoring at ``enrol 3``, whose
thresholds come from ``open_set_threshold``), ``large``: galleries big enough to calibrate themselves,
to compare that with the card's statistics. A large gallery also enrols people with exactly
``enrol`` photos (they have no mated probe), as there are not enough people with more. ``full``:
gallery_lfw.py's split of all of LFW (people with more than ``enrol`` photos enrol their first
``enrol``, the rest are mated probes; people with one photo are the strangers), the same comparison
at sizes the held-out half cannot reach; not held out (half its people calibrated the card).

Confidence intervals (95 %): the Wilson interval treats every stranger search as independent, which
they are not (the same strangers recur across draws, the same gallery meets every stranger); the
two-way bootstrap resamples draws and strangers together (1,000 replicates), the honest one.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import LFW_FULL, machine, require
from calibrate_templates import rows_by_person, split_people
from lfw_default_embeddings import Embedded, embed_default

import faceatlas.gallery.gallery as gallery_module
from faceatlas.gallery.gallery import Gallery
from faceatlas.gallery.store import open_store
from faceatlas.models.cards import DLIB_RESNET_CARD, CalibratedThreshold, ModelCard

# the card's face-to-face thresholds before this change (measured with MTCNN detection)
MTCNN_ERA_THRESHOLDS = (
    CalibratedThreshold(1e-2, 0.9071),
    CalibratedThreshold(1e-3, 0.9258),
    CalibratedThreshold(1e-4, 0.9407),
    CalibratedThreshold(1e-5, 0.9528),
    CalibratedThreshold(1e-6, 0.9623),
)
SHIPPED_TAIL = gallery_module.SELF_CALIBRATION_TAIL
RULES: dict[str, tuple[ModelCard, str, int]] = {  # name: (card, scoring, SELF_CALIBRATION_TAIL)
    "before": (
        dataclasses.replace(DLIB_RESNET_CARD, thresholds=MTCNN_ERA_THRESHOLDS, template_thresholds=()),
        "template",
        10,
    ),
    "face-to-face, re-measured": (dataclasses.replace(DLIB_RESNET_CARD, template_thresholds=()), "template", 10),
    "after": (DLIB_RESNET_CARD, "template", SHIPPED_TAIL),
}
LARGE_RULES = {  # a gallery big enough to calibrate itself: its own tail, or always the card
    "self-calibrated (tail >= 10), else card": (DLIB_RESNET_CARD, "template", 10),
    "card always (what ships, at these sizes)": (DLIB_RESNET_CARD, "template", 10**12),
}
SCORING_RULES = {
    "max, before": (dataclasses.replace(DLIB_RESNET_CARD, thresholds=MTCNN_ERA_THRESHOLDS), "max", 10),
    "max, after": (DLIB_RESNET_CARD, "max", 10),
    "topk, after": (DLIB_RESNET_CARD, "topk", 10),
}


def stub(card: ModelCard) -> SimpleNamespace:
    return SimpleNamespace(embedder=SimpleNamespace(card=card, dim=card.embedding_dim))


@dataclasses.dataclass
class Outcome:
    passed: np.ndarray  # (draws, held-out people): the stranger was named as someone
    searched: np.ndarray  # (draws, held-out people): the person was a stranger in that draw
    named: int = 0  # mated probes named correctly
    mated: int = 0
    thresholds: list[float] = dataclasses.field(default_factory=list)
    notes: int = 0  # draws whose results carried a note


def run(
    data: Embedded,
    groups: dict[int, np.ndarray],
    size: int,
    enrol: int,
    draws: int,
    rules: dict,
    seed: int,
    mated_only: bool = True,
) -> dict[str, Outcome]:
    people = np.array(sorted(groups))
    eligible = np.array([p for p in people if len(groups[p]) > enrol or (not mated_only and len(groups[p]) == enrol)])
    rng = np.random.default_rng([seed, size, enrol])
    out = {name: Outcome(np.zeros((draws, len(people)), bool), np.zeros((draws, len(people)), bool)) for name in rules}
    with tempfile.TemporaryDirectory(
        dir="/dev/shm" if Path("/dev/shm").is_dir() else None
    ) as tmp:  # SQLite off the disk
        for d in range(draws):
            chosen = rng.choice(eligible, size, replace=False)
            store = open_store(Path(tmp) / f"g{d}.db")
            probes, truth = [], []
            first = Gallery(store, stub(DLIB_RESNET_CARD))
            for p in chosen:
                rows = rng.permutation(groups[p])
                first.enroll_embeddings(
                    str(p), data.emb[rows[:enrol]], data.quality[rows[:enrol]], [str(r) for r in rows[:enrol]]
                )
                if len(rows) > enrol:
                    probes.append(rows[enrol])
                    truth.append(str(p))
            strangers = ~np.isin(people, chosen)
            stranger_rows = np.array([rng.choice(groups[p]) for p in people[strangers]])
            for name, (card, scoring, tail) in rules.items():
                gallery_module.SELF_CALIBRATION_TAIL = tail
                g = Gallery(store, stub(card), scoring=scoring)
                mated = g.identify(data.emb[np.array(probes)], k=1)
                stranger = g.identify(data.emb[stranger_rows], k=1)
                o = out[name]
                o.named += sum(r.person == t for r, t in zip(mated, truth, strict=True))
                o.mated += len(truth)
                o.searched[d, strangers] = True
                o.passed[d, strangers] = [r.person is not None for r in stranger]
                o.thresholds.append(stranger[0].threshold)
                o.notes += bool(stranger[0].notes)
            store.close()
    gallery_module.SELF_CALIBRATION_TAIL = SHIPPED_TAIL
    return out


def run_full(data: Embedded, enrol: int) -> dict[str, str]:
    """gallery_lfw.py's split of all of LFW, under each of LARGE_RULES (one gallery: no draws)."""
    groups = rows_by_person(data.labels, np.arange(len(data.names)))
    enrolled = {p: rows for p, rows in groups.items() if len(rows) > enrol}
    strangers = np.array([rows[0] for rows in groups.values() if len(rows) == 1])
    mated = [(r, str(p)) for p, rows in enrolled.items() for r in rows[enrol:]]
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "g.db")
        first = Gallery(store, stub(DLIB_RESNET_CARD))
        for p, rows in enrolled.items():  # rows are in path order: the first photos enrol
            first.enroll_embeddings(
                str(p), data.emb[rows[:enrol]], data.quality[rows[:enrol]], [str(r) for r in rows[:enrol]]
            )
        for name, (card, scoring, tail) in LARGE_RULES.items():
            gallery_module.SELF_CALIBRATION_TAIL = tail
            g = Gallery(store, stub(card), scoring=scoring)
            passed = sum(r.person is not None for r in g.identify(data.emb[strangers], k=1))
            results = g.identify(data.emb[np.array([r for r, _ in mated])], k=1)
            named = sum(r.person == t for r, (_, t) in zip(results, mated, strict=True))
            lo, hi = wilson(passed, len(strangers))
            out[name] = (
                f"{results[0].threshold:.4f} | **{100 * passed / len(strangers):.2f} %** | | "
                f"{100 * lo:.2f}–{100 * hi:.2f} % | {len(strangers):,} | {100 * named / len(mated):.1f} % "
                f"({len(mated):,}) | {int(bool(results[0].notes))}/1 |"
            )
        store.close()
    gallery_module.SELF_CALIBRATION_TAIL = SHIPPED_TAIL
    return out


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def two_way_bootstrap(o: Outcome, rng: np.random.Generator, replicates: int = 1000) -> tuple[float, float]:
    """Resample draws (rows) and strangers (columns) independently: the pigeonhole bootstrap."""
    y, m = o.passed.astype(np.float64), o.searched.astype(np.float64)
    estimates = np.empty(replicates)
    for i in range(replicates):
        wr = np.bincount(rng.integers(0, y.shape[0], y.shape[0]), minlength=y.shape[0])
        wc = np.bincount(rng.integers(0, y.shape[1], y.shape[1]), minlength=y.shape[1])
        estimates[i] = (wr @ y @ wc) / (wr @ m @ wc)
    return float(np.quantile(estimates, 0.025)), float(np.quantile(estimates, 0.975))


def report(enrol: int, size: int, o: Outcome, name: str, rng: np.random.Generator) -> str:
    k, n = int(o.passed.sum()), int(o.searched.sum())
    lo, hi = wilson(k, n)
    blo, bhi = two_way_bootstrap(o, rng)
    return (
        f"| {enrol} | {size} | {name} | {np.mean(o.thresholds):.4f} | **{100 * k / n:.2f} %** "
        f"| {100 * blo:.2f}–{100 * bhi:.2f} % | {100 * lo:.2f}–{100 * hi:.2f} % | {n:,} "
        f"| {100 * o.named / o.mated:.1f} % ({o.mated:,}) | {o.notes}/{len(o.thresholds)} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, default=LFW_FULL / "lfw-deepfunneled")
    parser.add_argument("--seed", type=int, default=0, help="calibrate_templates.py's person split")
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument(
        "--parts", nargs="+", choices=("small", "scoring", "large", "full"), default=["small", "scoring"]
    )
    args = parser.parse_args()
    data = embed_default(require(args.root, "LFW image folders"))
    _, held_out = split_people(len(data.names), args.seed)
    groups = rows_by_person(data.labels, held_out)
    print(f"# held-out half of LFW, seed {args.seed}: {len(groups)} people; {args.draws} draws; {machine()}")
    print(
        "| enrol | people | rule | mean threshold | stranger FPIR (target 1 %) | 95 % CI, two-way bootstrap "
        "| 95 % CI, Wilson | stranger searches | mated named correctly | draws with a note |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(args.seed)
    plan = []  # (enrol, people, rules, draws, only people with a mated probe)
    if "small" in args.parts:
        plan += [(enrol, size, RULES, args.draws, True) for enrol in (3, 1, 5) for size in (2, 5, 10, 20, 50)]
    if "scoring" in args.parts:
        plan += [(3, size, SCORING_RULES, args.draws, True) for size in (2, 10, 50)]
    if "large" in args.parts:  # the most the held-out half allows that still leaves strangers
        plan += [(1, size, LARGE_RULES, 20, False) for size in (1000, 2000)]
        plan += [(2, 800, LARGE_RULES, 20, False), (3, 440, LARGE_RULES, 20, False)]
    pooled: dict[str, list[Outcome]] = {}
    for enrol, size, rules, draws, mated_only in plan:
        started = time.perf_counter()
        outcomes = run(data, groups, size, enrol, draws, rules, args.seed, mated_only)
        for name, o in outcomes.items():
            print(report(enrol, size, o, name, rng), flush=True)
            if rules is RULES and enrol == 3 and size in (2, 5, 10):
                pooled.setdefault(name, []).append(o)
        print(f"<!-- enrol {enrol}, {size} people: {time.perf_counter() - started:.0f} s -->", flush=True)
    if "full" in args.parts:
        for enrol in (1, 3):
            for name, line in run_full(data, enrol).items():
                print(f"| {enrol} | full LFW | {name} | {line}")
    for name, parts in pooled.items():
        k = sum(int(o.passed.sum()) for o in parts)
        n = sum(int(o.searched.sum()) for o in parts)
        print(f"pooled enrol 3, 2/5/10 people, {name}: FPIR {100 * k / n:.2f} % over {n:,} stranger searches")


if __name__ == "__main__":
    main()
