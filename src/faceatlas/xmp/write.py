"""Write faceatlas' faces as MWG regions into XMP sidecars (and, for JPEG, embedded XMP).

What is written: one ``mwg-rs:Regions`` struct with ``AppliedToDimensions`` (the *stored* pixel
size, unit pixel) and, per face, ``Area`` (normalised centre/size in the stored image, per the MWG
Guidelines 2.0; see :mod:`faceatlas.xmp.regions`), ``Type`` and ``Name`` (omitted for an unnamed
face). MP regions are not added; but when the packet already has ``MP:RegionInfo`` (digiKam writes
both), the same faces are written there too and the same regions are removed from it, so the two
lists never contradict each other.

What is kept: everything else in the packet (other namespaces, ratings, keywords, other tools'
regions of other types, regions that overlap none of ours). Replaced: regions overlapping one of
ours (IoU >= 0.5, in displayed pixels) and regions named one of ``replace_names``
(case-insensitive). XML comments and the xpacket padding are not kept (XMP readers ignore them).

Files are replaced atomically (a temporary file in the same folder, then ``os.replace``), with the
old file's mode; a sidecar that is malformed, not writable or a directory raises and is left as it was.
"""

from __future__ import annotations

import math
import os
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from faceatlas.xmp import _jpeg, _xml
from faceatlas.xmp._xml import MP, MPREG, MPRI, MWG_RS, RDF, ST_AREA, ST_DIM, XmlRefused, q
from faceatlas.xmp.errors import MalformedXmpError, SidecarNotWritableError, UnsupportedXmpTargetError, XmpError
from faceatlas.xmp.regions import (
    BadRegion,
    Box,
    Region,
    clean_name,
    displayed_to_stored,
    frame_for,
    iou,
    mp_norm_box,
    mwg_norm_box,
    sidecar_candidates,
    stored_size,
    stored_to_displayed,
)

REPLACE_IOU = 0.5
JPEG_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".jfif"}


def sidecar_path(photo: Path) -> Path:
    """The sidecar faceatlas writes for ``photo``: an existing one (``photo.jpg.xmp`` first, then
    ``photo.xmp``, either case), else ``photo.jpg.xmp``: the name digiKam, darktable and Immich
    read first, and one that a RAW+JPEG pair (``IMG_1.CR2`` / ``IMG_1.JPG``) cannot share."""
    photo = Path(photo)
    existing = sidecar_candidates(photo)
    return existing[0] if existing else photo.with_name(photo.name + ".xmp")


# -- building elements ---------------------------------------------------------------------------


def _text(parent: ET.Element, tag: str, value: str) -> ET.Element:
    elem = ET.SubElement(parent, tag)
    elem.text = value
    return elem


def _num(value: float) -> str:
    return f"{value:.7f}".rstrip("0").rstrip(".") or "0"


def _resource(parent: ET.Element, tag: str) -> ET.Element:
    return ET.SubElement(parent, tag, {q(RDF, "parseType"): "Resource"})


def _area(parent: ET.Element, stored_norm: Box) -> None:
    area = _resource(parent, q(MWG_RS, "Area"))
    x0, y0, x1, y1 = stored_norm
    _text(area, q(ST_AREA, "x"), _num((x0 + x1) / 2))
    _text(area, q(ST_AREA, "y"), _num((y0 + y1) / 2))
    _text(area, q(ST_AREA, "w"), _num(x1 - x0))
    _text(area, q(ST_AREA, "h"), _num(y1 - y0))
    _text(area, q(ST_AREA, "unit"), "normalized")


def _mwg_li(bag: ET.Element, stored_norm: Box, name: str | None, kind: str) -> None:
    li = _resource(bag, q(RDF, "li"))
    _area(li, stored_norm)
    if name:
        _text(li, q(MWG_RS, "Name"), name)
    _text(li, q(MWG_RS, "Type"), kind or "Face")


def _mp_li(bag: ET.Element, stored_norm: Box, name: str | None) -> None:
    li = _resource(bag, q(RDF, "li"))
    if name:
        _text(li, q(MPREG, "PersonDisplayName"), name)
    x0, y0, x1, y1 = stored_norm
    _text(li, q(MPREG, "Rectangle"), ", ".join(_num(v) for v in (x0, y0, x1 - x0, y1 - y0)))


def _dims(parent: ET.Element, stored: tuple[int, int]) -> ET.Element:
    dims = _resource(parent, q(MWG_RS, "AppliedToDimensions"))
    _text(dims, q(ST_DIM, "w"), str(stored[0]))
    _text(dims, q(ST_DIM, "h"), str(stored[1]))
    _text(dims, q(ST_DIM, "unit"), "pixel")
    return dims


