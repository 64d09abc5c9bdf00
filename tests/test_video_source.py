"""faceatlas.video.source: frames in from files and live streams (issue 15, "Video in", "Bad input").

Clips are written here with cv2.VideoWriter (160x120, frame i carries the grey level 4*i in its
top-left patch, a red patch to catch BGR/RGB mix-ups); streams are served by a tiny MJPEG server on
127.0.0.1 (FFmpeg reads multipart/x-mixed-replace as a live source).
"""

from __future__ import annotations

import http.server
import logging
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceatlas.errors import InvalidArgumentError, InvalidVideoError, StreamError, VideoError
from faceatlas.video import source
from faceatlas.video.source import Frame, VideoSource, open_video

W, H, N, FPS = 160, 120, 60, 30


def _picture(i: int, session: int = 0) -> np.ndarray:
    """BGR frame i: its number in 7 black/white blocks along the top, its session in 3 below, a red
    patch on the right (BGR/RGB mix-ups), the number painted for people."""
    img = np.full((H, W, 3), 90, np.uint8)
    for bit in range(7):
        img[:16, 16 * bit : 16 * bit + 16] = 255 if i >> bit & 1 else 0
    for bit in range(3):
        img[16:32, 16 * bit : 16 * bit + 16] = 255 if session >> bit & 1 else 0
    img[:40, -32:] = (0, 0, 255)
    cv2.putText(img, str(i), (40, 100), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (255, 255, 255), 2)
    return img


def _bits(pixels: np.ndarray, row: int, count: int) -> int:
    return sum(
        1 << bit for bit in range(count) if pixels[row + 4 : row + 12, 16 * bit + 4 : 16 * bit + 12].mean() > 127
    )


def _number(pixels: np.ndarray) -> int:
    return _bits(pixels, 0, 7)


def _session(pixels: np.ndarray) -> int:
    return _bits(pixels, 16, 3)


def _write(path: Path, fourcc: str = "mp4v", frames: int = N, fps: int = FPS) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (W, H))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(_picture(i))
    writer.release()
    return path


def _rotate_tag(src: Path, dst: Path, degrees: int) -> Path:
    """Copy an MP4 and set its track's display matrix (tkhd) to a clockwise rotation, as phones do."""
    data = bytearray(src.read_bytes())
    at = data.find(b"tkhd")
    version = data[at + 4]
    matrix = at + 8 + (28 if version == 1 else 20) + 8 + 8  # after times, track id, duration, reserved, layer...
    cos, sin = {90: (0, 1), 180: (-1, 0), 270: (0, -1)}[degrees]
    values = [cos << 16, sin << 16, 0, -sin << 16, cos << 16, 0, 0, 0, 1 << 30]
    data[matrix : matrix + 36] = struct.pack(">9i", *values)
    dst.write_bytes(bytes(data))
    return dst


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clips")
    mp4 = _write(root / "clip.mp4", "mp4v")
    avi = _write(root / "clip.avi", "MJPG")
    return {"mp4": mp4, "avi": avi, "rot90": _rotate_tag(mp4, root / "rot90.mp4", 90)}


try:
    import av  # noqa: F401

    HAVE_AV = True
except ImportError:
    HAVE_AV = False
backends = pytest.mark.parametrize(
    "backend", ["opencv", pytest.param("pyav", marks=pytest.mark.skipif(not HAVE_AV, reason="PyAV not installed"))]
)


# --- files ------------------------------------------------------------------------------------


@backends
@pytest.mark.parametrize("kind", ["mp4", "avi"])
def test_every_frame_in_order_with_container_times(clips: dict[str, Path], kind: str, backend: str) -> None:
    with open_video(clips[kind], backend=backend) as video:
        info = video.info
        frames = list(video)
    assert (info.width, info.height, info.fps, info.frames, info.live, info.rotation) == (W, H, 30.0, N, False, 0)
    assert info.duration == pytest.approx(2.0) and info.backend == backend and info.source == str(clips[kind])
    assert [f.index for f in frames] == list(range(N))
    assert [f.time for f in frames] == pytest.approx([i / FPS for i in range(N)], abs=1e-3)
    assert [_number(f.pixels) for f in frames] == list(range(N))
    first = frames[0].pixels
    assert first.shape == (H, W, 3) and first.dtype == np.uint8 and first.flags.c_contiguous
    red = first[8:32, -24:-8].reshape(-1, 3).mean(axis=0)
    assert red[0] > 200 and red[2] < 50, f"RGB expected, red patch reads {red}"
    assert video.errors == [] and video.dropped == 0


