"""Face regions stored in photo metadata (MWG and Microsoft MP regions), as faceatlas boxes.

Coordinates. faceatlas boxes are xyxy float pixels in the *displayed* image (EXIF orientation
applied, as ``PIL.ImageOps.exif_transpose`` does). MWG regions are normalised
(``stArea:x/y`` = centre, ``w/h``; unit ``normalized``) and, per the MWG Guidelines 2.0 (section
5.9 "Image Region Metadata", with 5.4 "Orientation"), *apply to the stored image*: "Region
metadata is applied to the stored image. When applying a rotation by applying Exif Orientation,
the rotation must be applied to the regions as well". ``mwg-rs:AppliedToDimensions`` is therefore
the stored (unrotated) pixel size. The main readers agree: digiKam's scanner maps a region from
metadata to its (displayed) database rectangle with ``TagRegion::adjustToOrientation``; exiftool's
``picasa_faces.config`` and ``rotate_regions.config`` treat regions as stored-image relative;
Immich rotates imported regions by the EXIF orientation since immich PR 18021 (issues 12440,
13740). Microsoft's MP regions (``MPReg:Rectangle`` = "x, y, w, h", top-left, normalised) are
stored-image relative too (wpg2dk's notes on Windows Photo Gallery: the file's MP regions give
"the region *before* applying the rotation").

Dimensions. Normalised areas do not depend on the pixel size, so an ``AppliedToDimensions`` of
another size but the same aspect ratio (a resized copy) just scales. One whose aspect ratio
matches only after swapping w and h comes from a writer that worked in the displayed frame: for
a photo whose orientation turns it by 90 degrees (5-8) its areas are read as relative to the
displayed image (and a problem says so); for orientations 1-4 it cannot be placed and is
skipped. One that matches neither is skipped with a problem. Boxes are clipped to the image;
regions entirely outside, of zero size, NaN or unreadable are reported and skipped.

Where from, and which wins. The embedded XMP (JPEG APP1, PNG iTXt, TIFF tag 700, WebP, HEIC when
Pillow can open it) and the sidecar (``photo.jpg.xmp`` first, then ``photo.xmp``, either case of
``.xmp``). When both hold regions the sidecar wins: it is what the user's DAM maintains (digiKam,
darktable, Lightroom write their edits there and leave the original untouched). Within one packet
MWG regions win; MP regions are used only when there are no MWG regions (digiKam writes both, for
the same faces). A sidecar's own ``tiff:Orientation`` is ignored: faceatlas shows the photo the way
its file says, so regions are mapped with the file's orientation.
"""

from __future__ import annotations

import io
import math
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faceatlas.errors import InvalidImageError
from faceatlas.xmp import _xml
from faceatlas.xmp._xml import MP, MPREG, MPRI, MWG_RS, ST_AREA, ST_DIM, XmlRefused, q

Box = tuple[float, float, float, float]
ASPECT_TOLERANCE = 0.02  # relative; integer rounding of resized copies stays well inside it


class BadRegion(Exception):
    """Internal: one region cannot be used; the message says why (it becomes a problem)."""


@dataclass(frozen=True)
class Region:
    """One region: ``box`` xyxy pixels in the displayed (EXIF-rotated) image; ``name`` the person
    (None for an unnamed region); ``kind`` the MWG type (Face, Pet, Focus, BarCode...);
    ``source`` "mwg" | "mp" | "picasa"; ``origin`` "embedded" | "sidecar" | "picasa"."""

    box: Box
    name: str | None
    kind: str = "Face"
    source: str = "mwg"
    origin: str = "embedded"


@dataclass(frozen=True)
class RegionsRead:
    """What :func:`read_regions` found; ``problems`` are sentences naming what was skipped and why."""

    regions: tuple[Region, ...]
    problems: tuple[str, ...]


# -- geometry ------------------------------------------------------------------------------------

# stored normalised point (u, v) -> displayed normalised point, per EXIF orientation
_TO_DISPLAYED: dict[int, Callable[[float, float], tuple[float, float]]] = {
    1: lambda u, v: (u, v),
    2: lambda u, v: (1 - u, v),
    3: lambda u, v: (1 - u, 1 - v),
    4: lambda u, v: (u, 1 - v),
    5: lambda u, v: (v, u),
    6: lambda u, v: (1 - v, u),
    7: lambda u, v: (1 - v, 1 - u),
    8: lambda u, v: (v, 1 - u),
}
_INVERSE = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 8, 7: 7, 8: 6}


