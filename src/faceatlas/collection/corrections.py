"""The user's corrections of a collection's clusters: name, merge, split, "not this person".

>>> from faceatlas.collection import CollectionStore, corrections
>>> from faceatlas.gallery.gallery import Gallery
>>> with CollectionStore.open("collection.db") as store, Gallery.open("gallery.db") as gallery:
...     corrections.name_cluster(store, 3, "Ada", gallery)        # and enrolled as Ada
...     corrections.merge_clusters(store, 7, into=3, gallery=gallery)
...     corrections.split_cluster(store, 3, [41, 42], gallery=gallery)
...     corrections.not_this_person(store, 17, gallery=gallery)

Each function is one read-modify-write of the collection (and of the gallery, when one is
given). Callers that share a store between threads run them one at a time, and not during a
clustering (the service holds its collection lock, as its cluster jobs do), so a clustering never
overwrites a correction made while it ran. Refusals are typed: ``ClusterNotFoundError``,
``FaceNotFoundError``, ``NameTakenError`` and the other ``CorrectionConflictError`` (the
collection's state forbids it), ``InvalidCorrectionError`` (a ``ValueError``: wrong arguments),
``ModelMismatchError`` (the gallery holds another model's embeddings); each leaves the collection
as it was.

Corrections are recorded as constraints (``CollectionStore.update_constraints``, one transaction
per correction) that later clusterings (``cluster_collection``) honour, incremental or full, and
they stay linear in the faces involved:

- **merge** A into B: the merged cluster's faces become one must-link component (a chain joining
  the components already there, so a re-merge adds one link), and cannot-links among them are
  dropped. One must-link between A and B would not do: in a full run the rest of A and of B
  cluster on their own and only the two linked faces stay together.
- **split** M off C: must-links between M and the rest R are dropped (R's faces that were joined
  only through M are chained again), M becomes one must-link component, and M's best face is
  cannot-linked with *every* face of R. One cannot-link pair is not enough: R is not one node in a
  full run, so the other faces of R could join M (they do, when their embeddings are close).
- **not this person**: the face loses its must-links (its neighbours are chained again, so the
  others stay joined) and is cannot-linked with every other face of its former cluster.

A named cluster is a person of the gallery (``CollectionStore.enroll_named``): faces a correction
takes out of a named cluster (split, not this person, the name removed) are taken out of that
gallery person too, so identification follows the user's corrections. Without a gallery only the
collection changes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from faceatlas.collection.store import (
    UNASSIGNED,
    ClusterInfo,
    CollectionStore,
    ConstraintKind,
    CorrectionConflictError,
    FaceInfo,
    InvalidCorrectionError,
    ModelMismatchError,
    NameTakenError,
)
from faceatlas.errors import InvalidNameError
from faceatlas.names import validate_person_name

__all__ = [
    "ClusterChange",
    "DifferentPeopleError",
    "InvalidClusterNameError",
    "MergeResult",
    "NameResult",
    "NotThisPersonResult",
    "SharedPhotoError",
    "SplitResult",
    "WholeClusterError",
    "link_life_stage",
    "merge_clusters",
    "name_cluster",
    "not_this_person",
    "split_cluster",
    "unlink_life_stage",
]


# --- results and refusals -------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterChange:
    """A cluster as a correction left it, and what changed in the gallery."""

    cluster: ClusterInfo
    faces: list[FaceInfo]  # the cluster's faces, best quality first
    enrolled: int = 0  # faces enrolled into the gallery under the cluster's name
    gallery_faces: int | None = None  # faces the gallery holds for that name (None: no name, or no gallery)
    unenrolled: int = 0  # faces taken out of a gallery person


@dataclass(frozen=True)
class NameResult(ClusterChange):
    """``name_cluster``: the cluster named (``unenrolled``: its faces, when the name was removed)."""


@dataclass(frozen=True)
class MergeResult(ClusterChange):
    """``merge_clusters``: the cluster that received the faces."""


@dataclass(frozen=True)
class SplitResult(ClusterChange):
    """``split_cluster``: the new cluster (``unenrolled``: the faces that left a named cluster's person)."""

    former_id: int = -1  # the cluster the faces left


@dataclass(frozen=True)
class NotThisPersonResult:
    face_id: int
    former_id: int  # the cluster it left
    unenrolled: int = 0  # 1 if it was taken out of that cluster's gallery person


class DifferentPeopleError(CorrectionConflictError):
    """Two differently named clusters are not merged: by the user's word they are two people."""

    def __init__(self, message: str, source: ClusterInfo, into: ClusterInfo) -> None:
        super().__init__(message)
        self.source, self.into = source, into


class SharedPhotoError(CorrectionConflictError):
    """Two clusters with a face in one photo are not merged: a person appears once per photo."""

    def __init__(self, message: str, source_id: int, into_id: int, photo_id: int, faces: tuple[int, int]) -> None:
        super().__init__(message)
        self.source_id, self.into_id, self.photo_id = source_id, into_id, photo_id
        self.faces = faces  # (the face of ``into``, the face of ``source``) in that photo


class InvalidClusterNameError(InvalidCorrectionError, InvalidNameError):
    """A cluster's name is a person's name (``faceatlas.names``); this one breaks its rules."""


class WholeClusterError(InvalidCorrectionError):
    """A split must leave a face behind (moving them all is renaming, not splitting)."""

    def __init__(self, message: str, cluster_id: int) -> None:
        super().__init__(message)
        self.cluster_id = cluster_id


# --- the corrections ------------------------------------------------------------------------------


def name_cluster(store: CollectionStore, cluster_id: int, name: str | None, gallery: Any = None) -> NameResult:
    """Name a cluster (a person's name, checked and normalised by ``faceatlas.names``); ``None`` removes its name.

    With a ``gallery`` (a ``Gallery``), a named cluster is a person there: its faces are enrolled
    under the name (those below the gallery's quality floor left out); renaming a named cluster
    renames its gallery person too (when the new name is free there); removing the name takes
    the cluster's faces, and its life stages', out of the gallery again (and the person, if that
    leaves it with no face).
    Refused: ClusterNotFoundError, NameTakenError, ModelMismatchError (the gallery holds another
    model's embeddings), InvalidClusterNameError (an InvalidCorrectionError and an InvalidNameError:
    a blank name, a control character, too long...).
    """
    if name is not None:
        try:
            name = validate_person_name(name)
        except InvalidNameError as exc:
            raise InvalidClusterNameError(f"cluster {cluster_id} cannot be named so: {exc}") from None
    info = store.cluster(cluster_id)
    if name is not None:
        _check_name_free(store, info.id, name)
        if gallery is not None:
            _check_gallery_model(store, gallery)
    store.name_cluster(info.id, name)
    unenrolled = 0
    if name is None and info.name is not None and gallery is not None:  # the person's life stages go too
        faces = [
            f for c in [info, *(c for c in store.clusters() if c.person == info.id)] for f in store.cluster_faces(c.id)
        ]
        unenrolled = _unenroll(gallery, info.name, faces, [])
    enrolled, held = _enroll(store, gallery, name, rename_from=info.name)
    return NameResult(store.cluster(info.id), store.cluster_faces(info.id), enrolled, held, unenrolled)


def merge_clusters(store: CollectionStore, source: int, into: int, gallery: Any = None) -> MergeResult:
    """Move every face of cluster ``source`` to cluster ``into``, which keeps its id and name (or
    takes ``source``'s name if it has none); later clusterings keep the merged faces together.

    Refused: InvalidCorrectionError (``source == into``), ClusterNotFoundError,
    DifferentPeopleError (both are named), SharedPhotoError (both have a face in one photo),
    ModelMismatchError (the merged cluster is named and the gallery holds another model's
    embeddings). With a ``gallery``, the named result is enrolled there.
    """
    if into == source:
        raise InvalidCorrectionError(f"cluster {source} cannot be merged into itself")
    src, target = store.cluster(source), store.cluster(into)
    if src.name and target.name:
        raise DifferentPeopleError(
            f"cluster {src.id} is {src.name!r} and cluster {target.id} is {target.name!r}: differently named "
            "clusters are different people; remove one name first (name_cluster with None) if they are one",
            src,
            target,
        )
    moving, staying = store.cluster_faces(src.id), store.cluster_faces(target.id)
    by_photo: dict[int, list[FaceInfo]] = {}
    for face in staying:
        by_photo.setdefault(face.photo_id, []).append(face)
    both = [  # a video's tracks apart in time may be one person: only those seen together clash
        (f.photo_id, g.id, f.id) for f in moving for g in by_photo.get(f.photo_id, ()) if g.same_moment(f)
    ]
    if both:
        photo, a, b = both[0]
        raise SharedPhotoError(
            f"clusters {src.id} and {target.id} both have a face in photo {photo} (faces {a} and {b}); a person "
            "appears once per photo: take the wrong face out first (not_this_person), then merge",
            src.id,
            target.id,
            photo,
            (a, b),
        )
    name = target.name or src.name
    if name is not None and gallery is not None:
        _check_gallery_model(store, gallery)
    if src.name:  # the name goes with the faces: `into` has none
        store.name_cluster(src.id, None)
        store.name_cluster(target.id, name)
    store.set_clusters([f.id for f in moving], [target.id] * len(moving))  # also drops the emptied cluster
    links = _Links(store)
    links.tie({f.id for f in moving} | {f.id for f in staying})
    links.save()
    enrolled, held = _enroll(store, gallery, name)
    return MergeResult(store.cluster(target.id), store.cluster_faces(target.id), enrolled, held)


def split_cluster(store: CollectionStore, cluster_id: int, faces: Iterable[int], gallery: Any = None) -> SplitResult:
    """Move ``faces`` (some, not all, of the cluster's) to a new, unnamed cluster; later
    clusterings keep them together and apart from the faces that stayed. With a ``gallery``, when
    the cluster is named, the faces moved are taken out of its gallery person.

    Refused: ClusterNotFoundError, InvalidCorrectionError (no faces, or faces not in the
    cluster), WholeClusterError (all of its faces).
    """
    info = store.cluster(cluster_id)
    members = store.cluster_faces(info.id)  # best first
    here = {f.id for f in members}
    wanted = list(dict.fromkeys(int(f) for f in faces))
    if not wanted:
        raise InvalidCorrectionError(f"a split of cluster {info.id} needs at least one face to move")
    strangers = [f for f in wanted if f not in here]
    if strangers:
        raise InvalidCorrectionError(f"faces {_few(strangers)} are not in cluster {info.id}; split moves its own faces")
    if len(wanted) == len(members):
        raise WholeClusterError(
            f"a split must leave at least one face in cluster {info.id}; to rename the person, name the cluster",
            info.id,
        )
    new_id = max(c.id for c in store.clusters()) + 1
    store.set_clusters(wanted, [new_id] * len(wanted))
    moved = set(wanted)
    rest = here - moved
    links = _Links(store)
    links.separate(moved, rest)
    links.tie(moved)
    representative = next(f.id for f in members if f.id in moved)  # the best face of those moved
    links.cannot(representative, rest)
    links.save()
    unenrolled = 0
    if info.name is not None and gallery is not None:
        unenrolled = _unenroll(
            gallery, info.name, [f for f in members if f.id in moved], [f for f in members if f.id in rest]
        )
    return SplitResult(store.cluster(new_id), store.cluster_faces(new_id), unenrolled=unenrolled, former_id=info.id)


def not_this_person(
    store: CollectionStore, face_id: int, gallery: Any = None, apart_from: Iterable[int] | None = None
) -> NotThisPersonResult:
    """Take a face out of its cluster: it becomes unassigned, and later clusterings never put it
    back with its former cluster's faces. With a ``gallery``, when that cluster is named, the face
    is taken out of its gallery person.

    ``apart_from``: the faces of the cluster the user said it is not (the face shown for the person,
    say): it is kept apart from those and the faces must-linked to them only, so that other faces of
    the cluster that are not that person either (its own person's, it may be) can still join it.

    Refused: FaceNotFoundError, CorrectionConflictError (the face is in no cluster).
    """
    face = store.face(face_id)
    if face.cluster is None or face.cluster < 0:
        state = "not clustered yet" if face.cluster is None else "unassigned"
        raise CorrectionConflictError(f"face {face.id} is in no cluster ({state})")
    former = store.cluster(int(face.cluster))
    staying = [f for f in store.cluster_faces(former.id) if f.id != face.id]
    others = {f.id for f in staying}
    store.set_clusters([face.id], [UNASSIGNED])
    links = _Links(store)
    links.separate({face.id}, others | links.must[face.id])
    kept_apart = others
    if apart_from is not None:
        named = {int(f) for f in apart_from}
        kept_apart = {f for component in links.components(others) if component & named for f in component}
    links.cannot(face.id, kept_apart)
    links.save()
    unenrolled = 0
    if former.name is not None and gallery is not None:
        unenrolled = _unenroll(gallery, former.name, [face], staying)
    return NotThisPersonResult(face.id, former.id, unenrolled)


def link_life_stage(store: CollectionStore, stage: int, person: int, gallery: Any = None) -> ClusterChange:
    """Make cluster ``stage`` a life stage of ``person``'s person (``CollectionStore.link_life_stage``:
    one person, the stage a template of its own, never merged by later clusterings). With a
    ``gallery``, the stage's faces are enrolled under the person's name."""
    if gallery is not None:
        _check_gallery_model(store, gallery)
    info = store.link_life_stage(stage, person)
    enrolled, held = _enroll(store, gallery, info.name)
    return ClusterChange(info, store.cluster_faces(info.id), enrolled, held)


def unlink_life_stage(store: CollectionStore, stage: int, gallery: Any = None) -> ClusterChange:
    """A life stage becomes a person of its own again (unnamed); with a ``gallery``, its faces
    leave the person it was a stage of."""
    before = store.cluster(stage)
    faces = store.cluster_faces(before.id)
    unenrolled = 0
    if before.person is not None and before.name is not None and gallery is not None:
        staying = [
            f
            for c in store.clusters()
            if c.name == before.name and c.id != before.id
            for f in store.cluster_faces(c.id)
        ]
        unenrolled = _unenroll(gallery, before.name, faces, staying)
    return ClusterChange(store.unlink_life_stage(before.id), faces, unenrolled=unenrolled)


# --- the gallery side -----------------------------------------------------------------------------


def _check_name_free(store: CollectionStore, cluster_id: int, name: str) -> None:
    """Before anything changes: ``store.name_cluster`` would refuse too, but only after the gallery check."""
    for info in store.clusters():
        if info.name == name and info.id != cluster_id and info.person != cluster_id:  # its own life stages share it
            raise NameTakenError(
                f"cluster {info.id} is already named {name!r}; if both show one person, merge cluster "
                f"{cluster_id} into it (merge_clusters), or pick another name",
                cluster_id,
                name,
                info.id,
            )


def _check_gallery_model(store: CollectionStore, gallery: Any) -> None:
    """Refuse before naming when the gallery holds another model's embeddings than the collection."""
    collection_model, gallery_model = store.model(), gallery.store.model()
    if collection_model is not None and gallery_model is not None and collection_model != gallery_model:
        raise ModelMismatchError(
            f"the collection holds {collection_model} embeddings and the gallery {gallery_model}; "
            "its faces cannot be enrolled, so the cluster was not named"
        )


def _enroll(
    store: CollectionStore, gallery: Any, name: str | None, rename_from: str | None = None
) -> tuple[int, int | None]:
    """Enrol the named clusters into ``gallery`` (``enroll_named``: only faces not there yet);
    (faces added under ``name``, faces the gallery holds for it). A cluster renamed from
    ``rename_from`` takes its gallery person along when ``name`` is free there."""
    if name is None or gallery is None:
        return 0, None
    if rename_from and rename_from != name and _person(gallery, rename_from) and _person(gallery, name) is None:
        gallery.rename(rename_from, name)
    summary = store.enroll_named(gallery)
    person = _person(gallery, name)
    return int(summary.added.get(name, 0)), 0 if person is None else int(person.n_faces)


def _unenroll(gallery: Any, name: str, leaving: list[FaceInfo], staying: list[FaceInfo]) -> int:
    """Take the faces ``leaving`` a cluster named ``name`` out of that gallery person (the ones
    ``enroll_named`` put there: source "<photo sha256>#<idx>", unless a face ``staying`` has the
    same source, i.e. a copy of the photo); the person goes too if no face is left. Returns how
    many faces were removed. The gallery has no lookup by source, so its rows are read through."""
    source = "{0.sha256}#{0.idx}".format
    sources = {source(f) for f in leaving} - {source(f) for f in staying}
    person = _person(gallery, name)
    if person is None or not sources:
        return 0
    gone = [
        int(row["id"])
        for row in gallery.store.export_rows()
        if row.get("kind") == "face" and row["person_id"] == person.id and row["source"] in sources
    ]
    for face_id in gone:
        gallery.remove_face(face_id)
    if gone and _person(gallery, name).n_faces == 0:  # a person is created with faces: none, no person
        gallery.delete_person(name)
    return len(gone)


def _person(gallery: Any, name: str) -> Any:
    from faceatlas.gallery.store import PersonNotFoundError

    try:
        return gallery.store.get_person(name)
    except PersonNotFoundError:
        return None


def _few(ids: list[int], shown: int = 10) -> str:
    text = ", ".join(map(str, ids[:shown]))
    return text + (f" and {len(ids) - shown} more" if len(ids) > shown else "")


# --- constraints ----------------------------------------------------------------------------------


class _Links:
    """The collection's must-links as a graph (and its cannot-links). Changes are made here first
    and written by ``save()``: the net change, in one transaction."""

    def __init__(self, store: CollectionStore) -> None:
        self.store = store
        self.must: defaultdict[int, set[int]] = defaultdict(set)
        self.cannot_of: defaultdict[int, set[int]] = defaultdict(set)
        self._stored: dict[tuple[int, int], ConstraintKind] = {}  # as read
        self._changed: dict[tuple[int, int], ConstraintKind | None] = {}  # None: removed
        must, cannot = store.constraints()
        for a, b in must.tolist():
            self.must[a].add(b)
            self.must[b].add(a)
            self._stored[a, b] = "must"
        for a, b in cannot.tolist():
            self.cannot_of[a].add(b)
            self.cannot_of[b].add(a)
            self._stored[a, b] = "cannot"

    def components(self, faces: set[int]) -> list[set[int]]:
        """The must-link components among ``faces`` (links to other faces not followed)."""
        seen: set[int] = set()
        out = []
        for start in sorted(faces):
            if start in seen:
                continue
            component, todo = {start}, [start]
            while todo:
                for other in self.must[todo.pop()] & faces:
                    if other not in component:
                        component.add(other)
                        todo.append(other)
            seen |= component
            out.append(component)
        return out

    def _add(self, a: int, b: int, kind: ConstraintKind) -> None:
        # a constraint replaces one of the other kind on the pair, as in the store
        (self.cannot_of if kind == "must" else self.must)[a].discard(b)
        (self.cannot_of if kind == "must" else self.must)[b].discard(a)
        (self.must if kind == "must" else self.cannot_of)[a].add(b)
        (self.must if kind == "must" else self.cannot_of)[b].add(a)
        self._changed[min(a, b), max(a, b)] = kind

    def _remove(self, a: int, b: int) -> None:
        for graph in (self.must, self.cannot_of):
            graph[a].discard(b)
            graph[b].discard(a)
        self._changed[min(a, b), max(a, b)] = None

    def _chain(self, components: list[set[int]]) -> None:
        for a, b in pairwise(min(c) for c in components):
            self._add(a, b, "must")

    def tie(self, faces: set[int]) -> None:
        """Make ``faces`` one must-link component, with no cannot-link among them."""
        for a in faces:
            for b in sorted(self.cannot_of[a] & faces):
                if a < b:
                    self._remove(a, b)
        self._chain(self.components(faces))

    def separate(self, moved: set[int], rest: set[int]) -> None:
        """Drop the must-links between ``moved`` and ``rest``; faces of one side that were joined
        only through the other side are chained again, so each side stays as joined as it was."""
        before = self.components(moved | rest)
        for a in moved:
            for b in sorted(self.must[a] & (rest - moved)):
                self._remove(a, b)
        for component in before:
            for side in (moved, rest - moved):
                part = component & side
                if len(part) > 1:
                    self._chain(self.components(part))

    def cannot(self, face: int, others: Iterable[int]) -> None:
        for other in sorted(others):
            if other != face:
                self._add(face, other, "cannot")

    def save(self) -> None:
        """Write the net change (pairs set back to what they were are left alone), in one transaction."""
        changes = {pair: kind for pair, kind in self._changed.items() if self._stored.get(pair) != kind}
        if changes:
            self.store.update_constraints(
                must=[pair for pair, kind in changes.items() if kind == "must"],
                cannot=[pair for pair, kind in changes.items() if kind == "cannot"],
                remove=[pair for pair, kind in changes.items() if kind is None],
            )
        for pair, kind in changes.items():
            if kind is None:
                self._stored.pop(pair, None)
            else:
                self._stored[pair] = kind
        self._changed.clear()
