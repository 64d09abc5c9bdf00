"""``faceatlas export --xmp``: the collection's named faces written back as MWG face regions.

Each photo with a named face gets its names in its sidecar (``faceatlas.xmp.sidecar_path``),
which digiKam, Lightroom, darktable, Immich and exiftool read; everything else in an existing
sidecar is kept (``faceatlas.xmp.write_sidecar``). Originals are never changed unless asked
(``in_place=True``: a JPEG's own XMP is rewritten, its image data untouched; other formats get a
sidecar, said in the report). A photo changed that way is recorded with its new bytes, so the
next ``faceatlas index`` does not analyse it again. Private people are left out unless
``include_private``. Every sidecar written is remembered (``CollectionStore.record_sidecar``), so
``faceatlas forget`` can take a person out of them again.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from faceatlas.collection.store import CollectionStore, FaceInfo
from faceatlas.errors import FaceAtlasError


@dataclass
class XmpExport:
    """What ``export_regions`` wrote, and what it could not."""

    photos: int = 0  # photos whose names were written
    regions: int = 0
    sidecars: list[str] = field(default_factory=list)
    originals: list[str] = field(default_factory=list)  # photos whose own XMP was rewritten (in_place)
    private_skipped: int = 0  # faces of private people left out
    problems: list[tuple[str, str]] = field(default_factory=list)  # (photo, why nothing was written for it)

    def __str__(self) -> str:
        lines = [
            f"{self.regions} named face region(s) written for {self.photos} photo(s): "
            f"{len(self.sidecars)} sidecar(s), {len(self.originals)} original(s) changed"
            + (f"; {self.private_skipped} face(s) of private people left out" if self.private_skipped else "")
        ]
        lines += [f"  {path}: {why}" for path, why in self.problems]
        return "\n".join(lines)


def export_regions(
    store: CollectionStore, *, in_place: bool = False, include_private: bool = False, people: set[str] | None = None
) -> XmpExport:
    """Write every named face of the collection as a face region of its photo (see the module doc).
    ``people``: only these names (as stored). A photo that cannot be written (gone, a sidecar that
    is not writable or not XMP) is reported and skipped; nothing half-written is left."""
    from faceatlas.xmp import Region, XmpError, write_embedded, write_sidecar

    report = XmpExport()
    named = [c for c in store.clusters() if c.name and c.n_faces and (people is None or c.name in people)]
    by_photo: dict[int, list[tuple[FaceInfo, str]]] = defaultdict(list)
    for cluster in named:
        faces = store.cluster_faces(cluster.id)
        if cluster.private and not include_private:
            report.private_skipped += len(faces)
            continue
        for face in faces:
            if face.time is None:  # a video's faces are tracks: no region format holds them
                by_photo[face.photo_id].append((face, str(cluster.name)))
    for photo_id in sorted(by_photo):
        record = store.photo(photo_id)
        photo = record.file
        if record.width is None or record.height is None:
            continue
        regions = [Region(face.box, name) for face, name in by_photo[photo_id]]
        try:
            orientation = _orientation(photo)
            if in_place and photo.suffix.lower() in (".jpg", ".jpeg"):
                write_embedded(photo, regions, size=(record.width, record.height), orientation=orientation)
                data = photo.read_bytes()
                stat = photo.stat()
                store.refresh_photo(record.path, record.root, hashlib.sha256(data).hexdigest(), stat.st_size,
                                    stat.st_mtime_ns)  # fmt: skip
                report.originals.append(str(photo))
            else:
                if in_place:
                    report.problems.append((str(photo), "not a JPEG: its names went to its sidecar instead"))
                target = write_sidecar(photo, regions, size=(record.width, record.height), orientation=orientation)
                store.record_sidecar(photo_id, str(target))
                report.sidecars.append(str(target))
        except (XmpError, FaceAtlasError, OSError) as exc:
            report.problems.append((str(photo), f"nothing written: {exc}"))
            continue
        report.photos += 1
        report.regions += len(regions)
    return report


def _orientation(photo: Path) -> int:
    """The photo's EXIF orientation (1-8; 1 when it has none): regions are stored unrotated."""
    from PIL import Image

    with Image.open(photo) as im:
        value = im.getexif().get(0x0112, 1)
    return int(value) if value in range(1, 9) else 1
