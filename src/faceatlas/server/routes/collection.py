"""The photo collection over HTTP: clusters (people found in photos), photos, faces, corrections, jobs.

Collection face ids and gallery face ids are different id spaces. Every route is a thin layer over
the library: it checks the request, calls one function under the locks it needs, and turns the
result into the response; the library's typed refusals propagate, and ``server.errors.rules``
maps them to HTTP answers (this module maps none itself). Reads take the SQLite
snapshot they find in the engine's one collection store. The corrections (name, merge, split,
not this person; see ``faceatlas.collection.corrections`` for how they are recorded so that later
cluster jobs honour them) hold ``engine.collection_lock`` for their whole read-modify-write, and
so does a cluster job, so a clustering never overwrites a correction made while it ran; they hold
``engine.gallery_lock`` too, as a named cluster is a person of the service's gallery.

Photos are read only inside FACEATLAS_PHOTO_ROOTS, checked at every read on the file's real path
as it is then (``_open_photo``): a photo indexed by the CLI from elsewhere, or a file swapped for
a symlink since it was indexed, is refused (403 ``photo_not_allowed``), never read.

Videos are photos of kind "video": their faces are tracks with a ``time``, cropped from the frame
at that time. ``/video`` serves the file with HTTP Range requests (206), so a ``<video>`` element
seeks without loading it whole; since a ``<video>`` sends no API key, ``/video-link`` hands out a
link signed for that one video (HMAC, a key of this process, an hour), which ``/video`` takes
instead of a key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import stat
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path as FsPath
from typing import Annotated, Any, BinaryIO

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request, Response
from fastapi.responses import FileResponse, StreamingResponse

from faceatlas.collection import corrections
from faceatlas.collection.html import face_thumbnail as thumbnail_jpeg
from faceatlas.server.auth import Reader, Writer, bearer, header_key, require
from faceatlas.server.errors import ServiceError, problem
from faceatlas.server.privacy import (
    check_visible_cluster,
    check_visible_face,
    hidden_for,
    hidden_names,
    redact_people,
    visible_faces,
)
from faceatlas.server.schemas import (
    MAX_ID,
    ClusterBornRequest,
    ClusterChanged,
    ClusterJobRequest,
    ClusterMergeRequest,
    ClusterNameRequest,
    ClusterOut,
    ClusterSplit,
    ClusterSplitRequest,
    ClustersResponse,
    ClusterStageRequest,
    ClusterSummary,
    CollectionFace,
    IndexJobRequest,
    JobOut,
    JobsResponse,
    NotThisPersonResponse,
    PhotoDetail,
    PhotoFace,
    PhotoOut,
    PhotosResponse,
    VideoLink,
)
from faceatlas.server.state import engine_of, jobs_of, settings_of
from faceatlas.server.uploads import sniff

router = APIRouter(prefix="/v1", tags=["collection"])
ClusterId = Annotated[int, Path(ge=0, le=MAX_ID, description="a cluster id (GET /v1/collection/clusters)")]
FaceId = Annotated[int, Path(ge=0, le=MAX_ID, description="a collection face id")]
PhotoId = Annotated[int, Path(ge=0, le=MAX_ID, description="a collection photo id")]
Limit = Annotated[int, Query(ge=1, le=1000, description="at most this many")]
Offset = Annotated[int, Query(ge=0, le=MAX_ID, description="skip this many first")]

THUMB_MARGIN = 0.25  # of the face box's longer side, on each side
CACHE = "private, max-age=3600"  # a face's or photo's id never names other pixels (changed files get new ids)
CHUNK = 1 << 16  # bytes per read when streaming a photo
MEDIA_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
    "heif": "image/heif",
}
VIDEO_LINK_S = 3600  # how long a signed video link plays
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_link_key_lock = threading.Lock()


# --- clusters -------------------------------------------------------------------------------------


@router.get("/collection/clusters", response_model=ClustersResponse, summary="People found in the photos")
def list_clusters(request: Request, _: Reader, limit: Limit = 200, offset: Offset = 0) -> ClustersResponse:
    """Clusters with most faces first (then by id), each with its best face as a cover."""
    with engine_of(request).collection() as store:
        hide = hidden_for(request, store)  # private people, for a caller who may not see them
        infos = [c for c in store.clusters() if c.id not in hide.clusters]  # most faces first, then id
        page = infos[offset : offset + limit]
        covers = {c.id: _cover(store, c) for c in page}
    return ClustersResponse(
        clusters=[
            ClusterSummary(
                id=c.id,
                name=c.name,
                faces=c.n_faces,
                cover_face_id=covers[c.id],
                private=c.private,
                born=c.born,
                person=c.person,
            )
            for c in page
        ],
        total=len(infos),
    )


@router.get("/collection/clusters/{cluster_id}", response_model=ClusterOut, summary="One cluster and its faces")
def get_cluster(request: Request, _: Reader, cluster_id: ClusterId) -> ClusterOut:
    with engine_of(request).collection() as store:
        info = store.cluster(cluster_id)
        check_visible_cluster(request, info, store)
        return _cluster_out(info, store.cluster_faces(info.id))


@router.patch(
    "/collection/clusters/{cluster_id}", response_model=ClusterChanged, summary="Name a cluster (or remove its name)"
)
def name_cluster(request: Request, _: Writer, cluster_id: ClusterId, body: ClusterNameRequest) -> ClusterChanged:
    """A named cluster is a person: its faces are enrolled into the service's gallery under the
    name (faces below the gallery's quality floor are left out), so `/v1/identify` finds them.
    Renaming a named cluster renames its gallery person too (when the new name is free there).
    Removing the name takes the cluster's faces out of the gallery again (and the person, if that
    leaves it with no face)."""
    with _correcting(engine_of(request)) as (store, gallery):
        check_visible_cluster(request, store.cluster(cluster_id), store)
        return _changed(corrections.name_cluster(store, cluster_id, body.name, gallery))


@router.put(
    "/collection/clusters/{cluster_id}/born", response_model=ClusterChanged, summary="Record a person's birth date"
)
def set_birth_date(request: Request, _: Writer, cluster_id: ClusterId, body: ClusterBornRequest) -> ClusterChanged:
    """Later cluster jobs keep out of the person the faces of photos dated (EXIF) before that day,
    as a look-alike older relative's are. On a life stage, it is the person's date. A date in the
    future is refused (422)."""
    with _correcting(engine_of(request)) as (store, _gallery):
        check_visible_cluster(request, store.cluster(cluster_id), store)
        store.set_birth_date(cluster_id, body.born)
        info = store.cluster(cluster_id)
        return _changed(corrections.ClusterChange(info, store.cluster_faces(info.id)))


@router.put(
    "/collection/clusters/{cluster_id}/person",
    response_model=ClusterChanged,
    summary="Make a cluster a life stage of a person (or its own person again)",
)
def set_life_stage(request: Request, _: Writer, cluster_id: ClusterId, body: ClusterStageRequest) -> ClusterChanged:
    """A life stage is one person's template of one stage of life (a child's face and the adult's
    are far apart to any embedder): it shows the person's name and birth date, its faces are
    enrolled under the name, and cluster jobs never merge it. A stage with a name of its own (422)
    or with a face in a photo of the person's (409) is refused. `person: null` unlinks it."""
    with _correcting(engine_of(request)) as (store, gallery):
        hide = hidden_for(request, store)
        check_visible_cluster(request, store.cluster(cluster_id), store, hide)
        if body.person is None:
            return _changed(corrections.unlink_life_stage(store, cluster_id, gallery))
        check_visible_cluster(request, store.cluster(body.person), store, hide)
        return _changed(corrections.link_life_stage(store, cluster_id, body.person, gallery))


