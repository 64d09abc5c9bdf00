"""The photo collection over HTTP: clusters (people found in photos), photos, faces, corrections, jobs.

Collection face ids and gallery face ids are different id spaces. Reads take the SQLite snapshot
they find; every correction holds ``engine.collection_lock`` for its whole read-modify-write, and
so does a cluster job, so a clustering never overwrites a correction made while it ran.

Corrections are recorded as constraints (``CollectionStore.add_constraint``) that later cluster
jobs honour, incremental or full, and they stay linear in the faces involved:

- **merge** A into B: the merged cluster's faces become one must-link component (a chain joining
  the components already there, so a re-merge adds one link), and cannot-links among them are
  dropped. One must-link between A and B would not do: in a full run the rest of A and of B
  cluster on their own and only the two linked faces stay together.
- **split** M off C: must-links between M and the rest R are dropped (R's faces that were joined
  only through M are chained again), M becomes one must-link component, and M's best face is
  cannot-linked with *every* face of R. One cannot-link pair is not enough: R is not one node in a
  full run, so the other faces of R could join M (they do, when their embeddings are close).
- **not this person**: the face loses its must-links (its neighbours are chained again, so the
  others stay joined) and is cannot-linked with every other face of its former cluster.

A named cluster is a person of the service's gallery (``CollectionStore.enroll_named``): faces a
correction takes out of a named cluster (split, not this person, the name removed) are taken out
of that gallery person too, so identification follows the user's corrections.
"""

from __future__ import annotations

import io
import os
from collections import defaultdict
from collections.abc import Iterable
from itertools import pairwise
from pathlib import Path as FsPath
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request, Response
from fastapi.responses import FileResponse

from faceatlas.server.auth import Principal, require
from faceatlas.server.errors import ServiceError
from faceatlas.server.schemas import (
    MAX_ID,
    ClusterChanged,
    ClusterJobRequest,
    ClusterMergeRequest,
    ClusterNameRequest,
    ClusterOut,
    ClusterSplit,
    ClusterSplitRequest,
    ClustersResponse,
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
)
from faceatlas.server.uploads import sniff

router = APIRouter(prefix="/v1", tags=["collection"])
Reader = Annotated[Principal, Depends(require("read"))]
Writer = Annotated[Principal, Depends(require("write"))]
ClusterId = Annotated[int, Path(ge=0, le=MAX_ID, description="a cluster id (GET /v1/collection/clusters)")]
FaceId = Annotated[int, Path(ge=0, le=MAX_ID, description="a collection face id")]
PhotoId = Annotated[int, Path(ge=0, le=MAX_ID, description="a collection photo id")]
Limit = Annotated[int, Query(ge=1, le=1000, description="at most this many")]
Offset = Annotated[int, Query(ge=0, le=MAX_ID, description="skip this many first")]

THUMB_MARGIN = 0.25  # of the face box's longer side, on each side
CACHE = "private, max-age=3600"  # a face's or photo's id never names other pixels (changed files get new ids)
MEDIA_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
    "heif": "image/heif",
}
UNASSIGNED = -1


# --- clusters -------------------------------------------------------------------------------------


@router.get("/collection/clusters", response_model=ClustersResponse, summary="People found in the photos")
def list_clusters(request: Request, _: Reader, limit: Limit = 200, offset: Offset = 0) -> ClustersResponse:
    """Clusters with most faces first (then by id), each with its best face as a cover."""
    with request.app.state.engine.collection() as store:
        infos = store.clusters()  # most faces first, then id
        page = infos[offset : offset + limit]
        covers = {c.id: _cover(store, c) for c in page}
    return ClustersResponse(
        clusters=[ClusterSummary(id=c.id, name=c.name, faces=c.n_faces, cover_face_id=covers[c.id]) for c in page],
        total=len(infos),
    )


@router.get("/collection/clusters/{cluster_id}", response_model=ClusterOut, summary="One cluster and its faces")
def get_cluster(request: Request, _: Reader, cluster_id: ClusterId) -> ClusterOut:
    with request.app.state.engine.collection() as store:
        return _cluster_out(store, _cluster(store, cluster_id))


