"""Names that live in the photos' files: face regions read at index time become the user's corrections.

``faceatlas index`` reads each photo's face regions (``faceatlas.xmp.read_regions``: MWG and MP
regions of its sidecar or embedded XMP, in the displayed image's pixels). A **named** region is
matched to a detected face by overlap (``attach_regions``); a named region no detection matches
becomes a face of its own (origin "region", aligned and embedded inside the region's box by
``FaceAnalyzer.face_at``). Then ``tag_faces`` puts each named face in the cluster of that name,
as the user's own correction:

- a face not clustered yet joins the cluster of that name (made if there is none) and is
  must-linked to it, so every later clustering, full or incremental, keeps it there; clustering
  then spreads the name to untagged faces of the same person (they join the named cluster);
- a face in an unnamed cluster names that cluster (all of it: the clusterer found them one
  person), or merges it into the cluster of that name (``corrections.merge_clusters``);
- a face the collection already names otherwise keeps the collection's name: a correction made
  in faceatlas stands over the file's (reported, so the user can fix one or the other);
- names are matched to clusters case-insensitively ("ada" in a file is the collection's "Ada":
  reported), after ``faceatlas.names`` normalised them; a name it refuses is reported, skipped.

Unnamed regions, and regions of other types (pets, focus areas), are left alone. Removing a name
from a file does not remove it from the collection (a file is read, never obeyed for deletions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from faceatlas.collection.store import NOT_CLUSTERED, UNASSIGNED, CollectionStore, FaceOrigin
from faceatlas.errors import FaceAtlasError, InvalidNameError
from faceatlas.names import validate_person_name
from faceatlas.types import Box, Face

#: a region and a detection this close are one face: regions are drawn by people and by other
#: detectors, looser or tighter than ours, so overlap alone is not enough (see ``_same_face``)
MATCH_IOU = 0.3


@dataclass
class RegionFaces:
    """A photo's faces once its regions are attached: one name (or None) and origin per face."""

    faces: list[Face]
    names: list[str | None]
    origins: list[FaceOrigin]
    problems: list[str] = field(default_factory=list)


def attach_regions(analyzer: Any, image: np.ndarray, faces: Sequence[Face], regions: Sequence[Any]) -> RegionFaces:
    """Give the named face regions of a photo (``faceatlas.xmp.Region``) to its detected faces;
    a named region no face matches becomes a face (``analyzer.face_at``). Pairs are taken best
    overlap first, each face and each region once."""
    out = RegionFaces(list(faces), [None] * len(faces), ["detected"] * len(faces))
    named: list[tuple[str, Box]] = []
    for region in regions:
        if getattr(region, "kind", "Face") != "Face" or not region.name:
            continue
        try:
            name = validate_person_name(region.name)
        except InvalidNameError as exc:
            out.problems.append(f"the region named {region.name!r} was skipped: {exc}")
            continue
        named.append((name, Box(*(float(v) for v in region.box))))
    taken_regions: set[int] = set()
    for r, f in pair_regions([box for _, box in named], [face.box for face in faces]):
        taken_regions.add(r)
        out.names[f] = named[r][0]
    face_at = getattr(analyzer, "face_at", None)
    for r, (name, box) in enumerate(named):
        if r in taken_regions:
            continue
        if face_at is None:
            out.problems.append(f"no face was detected in the region named {name!r}, and this analyzer cannot add one")
            continue
        try:
            out.faces.append(face_at(image, box.as_xyxy()))
        except FaceAtlasError as exc:
            out.problems.append(f"the region named {name!r} could not be made a face: {exc}")
            continue
        out.names.append(name)
        out.origins.append("region")
    return out


