"""Frames in: video files, stream URLs (RTSP, HTTP MJPEG, ...) and webcams as upright RGB frames.

Decoding runs on its own thread into a bounded queue. A file never loses a frame (the decoder waits
for a slow consumer); a live source drops the oldest queued frame instead (counted in ``dropped``) and
reconnects with back-off when it stalls or drops (counted in ``reconnects``). Times are the
container's timestamps for files and seconds since open for live sources; ``fps=`` samples by time.

>>> from faceatlas.video.source import open_video
>>> with open_video("door.mp4", fps=5) as video:          # 5 frames per second of video
...     print(video.info.width, video.info.height, video.info.rotation)
...     for frame in video:                               # Frame(index, time, pixels RGB)
...         print(frame.index, round(frame.time, 3), frame.pixels.shape)

Bad input raises :class:`~faceatlas.errors.InvalidVideoError` (missing, empty, not a video,
corrupt, unsupported codec) or :class:`~faceatlas.errors.StreamError` (a URL that does not answer,
reconnects exhausted). A file damaged part-way yields the frames before the damage, then ends with a
warning logged and the problem listed in ``VideoSource.errors``.

OpenCV's ``VideoCapture`` (FFmpeg) does the work; PyAV (``pip install av``, optional) is used only
where OpenCV falls short: a file OpenCV's FFmpeg cannot open, and naming the codec or container fault
in the error when neither can.
"""

from __future__ import annotations

import logging
import math
import mmap
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Self

import numpy as np

from faceatlas._formats import NAMES, image_format
from faceatlas.errors import FaceAtlasError, InvalidArgumentError, InvalidVideoError, StreamError, VideoError

log = logging.getLogger(__name__)

