"""What one change costs an open gallery: catching up from the store's change log vs re-reading it.

    python benchmarks/gallery_updates.py                    # 10k and 100k faces, SQLite
    python benchmarks/gallery_updates.py --sizes 200000 --people-ratio 0.2

A service keeps one Gallery open while people are enrolled, through it or by other processes.
Before the change log, every write made the next ``identify`` re-read every face and recompute
every template and the template calibration. Both ways run here side by side on the same store:
the "re-read" gallery's store answers ``changes_since`` with None, which is what a store does when
its log cannot say, so it takes the full path.

Per size: a seeded synthetic gallery (5 faces per person by default) is enrolled once; then, for
each of ``--rounds`` rounds, one face is enrolled for an existing person (the common write) and
both galleries identify one probe; the time of that first identify after the write is recorded.
Reported: median and p90 per gallery, the ratio, and the steady identify time for reference.
The calibration is redone by both when the gallery grew by 2 % (not within these rounds).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine

from faceatlas.gallery.gallery import Gallery
from faceatlas.models.cards import DLIB_RESNET_CARD

DIM = 128


class _Embedder:
    card = DLIB_RESNET_CARD
    dim = DIM


class _Analyzer:  # identify() gets embeddings here: no model is loaded
    embedder = _Embedder()


def _unit(rng: np.random.Generator, n: int, centre: np.ndarray | None = None, spread: float = 1.0) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32) * spread
    if centre is not None:
        v += centre
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def build(url: str, faces: int, per_person: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    people = faces // per_person
    centres = _unit(rng, people)
    with Gallery.open(url, _Analyzer()) as g:
        for p in range(people):
            g.enroll_embeddings(f"p{p}", _unit(rng, per_person, centres[p], 0.08))


def measure(url: str, rounds: int, seed: int) -> dict[str, list[float]]:
    rng = np.random.default_rng(seed + 1)
    probe = _unit(rng, 1)
    incremental = Gallery.open(url, _Analyzer())
    reread = Gallery.open(url, _Analyzer())
    reread.store.changes_since = lambda version: None  # type: ignore[method-assign]
    writer = Gallery.open(url, _Analyzer())
    times: dict[str, list[float]] = {"change log": [], "re-read": [], "steady": []}
    try:
        for g in (incremental, reread):
            g.identify(probe)  # the first load is the same for both
        for r in range(rounds):
            writer.enroll_embeddings(f"p{r}", _unit(rng, 1))
            for name, g in (("change log", incremental), ("re-read", reread)):
                t0 = time.perf_counter()
                answer = g.identify(probe)
                times[name].append(time.perf_counter() - t0)
            assert [c.person for c in answer[0].candidates] == [
                c.person for c in incremental.identify(probe)[0].candidates
            ]
            t0 = time.perf_counter()
            incremental.identify(probe)
            times["steady"].append(time.perf_counter() - t0)
    finally:
        for g in (incremental, reread, writer):
            g.close()
    return times


def _ms(values: list[float], q: float) -> float:
    return float(np.percentile(values, q) * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--per-person", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"# {machine()}; load average {os.getloadavg()[0]:.2f}")
    print(
        "| faces | people | identify after a write: change log, median / p90 ms | re-read, median / p90 ms | "
        "speed-up (medians) | steady identify ms |"
    )
    print("|---|---|---|---|---|---|")
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            url = str(Path(tmp) / "g.db")
            build(url, n, args.per_person, args.seed)
            t = measure(url, args.rounds, args.seed)
        inc, full = np.median(t["change log"]), np.median(t["re-read"])
        print(
            f"| {n:,} | {n // args.per_person:,} | {_ms(t['change log'], 50):.1f} / {_ms(t['change log'], 90):.1f} | "
            f"{_ms(t['re-read'], 50):.1f} / {_ms(t['re-read'], 90):.1f} | {full / inc:.1f}x | "
            f"{_ms(t['steady'], 50):.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
