"""A person's data over HTTP: forget them everywhere, or hand over everything stored about them.

Both take the ``admin`` scope. Forgetting is irreversible and reaches further than ``DELETE
/v1/people/{name}`` (a ``write`` key's action, which removes the gallery person and unnames the
clusters): it deletes the collection's faces, embeddings and corrections, edits the sidecars
faceatlas wrote, and rewrites tables (on PostgreSQL, searches wait meanwhile). An export hands
out biometric templates of one person, whoever may merely read the collection must not get them
in bulk. Both act on private people too (an admin sees them).
"""

from __future__ import annotations

import tempfile
from contextlib import nullcontext
from pathlib import Path as FsPath
from typing import Annotated, BinaryIO
from urllib.parse import quote

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, Field

from faceatlas.server.auth import Admin
from faceatlas.server.state import engine_of, face_searchers_of, settings_of

router = APIRouter(prefix="/v1", tags=["people"])
Name = Annotated[str, Path(min_length=1, max_length=200, description="the person's name (case is ignored)")]


class SidecarProblem(BaseModel):
    sidecar: str
    reason: str


class ForgetResponse(BaseModel):
    """What forgetting removed where, how it was erased, and what was kept (and why)."""

    name: str
    gallery_faces: int | None = Field(description="faces removed from the gallery; null: the person was not in it")
    clusters: list[int] = Field(description="the collection's clusters of that name, removed with their faces")
    collection_faces: int | None = Field(description="faces (with embeddings) removed from the collection")
    constraints: int = Field(description="corrections (constraints) removed with those faces")
    matched: list[str] = Field(description="stored names that matched in another case or form")
    sidecars: list[str] = Field(description="sidecars faceatlas wrote that the person's regions were taken out of")
    sidecar_problems: list[SidecarProblem]
    erased: list[str] = Field(description="how the deleted bytes were erased")
    kept: list[str] = Field(description="what remains and why (your photos, your exports, logs)")


@router.post(
    "/people/{name}/forget",
    response_model=ForgetResponse,
    summary="Forget a person everywhere (gallery, collection faces, sidecars), erased from disk",
)
def forget(request: Request, _: Admin, name: Name) -> ForgetResponse:
    """Removes every gallery person and every collection cluster of that name (case ignored) with
    all their faces, embeddings and corrections, takes their regions out of the sidecars faceatlas
    wrote, and erases the deleted bytes (SQLite: secure_delete + WAL emptied; PostgreSQL: VACUUM
    FULL). Their face thumbnails answer 404 from now on; browsers may keep cached copies for an hour.
    404 when no store has the name."""
    from faceatlas.collection.forget import forget_person

    engine = engine_of(request)
    gallery = engine.gallery()
    where = engine.settings.collection_location
    has_collection = isinstance(where, str) or where.exists()  # no file yet: nothing there, and none is created
    collection = engine.collection() if has_collection else nullcontext()
    with engine.collection_lock, collection as store, engine.gallery_lock:
        try:
            report = forget_person(name, gallery, store)
        finally:
            if store is not None:
                face_searchers_of(request).forget(store)  # its index held the person's embeddings
    return ForgetResponse(**report.as_dict())


@router.get(
    "/people/{name}/export",
    response_class=Response,
    summary="Everything stored about a person, as one .zip archive (GDPR Art. 15/20)",
    responses={200: {"content": {"application/zip": {}}, "description": "the archive (README.txt inside)"}},
)
def export(request: Request, _: Admin, name: Name) -> Response:
    """person.json (faces, boxes, photos, corrections, enrolled gallery faces), embeddings.npy and
    gallery_embeddings.npy (float32), faces/<id>.jpg crops (only of photos inside
    FACEATLAS_PHOTO_ROOTS; the others are listed), README.txt. 404 when no store has the name."""
    from faceatlas.collection.export_person import export_person
    from faceatlas.collection.store import FaceInfo
    from faceatlas.server.routes.collection import _open_photo

    engine = engine_of(request)
    roots = settings_of(request).photo_roots

    def open_photo(face: FaceInfo) -> BinaryIO:
        return _open_photo(roots, face.root, face.path, f"the photo of face {face.id} ({face.path})")

    where = engine.settings.collection_location
    has_collection = isinstance(where, str) or where.exists()
    collection = engine.collection() if has_collection else nullcontext()
    with tempfile.TemporaryDirectory(prefix="faceatlas-export-") as folder:
        out = FsPath(folder) / "person.zip"
        with collection as store, engine.gallery_lock:
            export_person(name, engine.gallery(), store, out, open_photo=open_photo)
        data = out.read_bytes()
    filename = quote(f"{name}.zip", safe="")
    headers = {"Content-Disposition": f"attachment; filename*=UTF-8''{filename}", "Cache-Control": "no-store"}
    return Response(data, media_type="application/zip", headers=headers)
