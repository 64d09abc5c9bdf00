"""Uploaded images: size-capped reads, type sniffed from the bytes (never the name or the header),
decoded under a pixel limit. Nothing is written to disk: the bytes live only for the request."""

from __future__ import annotations

from typing import Any

import numpy as np

from faceatlas._formats import image_format as sniff
from faceatlas.errors import FaceAtlasError, ImageTooLargeError, UnsupportedImageError

CHUNK = 1 << 20


class UploadTooLarge(ImageTooLargeError):
    """The upload is bigger than the service accepts (before decoding)."""


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