def _struct_node(prop: ET.Element) -> ET.Element:
    """The element whose children are the struct's fields (the property or its rdf:Description)."""
    if prop.get(q(RDF, "parseType")) == "Resource":
        return prop
    desc = prop.find(q(RDF, "Description"))
    if desc is not None:
        return desc
    prop.set(q(RDF, "parseType"), "Resource")
    return prop


def _bag(node: ET.Element, tag: str) -> ET.Element:
    """The rdf:Bag of list property ``tag`` inside a struct node, created when absent."""
    prop = node.find(tag)
    if prop is None:
        prop = ET.SubElement(node, tag)
    bag = prop.find(q(RDF, "Bag"))
    if bag is None:
        bag = prop.find(q(RDF, "Seq"))
    if bag is None:
        bag = ET.SubElement(prop, q(RDF, "Bag"))
    return bag


def _find_prop(packet: _xml.Packet, tag: str) -> ET.Element | None:
    for _desc, prop in _xml.description_properties(packet.root):
        if prop.tag == tag:
            return prop
    return None


def _new_description(packet: _xml.Packet) -> ET.Element:
    rdf = _xml.find_rdf(packet.root)
    if rdf is None:
        rdf = ET.SubElement(packet.root, q(RDF, "RDF"))
    return ET.SubElement(rdf, q(RDF, "Description"), {q(RDF, "about"): ""})


# -- merging -------------------------------------------------------------------------------------


def _normalised(region: Region, size: tuple[int, int], orientation: int) -> tuple[Box, Box]:
    """(displayed pixel box clipped to the image, stored normalised box) of a region to write."""
    from faceatlas.errors import InvalidArgumentError

    w, h = size
    x0, y0, x1, y1 = (float(v) for v in region.box)
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise InvalidArgumentError(f"region {region.box} of {region.name!r} is not finite")
    x0, x1 = sorted((min(max(x0, 0.0), w), min(max(x1, 0.0), w)))
    y0, y1 = sorted((min(max(y0, 0.0), h), min(max(y1, 0.0), h)))
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        raise InvalidArgumentError(f"region {region.box} of {region.name!r} has no area inside the {w}x{h} image")
    return (x0, y0, x1, y1), displayed_to_stored((x0 / w, y0 / h, x1 / w, y1 / h), orientation)


def _drop(
    bag: ET.Element,
    box_of: Any,
    name_of: Any,
    new_boxes: list[Box],
    names: set[str],
) -> int:
    """Remove rdf:li items named one of ``names``, or face regions overlapping a new box (``box_of``
    returns None for regions that must not be replaced by overlap); how many went."""
    removed = 0
    for li in list(bag.findall(q(RDF, "li"))):
        item = _xml.value_of(li)
        item = item if isinstance(item, dict) else {}
        name = clean_name(name_of(item))
        gone = name is not None and name.casefold() in names
        if not gone and new_boxes:
            box = box_of(item)
            gone = box is not None and any(iou(box, new) >= REPLACE_IOU for new in new_boxes)
        if gone:
            bag.remove(li)
            removed += 1
    return removed