@router.post(
    "/collection/clusters/{cluster_id}/merge", response_model=ClusterChanged, summary="Merge a cluster into another"
)
def merge_clusters(request: Request, _: Writer, cluster_id: ClusterId, body: ClusterMergeRequest) -> ClusterChanged:
    """Every face of this cluster moves to `into`, which keeps its id and name (or takes this
    cluster's name if it has none); later cluster jobs keep the merged faces together. Two
    differently named clusters, or clusters with faces in one photo, are not merged (409)."""
    with _correcting(engine_of(request)) as (store, gallery):
        hide = hidden_for(request, store)
        check_visible_cluster(request, store.cluster(cluster_id), store, hide)
        check_visible_cluster(request, store.cluster(body.into), store, hide)
        return _changed(corrections.merge_clusters(store, cluster_id, body.into, gallery))


@router.post(
    "/collection/clusters/{cluster_id}/split", response_model=ClusterSplit, summary="Move some faces to a new cluster"
)
def split_cluster(request: Request, _: Writer, cluster_id: ClusterId, body: ClusterSplitRequest) -> ClusterSplit:
    """The faces given (some, not all, of this cluster's) move to a new, unnamed cluster, which is
    returned; later cluster jobs keep them together and apart from the faces that stayed. When the
    cluster is named, the faces moved are taken out of its gallery person."""
    with _correcting(engine_of(request)) as (store, gallery):
        check_visible_cluster(request, store.cluster(cluster_id), store)
        result = corrections.split_cluster(store, cluster_id, body.faces, gallery)
    return ClusterSplit(**_cluster_out(result.cluster, result.faces).model_dump(), unenrolled=result.unenrolled)


