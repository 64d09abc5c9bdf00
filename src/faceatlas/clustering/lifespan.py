"""Birth dates and capture dates as clustering constraints: the look-alike relative a photo's date rules out.

Siblings, a parent and a child look alike to any embedder, and their wrong merges are what users of
photo libraries complain about most. Dates tell them apart where faces cannot:

- **Before birth.** A face in a photo taken before a person was born is not that person.
- **Too old.** Nor is a face in a photo taken when the person would be over ``MAX_AGE_YEARS``.
- **Implausible age** (only with age estimates: no age model ships with faceatlas, so a caller
  brings its own, e.g. an ONNX age regressor): a face whose estimated age is far from the person's
  age at the photo's date (``AgeCheck``: 20 years, or 40 % of the age when more).
- **Life stages.** A person may keep several clusters, each a template of one stage of life (a
  child's face and the adult's are far apart in any embedding): each stage covers the ages at
  capture of its faces, and a dated face is kept out of the stages whose range it is well outside
  (``STAGE_MARGIN``), as long as one of the person's stages fits it.

``lifespan_constraints`` turns these rules into what ``FaceClusterer`` honours: the faces to place
afresh (a cluster's faces its person cannot have) and cannot-link pairs (each barred face with one
face of the cluster). Faces without a date, and clusters without a birth date, are left alone.

A date rules a face out for certain; an age estimate only probably, and a cannot-link holds between
clusters: one wrong estimate would keep the whole group of new faces it was clustered with out of
its person. So, by default (``AgeCheck.soft``), what only an estimate rules out is no cannot-link
but a check after clustering (``LifespanRules.settle``): a face that ended in a person its estimate
rules out leaves it, and its group stays.

>>> rules = lifespan_constraints(labels, dates, born={3: "1981-09-26"})
>>> labels[rules.evict] = NOT_CLUSTERED
>>> out = FaceClusterer().fit(x, cannot_link=rules.cannot_link, initial_labels=labels)
>>> labels = rules.settle(out.labels_)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np

from faceatlas.errors import InvalidArgumentError

DAYS_PER_YEAR = 365.2425
MAX_AGE_YEARS = 120.0  # older at a photo's date: not that person (a birth date typed a century off)
STAGE_MARGIN = (2.0, 0.25)  # a life stage reaches this far past its faces' ages: years, or this fraction of the age


@dataclass(frozen=True)
class AgeCheck:
    """How far a face's estimated age may be from the person's age at the photo's date: ``years``,
    or ``fraction`` of that age when more (age estimates err more on older faces).

    Wide on purpose. ``soft`` (the default): what only an estimate rules out is checked after
    clustering (``LifespanRules.settle``: the face leaves the person, its group stays); not soft, it
    is a cannot-link like a date's, and one face barred by a wrong estimate keeps the whole group of
    new faces it was clustered with out of its person. On the synthetic family library
    (benchmarks/family_library.py, estimates with a 4.8-year MAE), hard bars cost 13 % of person
    recall at 20 years / 40 %, 24 % at 15 / 30 %, 52 % at 10 / 25 % (docs/BENCHMARKS.md)."""

    years: float = 20.0
    fraction: float = 0.4
    soft: bool = True

    def allows(self, estimated: np.ndarray, actual: np.ndarray) -> np.ndarray:
        return np.abs(estimated - actual) <= np.maximum(self.years, self.fraction * np.abs(actual))


@dataclass(frozen=True)
class LifespanRules:
    """What the dates rule out, as rows of the clusterer's input."""

    evict: np.ndarray  # faces whose current cluster is a person they cannot be: to place afresh
    cannot_link: np.ndarray  # (m, 2): a barred face and one face of the cluster it cannot join
    barred: int  # (face, cluster) pairs ruled out
    unlikely: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))  # (face, cluster):
    # ruled out by an age estimate only (``AgeCheck.soft``), checked after clustering by ``settle``

    @classmethod
    def none(cls) -> LifespanRules:
        return cls(np.zeros(0, np.int64), np.zeros((0, 2), np.int64), 0)

    def settle(self, labels: np.ndarray, unassigned: int = -1) -> np.ndarray:
        """``labels`` after clustering, each face of ``unlikely`` that ended in its ruled-out
        cluster made ``unassigned`` (a copy; the cluster labels are the ones the rules were made
        for: a clusterer's frozen or initial labels)."""
        out = np.array(labels, dtype=np.int64, copy=True)
        if len(self.unlikely):
            faces, clusters = self.unlikely[:, 0], self.unlikely[:, 1]
            out[faces[out[faces] == clusters]] = unassigned
        return out


