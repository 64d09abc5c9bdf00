"""Open-set 1:N identification: gallery/probe split, templates, CMC, FNIR at FPIR, DET (NIST FRVT style).

Inputs are embeddings (rows L2-normalised; score = dot product, higher = more alike) and labels.
A probe that has no embedding (no face found, unreadable) is a row of NaN.

Split (:func:`split_gallery_probes`)
------------------------------------
Images keep their given order within each identity.

* An identity with more than ``n_enrol`` images is *enrollable*. A fraction ``nonmated_fraction``
  of the enrollable identities (chosen with ``seed``, rounded to the nearest count) is held out;
  the rest are *enrolled*: their first ``n_enrol`` images go to the gallery, the others are
  **mated probes**.
* Every image of a held-out identity, and of an identity with at most ``n_enrol`` images (on
  LFW-like data most identities have a single image), is a **non-mated probe**: that person is not
  in the gallery. So no identity is both enrolled and a non-mated probe.

Search
------
The protocol (``faceatlas eval identification``) measures faceatlas's own gallery: the gallery
side is enrolled into an in-memory :class:`~faceatlas.gallery.Gallery` and every probe is scored
by ``Gallery.scores``, the scores ``Gallery.identify`` ranks (:class:`GallerySearch`,
:func:`gallery_open_set_report`). :func:`open_set_report` measures any other system's gallery
entries instead: dot products, several entries of one identity fused by their maximum.

Measures (NIST IR 8271 definitions, rank 1)
-------------------------------------------
Candidates are identities. A mated probe's *rank* is 1 + the number of other identities scoring **at least** its
mate's score (ties go against the mate, so a degenerate system cannot look perfect).

* **CMC**: rank-k identification rate = fraction of mated probes with rank <= k (closed-set;
  ranks 1..20 for the curve).
* **FPIR(t)** = fraction of non-mated probes whose top-1 score is >= t.
* **FNIR(t)** = fraction of mated probes whose mate is not at rank 1 with score >= t.
* **FNIR at FPIR f**: t is the lowest threshold with FPIR(t) <= f, i.e. just above the
  (floor(f * N) + 1)-th highest non-mated top score (N non-mated probes;
  ``faceatlas._thresholds.threshold_at_far``). Reported as not
  measurable (None plus a note) when f * N < 1: no threshold can show that FPIR.
* **DET**: (FPIR(t), FNIR(t)) for every distinct finite score t.

A probe without an embedding is searched as if it found nothing: a mated one is a miss at every
rank and threshold (counts against CMC and FNIR), a non-mated one is correctly rejected (never a
false positive). Both stay in their denominators and are counted in the report. A mated probe whose
identity has no gallery entry (e.g. every enrolment image failed) is likewise a miss.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Self

import numpy as np

from faceatlas._thresholds import false_accepts_allowed, threshold_at_far
from faceatlas.errors import InvalidArgumentError
from faceatlas.types import FaceMatrix
from faceatlas.vector_index import unit_rows

if TYPE_CHECKING:
    from faceatlas.gallery.gallery import Scoring

__all__ = [
    "CMC_MAX_RANK",
    "GalleryProbeSplit",
    "GallerySearch",
    "IdentificationReport",
    "build_templates",
    "gallery_open_set_report",
    "open_set_report",
    "plot_det",
    "split_gallery_probes",
]

CMC_MAX_RANK = 20
_CHUNK = 2048  # probes scored at a time, to bound memory on large galleries


# --- split and templates ---------------------------------------------------------


class GalleryProbeSplit(NamedTuple):
    gallery: np.ndarray  # indices of enrolment images, ascending
    probes: np.ndarray  # indices of probe images, ascending
    probe_mated: np.ndarray  # bool, aligned with ``probes``: is the probe's identity enrolled?


def _groups(labels: Sequence[Hashable]) -> dict[Hashable, list[int]]:
    groups: dict[Hashable, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(label, []).append(i)
    return groups


def split_gallery_probes(
    labels: Sequence[Hashable], n_enrol: int = 1, nonmated_fraction: float = 0.5, seed: int = 0
) -> GalleryProbeSplit:
    """Split image indices into gallery and probes (see the module docstring for the rule)."""
    if n_enrol < 1:
        raise InvalidArgumentError(f"n_enrol must be at least 1, got {n_enrol}")
    if not 0.0 <= nonmated_fraction <= 1.0:
        raise InvalidArgumentError(f"nonmated_fraction must lie in [0, 1], got {nonmated_fraction}")
    groups = _groups(list(labels))
    # sorted by their text so the draw does not depend on the order identities first appear in
    enrollable = sorted((label for label, idx in groups.items() if len(idx) > n_enrol), key=str)
    order = np.random.default_rng(seed).permutation(len(enrollable))
    n_held_out = round(nonmated_fraction * len(enrollable))
    enrolled = {enrollable[i] for i in order[n_held_out:]}

    gallery, probes, mated = [], [], []
    for label, idx in groups.items():
        if label in enrolled:
            gallery.extend(idx[:n_enrol])
            probes.extend(idx[n_enrol:])
            mated.extend([True] * (len(idx) - n_enrol))
        else:
            probes.extend(idx)
            mated.extend([False] * len(idx))
    probe_order = np.argsort(probes, kind="stable")
    return GalleryProbeSplit(
        gallery=np.sort(np.array(gallery, dtype=np.int64)),
        probes=np.array(probes, dtype=np.int64)[probe_order],
        probe_mated=np.array(mated, dtype=bool)[probe_order],
    )


def build_templates(embeddings: np.ndarray, labels: Sequence[Hashable]) -> tuple[np.ndarray, list[Hashable]]:
    """One template per identity, as a faceatlas gallery builds it (``gallery.person_templates``,
    every quality 1: the normalised mean of the unit embeddings); identities in first-seen order.

    Returns ``(templates, template_labels)``: a float32 ``(k, d)`` array and a list of k labels (a
    list, so labels keep their type).

    Rows with NaN (no embedding) are skipped; an identity with none left gets no template
    (a failure to enrol: its mated probes then count as misses).
    """
    from faceatlas.gallery.gallery import person_templates

    x = np.asarray(embeddings, dtype=np.float64)
    labels = list(labels)
    if x.ndim != 2 or len(x) != len(labels):
        raise InvalidArgumentError(f"need an (n, d) embedding array and n labels, got {x.shape} and {len(labels)}")
    rows, codes, names = _usable_rows(x, labels)
    if not len(rows):
        return np.zeros((0, x.shape[1]), np.float32), []
    matrix = FaceMatrix(
        face_ids=np.arange(len(rows), dtype=np.int64),
        person_ids=codes,
        embeddings=unit_rows(x[rows], x.shape[1]),
        qualities=np.ones(len(rows), np.float32),
    )
    person_ids, templates = person_templates(matrix)  # codes ascending = first-seen order
    return templates, [names[int(p)] for p in person_ids]


def _usable_rows(x: np.ndarray, labels: list[Hashable]) -> tuple[np.ndarray, np.ndarray, list[Hashable]]:
    """(Rows with an embedding, each one's identity code, the identities by code in first-seen order)."""
    ok = np.isfinite(x).all(axis=1) & (np.linalg.norm(np.nan_to_num(x), axis=1) > 0)
    codes: dict[Hashable, int] = {}
    rows = np.flatnonzero(ok)
    row_codes = np.array([codes.setdefault(labels[i], len(codes)) for i in rows], dtype=np.int64)
    return rows, row_codes, list(codes)


class GallerySearch:
    """The gallery side of an evaluation enrolled into a real faceatlas :class:`~faceatlas.gallery.Gallery`
    (an in-memory SQLite store), searched the way ``Gallery.identify`` searches: its templates, its
    scoring rule, its code (``Gallery.scores``). What ``faceatlas eval identification`` measures.

    Each identity becomes one gallery person holding its usable embeddings (rows with NaN are
    skipped; an identity with none is not enrolled: its mated probes count as misses), with the
    given qualities as the gallery's template weights (1.0 where none are given, as
    ``Gallery.enroll`` does for a face without quality). The gallery's quality floor is not
    applied: every gallery image the split chose is enrolled.
    """

    def __init__(
        self,
        embeddings: np.ndarray,
        labels: Sequence[Hashable],
        qualities: Sequence[float] | np.ndarray | None = None,
        scoring: Scoring = "template",
    ) -> None:
        from faceatlas.gallery.gallery import Gallery
        from faceatlas.gallery.store import FaceRecord, ModelTag, open_store

        x = np.asarray(embeddings, dtype=np.float32)
        labels = list(labels)
        q = np.ones(len(labels)) if qualities is None else np.asarray(qualities, dtype=np.float64)
        if x.ndim != 2 or not len(x) == len(labels) == len(q):
            raise InvalidArgumentError(
                f"need an (n, d) embedding array, n labels and n qualities, got {x.shape}, {len(labels)} and {len(q)}"
            )
        self.dim = int(x.shape[1])
        self.labels: list[Hashable] = []  # the identity of each score column
        self.gallery: Gallery | None = None
        if not self.dim:  # no image had a face (so no embedding size): nobody to enrol
            return
        rows, codes, names = _usable_rows(x.astype(np.float64), labels)
        store = open_store(":memory:")
        store.bind_model(ModelTag("evaluated-embeddings", "1", self.dim))
        vectors = unit_rows(x[rows], self.dim)
        person_of: dict[str, Hashable] = {}
        for code, label in enumerate(names):  # person names are the codes: any label type, no name rules
            mine = np.flatnonzero(codes == code)
            person = store.add_person(str(code))
            store.add_faces(person, [FaceRecord(vectors[i], float(q[rows[i]]), f"{rows[i]}") for i in mine])
            person_of[str(code)] = label
        self.gallery = Gallery(store, scoring=scoring)
        _, people = self.gallery.scores(np.zeros((0, self.dim), np.float32))
        self.labels = [person_of[p] for p in people]

    def scores(self, probes: np.ndarray) -> np.ndarray:
        """``(m, len(self.labels))`` float32: each probe row (unit, finite) against every identity."""
        if self.gallery is None:
            return np.zeros((len(probes), 0), np.float32)
        sims, _ = self.gallery.scores(probes)
        return sims

    def close(self) -> None:
        if self.gallery is not None:
            self.gallery.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- scoring -----------------------------------------------------------------


def _identity_scores(scores: np.ndarray, codes: np.ndarray, n_ids: int) -> np.ndarray:
    """Fuse gallery columns of the same identity by max, giving one column per identity code."""
    if len(codes) == n_ids:  # already one entry per identity, in code order
        return scores
    order = np.argsort(codes, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(codes[order]) != 0])
    return np.maximum.reduceat(scores[:, order], starts, axis=1)