# URL schemes of sources that play in real time (a stream, not a file to read at our own pace)
LIVE_SCHEMES = frozenset({"rtsp", "rtsps", "rtmp", "rtmps", "udp", "tcp", "srt", "rtp", "mms", "http", "https"})
BACKENDS = ("auto", "opencv", "pyav")
BACKOFF_START, BACKOFF_CAP = 0.5, 10.0  # seconds between reconnect attempts: doubling, capped
_MAX_ERRORS = 100
_TIME_SLACK = 5e-4  # container times are rounded to the millisecond: a step reached within this counts


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame: its number in the source (every decoded frame counts, sampled or not), its
    time in seconds (container timestamp for files, since open for live sources) and its pixels,
    ``(H, W, 3)`` uint8 RGB, upright, C-contiguous."""

    index: int
    time: float
    pixels: np.ndarray


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """What is known of a source after it opened. ``width``/``height`` are the size of the frames
    delivered: upright (rotation metadata applied) and, where the source is over ``max_pixels``,
    downscaled by ``scale`` (1.0 otherwise). ``fps``, ``frames`` and ``duration`` are None when
    unknown (live sources). ``rotation`` is the clockwise rotation (0/90/180/270) the container asked
    for and that was applied."""

    source: str
    width: int
    height: int
    fps: float | None
    frames: int | None
    duration: float | None
    codec: str
    rotation: int
    live: bool
    scale: float = 1.0
    backend: str = "opencv"


class _Reader(Protocol):
    """One opened capture, whichever library decodes it."""

    width: int  # upright, before any downscale
    height: int
    fps: float | None
    frames: int | None
    duration: float | None
    codec: str
    rotation: int

    def grab(self) -> bool: ...  # decode the next frame (cheap to skip: no colour conversion)
    def time(self) -> float | None: ...  # container time of the frame grabbed, seconds
    def retrieve(self, size: tuple[int, int] | None) -> np.ndarray | None: ...  # RGB upright, resized
    def release(self) -> None: ...


# --- OpenCV ------------------------------------------------------------------------------------


def _fourcc_name(value: float) -> str:
    code = int(value) & 0xFFFFFFFF
    text = code.to_bytes(4, "little").decode("latin-1").strip("\0 ")
    return text if code and text.isprintable() else "unknown"


def _positive(value: float) -> float | None:
    return value if math.isfinite(value) and 0 < value < 1e9 else None


class _OpenCVReader:
    def __init__(self, capture: Any) -> None:
        import cv2

        self._cv2, self._capture = cv2, capture
        get = capture.get
        self.width, self.height = int(get(cv2.CAP_PROP_FRAME_WIDTH)), int(get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.fps = _positive(get(cv2.CAP_PROP_FPS))
        count = _positive(get(cv2.CAP_PROP_FRAME_COUNT))
        self.frames = int(count) if count else None
        self.duration = self.frames / self.fps if self.frames and self.fps else None
        self.codec = _fourcc_name(get(cv2.CAP_PROP_FOURCC))
        # OpenCV applies the container's rotation itself (CAP_PROP_ORIENTATION_AUTO, on by default)
        # and reports the upright size; this is only the record of what it applied
        meta = get(cv2.CAP_PROP_ORIENTATION_META)
        self.rotation = int(meta) % 360 if math.isfinite(meta) else 0

    @classmethod
    def open(cls, target: str | int, open_timeout: float, read_timeout: float) -> _OpenCVReader | None:
        import cv2

        if isinstance(target, int):  # a webcam: FFmpeg cannot open those, the platform's backend can
            capture = cv2.VideoCapture(target)
        else:
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                max(1, round(open_timeout * 1000)),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                max(1, round(read_timeout * 1000)),
            ]
            capture = cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
        if not capture.isOpened():
            capture.release()
            return None
        return cls(capture)

    def grab(self) -> bool:
        return bool(self._capture.grab())

    def measure(self) -> None:
        """Take the upright size from the frame grabbed (older OpenCV reports the coded size)."""
        ok, bgr = self._capture.retrieve()
        if ok and bgr is not None and bgr.ndim == 3:
            self.height, self.width = bgr.shape[:2]

    def time(self) -> float | None:
        msec = self._capture.get(self._cv2.CAP_PROP_POS_MSEC)
        return msec / 1000.0 if math.isfinite(msec) and msec >= 0 else None

    def retrieve(self, size: tuple[int, int] | None) -> np.ndarray | None:
        cv2 = self._cv2
        ok, bgr = self._capture.retrieve()
        if not ok or bgr is None or bgr.ndim != 3:
            return None
        if size is not None:
            bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))

    def release(self) -> None:
        self._capture.release()


# --- PyAV (optional) ---------------------------------------------------------------------------


def _pyav() -> Any | None:
    try:
        import av
    except ImportError:
        return None
    return av


class _PyAVReader:
    """A file or URL through PyAV's own FFmpeg, for what OpenCV's cannot open."""

    def __init__(self, target: str, open_timeout: float, read_timeout: float, label: str) -> None:
        av = _pyav()
        if av is None:
            raise InvalidArgumentError("backend='pyav' needs PyAV: pip install av (or use backend='opencv').")
        self._container = av.open(target, timeout=(open_timeout, read_timeout))
        try:
            streams = self._container.streams.video
            if not streams:
                raise InvalidVideoError(
                    f"{label} holds no video stream FFmpeg can find: its header is corrupt, or it is audio "
                    "only. Re-copy it, or check it with ffprobe."
                )
            stream = streams[0]
            if stream.codec_context is None:
                raise _NoDecoder()
            stream.thread_type = "AUTO"
            self._frames = self._container.decode(stream)
            self._frame: Any = None
            self._peeked = self.grab()  # the first frame carries the rotation
            if not self._peeked:
                raise InvalidVideoError(
                    f"{label} has a video stream but no frame could be decoded (corrupt, or truncated before "
                    "its first frame). Re-copy it, or check it with ffprobe."
                )
        except BaseException:
            self._container.close()
            raise
        ctx = stream.codec_context
        self.codec = str(ctx.name)
        self.rotation = int(-(getattr(self._frame, "rotation", 0) or 0)) % 360  # PyAV: counter-clockwise
        self._turns = (4 - self.rotation // 90) % 4  # np.rot90 turns counter-clockwise
        w, h = int(ctx.width), int(ctx.height)
        self.width, self.height = (h, w) if self.rotation in (90, 270) else (w, h)
        rate = stream.average_rate or stream.guessed_rate
        self.fps = _positive(float(rate)) if rate else None
        self.frames = int(stream.frames) if stream.frames else None
        self.duration = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None
        if self.duration is None and self._container.duration:
            self.duration = self._container.duration / 1_000_000

    def grab(self) -> bool:
        if getattr(self, "_peeked", False):
            self._peeked = False
            return True
        try:
            self._frame = next(self._frames)
        except StopIteration:
            return False
        except Exception as exc:  # noqa: BLE001 - a damaged packet PyAV cannot get past: the end
            log.debug("PyAV stopped decoding: %s", exc)
            return False
        return True

    def time(self) -> float | None:
        t = self._frame.time if self._frame is not None else None
        return float(t) if t is not None and t >= 0 else None

    def retrieve(self, size: tuple[int, int] | None) -> np.ndarray | None:
        rgb = self._frame.to_ndarray(format="rgb24")
        if self._turns:
            rgb = np.rot90(rgb, self._turns)
        if size is not None:
            import cv2

            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(rgb)

    def release(self) -> None:
        self._container.close()


class _NoDecoder(Exception):
    """PyAV found a video stream whose codec its FFmpeg cannot decode."""


# --- what is wrong with a file neither library opens --------------------------------------------


def _sniff_image(head: bytes) -> str | None:
    """The still image the bytes announce, named for a message; GIF passes (FFmpeg plays an animated one)."""
    kind = image_format(head)
    return None if kind is None or kind == "gif" else NAMES[kind]


def _is_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\r\n\t" for c in text)


def _declared_codec(path: Path) -> str | None:
    """The codec an AVI or MP4/MOV header declares (its fourcc), read from the bytes."""
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        at = data.find(b"strh")  # AVI: 'strh', its size, 'vids', the codec's fourcc
        if at >= 0 and data[at + 8 : at + 12] == b"vids":
            return data[at + 12 : at + 16].decode("latin-1")
        at = data.find(b"stsd")
        if at >= 0:
            return data[at + 16 : at + 20].decode("latin-1")
    return None


def _has_atom(path: Path, atom: bytes) -> bool:
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return data.find(atom) >= 0


def _unopenable_file(path: Path, label: str) -> InvalidVideoError:
    """Why OpenCV's FFmpeg (and PyAV's, if installed) could not open this existing file."""
    with path.open("rb") as f:
        head = f.read(64)
    if not head.strip(b"\0"):
        return InvalidVideoError(f"{label} holds only zero bytes: not a video. Re-copy or re-download it.")
    image = _sniff_image(head)
    if image:
        return InvalidVideoError(
            f"{label} is {image}, not a video. Read it with faceatlas.load_image() or pass a video file."
        )
    if _is_text(head):
        return InvalidVideoError(f"{label} is a text file, not a video ({head[:24]!r}...). Pass a video file.")
    if head[4:8] == b"ftyp" and not _has_atom(path, b"moov"):
        return InvalidVideoError(
            f"{label} is an MP4/MOV without its index (no 'moov' atom): the file was cut before it "
            "was finished (an interrupted recording, copy or download). Re-copy it, or recover it "
            "with a repair tool such as untrunc."
        )
    codec = _declared_codec(path)
    av = _pyav()
    if av is not None:
        try:
            _PyAVReader(str(path), 10.0, 10.0, label).release()
        except _NoDecoder:
            return InvalidVideoError(
                f"{label} is a video in a codec this FFmpeg build cannot decode"
                f"{f' ({codec!r})' if codec else ''}. Convert it, e.g. ffmpeg -i INPUT -c:v libx264 out.mp4."
            )
        except InvalidVideoError as exc:
            return exc
        except Exception as exc:  # noqa: BLE001 - whatever PyAV says is the diagnosis
            return InvalidVideoError(
                f"{label} could not be read as a video: {exc}. It is corrupt, not a video, or "
                "truncated; re-copy it, or check it with ffprobe."
            )
    hint = f" (its header names codec {codec!r})" if codec and codec.isprintable() else ""
    return InvalidVideoError(
        f"{label} could not be opened as a video{hint}: it is corrupt, not a video, or in a codec this "
        "OpenCV/FFmpeg build cannot decode. Check it with ffprobe; convert it, e.g. "
        "ffmpeg -i INPUT -c:v libx264 out.mp4; `pip install av` lets faceatlas name the fault."
    )


# --- the source ----------------------------------------------------------------------------------


def _scheme(target: str | int) -> str:
    return str(target).partition("://")[0].lower()


def _is_url(text: str) -> bool:
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.isascii() and scheme.replace("+", "").isalnum()


def _redact(url: str) -> str:
    """A URL without its password, to print (rtsp://user:secret@cam/ -> rtsp://user:***@cam/)."""
    scheme, _, rest = url.partition("://")
    auth, at, host = rest.partition("@")
    if at and "/" not in auth and ":" in auth:
        return f"{scheme}://{auth.split(':', 1)[0]}:***@{host}"
    return url


@dataclass(frozen=True, slots=True)
class _End:
    error: BaseException | None = None


def _scaled_size(width: int, height: int, max_pixels: int) -> tuple[tuple[int, int] | None, float]:
    """The (w, h) to resize frames to so they hold at most ``max_pixels``, and the scale; None = as is."""
    if width * height <= max_pixels:
        return None, 1.0
    scale = math.sqrt(max_pixels / (width * height))
    size = (max(1, int(width * scale)), max(1, int(height * scale)))
    return size, size[0] / width


class VideoSource:
    """A video file, stream URL or webcam index, opened, as an iterable of :class:`Frame`.

    The constructor opens the source and decodes its first frame (so a bad file fails here, with
    :class:`~faceatlas.errors.InvalidVideoError`, and a URL that does not answer within
    ``open_timeout`` with :class:`~faceatlas.errors.StreamError`); ``info`` says what it is. Iterate it
    once; stopping early (``break``) or ``close()`` stops the decoder thread. Use it as a context
    manager.

    ``fps`` samples by time: a frame is delivered when its time reaches the next ``1/fps`` step from
    the first frame (frames in between are decoded but not converted). ``live`` (None = guess from a
    stream URL scheme or a webcam index; an HTTP URL of a file with a known length counts as a file):
    live sources drop the oldest queued frame when the consumer is behind (``dropped``), get their
    times from a monotonic clock since open, and, with ``reconnect``, reopen after a stall (no frame
    for ``read_timeout`` s) or a drop, waiting 0.5 s doubling to 10 s between attempts;
    ``max_reconnects`` failed attempts in a row (None = no limit, until ``close()``) end the
    iteration with a :class:`~faceatlas.errors.StreamError` after the frames already read.
    Successful reconnects are counted in ``reconnects``. Frames over ``max_pixels`` are downscaled
    (``info.scale``). ``backend``: ``"opencv"``, ``"pyav"`` (needs ``pip install av``) or ``"auto"``
    (OpenCV, PyAV for a file OpenCV's FFmpeg cannot open).
    """

    info: VideoInfo
    dropped: int
    reconnects: int
    errors: list[str]

    def __init__(
        self,
        source: str | int | os.PathLike[str],
        *,
        fps: float | None = None,
        queue_size: int = 8,
        live: bool | None = None,
        reconnect: bool = True,
        open_timeout: float = 10.0,
        read_timeout: float = 10.0,
        max_reconnects: int | None = None,
        max_pixels: int = 3840 * 2160,
        backend: str = "auto",
    ) -> None:
        _check_options(fps, queue_size, open_timeout, read_timeout, max_reconnects, max_pixels, backend)
        self.dropped = self.reconnects = 0
        self.errors = []
        self._fps, self._reconnect, self._max_reconnects = fps, reconnect, max_reconnects
        self._open_timeout, self._read_timeout, self._backend = open_timeout, read_timeout, backend
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._iterated = False
        self._target, label, is_url = _target(source)
        self._label = label  # for messages: quoted, a URL's password hidden
        self._name = _redact(str(self._target)) if is_url else str(self._target)
        guessed = isinstance(self._target, int) or (is_url and _scheme(self._target) in LIVE_SCHEMES)
        self._live = guessed if live is None else live
        self._queue: queue.Queue[Frame | _End] = queue.Queue(maxsize=queue_size)
        self._opened_at = time.monotonic()
        reader, used = self._open_first(is_url)
        if live is None and is_url and _scheme(self._target) in ("http", "https") and reader.frames:
            self._live = False  # a file served over HTTP (it has a length), not a stream
        self._reader: _Reader | None = reader
        if not reader.grab():
            reader.release()
            if self._live or is_url:
                raise StreamError(
                    f"{label} opened but sent no frame within read_timeout={read_timeout:g} s. Check that the "
                    "camera or stream is sending video, or raise read_timeout."
                )
            raise InvalidVideoError(
                f"{label} opened as a video but no frame could be decoded (corrupt, or truncated before its "
                "first frame). Re-copy it, or check it with ffprobe."
            )
        if isinstance(reader, _OpenCVReader):
            reader.measure()
        self._pending = True  # the first frame is grabbed, not yet delivered
        self._grabbed_at = time.monotonic()
        self._size, scale = _scaled_size(reader.width, reader.height, max_pixels)
        width, height = self._size or (reader.width, reader.height)
        self.info = VideoInfo(
            source=self._name,
            width=width,
            height=height,
            fps=None if self._live else reader.fps,
            frames=None if self._live else reader.frames,
            duration=None if self._live else reader.duration,
            codec=reader.codec,
            rotation=reader.rotation,
            live=self._live,
            scale=scale,
            backend=used,
        )
        if self._size:
            log.info(
                "%s: %dx%d frames downscaled to %dx%d (max_pixels)", label, reader.width, reader.height, *self._size
            )

    # --- opening -----------------------------------------------------------------------------

    def _open_reader(self) -> tuple[_Reader | None, str]:
        if self._backend == "pyav" and not isinstance(self._target, int):  # PyAV opens no webcams here
            try:
                return _PyAVReader(self._target, self._open_timeout, self._read_timeout, self._label), "pyav"
            except FaceAtlasError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure to open is "cannot open"
                log.debug("PyAV could not open %s: %s", self._label, exc)
                return None, "pyav"
        return _OpenCVReader.open(self._target, self._open_timeout, self._read_timeout), "opencv"

    def _open_first(self, is_url: bool) -> tuple[_Reader, str]:
        reader, used = self._open_reader()
        if reader is not None:
            return reader, used
        if isinstance(self._target, int):
            raise StreamError(
                f"Camera {self._target} could not be opened. Check that it is connected, not in use by "
                "another program, and that this user may read it (e.g. the video group on Linux)."
            )
        if is_url:
            raise StreamError(
                f"{self._label} did not answer with a video within open_timeout={self._open_timeout:g} s. "
                "Check the URL, credentials and network, or raise open_timeout."
            )
        path = Path(self._target)
        if self._backend == "auto" and _pyav() is not None:
            try:  # PyAV's own FFmpeg may hold a demuxer or decoder OpenCV's lacks
                return _PyAVReader(self._target, self._open_timeout, self._read_timeout, self._label), "pyav"
            except Exception as exc:  # noqa: BLE001 - the diagnosis below says why
                log.debug("PyAV could not open %s either: %s", self._label, exc)
        raise _unopenable_file(path, self._label)

    # --- iteration ---------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Frame]:
        with self._lock:
            if self._iterated:
                raise VideoError(f"{self._label} is already being read or was read: open it again to re-read it.")
            self._iterated = True
            if self._reader is None:
                raise VideoError(f"{self._label} was closed: open it again to read it.")
            self._thread = threading.Thread(target=self._run, name=f"faceatlas-video {self._label}", daemon=True)
            self._thread.start()
        try:
            while True:
                try:
                    item = self._queue.get(timeout=0.1)
                except queue.Empty:
                    if self._stop.is_set():  # close() from another thread
                        return
                    continue
                if isinstance(item, _End):
                    if item.error is not None:
                        raise item.error
                    return
                yield item
        finally:
            self.close()

    def _run(self) -> None:
        end = _End()
        try:
            self._decode()
        except (FaceAtlasError, MemoryError) as exc:  # handed to the consumer, raised there
            end = _End(exc)
        except Exception as exc:  # noqa: BLE001 - a decoder's own error, never shown raw
            wrapped = VideoError(
                f"{self._label}: decoding failed ({type(exc).__name__}: {exc}). Frames read before were delivered."
            )
            wrapped.__cause__ = exc
            end = _End(wrapped)
        finally:
            with self._lock:
                reader, self._reader = self._reader, None
            if reader is not None:
                reader.release()
        self._put(end, final=True)

    def _decode(self) -> None:
        step = 1.0 / self._fps if self._fps else None
        index, start, steps, last = -1, None, 0, 0.0
        while not self._stop.is_set():
            if self._pending:
                self._pending = False
            elif not self._next(index + 1):
                return
            index += 1
            last = self._frame_time(index, last)
            if step is not None:
                if start is None:
                    start = last
                if last + _TIME_SLACK < start + steps * step:
                    continue  # between two sample times: decoded, never converted
                steps = math.floor((last - start + _TIME_SLACK) / step) + 1  # no drift: steps from the start
            reader = self._reader
            pixels = reader.retrieve(self._size) if reader is not None else None
            if pixels is None:
                self._note(f"frame {index} could not be converted (damaged); skipped")
                continue
            self._put(Frame(index, last, pixels))

    def _frame_time(self, index: int, last: float) -> float:
        if self._live:
            return self._grabbed_at - self._opened_at
        t = self._reader.time() if self._reader is not None else None
        if t is None:  # no usable timestamp: from the frame rate, else that of the frame before
            t = index / self.info.fps if self.info.fps else last
        return max(t, last) if index else t  # damaged timestamps never run backwards

    def _next(self, read: int) -> bool:
        """Grab the next frame (``read`` grabbed so far); at a live source's stall or drop,
        reconnect. False = the end."""
        reader = self._reader
        if reader is not None and reader.grab():
            self._grabbed_at = time.monotonic()
            return True
        if self._stop.is_set():
            return False
        if not self._live:
            self._check_complete(read)
            return False
        return self._reconnect_live()

    def _check_complete(self, read: int) -> None:
        expected = self.info.frames
        # OpenCV's count is an estimate for some containers (duration x rate): allow a little
        if expected and expected - read > max(2, expected // 500):
            self._note(
                f"ended after {read} of {expected} frames: the file is truncated or damaged from there on "
                "(the frames before were read)"
            )

    def _reconnect_live(self) -> bool:
        if not self._reconnect:
            self._note("the stream stopped sending frames (stalled or closed); reconnect is off")
            return False
        with self._lock:
            reader, self._reader = self._reader, None
        if reader is not None:
            reader.release()
        log.warning("%s: stream stalled or dropped; reconnecting", self._label)
        delay, attempts = BACKOFF_START, 0
        while True:
            if self._max_reconnects is not None and attempts >= self._max_reconnects:
                raise StreamError(
                    f"{self._label} dropped and {attempts} reconnect attempt(s) failed (max_reconnects="
                    f"{self._max_reconnects}). Frames read before the drop were delivered. Check the camera "
                    "or stream, or allow more reconnects."
                )
            if self._stop.wait(delay):
                return False
            attempts += 1
            fresh, _ = self._open_reader()
            if fresh is not None:
                with self._lock:
                    if self._stop.is_set():
                        fresh.release()
                        return False
                    self._reader = fresh
                if fresh.grab():
                    self._grabbed_at = time.monotonic()
                    self.reconnects += 1
                    log.info("%s: reconnected after %d attempt(s)", self._label, attempts)
                    return True
                fresh.release()
                with self._lock:
                    self._reader = None
            delay = min(delay * 2, BACKOFF_CAP)

    def _put(self, item: Frame | _End, final: bool = False) -> None:
        if self._live and not final:
            while not self._stop.is_set():
                try:
                    self._queue.put_nowait(item)
                    return
                except queue.Full:
                    try:
                        self._queue.get_nowait()  # the consumer is behind: the oldest frame goes
                        self.dropped += 1
                    except queue.Empty:
                        pass
            return
        while True:  # files (and the end) wait for the consumer; after close() nobody reads
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                if self._stop.is_set():
                    return

    def _note(self, problem: str) -> None:
        if len(self.errors) < _MAX_ERRORS:  # a badly damaged file must not fill memory with notes
            self.errors.append(problem)
            log.warning("%s: %s", self._label, problem)
        elif len(self.errors) == _MAX_ERRORS:
            self.errors.append("more problems followed (not listed)")

    # --- closing -----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop decoding and release the capture; idempotent. A live source blocked in a read stops
        within ``read_timeout`` at most; close() waits for that only briefly."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            deadline = time.monotonic() + 1.0  # a read blocked on a stalled stream ends by itself later
            while thread.is_alive() and time.monotonic() < deadline:
                self._drain()
                thread.join(0.05)
            self._drain()
        with self._lock:
            reader = None
            if self._thread is None or not self._thread.is_alive():
                reader, self._reader = self._reader, None
        if reader is not None:  # never iterated, or the thread is gone: nobody else holds it
            reader.release()

    def _drain(self) -> None:
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VideoSource({self._label}, live={self._live})"


def _target(source: str | int | os.PathLike[str]) -> tuple[str | int, str, bool]:
    """What to hand the capture, how to name it in messages, and whether it is a URL."""
    if isinstance(source, bool) or not isinstance(source, (str, int, os.PathLike)):
        raise InvalidArgumentError(
            f"source must be a file path, a URL or a webcam index (int), got {type(source).__name__}."
        )
    if isinstance(source, int):
        if source < 0:
            raise InvalidArgumentError(f"webcam index must be >= 0, got {source}.")
        return source, f"camera {source}", False
    text = os.fspath(source)
    if not isinstance(text, str):
        raise InvalidArgumentError("source path must be text, not bytes.")
    if _is_url(text):
        return text, repr(_redact(text)), True
    path = Path(text)
    if text.isdigit() and not path.exists():  # "0" from a command line: a webcam
        return int(text), f"camera {text}", False
    label = repr(text)
    if path.is_dir():
        raise InvalidVideoError(f"{label} is a folder, not a video file. Pass one video file.")
    if not path.exists():
        raise InvalidVideoError(
            f"Video file {label} does not exist (working directory: {os.getcwd()!r}). Check the path and spelling."
        )
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InvalidVideoError(f"Video file {label} cannot be read: {exc}. Check its permissions.") from exc
    if size == 0:
        raise InvalidVideoError(f"{label} is an empty (0-byte) file, not a video. Re-copy or re-download it.")
    if not os.access(path, os.R_OK):
        raise InvalidVideoError(f"Video file {label} is not readable by this user. Check its permissions.")
    with path.open("rb") as f:
        head = f.read(16)
    image = _sniff_image(head)
    if image:  # FFmpeg would read a still image as a one-frame video
        raise InvalidVideoError(
            f"{label} is {image}, not a video. Read it with faceatlas.load_image() or pass a video file."
        )
    return text, label, False


def _check_options(
    fps: float | None,
    queue_size: int,
    open_timeout: float,
    read_timeout: float,
    max_reconnects: int | None,
    max_pixels: int,
    backend: str,
) -> None:
    if fps is not None and not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise InvalidArgumentError(f"fps must be a positive number of frames per second or None, got {fps!r}.")
    if not isinstance(queue_size, int) or queue_size < 1:
        raise InvalidArgumentError(f"queue_size must be an int >= 1, got {queue_size!r}.")
    for name, value in (("open_timeout", open_timeout), ("read_timeout", read_timeout)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise InvalidArgumentError(f"{name} must be a positive number of seconds, got {value!r}.")
    if max_reconnects is not None and (not isinstance(max_reconnects, int) or max_reconnects < 0):
        raise InvalidArgumentError(f"max_reconnects must be an int >= 0 or None (no limit), got {max_reconnects!r}.")
    if not isinstance(max_pixels, int) or max_pixels < 1:
        raise InvalidArgumentError(f"max_pixels must be an int >= 1, got {max_pixels!r}.")
    if backend not in BACKENDS:
        raise InvalidArgumentError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}.")
    if backend == "pyav" and _pyav() is None:
        raise InvalidArgumentError("backend='pyav' needs PyAV: pip install av (or use backend='auto').")


def open_video(source: str | int | os.PathLike[str], **options: Any) -> VideoSource:
    """Open a video file, stream URL or webcam index: ``VideoSource(source, **options)``."""
    return VideoSource(source, **options)