@router.post(
    "/collection/faces/{face_id}/not-this-person",
    response_model=NotThisPersonResponse,
    summary="Take a face out of its cluster",
)
def not_this_person(request: Request, _: Writer, face_id: FaceId) -> NotThisPersonResponse:
    """The face becomes unassigned; later cluster jobs never put it back with its former cluster's
    faces. When that cluster is named, the face is taken out of its gallery person."""
    with _correcting(engine_of(request)) as (store, gallery):
        check_visible_face(request, store.face(face_id), store)
        result = corrections.not_this_person(store, face_id, gallery)
    return NotThisPersonResponse(
        face_id=result.face_id, former_cluster_id=result.former_id, unenrolled=result.unenrolled
    )


# --- photos and faces -----------------------------------------------------------------------------


@router.get("/collection/photos", response_model=PhotosResponse, summary="The photos indexed")
def list_photos(
    request: Request,
    _: Reader,
    limit: Limit = 200,
    offset: Offset = 0,
    cluster: Annotated[
        int | None,
        Query(ge=-1, le=MAX_ID, description="only photos with a face of this cluster (-1: an unassigned face)"),
    ] = None,
) -> PhotosResponse:
    with engine_of(request).collection() as store:
        photos = store.photos()
        hide = hidden_for(request, store)
        if cluster is not None:
            if cluster >= 0:
                check_visible_cluster(request, store.cluster(cluster), store, hide)  # 404 if there is none
            wanted = {f.photo_id for f in store.cluster_faces(cluster)}
            photos = [p for p in photos if p.id in wanted]
        hidden_faces: dict[int, int] = {}  # photo id -> faces of hidden people in it, left out of its count
        for hidden_id in hide.clusters:
            for face in store.cluster_faces(hidden_id):
                hidden_faces[face.photo_id] = hidden_faces.get(face.photo_id, 0) + 1
    return PhotosResponse(
        photos=[_photo_out(p, hidden_faces.get(p.id, 0)) for p in photos[offset : offset + limit]], total=len(photos)
    )


@router.get("/collection/photos/{photo_id}", response_model=PhotoDetail, summary="One photo and its faces")
def get_photo(request: Request, _: Reader, photo_id: PhotoId) -> PhotoDetail:
    with engine_of(request).collection() as store:
        photo = store.photo(photo_id)
        names = {c.id: c.name for c in store.clusters()}
        faces = visible_faces(request, store.faces_of_photo(photo.id), store)  # none of a hidden person
    return PhotoDetail(
        id=photo.id,
        path=photo.path,
        width=photo.width,
        height=photo.height,
        status=photo.status,
        faces=[
            PhotoFace(**_face_out(f).model_dump(), cluster_name=None if f.cluster is None else names.get(f.cluster))
            for f in faces
        ],
        kind=photo.kind,
        duration=photo.duration,
    )


@router.get(
    "/collection/photos/{photo_id}/image",
    response_class=FileResponse,  # what the schema says; the answer streams the file opened once checked
    summary="The photo file",
    responses={200: {"content": {"image/*": {}}, "description": "the photo's bytes as stored on disk"}},
)
def photo_image(request: Request, _: Reader, photo_id: PhotoId) -> StreamingResponse:
    """The file as it is on disk (not EXIF-rotated: browsers rotate it themselves), if it lies
    inside FACEATLAS_PHOTO_ROOTS (403 `photo_not_allowed` if not) and its indexed folder."""
    with engine_of(request).collection() as store:
        photo = store.photo(photo_id)
    what = f"photo {photo.id} ({photo.path})"
    fh = _open_photo(settings_of(request).photo_roots, photo.root, photo.path, what)
    try:
        kind = sniff(fh.read(16))
        fh.seek(0)
        size = os.fstat(fh.fileno()).st_size
    except OSError as exc:
        fh.close()
        raise ServiceError(404, "not_found", f"{what} cannot be read: {exc.strerror}") from exc
    if kind is None:
        fh.close()
        raise ServiceError(415, "unsupported_media_type", f"{what} is no longer an image this service reads")
    headers = {"Cache-Control": CACHE, "Content-Length": str(size)}
    return StreamingResponse(_chunks(fh), media_type=MEDIA_TYPES[kind], headers=headers)


