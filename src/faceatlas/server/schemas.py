"""Request and response bodies of the REST API (pydantic), and their conversion from library records.

Boxes are ``[x1, y1, x2, y2]`` in pixels of the (EXIF-rotated) image, top-left origin; landmarks
are five ``[x, y]`` points (left eye, right eye, nose, left and right mouth corner); pose is in
degrees; scores and similarities are higher-is-more-alike.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_ID = 2**63 - 1  # ids are SQLite/PostgreSQL 64-bit integers: a larger one is a 422, not a 500


class ErrorDetail(BaseModel):
    code: str = Field(description="a stable machine-readable code, e.g. invalid_image, unauthorized")
    message: str = Field(description="what went wrong and how to fix it")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class PoseOut(BaseModel):
    yaw: float
    pitch: float
    roll: float


class QualityOut(BaseModel):
    score: float = Field(description="usefulness for recognition, 0..1")
    size: float
    sharpness: float
    pose: float
    exposure: float
    confidence: float
    method: str = Field(
        "heuristic", description='what made score: "heuristic" or "learned:<embedder card>" (the learned model)'
    )
    heuristic: float | None = Field(None, description="the heuristic's score, when score is the learned one")


class FaceOut(BaseModel):
    box: list[float] = Field(min_length=4, max_length=4, description="[x1, y1, x2, y2] pixels")
    score: float = Field(description="detector confidence")
    landmarks: list[list[float]] = Field(description="five [x, y] points")
    pose: PoseOut | None = None
    quality: QualityOut | None = None
    embedding: list[float] | None = Field(None, description="L2-normalised; only with ?embeddings=true")


class ImageSize(BaseModel):
    width: int
    height: int


class AnalyzeResponse(BaseModel):
    image: ImageSize
    faces: list[FaceOut] = Field(description="largest first")
    model: str = Field(description="the embedder's name and version")


class VerifyResponse(BaseModel):
    similarity: float = Field(description="cosine similarity of the two faces")
    threshold: float
    far: float | None = Field(description="false-accept rate the threshold was calibrated for")
    is_match: bool


class CandidateOut(BaseModel):
    person: str
    score: float


class IdentificationOut(BaseModel):
    face: FaceOut | None
    person: str | None = Field(description='the decision: a name, or null for "unknown"')
    score: float | None = Field(description="the best candidate's score")
    threshold: float
    fpir: float = Field(description="false-positive identification rate the threshold was set for")
    candidates: list[CandidateOut]
    notes: list[str]


class IdentifyResponse(BaseModel):
    results: list[IdentificationOut] = Field(description="one per face in the image, largest first")


class PersonOut(BaseModel):
    name: str
    faces: int
    metadata: dict[str, Any]
    private: bool = Field(False, description="a private person: shown only to keys allowed to see private people")


class PeopleResponse(BaseModel):
    people: list[PersonOut]


class SkippedOut(BaseModel):
    source: str
    reason: str


class EnrollResponse(BaseModel):
    person: str
    added: list[int] = Field(description="ids of the faces enrolled")
    skipped: list[SkippedOut]


class RenameRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)


class MergeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    into: str = Field(min_length=1, max_length=200, description="the person who keeps the faces")


class PersonFaceOut(BaseModel):
    id: int
    quality: float


class PersonFacesResponse(BaseModel):
    person: str
    faces: list[PersonFaceOut]


class DeletedResponse(BaseModel):
    deleted: str
    faces: int = Field(description="faces (embeddings) removed with it from the gallery (0: it was not there)")
    clusters: list[int] = Field(
        default_factory=list, description="collection clusters that carried the name: now unnamed, faces kept"
    )
    kept: list[str] = Field(
        default_factory=list,
        description="what of the person remains stored, and why (e.g. PostgreSQL's write-ahead log)",
    )


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    detector: str | None = Field(None, description="the face detector bound (FACEATLAS_DETECTOR): name and version")
    embedder: str | None = Field(
        None,
        description="the face embedder bound (FACEATLAS_EMBEDDER): name and version, as galleries and collections record it",
    )


class Readiness(BaseModel):
    ready: bool
    model_loaded: bool
    gallery: bool
    detail: str


class KeyCreateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    scope: Literal["read", "write", "admin"]
    private: bool = Field(False, description="the key may see private people (an admin key may anyway)")


class KeyOut(BaseModel):
    key_id: str
    name: str
    scope: str
    created_at: str = Field(description="ISO 8601, UTC")
    last_used_at: str | None = Field(description="updated at most once a minute")
    revoked_at: str | None
    private: bool = Field(False, description="may see private people (admin keys may, whatever this says)")


class KeyCreated(KeyOut):
    token: str = Field(description="shown once; only its hash is stored")


class KeysResponse(BaseModel):
    keys: list[KeyOut]


# -- conversion from the library's records ------------------------------------------------------------


def face_out(face: Any, embeddings: bool = False) -> FaceOut:
    pose = face.pose
    quality = face.quality
    return FaceOut(
        box=[float(v) for v in face.box.as_xyxy()],
        score=float(face.score),
        landmarks=[[float(x), float(y)] for x, y in face.landmarks.points.tolist()],
        pose=PoseOut(yaw=pose.yaw, pitch=pose.pitch, roll=pose.roll) if pose is not None else None,
        quality=(
            QualityOut(
                score=quality.score,
                size=quality.size,
                sharpness=quality.sharpness,
                pose=quality.pose,
                exposure=quality.exposure,
                confidence=quality.confidence,
                method=quality.method,
                heuristic=quality.heuristic,
            )
            if quality is not None
            else None
        ),
        embedding=[float(v) for v in face.embedding] if embeddings and face.embedding is not None else None,
    )


# -- the photo collection (routes/collection.py) --------------------------------------------------------
# Collection face ids and gallery face ids are different id spaces.


class CollectionFace(BaseModel):
    id: int = Field(description="a collection face id (not a gallery face id)")
    photo_id: int
    box: list[float] = Field(
        min_length=4, max_length=4, description="[x1, y1, x2, y2] pixels of the EXIF-rotated photo"
    )
    quality: float | None = Field(description="usefulness for recognition, 0..1")
    cluster_id: int | None = Field(description="its cluster; -1 = unassigned, null = not clustered yet")
    time: float | None = Field(
        None, description="a video's face: seconds into the video of the frame its box is in (null: a photo's)"
    )
    start: float | None = Field(None, description="a video's face: when its track starts and ends (seconds)")
    end: float | None = None
    origin: Literal["detected", "manual", "region"] = Field(
        "detected", description="detected; manual: drawn by a user; region: from a named region of the photo's metadata"
    )


class PhotoFace(CollectionFace):
    cluster_name: str | None = Field(description="the name of its cluster, if named")


class ClusterSummary(BaseModel):
    id: int
    name: str | None = Field(description="null until named")
    faces: int = Field(description="how many faces it holds")
    cover_face_id: int | None = Field(description="its highest-quality face (null: no face)")
    private: bool = Field(False, description="a private person: shown only to keys allowed to see private people")
    born: str | None = Field(None, description="the person's birth date, YYYY-MM-DD (a life stage: its person's)")
    person: int | None = Field(None, description="a life stage: the cluster of the person it is a stage of")


class ClustersResponse(BaseModel):
    clusters: list[ClusterSummary] = Field(description="most faces first, then by id")
    total: int = Field(description="clusters in the collection (for paging)")


class ClusterOut(BaseModel):
    id: int
    name: str | None
    faces: list[CollectionFace] = Field(description="highest quality first")
    private: bool = Field(False, description="a private person: shown only to keys allowed to see private people")
    born: str | None = Field(None, description="the person's birth date, YYYY-MM-DD (a life stage: its person's)")
    person: int | None = Field(None, description="a life stage: the cluster of the person it is a stage of")


class ClusterChanged(ClusterOut):
    enrolled: int = Field(description="faces this call enrolled into the service's gallery under the cluster's name")
    gallery_faces: int | None = Field(
        None, description="faces the gallery holds for that name after this call (null: the cluster has no name)"
    )
    unenrolled: int = Field(0, description="faces this call took out of the gallery (the name removed)")


class ClusterNameRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(
        min_length=1,
        max_length=200,
        pattern=r"\S",
        description="who the cluster shows (not blank; surrounding spaces are dropped); null removes the name",
    )


class ClusterBornRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    born: date | None = Field(description="the person's birth date (YYYY-MM-DD); null forgets it")


class ClusterStageRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    person: int | None = Field(description="a cluster of the person this cluster is a life stage of; null unlinks")


class ClusterMergeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    into: int = Field(ge=0, le=MAX_ID, description="the cluster that keeps its id and name and receives the faces")


class ClusterSplitRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    faces: list[Annotated[int, Field(ge=0, le=MAX_ID)]] = Field(
        min_length=1, max_length=100_000, description="ids of the faces that move to a new cluster"
    )


class ClusterSplit(ClusterOut):
    unenrolled: int = Field(
        0, description="faces taken out of the gallery person of the cluster they left (when it is named)"
    )


class NotThisPersonResponse(BaseModel):
    face_id: int
    former_cluster_id: int
    unenrolled: int = Field(0, description="1 if the face was taken out of its former cluster's gallery person")


class PhotoOut(BaseModel):
    id: int
    path: str = Field(description="relative to the folder it was indexed from, with '/'")
    width: int | None = Field(description="after EXIF rotation; null if unreadable")
    height: int | None
    faces: int
    status: str = Field(description="'ok', or 'unreadable: <why>'")
    kind: Literal["photo", "video"] = Field("photo", description="a video's faces are tracks, each with a time")
    duration: float | None = Field(None, description="a video's length in seconds")


class PhotosResponse(BaseModel):
    photos: list[PhotoOut] = Field(description="by folder and path")
    total: int = Field(description="photos matching the filter (for paging)")


class PhotoDetail(BaseModel):
    id: int
    path: str
    width: int | None
    height: int | None
    faces: list[PhotoFace] = Field(description="largest first (a video's: by time)")
    status: str
    kind: Literal["photo", "video"] = "photo"
    duration: float | None = None


class VideoLink(BaseModel):
    url: str = Field(
        description="the path of the video's file (from the service's root), playable by a <video> element "
        "without an API key; add '#t=SECONDS' to start there"
    )
    expires: int = Field(description="Unix time after which the link is refused")


class IndexJobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    folder: str = Field(
        min_length=1,
        max_length=4096,
        description="a folder inside one of FACEATLAS_PHOTO_ROOTS (a relative path is taken inside the roots)",
    )


class ClusterJobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    full: bool = Field(False, description="re-cluster every face (names and corrections still hold)")


class JobOut(BaseModel):
    id: str
    kind: str = Field(description="'index', 'cluster' or 'video'")
    params: dict[str, Any]
    state: Literal["queued", "running", "done", "failed", "cancelled"]
    done: int = Field(
        description="units done (files for an index job, faces for a cluster job, frames read for a video job)"
    )
    total: int | None = Field(description="units in all, once known")
    message: str
    result: dict[str, Any] | None = Field(description="what a finished job did (its report's counts)")
    error: str | None = Field(description="one line, when it failed")
    created_at: float = Field(description="Unix time, seconds")
    started_at: float | None
    finished_at: float | None
    cancel_requested: bool = Field(description="a cancel was asked while it ran; it stops at its next step")


class JobsResponse(BaseModel):
    jobs: list[JobOut] = Field(description="newest first")


# -- video: clips and live streams (routes/video.py) -------------------------------------------------

EventKindName = Literal["track_started", "person_seen", "unknown_person", "track_closed"]


def _every_event_kind() -> list[EventKindName]:
    return ["track_started", "person_seen", "unknown_person", "track_closed"]


class StreamRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(
        min_length=1,
        max_length=4096,
        description="the camera or stream: rtsp://, rtsps://, rtmp://, rtmps://, srt://, http:// or https:// "
        "(MJPEG, HLS...); never a file path. A password in it is never shown back",
    )
    fps: float | None = Field(5.0, gt=0, le=60, description="frames analysed per second (null: every frame)")
    detect_every: int = Field(1, ge=1, le=30, description="detect faces in one analysed frame in N, track between")
    fpir: float | None = Field(
        None, gt=0, lt=1, description="false-positive identification rate per track (default: the gallery's)"
    )
    webhook: str | None = Field(
        None, min_length=1, max_length=4096, description="http(s) URL each event is POSTed to as JSON (optional)"
    )
    events: list[EventKindName] = Field(
        default_factory=_every_event_kind,
        min_length=1,
        description="the event kinds to publish (server-sent events and webhook)",
    )
    max_reconnects: int | None = Field(
        None, ge=0, le=1_000_000, description="failed reconnects in a row before the stream fails; null: forever"
    )


class StreamEventOut(BaseModel):
    """One event, as the webhook receives it and as each server-sent event's data."""

    model_config = ConfigDict(extra="allow")
    id: int = Field(description="increasing within the stream (the SSE id; Last-Event-ID resumes after it)")
    kind: str = Field(description="track_started, person_seen, unknown_person, track_closed or stream_state")
    stream: str
    time: float | None = Field(None, description="video time, seconds since the stream started")
    wall_time: str = Field(description="ISO 8601, UTC")
    track: int | None = Field(None, description="the track's id, unique within the stream")
    person: str | None = Field(None, description='the decision: a name, or null for "unknown"')
    score: float | None = None
    box: list[float] | None = Field(None, description="[x1, y1, x2, y2] pixels of the track's best frame")
    summary: dict[str, Any] | None = Field(None, description="on track_closed: the whole track (as a clip's tracks)")