@router.patch(
    "/collection/clusters/{cluster_id}", response_model=ClusterChanged, summary="Name a cluster (or remove its name)"
)
def name_cluster(request: Request, _: Writer, cluster_id: ClusterId, body: ClusterNameRequest) -> ClusterChanged:
    """A named cluster is a person: its faces are enrolled into the service's gallery under the
    name (faces below the gallery's quality floor are left out), so `/v1/identify` finds them.
    Renaming a named cluster renames its gallery person too (when the new name is free there).
    Removing the name takes the cluster's faces out of the gallery again (and the person, if that
    leaves it with no face)."""
    engine = request.app.state.engine
    name = None if body.name is None else body.name.strip()
    with engine.collection_lock, engine.collection() as store:
        info = _cluster(store, cluster_id)
        if name is not None:
            _check_name_free(store, cluster_id, name)
            _check_gallery_model(engine, store)
        store.name_cluster(cluster_id, name)
        unenrolled = 0
        if name is None and info.name is not None:
            unenrolled = _unenroll(engine, info.name, store.cluster_faces(cluster_id), [])
        enrolled, held = _enroll(engine, store, name, rename_from=info.name)
        out = _changed(store, _cluster(store, cluster_id), enrolled, held)
        out.unenrolled = unenrolled
        return out


@router.post(
    "/collection/clusters/{cluster_id}/merge", response_model=ClusterChanged, summary="Merge a cluster into another"
)
def merge_clusters(request: Request, _: Writer, cluster_id: ClusterId, body: ClusterMergeRequest) -> ClusterChanged:
    """Every face of this cluster moves to `into`, which keeps its id and name (or takes this
    cluster's name if it has none); later cluster jobs keep the merged faces together. Two
    differently named clusters, or clusters with faces in one photo, are not merged (409)."""
    if body.into == cluster_id:
        raise ServiceError(422, "invalid_request", f"cluster {cluster_id} cannot be merged into itself")
    engine = request.app.state.engine
    with engine.collection_lock, engine.collection() as store:
        source, target = _cluster(store, cluster_id), _cluster(store, body.into)
        if source.name and target.name:
            raise ServiceError(
                409,
                "conflict",
                f"cluster {source.id} is {source.name!r} and cluster {target.id} is {target.name!r}: differently "
                "named clusters are different people; remove one name first (PATCH with name null) if they are one",
            )
        moving, staying = store.cluster_faces(source.id), store.cluster_faces(target.id)
        shared = {f.photo_id: f.id for f in staying}
        both = [(f.photo_id, shared[f.photo_id], f.id) for f in moving if f.photo_id in shared]
        if both:
            photo, a, b = both[0]
            raise ServiceError(
                409,
                "conflict",
                f"clusters {source.id} and {target.id} both have a face in photo {photo} (faces {a} and {b}); a "
                "person appears once per photo: take the wrong face out first (POST /v1/collection/faces/{id}/"
                "not-this-person), then merge",
            )
        name = target.name or source.name
        if name is not None:
            _check_gallery_model(engine, store)
        if source.name:  # the name goes with the faces: `into` has none
            store.name_cluster(source.id, None)
            store.name_cluster(target.id, name)
        store.set_clusters([f.id for f in moving], [target.id] * len(moving))  # also drops the emptied cluster
        _Links(store).tie({f.id for f in moving} | {f.id for f in staying})
        enrolled, held = _enroll(engine, store, name)
        return _changed(store, _cluster(store, target.id), enrolled, held)