def pair_regions(regions: Sequence[Box], faces: Sequence[Box]) -> list[tuple[int, int]]:
    """(region index, face index) pairs of the same face, surest first, each region and face once."""
    scored = sorted(
        ((score, r, f) for r, region in enumerate(regions) for f, face in enumerate(faces)
         if (score := _same_face(region, face)) > 0),
        reverse=True,
    )  # fmt: skip
    pairs: list[tuple[int, int]] = []
    used_regions: set[int] = set()
    used_faces: set[int] = set()
    for _, r, f in scored:
        if r not in used_regions and f not in used_faces:
            used_regions.add(r)
            used_faces.add(f)
            pairs.append((r, f))
    return pairs


def _same_face(region: Box, face: Box) -> float:
    """How surely a region and a detection are one face: their IoU when at least ``MATCH_IOU``, or
    a little less when each box's centre lies in the other and their sizes are within 2x (a tight
    face-only region inside a detector's looser box); 0: not the same face."""
    iou = region.iou(face)
    if iou >= MATCH_IOU:
        return iou
    (rx, ry), (fx, fy) = region.center, face.center
    inside = region.x1 <= fx <= region.x2 and region.y1 <= fy <= region.y2
    inside = inside and face.x1 <= rx <= face.x2 and face.y1 <= ry <= face.y2
    ratio = region.area / face.area if face.area > 0 else 0.0
    return 0.5 * MATCH_IOU * (1.0 + iou) if inside and 0.25 <= ratio <= 4.0 else 0.0


@dataclass
class TagReport:
    """What ``tag_faces`` did."""

    tagged: int = 0  # faces now in the cluster of their file's name
    clusters_named: int = 0  # unnamed clusters that took a name from a file
    clusters_made: int = 0
    problems: list[str] = field(default_factory=list)


def tag_faces(store: CollectionStore, tags: Sequence[tuple[int, str]], gallery: Any = None) -> TagReport:
    """Put each (face id, name) in the cluster of that name, as the module doc says; names already
    normalised (``attach_regions`` did). ``gallery``: named clusters are enrolled there too, as
    ``corrections.name_cluster`` does."""
    from faceatlas.collection.corrections import merge_clusters, name_cluster

    report = TagReport()
    for face_id, name in tags:
        face = store.face(face_id)
        clusters = {info.id: info for info in store.clusters()}
        by_name = {info.name.casefold(): info for info in clusters.values() if info.name}
        existing = by_name.get(name.casefold())
        if existing is not None and existing.name != name:
            report.problems.append(f"{name!r} of the photo's metadata is the collection's {existing.name!r}")
        current = clusters.get(face.cluster) if face.cluster is not None and face.cluster >= 0 else None
        try:
            if current is not None and current.name:
                if current.name.casefold() != name.casefold():
                    report.problems.append(
                        f"face {face.id} is {current.name!r} in the collection and {name!r} in the photo's "
                        "metadata: the collection's correction stands (correct one or the other)"
                    )
                continue
            if current is not None:  # an unnamed cluster: the person the clusterer found is named
                if existing is None:
                    name_cluster(store, current.id, name, gallery)
                    report.clusters_named += 1
                else:
                    merge_clusters(store, current.id, into=existing.id, gallery=gallery)
                report.tagged += 1
                continue
            assert face.cluster in (None, UNASSIGNED, NOT_CLUSTERED)
            if existing is None:
                target = store.new_cluster(name)
                report.clusters_made += 1
            else:
                target = existing.id
            members = [other for other in store.cluster_faces(target) if other.id != face.id]
            clash = next((other for other in members if face.same_moment(other)), None)
            if clash is not None:  # a person appears once per photo
                report.problems.append(f"face {face.id} and face {clash.id} of one photo are both named {name!r}")
                continue
            anchor = members[0] if members else None
            store.move_faces([face.id], target)
            if anchor is not None:
                store.add_constraint(face.id, anchor.id, "must")
            report.tagged += 1
        except FaceAtlasError as exc:  # a shared photo, another model's gallery...: reported, the rest goes on
            report.problems.append(f"face {face.id} was not named {name!r}: {exc}")
    if gallery is not None:
        store.enroll_named(gallery)
    return report
