"""Video in the service: clips uploaded as jobs, live streams with events over SSE and a webhook.

The "camera" is a local MJPEG-over-HTTP server (multipart/x-mixed-replace JPEG frames, what many IP
cameras serve) showing real faces (Grace Hopper, enrolled; the astronaut, a stranger); the service
runs on a real uvicorn server on 127.0.0.1 with the real models; the webhook receiver is a local
HTTP server too. Nothing leaves the machine. The stream machinery (reconnects, back-off, bounded
queues, flushing) is also driven with stand-in sources and trackers, fast and deterministic."""

from __future__ import annotations

import io
import json
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")
cv2 = pytest.importorskip("cv2")

from faceatlas.errors import StreamError
from faceatlas.server import streams
from faceatlas.server.app import create_app
from faceatlas.server.settings import Settings
from faceatlas.server.streams import (
    EventLog,
    StreamManager,
    StreamOptions,
    WebhookSender,
    check_url,
    redact,
    service_tracker,
)

TIMEOUT = 30.0


def wait_until(condition: Callable[[], Any], timeout: float = TIMEOUT, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def jpeg(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=90)
    return out.getvalue()


def face_crop(image: np.ndarray, box: tuple[int, int, int, int], size: int = 120) -> np.ndarray:
    x1, y1, x2, y2 = box
    return np.asarray(Image.fromarray(image[y1:y2, x1:x2]).resize((size, size)))


def scene(face: np.ndarray | None, x: int = 20, y: int = 60) -> np.ndarray:
    """A 320x240 frame: a grey wall, and the face (a crop) at (x, y)."""
    canvas = np.full((240, 320, 3), 96, np.uint8)
    if face is not None:
        h, w = face.shape[:2]
        canvas[y : y + h, x : x + w] = face
    return canvas


@pytest.fixture(scope="module")
def faces(grace_hopper, astronaut) -> dict[str, np.ndarray]:
    return {
        "hopper": face_crop(grace_hopper, (120, 50, 410, 380)),
        "astronaut": face_crop(astronaut, (130, 10, 320, 220)),
    }


# --- local servers: the camera and the webhook receiver -------------------------------------------------


class Camera:
    """An MJPEG camera on 127.0.0.1: ``frame`` is what it shows; ``stop()``/``start()`` take it off
    the network and bring it back on the same port."""

    def __init__(self, frame: np.ndarray, fps: float = 12.0) -> None:
        self.fps = fps
        self.port = 0
        self.stalled = threading.Event()  # set: connections stay open, no frame is sent
        self.show(frame)
        self.start()

    def show(self, frame: np.ndarray) -> None:
        self._jpeg = jpeg(frame)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/video.mjpg"

    def start(self) -> None:
        camera = self
        self._stopping = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    while not camera._stopping.is_set():
                        if camera.stalled.is_set():
                            time.sleep(0.05)
                            continue
                        data = camera._jpeg
                        head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(data)
                        self.wfile.write(head + data + b"\r\n")
                        time.sleep(1 / camera.fps)
                except OSError:  # the reader went away
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()


class Receiver:
    """A webhook receiver on 127.0.0.1; answers ``fail_first`` requests with HTTP 500."""

    def __init__(self, fail_first: int = 0, status: int = 204) -> None:
        self.events: list[dict] = []
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts += 1
                if receiver.attempts <= fail_first:
                    self.send_response(500)
                else:
                    receiver.events.append(json.loads(body))
                    self.send_response(status)
                    if 300 <= status < 400:
                        self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Silent:
    """A TCP port on 127.0.0.1 that accepts connections and never says a word."""

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(16)
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}/never"

    def close(self) -> None:
        self._socket.close()


# --- the service on a real server, and an SSE client ----------------------------------------------------


class Server:
    def __init__(self, app: Any) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=3)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        wait_until(lambda: self._server.started, what="the server to start")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(15)


