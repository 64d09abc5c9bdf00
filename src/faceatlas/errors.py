"""One exception hierarchy for the whole package.

Every error says what was expected, what arrived and how to fix it. Catch
``FaceAtlasError`` to catch everything faceatlas raises on purpose.
"""

from __future__ import annotations


class FaceAtlasError(Exception):
    """Base class of every error faceatlas raises on purpose."""


class InvalidImageError(FaceAtlasError, ValueError):
    """The input could not be decoded as an image (corrupt, truncated, empty, not an image)."""


class ImageTooLargeError(InvalidImageError):
    """The image has more pixels than allowed (a possible decompression bomb)."""


class UnsupportedImageError(InvalidImageError):
    """The input is an image, but of a kind faceatlas cannot use (e.g. an unknown array layout)."""


class ModelError(FaceAtlasError, RuntimeError):
    """A model could not be found, converted, verified or run."""


class UnknownModelError(ModelError, KeyError):
    """A model name is not in the registry; the message lists the names that are."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class NoFaceError(FaceAtlasError, LookupError):
    """An operation needed a face (e.g. ``verify`` on an image path) and none was found."""


class InvalidArgumentError(FaceAtlasError, ValueError):
    """An argument has a value faceatlas cannot use (out of range, wrong shape, unknown option);
    the message names the argument, what arrived and what is accepted. A ``ValueError`` too, so
    code written against the plain ``ValueError`` keeps working."""