@router.post(
    "/collection/clusters/{cluster_id}/split", response_model=ClusterSplit, summary="Move some faces to a new cluster"
)
def split_cluster(request: Request, _: Writer, cluster_id: ClusterId, body: ClusterSplitRequest) -> ClusterSplit:
    """The faces given (some, not all, of this cluster's) move to a new, unnamed cluster, which is
    returned; later cluster jobs keep them together and apart from the faces that stayed. When the
    cluster is named, the faces moved are taken out of its gallery person."""
    engine = request.app.state.engine
    with engine.collection_lock, engine.collection() as store:
        info = _cluster(store, cluster_id)
        faces = store.cluster_faces(info.id)  # best first
        here = {f.id for f in faces}
        wanted = list(dict.fromkeys(body.faces))
        strangers = [f for f in wanted if f not in here]
        if strangers:
            raise ServiceError(
                422,
                "invalid_request",
                f"faces {_few(strangers)} are not in cluster {info.id}; split moves its own faces",
            )
        if len(wanted) == len(faces):
            raise ServiceError(
                422,
                "invalid_request",
                f"a split must leave at least one face in cluster {info.id}; to rename the person use PATCH",
            )
        new_id = max(c.id for c in store.clusters()) + 1
        store.set_clusters(wanted, [new_id] * len(wanted))
        moved = set(wanted)
        rest = here - moved
        links = _Links(store)
        links.separate(moved, rest)
        links.tie(moved)
        representative = next(f.id for f in faces if f.id in moved)  # the best face of those moved
        links.cannot(representative, rest)
        unenrolled = 0
        if info.name is not None:
            unenrolled = _unenroll(
                engine, info.name, [f for f in faces if f.id in moved], [f for f in faces if f.id in rest]
            )
        return ClusterSplit(**_cluster_out(store, _cluster(store, new_id)).model_dump(), unenrolled=unenrolled)


@router.post(
    "/collection/faces/{face_id}/not-this-person",
    response_model=NotThisPersonResponse,
    summary="Take a face out of its cluster",
)
def not_this_person(request: Request, _: Writer, face_id: FaceId) -> NotThisPersonResponse:
    """The face becomes unassigned; later cluster jobs never put it back with its former cluster's
    faces. When that cluster is named, the face is taken out of its gallery person."""
    engine = request.app.state.engine
    with engine.collection_lock, engine.collection() as store:
        face = _face(store, face_id)
        if face.cluster is None or face.cluster < 0:
            state = "not clustered yet" if face.cluster is None else "unassigned"
            raise ServiceError(409, "conflict", f"face {face_id} is in no cluster ({state})")
        former = _cluster(store, int(face.cluster))
        staying = [f for f in store.cluster_faces(former.id) if f.id != face_id]
        others = {f.id for f in staying}
        store.set_clusters([face_id], [UNASSIGNED])
        links = _Links(store)
        links.separate({face_id}, others | links.must[face_id])
        links.cannot(face_id, others)
        unenrolled = 0 if former.name is None else _unenroll(engine, former.name, [face], staying)
    return NotThisPersonResponse(face_id=face_id, former_cluster_id=former.id, unenrolled=unenrolled)


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
    with request.app.state.engine.collection() as store:
        photos = store.photos()
        if cluster is not None:
            if cluster >= 0:
                _cluster(store, cluster)
            wanted = {f.photo_id for f in store.cluster_faces(cluster)}
            photos = [p for p in photos if p.id in wanted]
    return PhotosResponse(photos=[_photo_out(p) for p in photos[offset : offset + limit]], total=len(photos))


@router.get("/collection/photos/{photo_id}", response_model=PhotoDetail, summary="One photo and its faces")
def get_photo(request: Request, _: Reader, photo_id: PhotoId) -> PhotoDetail:
    with request.app.state.engine.collection() as store:
        photo = _photo(store, photo_id)
        names = {c.id: c.name for c in store.clusters()}
        faces = store.faces_of_photo(photo.id)
    return PhotoDetail(
        id=photo.id,
        path=photo.path,
        width=photo.width,
        height=photo.height,
        status=photo.status,
        faces=[PhotoFace(**_face_out(f).model_dump(), cluster_name=names.get(f.cluster)) for f in faces],
    )