class Events:
    """Server-sent events read on a thread: ``next(kind)`` waits for the next event of a kind."""

    def __init__(self, url: str, token: str, headers: dict[str, str] | None = None) -> None:
        self.received: list[dict] = []  # {"id", "event", "data"} or {"comment"}
        self._queue: queue.Queue[dict] = queue.Queue()
        self._stop = threading.Event()
        self.status: int | None = None
        self.ended = threading.Event()
        headers = {"Authorization": f"Bearer {token}", **(headers or {})}
        self._thread = threading.Thread(target=self._read, args=(url, headers), daemon=True)
        self._thread.start()
        wait_until(lambda: self.status is not None, what="the event stream to answer")

    def _read(self, url: str, headers: dict[str, str]) -> None:
        try:
            with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(10.0)) as response:
                self.status = response.status_code
                self.content_type = response.headers.get("content-type", "")
                event: dict = {}
                for line in response.iter_lines():
                    if self._stop.is_set():
                        return
                    if line.startswith(":"):
                        self._put({"comment": line[1:].strip()})
                    elif not line:
                        if event:
                            if "data" in event:
                                event["data"] = json.loads(event["data"])
                            self._put(event)
                            event = {}
                    else:
                        field, _, value = line.partition(":")
                        event[field] = value.lstrip(" ")
        except httpx.HTTPError:
            pass
        finally:
            self.status = self.status or -1
            self.ended.set()

    def _put(self, item: dict) -> None:
        self.received.append(item)
        self._queue.put(item)

    def next(self, kind: str, timeout: float = TIMEOUT) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            try:
                item = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                kinds = [i.get("event", ":" + i.get("comment", "")) for i in self.received]
                raise AssertionError(f"no {kind!r} event within {timeout} s; received {kinds}") from None
            if item.get("event") == kind or (kind.startswith(":") and item.get("comment") == kind[1:]):
                return item

    def of(self, *kinds: str) -> list[dict]:
        return [item for item in self.received if item.get("event") in kinds]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


@dataclass
class Service:
    server: Server
    tokens: dict[str, str]
    app: Any

    def call(self, method: str, path: str, scope: str = "admin", **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[scope]}", **kwargs.pop("headers", {})}
        return httpx.request(method, self.server.base + path, headers=headers, timeout=60, **kwargs)

    def ok(self, method: str, path: str, status: int = 200, scope: str = "admin", **kwargs: Any) -> Any:
        response = self.call(method, path, scope, **kwargs)
        assert response.status_code == status, response.text
        return response.json()

    def events(self, stream_id: str, **kwargs: Any) -> Events:
        query = kwargs.pop("query", "")
        return Events(f"{self.server.base}/v1/streams/{stream_id}/events{query}", self.tokens["read"], **kwargs)


def stream_threads(stream_id: str) -> list[str]:
    return [t.name for t in threading.enumerate() if stream_id in t.name]


@pytest.fixture(scope="module")
def service(tmp_path_factory, analyzer, grace_hopper) -> Iterator[Service]:
    data_dir = tmp_path_factory.mktemp("video-service")
    settings = Settings(data_dir=data_dir, rate_limit_per_minute=0, max_video_mb=2, max_streams=3)
    app = create_app(settings, analyzer_factory=lambda: analyzer)
    # quick to give up on a silent URL, quick to retry: the same machinery as the default's, on test time
    app.state.streams = StreamManager(
        make_tracker=service_tracker(app.state.engine),
        max_streams=settings.max_streams,
        open_timeout=1.0,
        read_timeout=1.0,
        backoff_initial=0.2,
        backoff_max=0.5,
    )
    tokens = {scope: app.state.keys.create(f"test {scope}", scope)[1] for scope in ("read", "write", "admin")}
    server = Server(app)
    svc = Service(server, tokens, app)
    enrolled = svc.call(
        "POST", "/v1/people/Grace Hopper/faces", "write", files={"images": ("g.jpg", jpeg(grace_hopper))}
    )
    assert enrolled.status_code == 201, enrolled.text
    streams.KEEPALIVE_SECONDS = 0.5  # the readers notice a close at the next keep-alive
    yield svc
    streams.KEEPALIVE_SECONDS = 15.0
    server.stop()


# --- live streams end to end -----------------------------------------------------------------------------


