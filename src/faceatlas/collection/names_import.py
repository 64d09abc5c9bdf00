"""Names from other photo tools, for photos already in the collection: Picasa's ``.picasa.ini``
(boxes and names), Google Takeout's per-photo people (names without boxes), and face regions of
sidecars edited since the photo was indexed.

``faceatlas index DIR --names-from picasa[:CONTACTS_XML] --names-from takeout:FOLDER`` runs these
after indexing; ``index_folder`` itself re-reads the regions of a photo whose sidecar changed
since it was indexed (the photo unchanged: no analysis). Every name becomes the user's own
correction as a photo's embedded regions do (``regions.tag_faces``).

- **Regions with boxes** (Picasa, sidecars) are matched to the photo's stored faces by overlap
  (``regions._same_face``); a named region no face matches becomes a face of origin "region"
  (``FaceAnalyzer.face_at``, when an analyzer is given).
- **Takeout** names people per photo, without boxes: a photo is resolved at once when one name
  and one unnamed face are left (the only certain case). A name of several photos with several
  faces goes to the unnamed cluster that recurs across them (``_resolve_by_clusters``: at least 2
  of them and 60 %, no tie), which needs the faces clustered: after a first ``faceatlas cluster``,
  import again. The rest are counted as unresolved, never guessed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceatlas.collection.regions import pair_regions, tag_faces
from faceatlas.collection.store import CollectionStore, PhotoRecord
from faceatlas.errors import FaceAtlasError, InvalidNameError
from faceatlas.names import validate_person_name
from faceatlas.types import Box


@dataclass
class NamesImport:
    """What an import of names did."""

    source: str
    photos: int = 0  # photos the source named someone in
    tagged: int = 0  # faces put in the cluster of their name
    faces_added: int = 0  # named regions no detection matched, made faces
    unresolved: int = 0  # Takeout names that could not be given to one face
    resolved_by_clusters: int = 0  # names given to the unnamed cluster recurring across their photos
    problems: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        line = f"names from {self.source}: {self.photos} photo(s), {self.tagged} face(s) named"
        if self.faces_added:
            line += f", {self.faces_added} face(s) added from regions no detection matched"
        if self.resolved_by_clusters:
            line += f"; {self.resolved_by_clusters} person(s) found as the cluster recurring across their photos"
        if self.unresolved:
            line += f"; {self.unresolved} name(s) not given (the photo has several unnamed faces)"
        return "\n".join([line] + [f"  {path}: {why}" for path, why in self.problems])


def apply_regions(
    store: CollectionStore, photo: PhotoRecord, regions: Sequence[Any], analyzer: Any, report: NamesImport
) -> None:
    """Name a stored photo's faces by its named face regions (boxes in displayed pixels)."""
    named = []
    for region in regions:
        if getattr(region, "kind", "Face") != "Face" or not region.name:
            continue
        try:
            named.append((validate_person_name(region.name), Box(*(float(v) for v in region.box))))
        except InvalidNameError as exc:
            report.problems.append((photo.path, f"the region named {region.name!r} was skipped: {exc}"))
    if not named:
        return
    faces = store.faces_of_photo(photo.id)
    pairs = pair_regions([box for _, box in named], [Box(*face.box) for face in faces])
    tags = [(faces[f].id, named[r][0]) for r, f in pairs]
    used_regions = {r for r, _ in pairs}
    leftover = [(name, box) for r, (name, box) in enumerate(named) if r not in used_regions]
    if leftover and analyzer is not None and getattr(analyzer, "face_at", None) is not None:
        from faceatlas.image import load_image

        try:
            image = load_image(photo.file)
            for name, box in leftover:
                face = store.add_face(photo.id, analyzer.face_at(image, box.as_xyxy()), origin="region")
                tags.append((face.id, name))
                report.faces_added += 1
        except (FaceAtlasError, OSError) as exc:
            report.problems.append((photo.path, f"a named region with no face detected could not be added: {exc}"))
    elif leftover:
        report.problems.append((photo.path, f"{len(leftover)} named region(s) match no face of the photo"))
    report.photos += 1
    tagged = tag_faces(store, tags)
    report.tagged += tagged.tagged
    report.problems.extend((photo.path, problem) for problem in tagged.problems)


def _photos_under(store: CollectionStore, folder: Path) -> dict[Path, PhotoRecord]:
    """The collection's photos inside ``folder``, by their file's path."""
    folder = folder.expanduser().resolve()
    return {
        record.file: record
        for record in store.photos()
        if record.kind == "photo" and record.status == "ok" and record.file.is_relative_to(folder)
    }


def import_picasa(
    store: CollectionStore, folder: Path, analyzer: Any = None, contacts: Path | None = None
) -> NamesImport:
    """Names (and boxes) from every ``.picasa.ini`` under ``folder``, for the photos indexed there."""
    from faceatlas.xmp import picasa_regions

    report = NamesImport("Picasa")
    photos = _photos_under(store, folder)
    for directory in sorted({path.parent for path in photos}):
        regions, problems = picasa_regions(directory, contacts)
        report.problems.extend((str(directory), problem) for problem in problems)
        for name, found in sorted(regions.items()):
            record = photos.get(directory / name)
            if record is not None:
                apply_regions(store, record, found, analyzer, report)
    return report