def _merge(
    packet: _xml.Packet,
    regions: Sequence[Region],
    size: tuple[int, int],
    orientation: int,
    drop_names: Iterable[str],
) -> tuple[int, int]:
    """Put ``regions`` into the packet; returns (MWG regions removed, MP regions removed)."""
    names = {n.strip().casefold() for n in drop_names if n and n.strip()}
    prepared = [(r, *_normalised(r, size, orientation)) for r in regions]
    new_boxes = [shown for _r, shown, _stored in prepared]
    stored = stored_size(size, orientation)
    w, h = size

    def to_pixels(norm: Box, orient: int) -> Box:
        d = stored_to_displayed(norm, orient)
        return (d[0] * w, d[1] * h, d[2] * w, d[3] * h)

    removed_mwg = removed_mp = 0
    prop = _find_prop(packet, q(MWG_RS, "Regions"))
    if prop is None and prepared:
        prop = _resource(_new_description(packet), q(MWG_RS, "Regions"))
    if prop is not None:
        info = _xml.value_of(prop)
        info = info if isinstance(info, dict) else {}
        old_dims = info.get(q(MWG_RS, "AppliedToDimensions"))
        frame, _notes = frame_for(old_dims, size, orientation, "")
        node = _struct_node(prop)
        bag = _bag(node, q(MWG_RS, "RegionList"))

        def mwg_box(item: dict[str, Any]) -> Box | None:
            if frame is None:
                return None
            try:
                return to_pixels(mwg_norm_box(item, old_dims), frame.orientation)
            except (BadRegion, TypeError, ValueError, ZeroDivisionError):
                return None

        def face_box(item: dict[str, Any]) -> Box | None:
            if str(item.get(q(MWG_RS, "Type")) or "Face").strip() != "Face":
                return None  # a camera's Focus region or a Pet at the same place is not our face
            return mwg_box(item)

        removed_mwg = _drop(bag, face_box, lambda item: item.get(q(MWG_RS, "Name")), new_boxes, names)
        displayed_frame = frame is not None and frame.orientation != orientation
        if displayed_frame:
            # the kept regions were written in the displayed frame: move their areas to the stored one
            for li in bag.findall(q(RDF, "li")):
                item = _xml.value_of(li)
                box = mwg_box(item) if isinstance(item, dict) else None
                if box is None:
                    continue
                norm = displayed_to_stored((box[0] / w, box[1] / h, box[2] / w, box[3] / h), orientation)
                fields = _struct_node(li)
                for old in fields.findall(q(MWG_RS, "Area")):
                    fields.remove(old)
                _area(fields, norm)
        if prepared or displayed_frame:
            for old in node.findall(q(MWG_RS, "AppliedToDimensions")):
                node.remove(old)
            holder = ET.Element("holder")
            node.insert(0, _dims(holder, stored))
        for region, _shown, norm in prepared:
            _mwg_li(bag, norm, clean_name(region.name), region.kind)

    mp_prop = _find_prop(packet, q(MP, "RegionInfo"))
    if mp_prop is not None:
        mp_bag = _bag(_struct_node(mp_prop), q(MPRI, "Regions"))

        def mp_box(item: dict[str, Any]) -> Box | None:
            try:
                return to_pixels(mp_norm_box(item.get(q(MPREG, "Rectangle"))), orientation)
            except (BadRegion, TypeError, ValueError):
                return None

        removed_mp = _drop(mp_bag, mp_box, lambda item: item.get(q(MPREG, "PersonDisplayName")), new_boxes, names)
        for region, _shown, norm in prepared:
            if region.kind == "Face":
                _mp_li(mp_bag, norm, clean_name(region.name))
    return removed_mwg, removed_mp


# -- files ---------------------------------------------------------------------------------------


def _read_existing(path: Path) -> _xml.Packet | None:
    if path.is_dir():
        raise SidecarNotWritableError(f"{path} is a directory, not a sidecar file; nothing was written")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SidecarNotWritableError(f"cannot read {path}: {exc.strerror or exc}; nothing was written") from None
    if not raw.strip():
        return None  # an empty file: nothing to preserve
    try:
        return _xml.parse_packet(raw)
    except XmlRefused as exc:
        raise MalformedXmpError(
            f"{path} is not XMP faceatlas can safely rewrite ({exc}); fix or move it, nothing was written"
        ) from None


