"""What a re-embedding found before it started (``ReembedPlan``), what it did (``ReembedReport``),
and the errors that stop it before anything is switched."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from faceatlas.errors import CollectionError, GalleryError
from faceatlas.gallery.store import ModelTag
from faceatlas.reembed.figures import LabelFigures

Kind = Literal["gallery", "collection"]
SHOWN = 10  # unusable photos or faces named in a message; the rest are counted


class Unusable(NamedTuple):
    """Faces that cannot be embedded by the new model, and why: a collection's photo that is
    missing or changed, a gallery face whose image was not given or holds no face at its box."""

    where: str  # the photo's path, or the gallery face's person and source
    reason: str
    face_ids: tuple[int, ...]


@dataclass(frozen=True)
class ReembedPlan:
    """What a re-embedding would do, found without writing anything."""

    kind: Kind
    location: str
    source: ModelTag | None  # the model the store is bound to now
    target: ModelTag
    faces: int  # faces in the store
    staged: int  # faces an earlier, interrupted run embedded already (for this target)
    unusable: tuple[Unusable, ...] = ()
    images: dict[int, str] = field(default_factory=dict)  # gallery: face id -> the image file it is embedded from

    @property
    def nothing_to_do(self) -> bool:
        return self.source == self.target

    @property
    def unusable_faces(self) -> int:
        return sum(len(u.face_ids) for u in self.unusable)

    @property
    def todo(self) -> int:
        """Faces left to embed (those that can be)."""
        return max(self.faces - self.staged - self.unusable_faces, 0)

    def lines(self) -> list[str]:
        if self.nothing_to_do:
            return [f"{self.kind} {self.location} already holds {self.target} embeddings: nothing to do"]
        source = self.source or "no model yet"
        out = [f"{self.kind} {self.location}: {self.faces} face(s) of {source} to re-embed with {self.target}"]
        if self.staged:
            out.append(f"  {self.staged} of them were embedded by an earlier run: resuming")
        if self.unusable:
            out.append(f"  {self.unusable_faces} face(s) cannot be re-embedded:")
            out += [f"    {u.where}: {u.reason} ({len(u.face_ids)} face(s))" for u in self.unusable[:SHOWN]]
            if len(self.unusable) > SHOWN:
                out.append(f"    and {len(self.unusable) - SHOWN} more")
        return out


@dataclass(frozen=True)
class ReembedReport:
    """What ``reembed_gallery`` / ``reembed_collection`` did, with the figures on the user's labels
    in the old space (``before``) and the new one (``after``), on the faces present in both."""

    kind: Kind
    location: str
    source: ModelTag | None
    target: ModelTag
    faces: int  # faces now in the store, all of the target model
    embedded: int  # faces embedded by this run
    resumed: int  # faces an earlier, interrupted run had embedded
    removed: tuple[Unusable, ...] = ()  # dropped (drop_missing=True), with why
    before: LabelFigures | None = None
    after: LabelFigures | None = None
    notes: tuple[str, ...] = ()

    @property
    def switched(self) -> bool:
        return self.source != self.target

    def lines(self) -> list[str]:
        if not self.switched:
            return [f"{self.kind} {self.location} already holds {self.target} embeddings: nothing to do"]
        was = self.source or "no model"
        counts = f"{self.faces} face(s), {self.embedded} embedded now, {self.resumed} by an earlier run"
        out = [f"{self.kind} {self.location} now holds {self.target} embeddings (was {was}): {counts}"]
        removed = sum(len(u.face_ids) for u in self.removed)
        if self.removed:
            out.append(f"removed {removed} face(s) that could not be re-embedded:")
            out += [f"  {u.where}: {u.reason} ({len(u.face_ids)} face(s))" for u in self.removed[:SHOWN]]
            if len(self.removed) > SHOWN:
                out.append(f"  and {len(self.removed) - SHOWN} more")
        if self.before is not None:
            out.append(f"before ({self.source}): {self.before.line()}")
        if self.after is not None:
            out.append(f"after ({self.target}): {self.after.line()}")
        if self.before is None and self.after is None:
            out.append("no figures: the labelled faces are too few to measure anything")
        out += self.notes
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def _listing(unusable: tuple[Unusable, ...]) -> str:
    shown = "; ".join(f"{u.where}: {u.reason}" for u in unusable[:SHOWN])
    more = f"; and {len(unusable) - SHOWN} more" if len(unusable) > SHOWN else ""
    return shown + more


class MissingPhotosError(CollectionError):
    """Photos of the collection are missing or changed on disk, so their faces cannot be re-embedded;
    nothing was switched. ``unusable`` lists them."""

    def __init__(self, location: str, unusable: tuple[Unusable, ...]) -> None:
        self.unusable = tuple(unusable)
        faces = sum(len(u.face_ids) for u in unusable)
        super().__init__(
            f"collection {location}: {len(unusable)} photo(s) holding {faces} face(s) are missing or changed since "
            f"they were indexed, so the new model cannot embed those faces ({_listing(self.unusable)}). Nothing was "
            "switched: restore the files, or run `faceatlas index` on their folder first (it follows moved files "
            "and forgets deleted ones), or pass --drop-missing (drop_missing=True) to remove those faces"
        )


class UnmatchedFacesError(GalleryError):
    """Faces of the gallery could not be matched to an image given (by its digest or path, then to a
    detected face by its box), so they cannot be re-embedded; nothing was switched."""

    def __init__(self, location: str, unusable: tuple[Unusable, ...]) -> None:
        self.unusable = tuple(unusable)
        faces = sum(len(u.face_ids) for u in unusable)
        super().__init__(
            f"gallery {location}: {faces} face(s) cannot be re-embedded ({_listing(self.unusable)}). Nothing was "
            "switched: a gallery keeps no images, so pass the folder of the images they were enrolled from "
            "(--images FOLDER), or pass --drop-missing (drop_missing=True) to remove those faces"
        )
