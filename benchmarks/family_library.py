"""A synthetic family library: the wrong merges of look-alike relatives that birth dates and capture
dates avoid, at equal recall (issue 17, item 4).

    python benchmarks/family_library.py [--min-photos 10] [--seed 17] [--json out.json]
    # needs the cache of lfw_default_embeddings.py (default embedder on full LFW), or --cache PATH

The library: full LFW's people with at least ``--min-photos`` photos, paired into families by
look-alikeness (greedily, the two identities whose embedding centres are closest; Serena and Venus
Williams come first), each family a pair of siblings (born 1.5-6 years apart) or a parent and a child
(22-38 years apart), alternately. LFW has no dates and no children: every photo gets a synthetic
capture date, uniform over the person's life ("lifelong archive": birth to 2026) or over a phone
library's years ("digital library": 2000-2026, after birth), and a face is an adult LFW photo
whatever its synthetic age. So what is measured is what the date rules can rule out, not how faces age.

The user: indexes the oldest 30 % of each person's photos, clusters them, names each person's
largest cluster and types the person's birth date; the other 70 % arrive later and are clustered
incrementally (named clusters frozen, names never merged: as ``cluster_collection`` does), with and
without ``lifespan_constraints``. "dates + ages" adds simulated age estimates (true age at the
photo's date + N(0, 6 years): MAE 4.8 years, a typical age regressor's) under ``AgeCheck()``: a
face its estimate rules out leaves the person after clustering (``LifespanRules.settle``); "ages
hard" makes those bars cannot-links, as dates are. faceatlas ships no age model, so these rows say
what one would add.

Reported per setting: wrong joins (faces in the named cluster of another person, and how many of
those are the person's relative), BCubed precision / recall, and the person recall (a person's
faces in their named cluster). "At equal recall" ("plain at R"): the wrong joins of a plain threshold
(no dates) of the same person recall, interpolated along a sweep of stricter thresholds.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402

from faceatlas.clustering import NOT_CLUSTERED, FaceClusterer  # noqa: E402
from faceatlas.clustering.lifespan import DAYS_PER_YEAR, AgeCheck, lifespan_constraints  # noqa: E402
from faceatlas.eval.clustering import clustering_metrics  # noqa: E402
from faceatlas.models.cards import get_card  # noqa: E402

END = np.datetime64("2026-11-30", "D")
DIGITAL_START = np.datetime64("2000-01-01", "D")
SEED_FRACTION = 0.3
AGE_SIGMA = 6.0


def default_cache() -> Path:
    found = sorted((Path.home() / ".cache" / "faceatlas-bench").glob("default-*.npz"))
    if not found:
        raise SystemExit("no cache of benchmarks/lfw_default_embeddings.py found; run it first, or pass --cache")
    return found[-1]


@dataclass
class Library:
    x: np.ndarray  # unit embeddings
    quality: np.ndarray
    person: np.ndarray  # identity per face, 0..
    family: np.ndarray  # family per identity (-1: none)
    born: np.ndarray  # datetime64[D] per identity
    names: list[str]


def families(x: np.ndarray, person: np.ndarray, n_people: int) -> np.ndarray:
    """Pair identities greedily by the cosine of their embedding centres (closest first)."""
    centres = np.stack([x[person == p].mean(0) for p in range(n_people)])
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    sims = centres @ centres.T
    order = sorted(combinations(range(n_people), 2), key=lambda ab: -sims[ab])
    family = np.full(n_people, -1)
    for a, b in order:
        if family[a] < 0 and family[b] < 0:
            family[a] = family[b] = max(family.max(), -1) + 1
    return family


def build(cache: Path, min_photos: int, rng: np.random.Generator) -> Library:
    data = np.load(cache)
    names_all = np.array([Path(p).parent.name for p in data["paths"]])
    uniq, inverse, counts = np.unique(names_all, return_inverse=True, return_counts=True)
    keep = counts[inverse] >= min_photos
    people = np.flatnonzero(counts >= min_photos)
    person = np.searchsorted(people, inverse[keep])
    x = data["emb"][keep].astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    family = families(x, person, len(people))
    born = np.empty(len(people), "datetime64[D]")
    for f in range(family.max() + 1):
        a, b = np.flatnonzero(family == f)
        gap = rng.uniform(1.5, 6.0) if f % 2 == 0 else rng.uniform(22.0, 38.0)  # siblings, then parent and child
        first = np.datetime64("1940-01-01", "D") + int(rng.uniform(0, 2015 - 1940 - gap) * DAYS_PER_YEAR)
        elder, younger = (a, b) if rng.random() < 0.5 else (b, a)
        born[elder], born[younger] = first, first + int(gap * DAYS_PER_YEAR)
    for p in np.flatnonzero(family < 0):
        born[p] = np.datetime64("1940-01-01", "D") + int(rng.integers(0, 60 * 365))
    return Library(x, data["quality"][keep].astype(np.float64), person, family, born, [str(uniq[p]) for p in people])


def capture_dates(lib: Library, digital: bool, rng: np.random.Generator) -> np.ndarray:
    start = lib.born[lib.person]
    if digital:
        start = np.maximum(start, DIGITAL_START)
    span = (END - start).astype(np.int64)
    return start + (rng.random(len(span)) * span).astype(np.int64)


def run(lib: Library, dates: np.ndarray, far: float, rules: str, rng: np.random.Generator) -> dict:
    """The user's library: seed (oldest 30 % per person) clustered and named, the rest incremental."""
    n = len(lib.x)
    card = get_card("dlib_resnet")
    clusterer = FaceClusterer(card=card, far=far)
    seed = np.zeros(n, bool)
    for p in range(len(lib.names)):
        rows = np.flatnonzero(lib.person == p)
        rows = rows[np.argsort(dates[rows])]
        seed[rows[: max(2, int(round(SEED_FRACTION * len(rows))))]] = True
    seed_rows = np.flatnonzero(seed)
    seed_labels = clusterer.fit(lib.x[seed_rows], qualities=lib.quality[seed_rows]).labels_
    initial = np.full(n, NOT_CLUSTERED, np.int64)
    initial[seed_rows] = seed_labels
    named: dict[int, int] = {}  # cluster -> person the user named it
    for p in range(len(lib.names)):
        mine = initial[(lib.person == p) & (initial >= 0)]
        if not len(mine):
            continue
        for cluster in np.bincount(mine).argsort()[::-1]:
            members = lib.person[initial == cluster]
            if cluster in named or not len(members):
                continue
            if np.bincount(members).argmax() == p:  # the user names a cluster that is mostly this person
                named[int(cluster)] = p
            break
    heads = [int(np.flatnonzero(initial == c)[0]) for c in named]
    cannot = np.array(list(combinations(heads, 2)), np.int64).reshape(-1, 2)
    if rules != "none":
        ages = None
        if rules != "dates":
            true_age = (dates - lib.born[lib.person]).astype(np.float64) / DAYS_PER_YEAR
            ages = true_age + rng.normal(0.0, AGE_SIGMA, n)
        born = {c: lib.born[p].item() for c, p in named.items()}
        lifespan = lifespan_constraints(initial, dates, born, ages=ages, age_check=AgeCheck(soft=rules != "ages hard"))
        initial[lifespan.evict] = NOT_CLUSTERED
        cannot = np.concatenate([cannot, lifespan.cannot_link])
    labels = clusterer.fit(
        lib.x, qualities=lib.quality, cannot_link=cannot, initial_labels=initial, frozen_labels=list(named)
    ).labels_
    if rules != "none":
        labels = lifespan.settle(labels)
    wrong = relatives = person_hits = 0
    for cluster, p in named.items():
        members = lib.person[labels == cluster]
        others = members[members != p]
        wrong += len(others)
        relatives += int((lib.family[others] == lib.family[p]).sum()) if lib.family[p] >= 0 else 0
        person_hits += int((members == p).sum())
    named_people = set(named.values())
    report = clustering_metrics(lib.person.tolist(), labels.tolist())
    precision, recall = report.bcubed_precision, report.bcubed_recall
    return {
        "far": far,
        "rules": rules,
        "named": len(named),
        "wrong_joins": wrong,
        "relative_joins": relatives,
        "person_recall": person_hits / max(1, int(np.isin(lib.person, list(named_people)).sum())),
        "bcubed_precision": precision,
        "bcubed_recall": recall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--min-photos", type=int, default=10)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    lib = build(args.cache or default_cache(), args.min_photos, rng)
    n_fam = int(lib.family.max() + 1)
    print(f"{len(lib.x)} faces of {len(lib.names)} people in {n_fam} families; {machine()}")
    results = []
    sweep = (1e-2, 3e-3, 1e-3, 3.3e-4, 1e-4, 3e-5, 1e-5, 3e-6)
    for library in ("lifelong archive", "digital library"):
        dates = capture_dates(lib, library == "digital library", np.random.default_rng(args.seed + 1))
        rows = []
        for far in sweep:
            for rules in ("none", "dates", "dates + ages", "ages hard") if far in (1e-2, 1e-3, 3.3e-4) else ("none",):
                row = run(lib, dates, far, rules, np.random.default_rng(args.seed + 2))
                rows.append({**row, "library": library})
        plain = sorted((r for r in rows if r["rules"] == "none"), key=lambda r: r["person_recall"])
        for row in rows:  # the wrong joins of a plain threshold of the same person recall
            row["plain_wrong_at_recall"] = float(
                np.interp(row["person_recall"], [r["person_recall"] for r in plain], [r["wrong_joins"] for r in plain])
            )
        print(f"\n{library} (FAR: the merge threshold's per-comparison false-accept rate; 3.3e-4 is the default)")
        print(
            f"  {'FAR':>7} {'rules':12} {'wrong':>5} {'relat.':>6} {'person R':>8} {'BCubed P':>8} {'BCubed R':>8}"
            f" {'plain at R':>10}"
        )
        for row in rows:
            print(
                f"  {row['far']:7.1e} {row['rules']:12} {row['wrong_joins']:5d} {row['relative_joins']:6d}"
                f" {row['person_recall']:8.3f} {row['bcubed_precision']:8.3f} {row['bcubed_recall']:8.3f}"
                f" {row['plain_wrong_at_recall']:10.1f}"
            )
        results.extend(rows)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