@pytest.mark.parametrize("fps", [5, 7, 30, 100])
def test_sampling_by_time_does_not_drift(clips: dict[str, Path], fps: float) -> None:
    with open_video(clips["mp4"], fps=fps) as video:
        frames = list(video)
    times = [i / FPS for i in range(N)]
    expected = []  # the first frame at or after each k/fps
    for k in range(1000):
        later = [i for i, t in enumerate(times) if t >= k / fps - 5e-4]
        if not later:
            break
        if not expected or later[0] != expected[-1]:
            expected.append(later[0])
    assert [f.index for f in frames] == expected
    assert [_number(f.pixels) for f in frames] == expected
    if fps == 5:
        assert expected == list(range(0, N, 6))
        assert [f.time for f in frames] == pytest.approx([k * 0.2 for k in range(10)], abs=1e-3)


@backends
def test_rotation_tag_is_applied_and_recorded(clips: dict[str, Path], backend: str) -> None:
    upright = next(iter(open_video(clips["mp4"]))).pixels
    with open_video(clips["rot90"], backend=backend) as video:
        frame = next(iter(video))
        info = video.info
    assert info.rotation == 90 and (info.width, info.height) == (H, W)
    assert frame.pixels.shape == (W, H, 3) and frame.pixels.flags.c_contiguous
    # 90 clockwise: the number's blocks along the top are now down the right side
    diff = np.abs(frame.pixels.astype(int) - np.rot90(upright, k=-1).astype(int)).mean()
    assert diff < 3, diff


def test_frames_over_max_pixels_are_downscaled(clips: dict[str, Path]) -> None:
    with open_video(clips["mp4"], max_pixels=80 * 60) as video:
        frames = list(video)
    assert (video.info.width, video.info.height, video.info.scale) == (80, 60, 0.5)
    assert all(f.pixels.shape == (60, 80, 3) for f in frames) and len(frames) == N


def test_a_slow_consumer_of_a_file_gets_every_frame(clips: dict[str, Path]) -> None:
    with open_video(clips["avi"], queue_size=2) as video:
        indices = []
        for frame in video:
            if frame.index < 8:
                time.sleep(0.01)  # the decoder fills the queue and has to wait
            indices.append(frame.index)
    assert indices == list(range(N)) and video.dropped == 0


def test_stopping_early_stops_the_decoder(clips: dict[str, Path]) -> None:
    video = open_video(clips["mp4"], queue_size=2)
    started = time.monotonic()
    for frame in video:
        if frame.index == 3:
            break
    assert time.monotonic() - started < 2
    assert video._thread is not None and not video._thread.is_alive()
    video.close()  # idempotent
    with pytest.raises(VideoError, match="open it again"):
        list(video)
    # never iterated: close releases the capture
    with open_video(clips["mp4"]) as unread:
        assert unread.info.frames == N


def test_close_from_another_thread_ends_the_iteration(clips: dict[str, Path]) -> None:
    video = open_video(clips["mp4"], queue_size=1)
    got: list[Frame] = []
    for frame in video:
        got.append(frame)
        if frame.index == 1:
            threading.Thread(target=video.close).start()
            time.sleep(0.3)
    assert 2 <= len(got) < N


def test_a_file_truncated_midway_yields_the_frames_before_the_cut(
    clips: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = clips["avi"].read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, "faceatlas.video.source"), open_video(cut) as video:
        frames = list(video)
    assert 20 <= len(frames) < N
    assert [f.index for f in frames] == list(range(len(frames)))
    assert [_number(f.pixels) for f in frames] == list(range(len(frames)))
    assert len(video.errors) == 1 and "truncated" in video.errors[0]
    assert "truncated" in caplog.text and "cut.avi" in caplog.text


# --- bad input --------------------------------------------------------------------------------