@router.get(
    "/collection/photos/{photo_id}/image",
    response_class=FileResponse,
    summary="The photo file",
    responses={200: {"content": {"image/*": {}}, "description": "the photo's bytes as stored on disk"}},
)
def photo_image(request: Request, _: Reader, photo_id: PhotoId) -> FileResponse:
    """The file as it is on disk (not EXIF-rotated: browsers rotate it themselves)."""
    with request.app.state.engine.collection() as store:
        photo = _photo(store, photo_id)
    file = _on_disk(photo.root, photo.path, f"photo {photo.id}")
    try:
        with open(file, "rb") as fh:
            kind = sniff(fh.read(16))
    except OSError as exc:
        raise ServiceError(404, "not_found", f"photo {photo.id} ({photo.path}) cannot be read: {exc.strerror}") from exc
    if kind is None:
        raise ServiceError(
            415, "unsupported_media_type", f"photo {photo.id} ({photo.path}) is no longer an image this service reads"
        )
    return FileResponse(file, media_type=MEDIA_TYPES[kind], headers={"Cache-Control": CACHE})


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
    """The face's box with a margin, square, from the EXIF-rotated photo (black beyond its edge)."""
    from faceatlas.errors import InvalidImageError
    from faceatlas.image import load_image

    with request.app.state.engine.collection() as store:
        face = _face(store, face_id)
    etag = f'"{face.sha256[:16]}-{face.id}-{size}"'
    headers = {"Cache-Control": CACHE, "ETag": etag}
    if if_none_match is not None and etag in {t.strip() for t in if_none_match.split(",")}:
        return Response(status_code=304, headers=headers)
    file = _on_disk(face.root, face.path, f"the photo of face {face.id}")
    try:
        pixels = load_image(file)
    except (InvalidImageError, OSError) as exc:
        raise ServiceError(
            404, "not_found", f"the photo of face {face.id} ({face.path}) can no longer be read"
        ) from exc
    return Response(_thumbnail(pixels, face.box, size), media_type="image/jpeg", headers=headers)


# --- jobs -----------------------------------------------------------------------------------------


@router.post("/jobs/index", response_model=JobOut, status_code=202, tags=["jobs"], summary="Index a folder of photos")
def submit_index(request: Request, _: Writer, body: IndexJobRequest) -> JobOut:
    """Runs in the background (one job at a time): new and changed photos are analysed, files gone
    are forgotten; resumable. The folder must lie inside one of FACEATLAS_PHOTO_ROOTS."""
    from faceatlas.server.jobs import index_job

    state = request.app.state
    settings, engine = state.settings, state.engine
    folder = _allowed_folder(settings.photo_roots, body.folder)
    job = state.jobs.submit(
        "index",
        {"folder": str(folder)},
        index_job(settings.collection_path, folder, analyzer_factory=lambda: engine.analyzer()),
    )
    return JobOut(**job.to_dict())


@router.post("/jobs/cluster", response_model=JobOut, status_code=202, tags=["jobs"], summary="Cluster the faces")
def submit_cluster(request: Request, _: Writer, body: Annotated[ClusterJobRequest | None, Body()] = None) -> JobOut:
    """Groups the faces by person in the background: new faces join people or form new ones
    (`full`: every face again). Names and corrections hold."""
    from faceatlas.server.jobs import cluster_job

    state = request.app.state
    full = body.full if body is not None else False
    engine = state.engine
    with engine.collection():
        pass  # the collection exists from here on (a new service's first job may be this one)
    run = cluster_job(state.settings.collection_path, full)

    def locked(ctx: Any) -> dict[str, Any]:
        with engine.collection_lock:  # corrections wait for the clustering, never lost under it
            return run(ctx)

    return JobOut(**state.jobs.submit("cluster", {"full": full}, locked).to_dict())


@router.get("/jobs", response_model=JobsResponse, tags=["jobs"], summary="Jobs, newest first")
def list_jobs(request: Request, _: Reader) -> JobsResponse:
    return JobsResponse(jobs=[JobOut(**job.to_dict()) for job in request.app.state.jobs.list()])


@router.get("/jobs/{job_id}", response_model=JobOut, tags=["jobs"], summary="One job")
def get_job(request: Request, _: Reader, job_id: str) -> JobOut:
    job = request.app.state.jobs.get(job_id)
    if job is None:
        raise ServiceError(
            404, "not_found", f"no job {job_id!r} (unknown, or finished long enough ago to be forgotten)"
        )
    return JobOut(**job.to_dict())


@router.delete("/jobs/{job_id}", response_model=JobOut, status_code=202, tags=["jobs"], summary="Cancel a job")
def cancel_job(request: Request, _: Writer, job_id: str) -> JobOut:
    """A queued job is cancelled at once; a running one stops at its next step (`cancel_requested`
    meanwhile; an index job keeps the photos stored so far); a finished one stays as it is."""
    job = request.app.state.jobs.cancel(job_id)
    if job is None:
        raise ServiceError(404, "not_found", f"no job {job_id!r}")
    return JobOut(**job.to_dict())


# --- helpers --------------------------------------------------------------------------------------