def test_a_stream_names_the_enrolled_person_calls_a_stranger_unknown_over_sse_and_webhook(service, faces):
    camera = Camera(scene(faces["hopper"], x=20))
    receiver = Receiver(fail_first=1)  # the first delivery fails: retried
    reader = None
    try:
        started = service.ok(
            "POST", "/v1/streams", 201, "write", json={"url": camera.url, "fps": 6, "webhook": receiver.url}
        )
        sid = started["id"]
        assert started["state"] in ("connecting", "running") and started["url"] == camera.url
        reader = service.events(sid, query="?after=0")  # from the first event, wherever the stream is by now
        assert reader.status == 200 and reader.content_type.startswith("text/event-stream")
        seen = reader.next("person_seen")["data"]
        assert seen["person"] == "Grace Hopper" and seen["stream"] == sid and seen["score"] > 0.5
        assert seen["wall_time"].endswith("Z") and seen["time"] >= 0 and len(seen["box"]) == 4
        hopper_track = seen["track"]

        camera.show(scene(faces["astronaut"], x=190))  # the stranger, elsewhere in the picture
        unknown = reader.next("unknown_person")["data"]
        assert unknown["person"] is None and unknown["track"] != hopper_track

        state = service.ok("GET", f"/v1/streams/{sid}", scope="read")
        assert state["state"] == "running" and state["frames"] > 5 and state["subscribers"] == 1
        assert {e["kind"] for e in state["recent_events"]} >= {"person_seen", "unknown_person"}
        listed = service.ok("GET", "/v1/streams", scope="read")["streams"]
        assert sid in [s["id"] for s in listed]

        final = service.ok("DELETE", f"/v1/streams/{sid}", scope="write")
        assert final["state"] == "stopped" and not stream_threads(sid)  # worker and webhook threads gone
        wait_until(lambda: not stream_threads(camera.url), timeout=5, what="the decoder thread to end")
        reader.next("end", timeout=10)
        closed = {e["data"]["track"]: e["data"] for e in reader.of("track_closed")}
        assert closed[hopper_track]["person"] == "Grace Hopper" and closed[unknown["track"]]["person"] is None
        assert closed[hopper_track]["summary"]["frames"] >= 3  # the whole track, as a clip's tracks
        ids = [int(e["id"]) for e in reader.of(*streams.TRACK_EVENTS, "stream_state")]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)

        # the webhook got every track event, in order, the failed first delivery retried
        sent = [(e["data"]["id"], e["event"]) for e in reader.of(*streams.TRACK_EVENTS)]
        assert [(e["id"], e["kind"]) for e in receiver.events] == sent
        assert final["webhook"]["sent"] == len(sent) and final["webhook"]["errors"] == 1
        assert final["webhook"]["failed"] == 0
        assert service.call("GET", f"/v1/streams/{sid}", "read").status_code == 404  # forgotten
    finally:
        if reader is not None:
            reader.close()
        camera.stop()
        receiver.close()


def test_a_camera_that_goes_away_or_stalls_and_comes_back_is_reconnected(service):
    camera = Camera(scene(None))
    try:
        sid = service.ok("POST", "/v1/streams", 201, "write", json={"url": camera.url, "fps": 5})["id"]
        state = lambda: service.ok("GET", f"/v1/streams/{sid}", scope="read")
        wait_until(lambda: state()["frames"] >= 3, what="frames")
        camera.stop()
        lost = wait_until(lambda: (s := state())["state"] == "reconnecting" and s["last_error"] and s, what="a drop")
        assert "ended" in lost["last_error"] or "answer" in lost["last_error"]
        frames = lost["frames"]
        time.sleep(1.0)  # a few failed attempts while it is away
        camera.start()  # back, on the same port
        back = wait_until(
            lambda: (s := state())["state"] == "running" and s["frames"] > frames + 2 and s, what="frames"
        )
        assert back["reconnects"] >= 1

        camera.stalled.set()  # connected, silent: read_timeout (1 s here) ends the reading
        stalled = wait_until(lambda: (s := state())["state"] == "reconnecting" and s, what="the stall noticed")
        assert "stopped sending frames" in stalled["last_error"] or "answer" in stalled["last_error"]
        camera.stalled.clear()
        again = wait_until(lambda: (s := state())["state"] == "running" and s["frames"] > stalled["frames"] and s)
        assert again["reconnects"] > back["reconnects"]
        assert service.ok("DELETE", f"/v1/streams/{sid}", scope="write")["state"] == "stopped"
        assert not stream_threads(sid)
    finally:
        camera.stop()


