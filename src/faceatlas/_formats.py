"""Which image format a file's first bytes announce: one table for the service's uploads and the
video reader (which refuses a still image FFmpeg would read as a one-frame video). A leaf module,
light on purpose: no decoder is imported."""

from __future__ import annotations

_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"}
_SIGNATURES = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)
#: how a message names each format
NAMES = {
    "jpeg": "a JPEG image",
    "png": "a PNG image",
    "gif": "a GIF image",
    "bmp": "a BMP image",
    "tiff": "a TIFF image",
    "webp": "a WebP image",
    "heif": "a HEIF/AVIF image",
}


def image_format(head: bytes) -> str | None:
    """The image format the first bytes (16 are enough) announce, or None for anything else."""
    for signature, name in _SIGNATURES:
        if head.startswith(signature):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "heif"
    return None