class WebhookOut(BaseModel):
    url: str
    sent: int = Field(description="events delivered (HTTP 2xx)")
    failed: int = Field(description="events given up after every retry")
    dropped: int = Field(description="events dropped unsent: the receiver was slower than the stream, or it stopped")
    errors: int = Field(description="failed attempts, retries included")
    pending: int
    last_error: str | None


class StreamOut(BaseModel):
    id: str
    url: str = Field(description="the URL, its password hidden")
    state: Literal["connecting", "running", "reconnecting", "stopped", "failed"]
    fps: float | None
    detect_every: int
    fpir: float | None
    events: list[str]
    max_reconnects: int | None
    started_at: str = Field(description="ISO 8601, UTC")
    stopped_at: str | None
    frames: int = Field(description="frames analysed")
    dropped: int = Field(description="frames dropped because analysis was slower than the stream")
    reconnects: int = Field(description="times the URL was opened again after a drop, a stall or a failed open")
    tracks: int = Field(description="faces tracked so far")
    last_error: str | None = Field(description="why the stream last dropped or failed to open")
    last_frame_at: str | None
    subscribers: int = Field(description="server-sent-events clients connected")
    published: int = Field(description="events published so far (the last event id)")
    recent_events: list[StreamEventOut] = Field(description="the latest events, oldest first")
    webhook: WebhookOut | None


class StreamsResponse(BaseModel):
    streams: list[StreamOut] = Field(description="newest first")