def _map(box: Box, orientation: int) -> Box:
    fn = _TO_DISPLAYED[orientation]
    (a, b), (c, d) = fn(box[0], box[1]), fn(box[2], box[3])
    return (min(a, c), min(b, d), max(a, c), max(b, d))


def stored_to_displayed(box: Box, orientation: int) -> Box:
    """A normalised xyxy box in the stored image -> normalised xyxy box in the displayed image."""
    return _map(box, orientation)


def displayed_to_stored(box: Box, orientation: int) -> Box:
    """Inverse of :func:`stored_to_displayed`."""
    return _map(box, _INVERSE[orientation])


def stored_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    """The stored (unrotated) pixel size of a photo whose displayed size is ``size``."""
    return (size[1], size[0]) if orientation in (5, 6, 7, 8) else size


def iou(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def clean_name(name: Any) -> str | None:
    """Strip and NFC-normalise; blank (or not text) is None."""
    if isinstance(name, list):  # a lang-alt written where text belongs
        name = name[0] if name else None
    if not isinstance(name, str):
        return None
    name = unicodedata.normalize("NFC", name.strip())
    return name or None


def _float(value: Any) -> float:
    if isinstance(value, list) and value:
        value = value[0]
    number = float(str(value).strip())
    if not math.isfinite(number):
        raise BadRegion("not finite")
    return number


def _pixels(norm: Box, size: tuple[int, int]) -> Box | None:
    """A displayed normalised box -> clipped pixel box; None when nothing of it is inside."""
    w, h = size
    x0, y0 = max(0.0, norm[0] * w), max(0.0, norm[1] * h)
    x1, y1 = min(float(w), norm[2] * w), min(float(h), norm[3] * h)
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        return None
    return (x0, y0, x1, y1)


# -- interpreting one packet ---------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """How a packet's normalised regions relate to the displayed image."""

    orientation: int  # the orientation to apply (1 when the writer already used the displayed frame)
    note: str | None = None


def frame_for(dims: Any, size: tuple[int, int], orientation: int, where: str) -> tuple[Frame | None, list[str]]:
    """Check ``AppliedToDimensions`` against the photo; None (and a problem) when it fits neither way."""
    if not isinstance(dims, dict):
        return Frame(orientation), []
    try:
        aw, ah = _float(dims.get(q(ST_DIM, "w"))), _float(dims.get(q(ST_DIM, "h")))
    except (BadRegion, TypeError, ValueError):
        return Frame(orientation), []  # absent or unreadable dims: normalised areas need none
    if aw <= 0 or ah <= 0:
        return Frame(orientation), []
    sw, sh = stored_size(size, orientation)
    if abs((aw / ah) / (sw / sh) - 1) <= ASPECT_TOLERANCE:
        return Frame(orientation), []
    if abs((aw / ah) / (sh / sw) - 1) <= ASPECT_TOLERANCE:
        if orientation in (5, 6, 7, 8):
            note = (
                f"{where}: AppliedToDimensions {aw:g}x{ah:g} matches the displayed image, not the stored "
                f"{sw}x{sh} one; its regions were read as relative to the displayed image"
            )
            return Frame(1, note), [note]
        turned = (
            f"{where}: AppliedToDimensions {aw:g}x{ah:g} fits the {sw}x{sh} image only turned by 90 degrees, "
            "but the photo is not rotated; its regions were skipped"
        )
        return None, [turned]
    neither = (
        f"{where}: AppliedToDimensions {aw:g}x{ah:g} does not match the {sw}x{sh} image in either orientation; "
        "its regions were skipped"
    )
    return None, [neither]


def mwg_norm_box(item: dict[str, Any], dims: Any) -> Box:
    """The normalised stored-image xyxy box of one MWG region; BadRegion when unusable."""
    area = item.get(q(MWG_RS, "Area"))
    if not isinstance(area, dict):
        raise BadRegion("it has no mwg-rs:Area")
    x, y = _float(area.get(q(ST_AREA, "x"))), _float(area.get(q(ST_AREA, "y")))
    unit = str(area.get(q(ST_AREA, "unit"), "normalized")).strip().lower() or "normalized"
    w, h = _float(area.get(q(ST_AREA, "w"), 0)), _float(area.get(q(ST_AREA, "h"), 0))
    if unit == "pixel":
        if not isinstance(dims, dict):
            raise BadRegion("its area is in pixels but there is no AppliedToDimensions")
        aw, ah = _float(dims.get(q(ST_DIM, "w"))), _float(dims.get(q(ST_DIM, "h")))
        x, y, w, h = x / aw, y / ah, w / aw, h / ah
    elif unit != "normalized":
        raise BadRegion(f"its area unit is {unit!r}")
    if w <= 0 or h <= 0:
        raise BadRegion(f"its area is {w:g}x{h:g} (zero or negative size; a point or a circle?)")
    return (x - w / 2, y - h / 2, x + w / 2, y + h / 2)


def mp_norm_box(rect: Any) -> Box:
    parts = [p for p in str(rect).replace(";", ",").split(",") if p.strip()]
    if len(parts) != 4:
        raise BadRegion(f"its rectangle {str(rect)[:60]!r} is not 'x, y, w, h'")
    x, y, w, h = (_float(p) for p in parts)
    if w <= 0 or h <= 0:
        raise BadRegion(f"its rectangle is {w:g}x{h:g} (zero or negative size)")
    return (x, y, x + w, y + h)


def find_prop(root: Any, tag: str) -> Any:
    for _desc, prop in _xml.description_properties(root):
        if prop.tag == tag:
            return _xml.value_of(prop)
    return None


def regions_in_packet(
    packet: _xml.Packet, size: tuple[int, int], orientation: int, origin: str, where: str
) -> tuple[list[Region], list[str]]:
    """MWG regions of one packet, else its MP regions; with the problems met."""
    problems: list[str] = []
    regions: list[Region] = []
    info = find_prop(packet.root, q(MWG_RS, "Regions"))
    if isinstance(info, dict):
        items = info.get(q(MWG_RS, "RegionList"))
        items = items if isinstance(items, list) else []
        if items:
            frame, notes = frame_for(info.get(q(MWG_RS, "AppliedToDimensions")), size, orientation, where)
            problems += notes
            if frame is None:
                return [], problems
            for i, item in enumerate(items, 1):
                if not isinstance(item, dict):
                    problems.append(f"{where}: MWG region {i} is not a struct; skipped")
                    continue
                name = clean_name(item.get(q(MWG_RS, "Name")))
                kind = str(item.get(q(MWG_RS, "Type")) or "Face").strip() or "Face"
                label = f"MWG region {i}" + (f" ({name})" if name else "")
                try:
                    norm = mwg_norm_box(item, info.get(q(MWG_RS, "AppliedToDimensions")))
                except (BadRegion, TypeError, ValueError, ZeroDivisionError) as exc:
                    problems.append(f"{where}: {label} was skipped: {exc or 'its area is unreadable'}")
                    continue
                box = _pixels(stored_to_displayed(norm, frame.orientation), size)
                if box is None:
                    problems.append(f"{where}: {label} lies entirely outside the image; skipped")
                    continue
                regions.append(Region(box, name, kind, "mwg", origin))
            if regions:
                return regions, problems
    info = find_prop(packet.root, q(MP, "RegionInfo"))
    if isinstance(info, dict):
        items = info.get(q(MPRI, "Regions"))
        for i, item in enumerate(items if isinstance(items, list) else [], 1):
            if not isinstance(item, dict):
                continue
            name = clean_name(item.get(q(MPREG, "PersonDisplayName")))
            rect = item.get(q(MPREG, "Rectangle"))
            if rect is None:
                continue  # a name without a rectangle: a whole-photo people tag
            label = f"MP region {i}" + (f" ({name})" if name else "")
            try:
                norm = mp_norm_box(rect)
            except (BadRegion, TypeError, ValueError) as exc:
                problems.append(f"{where}: {label} was skipped: {exc}")
                continue
            box = _pixels(stored_to_displayed(norm, orientation), size)
            if box is None:
                problems.append(f"{where}: {label} lies entirely outside the image; skipped")
                continue
            regions.append(Region(box, name, "Face", "mp", origin))
    return regions, problems


# -- finding packets -----------------------------------------------------------------------------


def sidecar_candidates(photo: Path) -> list[Path]:
    """Sidecars that may belong to ``photo``, most specific first, each existing file once."""
    names = [photo.name + ".xmp", photo.name + ".XMP", photo.stem + ".xmp", photo.stem + ".XMP"]
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()
    for name in names:
        path = photo.with_name(name)
        try:
            st = path.stat()
        except OSError:
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen or not path.is_file():
            continue
        seen.add(key)
        found.append(path)
    return found


def _embedded_xmp(data: bytes) -> tuple[bytes | None, tuple[int, int] | None, int | None]:
    """(XMP packet, stored size, orientation) from the photo's bytes; header read only."""
    from PIL import Image, UnidentifiedImageError

    if data[4:8] == b"ftyp":  # HEIF/AVIF: Pillow reads it only through pillow-heif, when installed
        try:
            import pillow_heif

            pillow_heif.register_heif_opener()
        except ImportError:
            pass
    try:
        with Image.open(io.BytesIO(data)) as im:
            xmp = im.info.get("xmp")
            if xmp is None and hasattr(im, "tag_v2"):
                xmp = im.tag_v2.get(700)  # TIFF XMLPacket
            if isinstance(xmp, str):
                xmp = xmp.encode("utf-8")
            try:
                orientation = int(im.getexif().get(0x0112, 1) or 1)
            except (OSError, ValueError, TypeError, SyntaxError):  # a broken EXIF block must not hide regions
                orientation = 1
            return (bytes(xmp) if xmp else None), im.size, orientation
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError):
        return _scan_for_packet(data), None, None