def test_a_url_that_never_answers_fails_with_a_clear_error_or_keeps_retrying(service):
    silent = Silent()
    try:
        gives_up = service.ok("POST", "/v1/streams", 201, "write", json={"url": silent.url, "max_reconnects": 1})
        retries = service.ok("POST", "/v1/streams", 201, "write", json={"url": silent.url})
        state = lambda sid: service.ok("GET", f"/v1/streams/{sid}", scope="read")
        failed = wait_until(lambda: (s := state(gives_up["id"]))["state"] == "failed" and s, what="failed")
        assert "did not answer" in failed["last_error"] and failed["reconnects"] == 1 and failed["frames"] == 0
        trying = wait_until(lambda: (s := state(retries["id"]))["reconnects"] >= 2 and s, what="retries")
        assert trying["state"] in ("connecting", "reconnecting") and "did not answer" in trying["last_error"]
        started = time.monotonic()
        for sid in (gives_up["id"], retries["id"]):
            service.ok("DELETE", f"/v1/streams/{sid}", scope="write")
            assert not stream_threads(sid)
        assert time.monotonic() - started < 6  # a worker waiting on a silent URL is not stuck there
    finally:
        silent.close()


def test_stream_requests_are_checked_and_limited(service):
    silent = Silent()
    started = []
    try:
        for url in ("/etc/passwd", "file:///etc/passwd", "ftp://camera/x", "rtsp://", "not a url"):
            refused = service.call("POST", "/v1/streams", "write", json={"url": url})
            assert refused.status_code == 422, (url, refused.text)
            assert "url must be a URL of scheme" in refused.json()["error"]["message"]
        hook = service.call("POST", "/v1/streams", "write", json={"url": silent.url, "webhook": "file:///tmp/x"})
        assert hook.status_code == 422 and "webhook" in hook.json()["error"]["message"]
        assert service.call("POST", "/v1/streams", "read", json={"url": silent.url}).status_code == 403
        assert service.call("POST", "/v1/streams", "write", json={"url": silent.url, "fps": 0}).status_code == 422
        secret = silent.url.replace("http://", "http://admin:hunter2@")
        for _ in range(3):  # FACEATLAS_MAX_STREAMS=3 here
            started.append(service.ok("POST", "/v1/streams", 201, "write", json={"url": secret}))
        assert all("hunter2" not in json.dumps(s) and ":***@" in s["url"] for s in started)
        over = service.call("POST", "/v1/streams", "write", json={"url": secret})
        assert over.status_code == 409 and over.json()["error"]["code"] == "too_many_streams"
        assert "hunter2" not in service.call("GET", "/v1/streams", "read").text
        missing = service.call("GET", "/v1/streams/nope/events", "read")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        assert service.call("DELETE", "/v1/streams/nope", "write").status_code == 404
    finally:
        for s in started:
            service.call("DELETE", f"/v1/streams/{s['id']}", "write")
        silent.close()


def test_sse_keeps_alive_resumes_from_last_event_id_and_lets_go_of_a_client(service):
    camera = Camera(scene(None))
    readers: list[Events] = []
    try:
        sid = service.ok("POST", "/v1/streams", 201, "write", json={"url": camera.url, "fps": 5})["id"]
        state = lambda: service.ok("GET", f"/v1/streams/{sid}", scope="read")
        wait_until(lambda: state()["state"] == "running")
        readers.append(first := service.events(sid, query="?after=0"))
        running = first.next("stream_state")
        assert running["data"]["state"] == "running"
        first.next(":keep-alive", timeout=5)  # nothing happens on a blank wall: comments keep it open
        first.close()
        wait_until(lambda: state()["subscribers"] == 0, what="the server to let go of the client")

        camera.stop()  # while nobody listens, the stream drops and comes back
        wait_until(lambda: state()["state"] == "reconnecting", what="a drop")
        camera.start()
        wait_until(lambda: state()["state"] == "running", what="the stream back")
        # as a browser's EventSource reconnects: the URL it first opened, and the last id it saw
        readers.append(resumed := service.events(sid, query="?after=0", headers={"Last-Event-ID": running["id"]}))
        missed = resumed.next("stream_state", timeout=5)
        assert int(missed["id"]) == int(running["id"]) + 1 and missed["data"]["state"] == "reconnecting"
        assert resumed.next("stream_state", timeout=5)["data"]["state"] == "running"
        service.ok("DELETE", f"/v1/streams/{sid}", scope="write")
        resumed.next("end", timeout=5)
    finally:
        for reader in readers:
            reader.close()
        camera.stop()