def _cluster(store: Any, cluster_id: int) -> Any:
    for info in store.clusters():
        if info.id == cluster_id:
            return info
    raise ServiceError(404, "not_found", f"no cluster {cluster_id} in the collection")


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
    )


def _cluster_out(store: Any, info: Any) -> ClusterOut:
    return ClusterOut(id=info.id, name=info.name, faces=[_face_out(f) for f in store.cluster_faces(info.id)])


def _changed(store: Any, info: Any, enrolled: int, held: int | None) -> ClusterChanged:
    return ClusterChanged(**_cluster_out(store, info).model_dump(), enrolled=enrolled, gallery_faces=held)


def _face(store: Any, face_id: int) -> Any:
    """One face by id. CollectionStore has no such lookup yet (only by photo or cluster, or all
    faces with their embeddings), so this reads it with the store's own query and row reader."""
    from faceatlas.collection.store import _face_info

    with store._transaction(write=False) as conn:
        row = conn.execute(f"{store._FACE_SELECT} WHERE f.id = ?", (int(face_id),)).fetchone()
    if row is None:
        raise ServiceError(404, "not_found", f"no face {face_id} in the collection")
    return _face_info(row)


def _photo(store: Any, photo_id: int) -> Any:
    for photo in store.photos():
        if photo.id == photo_id:
            return photo
    raise ServiceError(404, "not_found", f"no photo {photo_id} in the collection")


def _photo_out(photo: Any) -> PhotoOut:
    return PhotoOut(
        id=photo.id, path=photo.path, width=photo.width, height=photo.height, faces=photo.n_faces, status=photo.status
    )


def _on_disk(root: str, path: str, what: str) -> FsPath:
    """The file (symlinks resolved) if it is still there and inside the folder it was indexed from."""
    base = FsPath(root).resolve()
    file = FsPath(root, path).resolve()
    if not file.is_relative_to(base):
        raise ServiceError(404, "not_found", f"{what} ({path}) now leads outside the folder it was indexed from")
    if not file.is_file():
        raise ServiceError(404, "not_found", f"{what} ({path}) is no longer on disk; index its folder again")
    return file


def _thumbnail(pixels: Any, box: tuple[float, float, float, float], size: int) -> bytes:
    from PIL import Image

    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1, 1.0) * (1 + 2 * THUMB_MARGIN)
    left, top = round((x1 + x2 - side) / 2), round((y1 + y2 - side) / 2)
    crop = Image.fromarray(pixels).crop((left, top, left + round(side), top + round(side)))
    out = io.BytesIO()
    crop.resize((size, size), Image.Resampling.LANCZOS).save(out, "JPEG", quality=85)
    return out.getvalue()


def _few(ids: list[int], shown: int = 10) -> str:
    text = ", ".join(map(str, ids[:shown]))
    return text + (f" and {len(ids) - shown} more" if len(ids) > shown else "")


def _check_name_free(store: Any, cluster_id: int, name: str) -> None:
    for info in store.clusters():
        if info.name == name and info.id != cluster_id:
            raise ServiceError(
                409,
                "conflict",
                f"cluster {info.id} is already named {name!r}; if both show one person, merge them "
                f"(POST /v1/collection/clusters/{cluster_id}/merge with into={info.id}), or pick another name",
            )


def _check_gallery_model(engine: Any, store: Any) -> None:
    """Refuse before naming when the gallery holds another model's embeddings than the collection."""
    collection_model = store.model()
    gallery = engine.gallery()
    with engine.gallery_lock:
        gallery_model = gallery.store.model()
    if collection_model is not None and gallery_model is not None and collection_model != gallery_model:
        raise ServiceError(
            409,
            "model_mismatch",
            f"the collection holds {collection_model} embeddings and the gallery {gallery_model}; "
            "its faces cannot be enrolled, so the cluster was not named",
        )


def _enroll(engine: Any, store: Any, name: str | None, rename_from: str | None = None) -> tuple[int, int | None]:
    """Enrol the named clusters into the service's gallery (``enroll_named``: only faces not there
    yet); (faces added under ``name``, faces the gallery holds for it). A cluster renamed from
    ``rename_from`` takes its gallery person along when ``name`` is free there."""
    if name is None:
        return 0, None
    gallery = engine.gallery()
    with engine.gallery_lock:
        if rename_from and rename_from != name and _person(gallery, rename_from) and _person(gallery, name) is None:
            gallery.rename(rename_from, name)
        summary = store.enroll_named(gallery)
        person = _person(gallery, name)
    return int(summary.added.get(name, 0)), 0 if person is None else int(person.n_faces)