def _scan_for_packet(data: bytes) -> bytes | None:
    """Last resort for containers Pillow cannot open (HEIC without pillow-heif): the packet's bytes."""
    start = data.find(b"<x:xmpmeta")
    end = data.find(b"</x:xmpmeta>", start)
    return data[start : end + len(b"</x:xmpmeta>")] if start >= 0 and end > start else None


def read_regions(
    photo: Path,
    *,
    data: bytes | None = None,
    size: tuple[int, int] | None = None,
    orientation: int | None = None,
) -> RegionsRead:
    """The regions stored for ``photo`` in its sidecar or, failing that, its embedded XMP.

    ``data``: the photo's bytes when the caller has them (the file is then not read again);
    ``size``: displayed (width, height) and ``orientation`` (1-8) when known, else read from the
    header. Bad metadata is reported in ``problems``; only a photo that cannot be read raises
    ``InvalidImageError``.
    """
    photo = Path(photo)
    if data is None:
        try:
            data = photo.read_bytes()
        except OSError as exc:
            raise InvalidImageError(f"cannot read {photo}: {exc.strerror or exc}") from None
    embedded, stored, found_orientation = _embedded_xmp(data)
    problems: list[str] = []
    if orientation is None:
        orientation = found_orientation or 1
    if orientation not in _TO_DISPLAYED:
        problems.append(f"{photo.name}: EXIF orientation {orientation} is not 1-8; read as 1")
        orientation = 1
    if size is None:
        if stored is None:
            raise InvalidImageError(f"{photo} is not an image faceatlas can read, so its regions cannot be placed")
        size = stored_size(stored, orientation)
    if size[0] <= 0 or size[1] <= 0:
        raise InvalidImageError(f"{photo}: image size {size[0]}x{size[1]} is empty")

    sources: list[tuple[str, str, bytes]] = []
    for side in sidecar_candidates(photo):
        try:
            st = side.stat()
            if st.st_size > _xml.MAX_PACKET_BYTES:
                problems.append(f"{side.name}: the sidecar is {st.st_size} bytes, over the limit; ignored")
                continue
            sources.append(("sidecar", side.name, side.read_bytes()))
        except OSError as exc:
            problems.append(f"{side.name}: the sidecar cannot be read ({exc.strerror or exc}); ignored")
    if embedded:
        sources.append(("embedded", f"{photo.name} (embedded XMP)", embedded))

    for origin, where, raw in sources:
        try:
            packet = _xml.parse_packet(raw)
        except XmlRefused as exc:
            problems.append(f"{where}: the XMP was ignored because {exc}")
            continue
        regions, found_problems = regions_in_packet(packet, size, orientation, origin, where)
        problems += found_problems
        if regions:
            return RegionsRead(tuple(regions), tuple(problems))
    return RegionsRead((), tuple(problems))