def _atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` all at once, keeping its mode (and owner, where allowed); never a
    partial file."""
    try:
        st = path.stat()
        mode: int | None = st.st_mode & 0o7777
        owner: tuple[int, int] | None = (st.st_uid, st.st_gid)
    except FileNotFoundError:
        mode = owner = None
    except OSError as exc:
        raise SidecarNotWritableError(f"cannot write {path}: {exc.strerror or exc}") from None
    if mode is not None and not os.access(path, os.W_OK):
        raise SidecarNotWritableError(f"{path} is read-only; nothing was written")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if mode is not None:
            os.chmod(tmp, mode)
        if owner is not None and hasattr(os, "chown"):
            try:
                os.chown(tmp, *owner)  # root rewriting a user's sidecar must not take it over
            except OSError:
                pass  # an ordinary user cannot give files away: the file is theirs anyway
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise SidecarNotWritableError(f"cannot write {path}: {exc.strerror or exc}; it was left as it was") from None


def _check_size(size: tuple[int, int], orientation: int) -> None:
    from faceatlas.errors import InvalidArgumentError

    if len(size) != 2 or int(size[0]) <= 0 or int(size[1]) <= 0:
        raise InvalidArgumentError(f"size must be the displayed (width, height) in pixels, got {size!r}")
    if orientation not in range(1, 9):
        raise InvalidArgumentError(f"orientation must be an EXIF orientation 1-8, got {orientation!r}")


def write_sidecar(
    photo: Path,
    regions: Sequence[Region],
    *,
    size: tuple[int, int],
    orientation: int = 1,
    sidecar: Path | None = None,
    replace_names: Iterable[str] = (),
) -> Path:
    """Write ``regions`` (boxes in displayed pixels of a ``size`` photo) into the photo's sidecar,
    creating it or keeping everything else in it; returns the sidecar's path."""
    _check_size(size, orientation)
    size = (int(size[0]), int(size[1]))
    path = Path(sidecar) if sidecar is not None else sidecar_path(Path(photo))
    existing = _read_existing(path)
    packet = existing or _xml.new_packet()
    removed = _merge(packet, regions, size, orientation, replace_names)
    if regions or any(removed):  # nothing to add and nothing removed: no new or rewritten file
        _atomic_write(path, _xml.wrap_packet(_xml.serialize(packet)))
    return path


def _jpeg_bytes(photo: Path) -> bytes:
    if photo.suffix.lower() not in JPEG_SUFFIXES:
        raise UnsupportedXmpTargetError(
            f"{photo.name}: embedded XMP is written only into JPEG files; write a sidecar instead"
        )
    try:
        return photo.read_bytes()
    except OSError as exc:
        raise SidecarNotWritableError(f"cannot read {photo}: {exc.strerror or exc}") from None


def _embedded_packet(photo: Path, data: bytes) -> _xml.Packet | None:
    try:
        raw = _jpeg.find_xmp(data)
    except _jpeg.NotJpeg as exc:
        raise UnsupportedXmpTargetError(f"{photo.name} is not a JPEG faceatlas can rewrite: {exc}") from None
    if raw is None or not raw.strip(b"\x00 \t\r\n"):
        return None
    try:
        return _xml.parse_packet(raw)
    except XmlRefused as exc:
        raise MalformedXmpError(f"{photo.name}: its embedded XMP cannot be safely rewritten ({exc})") from None


def _rewrite_jpeg(photo: Path, data: bytes, packet: _xml.Packet) -> None:
    xml = _xml.serialize(packet)
    padding = min(2048, _jpeg.MAX_XMP_PAYLOAD - len(_xml.wrap_packet(xml)))
    try:
        new = _jpeg.with_xmp(data, _xml.wrap_packet(xml, max(padding, 0)))
    except _jpeg.NotJpeg as exc:
        raise XmpError(f"{photo.name}: {exc}; write a sidecar instead") from None
    _atomic_write(photo, new)


def write_embedded(
    photo: Path,
    regions: Sequence[Region],
    *,
    size: tuple[int, int],
    orientation: int = 1,
    replace_names: Iterable[str] = (),
) -> None:
    """Write ``regions`` into a JPEG's own XMP (APP1) segment; every other byte stays as it was."""
    _check_size(size, orientation)
    photo = Path(photo)
    data = _jpeg_bytes(photo)
    packet = _embedded_packet(photo, data) or _xml.new_packet()
    _merge(packet, regions, (int(size[0]), int(size[1])), orientation, replace_names)
    _rewrite_jpeg(photo, data, packet)


def _remove_from_packet(packet: _xml.Packet, names: set[str]) -> int:
    removed = 0
    for tag, list_tag, name_tag in (
        (q(MWG_RS, "Regions"), q(MWG_RS, "RegionList"), q(MWG_RS, "Name")),
        (q(MP, "RegionInfo"), q(MPRI, "Regions"), q(MPREG, "PersonDisplayName")),
    ):
        prop = _find_prop(packet, tag)
        if prop is None:
            continue
        node = _struct_node(prop)
        if node.find(list_tag) is None:
            continue
        bag = _bag(node, list_tag)
        gone = _drop(bag, lambda item: None, lambda item, t=name_tag: item.get(t), [], names)
        removed = max(removed, gone)  # MWG and MP lists describe the same faces
    return removed


def remove_names(sidecar_or_photo: Path, names: Iterable[str], *, embedded: bool = False) -> int:
    """Remove the regions named one of ``names`` (case-insensitive) from a sidecar (a ``.xmp``
    path), or from a photo's sidecars and, with ``embedded=True``, its JPEG XMP; returns how many
    regions went (a face listed both as MWG and MP region counts once). Nothing else is touched."""
    wanted = {n.strip().casefold() for n in names if n and n.strip()}
    path = Path(sidecar_or_photo)
    if not wanted:
        return 0
    if path.suffix.lower() == ".xmp":
        targets, photo = [path], None
    else:
        targets, photo = sidecar_candidates(path), path
    total = 0
    for target in targets:
        packet = _read_existing(target)
        if packet is None:
            continue
        removed = _remove_from_packet(packet, wanted)
        if removed:
            _atomic_write(target, _xml.wrap_packet(_xml.serialize(packet)))
            total += removed
    if embedded and photo is not None:
        data = _jpeg_bytes(photo)
        packet = _embedded_packet(photo, data)
        if packet is not None:
            removed = _remove_from_packet(packet, wanted)
            if removed:
                _rewrite_jpeg(photo, data, packet)
                total += removed
    return total