@router.get(
    "/collection/faces/{face_id}/thumbnail",
    response_class=Response,
    summary="A face, cropped from its photo",
    responses={200: {"content": {"image/jpeg": {}}, "description": "a square JPEG"}, 304: {"description": "unchanged"}},
)
def face_thumbnail(
    request: Request,
    _: Reader,
    face_id: FaceId,
    size: Annotated[int, Query(ge=32, le=512, description="width and height in pixels")] = 160,
    if_none_match: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """The face's box with a margin, square, from the EXIF-rotated photo (black beyond its edge);
    like the photo itself, only from inside FACEATLAS_PHOTO_ROOTS (403 `photo_not_allowed`)."""
    from faceatlas.errors import InvalidImageError
    from faceatlas.image import load_image

    with engine_of(request).collection() as store:
        face = store.face(face_id)
        check_visible_face(request, face, store)
    roots, what = settings_of(request).photo_roots, f"the photo of face {face.id} ({face.path})"
    file = _photo_path(roots, face.root, face.path, what)  # even a 304 only for a photo the service may read
    etag = f'"{face.sha256[:16]}-{face.id}-{size}"'
    headers = {"Cache-Control": CACHE, "ETag": etag}
    if if_none_match is not None and etag in {t.strip() for t in if_none_match.split(",")}:
        return Response(status_code=304, headers=headers)
    try:
        with _open_photo(roots, face.root, face.path, what) as fh:
            pixels = load_image(fh) if face.time is None else _frame(fh, face.time, file)
    except (InvalidImageError, OSError) as exc:
        raise ServiceError(404, "not_found", f"{what} can no longer be read") from exc
    return Response(thumbnail_jpeg(pixels, face.box, size, THUMB_MARGIN), media_type="image/jpeg", headers=headers)


@router.get(
    "/collection/photos/{photo_id}/video-link",
    response_model=VideoLink,
    summary="A link that plays a video without an API key",
)
def video_link(request: Request, _: Reader, photo_id: PhotoId) -> VideoLink:
    """A `<video>` element sends no API key: this link to `/video` is signed for this one video
    and plays for an hour (until the service restarts). Append `#t=SECONDS` to start at a face."""
    with engine_of(request).collection() as store:
        photo = store.photo(photo_id)
    if photo.kind != "video":
        raise ServiceError(404, "not_found", f"photo {photo.id} ({photo.path}) is not a video")
    expires = int(time.time()) + VIDEO_LINK_S
    sig = _signature(request, photo.id, expires)
    return VideoLink(url=f"/v1/collection/photos/{photo.id}/video?expires={expires}&sig={sig}", expires=expires)


def _video_reader(
    request: Request,
    photo_id: PhotoId,
    credentials: Annotated[Any, Depends(bearer)],
    api_key: Annotated[str | None, Depends(header_key)],
    expires: Annotated[int | None, Query(ge=0, le=MAX_ID, description="from /video-link")] = None,
    sig: Annotated[str | None, Query(max_length=128, description="from /video-link")] = None,
) -> None:
    """A signed link (``video_link``) for this video, still valid; else an API key with read scope."""
    if sig is not None and expires is not None:
        expected = _signature(request, photo_id, expires).encode()
        if expires >= time.time() and hmac.compare_digest(sig.encode(), expected):  # bytes: any text compares
            return
        raise ServiceError(401, "unauthorized", "the video link has expired or is not valid; ask /video-link again")
    require("read")(request, credentials, api_key)


@router.get(
    "/collection/photos/{photo_id}/video",
    response_class=FileResponse,  # what the schema says; the answer streams the file opened once checked
    summary="The video file (HTTP Range requests answered)",
    dependencies=[Depends(_video_reader)],
    responses={
        200: {"content": {"video/*": {}}, "description": "the video's bytes as stored on disk"},
        206: {"description": "the bytes of the range asked for"},
        416: {"description": "a range beyond the file's end"},
    },
)
def photo_video(
    request: Request, photo_id: PhotoId, range_: Annotated[str | None, Header(alias="Range")] = None
) -> Response:
    """The video as it is on disk, inside FACEATLAS_PHOTO_ROOTS (403 `photo_not_allowed` if not);
    one byte range (`Range: bytes=a-b`) is answered with 206, so players seek. An API key, or the
    `expires` and `sig` of a `/video-link`."""
    from faceatlas.collection.video import MEDIA_TYPES as VIDEO_TYPES

    with engine_of(request).collection() as store:
        photo = store.photo(photo_id)
    what = f"photo {photo.id} ({photo.path})"
    if photo.kind != "video":
        raise ServiceError(404, "not_found", f"{what} is not a video; GET /image serves photos")
    fh = _open_photo(settings_of(request).photo_roots, photo.root, photo.path, what)
    try:
        size = os.fstat(fh.fileno()).st_size
        media_type = VIDEO_TYPES.get(FsPath(photo.path).suffix.lower(), "application/octet-stream")
        return _ranged(fh, size, range_, media_type)
    except BaseException:
        fh.close()
        raise


# --- jobs -----------------------------------------------------------------------------------------


@router.post("/jobs/index", response_model=JobOut, status_code=202, tags=["jobs"], summary="Index a folder of photos")
def submit_index(request: Request, _: Writer, body: IndexJobRequest) -> JobOut:
    """Runs in the background (one job at a time): new and changed photos are analysed, files gone
    are forgotten; resumable. The folder must lie inside one of FACEATLAS_PHOTO_ROOTS."""
    from faceatlas.server.jobs import index_job

    settings, engine = settings_of(request), engine_of(request)
    folder = _allowed_folder(settings.photo_roots, body.folder)
    workers = settings.index_workers
    # one process: the service's loaded models; more: a picklable factory each worker process builds from
    factory = engine.model_factory() if workers > 1 else (lambda: engine.analyzer())
    job = jobs_of(request).submit(
        "index",
        {"folder": str(folder)},
        # the one shared store; files linking outside the roots are skipped
        index_job(engine.collection, folder, factory, workers=workers, photo_roots=settings.photo_roots),
    )
    return JobOut(**job.to_dict())


@router.post("/jobs/cluster", response_model=JobOut, status_code=202, tags=["jobs"], summary="Cluster the faces")
def submit_cluster(request: Request, _: Writer, body: Annotated[ClusterJobRequest | None, Body()] = None) -> JobOut:
    """Groups the faces by person in the background: new faces join people or form new ones
    (`full`: every face again). Names and corrections hold."""
    from faceatlas.server.jobs import cluster_job

    full = body.full if body is not None else False
    engine = engine_of(request)
    # the one shared store (created if missing); FACEATLAS_EMBEDDER locates a bring-your-own model's card
    run = cluster_job(engine.collection, full, embedder=settings_of(request).embedder)

    def locked(ctx: Any) -> dict[str, Any]:
        with engine.collection_lock:  # corrections wait for the clustering, never lost under it
            return run(ctx)

    return JobOut(**jobs_of(request).submit("cluster", {"full": full}, locked).to_dict())


@router.get("/jobs", response_model=JobsResponse, tags=["jobs"], summary="Jobs, newest first")
def list_jobs(request: Request, _: Reader) -> JobsResponse:
    jobs = jobs_of(request).list()
    hide = hidden_names(request) if any(job.kind == "video" for job in jobs) else frozenset()
    return JobsResponse(jobs=[JobOut(**_job_dict(job, hide)) for job in jobs])


@router.get("/jobs/{job_id}", response_model=JobOut, tags=["jobs"], summary="One job")
def get_job(request: Request, _: Reader, job_id: str) -> JobOut:
    job = jobs_of(request).get(job_id)
    if job is None:
        raise ServiceError(
            404, "not_found", f"no job {job_id!r} (unknown, or finished long enough ago to be forgotten)"
        )
    return JobOut(**_job_dict(job, hidden_names(request) if job.kind == "video" else frozenset()))


@router.delete("/jobs/{job_id}", response_model=JobOut, status_code=202, tags=["jobs"], summary="Cancel a job")
def cancel_job(request: Request, _: Writer, job_id: str) -> JobOut:
    """A queued job is cancelled at once; a running one stops at its next step (`cancel_requested`
    meanwhile; an index job keeps the photos stored so far); a finished one stays as it is."""
    job = jobs_of(request).cancel(job_id)
    if job is None:
        raise ServiceError(404, "not_found", f"no job {job_id!r}")
    return JobOut(**_job_dict(job, hidden_names(request) if job.kind == "video" else frozenset()))


# --- helpers --------------------------------------------------------------------------------------


@contextmanager
def _correcting(engine: Any) -> Iterator[tuple[Any, Any]]:
    """(the collection store, the gallery) for one correction, under the collection lock and then
    the gallery lock (always in that order): a named cluster is a person of the gallery."""
    with engine.collection_lock, engine.collection() as store:
        gallery = engine.gallery()
        with engine.gallery_lock:
            yield store, gallery


def _job_dict(job: Any, hide: frozenset[str]) -> dict[str, Any]:
    """A job as JSON, naming no private person (a video job's tracks) to a caller who may not see them."""
    data = job.to_dict()
    if hide and job.kind == "video":
        data["result"] = redact_people(data.get("result"), hide)
    return data


def _cover(store: Any, info: Any) -> int | None:
    if not info.n_faces:
        return None
    faces = store.cluster_faces(info.id)  # best quality first
    return int(faces[0].id) if faces else None


def _face_out(face: Any) -> CollectionFace:
    return CollectionFace(
        id=face.id,
        photo_id=face.photo_id,
        box=[float(v) for v in face.box],
        quality=face.quality,
        cluster_id=face.cluster,
        time=face.time,
        start=face.start,
        end=face.end,
        origin=face.origin,
    )


def _cluster_out(info: Any, faces: list[Any]) -> ClusterOut:
    return ClusterOut(
        id=info.id,
        name=info.name,
        faces=[_face_out(f) for f in faces],
        private=info.private,
        born=info.born,
        person=info.person,
    )


def _changed(result: corrections.ClusterChange) -> ClusterChanged:
    return ClusterChanged(
        **_cluster_out(result.cluster, result.faces).model_dump(),
        enrolled=result.enrolled,
        gallery_faces=result.gallery_faces,
        unenrolled=result.unenrolled,
    )


def _photo_out(photo: Any, hidden_faces: int = 0) -> PhotoOut:
    return PhotoOut(
        id=photo.id,
        path=photo.path,
        width=photo.width,
        height=photo.height,
        faces=photo.n_faces - hidden_faces,
        status=photo.status,
        kind=photo.kind,
        duration=photo.duration,
    )


def _photo_path(roots: Sequence[FsPath], root: str, path: str, what: str) -> FsPath:
    """The photo's real path as it is now (symlinks resolved at this read, not at indexing), if it
    lies inside a photo root and inside the folder it was indexed from."""
    file = FsPath(root, path).resolve()
    _check_inside(roots, root, file, what)
    return file


def _check_inside(roots: Sequence[FsPath], root: str, file: FsPath, what: str) -> None:
    if not any(file.is_relative_to(r) for r in roots):
        why = "none is set" if not roots else "it reads photos only inside them"
        raise ServiceError(
            403, "photo_not_allowed", f"{what} lies outside FACEATLAS_PHOTO_ROOTS ({why}), so it is not served"
        )
    if not file.is_relative_to(FsPath(root).resolve()):
        raise ServiceError(404, "not_found", f"{what} now leads outside the folder it was indexed from")


def _open_photo(roots: Sequence[FsPath], root: str, path: str, what: str) -> BinaryIO:
    """The photo's file, open, if it is a regular file inside the roots (see ``_photo_path``).

    Opened by its real path without following a link (a file swapped for one since the check is
    refused), and where the system says what an open file is (Linux: /proc/self/fd), the path opened
    is checked again, so a folder swapped meanwhile does not lead it outside either.
    """
    file = _photo_path(roots, root, path, what)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)  # a FIFO: refused, not waited on
    try:
        fd = os.open(file, flags)
    except FileNotFoundError:
        raise ServiceError(404, "not_found", f"{what} is no longer on disk; index its folder again") from None
    except OSError as exc:
        raise ServiceError(404, "not_found", f"{what} cannot be read: {exc.strerror}") from None
    fh = os.fdopen(fd, "rb")
    try:
        opened = _path_of(fd)
        if opened is not None:
            _check_inside(roots, root, opened, what)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ServiceError(404, "not_found", f"{what} is no longer on disk; index its folder again")
    except BaseException:
        fh.close()
        raise
    return fh