def as_days(values: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Dates (``date``, ``datetime``, ISO text such as EXIF's "2004-07-01T12:00:00", None) as
    datetime64[D]; None, blank or unreadable text is NaT (no date: no rule)."""
    if isinstance(values, np.ndarray) and np.issubdtype(values.dtype, np.datetime64):
        return values.astype("datetime64[D]")
    return np.array([_day(value) for value in values], dtype="datetime64[D]")


def parse_birth_date(value: date | datetime | str) -> date:
    """A birth date as a ``date``; InvalidArgumentError for text that is not an ISO date
    ("YYYY-MM-DD"), or a date in the future."""
    if isinstance(value, datetime):
        value = value.date()
    elif isinstance(value, str):
        try:
            value = date.fromisoformat(value.strip())
        except ValueError:
            raise InvalidArgumentError(f"a birth date is an ISO date such as 1990-04-01, got {value!r}") from None
    elif not isinstance(value, date):
        raise InvalidArgumentError(f"a birth date is a date or ISO text (YYYY-MM-DD), got {type(value).__name__}")
    if value > date.today():
        raise InvalidArgumentError(f"a birth date cannot be in the future, got {value.isoformat()}")
    return value


def lifespan_constraints(
    labels: Sequence[int] | np.ndarray,
    dates: Sequence[Any] | np.ndarray,
    born: Mapping[int, date | datetime | str],
    *,
    person_of: Mapping[int, int] | None = None,
    ages: Sequence[float] | np.ndarray | None = None,
    age_check: AgeCheck = AgeCheck(),
    keep: np.ndarray | None = None,
) -> LifespanRules:
    """The rows the dates rule out of the clusters of ``born`` (see the module doc).

    ``labels``: each face's cluster (negative: none); ``dates``: each face's capture date (NaT /
    None: unknown); ``born``: cluster label -> the birth date of its person (give every stage of a
    person its person's date); ``person_of``: cluster label -> a key shared by the clusters that are
    one person's life stages (a cluster not in it is a person of its own); ``ages``: each face's
    estimated age in years (NaN: none); ``keep``: faces the user put where they are (a must-link),
    never evicted: a user's word outranks a camera's clock.
    """
    label = np.asarray(labels, dtype=np.int64)
    n = len(label)
    day = as_days(dates)
    if day.shape != (n,):
        raise InvalidArgumentError(f"dates must have one value per face ({n}), got shape {day.shape}")
    estimate = None if ages is None else np.asarray(ages, dtype=np.float64)
    if estimate is not None and estimate.shape != (n,):
        raise InvalidArgumentError(f"ages must have one value per face ({n}), got shape {estimate.shape}")
    kept = np.zeros(n, bool) if keep is None else np.asarray(keep, bool)
    dated = ~np.isnat(day)
    if not born or not dated.any():
        return LifespanRules.none()

    age: dict[int, np.ndarray] = {}  # cluster -> each face's age at its photo's date, years (NaN: no date)
    barred: dict[int, np.ndarray] = {}
    guessed: dict[int, np.ndarray] = {}  # cluster -> faces only an age estimate rules out (soft)
    for cluster, birth in born.items():
        days = (day - np.datetime64(parse_birth_date(birth), "D")).astype(np.float64)
        years = np.where(dated, days / DAYS_PER_YEAR, np.nan)
        with np.errstate(invalid="ignore"):
            out = dated & ((years < 0) | (years > MAX_AGE_YEARS))
            if estimate is not None:
                known = dated & ~np.isnan(estimate)
                implausible = known & ~age_check.allows(np.where(known, estimate, 0.0), np.where(known, years, 0.0))
                if age_check.soft:
                    guessed[int(cluster)] = implausible & ~out
                else:
                    out |= implausible
        age[int(cluster)], barred[int(cluster)] = years, out
    for stages in _stages(born, person_of).values():
        _bar_by_stage(stages, label, age, barred)

    evict: list[np.ndarray] = []
    pairs: list[np.ndarray] = []
    total = 0
    for cluster, out in barred.items():
        members = label == cluster
        leave = out & members & ~kept
        evict.append(np.flatnonzero(leave))
        staying = np.flatnonzero(members & ~leave)
        total += int(out.sum())
        if not len(staying):
            continue  # an emptied cluster: nothing left for a face to join
        banned = np.flatnonzero(out & ~(members & kept))
        pairs.append(np.stack([banned, np.full(len(banned), staying[0])], axis=1))
    unlikely = [
        np.stack([np.flatnonzero(soft & ~kept), np.full(int((soft & ~kept).sum()), cluster)], axis=1)
        for cluster, soft in guessed.items()
    ]
    return LifespanRules(
        np.unique(np.concatenate(evict)) if evict else np.zeros(0, np.int64),
        np.concatenate(pairs).astype(np.int64) if pairs else np.zeros((0, 2), np.int64),
        total + sum(int(soft.sum()) for soft in guessed.values()),
        np.concatenate(unlikely).astype(np.int64) if unlikely else np.zeros((0, 2), np.int64),
    )


def _stages(born: Mapping[int, Any], person_of: Mapping[int, int] | None) -> dict[int, list[int]]:
    """person key -> its clusters, for the people with more than one (life stages)."""
    people: dict[int, list[int]] = {}
    for cluster in born:
        people.setdefault(int((person_of or {}).get(cluster, cluster)), []).append(int(cluster))
    return {key: clusters for key, clusters in people.items() if len(clusters) > 1}


def _bar_by_stage(
    stages: list[int], label: np.ndarray, age: dict[int, np.ndarray], barred: dict[int, np.ndarray]
) -> None:
    """Bar dated faces from the stages of one person whose ages they lie well outside, when another
    stage of the person fits them (a face between stages may join either)."""
    outside: list[np.ndarray] = []
    for cluster in stages:
        years = age[cluster]
        own = years[(label == cluster) & ~barred[cluster] & ~np.isnan(years)]
        if not len(own):
            outside.append(np.zeros(len(label), bool))  # no dated face: its range is unknown
            continue
        with np.errstate(invalid="ignore"):
            margin = np.maximum(STAGE_MARGIN[0], STAGE_MARGIN[1] * np.abs(years))
            outside.append(~np.isnan(years) & ((years < own.min() - margin) | (years > own.max() + margin)))
    fits_one = ~np.logical_and.reduce(outside)
    for cluster, out in zip(stages, outside, strict=True):
        barred[cluster] |= out & fits_one


def _day(value: Any) -> np.datetime64:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return np.datetime64("NaT")
    if isinstance(value, np.datetime64):
        return value.astype("datetime64[D]")
    if isinstance(value, datetime):
        return np.datetime64(value.replace(tzinfo=None).date(), "D")
    if isinstance(value, date):
        return np.datetime64(value, "D")
    text = str(value).strip()
    try:
        return (
            np.datetime64(datetime.fromisoformat(text).replace(tzinfo=None).date(), "D")
            if text
            else np.datetime64("NaT")
        )
    except ValueError:
        return np.datetime64("NaT")
