"""Errors of :mod:`faceatlas.xmp`: only for files that cannot be read or written at all.

Bad metadata inside a readable photo is never an exception: ``read_regions`` reports it in
``RegionsRead.problems`` and skips what it could not use.
"""

from __future__ import annotations

from faceatlas.errors import FaceAtlasError, InvalidImageError


class XmpError(FaceAtlasError):
    """A sidecar or a photo's XMP could not be read or written."""


class MalformedXmpError(XmpError, ValueError):
    """An existing XMP packet or sidecar is not well-formed, safe XML (or is too large), so
    faceatlas refuses to rewrite it: a rewrite would lose what the user's tools stored there."""


class SidecarNotWritableError(XmpError, PermissionError):
    """The sidecar (or the photo, for embedded XMP) cannot be written: no permission, a read-only
    folder, or the path is a directory. Nothing was changed."""


class UnsupportedXmpTargetError(XmpError, InvalidImageError):
    """Embedded XMP can be written only into JPEG files; use a sidecar for other formats."""