def _path_of(fd: int) -> FsPath | None:
    """The path of an open file, where the system tells it (Linux); None elsewhere."""
    try:
        return FsPath(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return None


def _chunks(fh: BinaryIO, length: int | None = None) -> Iterator[bytes]:
    """The file's bytes from where it stands (``length`` of them, or to its end); closes it."""
    with fh:
        left = length
        while left is None or left > 0:
            chunk = fh.read(CHUNK if left is None else min(CHUNK, left))
            if not chunk:
                return
            if left is not None:
                left -= len(chunk)
            yield chunk


def _ranged(fh: BinaryIO, size: int, header: str | None, media_type: str) -> Response:
    """The open file whole (200), or the one range ``header`` asks for (206; 416 beyond its end).
    A header this does not read (several ranges, another unit) is ignored, as HTTP allows."""
    headers = {"Cache-Control": CACHE, "Accept-Ranges": "bytes"}
    match = _RANGE.fullmatch(header.strip()) if header else None
    start, end = 0, size - 1
    if match is not None and match[1] and match[2] and int(match[2]) < int(match[1]):
        match = None  # last before first: not a valid range, so ignored (RFC 9110, 14.1.1)
    if match is not None and (match[1] or match[2]):
        if not match[1]:  # bytes=-N: the last N bytes
            start = max(0, size - int(match[2]))
        else:
            start, end = int(match[1]), min(size - 1, int(match[2])) if match[2] else size - 1
        if start >= size or end < start:
            fh.close()
            return problem(
                416,
                "range_not_satisfiable",
                f"the range {header} is not within the file's {size} bytes",
                {"Content-Range": f"bytes */{size}"},
            )
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)
    fh.seek(start)
    status = 206 if "Content-Range" in headers else 200
    return StreamingResponse(_chunks(fh, end - start + 1), status_code=status, media_type=media_type, headers=headers)


