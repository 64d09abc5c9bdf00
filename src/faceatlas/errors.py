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


class InvalidNameError(FaceAtlasError, ValueError):
    """A person's name is not one faceatlas accepts (blank, a control character, ``..``, a ``/``,
    too long); the message says which rule it broke. See :mod:`faceatlas.names`."""


class NothingEnrolledError(FaceAtlasError, ValueError):
    """``Gallery.enroll`` added no face because every image was refused (or none was given), so
    nothing changed: a new person was not created, an existing one is as it was. ``person`` is the
    name, ``skipped`` the per-image reasons (``gallery.Skipped``), ``existed`` whether the person was
    already in the gallery. ``explain(choose)`` words the message for a front end, where ``choose``
    is how its caller picks one face of several (``"face=i"`` in Python, ``"--face i"`` on the CLI)."""

    def __init__(self, person: str, skipped: tuple = (), existed: bool = False) -> None:
        self.person, self.skipped, self.existed = person, tuple(skipped), existed
        super().__init__(self.explain())

    def explain(self, choose: str = "face=i", shown: int = 10) -> str:
        if self.skipped:
            reasons = "; ".join(f"{s.source}: {s.reason(choose)}" for s in self.skipped[:shown])
            more = f"; and {len(self.skipped) - shown} more" if len(self.skipped) > shown else ""
            what = f"no new face in {len(self.skipped)} image(s): {reasons}{more}"
        else:
            what = "no images were given"
        outcome = "they are unchanged" if self.existed else "they were not created"
        return f"nothing enrolled for {self.person!r} ({outcome}): {what}"


class GalleryError(FaceAtlasError):
    """A gallery store is unreadable, corrupt, not a gallery, or the request conflicts with it."""


class CollectionError(FaceAtlasError):
    """A collection file is unreadable, not a collection, or the request conflicts with it."""


class ModelMismatchError(GalleryError, CollectionError):
    """A gallery or a collection holds embeddings of another model (or dimension) than the one
    given, or the two hold different models. Both a GalleryError and a CollectionError, as it
    was once one of each; the message says which store refused."""


class FaceNotFoundError(GalleryError, CollectionError, KeyError):
    """No face of that id in the gallery or the collection (their face ids are unrelated; the
    message names the store). ``face_id`` is the id asked for, where the raiser gave it."""

    def __init__(self, message: str, face_id: int | None = None) -> None:
        super().__init__(message)
        self.face_id = None if face_id is None else int(face_id)

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ClusterError(FaceAtlasError, RuntimeError):
    """A Ray cluster could not be reached, or its workers failed (died, ran out of memory) in a
    way retries did not mend; what was stored before stays, and a re-run resumes (docs/RAY.md)."""


class VideoError(FaceAtlasError):
    """A video file, stream or camera could not be opened or read (see :mod:`faceatlas.video.source`)."""


class InvalidVideoError(VideoError, ValueError):
    """The input is not a video faceatlas can decode: missing, empty, not a video (an image, a text
    file), corrupt, truncated before its first frame, or in a codec this build cannot decode; the
    message names the file, says which and what to do. A ``ValueError`` too, like ``InvalidImageError``."""


class StreamError(VideoError, ConnectionError):
    """A live source (RTSP/HTTP URL, camera) did not answer within ``open_timeout``, or it dropped and
    every reconnect failed. Frames read before the drop were delivered first."""
