"""Image endpoints: analyze, verify, identify. Uploads are multipart file fields."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile

from faceatlas.errors import FaceAtlasError, ModelError, NoFaceError
from faceatlas.server.auth import Reader
from faceatlas.server.privacy import hidden_names
from faceatlas.server.schemas import (
    MAX_ID,
    AnalyzeResponse,
    CandidateOut,
    IdentificationOut,
    IdentifyResponse,
    ImageSize,
    VerifyResponse,
    face_out,
)
from faceatlas.server.state import engine_of, settings_of
from faceatlas.server.uploads import decode_upload, read_limited

router = APIRouter(prefix="/v1", tags=["images"])


async def admission(request: Request) -> AsyncIterator[None]:
    """The image request counts against the service's bound (``Engine.admit``) while it runs.
    Async, so the check happens on the event loop: a refusal needs no worker thread."""
    with engine_of(request).admit():
        yield


Admitted = Annotated[None, Depends(admission)]


def pixels_of(request: Request, upload: UploadFile, field: str) -> np.ndarray:
    settings = settings_of(request)
    data = read_limited(upload.file, settings.max_upload_bytes, field)
    return decode_upload(data, field, settings.max_pixels)


def model_name(engine: Any) -> str:
    card = engine.analyzer().embedder.card
    return f"{card.name} {card.version}"


@router.post("/analyze", response_model=AnalyzeResponse, summary="Find every face in an image")
def analyze(
    request: Request,
    _: Reader,
    __: Admitted,
    image: Annotated[UploadFile, File(description="an image file (JPEG, PNG, WebP, GIF, BMP, TIFF, HEIF)")],
    embeddings: Annotated[bool, Query(description="include each face's embedding")] = False,
) -> AnalyzeResponse:
    """Box, score, landmarks, pose and quality of every face, largest first."""
    engine = engine_of(request)
    pixels = pixels_of(request, image, "image")
    faces = engine.analyze(pixels)
    return AnalyzeResponse(
        image=ImageSize(width=int(pixels.shape[1]), height=int(pixels.shape[0])),
        faces=[face_out(f, embeddings) for f in faces],
        model=model_name(engine),
    )


def _one_of(upload: UploadFile | None, face_id: int | None, name: str) -> UploadFile | int:
    """The side of a comparison the client gave: an upload or a gallery face id, never both."""
    if upload is not None and face_id is None:
        return upload
    if face_id is not None and upload is None:
        return face_id
    raise FaceAtlasError(f"give exactly one of image_{name} (a file) or face_{name} (a gallery face id)")


def _side(request: Request, side: UploadFile | int, name: str) -> np.ndarray:
    engine = engine_of(request)
    if isinstance(side, int):
        gallery = engine.gallery()
        hide = hidden_names(request)  # a private person's face: as if there were none
        with engine.gallery_lock:
            if hide and gallery.person_of(side) in hide:
                from faceatlas.errors import FaceNotFoundError

                raise FaceNotFoundError(f"no face with id {side} in the gallery")
            return np.asarray(gallery.embedding_of(side))
    faces = engine.analyze(pixels_of(request, side, f"image_{name}"))
    if not faces:
        raise NoFaceError(f"image_{name}: no face found; send a photo where a face is clearly visible")
    embedding = faces[0].embedding  # the largest face
    if embedding is None:  # an analyzer must embed what it finds: a stand-in that does not is a bug
        raise ModelError("the analyzer returned a face without an embedding")
    return embedding


@router.post("/verify", response_model=VerifyResponse, summary="Are two faces the same person?")
def verify(
    request: Request,
    _: Reader,
    __: Admitted,
    image_a: Annotated[UploadFile | None, File(description="first image (its largest face)")] = None,
    image_b: Annotated[UploadFile | None, File(description="second image (its largest face)")] = None,
    face_a: Annotated[int | None, Form(ge=0, le=MAX_ID, description="or: a gallery face id")] = None,
    face_b: Annotated[int | None, Form(ge=0, le=MAX_ID, description="or: a gallery face id")] = None,
    far: Annotated[float | None, Form(gt=0, lt=1, description="false-accept rate (default 1e-3)")] = None,
) -> VerifyResponse:
    """Each side is an uploaded image (its largest face) or an enrolled face's id."""
    from faceatlas.verification import cosine_similarity, decide

    side_a, side_b = _one_of(image_a, face_a, "a"), _one_of(image_b, face_b, "b")  # both checked before any work
    a = _side(request, side_a, "a")
    b = _side(request, side_b, "b")
    card = engine_of(request).analyzer().embedder.card
    match = decide(cosine_similarity(a, b), card, far=far)
    return VerifyResponse(
        similarity=float(match.similarity), threshold=float(match.threshold), far=match.far, is_match=match.is_match
    )


@router.post("/identify", response_model=IdentifyResponse, summary="Who is in this image? (open set)")
def identify(
    request: Request,
    _: Reader,
    __: Admitted,
    image: Annotated[UploadFile, File(description="an image; every face in it is searched")],
    k: Annotated[int, Query(ge=1, le=100, description="candidates per face")] = 5,
    fpir: Annotated[
        float | None, Query(gt=0, lt=1, description="false-positive identification rate (default 0.01)")
    ] = None,
) -> IdentifyResponse:
    """Every face, largest first, with its best candidates and a decision: a person or unknown."""
    engine = engine_of(request)
    faces = engine.analyze(pixels_of(request, image, "image"))
    if not faces:
        return IdentifyResponse(results=[])
    gallery = engine.gallery()
    vectors = np.array([f.embedding for f in faces], dtype=np.float32)
    with engine.gallery_lock:
        found = gallery.identify(vectors, k=k, fpir=fpir)
    hide = hidden_names(request)  # private people, for a caller who may not see them
    return IdentifyResponse(
        results=[_identification_out(face, result, hide) for face, result in zip(faces, found, strict=True)]
    )


def _identification_out(face: Any, result: Any, hide: frozenset[str]) -> IdentificationOut:
    """One answer, with no private person named to a caller who may not see them.

    A face whose best match is hidden is answered as unknown, with no score, and with only the
    visible candidates below the threshold: a visible name above it next to "unknown" would
    tell that someone hidden matched better. Hidden candidates of other faces are left out."""
    candidates = [c for c in result.candidates if c.person not in hide]
    person, score = result.person, result.score
    top_hidden = bool(result.candidates) and result.candidates[0].person in hide
    if top_hidden:
        person, score = None, None
        candidates = [c for c in candidates if c.score < result.threshold]
    return IdentificationOut(
        face=face_out(face),
        person=person,
        score=score,
        threshold=result.threshold,
        fpir=result.fpir,
        candidates=[CandidateOut(person=c.person, score=c.score) for c in candidates],
        notes=list(result.notes),
    )
