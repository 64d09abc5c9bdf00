"""The gallery over HTTP: enrol, list, rename, merge, delete people; a person's faces."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Path, Query, Request, UploadFile

from faceatlas.errors import InvalidImageError
from faceatlas.server.auth import Reader, Writer
from faceatlas.server.routes.images import Admitted, pixels_of
from faceatlas.server.schemas import (
    MAX_ID,
    DeletedResponse,
    EnrollResponse,
    MergeRequest,
    PeopleResponse,
    PersonFaceOut,
    PersonFacesResponse,
    PersonOut,
    RenameRequest,
    SkippedOut,
)

router = APIRouter(prefix="/v1", tags=["people"])
Name = Annotated[str, Path(min_length=1, max_length=200, description="the person's name")]
MAX_FILES = 32


@router.get("/people", response_model=PeopleResponse, summary="Everyone enrolled")
def list_people(request: Request, _: Reader) -> PeopleResponse:
    people = request.app.state.engine.gallery().people()
    return PeopleResponse(people=[_person_out(p) for p in sorted(people, key=lambda p: p.name)])


@router.get("/people/{name}", response_model=PersonOut, summary="One person")
def get_person(request: Request, _: Reader, name: Name) -> PersonOut:
    person = request.app.state.engine.gallery().store.get_person(name)
    return _person_out(person)


@router.post("/people/{name}/faces", response_model=EnrollResponse, status_code=201, summary="Enrol faces")
def enroll(
    request: Request,
    _: Writer,
    __: Admitted,
    name: Name,
    images: Annotated[list[UploadFile], File(description="one face per image (up to 32 images)")],
    face: Annotated[int | None, Query(ge=0, description="in images with several faces, take the i-th largest")] = None,
) -> EnrollResponse:
    """Creates the person if needed. Each image gives one face; skipped images say why."""
    if len(images) > MAX_FILES:
        raise InvalidImageError(f"at most {MAX_FILES} images per request, got {len(images)}; send them in batches")
    gallery = request.app.state.engine.gallery()
    added: list[int] = []
    skipped: list[SkippedOut] = []
    for number, upload in enumerate(images):
        label = upload.filename or f"image {number}"
        try:
            pixels = pixels_of(request, upload, label)
        except InvalidImageError as exc:
            skipped.append(SkippedOut(source=label, reason=str(exc)))
            continue
        report = gallery.enroll(name, [pixels], face=face)
        added += report.added
        skipped += [SkippedOut(source=label, reason=why) for _, why in report.skipped]
    return EnrollResponse(person=name, added=added, skipped=skipped)


@router.get("/people/{name}/faces", response_model=PersonFacesResponse, summary="A person's faces")
def person_faces(request: Request, _: Reader, name: Name) -> PersonFacesResponse:
    engine = request.app.state.engine
    gallery = engine.gallery()
    with engine.gallery_lock:
        faces = gallery.faces_of(name)
    return PersonFacesResponse(person=name, faces=[PersonFaceOut(id=i, quality=q) for i, q in faces])


@router.patch("/people/{name}", response_model=PersonOut, summary="Rename a person")
def rename(request: Request, _: Writer, name: Name, body: RenameRequest) -> PersonOut:
    gallery = request.app.state.engine.gallery()
    gallery.rename(name, body.name)
    person = gallery.store.get_person(body.name)
    return _person_out(person)


@router.post("/people/{name}/merge", response_model=PersonOut, summary="Merge a person into another")
def merge(request: Request, _: Writer, name: Name, body: MergeRequest) -> PersonOut:
    """Every face of ``name`` moves to ``into``; ``name`` is gone afterwards."""
    gallery = request.app.state.engine.gallery()
    gallery.merge(name, body.into)
    person = gallery.store.get_person(body.into)
    return _person_out(person)


@router.delete("/people/{name}", response_model=DeletedResponse, summary="Delete a person and every embedding")
def delete_person(request: Request, _: Writer, name: Name) -> DeletedResponse:
    faces = request.app.state.engine.gallery().delete_person(name)
    return DeletedResponse(deleted=name, faces=faces)


@router.delete("/faces/{face_id}", status_code=204, summary="Remove one enrolled face")
def remove_face(request: Request, _: Writer, face_id: Annotated[int, Path(ge=0, le=MAX_ID)]) -> None:
    request.app.state.engine.gallery().remove_face(face_id)


def _person_out(record) -> PersonOut:
    return PersonOut(name=record.name, faces=record.n_faces, metadata=record.metadata)
