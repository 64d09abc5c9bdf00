"""Request and response bodies of the REST API (pydantic), and their conversion from library records.

Boxes are ``[x1, y1, x2, y2]`` in pixels of the (EXIF-rotated) image, top-left origin; landmarks
are five ``[x, y]`` points (left eye, right eye, nose, left and right mouth corner); pose is in
degrees; scores and similarities are higher-is-more-alike.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


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
    faces: int = Field(description="faces (embeddings) removed with it")


class Health(BaseModel):
    status: Literal["ok"]
    version: str


class Readiness(BaseModel):
    ready: bool
    model_loaded: bool
    gallery: bool
    detail: str


class KeyCreateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    scope: Literal["read", "write", "admin"]


class KeyOut(BaseModel):
    key_id: str
    name: str
    scope: str
    created_at: str = Field(description="ISO 8601, UTC")
    last_used_at: str | None = Field(description="updated at most once a minute")
    revoked_at: str | None


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
            )
            if quality is not None
            else None
        ),
        embedding=[float(v) for v in face.embedding] if embeddings and face.embedding is not None else None,
    )
