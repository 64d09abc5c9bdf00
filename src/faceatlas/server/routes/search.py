"""`POST /v1/search/faces`: every face of the collection like a given one, ranked, open set.

A thin layer over ``faceatlas.collection.search``. The probe is an uploaded image (its largest
face) or a collection face (``face_id``); filters are form fields beside it, so one multipart
request carries both. The service keeps one ``FaceSearcher`` per collection store
(``face_searchers_of``): its index is built at the first search and afterwards only caught up
with what index and cluster jobs (or another process) changed, checked cheaply before each search.
Searching holds no collection lock: the searcher has its own, and a job's writes only make the
next search catch up.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Form, Request, UploadFile
from fastapi import File as FileField
from pydantic import BaseModel, Field

from faceatlas.errors import FaceAtlasError, NoFaceError
from faceatlas.server.auth import Reader
from faceatlas.server.privacy import check_visible_face, hidden_for
from faceatlas.server.routes.images import Admitted, pixels_of
from faceatlas.server.schemas import MAX_ID
from faceatlas.server.state import engine_of, face_searchers_of

router = APIRouter(prefix="/v1", tags=["search"])


class FaceSearchHit(BaseModel):
    face_id: int = Field(description="a collection face id")
    photo_id: int
    path: str = Field(description="the photo's path, relative to the folder it was indexed from")
    box: list[float] = Field(
        min_length=4, max_length=4, description="[x1, y1, x2, y2] pixels of the EXIF-rotated photo"
    )
    similarity: float = Field(description="cosine similarity to the probe (higher = more alike)")
    match: bool = Field(description="whether it reaches the threshold at the asked FPIR")
    cluster_id: int | None = Field(description="its cluster; -1 = unassigned, null = not clustered yet")
    person: str | None = Field(description="its cluster's name (null: nobody named it)")
    taken_at: str | None = Field(description="the photo's EXIF capture time, camera local time (null: unknown)")
    quality: float | None = Field(description="usefulness for recognition, 0..1")
    time: float | None = Field(None, description="a video's face: seconds into the video")


class FaceSearchResponse(BaseModel):
    hits: list[FaceSearchHit] = Field(description="best first; below the threshold too (match false)")
    matched: bool = Field(description="false = no match at this FPIR (the hits are then only the nearest faces)")
    threshold: float = Field(description="the similarity a hit needs to be a match")
    fpir: float = Field(description="false-positive identification rate the threshold is calibrated for")
    searched: int = Field(description="faces that passed the filters (the comparisons the threshold counts)")
    total: int = Field(description="faces in the collection")
    strategy: str = Field(description="exact, exact-prefilter, ann or ann-filtered")
    notes: list[str] = Field(description="caveats, in words")


@router.post("/search/faces", response_model=FaceSearchResponse, summary="Find every face like this one")
def search_faces(
    request: Request,
    _: Reader,
    __: Admitted,
    image: Annotated[UploadFile | None, FileField(description="an image: its largest face is searched for")] = None,
    face_id: Annotated[int | None, Form(ge=0, le=MAX_ID, description="or: a collection face to search by")] = None,
    k: Annotated[int, Form(ge=1, le=1000, description="faces listed")] = 20,
    fpir: Annotated[float, Form(gt=0, lt=1, description="false-positive identification rate")] = 0.01,
    taken_from: Annotated[
        str | None, Form(max_length=32, description="photos taken on or after (YYYY-MM-DD[THH:MM:SS])")
    ] = None,
    taken_to: Annotated[str | None, Form(max_length=32, description="photos taken on or before (inclusive)")] = None,
    folder: Annotated[
        str | None, Form(max_length=4096, description="photos under this folder (relative to an indexed root)")
    ] = None,
    person: Annotated[str | None, Form(max_length=256, description="faces of the cluster of this name")] = None,
    cluster: Annotated[
        list[int] | None, Form(description="faces of these cluster ids (repeat the field; -1: unassigned)")
    ] = None,
    unnamed: Annotated[bool, Form(description="only faces nobody has named")] = False,
) -> FaceSearchResponse:
    """Every face of the collection, named or not, ranked by similarity to the probe's face, and an
    open-set answer: `matched` false means no face reaches the threshold calibrated for `fpir` over
    the faces searched. Filters combine with AND; a photo without a capture time is left out by a
    date filter. Give `image` (multipart) or `face_id`, not both. Private people's faces are left
    out for a key that may not see them (and a filter naming one answers as for a missing one)."""
    from faceatlas.collection.search import FaceFilter

    if (image is None) == (face_id is None):
        raise FaceAtlasError("give exactly one of image (a file) or face_id (a collection face id)")
    if cluster is not None and any(c < -1 or c > MAX_ID for c in cluster):
        raise FaceAtlasError("cluster ids are integers from -1 (unassigned) up")
    wanted = FaceFilter(
        taken_from=taken_from,
        taken_to=taken_to,
        folder=folder,
        clusters=tuple(cluster or ()),
        person=person,
        unnamed=unnamed,
    )
    engine = engine_of(request)
    with engine.collection() as store:
        searcher = face_searchers_of(request).get(store)
        hide = hidden_for(request, store)  # private people, for a caller who may not see them
        exclude: tuple[int, ...] = ()
        if image is not None:  # embedded by the service's analyzer, in its analysis threads
            faces = engine.analyze(pixels_of(request, image, "image"))
            if not faces:
                raise NoFaceError("image: no face found; send a photo where a face is clearly visible")
            embedding = _embedding(store, engine, faces[0])
        else:
            check_visible_face(request, store.face(int(face_id or 0)), store, hide)  # 404 as for a missing one
            embedding = searcher.embedding_of(int(face_id or 0))
            exclude = (int(face_id or 0),)
        result = searcher.search(embedding, k=k, filter=wanted, fpir=fpir, exclude=exclude, hidden=hide.clusters)
    return FaceSearchResponse(
        hits=[
            FaceSearchHit(
                face_id=h.face.id,
                photo_id=h.face.photo_id,
                path=h.face.path,
                box=list(h.face.box),
                similarity=h.similarity,
                match=h.above_threshold,
                cluster_id=h.face.cluster,
                person=h.person,
                taken_at=h.taken_at,
                quality=h.face.quality,
                time=h.face.time,
            )
            for h in result.hits
        ],
        matched=result.matched,
        threshold=result.threshold,
        fpir=result.fpir,
        searched=result.searched,
        total=result.total,
        strategy=result.strategy,
        notes=list(result.notes),
    )


def _embedding(store: Any, engine: Any, face: Any) -> np.ndarray:
    """The probe face's embedding, refused when the service's model is not the collection's."""
    from faceatlas.collection.store import model_tag
    from faceatlas.errors import ModelMismatchError

    tag, used = store.model(), model_tag(engine.analyzer())
    if tag is not None and used != tag:
        raise ModelMismatchError(
            f"the collection holds faces embedded by {tag.name} {tag.version}, but this service embeds with "
            f"{used.name} {used.version}: two models' embeddings never compare"
        )
    return np.asarray(face.embedding, dtype=np.float32)
