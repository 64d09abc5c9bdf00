"""Video over HTTP: clips uploaded as jobs, live streams with their events as server-sent events.

- ``POST /v1/videos``: a clip (multipart ``video``) is saved to a temporary file and tracked by a
  background job (kind ``video``, the job queue of index and cluster jobs); the job's result lists
  its tracks, one identity decision each.
- ``POST /v1/streams``: a camera URL tracked live on a thread of its own, until ``DELETE``; its
  events (``person_seen``, ``unknown_person``, ...) stream from ``GET /v1/streams/{id}/events``
  (``text/event-stream``; resume with ``Last-Event-ID``) and go to its webhook, if it has one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Header, Query, Request, UploadFile
from fastapi.responses import StreamingResponse

from faceatlas.errors import InvalidArgumentError
from faceatlas.server import streams as streams_module  # KEEPALIVE_SECONDS read at each wait: tests lower it
from faceatlas.server.auth import Reader, Writer
from faceatlas.server.errors import ServiceError
from faceatlas.server.privacy import hidden_names, redact_people
from faceatlas.server.schemas import JobOut, StreamOut, StreamRequest, StreamsResponse
from faceatlas.server.state import jobs_of, settings_of
from faceatlas.server.streams import (
    StreamManager,
    StreamNotFoundError,
    StreamOptions,
    Subscriber,
    TooManyStreamsError,
    TooManySubscribersError,
    clip_job,
)
from faceatlas.server.uploads import CHUNK, sniff

router = APIRouter(prefix="/v1", tags=["video"])

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy may buffer the events
UPLOAD_DIR = "uploads"  # under the data directory: clips can be large, /tmp is often a small tmpfs
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,8}$")


def streams_of(request: Request) -> StreamManager:
    streams: StreamManager = request.app.state.streams
    return streams


# --- clips -----------------------------------------------------------------------------------------


def not_a_video(head: bytes) -> str | None:
    """Why the first bytes of an upload are plainly not a video (None: let the decoder judge).

    Only what is certainly something else is refused here; anything the decoder then cannot
    read fails the job with the decoder's own message."""
    if not head:
        return "the upload is empty"
    image = sniff(head[:16])
    if image is not None and image != "heif":
        return f"the upload is a {image.upper()} image, not a video (send images to /v1/identify or /v1/analyze)"
    if image == "heif":
        return "the upload is a HEIF/AVIF image, not a video (send images to /v1/identify or /v1/analyze)"
    if head.startswith(b"%PDF"):
        return "the upload is a PDF document, not a video"
    if head.startswith((b"PK\x03\x04", b"\x1f\x8b", b"7z\xbc\xaf")):
        return "the upload is an archive (zip, gzip or 7z), not a video"
    try:
        text = head[:512].decode("utf-8")
    except UnicodeDecodeError:
        return None
    if all(ch.isprintable() or ch in "\r\n\t" for ch in text):
        return "the upload is text, not a video"
    return None


def save_clip(upload: UploadFile, folder: Path, limit: int) -> tuple[str, int]:
    """The upload copied to a new file in ``folder`` (path, size), refused past ``limit`` bytes or
    when its first bytes are plainly not a video; nothing is left behind on a refusal."""
    head = upload.file.read(CHUNK)
    why = not_a_video(head)
    if why is not None:
        status, code = (400, "invalid_video") if not head else (415, "unsupported_media_type")
        raise ServiceError(status, code, f"video: {why}; send a video file (MP4, MOV, MKV, WebM, AVI...)")
    folder.mkdir(parents=True, exist_ok=True)
    match = _SUFFIX.search(upload.filename or "")
    fd, path = tempfile.mkstemp(prefix="faceatlas-clip-", suffix=match.group(0) if match else ".video", dir=folder)
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            part = head
            while part:
                size += len(part)
                if size > limit:
                    raise ServiceError(
                        413,
                        "too_large",
                        f"video: the upload is over the limit of {limit / 1024 / 1024:g} MB (FACEATLAS_MAX_VIDEO_MB); "
                        "send a shorter or smaller clip",
                    )
                out.write(part)
                part = upload.file.read(CHUNK)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise
    return path, size


@router.post(
    "/videos",
    response_model=JobOut,
    status_code=202,
    summary="Track the faces of a video clip (a job)",
    responses={
        400: {"description": "empty upload"},
        413: {"description": "over FACEATLAS_MAX_VIDEO_MB"},
        415: {"description": "not a video (an image, text, a document)"},
    },
)
def upload_video(
    request: Request,
    _: Writer,
    video: Annotated[UploadFile, File(description="a video file (MP4, MOV, MKV, WebM, AVI, ...)")],
    fps: Annotated[float | None, Query(gt=0, le=240, description="frames analysed per second (default: all)")] = None,
    detect_every: Annotated[int, Query(ge=1, le=30, description="detect in one analysed frame in N")] = 1,
    fpir: Annotated[
        float | None, Query(gt=0, lt=1, description="false-positive identification rate (default: the gallery's)")
    ] = None,
) -> JobOut:
    """The clip is tracked in the background (one job at a time, with index and cluster jobs):
    follow it at `GET /v1/jobs/{id}` (progress counts the video's frames); its result lists every
    track (`start`, `end` seconds, `frames`, `person` or null, `score`, `box` of its best frame).
    A clip the decoder cannot read fails the job with the reason."""
    settings = settings_of(request)
    path, size = save_clip(video, settings.data_dir.expanduser() / UPLOAD_DIR, settings.max_video_bytes)
    name = Path(video.filename or "upload").name[:200] or "upload"
    params = {"name": name, "bytes": size, "fps": fps, "detect_every": detect_every, "fpir": fpir}
    run = clip_job(
        path, name, streams_of(request).make_tracker, fps=fps, detect_every=detect_every, fpir=fpir, delete=True
    )
    try:
        job = jobs_of(request).submit("video", params, run)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise
    return JobOut(**job.to_dict())


