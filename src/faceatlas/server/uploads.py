"""Uploaded images: size-capped reads, type sniffed from the bytes (never the name or the header),
decoded under a pixel limit. Nothing is written to disk: the bytes live only for the request."""

from __future__ import annotations

from typing import Any

import numpy as np

from faceatlas.errors import FaceAtlasError, ImageTooLargeError, UnsupportedImageError

_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"}
CHUNK = 1 << 20


class UploadTooLarge(ImageTooLargeError):
    """The upload is bigger than the service accepts (before decoding)."""


def sniff(head: bytes) -> str | None:
    """The image format the first bytes announce, or None for anything else."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:2] == b"BM":
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "heif"
    return None


def read_limited(file: Any, limit: int, field: str) -> bytes:
    """Read a file object to its end, refusing more than ``limit`` bytes without reading them all."""
    parts, size = [], 0
    while True:
        part = file.read(CHUNK)
        if not part:
            break
        size += len(part)
        if size > limit:
            raise UploadTooLarge(
                f"{field}: the upload is over the limit of {limit / 1024 / 1024:g} MB "
                "(FACEATLAS_MAX_UPLOAD_MB); send a smaller image"
            )
        parts.append(part)
    return b"".join(parts)


def decode_upload(data: bytes, field: str, max_pixels: int) -> np.ndarray:
    """Decoded RGB pixels of an uploaded image, or a clear error saying what arrived."""
    from faceatlas.image import load_image

    if not data:
        raise FaceAtlasError(f"{field}: the upload is empty; send an image file (JPEG, PNG, WebP, ...)")
    kind = sniff(data[:16])
    if kind is None:
        raise UnsupportedImageError(
            f"{field}: the upload is not an image this service reads (its first bytes match no JPEG, PNG, "
            "WebP, GIF, BMP, TIFF or HEIF signature; the file name and Content-Type are not trusted)"
        )
    return load_image(data, max_pixels=max_pixels)
