"""Copies of photos for sharing, with every face blurred except those of the people named.

Which face is who:

- a photo of the collection (its bytes the ones indexed, found by their SHA-256): its stored faces,
  named by their clusters' names;
- any other photo: its faces are found (the gallery's analyzer) and identified against the gallery
  at its operating point (``fpir``); with no gallery, nobody is recognised and every face is blurred.

Fail safe: a face is left as it is only when it is confidently one of the people named (a named
cluster's face, or an identification that passed the threshold); an unnamed, unknown or doubtful
face is blurred. The blur cannot be undone by deblurring: the face's box, enlarged by a margin, is
first reduced to a coarse grid of mean colours (four cells across the face: what is left is no
more than a 4 x 4 thumbnail of it, too little to recognise anyone; with six, a detector still
finds a face there), then smoothed over a cell, under an elliptic mask. No deblurring brings back
what the averaging threw away.

Copies are written in the displayed orientation (EXIF rotation applied to the pixels). Metadata is
stripped by default: GPS, names (XMP face regions), everything; ``keep_metadata`` keeps the EXIF
that says nothing of where or who (camera, exposure, capture time) and the colour profile, never
GPS, maker notes, comments or XMP. Originals are never written: an output folder that is an input
folder, or an output path that is an input file, is refused before anything is written.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceatlas.errors import FaceAtlasError, InvalidArgumentError

__all__ = ["BlurReport", "BlurredPhoto", "blur_faces", "blur_regions"]

MARGIN = 0.35  # of the face box's longer side, added on each side before blurring
GRID_CELLS = 4  # cells across the face box: the most detail of a face that survives (6: still detected)
#: formats written as the input's; any other is written as JPEG (the name gets ".jpg")
_WRITABLE = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}
_JPEG_QUALITY = 92
# EXIF tags kept with keep_metadata: they say what the camera did and when, not where or who
_SAFE_EXIF_BASE = (0x010F, 0x0110, 0x0131, 0x0132, 0x011A, 0x011B, 0x0128)  # make, model, software, date, dpi
_SAFE_EXIF_IFD = (
    0x829A, 0x829D, 0x8822, 0x8827, 0x9003, 0x9004, 0x9010, 0x9011, 0x9012, 0x9201, 0x9202, 0x9204,
    0x9205, 0x9207, 0x9209, 0x920A, 0xA402, 0xA403, 0xA405, 0xA406, 0xA434,
)  # fmt: skip  # exposure, f-number, ISO, capture times and offsets, lens model ...


class BlurError(FaceAtlasError):
    """Blurring cannot start: bad names, an output folder that would overwrite the photos."""


@dataclass(frozen=True, slots=True)
class BlurredPhoto:
    """One copy written: from where to where, faces kept (with the names) and faces blurred."""

    source: Path
    output: Path
    kept: tuple[str, ...]
    blurred: int
    how: str  # "collection": its stored faces; "gallery": found and identified; "detected": no gallery


@dataclass
class BlurReport:
    written: list[BlurredPhoto] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (photo, why), e.g. unreadable

    def __str__(self) -> str:
        faces = sum(p.blurred for p in self.written)
        kept = sum(len(p.kept) for p in self.written)
        text = f"{len(self.written)} photos written, {faces} faces blurred, {kept} kept"
        return text + (f", {len(self.skipped)} skipped" if self.skipped else "")


def blur_regions(pixels: np.ndarray, boxes: Iterable[Sequence[float]], margin: float = MARGIN) -> np.ndarray:
    """A copy of ``pixels`` (HxWx3 uint8) with each box (x1, y1, x2, y2), enlarged by ``margin`` of
    its longer side, pixelated to a coarse grid and smoothed, inside an ellipse."""
    import cv2

    out = np.array(pixels, dtype=np.uint8, copy=True)
    height, width = out.shape[:2]
    for box in boxes:
        x1, y1, x2, y2 = (float(v) for v in box)
        side = max(x2 - x1, y2 - y1, 1.0)
        grow = margin * side
        ex1, ey1 = max(0, int(np.floor(x1 - grow))), max(0, int(np.floor(y1 - grow)))
        ex2, ey2 = min(width, int(np.ceil(x2 + grow))), min(height, int(np.ceil(y2 + grow)))
        if ex2 <= ex1 or ey2 <= ey1:
            continue
        region = out[ey1:ey2, ex1:ex2]
        cell = max(2.0, side / GRID_CELLS)
        cols, rows = max(1, round(region.shape[1] / cell)), max(1, round(region.shape[0] / cell))
        coarse = cv2.resize(region, (cols, rows), interpolation=cv2.INTER_AREA)
        blocky = cv2.resize(coarse, (region.shape[1], region.shape[0]), interpolation=cv2.INTER_NEAREST)
        smooth = cv2.GaussianBlur(blocky, (0, 0), sigmaX=cell)  # the grid's edges gone too
        # the ellipse through the enlarged box's edge midpoints (centred on the face), soft at its rim
        cx, cy = (x1 + x2) / 2 - ex1, (y1 + y2) / 2 - ey1
        ax, ay = (x2 - x1) / 2 + grow, (y2 - y1) / 2 + grow
        yy, xx = np.mgrid[0 : region.shape[0], 0 : region.shape[1]]
        radius = np.sqrt(((xx + 0.5 - cx) / ax) ** 2 + ((yy + 0.5 - cy) / ay) ** 2)
        alpha = np.clip((1.0 - radius) / 0.1, 0.0, 1.0)[..., None]  # 1 inside r < 0.9, 0 beyond the rim
        region[...] = np.round(alpha * smooth + (1.0 - alpha) * region).astype(np.uint8)
    return out


def blur_faces(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    except_names: Iterable[str] = (),
    *,
    collection: Any | None = None,
    gallery: Any | None = None,
    fpir: float | None = None,
    keep_metadata: bool = False,
    margin: float = MARGIN,
    on_photo: Callable[[BlurredPhoto | tuple[Path, str]], None] | None = None,
) -> BlurReport:
    """Write a copy of each photo (a file, or every image in a folder, recursively) to ``out_dir``
    with every face blurred but those of ``except_names``; see the module docstring.

    ``collection``: a CollectionStore (its photos' stored faces and cluster names), ``gallery``: a
    Gallery (for photos not in the collection; its analyzer finds their faces). A name that neither
    knows is a BlurError, as is an output that would overwrite an input; an unreadable photo is
    skipped and reported (``BlurReport.skipped``, and ``on_photo`` as each is done).
    """
    keep = _known_names(except_names, collection, gallery)
    sources = _sources(inputs, Path(out_dir))
    plan = _plan(sources, Path(out_dir))
    by_hash = _collection_photos(collection)
    report = BlurReport()
    for (source, relative), output in plan.items():
        try:
            written = _blur_one(
                source, output, relative, keep, collection, by_hash, gallery, fpir, keep_metadata, margin
            )
        except (FaceAtlasError, OSError) as exc:
            skip = (source, str(exc))
            report.skipped.append(skip)
            if on_photo is not None:
                on_photo(skip)
            continue
        report.written.append(written)
        if on_photo is not None:
            on_photo(written)
    return report


# --- planning: names, inputs, outputs ------------------------------------------------------------


def _known_names(names: Iterable[str], collection: Any | None, gallery: Any | None) -> frozenset[str]:
    wanted = [str(name) for name in names]
    if not wanted:
        return frozenset()
    known: set[str] = set()
    if collection is not None:
        known.update(c.name for c in collection.clusters() if c.name is not None)
    if gallery is not None:
        known.update(p.name for p in gallery.people())
    unknown = [name for name in wanted if name not in known]
    if unknown:
        where = [w for w, given in (("the collection", collection), ("the gallery", gallery)) if given is not None]
        raise BlurError(
            f"unknown {'name' if len(unknown) == 1 else 'names'} {', '.join(map(repr, unknown))}: no such person in "
            f"{' or '.join(where) or 'any store (give --db or --gallery)'}; see `faceatlas people list` and "
            "`faceatlas people clusters`"
        )
    return frozenset(wanted)


def _sources(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], out_dir: Path
) -> list[tuple[Path, Path]]:
    """(photo, its path under the output folder) of every input; folders walked (the output folder
    left out when it lies inside one). A folder that is the output folder is refused."""
    from faceatlas.image import iter_image_files

    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if not items:
        raise InvalidArgumentError("no photo or folder given")
    target = out_dir.expanduser().resolve()
    found: list[tuple[Path, Path]] = []
    for item in map(Path, items):
        if item.is_dir():
            folder = item.resolve()
            if folder == target:
                raise BlurError(
                    f"the output folder {out_dir} is the photos' folder: pick another, so no original is overwritten"
                )
            for path in iter_image_files(item):
                if path.resolve().is_relative_to(target):
                    continue  # copies written before, not photos to share
                found.append((path, path.relative_to(item)))
        else:
            if item.resolve().parent == target:
                raise BlurError(
                    f"the output folder {out_dir} holds {item}: pick another, so no original is overwritten"
                )
            found.append((item, Path(item.name)))
    return found


def _plan(sources: list[tuple[Path, Path]], out_dir: Path) -> dict[tuple[Path, Path], Path]:
    """Where each copy goes; refused (before anything is written) if one would be an input file or
    two copies would share a path."""
    inputs = {source.resolve() for source, _ in sources}
    plan: dict[tuple[Path, Path], Path] = {}
    taken: dict[Path, Path] = {}
    for source, relative in sources:
        suffix = relative.suffix.lower()
        output = out_dir / (relative if suffix in _WRITABLE else relative.with_name(relative.name + ".jpg"))
        resolved = output.expanduser().resolve()
        if resolved in inputs:
            raise BlurError(f"the copy of {source} would overwrite {output}, a photo given: pick another output folder")
        if resolved in taken:
            raise BlurError(f"{source} and {taken[resolved]} would both be written to {output}")
        taken[resolved] = source
        plan[(source, relative)] = output
    return plan


def _collection_photos(collection: Any | None) -> dict[str, Any]:
    """The collection's photos (not videos) by the SHA-256 of their bytes as indexed."""
    if collection is None:
        return {}
    return {p.sha256: p for p in collection.photos() if p.kind == "photo" and p.status == "ok"}


# --- one photo ------------------------------------------------------------------------------------


def _blur_one(
    source: Path,
    output: Path,
    relative: Path,
    keep: frozenset[str],
    collection: Any | None,
    by_hash: dict[str, Any],
    gallery: Any | None,
    fpir: float | None,
    keep_metadata: bool,
    margin: float,
) -> BlurredPhoto:
    from faceatlas._files import sha256_file
    from faceatlas.image import load_image

    data = source.read_bytes()
    pixels = load_image(data)  # EXIF-rotated: the boxes below are in these pixels
    record = by_hash.get(sha256_file(source)) if by_hash else None
    if record is not None:
        names = {c.id: c.name for c in collection.clusters()}  # type: ignore[union-attr]
        faces = [(f.box, names.get(f.cluster) if f.cluster is not None else None)
                 for f in collection.faces_of_photo(record.id)]  # type: ignore[union-attr]  # fmt: skip
        how = "collection"
    elif gallery is not None:
        # an empty gallery finds the faces too, and recognises nobody
        faces = [(r.face.box.as_xyxy(), r.person) for r in gallery.identify(pixels, k=1, fpir=fpir)]
        how = "gallery"
    else:
        raise BlurError(f"{source} is not in the collection and no gallery was given to find its faces")
    kept = tuple(sorted(name for _, name in faces if name is not None and name in keep))
    blurred = [box for box, name in faces if name is None or name not in keep]
    out = blur_regions(pixels, blurred, margin) if blurred else pixels
    output.parent.mkdir(parents=True, exist_ok=True)
    _write(out, data, output, keep_metadata)
    return BlurredPhoto(source, output, kept, len(blurred), how)


def _write(pixels: np.ndarray, original: bytes, output: Path, keep_metadata: bool) -> None:
    """Save the copy: its format from its name; metadata only as ``keep_metadata`` allows."""
    import io

    from PIL import Image

    fmt = _WRITABLE.get(output.suffix.lower(), "JPEG")
    image = Image.fromarray(pixels)
    options: dict[str, Any] = {"quality": _JPEG_QUALITY} if fmt in ("JPEG", "WEBP") else {}
    if keep_metadata:
        try:
            with Image.open(io.BytesIO(original)) as source:
                exif, icc = _safe_exif(source), source.info.get("icc_profile")
        except Exception:  # noqa: BLE001 - unreadable metadata is none: the pixels were read
            exif, icc = None, None
        if exif is not None and fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
            options["exif"] = exif
        if icc:
            options["icc_profile"] = icc
    tmp = output.with_name(f".{output.name}.part")
    try:
        image.save(tmp, format=fmt, **options)
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)


def _safe_exif(source: Any) -> Any:
    """The source's EXIF reduced to what says nothing of where or who; orientation 1 (applied)."""
    from PIL import Image

    exif = source.getexif()
    kept = Image.Exif()
    for tag in _SAFE_EXIF_BASE:
        if tag in exif:
            kept[tag] = exif[tag]
    inner = exif.get_ifd(0x8769)
    if inner:
        safe = {tag: inner[tag] for tag in _SAFE_EXIF_IFD if tag in inner}
        if safe:
            kept.get_ifd(0x8769).update(safe)
    kept[0x0112] = 1  # the pixels are already in the displayed orientation
    return kept.tobytes()