def _frame(fh: BinaryIO, at: float, file: FsPath) -> Any:
    """The frame at ``at`` seconds of the open video ``file``, read through its descriptor where the
    system names one (the file checked, not whatever its path leads to by now)."""
    from faceatlas.collection.video import read_frame

    opened = f"/proc/self/fd/{fh.fileno()}"
    return read_frame(opened if os.path.exists(opened) else file, at)


def _signature(request: Request, photo_id: int, expires: int) -> str:
    """The signature of a video link: HMAC-SHA256 under a key this process made (links die with it)."""
    state = request.app.state
    with _link_key_lock:
        key = getattr(state, "video_link_key", None)
        if key is None:
            key = state.video_link_key = secrets.token_bytes(32)
    return hmac.new(key, f"{int(photo_id)}:{int(expires)}".encode(), hashlib.sha256).hexdigest()


def _allowed_folder(roots: list[FsPath], folder: str) -> FsPath:
    """The folder, resolved, if it lies inside a photo root (a relative one is looked up inside them)."""
    if not roots:
        raise ServiceError(403, "index_jobs_off", "index jobs are off: set FACEATLAS_PHOTO_ROOTS")
    try:  # a name the file system refuses (too long, NUL) is a bad request, not a server error
        given = FsPath(folder)
        candidates = [given] if given.is_absolute() else [root / given for root in roots]
        inside = [
            path
            for path in (c.resolve() for c in candidates)
            if any(path == root or path.is_relative_to(root) for root in roots)
        ]
        found = next((path for path in inside if path.is_dir()), None)
    except (OSError, ValueError) as exc:
        raise ServiceError(422, "invalid_folder", f"{folder[:200]!r} is not a usable folder path: {exc}") from None
    if not inside:
        raise ServiceError(
            403,
            "folder_not_allowed",
            f"{folder} is not inside a folder this service may index (FACEATLAS_PHOTO_ROOTS: "
            f"{', '.join(map(str, roots))})",
        )
    if found is None:
        raise ServiceError(404, "not_found", f"{folder} is not a folder (inside FACEATLAS_PHOTO_ROOTS)")
    if not os.access(found, os.R_OK | os.X_OK):
        raise ServiceError(403, "folder_not_allowed", f"{folder} cannot be read by the service")
    return found