# --- clips -------------------------------------------------------------------------------------------------


def clip(path: Path, face: np.ndarray, seconds: float = 2.5, fps: float = 10.0) -> Path:
    """A 320x240 MP4 of the face moving slowly across a grey wall."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (320, 240))
    assert writer.isOpened()
    for i in range(int(seconds * fps)):
        writer.write(cv2.cvtColor(scene(face, x=20 + 2 * i, y=60), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def wait_job(service: Service, job: dict) -> dict:
    return wait_until(
        lambda: (
            (j := service.ok("GET", f"/v1/jobs/{job['id']}", scope="read"))["state"] in ("done", "failed", "cancelled")
            and j
        ),
        timeout=60,
        what="the job",
    )


def test_a_clip_upload_is_tracked_by_a_job(service, faces, tmp_path):
    data = clip(tmp_path / "door.mp4", faces["hopper"]).read_bytes()
    job = service.ok("POST", "/v1/videos?fps=5", 202, "write", files={"video": ("door.mp4", data, "video/mp4")})
    assert job["kind"] == "video" and job["params"]["name"] == "door.mp4" and job["params"]["fps"] == 5
    done = wait_job(service, job)
    assert done["state"] == "done", done
    result = done["result"]
    assert result["video"]["width"] == 320 and result["video"]["frames"] == 25
    assert done["done"] == done["total"] == 25
    [track] = result["tracks"]
    assert track["person"] == "Grace Hopper" and track["frames"] >= 10 and track["source"] == "door.mp4"
    assert 0 <= track["start"] < track["end"] <= 2.5 and len(track["box"]) == 4
    assert result["people"] == ["Grace Hopper"]
    assert not list((service.app.state.settings.data_dir / "uploads").iterdir())  # the upload is gone


def test_bad_clips_are_refused_or_fail_the_job_with_the_reason(service, faces):
    def upload(data: bytes, name: str = "clip.mp4") -> httpx.Response:
        return service.call("POST", "/v1/videos", "write", files={"video": (name, data, "video/mp4")})

    empty = upload(b"")
    assert empty.status_code == 400 and "empty" in empty.json()["error"]["message"]
    image = upload(jpeg(scene(faces["hopper"])), "face.jpg")
    assert image.status_code == 415 and "JPEG image, not a video" in image.json()["error"]["message"]
    text = upload(b"<html><body>not a video</body></html>")
    assert text.status_code == 415 and "text" in text.json()["error"]["message"]
    big = upload(bytes(3 * 1024 * 1024))  # over FACEATLAS_MAX_VIDEO_MB=2
    assert big.status_code == 413 and "FACEATLAS_MAX_VIDEO_MB" in big.json()["error"]["message"]
    assert service.call("POST", "/v1/videos", "read", files={"video": ("a.mp4", b"x")}).status_code == 403

    garbage = np.random.default_rng(0).integers(0, 256, 200_000, dtype=np.uint8).tobytes()
    job = service.ok("POST", "/v1/videos", 202, "write", files={"video": ("holiday.mp4", b"\x00\x00" + garbage)})
    failed = wait_job(service, job)
    assert failed["state"] == "failed" and failed["error"].startswith("InvalidVideoError")
    assert "holiday.mp4" in failed["error"] and "faceatlas-clip-" not in failed["error"]  # the client's name only
    assert not list((service.app.state.settings.data_dir / "uploads").iterdir())


# --- the machinery, with stand-ins ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeFrame:
    index: int
    time: float
    pixels: Any = None


@dataclass(frozen=True)
class FakeTrack:
    id: int
    person: str | None

    def to_json(self) -> dict:
        return {"track": self.id, "start": 0.0, "end": 1.0, "frames": 3, "person": self.person, "box": [1, 2, 3, 4]}


@dataclass(frozen=True)
class FakeEvent:
    kind: str
    time: float
    track_id: int
    person: str | None = None
    score: float | None = None
    track: FakeTrack | None = None


class FakeTracker:
    """One track per tracker: started at its first frame, named at its third, closed at finish."""

    made: ClassVar[list[FakeTracker]] = []

    def __init__(self, **options: Any) -> None:
        self.options, self.fed, self.finished = options, [], False
        FakeTracker.made.append(self)

    def feed(self, frame: Any) -> list[FakeEvent]:
        self.fed.append(frame)
        if len(self.fed) == 1:
            return [FakeEvent("track_started", frame.time, 7)]
        if len(self.fed) == 3:
            return [FakeEvent("person_seen", frame.time, 7, "Ada", 0.9, FakeTrack(7, "Ada"))]
        return []

    def finish(self) -> list[FakeEvent]:
        self.finished = True
        last = self.fed[-1].time if self.fed else 0.0
        return [FakeEvent("track_closed", last, 7, "Ada", 0.9, FakeTrack(7, "Ada"))]


class FakeSource:
    def __init__(self, frames: int, end: Exception | None = None, pause: float = 0.01) -> None:
        self.frames, self.end, self.pause, self.dropped, self.closed = frames, end, pause, 2, False

    def __iter__(self) -> Iterator[FakeFrame]:
        for i in range(self.frames):
            if self.closed:
                return
            time.sleep(self.pause)
            yield FakeFrame(i, i * 0.1)
        if self.end is not None:
            raise self.end

    def close(self) -> None:
        self.closed = True


def scripted(*attempts: Any) -> Callable[[StreamOptions], FakeSource]:
    """Each open takes the next attempt: an exception is raised, a source is returned; the last repeats."""
    script = list(attempts)

    def open_source(options: StreamOptions) -> FakeSource:
        attempt = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(attempt, Exception):
            raise attempt
        return attempt() if callable(attempt) else attempt

    return open_source


def manager(open_source: Callable, **options: Any) -> StreamManager:
    FakeTracker.made = []
    return StreamManager(
        make_tracker=FakeTracker,
        open_source=open_source,
        backoff_initial=0.02,
        backoff_max=0.05,
        **options,
    )


def test_a_dropped_stream_reconnects_with_one_timeline_and_stop_flushes_the_open_track():
    refused = StreamError("'rtsp://cam/1' did not answer with a video within open_timeout=1 s")
    mgr = manager(scripted(lambda: FakeSource(4), refused, refused, lambda: FakeSource(10**6)))
    state = mgr.start(StreamOptions("rtsp://user:pw@cam/1"))
    assert state["url"] == "rtsp://user:***@cam/1"
    sid = state["id"]
    log = mgr.stream(sid).events
    wait_until(lambda: mgr.get(sid)["frames"] > 10 and mgr.get(sid)["state"] == "running")
    snap = mgr.get(sid)
    assert snap["reconnects"] == 3 and snap["dropped"] >= 2 and "did not answer" in snap["last_error"]
    [tracker] = FakeTracker.made  # one tracker across the short outage: its times only increase
    times = [f.time for f in tracker.fed]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert [f.index for f in tracker.fed[:6]] == [0, 1, 2, 3, 4, 5]
    final = mgr.stop(sid)
    assert final["state"] == "stopped" and tracker.finished and not stream_threads(sid)
    kinds = [e.kind for e in log.recent(100) if e.kind != "stream_state"]
    assert kinds == ["track_started", "person_seen", "track_closed"]
    closed = next(e.data for e in log.recent(100) if e.kind == "track_closed")
    assert closed["person"] == "Ada" and closed["summary"]["person"] == "Ada" and closed["box"] == [1, 2, 3, 4]
    states = [e.data["state"] for e in log.recent(100) if e.kind == "stream_state"]
    assert states[0] == "running" and "reconnecting" in states and states[-1] == "stopped"
    with pytest.raises(streams.StreamNotFoundError):
        mgr.get(sid)


def test_a_long_outage_closes_the_open_tracks_and_ids_stay_unique():
    refused = StreamError("did not answer")
    mgr = manager(
        scripted(lambda: FakeSource(5), refused, refused, refused, lambda: FakeSource(5), refused), flush_after=0.1
    )
    sid = mgr.start(StreamOptions("rtsp://cam/1", max_reconnects=3))["id"]
    wait_until(lambda: mgr.get(sid)["state"] == "failed", what="failed")
    log = mgr.stream(sid).events
    closed = [e.data for e in log.recent(100) if e.kind == "track_closed"]
    assert len(FakeTracker.made) == 2 and all(t.finished for t in FakeTracker.made)
    assert [c["track"] for c in closed] == [1, 2]  # the two trackers' track 7, told apart
    snap = mgr.get(sid)
    assert snap["tracks"] == 2 and snap["frames"] == 10 and snap["last_error"] == "StreamError: did not answer"
    assert not stream_threads(sid)  # a failed stream's thread has ended; it stays listed
    assert [s["id"] for s in mgr.list()] == [sid]
    mgr.shutdown()


def test_a_tracker_error_fails_the_stream_and_closed_tracks_are_kept():
    class Broken(FakeTracker):
        def feed(self, frame: Any) -> list[FakeEvent]:
            events = super().feed(frame)
            if len(self.fed) == 4:
                raise streams.InvalidArgumentError("the gallery's model is not the analyzer's")
            return events

    mgr = StreamManager(make_tracker=Broken, open_source=scripted(lambda: FakeSource(100)))
    sid = mgr.start(StreamOptions("rtsp://cam/1"))["id"]
    wait_until(lambda: mgr.get(sid)["state"] == "failed")
    snap = mgr.get(sid)
    assert "gallery's model" in snap["last_error"] and snap["reconnects"] == 0
    assert [e["kind"] for e in snap["recent_events"] if e["kind"] != "stream_state"] == [
        "track_started",
        "person_seen",
        "track_closed",
    ]
    mgr.shutdown()


def test_max_streams_counts_running_streams_only():
    mgr = manager(scripted(lambda: FakeSource(10**6, pause=0.05)), max_streams=1)
    first = mgr.start(StreamOptions("rtsp://cam/1"))
    with pytest.raises(streams.TooManyStreamsError, match="FACEATLAS_MAX_STREAMS"):
        mgr.start(StreamOptions("rtsp://cam/2"))
    mgr.stop(first["id"])
    second = mgr.start(StreamOptions("rtsp://cam/2"))
    mgr.shutdown()
    assert mgr.list()[0]["state"] == "stopped" and not stream_threads(second["id"])
    with pytest.raises(streams.TooManyStreamsError, match="shutting down"):
        mgr.start(StreamOptions("rtsp://cam/3"))


def test_a_slow_subscriber_loses_its_oldest_events_with_a_notice_and_never_blocks():
    log = EventLog(ring_size=50, subscriber_queue=5, max_subscribers=2)
    slow = log.subscribe()
    for i in range(20):
        log.publish("person_seen", {"n": i})  # nobody reads: publishing still never waits
    events, lost, ended = slow.drain()
    assert [e.data["n"] for e in events] == [15, 16, 17, 18, 19] and lost == 15 and not ended
    late = log.subscribe(last_id=3)  # resuming: the ring still holds what came after event 3
    events, lost, _ = late.drain()
    assert [e.id for e in events] == [16, 17, 18, 19, 20] and lost == 12  # its queue holds 5; 12 more were lost
    with pytest.raises(streams.TooManySubscribersError):
        log.subscribe()
    late.close()
    gone = EventLog(ring_size=3)
    for i in range(6):
        gone.publish("x", {})
    resumed = gone.subscribe(last_id=1)
    events, lost, _ = resumed.drain()
    assert [e.id for e in events] == [4, 5, 6] and lost == 2  # 2 and 3 left the ring
    gone.close()
    assert resumed.drain()[2] and gone.subscribe().drain()[2]  # ended, and a newcomer is told at once
    assert log.recent(2)[-1].sse().startswith("id: 20\nevent: person_seen\ndata: {")


def test_the_webhook_retries_with_back_off_counts_failures_and_follows_no_redirect():
    flaky = Receiver(fail_first=2)
    sender = WebhookSender(flaky.url, backoff=0.01)
    sender.submit({"kind": "person_seen", "id": 1})
    wait_until(lambda: sender.stats()["sent"] == 1)
    assert sender.stats()["errors"] == 2 and flaky.events == [{"kind": "person_seen", "id": 1}]
    sender.close()
    assert not sender.alive
    flaky.close()

    redirect = Receiver(status=302)
    down = Silent()
    for url in (redirect.url, down.url.replace("never", "hook")):
        sender = WebhookSender(url, attempts=2, backoff=0.01, timeout=0.5)
        sender.submit({"id": 1})
        wait_until(lambda s=sender: s.stats()["failed"] == 1, what="the webhook to give up")
        assert sender.stats()["errors"] == 2 and sender.stats()["last_error"]
        sender.close(timeout=0.5)
    redirect.close()
    down.close()

    blocked = threading.Event()
    slow = WebhookSender("http://127.0.0.1:9/x", queue_size=3, post=lambda url, body, timeout: blocked.wait(5) and None)
    for i in range(10):
        slow.submit({"id": i})  # never waits for the receiver
    assert slow.stats()["dropped"] >= 6 and slow.stats()["pending"] <= 3
    blocked.set()
    slow.close()


def test_urls_are_checked_and_passwords_never_shown():
    assert check_url("rtsp://cam.local:554/h264", streams.STREAM_SCHEMES, "url")
    for bad in ("/dev/video0", "file:///etc/passwd", "C:\\\\video.mp4", "http://", "gopher://x/1", "concat:a|b"):
        with pytest.raises(streams.InvalidArgumentError, match="url must be a URL"):
            check_url(bad, streams.STREAM_SCHEMES, "url")
    assert redact("rtsp://admin:s3cret@10.0.0.5/stream") == "rtsp://admin:***@10.0.0.5/stream"
    # FACEATLAS_STREAM_HOSTS: only the hosts allowed (checked before any connection is tried)
    allowed = ("camera-*.local", "127.0.0.1")
    assert check_url("rtsp://Camera-2.local/h264", streams.STREAM_SCHEMES, "url", allowed)
    assert check_url("http://127.0.0.1:9000/hook", ("http", "https"), "webhook", allowed)
    for host in ("rtsp://169.254.169.254/latest", "http://camera.local/x"):
        with pytest.raises(streams.InvalidArgumentError, match="may not connect to"):
            check_url(host, streams.STREAM_SCHEMES, "url", allowed)
    with pytest.raises(streams.InvalidArgumentError, match="allowed are none"):
        check_url("rtsp://cam.local/h264", streams.STREAM_SCHEMES, "url", ())
    assert redact("rtsp://10.0.0.5/stream") == "rtsp://10.0.0.5/stream"


def test_the_sse_body_tells_a_slow_client_what_it_lost_and_ends_with_the_stream():
    import asyncio

    from faceatlas.server.routes.video import _sse

    async def read() -> str:
        log = EventLog(subscriber_queue=2)
        body = _sse(log.subscribe(asyncio.get_running_loop()))
        chunks = [await anext(body)]  # connected
        for i in range(5):
            log.publish("person_seen", {"person": f"p{i}"})
        log.close()
        async for chunk in body:
            chunks.append(chunk)
        return "".join(chunks)

    text = asyncio.run(read())
    assert text.startswith("retry: 3000\n: connected\n\n")
    assert 'event: events_lost\ndata: {"lost": 3}\n\n' in text
    assert "id: 4\nevent: person_seen\n" in text and "id: 5\n" in text and "id: 3\n" not in text
    assert text.endswith("event: end\ndata: {}\n\n")
    with pytest.raises(streams.TooManyStreamsError, match="turned off"):
        StreamManager(make_tracker=FakeTracker, max_streams=0).start(StreamOptions("rtsp://cam/1"))
