"""The Gallery: enrol people once, identify faces against them, and say "unknown" when it is.

>>> gallery = Gallery.open("people.db")                 # a path is SQLite; postgresql://… works too
>>> gallery.enroll("ada", ["ada1.jpg", "ada2.jpg"])     # reports what it skipped, and why
>>> [r.person for r in gallery.identify("group.jpg")]   # one result per face; None = unknown

Open set, calibrated. A probe that is nobody in the gallery is still *somebody's* nearest
neighbour, so the decision threshold must grow with the number of comparisons a search makes. With
a per-comparison false-match rate f(t), a non-mated probe is falsely identified when any of its
N comparisons passes: FPIR(t) = 1 − (1 − f(t))^N. The threshold for a target FPIR is therefore the
model card's threshold for f = 1 − (1 − FPIR)^(1/N), where N is the number of faces searched
("max" scoring) or of people ("template" scoring). The card's calibrated range bounds this; past
it the threshold is capped at the strictest calibrated point and each result says so.

Templates (the default: they identify best, see docs/BENCHMARKS.md) are not faces: averaging makes a
template nearer to everyone, so the face-to-face f(t) lets more strangers through than asked. A gallery
with enough of its own face-versus-other-template impostor scores calibrates on them. A smaller one
uses the card's face-versus-template statistics by template size (``ModelCard.template_thresholds``,
calibrated offline): with person p's template of n_p faces passing a stranger with probability
f_{n_p}(t), FPIR(t) = 1 − Π_p (1 − f_{n_p}(t)), solved for t. Only a card without those statistics
falls back to its face-to-face threshold, with a note.

The store is the only copy of anything. Whenever its change counter moves (another process may
have enrolled) the gallery catches up from the store's change log: new faces are appended, removed
ones dropped, and only the templates of people whose faces changed are recomputed. The template
calibration is redone after any removal or merge, and after additions once the gallery has grown
by RECALIBRATE_GROWTH since it was calibrated (a few more impostors barely move a tail quantile).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np

from faceatlas._thresholds import false_accepts_allowed, threshold_at_far
from faceatlas.errors import (
    FaceAtlasError,
    InvalidArgumentError,
    InvalidImageError,
    ModelMismatchError,
    NothingEnrolledError,
)
from faceatlas.gallery.store import (
    FaceMatrix,
    FaceNotFoundError,
    FaceRecord,
    GalleryStore,
    ModelTag,
    PersonNotFoundError,
    PersonRecord,
    apply_changes,
    open_store,
)
from faceatlas.names import validate_person_name
from faceatlas.templates import DEFAULT_FUSION, fuse_groups
from faceatlas.types import Face
from faceatlas.vector_index import unit_rows

Scoring = Literal["max", "template", "topk"]
TOPK = 3  # "topk" scoring: the mean of a person's best three face scores
ANN_FACES = 100_000  # from this many faces "max" scoring searches an index instead of every face
ANN_CANDIDATES = 200  # faces fetched from the index per probe, then reduced to people
TEMPLATE_CALIBRATION_PAIRS = 20_000_000  # face-versus-template scores computed to calibrate at most
MIN_TAIL = 10  # impostor scores that must lie above a threshold for its FAR to be measured
# below this many of its own impostor scores above the cut (about 10,000 faces at FPIR 1e-2), a
# template gallery takes its threshold from the card's face-versus-template statistics, when the card
# has them, rather than from its own tail: a tail of 10-20 correlated scores missed the target by up to
# 1.5x on held-out LFW, where the card's statistics held it (docs/BENCHMARKS.md, small galleries)
SELF_CALIBRATION_TAIL = 100
RECALIBRATE_GROWTH = 0.02  # redo the template calibration once faces or people grew by 2 %
CHEAP_CALIBRATION_PAIRS = 1_000_000  # below this many face-template pairs, recalibrate at every change


@dataclass(frozen=True, slots=True)
class Candidate:
    person: str
    score: float  # cosine similarity under the gallery's scoring rule; higher = more alike


@dataclass(frozen=True, slots=True)
class Identification:
    """The answer for one probe face: ranked candidates and the open-set decision."""

    face: Face | None  # None when the probe was an embedding
    candidates: tuple[Candidate, ...]
    person: str | None  # the top candidate if it passes the threshold, else None ("unknown")
    threshold: float
    fpir: float  # the false-positive identification rate the threshold was set for
    notes: tuple[str, ...] = ()

    @property
    def score(self) -> float | None:
        return self.candidates[0].score if self.candidates else None

    @property
    def is_known(self) -> bool:
        return self.person is not None


SkipKind = Literal["unreadable", "no_face", "several_faces", "no_such_face", "low_quality", "already_enrolled"]


@dataclass(frozen=True, slots=True)
class Skipped:
    """An image ``enroll`` passed over, as data: each front end words the fix in its own terms
    (``reason(choose)``: ``choose`` is how its caller picks one face of several)."""

    source: str  # the path, or "<ndarray>" etc.
    kind: SkipKind
    index: int  # its position among the images given
    detail: str = ""  # unreadable: the decoder's message
    faces: int = 0  # several_faces, no_such_face: how many the image has
    asked: int = 0  # no_such_face: the face asked for
    quality: float = 0.0  # low_quality: the face's quality and the floor
    floor: float = 0.0

    def reason(self, choose: str = "face=i") -> str:
        if self.kind == "unreadable":
            return f"unreadable: {self.detail}"
        if self.kind == "no_face":
            return "no face found"
        if self.kind == "several_faces":
            return f"{self.faces} faces: pass {choose} (0 = largest) to choose one"
        if self.kind == "no_such_face":
            return f"face {self.asked} asked for, {self.faces} found (0 = largest)"
        if self.kind == "low_quality":
            return f"quality {self.quality:.2f} below the floor {self.floor:.2f}"
        return "already enrolled for this person"


@dataclass
class EnrollReport:
    person: str  # the name as stored (NFC, stripped)
    added: list[int] = field(default_factory=list)  # face ids
    skips: list[Skipped] = field(default_factory=list)
    created: bool = False  # the person was new

    @property
    def skipped(self) -> list[tuple[str, str]]:
        """(source, reason) of each image passed over, worded for Python (``face=i``)."""
        return [(s.source, s.reason()) for s in self.skips]

    def describe(self, choose: str = "face=i") -> str:
        lines = [f"{self.person}: {len(self.added)} face(s) enrolled, {len(self.skips)} skipped"]
        lines += [f"  skipped {s.source}: {s.reason(choose)}" for s in self.skips]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.describe()


def open_set_threshold(card: Any, fpir: float, comparisons: int) -> tuple[float, tuple[str, ...]]:
    """The similarity threshold giving ``fpir`` over ``comparisons`` impostor comparisons (see module doc)."""
    if not 0.0 < fpir < 1.0:
        raise InvalidArgumentError(f"fpir must be a rate in (0, 1), got {fpir!r}")
    if not card.thresholds:  # an uncalibrated model: the card's error says how to calibrate it
        card.threshold_for(fpir)
    per_comparison = 1.0 - (1.0 - fpir) ** (1.0 / max(comparisons, 1))
    points = sorted(t.far for t in card.thresholds)
    lowest, highest = points[0], points[-1]
    if per_comparison < lowest:
        note = (
            f"{comparisons} comparisons at FPIR {fpir:g} need a per-comparison FAR of {per_comparison:.1e}, "
            f"below the card's calibrated {lowest:g}: threshold capped there, so the real FPIR may be higher"
        )
        return card.threshold_for(lowest), (note,)
    return card.threshold_for(min(per_comparison, highest)), ()


def template_open_set_threshold(card: Any, fpir: float, sizes: Iterable[int]) -> tuple[float, tuple[str, ...]]:
    """The threshold giving ``fpir`` over one template per person, person p's of ``sizes[p]`` faces,
    from the card's face-versus-template statistics (see the module doc).

    FPIR(t) = 1 − Π_p (1 − f_{n_p}(t)) falls as t rises, so t is found by bisection. Every f_{n_p}
    at the answer is at most the FPIR, so for an FPIR within the card's calibrated FARs the answer
    lies between the loosest threshold at which every size is calibrated and the strictest
    calibrated one. Above that range the loosest is used (stricter than asked); where even the
    strictest lets more through, it is used with a note, as ``open_set_threshold`` does.
    """
    if not 0.0 < fpir < 1.0:
        raise InvalidArgumentError(f"fpir must be a rate in (0, 1), got {fpir!r}")
    counts = np.unique(np.asarray(list(sizes), dtype=np.int64), return_counts=True)
    if not len(counts[0]):
        raise InvalidArgumentError("template sizes are needed, one per person; none were given")
    return _solve_template_threshold(card, fpir, tuple(zip(counts[0].tolist(), counts[1].tolist(), strict=True)))


@functools.lru_cache(maxsize=1024)
def _solve_template_threshold(
    card: Any, fpir: float, counts: tuple[tuple[int, int], ...]
) -> tuple[float, tuple[str, ...]]:
    """``template_open_set_threshold`` for (template size, people with it) pairs; cached, as a gallery
    asks the same question at every search until its people change."""
    curves = [
        (np.array(ts), np.array(log_far), people)
        for n, people in counts
        for ts, log_far in [card.template_far_curve(n)]
    ]

    def fpir_at(t: float) -> float:
        # np.interp holds the end values outside a curve: past its strictest point a size counts at
        # its lowest calibrated FAR (too high, so the answer errs strict); the loose side is never asked
        log_clear = sum(people * math.log1p(-math.exp(float(np.interp(t, ts, lf)))) for ts, lf, people in curves)
        return -math.expm1(log_clear)

    loose = max(float(ts[0]) for ts, _, _ in curves)
    strict = max(float(ts[-1]) for ts, _, _ in curves)
    if fpir_at(strict) > fpir:
        lowest = math.exp(max(float(lf[-1]) for _, lf, _ in curves))
        people = sum(n for _, n in counts)
        note = (
            f"FPIR {fpir:g} over {people} templates needs per-comparison FARs below the card's calibrated "
            f"{lowest:.0e}: threshold capped at the strictest calibrated point, so the real FPIR may be higher"
        )
        return strict, (note,)
    if fpir_at(loose) <= fpir:
        return loose, ()
    below, above = loose, strict  # fpir_at(below) > fpir >= fpir_at(above)
    while above - below > 1e-7:
        middle = 0.5 * (below + above)
        below, above = (middle, above) if fpir_at(middle) > fpir else (below, middle)
    return above, ()


class Gallery:
    """People, their faces, and search; see the module docstring.

    ``scoring``: how a person's score is formed from their faces — ``"template"`` (the default:
    their normalised embeddings fused by ``faceatlas.templates.DEFAULT_FUSION``, a quality-weighted
    mean that discounts faces unlike the rest), ``"max"`` (best face) or ``"topk"``
    (mean of their best three). ``fpir`` is the default open-set operating point. ``min_quality`` is
    the floor below which a face is not enrolled. ``analyzer``: a ``FaceAnalyzer`` (or anything
    with ``analyze`` and ``embedder``), a zero-argument factory of one (a class, ``functools.partial``:
    then :meth:`enroll_many` can analyse in worker processes), or None for the default.
    """

    def __init__(
        self,
        store: GalleryStore,
        analyzer: Any | None = None,
        *,
        scoring: Scoring = "template",
        fpir: float = 1e-2,
        min_quality: float = 0.3,
    ) -> None:
        if scoring not in ("max", "template", "topk"):
            raise InvalidArgumentError(f"scoring must be 'max', 'template' or 'topk', got {scoring!r}")
        self.store = store
        self._analyzer = analyzer
        self._built: Any = None  # what ``analyzer`` built, when it is a factory
        self.scoring: Scoring = scoring
        self.fpir = fpir
        self.min_quality = min_quality
        self._matrix: FaceMatrix | None = None
        self._names: dict[int, str] = {}  # person id → name, for the people who have faces
        self._templates: _Templates | None = None
        self._index: Any = None  # over faces, for "max" scoring of large galleries
        self._indexed = np.zeros(0, np.int64)  # the face ids in it, ascending
        self._impostors: np.ndarray | None = None  # template calibration scores, unsorted
        self._calibrated_on = (0, 0, -1)  # (faces, people, store version) when they were computed
        self._thresholds: dict[int, float] = {}  # impostors let through → threshold, for these scores
        self._grouping: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # faces by person, per version
        self._tag: ModelTag | None = None

    @classmethod
    def open(
        cls, path_or_url: str | os.PathLike[str], analyzer: Any | None = None, create: bool = True, **options: Any
    ) -> Gallery:
        """Open (or create) a gallery: a file path is SQLite, ``postgresql://…`` a PostgreSQL server."""
        return cls(open_store(path_or_url, create=create), analyzer, **options)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the model ---------------------------------------------------------------------------------

    @property
    def analyzer(self) -> Any:
        """The analyzer given, else one with the embedder the store is bound to (the default for a
        new gallery); a gallery of a bring-your-own model needs it passed (ModelMismatchError)."""
        if self._analyzer is None:
            from faceatlas.models.catalog import analyzer_options
            from faceatlas.pipeline import FaceAnalyzer

            self._analyzer = FaceAnalyzer(**analyzer_options(self.store.model(), where="the gallery"))
        elif _is_factory(self._analyzer):  # a class or functools.partial: built once, here
            if self._built is None:
                self._built = self._analyzer()
            return self._built
        return self._analyzer

    @property
    def card(self) -> Any:
        """The embedder's card, with the user's own calibration of it (``faceatlas models calibrate``)."""
        from faceatlas.models.calibration import with_user_calibration

        return with_user_calibration(self.analyzer.embedder.card)

    def _bind(self) -> ModelTag:
        """Tie the store to this embedder; a gallery of another model is refused, never mixed.

        Checked once per Gallery: a store's binding never changes, and checking it on every
        search would take the store's write lock on the hot path.
        """
        if self._tag is None:
            card = self.card
            tag = ModelTag(card.name, card.version, int(card.embedding_dim or self.analyzer.embedder.dim))
            self.store.bind_model(tag)
            self._tag = tag
        return self._tag

    # -- enrolment -----------------------------------------------------------------------------------

    def enroll(
        self,
        person: str,
        images: Iterable[Any],
        metadata: dict | None = None,
        *,
        face: int | None = None,
        min_quality: float | None = None,
    ) -> EnrollReport:
        """Enrol ``person`` from images (paths, bytes, arrays…), one face each.

        The name is checked and normalised (``faceatlas.names``: InvalidNameError). Skipped, each
        with its reason in the report (``skips``): unreadable images, images with no face, images
        with several faces (pass ``face=i`` to choose the i-th largest), faces below the quality
        floor, and images already enrolled for this person (so a killed job resumes).

        Nothing is created empty: when no face is added and an image was refused (or none was
        given), NothingEnrolledError carries the reasons and the gallery is unchanged (a new
        person is not created). Images that were all enrolled already are no error (a re-run).
        """
        return self._enroll_analysed(
            person,
            ((_source_name(image), _analysed(self.analyzer, image)) for image in images),
            metadata,
            face,
            min_quality,
        )

    def enroll_many(
        self,
        people: Mapping[str, Sequence[Any]],
        *,
        face: int | None = None,
        min_quality: float | None = None,
        workers: int | None = 1,
    ) -> Iterator[tuple[str, EnrollReport | NothingEnrolledError]]:
        """:meth:`enroll` each person of ``{name: images}``, analysing every image of them all
        through one pool of ``workers`` processes (None: one per core within the memory budget,
        ``faceatlas.parallel``); yields (name, report) as each person is enrolled, or (name, the
        NothingEnrolledError) for a person with nothing to enrol, and goes on with the others.

        Worker processes need a picklable analyzer factory: the gallery's own default, or a
        class or ``functools.partial`` given as ``analyzer``; an analyzer object is used here alone.
        """
        from faceatlas.parallel import map_ordered, resolve_workers

        names = [validate_person_name(name) for name in people]  # every name checked before anyone is enrolled
        items = [(name, image) for name, images in zip(names, people.values(), strict=True) for image in images]
        factory = self._factory()
        count = 1 if factory is None else resolve_workers(workers, len(items))
        results = map_ordered(factory, _analysed_item, items, count, local=self.analyzer if count == 1 else None)
        for name, group in itertools.groupby(zip(items, results, strict=True), key=lambda pair: pair[0][0]):
            analysed = ((_source_name(image), result) for (_, image), result in group)
            try:
                yield name, self._enroll_analysed(name, analysed, None, face, min_quality)
            except NothingEnrolledError as exc:
                yield name, exc
        for name, images in zip(names, people.values(), strict=True):
            if not images:  # no images at all: groupby never saw this person
                yield name, NothingEnrolledError(name, (), existed=self._find_person(name) is not None)

    def _factory(self) -> Callable[[], Any] | None:
        """A picklable zero-argument factory of this gallery's analyzer, or None for an analyzer object."""
        if self._analyzer is None:
            from faceatlas.models.catalog import analyzer_options
            from faceatlas.pipeline import FaceAnalyzer

            return functools.partial(FaceAnalyzer, **analyzer_options(self.store.model(), where="the gallery"))
        if _is_factory(self._analyzer):
            return self._analyzer
        return None

    def _enroll_analysed(
        self,
        person: str,
        analysed: Iterable[tuple[str, tuple[str, list[Face]] | InvalidImageError]],
        metadata: dict | None,
        face: int | None,
        min_quality: float | None,
    ) -> EnrollReport:
        """Enrol ``person`` from (source name, (pixel digest, faces largest first) or the image's error)."""
        name = validate_person_name(person)
        self._bind()
        floor = self.min_quality if min_quality is None else min_quality
        existing = self._find_person(name)
        report = EnrollReport(name, created=existing is None)
        records: list[FaceRecord] = []
        for index, (source, result) in enumerate(analysed):
            if isinstance(result, InvalidImageError):
                report.skips.append(Skipped(source, "unreadable", index, detail=str(result)))
                continue
            try:
                chosen, digest = _one_face(result, face)
            except _Skip as skip:
                report.skips.append(dataclasses.replace(skip.skipped, source=source, index=index))
                continue
            if any(r.source == digest for r in records) or (
                existing is not None and self.store.has_source(existing.id, digest)
            ):
                report.skips.append(Skipped(source, "already_enrolled", index))
                continue
            quality = chosen.quality.score if chosen.quality is not None else 1.0
            if quality < floor:
                report.skips.append(Skipped(source, "low_quality", index, quality=quality, floor=floor))
                continue
            records.append(
                FaceRecord(chosen.embedding, quality, digest, chosen.box.as_xyxy(), {"file": source})  # type: ignore[arg-type]
            )
        if not records:
            if not report.skips or any(s.kind != "already_enrolled" for s in report.skips):
                raise NothingEnrolledError(name, tuple(report.skips), existed=existing is not None)
            return report
        person_id = existing.id if existing is not None else self.store.add_person(name, metadata or {})
        report.added = self.store.add_faces(person_id, records)
        return report

    def enroll_embeddings(
        self,
        person: str,
        embeddings: np.ndarray,
        qualities: Sequence[float] | None = None,
        sources: Sequence[str] | None = None,
        metadata: dict | None = None,
    ) -> list[int]:
        """Enrol precomputed embeddings (``(n, dim)``, L2-normalised) of the gallery's model."""
        name = validate_person_name(person)
        tag = self._bind()
        vectors = unit_rows(embeddings, tag.dim)
        qualities = [1.0] * len(vectors) if qualities is None else list(qualities)
        sources = [hashlib.sha256(v.tobytes()).hexdigest() for v in vectors] if sources is None else list(sources)
        if not len(qualities) == len(sources) == len(vectors):
            raise InvalidArgumentError("embeddings, qualities and sources must have the same length")
        existing = self._find_person(name)
        if not len(vectors):  # a person is created with faces, never empty
            raise NothingEnrolledError(name, (), existed=existing is not None)
        person_id = existing.id if existing is not None else self.store.add_person(name, metadata or {})
        records = [FaceRecord(v, float(q), s) for v, q, s in zip(vectors, qualities, sources, strict=True)]
        return self.store.add_faces(person_id, records)

    def _find_person(self, name: str) -> PersonRecord | None:
        try:
            return self.store.get_person(name)
        except PersonNotFoundError:
            return None

    # -- identification --------------------------------------------------------------------------

    def identify(self, probe: Any, k: int = 5, fpir: float | None = None) -> list[Identification]:
        """One :class:`Identification` per face in ``probe`` (largest first).

        ``probe`` is an image (path, bytes, array…) or embeddings: a ``(dim,)`` or ``(m, dim)``
        float array of the gallery's model.
        """
        if k < 1:
            raise InvalidArgumentError(f"k must be at least 1, got {k}")
        fpir = self.fpir if fpir is None else fpir
        tag = self._bind()
        if (
            isinstance(probe, np.ndarray)
            and probe.dtype.kind == "f"
            and probe.ndim in (1, 2)
            and probe.shape[-1] == tag.dim
        ):
            faces: list[Face | None] = [None] * (1 if probe.ndim == 1 else len(probe))
            vectors = unit_rows(probe.reshape(-1, tag.dim), tag.dim)
        else:
            found = sorted(self.analyzer.analyze(probe), key=lambda f: -f.box.area)
            faces = list(found)
            vectors = np.array([f.embedding for f in found], dtype=np.float32).reshape(-1, tag.dim)
        if not len(vectors):
            return []
        matrix = self._current()  # one read of the store: ranking and threshold see the same gallery
        names, scores, comparisons = self._rank(matrix, vectors, k)
        threshold, notes = open_set_threshold(self.card, fpir, comparisons)
        if self.scoring == "template" and comparisons:
            threshold, notes = self._template_threshold(matrix, fpir, comparisons, threshold, notes)
        if comparisons == 0:
            notes = ("the gallery is empty",)
        out = []
        for face, row_names, row_scores in zip(faces, names, scores, strict=True):
            candidates = tuple(Candidate(n, float(s)) for n, s in zip(row_names, row_scores, strict=True))
            decided = candidates[0].person if candidates and candidates[0].score >= threshold else None
            out.append(Identification(face, candidates, decided, threshold, fpir, notes))
        return out

    def _rank(self, matrix: FaceMatrix, vectors: np.ndarray, k: int) -> tuple[list[list[str]], list[list[float]], int]:
        """Per probe, the top-k people and scores under the scoring rule, and comparisons per probe."""
        if not len(matrix.face_ids):
            return [[] for _ in vectors], [[] for _ in vectors], 0
        if self.scoring == "max" and len(matrix.face_ids) >= ANN_FACES:
            names, scores = self._rank_with_index(matrix, vectors, k)
            return names, scores, len(matrix.face_ids)
        sims, person_ids = self._person_scores(matrix, vectors)
        comparisons = len(matrix.face_ids) if self.scoring == "max" else len(person_ids)
        top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        names = [[self._names[int(person_ids[j])] for j in row] for row in top]
        scores = [[float(sims[i, j]) for j in row] for i, row in enumerate(top)]
        return names, scores, comparisons

    def _person_scores(self, matrix: FaceMatrix, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(Every person's score for each unit probe row under the scoring rule, ``(m, people)``
        float32; the people's ids, ascending, one per column): exact, every face or template."""
        if self.scoring == "template":
            templates, person_ids = self._person_templates(matrix)
            return vectors @ templates.T, person_ids
        person_ids, order, starts = self._faces_by_person(matrix)
        face_sims = vectors @ matrix.embeddings[order].T  # columns grouped by person
        if self.scoring == "max":
            return np.maximum.reduceat(face_sims, starts, axis=1), person_ids
        return _topk_mean(face_sims, starts, TOPK), person_ids

    def scores(self, probes: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Every person's score for each probe embedding, as ``identify`` ranks them, and the
        people's names (one per column, in person id order).

        ``probes`` is a ``(dim,)`` or ``(m, dim)`` array of the gallery's model; the scores are an
        ``(m, people)`` float32 array under the gallery's scoring rule, computed exactly (large
        "max" galleries are searched through an approximate index by ``identify``, never here).
        Needs no analyzer: what an evaluation of the gallery's search calls
        (``faceatlas eval identification``).
        """
        tag = self._tag or self.store.model()
        x = np.asarray(probes)
        if tag is None:  # nothing was ever enrolled
            return np.zeros((1 if x.ndim == 1 else len(x), 0), np.float32), []
        vectors = unit_rows(x.reshape(-1, tag.dim) if x.ndim == 1 else x, tag.dim)
        matrix = self._current()
        if not len(matrix):
            return np.zeros((len(vectors), 0), np.float32), []
        sims, person_ids = self._person_scores(matrix, vectors)
        return sims, [self._names[int(p)] for p in person_ids]

    def _rank_with_index(
        self, matrix: FaceMatrix, vectors: np.ndarray, k: int
    ) -> tuple[list[list[str]], list[list[float]]]:
        """Large galleries: the approximate index's best faces (re-ranked exactly), best per person.

        A store with its own index (PostgreSQL: pgvector's HNSW) is searched there, so no index
        over every face is built (minutes at 1M faces) or held in this process.
        """
        wanted = max(ANN_CANDIDATES, 20 * k)
        store_search = getattr(self.store, "search", None)
        if store_search is not None:
            scores, face_ids = store_search(vectors, wanted)
        else:
            scores, face_ids = self._face_index(matrix).search(vectors, wanted)
        at = np.searchsorted(matrix.face_ids, np.where(face_ids >= 0, face_ids, 0)).clip(0, len(matrix) - 1)
        # a face the store gained after `matrix` was read is not ranked: its person may be unknown here
        found = (face_ids >= 0) & (matrix.face_ids[at] == face_ids)
        persons = matrix.person_ids[at]
        names, best = [], []
        for row_scores, row_persons, row_found in zip(scores, persons, found, strict=True):
            per_person: dict[int, float] = {}
            for score, person in zip(row_scores[row_found].tolist(), row_persons[row_found].tolist(), strict=True):
                per_person[person] = max(per_person.get(person, -np.inf), score)
            ranked = sorted(per_person.items(), key=lambda item: -item[1])[:k]
            names.append([self._names[p] for p, _ in ranked])
            best.append([s for _, s in ranked])
        return names, best

    def _face_index(self, matrix: FaceMatrix) -> Any:
        """The index over every face, brought up to date with the store by adding and removing ids."""
        from faceatlas.vector_index import create_index

        if self._index is None:
            self._index = create_index(len(matrix.face_ids), matrix.embeddings.shape[1])
            self._indexed = np.zeros(0, np.int64)
        gone = np.setdiff1d(self._indexed, matrix.face_ids, assume_unique=True)
        if len(gone):
            self._index.remove(gone)
        new = ~np.isin(matrix.face_ids, self._indexed, assume_unique=True)
        if new.any():
            self._index.add(matrix.face_ids[new], matrix.embeddings[new])
        self._indexed = matrix.face_ids
        return self._index

    def _template_threshold(
        self, matrix: FaceMatrix, fpir: float, comparisons: int, card_threshold: float, notes: tuple[str, ...]
    ) -> tuple[float, tuple[str, ...]]:
        """Templates are not faces: calibrate on this gallery's own face-versus-other-template scores.

        Averaging several faces makes a template nearer to everyone, so the card's face-to-face
        threshold lets more strangers through than asked. Every enrolled face compared with every
        *other* person's template is an impostor comparison of exactly the probe's kind; their
        tail gives the per-comparison FAR. Where the gallery has too few of them to measure the
        needed FAR well, the card's face-versus-template statistics give it (for these template
        sizes); only a card without them leaves the face-to-face threshold, with a note.
        """
        per_comparison = 1.0 - (1.0 - fpir) ** (1.0 / comparisons)
        card = self.card
        if getattr(card, "template_thresholds", ()):  # decide from the count alone: the scores may not be needed
            allowed = false_accepts_allowed(self._template_impostor_count(matrix), per_comparison)
            if allowed < SELF_CALIBRATION_TAIL:
                _ids, _order, starts = self._faces_by_person(matrix)
                sizes = np.diff(np.r_[starts, len(matrix)])
                return template_open_set_threshold(card, fpir, sizes.tolist())
        impostor = self._template_impostor_scores(matrix)
        allowed = false_accepts_allowed(len(impostor), per_comparison)
        if allowed < MIN_TAIL:
            note = (
                f"{len(impostor)} face-versus-template impostor scores cannot measure a per-comparison FAR of "
                f"{per_comparison:.1e}: the card's face-to-face threshold is used, so the real FPIR may be higher"
            )
            return card_threshold, (*notes, note)
        if allowed not in self._thresholds:  # one threshold per number of impostors let through
            self._thresholds[allowed] = threshold_at_far(impostor, per_comparison)
        return self._thresholds[allowed], ()

    def _template_impostor_count(self, matrix: FaceMatrix) -> int:
        """How many scores ``_template_impostor_scores`` gives: each face it uses against every
        template but its own person's."""
        people = len(self._faces_by_person(matrix)[0])
        faces = len(matrix)
        if faces * people > TEMPLATE_CALIBRATION_PAIRS:
            faces = max(TEMPLATE_CALIBRATION_PAIRS // people, 1)
        return faces * (people - 1)

    def _template_impostor_scores(self, matrix: FaceMatrix) -> np.ndarray:
        """Every enrolled face against every other person's template (see the module doc for when
        they are recomputed)."""
        templates, person_ids = self._person_templates(matrix)
        if self._impostors is not None:
            n_faces, n_people, version = self._calibrated_on
            grown = max(len(matrix) / max(n_faces, 1), len(person_ids) / max(n_people, 1)) - 1.0
            cheap = len(matrix) * len(person_ids) <= CHEAP_CALIBRATION_PAIRS
            if version != matrix.version and (grown > RECALIBRATE_GROWTH or cheap):
                self._impostors = None
        if self._impostors is None:
            faces = np.arange(len(matrix.face_ids))
            if len(faces) * len(person_ids) > TEMPLATE_CALIBRATION_PAIRS:  # subsample faces, not pairs
                keep = max(TEMPLATE_CALIBRATION_PAIRS // len(person_ids), 1)
                faces = np.random.default_rng(0).choice(faces, keep, replace=False)
            sims = matrix.embeddings[faces] @ templates.T
            own = matrix.person_ids[faces][:, None] == person_ids[None, :]
            self._impostors = sims[~own]
            self._calibrated_on = (len(matrix), len(person_ids), matrix.version)
            self._thresholds = {}
        return self._impostors

    def _faces_by_person(self, matrix: FaceMatrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(person ids, an order of the faces grouping each person's together, where each group starts)."""
        if self._grouping is None:
            person_ids, inverse = np.unique(matrix.person_ids, return_inverse=True)
            order = np.argsort(inverse, kind="stable")
            self._grouping = (person_ids, order, np.searchsorted(inverse[order], np.arange(len(person_ids))))
        return self._grouping

    def _current(self) -> FaceMatrix:
        """The face matrix as the store has it now (any process may write): caught up from the
        store's change log, or re-read whole when the log cannot say."""
        version = self.store.version()
        old = self._matrix
        if old is not None and old.version == version:
            return old
        changes = None if old is None else self.store.changes_since(old.version)
        if old is None or changes is None:
            bound = self.store.model() if self._tag is not None else None
            if bound is not None and bound != self._tag:  # `faceatlas reembed` moved it meanwhile
                raise ModelMismatchError(
                    f"this gallery was moved to {bound} while it was open here with {self._tag}: its "
                    f"embeddings are no longer this model's. Open it again with the model it is bound to "
                    f"(--embedder {bound.name})"
                )
            self._matrix = self.store.face_matrix()
            present = set(np.unique(self._matrix.person_ids).tolist())
            self._names = {p.id: p.name for p in self.store.list_people() if p.id in present}
            self._templates = self._impostors = None
        else:
            self._matrix, touched = apply_changes(old, changes)
            self._names.update((p.id, p.name) for p in changes.people)
            for person_id in touched[~np.isin(touched, self._matrix.person_ids)].tolist():
                self._names.pop(person_id, None)  # no faces left: not kept in memory either
            if self._templates is not None:
                self._templates.update(self._matrix, touched)
            if len(changes.removed_faces) or changes.merges:  # nothing of a removed face may linger
                self._impostors = None
        self._grouping = None
        return self._matrix

    def _person_templates(self, matrix: FaceMatrix) -> tuple[np.ndarray, np.ndarray]:
        """(Unit templates, their person ids): each person's faces fused (``faceatlas.templates``)."""
        if self._templates is None:
            self._templates = _Templates(matrix)
        return self._templates.templates, self._templates.person_ids

    # -- people ---------------------------------------------------------------------------------------

    def people(self) -> list[Any]:
        return self.store.list_people()

    def faces_of(self, person: str) -> list[tuple[int, float]]:
        """(face id, quality) of each of ``person``'s faces, oldest first."""
        record = self.store.get_person(person)  # PersonNotFoundError names the gallery
        matrix = self._current()
        rows = np.flatnonzero(matrix.person_ids == record.id)
        return [(int(matrix.face_ids[r]), float(matrix.qualities[r])) for r in rows]

    def embedding_of(self, face_id: int) -> np.ndarray:
        """The stored embedding of one face (read-only)."""
        matrix = self._current()
        row = int(np.searchsorted(matrix.face_ids, face_id))
        if row >= len(matrix.face_ids) or matrix.face_ids[row] != face_id:
            raise FaceNotFoundError(f"no face with id {face_id} in the gallery")
        return matrix.embeddings[row]

    def person_of(self, face_id: int) -> str:
        """The name of the person an enrolled face is of (FaceNotFoundError, as ``embedding_of``)."""
        matrix = self._current()
        row = int(np.searchsorted(matrix.face_ids, face_id))
        if row >= len(matrix.face_ids) or matrix.face_ids[row] != face_id:
            raise FaceNotFoundError(f"no face with id {face_id} in the gallery")
        return self.store.person_by_id(int(matrix.person_ids[row])).name

    def rename(self, old: str, new: str) -> str:
        """Rename ``old`` (looked up as given) to ``new`` (checked by ``faceatlas.names``); returns the new name as stored."""
        name = validate_person_name(new)
        self.store.rename_person(old, name)
        return name

    def set_private(self, person: str, private: bool = True) -> None:
        """Mark a person private (or not): the service shows them only to keys allowed to see
        private people. Looked up as given; PersonNotFoundError if there is none."""
        self.store.set_private(person, bool(private))

    def merge(self, source: str, target: str) -> None:
        """Both are looked up as given, not checked: no name enters (a person with a name from
        before the naming rules can be merged into one with a good name)."""
        self.store.merge_people(source, target)

    def remove_face(self, face_id: int) -> None:
        self.store.remove_face(face_id)

    def delete_person(self, person: str) -> int:
        """Delete a person and every face and embedding of theirs; returns how many faces went."""
        return self.store.delete_person(person)

    # -- export / import ------------------------------------------------------------------------

    def export(self, path: str | os.PathLike[str]) -> int:
        """Write the gallery as JSON lines (the model tag first); returns the rows written."""
        tag = self.store.model()
        rows = 0
        with open(path, "w", encoding="utf-8") as out:
            out.write(json.dumps({"faceatlas_gallery": 1, "model": dataclasses.asdict(tag) if tag else None}) + "\n")
            for row in self.store.export_rows():
                out.write(json.dumps(row) + "\n")
                rows += 1
        return rows

    def import_(self, path: str | os.PathLike[str]) -> int:
        """Load an export into this gallery (one transaction); the models must match."""
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        try:
            header = json.loads(lines[0]) if lines else {}
            rows = [json.loads(line) for line in lines[1:] if line.strip()]
        except json.JSONDecodeError as exc:
            raise FaceAtlasError(f"{path}: not a faceatlas gallery export ({exc})") from None
        if header.get("faceatlas_gallery") != 1:
            raise FaceAtlasError(f"{path}: not a faceatlas gallery export (no header line)")
        if header.get("model"):
            self.store.bind_model(ModelTag(**header["model"]))
        self.store.import_rows(rows)
        return len(rows)


def _analysed(analyzer: Any, image: Any) -> tuple[str, list[Face]] | InvalidImageError:
    """(digest of the pixels, faces largest first) of one image, or the error that it cannot be read."""
    from faceatlas.image import load_image

    try:
        pixels = load_image(image)
    except InvalidImageError as exc:
        return exc
    digest = hashlib.sha256(pixels.tobytes()).hexdigest()  # the pixels, so a re-encoded copy still dedups
    try:
        return digest, sorted(analyzer.analyze(pixels), key=lambda f: -f.box.area)
    except InvalidImageError as exc:
        return exc


def _analysed_item(analyzer: Any, item: tuple[str, Any]) -> tuple[str, list[Face]] | InvalidImageError:
    return _analysed(analyzer, item[1])


def _one_face(analysed: tuple[str, list[Face]], face: int | None) -> tuple[Face, str]:
    digest, faces = analysed
    if not faces:
        raise _Skip(Skipped("", "no_face", -1))
    if face is None and len(faces) > 1:
        raise _Skip(Skipped("", "several_faces", -1, faces=len(faces)))
    index = face or 0
    if index >= len(faces):
        raise _Skip(Skipped("", "no_such_face", -1, faces=len(faces), asked=index))
    return faces[index], digest


def _is_factory(analyzer: Any) -> bool:
    """A class or a zero-argument callable (``functools.partial``), not an analyzer object (which
    may offer only what the caller needs of it, such as ``embedder``)."""
    return isinstance(analyzer, type) or (callable(analyzer) and not hasattr(analyzer, "analyze"))


class _Skip(Exception):
    """An image enrol() passes over, with the reason it reports."""

    def __init__(self, skipped: Skipped) -> None:
        super().__init__(skipped.kind)
        self.skipped = skipped


def _source_name(image: Any) -> str:
    if isinstance(image, (str, os.PathLike)):
        return str(image)
    return f"<{type(image).__name__}>"


class _Templates:
    """Each person's unit template (``faceatlas.templates``, DEFAULT_FUSION), by person id
    (ascending), kept up to date person by person as faces come and go: a changed person's template
    is fused again from all their stored faces (people have few; see docs/BENCHMARKS.md for the cost)."""

    def __init__(self, matrix: FaceMatrix) -> None:
        self.person_ids, self.templates = person_templates(matrix)

    def update(self, matrix: FaceMatrix, touched: np.ndarray) -> None:
        """Recompute the ``touched`` people from ``matrix``; drop those left without faces."""
        new_ids, new_templates = _fused(matrix, np.isin(matrix.person_ids, touched))
        at = np.searchsorted(self.person_ids, new_ids)
        known = at < len(self.person_ids)
        known[known] = self.person_ids[at[known]] == new_ids[known]
        # known people in place (the common case: a face enrolled for someone already there)
        self.templates[at[known]] = new_templates[known]
        gone = np.isin(self.person_ids, touched) & ~np.isin(self.person_ids, new_ids)
        if gone.any() or not known.all():
            ids = np.concatenate([self.person_ids[~gone], new_ids[~known]])
            order = np.argsort(ids, kind="stable")
            self.person_ids = ids[order]
            self.templates = np.concatenate([self.templates[~gone], new_templates[~known]])[order]


def person_templates(matrix: FaceMatrix) -> tuple[np.ndarray, np.ndarray]:
    """(Person ids ascending, their unit templates as float32 rows): each person's faces fused by
    ``faceatlas.templates.DEFAULT_FUSION`` (a quality-weighted mean that discounts a person's odd
    faces), the templates "template" scoring searches."""
    return _fused(matrix)


def _fused(matrix: FaceMatrix, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``person_templates`` over ``rows`` only (a person's faces fused in face-id order)."""
    if rows is None:
        return fuse_groups(matrix.embeddings, matrix.qualities, matrix.person_ids, DEFAULT_FUSION)
    return fuse_groups(matrix.embeddings[rows], matrix.qualities[rows], matrix.person_ids[rows], DEFAULT_FUSION)


def _topk_mean(face_sims: np.ndarray, starts: np.ndarray, k: int) -> np.ndarray:
    """Per probe and person, the mean of the person's best ``k`` face scores (fewer if they have fewer).

    ``face_sims`` columns are grouped by person, person j's starting at ``starts[j]``.
    """
    out = np.full((face_sims.shape[0], len(starts)), -np.inf, dtype=np.float32)
    ends = np.r_[starts[1:], face_sims.shape[1]]
    for j, (a, b) in enumerate(zip(starts, ends, strict=True)):
        block = face_sims[:, a:b]
        take = min(k, block.shape[1])
        out[:, j] = np.sort(block, axis=1)[:, -take:].mean(axis=1)
    return out