def _bad_inputs(clips: dict[str, Path], root: Path) -> dict[str, tuple[Path, str]]:
    mp4, avi = clips["mp4"].read_bytes(), clips["avi"].read_bytes()
    made: dict[str, tuple[Path, bytes | None, str]] = {
        "missing": (root / "missing.mp4", None, "does not exist"),
        "zero-byte": (root / "empty.mp4", b"", "empty"),
        "jpeg renamed": (root / "photo.mp4", cv2.imencode(".jpg", _picture(0))[1].tobytes(), "JPEG image"),
        "png renamed": (root / "photo.avi", cv2.imencode(".png", _picture(0))[1].tobytes(), "PNG image"),
        "text renamed": (root / "notes.mp4", b"just some notes, not a video\n" * 10, "text file"),
        "zeros": (root / "zeros.mp4", bytes(4096), "zero bytes"),
        "mp4 cut before its index": (root / "cut.mp4", mp4[: len(mp4) // 2], "moov"),
    }
    moov = mp4.find(b"moov")
    rng = np.random.default_rng(0)
    made["mp4 corrupt header"] = (
        root / "badmoov.mp4",
        mp4[: moov + 4] + rng.integers(0, 256, 400, np.uint8).tobytes() + mp4[moov + 404 :],
        "",
    )
    made["avi corrupt header"] = (
        root / "badhdr.avi",
        avi[:12] + rng.integers(0, 256, 2000, np.uint8).tobytes() + avi[2012:],
        "",
    )
    made["unsupported codec"] = (root / "qqqq.avi", avi.replace(b"MJPG", b"QQQQ"), "codec")
    out = {}
    for name, (path, data, words) in made.items():
        if data is not None:
            path.write_bytes(data)
        out[name] = (path, words)
    (root / "folder.mp4").mkdir()
    out["a folder"] = (root / "folder.mp4", "folder")
    return out


BAD = [
    "missing",
    "zero-byte",
    "a folder",
    "jpeg renamed",
    "png renamed",
    "text renamed",
    "zeros",
    "mp4 cut before its index",
    "mp4 corrupt header",
    "avi corrupt header",
    "unsupported codec",
]


@pytest.mark.parametrize("case", BAD)
def test_bad_files_raise_a_clear_typed_error(clips: dict[str, Path], tmp_path: Path, case: str) -> None:
    path, words = _bad_inputs(clips, tmp_path)[case]
    with pytest.raises(InvalidVideoError) as caught:
        open_video(path)
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert path.name in message and words in message, message
    assert "cv2" not in message and "Traceback" not in message
    if case == "unsupported codec" and HAVE_AV:
        assert "QQQQ" in message


@pytest.mark.parametrize(
    "case", ["jpeg renamed", "mp4 cut before its index", "avi corrupt header", "unsupported codec"]
)
def test_bad_files_without_pyav_still_get_a_clear_error(
    clips: dict[str, Path], tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(source, "_pyav", lambda: None)
    path, words = _bad_inputs(clips, tmp_path)[case]
    with pytest.raises(InvalidVideoError) as caught:
        open_video(path)
    assert path.name in str(caught.value) and words in str(caught.value), str(caught.value)
    if case == "unsupported codec":  # named from the file's header
        assert "QQQQ" in str(caught.value)
    with pytest.raises(InvalidArgumentError, match="pip install av"):
        open_video(clips["mp4"], backend="pyav")


def test_a_camera_that_is_not_there_is_a_stream_error() -> None:
    for camera in (63, "63"):
        with pytest.raises(StreamError, match="Camera 63"):
            open_video(camera)


@pytest.mark.parametrize(
    "options",
    [{"fps": 0}, {"fps": float("nan")}, {"queue_size": 0}, {"open_timeout": -1}, {"backend": "gstreamer"}],
)
def test_bad_options_are_refused(clips: dict[str, Path], options: dict) -> None:
    with pytest.raises(InvalidArgumentError):
        VideoSource(clips["mp4"], **options)


def test_bad_source_types_are_refused() -> None:
    with pytest.raises(InvalidArgumentError):
        VideoSource(b"clip.mp4")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        VideoSource(-1)


# --- live streams -----------------------------------------------------------------------------


class MJPEGServer:
    """multipart/x-mixed-replace JPEG frames on 127.0.0.1; each connection is a session that sends
    ``frames`` frames (then closes, or stalls with ``stall``)."""

    def __init__(self, frames: int = 20, interval: float = 1 / 60, stall: bool = False, port: int = 0) -> None:
        self.frames, self.interval, self.stall = frames, interval, stall
        self.sessions = 0
        self.release = threading.Event()
        self.server: http.server.ThreadingHTTPServer | None = None
        self.start(port)

    def start(self, port: int = 0) -> None:
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.sessions += 1
                session = outer.sessions
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    for i in range(outer.frames):
                        jpeg = cv2.imencode(".jpg", _picture(i, session))[1].tobytes()
                        head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
                        self.wfile.write(head + jpeg + b"\r\n")
                        self.wfile.flush()
                        time.sleep(outer.interval)
                    if outer.stall:
                        outer.release.wait(30)
                except OSError:
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def close(self) -> None:
        self.release.set()
        self.stop()


@pytest.fixture
def mjpeg() -> Iterator[type[MJPEGServer]]:
    made: list[MJPEGServer] = []

    def make(**options: object) -> MJPEGServer:
        server = MJPEGServer(**options)  # type: ignore[arg-type]
        made.append(server)
        return server

    yield make  # type: ignore[misc]
    for server in made:
        server.close()


@backends
def test_an_http_mjpeg_stream_is_live_with_times_since_open(mjpeg, backend: str) -> None:
    server = mjpeg(frames=30, interval=1 / 30)
    with open_video(server.url, reconnect=False, read_timeout=2, backend=backend) as video:
        info = video.info
        frames = list(video)
    assert info.live and info.fps is None and info.frames is None and info.codec in ("MJPG", "mjpeg")
    assert (info.width, info.height) == (W, H) and info.source == server.url
    assert [f.index for f in frames] == list(range(len(frames))) and len(frames) >= 28
    assert [_number(f.pixels) for f in frames] == [f.index for f in frames]
    times = [f.time for f in frames]
    assert times == sorted(times) and 0.5 < times[-1] - times[0] < 3  # wall clock, 30 frames at 30/s
    assert video.errors and "reconnect is off" in video.errors[0]


def test_a_consumer_behind_a_live_stream_drops_the_oldest(mjpeg) -> None:
    server = mjpeg(frames=60, interval=0.002)
    with open_video(server.url, reconnect=False, read_timeout=2, queue_size=2) as video:
        frames = []
        for frame in video:
            time.sleep(0.03)
            frames.append(frame)
    assert video.dropped > 0
    assert len(frames) + video.dropped == frames[-1].index + 1  # every decoded frame: delivered or dropped
    assert [f.index for f in frames] == sorted(f.index for f in frames)


def test_a_stream_that_stops_and_comes_back_is_reconnected(mjpeg) -> None:
    server = mjpeg(frames=15, interval=1 / 60)
    video = open_video(server.url, read_timeout=2, open_timeout=2)
    port = server.port
    frames: list[Frame] = []
    started = time.monotonic()
    for frame in video:
        frames.append(frame)
        if frame.index == 14:  # the first session's last frame: the server goes away for a while
            server.stop()
            threading.Timer(1.0, server.start, args=(port,)).start()
        if _session(frame.pixels) == 2 and len(frames) >= 20 or time.monotonic() - started > 15:
            break
    video.close()
    assert video.reconnects >= 1
    sessions = [_session(f.pixels) for f in frames]
    assert sessions[:15] == [1] * 15 and 2 in sessions  # nothing of the first session lost
    assert [f.index for f in frames] == list(range(len(frames)))
    assert frames[15].time - frames[14].time > 0.9  # the gap is in the times: they are wall-clock


def test_a_stalled_stream_is_detected_and_exhausted_reconnects_raise(mjpeg) -> None:
    server = mjpeg(frames=10, interval=1 / 60, stall=True)
    video = open_video(server.url, read_timeout=1, open_timeout=1, max_reconnects=1)
    frames: list[Frame] = []
    started = time.monotonic()
    with pytest.raises(StreamError, match="reconnect") as caught:
        for frame in video:
            frames.append(frame)
            if frame.index == 9 and server.sessions == 1:
                server.stop()  # the stall is noticed after read_timeout; the reconnect finds nobody
    elapsed = time.monotonic() - started
    assert len(frames) == 10 and server.port.__str__() in str(caught.value)
    assert elapsed < 8, elapsed
    assert video.reconnects == 0


@backends
def test_a_port_that_accepts_but_never_answers_is_a_stream_error_within_open_timeout(backend: str) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(listener.accept()[0])  # kept open, never answered
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        for url in (f"http://127.0.0.1:{port}/live", f"rtsp://admin:secret@127.0.0.1:{port}/cam"):
            started = time.monotonic()
            with pytest.raises(StreamError) as caught:
                open_video(url, open_timeout=1.0, backend=backend)
            assert 0.8 < time.monotonic() - started < 4
            assert str(port) in str(caught.value) and "open_timeout" in str(caught.value)
            assert "secret" not in str(caught.value)
    finally:
        for conn in accepted:
            conn.close()
        listener.close()


def test_closing_during_a_stall_returns_promptly(mjpeg) -> None:
    server = mjpeg(frames=5, interval=1 / 60, stall=True)
    video = open_video(server.url, read_timeout=20, open_timeout=2)
    for frame in video:
        if frame.index == 4:
            time.sleep(0.3)  # the decoder is now blocked reading the stalled stream
            started = time.monotonic()
            break
    assert time.monotonic() - started < 1.5


def test_a_file_served_over_http_is_read_as_a_file(clips: dict[str, Path]) -> None:
    directory = clips["avi"].parent

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(directory), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{clips['avi'].name}"
        with open_video(url, open_timeout=3, fps=10) as video:
            frames = list(video)
        assert not video.info.live and video.info.frames == N
        assert [f.index for f in frames] == list(range(0, N, 3))
        assert [f.time for f in frames] == pytest.approx([i / FPS for i in range(0, N, 3)], abs=1e-3)
    finally:
        server.shutdown()
        server.server_close()
