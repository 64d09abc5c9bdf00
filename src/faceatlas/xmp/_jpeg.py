"""JPEG header segments: find, replace or insert the XMP APP1 segment, every other byte untouched."""

from __future__ import annotations

from dataclasses import dataclass

XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
MAX_XMP_PAYLOAD = 65535 - 2 - len(XMP_HEADER)  # one APP1 segment; Extended XMP is not written


class NotJpeg(Exception):
    """Internal: the bytes are not a JPEG whose header segments can be walked."""


@dataclass(frozen=True)
class Segment:
    marker: int
    start: int
    end: int  # exclusive

    def payload(self, data: bytes) -> bytes:
        return data[self.start + 4 : self.end]


def header_segments(data: bytes) -> tuple[list[Segment], int]:
    """The segments before the first SOS (start of scan) and the offset where the scan starts."""
    if data[:2] != b"\xff\xd8":
        raise NotJpeg("it does not start with a JPEG SOI marker")
    segments: list[Segment] = []
    i = 2
    while True:
        if i + 4 > len(data) or data[i] != 0xFF:
            raise NotJpeg(f"no JPEG marker at byte {i}")
        start = i
        while i < len(data) and data[i] == 0xFF:  # fill bytes
            i += 1
        if i >= len(data):
            raise NotJpeg("truncated header")
        marker = data[i]
        if marker == 0xDA:
            return segments, start
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            segments.append(Segment(marker, start, i + 1))
            i += 1
            continue
        length = int.from_bytes(data[i + 1 : i + 3], "big")
        end = i + 1 + length
        if length < 2 or end > len(data):
            raise NotJpeg(f"segment 0x{marker:02X} at byte {start} runs past the end")
        segments.append(Segment(marker, start, end))
        i = end


def is_xmp(segment: Segment, data: bytes) -> bool:
    return segment.marker == 0xE1 and data[segment.start + 4 : segment.start + 4 + len(XMP_HEADER)] == XMP_HEADER


def find_xmp(data: bytes) -> bytes | None:
    segments, _ = header_segments(data)
    for seg in segments:
        if is_xmp(seg, data):
            return seg.payload(data)[len(XMP_HEADER) :]
    return None


def with_xmp(data: bytes, packet: bytes) -> bytes:
    """``data`` with its XMP APP1 replaced by ``packet`` (or inserted after APP0/EXIF when absent)."""
    if len(packet) > MAX_XMP_PAYLOAD:
        raise NotJpeg(f"the XMP packet is {len(packet)} bytes, more than one APP1 segment holds")
    segments, _ = header_segments(data)
    body = XMP_HEADER + packet
    new = b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body
    for seg in segments:
        if is_xmp(seg, data):
            return data[: seg.start] + new + data[seg.end :]
    at = 2
    for seg in segments:
        exif = seg.marker == 0xE1 and data[seg.start + 4 : seg.start + 10] == b"Exif\x00\x00"
        if seg.marker == 0xE0 or exif:
            at = seg.end
        else:
            break
    return data[:at] + new + data[at:]
