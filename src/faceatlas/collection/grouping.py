"""Cluster a collection's faces, incrementally, honouring photos, names and the user's corrections.

What every run keeps, whatever changed since the last one:
- a face is never in a cluster with another face of its photo, nor with a face of its video seen
  at the same time (two tracks that overlap in time); tracks of one video apart in time may be
  one person;
- the user's corrections (``CollectionStore.add_constraint``: "must" = same person, "cannot" =
  not this person) hold;
- clusters keep their ids, so a name stays on its person; two differently named clusters are
  never merged (they are different people by the user's word);
- a face of a photo dated before a person's birth (``CollectionStore.set_birth_date``) never
  joins that person, and one already there leaves (``clustering/lifespan.py``); a person's life
  stages (``link_life_stage``) stay templates of their own, a dated face kept in the stages whose
  ages fit it;
- faces already clustered stay put, except in small unnamed clusters that new faces come close
  to, which are placed again (``FaceClusterer(reopen=...)``); ``full=True`` re-clusters
  everything, under the same rules.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

from faceatlas.clustering.clusterer import NOT_CLUSTERED, UNASSIGNED, FaceClusterer
from faceatlas.clustering.lifespan import LifespanRules, as_days, lifespan_constraints


@dataclass(frozen=True)
class ClusterReport:
    faces: int
    placed: int  # faces this run assigned (new ones, or all with full=True)
    clusters: int
    unassigned: int
    new_clusters: int
    dated_out: int = 0  # faces taken out of a person their photo's date rules out (before birth, ...)

    def __str__(self) -> str:
        dated = f"; {self.dated_out} moved out of a person their photo's date rules out" if self.dated_out else ""
        return (
            f"{self.faces} faces in {self.clusters} clusters ({self.new_clusters} new); "
            f"{self.placed} placed this run, {self.unassigned} unassigned{dated}"
        )


def cluster_collection(
    store: Any,
    clusterer: FaceClusterer | None = None,
    *,
    full: bool = False,
    embedder: str | os.PathLike[str] | None = None,
) -> ClusterReport:
    """Cluster ``store``'s faces (a ``CollectionStore``) and save the labels; see the module doc.

    Unless the clusterer has a ``threshold`` or a ``card`` of its own, its threshold comes from the
    card of the model the collection is bound to (a user calibration included). ``embedder``: the
    path of that model when it is a bring-your-own one (a collection records its name, not its file).
    """
    table = store.face_table()
    if not len(table):
        return ClusterReport(0, 0, 0, 0, 0)
    clusterer = with_bound_card(clusterer or FaceClusterer(), store, embedder)
    row_of = {int(face): row for row, face in enumerate(table.face_ids.tolist())}
    must, cannot = (_rows(pairs, row_of) for pairs in store.constraints())
    infos = store.clusters()
    names = {info.id: info.name for info in infos if info.name}  # life stages carry their person's name

    previous = np.asarray(table.clusters, dtype=np.int64)
    initial = np.where(previous >= 0, previous, NOT_CLUSTERED)  # unassigned faces get another chance
    if full:  # start over, but named clusters stay whole (and named)
        initial = np.where(np.isin(previous, list(names)), previous, NOT_CLUSTERED)
    groups, together = occasions(table.face_ids, table.photo_ids, store.video_tracks(), row_of)
    dates = _lifespans(store, table.face_ids, initial, infos, must)
    initial[dates.evict] = NOT_CLUSTERED
    cannot = np.concatenate([cannot, _between_names(initial, names), together, dates.cannot_link])
    labels = clusterer.fit(
        table.embeddings,
        qualities=table.qualities,
        groups=groups,
        must_link=must,
        cannot_link=cannot,
        initial_labels=initial,
        frozen_labels=list(names),  # a small named cluster is not reopened by new faces nearby
    ).labels_
    labels = _avoid_taken_ids(labels, initial, {info.id for info in infos})
    store.set_clusters(table.face_ids, labels)
    existing = set(previous[previous >= 0].tolist()) | set(names)
    clustered = set(labels[labels >= 0].tolist())
    return ClusterReport(
        faces=len(table),
        placed=int((initial < 0).sum()),
        clusters=len(clustered),
        unassigned=int((labels == UNASSIGNED).sum()),
        new_clusters=len(clustered - existing),
        dated_out=len(dates.evict),
    )


def _lifespans(store: Any, face_ids: np.ndarray, initial: np.ndarray, infos: list, must: np.ndarray) -> LifespanRules:
    """What the people's birth dates and the photos' capture dates rule out (a must-linked face stays)."""
    born = {info.id: info.born for info in infos if info.born}
    if not born:
        return LifespanRules.none()
    taken = store.face_dates()
    keep = np.zeros(len(face_ids), bool)
    keep[must.ravel()] = True
    return lifespan_constraints(
        initial,
        as_days([taken.get(face) for face in face_ids.tolist()]),
        born,
        person_of={info.id: info.person for info in infos if info.person is not None},
        keep=keep,
    )


def with_bound_card(
    clusterer: FaceClusterer, store: Any, embedder: str | os.PathLike[str] | None = None
) -> FaceClusterer:
    """``clusterer``, or a copy of it given the card of the model ``store`` is bound to when it has
    neither a threshold nor a card of its own (no card is guessed: a store of unknown model is refused)."""
    if clusterer.threshold is not None or clusterer.card is not None:
        return clusterer
    tag = store.model()
    if tag is None:
        return clusterer  # faces without a model cannot be: nothing to cluster either
    from sklearn.base import clone

    from faceatlas.models.catalog import card_for_tag

    card = card_for_tag(tag, embedder, where="the collection")  # no path: the service shows this message
    bound = clone(clusterer)
    bound.set_params(card=card)
    return bound


def occasions(
    face_ids: np.ndarray,
    photo_ids: np.ndarray,
    tracks: list[tuple[int, int, float, float]],
    row_of: dict[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """(group per face, cannot-link row pairs): "once per photo" for photos and videos alike.

    A photo's faces share its group (the clusterer keeps a group's faces apart). A video's faces
    (``tracks``: face id, video, start, end, by video and start) each get a group of their own,
    and a cannot-link to every other track of the video that overlaps it in time: two faces on
    screen together are two people, one face that left and came back may be the same."""
    groups = np.asarray(photo_ids, dtype=np.int64).copy()
    pairs: list[tuple[int, int]] = []
    open_: list[tuple[float, int, int]] = []  # (end, row, video) of the tracks not yet over
    for face, video, start, end in tracks:
        row = row_of.get(face)
        if row is None:
            continue
        groups[row] = -1 - int(face)  # photo ids are >= 1: never one of these
        open_ = [item for item in open_ if item[2] == video and item[0] >= start]
        pairs.extend((other, row) for _end, other, _video in open_)
        open_.append((end, row, video))
    return groups, np.array(pairs, dtype=np.int64).reshape(-1, 2)


def _rows(pairs: np.ndarray, row_of: dict[int, int]) -> np.ndarray:
    """Face-id pairs as row-index pairs (pairs naming a face that is gone are dropped)."""
    rows = [(row_of[a], row_of[b]) for a, b in np.asarray(pairs).reshape(-1, 2).tolist() if a in row_of and b in row_of]
    return np.array(rows, dtype=np.int64).reshape(-1, 2)


def _between_names(initial: np.ndarray, names: dict[int, str]) -> np.ndarray:
    """Cannot-links between one face of each pair of named clusters: names are never merged."""
    heads = [int(np.flatnonzero(initial == cluster)[0]) for cluster in names if (initial == cluster).any()]
    return np.array(list(combinations(heads, 2)), dtype=np.int64).reshape(-1, 2)


def _avoid_taken_ids(labels: np.ndarray, initial: np.ndarray, taken: set[int]) -> np.ndarray:
    """New clusters must not take the id of a stored cluster that lost its faces (it may be named)."""
    kept = set(initial[initial >= 0].tolist())
    clash = sorted((set(labels[labels >= 0].tolist()) - kept) & taken)
    if not clash:
        return labels
    labels = labels.copy()
    next_free = max([*taken, *labels.tolist(), -1]) + 1
    for label in clash:
        labels[labels == label] = next_free
        next_free += 1
    return labels
