"""The gallery over HTTP: enrol, list, rename, merge, delete people; a person's faces."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Annotated

import numpy as np
from fastapi import APIRouter, File, Path, Query, Request, UploadFile

from faceatlas.errors import InvalidImageError, NothingEnrolledError
from faceatlas.gallery.gallery import Skipped
from faceatlas.names import validate_person_name
from faceatlas.server.auth import Reader, Writer
from faceatlas.server.errors import ServiceError
from faceatlas.server.privacy import check_visible_person, hidden_names
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
from faceatlas.server.state import engine_of

router = APIRouter(prefix="/v1", tags=["people"])
# Lookups take a name as given, so one stored before the naming rules stays reachable (up to
# 200 characters); names entering (enrol, rename) are checked by faceatlas.names (at most 100).
Name = Annotated[str, Path(min_length=1, max_length=200, description="the person's name")]
MAX_FILES = 32
CHOOSE = "the query parameter face=i"  # how an API caller picks one face of several


@router.get("/people", response_model=PeopleResponse, summary="Everyone enrolled")
def list_people(request: Request, _: Reader) -> PeopleResponse:
    people = engine_of(request).gallery().people()
    hide = hidden_names(request)  # private people, for a caller who may not see them
    return PeopleResponse(people=[_person_out(p) for p in sorted(people, key=lambda p: p.name) if p.name not in hide])


@router.get("/people/{name}", response_model=PersonOut, summary="One person")
def get_person(request: Request, _: Reader, name: Name) -> PersonOut:
    check_visible_person(request, name)
    person = engine_of(request).gallery().store.get_person(name)
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
    """Creates the person if needed (names: Unicode text, NFC-normalised, surrounding spaces
    dropped; no control characters, no `/`, not `.` or `..`, at most 100 characters). Each image
    gives one face; skipped images say why. When no face is added and an image was refused,
    nothing changes (a new person is not created): 422 with every image's reason."""
    if len(images) > MAX_FILES:
        raise InvalidImageError(f"at most {MAX_FILES} images per request, got {len(images)}; send them in batches")
    person = validate_person_name(name)  # before reading any upload
    gallery = engine_of(request).gallery()
    labels: list[tuple[int, str]] = []  # (upload number, label) of each image handed to the gallery
    unreadable: list[Skipped] = []

    def decoded() -> Iterator[np.ndarray]:  # one upload decoded at a time, not all 32 at once
        for number, upload in enumerate(images):
            label = upload.filename or f"image {number}"
            try:
                pixels = pixels_of(request, upload, label)
            except InvalidImageError as exc:
                unreadable.append(Skipped(label, "unreadable", number, detail=str(exc)))
                continue
            labels.append((number, label))
            yield pixels

    try:
        report = gallery.enroll(person, decoded(), face=face)
        added, skips, existed = report.added, report.skips, not report.created
    except NothingEnrolledError as exc:
        added, skips, existed = [], list(exc.skipped), exc.existed
    skipped = sorted(unreadable + [_relabel(s, labels) for s in skips], key=lambda s: s.index)  # upload order
    if not added and any(s.kind != "already_enrolled" for s in skipped):
        raise ServiceError(
            422, "nothing_enrolled", NothingEnrolledError(person, tuple(skipped), existed).explain(CHOOSE)
        )
    return EnrollResponse(
        person=person, added=added, skipped=[SkippedOut(source=s.source, reason=s.reason(CHOOSE)) for s in skipped]
    )


@router.get("/people/{name}/faces", response_model=PersonFacesResponse, summary="A person's faces")
def person_faces(request: Request, _: Reader, name: Name) -> PersonFacesResponse:
    check_visible_person(request, name)
    engine = engine_of(request)
    gallery = engine.gallery()
    with engine.gallery_lock:
        faces = gallery.faces_of(name)
    return PersonFacesResponse(person=name, faces=[PersonFaceOut(id=i, quality=q) for i, q in faces])


@router.patch("/people/{name}", response_model=PersonOut, summary="Rename a person")
def rename(request: Request, _: Writer, name: Name, body: RenameRequest) -> PersonOut:
    check_visible_person(request, name)
    gallery = engine_of(request).gallery()
    person = gallery.store.get_person(gallery.rename(name, body.name))  # the new name as stored (NFC, stripped)
    return _person_out(person)


@router.post("/people/{name}/merge", response_model=PersonOut, summary="Merge a person into another")
def merge(request: Request, _: Writer, name: Name, body: MergeRequest) -> PersonOut:
    """Every face of ``name`` moves to ``into``; ``name`` is gone afterwards."""
    check_visible_person(request, name)
    check_visible_person(request, body.into)
    gallery = engine_of(request).gallery()
    gallery.merge(name, body.into)
    person = gallery.store.get_person(body.into)
    return _person_out(person)


@router.delete("/people/{name}", response_model=DeletedResponse, summary="Delete a person and every embedding")
def delete_person(request: Request, _: Writer, name: Name) -> DeletedResponse:
    """Deletes the person from the gallery (every face and embedding, erased from disk: on PostgreSQL
    the tables are rewritten, and searches wait meanwhile) and takes the name off the collection's
    clusters (their faces stay clustered). `kept` says what remains stored, and why. 404 when
    neither the gallery nor a cluster has the name."""
    from contextlib import nullcontext

    from faceatlas.collection.forget import forget_person

    check_visible_person(request, name)
    engine = engine_of(request)
    gallery = engine.gallery()
    where = engine.settings.collection_location
    has_collection = isinstance(where, str) or where.exists()  # no file yet: nothing to clear, and none is created
    # the collection lock first, then the gallery's, as corrections take them (a named cluster is a person)
    collection = engine.collection() if has_collection else nullcontext()
    with engine.collection_lock, collection as store, engine.gallery_lock:
        report = forget_person(name, gallery, store, keep_faces=True)  # POST .../forget: everything
    faces = report.faces or 0
    return DeletedResponse(deleted=name, faces=faces, clusters=list(report.clusters), kept=list(report.kept))


@router.delete("/faces/{face_id}", status_code=204, summary="Remove one enrolled face")
def remove_face(request: Request, _: Writer, face_id: Annotated[int, Path(ge=0, le=MAX_ID)]) -> None:
    engine_of(request).gallery().remove_face(face_id)


def _relabel(skip: Skipped, labels: list[tuple[int, str]]) -> Skipped:
    """A gallery skip named by its upload: the gallery saw the decoded images, numbered among themselves."""
    number, label = labels[skip.index]
    return dataclasses.replace(skip, source=label, index=number)


def _person_out(record) -> PersonOut:
    return PersonOut(name=record.name, faces=record.n_faces, metadata=record.metadata, private=record.private)