# --- streams ---------------------------------------------------------------------------------------


def _stream_errors(exc: Exception) -> ServiceError | None:
    if isinstance(exc, StreamNotFoundError):
        return ServiceError(404, "not_found", str(exc))
    if isinstance(exc, TooManyStreamsError):
        return ServiceError(409, "too_many_streams", str(exc))
    if isinstance(exc, TooManySubscribersError):
        return ServiceError(409, "too_many_subscribers", str(exc))
    if isinstance(exc, InvalidArgumentError):  # a URL of the wrong kind: as the request's other checks answer
        return ServiceError(422, "invalid_request", str(exc))
    return None


@contextlib.contextmanager
def _answered() -> Iterator[None]:
    """The stream manager's errors as HTTP answers."""
    try:
        yield
    except Exception as exc:
        mapped = _stream_errors(exc)
        if mapped is None:
            raise
        raise mapped from None


@router.post(
    "/streams",
    response_model=StreamOut,
    status_code=201,
    summary="Track a live camera or stream",
    responses={409: {"description": "FACEATLAS_MAX_STREAMS streams already run"}},
)
def start_stream(request: Request, _: Writer, body: StreamRequest) -> StreamOut:
    """The URL is read on a thread of its own until `DELETE /v1/streams/{id}`, reconnecting with
    back-off when it drops, stalls or does not answer. Its events: `GET /v1/streams/{id}/events`
    (server-sent events), and the `webhook`, if given, POSTed each event as JSON."""
    options = StreamOptions(
        url=body.url,
        fps=body.fps,
        detect_every=body.detect_every,
        fpir=body.fpir,
        webhook=body.webhook,
        events=tuple(dict.fromkeys(body.events)),
        max_reconnects=body.max_reconnects,
    )
    with _answered():
        return StreamOut(**streams_of(request).start(options))


@router.get("/streams", response_model=StreamsResponse, summary="Live streams, newest first")
def list_streams(request: Request, _: Reader) -> StreamsResponse:
    return StreamsResponse(streams=[StreamOut(**s) for s in streams_of(request).list()])


@router.get("/streams/{stream_id}", response_model=StreamOut, summary="One live stream's state")
def get_stream(request: Request, _: Reader, stream_id: str) -> StreamOut:
    """Its state (`connecting`, `running`, `reconnecting`, `stopped`, `failed`), counts, last error
    and latest events."""
    with _answered():
        return StreamOut(**streams_of(request).get(stream_id))


@router.delete("/streams/{stream_id}", response_model=StreamOut, summary="Stop a live stream")
def stop_stream(request: Request, _: Writer, stream_id: str) -> StreamOut:
    """Stops its thread; the tracks still open are closed first (`track_closed` events to its
    subscribers and webhook). Returns its final state; it is then forgotten."""
    with _answered():
        return StreamOut(**streams_of(request).stop(stream_id))


@router.get(
    "/streams/{stream_id}/events",
    summary="A live stream's events (server-sent events)",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "`id: N`, `event: person_seen` (or another kind), `data: {json}` per event; a "
            "`: keep-alive` comment every 15 s; `event: events_lost` when this client was too slow or resumed "
            "too late to get them all; `event: end` when the stream stops",
        }
    },
)
async def stream_events(
    request: Request,
    _: Reader,
    stream_id: str,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", description="resume after this event id (browsers send it)")
    ] = None,
    after: Annotated[
        int | None, Query(ge=0, description="resume after this event id (0: every event still kept)")
    ] = None,
) -> StreamingResponse:
    """Each event as it happens: `track_started`, `person_seen`, `unknown_person`, `track_closed`
    and `stream_state`; the data is JSON (`kind`, `stream`, `time`, `wall_time`, `track`, `person`,
    `score`, `box`). Resuming (`Last-Event-ID` or `after`) replays the recent events after that id."""
    resume = after
    if last_event_id is not None and last_event_id.strip().isdigit():
        # the header wins: a browser reconnecting sends it with the URL it first opened (?after=0 too)
        resume = int(last_event_id.strip())
    hide = await asyncio.to_thread(hidden_names, request)  # private people, for a caller who may not see them
    with _answered():
        stream = streams_of(request).stream(stream_id)
        subscriber = stream.events.subscribe(asyncio.get_running_loop(), resume)
    return StreamingResponse(_sse(subscriber, hide), media_type="text/event-stream", headers=SSE_HEADERS)


def _visible(event: streams_module.Event, hide: frozenset[str]) -> streams_module.Event:
    """The event with no private person named (``person_seen`` of one becomes ``unknown_person``)."""
    if not hide:
        return event
    data = redact_people(event.data, hide)
    return streams_module.Event(event.id, str(data.get("kind", event.kind)), data)


async def _sse(subscriber: Subscriber, hide: frozenset[str] = frozenset()) -> AsyncIterator[str]:
    try:
        yield "retry: 3000\n: connected\n\n"
        while True:
            events, lost, ended = subscriber.drain()
            if lost:
                yield f"event: events_lost\ndata: {json.dumps({'lost': lost})}\n\n"
            for event in events:
                yield _visible(event, hide).sse()
            if ended:
                yield "event: end\ndata: {}\n\n"
                return
            if not await subscriber.wait(streams_module.KEEPALIVE_SECONDS):
                yield ": keep-alive\n\n"
    finally:
        subscriber.close()
