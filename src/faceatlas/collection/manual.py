"""Faces by hand: draw the box of a face the detector missed, remove a false detection.

>>> from faceatlas.collection.manual import add_face, remove_face
>>> face = add_face(store, "~/Pictures/2019/beach.jpg", (120, 80, 190, 170), analyzer, person="Ada")
>>> remove_face(store, 41)          # not a face (a poster, a pattern in the sand)

Both are corrections that hold in every later run: a drawn face (origin "manual") is kept when
the photo is analysed again, and a removed detection's box is remembered, so the detector's
finding there is dropped again (``CollectionStore.add_face`` / ``remove_face``). A drawn face is
aligned from the landmarks of a detection found inside the box, or from the box alone
(``FaceAnalyzer.face_at``), and embedded like every other face; with ``person`` it is put in
that person's cluster as a file's face region is (``regions.tag_faces``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faceatlas.collection.store import CollectionError, CollectionStore, FaceInfo, PhotoNotFoundError, PhotoRecord
from faceatlas.errors import InvalidNameError
from faceatlas.names import validate_person_name


class PhotoChangedError(CollectionError):
    """The photo's file is not what was indexed (its bytes changed, or it is gone): index again first."""


def find_photo(store: CollectionStore, photo: int | str | Path) -> PhotoRecord:
    """A stored photo by id, or by its file's path (absolute, or relative to the working folder);
    PhotoNotFoundError if the collection holds no such photo."""
    if isinstance(photo, int):
        return store.photo(photo)
    path = Path(photo).expanduser().resolve()
    for root in store.roots():
        if path.is_relative_to(root):
            rel = path.relative_to(root).as_posix()
            found = next((p for p in store.photos(root) if p.path == rel), None)
            if found is not None:
                return found
    raise PhotoNotFoundError(f"{photo} is not a photo of collection {store.location}; index its folder first", -1)


def add_face(
    store: CollectionStore,
    photo: int | str | Path,
    box: Sequence[float],
    analyzer: Any,
    *,
    person: str | None = None,
    gallery: Any = None,
    image: Any = None,
) -> FaceInfo:
    """Add the face inside ``box`` (``xyxy`` pixels of the photo as displayed, EXIF-rotated) to a
    stored photo; with ``person``, it is that person's (see the module doc). ``image``: the photo's
    pixels when the caller has read them (the service reads it confined to its roots), else read
    from its file. Refused: PhotoNotFoundError, PhotoChangedError, FaceExistsError (the photo has a
    face there), InvalidNameError, InvalidArgumentError (a box with no area in the photo)."""
    from faceatlas._files import sha256_file
    from faceatlas.collection.regions import tag_faces
    from faceatlas.image import load_image

    name = None
    if person is not None:
        try:
            name = validate_person_name(person)
        except InvalidNameError as exc:
            raise InvalidNameError(f"the face cannot be named so: {exc}") from None
    record = find_photo(store, photo)
    if record.kind != "photo" or record.status != "ok":
        raise CollectionError(
            f"{record.path} is {'a video' if record.kind == 'video' else record.status}: no face can be drawn on it"
        )
    if image is None:
        try:
            if sha256_file(record.file) != record.sha256:
                raise PhotoChangedError(f"{record.file} changed since it was indexed: index its folder again first")
        except OSError as exc:
            raise PhotoChangedError(
                f"{record.file} cannot be read ({exc.strerror or exc}): is it still there?"
            ) from None
        image = load_image(record.file)
    if (image.shape[1], image.shape[0]) != (record.width, record.height):
        raise PhotoChangedError(
            f"{record.file} is not the {record.width}x{record.height} photo indexed: index it again"
        )
    face = store.add_face(record.id, analyzer.face_at(image, box), origin="manual")
    if name is not None:
        report = tag_faces(store, [(face.id, name)], gallery)
        if not report.tagged:
            store.remove_face(face.id)  # all or nothing: the face is not left behind unnamed
            raise CollectionError(f"the face was not added: {'; '.join(report.problems)}")
    return store.face(face.id)


def remove_face(store: CollectionStore, face_id: int, gallery: Any = None) -> FaceInfo:
    """Remove a face (a false detection, or a face drawn wrong): it leaves its cluster (and, when
    that cluster is named and a ``gallery`` is given, that gallery person); a detection's box is
    remembered so later analyses do not bring it back. Returns the face as it was."""
    from faceatlas.collection.corrections import _unenroll

    face = store.face(face_id)
    if gallery is not None and face.cluster is not None and face.cluster >= 0:
        cluster = store.cluster(face.cluster)
        if cluster.name:
            staying = [f for f in store.cluster_faces(cluster.id) if f.id != face.id]
            _unenroll(gallery, cluster.name, [face], staying)
    return store.remove_face(face_id)