def _search(
    score: Callable[[np.ndarray], np.ndarray], n_ids: int, probes: np.ndarray, mate_codes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per probe: top-1 score, mate rank (inf: no mate or no embedding) and mate score (-inf likewise).

    ``score`` maps probe rows with an embedding to ``(rows, n_ids)`` identity scores, columns in
    identity code order; ``mate_codes`` is -1 where the probe has no mate in the gallery.
    """
    m = len(probes)
    top = np.full(m, -np.inf)
    rank = np.full(m, np.inf)
    mate_score = np.full(m, -np.inf)
    valid = np.isfinite(probes).all(axis=1)
    for start in range(0, m, _CHUNK):
        rows = np.arange(start, min(start + _CHUNK, m))
        rows = rows[valid[rows]]
        if not len(rows) or not n_ids:
            continue
        s = score(probes[rows])
        top[rows] = s.max(axis=1)
        has_mate = mate_codes[rows] >= 0
        r, c = rows[has_mate], mate_codes[rows][has_mate]
        ms = s[has_mate, c]
        mate_score[r] = ms
        # every identity scoring >= the mate outranks it, except the mate itself
        rank[r] = (s[has_mate] >= ms[:, None]).sum(axis=1)
    return top, rank, mate_score


@dataclass
class IdentificationReport:
    n_gallery: int  # gallery identities
    n_probes: int
    n_mated: int
    n_nonmated: int
    n_no_face_mated: int  # mated probes without embedding: misses
    n_no_face_nonmated: int  # non-mated probes without embedding: correctly rejected
    n_mated_not_enrolled: int  # mated probes whose identity has no gallery entry: misses
    rank_rates: dict[str, float | None]  # "k" -> rank-k identification rate
    cmc: list[float]  # rank 1..CMC_MAX_RANK identification rates (empty without mated probes)
    fnir_at_fpir: dict[str, float | None]  # "f" -> FNIR, None where not measurable
    threshold_at_fpir: dict[str, float | None]
    det_thresholds: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))
    det_fpir: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))
    det_fnir: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))
    notes: list[str] = field(default_factory=list)

    def to_dict(self, include_det: bool = False) -> dict:
        """JSON-ready; the DET arrays (one point per distinct score) only with ``include_det``."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.name.startswith("det_")}
        if include_det:
            out["det"] = {
                "threshold": self.det_thresholds.tolist(),
                "fpir": self.det_fpir.tolist(),
                "fnir": self.det_fnir.tolist(),
            }
        return out

    def table(self) -> str:
        def fmt(x: float | None) -> str:
            return "n/a" if x is None else f"{x:.4f}"

        rows = [
            ("gallery identities", f"{self.n_gallery}"),
            ("probes (mated / non-mated)", f"{self.n_probes} ({self.n_mated} / {self.n_nonmated})"),
            ("no face (mated / non-mated)", f"{self.n_no_face_mated} / {self.n_no_face_nonmated}"),
        ]
        rows += [(f"rank-{k} rate", fmt(v)) for k, v in self.rank_rates.items()]
        rows += [
            (f"FNIR @ FPIR={f}", f"{fmt(v)}  (t={fmt(self.threshold_at_fpir[f])})")
            for f, v in self.fnir_at_fpir.items()
        ]
        width = max(len(name) for name, _ in rows)
        lines = [f"{name:<{width}}  {value}" for name, value in rows]
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def _det(top_nonmated: np.ndarray, hit_score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FPIR(t) and FNIR(t) at every distinct finite score t, thresholds ascending."""
    both = np.concatenate([top_nonmated, hit_score])
    t = np.unique(both[np.isfinite(both)])
    z, h = np.sort(top_nonmated), np.sort(hit_score)
    fpir = (len(z) - np.searchsorted(z, t, side="left")) / len(z) if len(z) else np.full(len(t), np.nan)
    fnir = np.searchsorted(h, t, side="left") / len(h) if len(h) else np.full(len(t), np.nan)
    return t, fpir, fnir


def open_set_report(
    gallery: np.ndarray,
    gallery_labels: Sequence[Hashable],
    probes: np.ndarray,
    probe_labels: Sequence[Hashable],
    probe_mated: Sequence[bool] | np.ndarray,
    ranks: Sequence[int] = (1, 5),
    fpirs: Sequence[float] = (1e-1, 1e-2, 1e-3),
) -> IdentificationReport:
    """CMC, FNIR at FPIR and DET of an open-set 1:N search of any system's gallery entries, scored
    by dot product and fused per identity by their maximum (see the module docstring for definitions).
    To measure faceatlas's own gallery search, use :func:`gallery_open_set_report`."""
    g = np.asarray(gallery, dtype=np.float64)
    gallery_labels = list(gallery_labels)
    if g.ndim != 2 or len(g) != len(gallery_labels):
        raise InvalidArgumentError(f"gallery must be (k, d) with k labels, got {g.shape} and {len(gallery_labels)}")
    if not np.isfinite(g).all():
        raise InvalidArgumentError("gallery holds NaN or inf; build templates with build_templates (it skips them)")
    codes: dict[Hashable, int] = {}
    gallery_codes = np.array([codes.setdefault(x, len(codes)) for x in gallery_labels], dtype=np.int64)

    def score(rows: np.ndarray) -> np.ndarray:
        return _identity_scores(rows @ g.T, gallery_codes, len(codes))

    return _report(score, list(codes), g.shape[1], probes, probe_labels, probe_mated, ranks, fpirs)


def gallery_open_set_report(
    search: GallerySearch,
    probes: np.ndarray,
    probe_labels: Sequence[Hashable],
    probe_mated: Sequence[bool] | np.ndarray,
    ranks: Sequence[int] = (1, 5),
    fpirs: Sequence[float] = (1e-1, 1e-2, 1e-3),
) -> IdentificationReport:
    """The measures of :func:`open_set_report`, with every probe searched in a faceatlas gallery
    (:class:`GallerySearch`: ``Gallery.scores``, the scores ``Gallery.identify`` ranks)."""
    return _report(search.scores, search.labels, search.dim, probes, probe_labels, probe_mated, ranks, fpirs)


def _report(
    score: Callable[[np.ndarray], np.ndarray],
    identities: list[Hashable],
    dim: int,
    probes: np.ndarray,
    probe_labels: Sequence[Hashable],
    probe_mated: Sequence[bool] | np.ndarray,
    ranks: Sequence[int],
    fpirs: Sequence[float],
) -> IdentificationReport:
    """The report from a scorer of probe rows against ``identities`` (one score column each, in order)."""
    p = np.asarray(probes, dtype=np.float64)
    probe_labels = list(probe_labels)
    mated = np.asarray(probe_mated, dtype=bool)
    if p.ndim != 2 or p.shape[1] != dim or not (len(p) == len(probe_labels) == len(mated)):
        raise InvalidArgumentError(
            f"probes must be (m, {dim}) with m labels and m mated flags, "
            f"got {p.shape}, {len(probe_labels)} and {len(mated)}"
        )
    if not len(p):
        raise InvalidArgumentError("there are no probes to search")

    codes = {label: code for code, label in enumerate(identities)}
    leaked = sorted({str(x) for x, m in zip(probe_labels, mated) if not m and x in codes})
    if leaked:
        raise InvalidArgumentError(
            f"non-mated probes of enrolled identities: {leaked[:5]}; mark them mated or drop them"
        )
    mate_codes = np.array([codes.get(x, -1) if m else -1 for x, m in zip(probe_labels, mated)], dtype=np.int64)

    top, rank, mate_score = _search(score, len(codes), p, mate_codes)
    no_face = ~np.isfinite(p).all(axis=1)
    n_mated, n_nonmated = int(mated.sum()), int((~mated).sum())
    mated_rank = rank[mated]
    hit_score = np.where(rank == 1, mate_score, -np.inf)[mated]  # rank-1 mate score, -inf for a miss
    top_nonmated = top[~mated]

    notes: list[str] = []
    not_enrolled = int((mated & (mate_codes < 0)).sum())
    if not_enrolled:
        notes.append(f"{not_enrolled} mated probes have no gallery entry for their identity; counted as misses")
    if no_face.any():
        notes.append(
            f"{int((no_face & mated).sum())} mated probes without a face count as misses; "
            f"{int((no_face & ~mated).sum())} non-mated ones as correctly rejected"
        )

    cmc: list[float] = []
    if n_mated:
        cmc = [float((mated_rank <= k).mean()) for k in range(1, CMC_MAX_RANK + 1)]
        rank_rates: dict[str, float | None] = {str(k): float((mated_rank <= k).mean()) for k in ranks}
    else:
        rank_rates = {str(k): None for k in ranks}
        notes.append("no mated probes: rank rates and FNIR are not measurable")

    fnir_at: dict[str, float | None] = {}
    threshold_at: dict[str, float | None] = {}
    for f in fpirs:
        key = f"{f:g}"
        if false_accepts_allowed(n_nonmated, f) < 1 or not n_mated:
            fnir_at[key] = threshold_at[key] = None
            if n_mated:
                notes.append(f"FNIR@FPIR={key} not measurable: {n_nonmated} non-mated probes cannot show that FPIR")
            continue
        t = threshold_at_far(top_nonmated, f)  # FPIR(t) = share of non-mated top scores >= t
        threshold_at[key] = t
        fnir_at[key] = float(((hit_score < t) | (hit_score == -np.inf)).mean())  # a miss (-inf) always counts

    det_t, det_fpir, det_fnir = _det(top_nonmated, hit_score)
    return IdentificationReport(
        n_gallery=len(codes),
        n_probes=len(p),
        n_mated=n_mated,
        n_nonmated=n_nonmated,
        n_no_face_mated=int((no_face & mated).sum()),
        n_no_face_nonmated=int((no_face & ~mated).sum()),
        n_mated_not_enrolled=not_enrolled,
        rank_rates=rank_rates,
        cmc=cmc,
        fnir_at_fpir=fnir_at,
        threshold_at_fpir=threshold_at,
        det_thresholds=det_t,
        det_fpir=det_fpir,
        det_fnir=det_fnir,
        notes=notes,
    )


# --- plot --------------------------------------------------------------------


def plot_det(report: IdentificationReport, path: str | Path) -> Path:
    """One PNG: the DET curve (FPIR on a log axis, FNIR) beside the CMC curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_det, ax_cmc) = plt.subplots(1, 2, figsize=(10, 4))
    try:
        # FPIR ascending; at FPIR x the best operating point is the step to its left
        fpir, fnir = report.det_fpir[::-1], report.det_fnir[::-1]
        shown = fpir > 0  # FPIR 0 has no place on a log axis
        if shown.any():
            ax_det.plot(fpir[shown], fnir[shown], drawstyle="steps-post")
        for f, at in report.fnir_at_fpir.items():
            if at is not None:
                ax_det.plot(float(f), at, "o", label=f"FPIR={f}: FNIR={at:.3f}")
        ax_det.set_xscale("log")
        ax_det.set_ylim(0, 1)
        ax_det.set_xlabel("FPIR (non-mated probes accepted)")
        ax_det.set_ylabel("FNIR (mated probes missed at rank 1)")
        ax_det.set_title(f"DET ({report.n_gallery} enrolled, {report.n_nonmated} non-mated probes)")
        ax_det.grid(True, which="both", alpha=0.3)
        if ax_det.get_legend_handles_labels()[0]:
            ax_det.legend(fontsize=8)
        if report.cmc:
            ax_cmc.plot(range(1, len(report.cmc) + 1), report.cmc, marker=".")
        ax_cmc.set_xlim(1, CMC_MAX_RANK)
        ax_cmc.set_ylim(0, 1)
        ax_cmc.set_xticks([1, 5, 10, 15, 20])
        ax_cmc.set_xlabel("rank")
        ax_cmc.set_ylabel("identification rate")
        ax_cmc.set_title(f"CMC ({report.n_mated} mated probes)")
        ax_cmc.grid(True, alpha=0.3)
        fig.tight_layout()
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=110)
    finally:
        plt.close(fig)
    return out
