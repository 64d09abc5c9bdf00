"""Faces by hand over HTTP: draw a face the detector missed, remove a false detection.

Thin over ``faceatlas.collection.manual``; both are corrections, so they hold the collection lock
and the gallery lock as the other corrections do (``collection._correcting``). The photo is read
confined to FACEATLAS_PHOTO_ROOTS, as every photo the service reads, and must still be the file
indexed (its SHA-256), else 409 (index it again first).
"""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Body, Request, Response
from pydantic import BaseModel, Field

from faceatlas.server.auth import Writer
from faceatlas.server.errors import ServiceError
from faceatlas.server.privacy import check_visible_face
from faceatlas.server.routes.collection import FaceId, PhotoId, _correcting, _face_out, _open_photo
from faceatlas.server.schemas import PhotoFace
from faceatlas.server.state import engine_of, settings_of

router = APIRouter(prefix="/v1", tags=["collection"])


class DrawnFace(BaseModel):
    box: list[float] = Field(
        min_length=4, max_length=4, description="[x1, y1, x2, y2] pixels of the photo as displayed (EXIF-rotated)"
    )
    person: str | None = Field(None, max_length=200, description="who it is: the face joins that person's cluster")


@router.post(
    "/collection/photos/{photo_id}/faces",
    response_model=PhotoFace,
    status_code=201,
    summary="Add a face the detector missed",
)
def draw_face(request: Request, _: Writer, photo_id: PhotoId, body: Annotated[DrawnFace, Body()]) -> PhotoFace:
    """The face inside the box is aligned (from landmarks found in it, else from the box) and
    embedded; it stays in every later index run. 409 `face_exists` when the photo has a face there."""
    from faceatlas.collection.manual import add_face
    from faceatlas.errors import InvalidImageError
    from faceatlas.image import load_image

    engine = engine_of(request)
    analyzer = engine.analyzer()
    with _correcting(engine) as (store, gallery):
        record = store.photo(photo_id)
        what = f"photo {record.id} ({record.path})"
        try:
            with _open_photo(settings_of(request).photo_roots, record.root, record.path, what) as fh:
                data = fh.read()
            pixels = load_image(data)
        except (InvalidImageError, OSError) as exc:
            raise ServiceError(404, "not_found", f"{what} can no longer be read") from exc
        if hashlib.sha256(data).hexdigest() != record.sha256:
            raise ServiceError(409, "photo_changed", f"{what} changed since it was indexed: index it again first")
        face = add_face(store, record.id, body.box, analyzer, person=body.person, gallery=gallery, image=pixels)
        name = store.cluster(face.cluster).name if face.cluster is not None and face.cluster >= 0 else None
    return PhotoFace(**_face_out(face).model_dump(), cluster_name=name)


@router.delete("/collection/faces/{face_id}", status_code=204, summary="Remove a face (a false detection)")
def remove_collection_face(request: Request, _: Writer, face_id: FaceId) -> Response:
    """The face leaves the collection (and its named cluster's gallery person); a detection's box
    is remembered, so later index runs do not bring it back."""
    from faceatlas.collection.manual import remove_face as remove

    with _correcting(engine_of(request)) as (store, gallery):
        check_visible_face(request, store.face(face_id), store)
        remove(store, face_id, gallery)
    return Response(status_code=204)