def _unenroll(engine: Any, name: str, leaving: list[Any], staying: list[Any]) -> int:
    """Take the faces ``leaving`` a cluster named ``name`` out of that gallery person (the ones
    ``enroll_named`` put there: source "<photo sha256>#<idx>", unless a face ``staying`` has the
    same source, i.e. a copy of the photo); the person goes too if no face is left. Returns how
    many faces were removed. The gallery has no lookup by source, so its rows are read through."""
    source = "{0.sha256}#{0.idx}".format
    sources = {source(f) for f in leaving} - {source(f) for f in staying}
    gallery = engine.gallery()
    with engine.gallery_lock:
        person = _person(gallery, name)
        if person is None or not sources:
            return 0
        gone = [
            int(row["id"])
            for row in gallery.store.export_rows()
            if row.get("kind") == "face" and row["person_id"] == person.id and row["source"] in sources
        ]
        for face_id in gone:
            gallery.remove_face(face_id)
        if gone and _person(gallery, name).n_faces == 0:  # a person is created with faces: none, no person
            gallery.delete_person(name)
    return len(gone)


def _person(gallery: Any, name: str) -> Any:
    from faceatlas.gallery.store import PersonNotFoundError

    try:
        return gallery.store.get_person(name)
    except PersonNotFoundError:
        return None


class _Links:
    """The collection's must-links as a graph (and its cannot-links), changed through the store."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.must: defaultdict[int, set[int]] = defaultdict(set)
        self.cannot_of: defaultdict[int, set[int]] = defaultdict(set)
        must, cannot = store.constraints()
        for a, b in must.tolist():
            self.must[a].add(b)
            self.must[b].add(a)
        for a, b in cannot.tolist():
            self.cannot_of[a].add(b)
            self.cannot_of[b].add(a)

    def components(self, faces: set[int]) -> list[set[int]]:
        """The must-link components among ``faces`` (links to other faces not followed)."""
        seen: set[int] = set()
        out = []
        for start in sorted(faces):
            if start in seen:
                continue
            component, todo = {start}, [start]
            while todo:
                for other in self.must[todo.pop()] & faces:
                    if other not in component:
                        component.add(other)
                        todo.append(other)
            seen |= component
            out.append(component)
        return out

    def _add(self, a: int, b: int, kind: str) -> None:
        self.store.add_constraint(a, b, kind)  # replaces a constraint of the other kind on the pair
        (self.cannot_of if kind == "must" else self.must)[a].discard(b)
        (self.cannot_of if kind == "must" else self.must)[b].discard(a)
        (self.must if kind == "must" else self.cannot_of)[a].add(b)
        (self.must if kind == "must" else self.cannot_of)[b].add(a)

    def _remove(self, a: int, b: int) -> None:
        self.store.remove_constraint(a, b)
        for graph in (self.must, self.cannot_of):
            graph[a].discard(b)
            graph[b].discard(a)

    def _chain(self, components: list[set[int]]) -> None:
        for a, b in pairwise(min(c) for c in components):
            self._add(a, b, "must")

    def tie(self, faces: set[int]) -> None:
        """Make ``faces`` one must-link component, with no cannot-link among them."""
        for a in faces:
            for b in sorted(self.cannot_of[a] & faces):
                if a < b:
                    self._remove(a, b)
        self._chain(self.components(faces))

    def separate(self, moved: set[int], rest: set[int]) -> None:
        """Drop the must-links between ``moved`` and ``rest``; faces of one side that were joined
        only through the other side are chained again, so each side stays as joined as it was."""
        before = self.components(moved | rest)
        for a in moved:
            for b in sorted(self.must[a] & (rest - moved)):
                self._remove(a, b)
        for component in before:
            for side in (moved, rest - moved):
                part = component & side
                if len(part) > 1:
                    self._chain(self.components(part))

    def cannot(self, face: int, others: Iterable[int]) -> None:
        for other in sorted(others):
            if other != face:
                self._add(face, other, "cannot")


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