def import_takeout(store: CollectionStore, takeout: Path, photos_folder: Path | None = None) -> NamesImport:
    """People of a Google Takeout's per-photo JSON, for the collection's photos: by the path
    relative to ``takeout`` under ``photos_folder`` (default: the Takeout folder itself, when it
    was indexed), else by file name when one photo of the collection has it."""
    from faceatlas.xmp import takeout_people

    report = NamesImport("Google Takeout")
    pending: dict[str, list[PhotoRecord]] = {}  # name -> photos where it could not be given to one face
    people, problems = takeout_people(takeout)
    report.problems.extend((str(takeout), problem) for problem in problems)
    base = (photos_folder or takeout).expanduser().resolve()
    photos = {record.file: record for record in store.photos() if record.kind == "photo" and record.status == "ok"}
    by_name: dict[str, list[PhotoRecord]] = {}
    for record in photos.values():
        by_name.setdefault(Path(record.path).name.casefold(), []).append(record)
    for rel, names in sorted(people.items()):
        same = by_name.get(Path(rel).name.casefold(), [])
        found = photos.get(base / rel) or (same[0] if len(same) == 1 else None)
        if found is None:
            report.problems.append((rel, "the Takeout names a photo the collection does not hold (index it first)"))
            continue
        _hint(store, found, names, report, pending)
    _resolve_by_clusters(store, pending, report)
    return report


#: a name of several multi-face photos goes to the unnamed cluster found in at least this many of
#: them, and in at least this share: one person recurs across a person's photos, strangers do not
RESOLVE_MIN_PHOTOS, RESOLVE_MIN_SHARE = 2, 0.6


def _resolve_by_clusters(store: CollectionStore, pending: dict[str, list[PhotoRecord]], report: NamesImport) -> None:
    """Names left unresolved (their photos show several unnamed faces): a name the Takeout gives to
    several photos belongs to the one unnamed cluster that recurs across them (counted once per
    photo), when it is in at least ``RESOLVE_MIN_PHOTOS`` of them and ``RESOLVE_MIN_SHARE`` of the
    name's photos, and no other cluster is as frequent. Needs the faces clustered: after a first
    ``faceatlas cluster``, import again."""
    from collections import Counter

    for name, photos in sorted(pending.items()):
        names = {c.id: c.name for c in store.clusters()}
        if any(n is not None and n.casefold() == name.casefold() for n in names.values()):
            continue  # named meanwhile (another photo resolved it)
        seen: Counter[int] = Counter()
        for photo in photos:
            seen.update({f.cluster for f in store.faces_of_photo(photo.id) if f.cluster is not None and f.cluster >= 0
                         and not names.get(f.cluster)})  # fmt: skip
        ranked = seen.most_common(2)
        if not ranked:
            continue
        cluster, count = ranked[0]
        tied = len(ranked) > 1 and ranked[1][1] == count
        if tied or count < RESOLVE_MIN_PHOTOS or count < RESOLVE_MIN_SHARE * len(photos):
            continue
        face = store.cluster_faces(cluster)[0]
        tagged = tag_faces(store, [(face.id, name)])
        if tagged.tagged:
            report.tagged += 1
            report.unresolved -= len(photos)
            report.resolved_by_clusters += 1
        report.problems.extend((name, problem) for problem in tagged.problems)


def _hint(
    store: CollectionStore,
    photo: PhotoRecord,
    names: Iterable[str],
    report: NamesImport,
    pending: dict[str, list[PhotoRecord]],
) -> None:
    """Give a photo's names to its faces where that is certain: one unnamed face, one name left;
    the others go to ``pending`` (``_resolve_by_clusters``)."""
    clusters = {c.id: c.name for c in store.clusters()}
    faces = store.faces_of_photo(photo.id)
    shown = {str(clusters[f.cluster]).casefold() for f in faces if f.cluster is not None and clusters.get(f.cluster)}
    wanted = []
    for name in names:
        try:
            name = validate_person_name(name)
        except InvalidNameError as exc:
            report.problems.append((photo.path, f"the name {name!r} was skipped: {exc}"))
            continue
        if name.casefold() not in shown:
            wanted.append(name)
    unnamed = [f for f in faces if f.cluster is None or not clusters.get(f.cluster)]
    if not wanted:
        return
    report.photos += 1
    if len(wanted) == 1 and len(unnamed) == 1:
        tagged = tag_faces(store, [(unnamed[0].id, wanted[0])])
        report.tagged += tagged.tagged
        report.problems.extend((photo.path, problem) for problem in tagged.problems)
    else:
        report.unresolved += len(wanted)
        for name in wanted:
            pending.setdefault(name, []).append(photo)
