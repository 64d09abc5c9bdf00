"""Live video streams for the service: one worker thread per camera URL, tracks as events.

A ``StreamManager`` runs at most ``max_streams`` streams. Each ``Stream`` has its own daemon
thread (not the serial job queue: a stream never ends by itself) that opens the URL, feeds every
frame to a ``VideoTracker`` and publishes what it decides as events:

- **Events** (``person_seen``, ``unknown_person``, ``track_started``, ``track_closed``, and
  ``stream_state`` when the connection changes) get increasing ids and go into a bounded ring of
  recent events (``EventLog``), so a client that reconnects with ``Last-Event-ID`` misses nothing
  that is still in the ring, and learns how many it missed otherwise.
- **Subscribers never slow the worker.** Each server-sent-events client has a bounded queue; a
  slow one loses its oldest events (and is told how many) instead of blocking the worker or growing
  memory. Publishing wakes the client's event loop; it never waits for it.
- **Reconnect with back-off.** A URL that does not answer, a stream that drops or stalls: the
  worker reopens it after 0.5, 1, 2, ... s (at most ``backoff_max``), counting reconnects and
  keeping the last error visible; ``max_reconnects`` consecutive failures end it as ``failed``.
  Times keep increasing across reconnects (the tracker sees one timeline), and an outage longer
  than ``flush_after`` seconds closes the open tracks, so no track waits for a camera forever.
- **Closed tracks are never lost**: stopping a stream (``DELETE``), a failure and a long outage
  all flush the open tracks as ``track_closed`` events before anything else happens.
- **Webhook** (optional): every event also goes to a URL, POSTed as JSON from the stream's own
  sender thread with a bounded queue and retries with back-off; its failures are counted in the
  stream's state. Redirects are not followed.

The tracker and the source are factories (``make_tracker``, ``open_source``), so tests drive the
whole machinery with stand-ins; the service passes ``VideoTracker`` on its own models (their
analysis threads, shared with requests) and gallery (searched under its lock): ``service_tracker``.
``clip_job`` is the job an uploaded clip (``POST /v1/videos``) runs on the service's job queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fnmatch
import json
import logging
import os
import secrets
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

from faceatlas.errors import FaceAtlasError, InvalidArgumentError

log = logging.getLogger("faceatlas.server")

StreamState = Literal["connecting", "running", "reconnecting", "stopped", "failed"]
TRACK_EVENTS: tuple[str, ...] = ("track_started", "person_seen", "unknown_person", "track_closed")
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "srt")  # never file paths or file://
RECENT_EVENTS = 20  # events shown in a stream's state
FINISHED_KEPT = 20  # stopped or failed streams still listed (oldest forgotten first)
KEEPALIVE_SECONDS = 15.0  # an SSE comment this often keeps proxies from closing an idle connection
INTERNAL_ERROR = "internal error (see the server log)"
STOP_GRACE = 1.0  # seconds a stopping worker gets to notice by itself before its source is closed under it


class TooManyStreamsError(FaceAtlasError):
    """``max_streams`` streams already run."""


class TooManySubscribersError(FaceAtlasError):
    """A stream already has its most event subscribers."""


class StreamNotFoundError(FaceAtlasError, LookupError):
    """No stream with that id (or it was stopped and forgotten)."""


class TrackerFactory(Protocol):
    """Makes a tracker for one stream or clip (the service: ``VideoTracker`` on its models and gallery)."""

    def __call__(self, *, fpir: float | None, detect_every: int, source: str) -> TrackerLike: ...


class TrackerLike(Protocol):
    """What a stream needs of a tracker (``faceatlas.video.tracking.VideoTracker``)."""

    def feed(self, frame: Any) -> list[Any]: ...

    def finish(self) -> list[Any]: ...


class SourceLike(Protocol):
    """What a stream needs of an opened source (``faceatlas.video.source.VideoSource``)."""

    def __iter__(self) -> Iterator[Any]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class StreamOptions:
    """What a client asked for a stream."""

    url: str
    fps: float | None = 5.0
    detect_every: int = 1
    fpir: float | None = None
    webhook: str | None = None
    events: tuple[str, ...] = TRACK_EVENTS
    max_reconnects: int | None = None  # consecutive failures before giving up; None = retry forever


def check_url(url: str, schemes: Iterable[str], what: str, hosts: Sequence[str] = ("*",)) -> str:
    """``url`` if it is an absolute URL of one of ``schemes`` with a host that one of the ``hosts``
    patterns allows (``FACEATLAS_STREAM_HOSTS``), else a clear error: a write key must not make the
    service connect wherever it likes."""
    schemes = tuple(schemes)
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        host, parts = None, None
    if parts is None or parts.scheme.lower() not in schemes or not host:
        raise InvalidArgumentError(
            f"{what} must be a URL of scheme {', '.join(schemes)} with a host (e.g. rtsp://camera.local/stream1 "
            f"or http://hooks.local/faces); got {redact(url)!r}"
        )
    if not any(fnmatch.fnmatchcase(host.lower(), pattern.lower()) for pattern in hosts):
        raise InvalidArgumentError(
            f"{what} names host {host!r}, which the service may not connect to: allowed are "
            f"{list(hosts) or 'none'} (FACEATLAS_STREAM_HOSTS)"
        )
    return url


def redact(url: str) -> str:
    """The URL without a password (cameras' URLs often carry one): for state, events and logs."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "<unparseable URL>"


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _one_line(text: str, limit: int = 500) -> str:
    line = " | ".join(part.strip() for part in str(text).splitlines() if part.strip())
    return line if len(line) <= limit else line[: limit - 1] + "…"


# --- events and their subscribers ----------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One published event: ``id`` orders a stream's events (1, 2, ...); ``data`` is its JSON body."""

    id: int
    kind: str
    data: dict[str, Any]

    def sse(self) -> str:
        """The event as server-sent events carry it."""
        return f"id: {self.id}\nevent: {self.kind}\ndata: {json.dumps(self.data, separators=(',', ':'))}\n\n"


class Subscriber:
    """One client's bounded queue of events; woken on its own event loop, never waited for."""

    def __init__(self, log_: EventLog, loop: asyncio.AbstractEventLoop | None, limit: int) -> None:
        self._log = log_
        self._loop = loop
        self._limit = limit
        self._queue: deque[Event] = deque()
        self._lost = 0
        self._closed = False
        self._wake = asyncio.Event() if loop is not None else None
        self._sync_wake = threading.Event()  # for clients that are not on an event loop (tests, webhooks)

    # called with the log's lock held
    def _put(self, event: Event) -> None:
        if len(self._queue) >= self._limit:
            self._queue.popleft()
            self._lost += 1
        self._queue.append(event)
        self._notify()

    def _close(self) -> None:
        self._closed = True
        self._notify()

    def _notify(self) -> None:
        self._sync_wake.set()
        if self._loop is not None and self._wake is not None:
            with contextlib.suppress(RuntimeError):  # the client's loop is gone: it will not read again
                self._loop.call_soon_threadsafe(self._wake.set)

    def drain(self) -> tuple[list[Event], int, bool]:
        """(events queued, how many were lost before them, whether the stream has ended)."""
        with self._log._lock:
            events, lost = list(self._queue), self._lost
            self._queue.clear()
            self._lost = 0
            self._sync_wake.clear()
            if self._wake is not None:
                self._wake.clear()
            return events, lost, self._closed

    async def wait(self, timeout: float) -> bool:
        """Wait (on the client's loop) for something to drain; False on timeout."""
        if self._wake is None:
            raise RuntimeError("this subscriber was not made for an event loop")
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def wait_sync(self, timeout: float) -> bool:
        return self._sync_wake.wait(timeout)

    def close(self) -> None:
        """Stop receiving (the client went away)."""
        self._log.unsubscribe(self)


class EventLog:
    """A stream's events: ids, a ring of the recent ones, and the subscribers they fan out to."""

    def __init__(self, ring_size: int = 1000, subscriber_queue: int = 256, max_subscribers: int = 16) -> None:
        self._lock = threading.Lock()
        self._ring: deque[Event] = deque(maxlen=ring_size)
        self._subscribers: list[Subscriber] = []
        self._next_id = 1
        self._closed = False
        self.subscriber_queue = subscriber_queue
        self.max_subscribers = max_subscribers

    def publish(self, kind: str, data: dict[str, Any]) -> Event:
        with self._lock:
            event = Event(self._next_id, kind, {"id": self._next_id, **data, "kind": kind})
            self._next_id += 1
            self._ring.append(event)
            for subscriber in self._subscribers:
                subscriber._put(event)
            return event

    def subscribe(self, loop: asyncio.AbstractEventLoop | None = None, last_id: int | None = None) -> Subscriber:
        """A new subscriber; with ``last_id`` (a client resuming), first the ring's events after it,
        and the count of those after it that the ring no longer holds."""
        with self._lock:
            if len(self._subscribers) >= self.max_subscribers and not self._closed:
                raise TooManySubscribersError(
                    f"this stream already has {len(self._subscribers)} event subscribers (at most "
                    f"{self.max_subscribers}); close one, or share one connection"
                )
            subscriber = Subscriber(self, loop, self.subscriber_queue)
            if last_id is not None:
                replay = [event for event in self._ring if event.id > last_id]
                first = replay[0].id if replay else self._next_id
                subscriber._lost = max(0, first - last_id - 1)
                for event in replay:
                    subscriber._put(event)
            if self._closed:
                subscriber._close()
            else:
                self._subscribers.append(subscriber)
            return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

    def close(self) -> None:
        """The stream ended: every subscriber gets what is queued, then the end."""
        with self._lock:
            self._closed = True
            for subscriber in self._subscribers:
                subscriber._close()
            self._subscribers.clear()

    def recent(self, n: int = RECENT_EVENTS) -> list[Event]:
        with self._lock:
            return list(self._ring)[-n:]

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subscribers)

    @property
    def published(self) -> int:
        with self._lock:
            return self._next_id - 1


# --- the webhook -------------------------------------------------------------------------------------


def post_json(url: str, body: bytes, timeout: float) -> None:
    """POST ``body`` (JSON) to ``url``; any status but 2xx, a redirect included, is an error."""
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", "User-Agent": "faceatlas"}
    )
    opener = urllib.request.build_opener(_NoRedirect)
    with opener.open(request, timeout=timeout) as response:  # the scheme is checked: http or https
        status = response.status
    if not 200 <= status < 300:
        raise OSError(f"the webhook answered HTTP {status}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx becomes an HTTPError: the webhook must answer where it was configured


class WebhookSender:
    """POSTs events to one URL from its own thread: a bounded queue (the oldest event is dropped
    when the receiver is slower than the stream), ``attempts`` tries per event with back-off."""

    def __init__(
        self,
        url: str,
        *,
        name: str = "webhook",
        queue_size: int = 256,
        attempts: int = 4,
        backoff: float = 0.5,
        timeout: float = 5.0,
        post: Callable[[str, bytes, float], None] = post_json,
    ) -> None:
        self.url = url
        self._queue: deque[dict[str, Any]] = deque()
        self._queue_size = queue_size
        self._attempts, self._backoff, self._timeout, self._post = attempts, backoff, timeout, post
        self._cond = threading.Condition()
        self._closing = False
        self._deadline: float | None = None
        self.sent = self.failed = self.dropped = self.errors = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._work, name=f"faceatlas-{name}", daemon=True)
        self._thread.start()

    def submit(self, data: dict[str, Any]) -> None:
        with self._cond:
            if self._closing:
                return
            if len(self._queue) >= self._queue_size:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(data)
            self._cond.notify_all()

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued for at most ``timeout`` seconds, then stop the thread."""
        with self._cond:
            self._closing = True
            self._deadline = time.monotonic() + timeout
            self._cond.notify_all()
        self._thread.join(timeout + self._timeout + 1)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stats(self) -> dict[str, Any]:
        with self._cond:
            return {
                "url": redact(self.url),
                "sent": self.sent,
                "failed": self.failed,
                "dropped": self.dropped,
                "errors": self.errors,
                "pending": len(self._queue),
                "last_error": self.last_error,
            }

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue or self._past_deadline():
                    self.dropped += len(self._queue)  # undelivered at shutdown: counted, not silent
                    self._queue.clear()
                    return
                data = self._queue.popleft()
            self._deliver(json.dumps(data, separators=(",", ":")).encode())

    def _deliver(self, body: bytes) -> None:
        for attempt in range(self._attempts):
            try:
                self._post(self.url, body, self._timeout)
            except (OSError, ValueError) as exc:  # urllib's URLError and HTTPError are OSErrors
                with self._cond:
                    self.errors += 1
                    self.last_error = _one_line(f"{type(exc).__name__}: {redact(str(exc))}")
                    if attempt + 1 < self._attempts and not self._past_deadline():
                        self._cond.wait_for(self._past_deadline, self._backoff * 2**attempt)
                    if self._past_deadline():
                        break
                continue
            with self._cond:
                self.sent += 1
            return
        with self._cond:
            self.failed += 1


# --- one stream ----------------------------------------------------------------------------------


@dataclass
class _Counters:
    state: StreamState = "connecting"
    frames: int = 0
    dropped: int = 0  # by sources already closed; the open one's count is added when read
    reconnects: int = 0
    failures: int = 0  # consecutive failed attempts (reset by a frame)
    tracks: int = 0
    last_error: str | None = None
    last_frame_at: str | None = None
    started_at: str = field(default_factory=_now_iso)
    stopped_at: str | None = None


class Stream:
    """One camera URL, its worker thread, its events (see the module docstring)."""

    def __init__(
        self,
        stream_id: str,
        options: StreamOptions,
        *,
        make_tracker: TrackerFactory,
        open_source: Callable[[StreamOptions], SourceLike],
        events: EventLog,
        webhook: WebhookSender | None,
        backoff_initial: float,
        backoff_max: float,
        flush_after: float,
    ) -> None:
        self.id = stream_id
        self.options = options
        self.events = events
        self.webhook = webhook
        self._make_tracker, self._open_source = make_tracker, open_source
        self._backoff_initial, self._backoff_max, self._flush_after = backoff_initial, backoff_max, flush_after
        self._lock = threading.Lock()
        self._c = _Counters()
        self._stop = threading.Event()
        self._source: SourceLike | None = None
        self._tracker: TrackerLike | None = None
        self._track_ids: dict[int, int] = {}  # the current tracker's ids -> the stream's (unique across trackers)
        self._t0 = time.monotonic()
        self._last_time, self._last_index = -1.0, -1  # of the last frame fed, on the stream's timeline
        self._thread = threading.Thread(target=self._run, name=f"faceatlas-stream-{stream_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    # -- control, from any thread --

    def stop(self, timeout: float = 15.0) -> bool:
        """Ask the worker to stop, wait for it to flush its tracks and end (at most ``timeout`` s).

        A worker reading frames sees the request at its next frame and closes the source itself;
        only one that is waiting on a stalled source has it closed under it after ``STOP_GRACE`` s."""
        self._stop.set()
        if self._thread is threading.current_thread() or not self._thread.is_alive():
            return not self._thread.is_alive()
        deadline = time.monotonic() + timeout
        self._thread.join(min(STOP_GRACE, timeout))
        if self._thread.is_alive():
            with self._lock:
                source = self._source
            if source is not None:
                with contextlib.suppress(Exception):  # closing a source that is failing anyway
                    source.close()
            self._thread.join(max(0.0, deadline - time.monotonic()))
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() or (self.webhook is not None and self.webhook.alive)

    @property
    def finished(self) -> bool:
        return self._c.state in ("stopped", "failed")

    def snapshot(self) -> dict[str, Any]:
        """The stream's state as JSON-safe values."""
        with self._lock:
            c = dataclasses.replace(self._c)
            source = self._source
        dropped = c.dropped + int(getattr(source, "dropped", 0) or 0)
        o = self.options
        return {
            "id": self.id,
            "url": redact(o.url),
            "state": c.state,
            "fps": o.fps,
            "detect_every": o.detect_every,
            "fpir": o.fpir,
            "events": list(o.events),
            "max_reconnects": o.max_reconnects,
            "started_at": c.started_at,
            "stopped_at": c.stopped_at,
            "frames": c.frames,
            "dropped": dropped,
            "reconnects": c.reconnects,
            "tracks": c.tracks,
            "last_error": c.last_error,
            "last_frame_at": c.last_frame_at,
            "subscribers": self.events.subscribers,
            "published": self.events.published,
            "recent_events": [event.data for event in self.events.recent()],
            "webhook": self.webhook.stats() if self.webhook is not None else None,
        }

    # -- the worker --

    def _set(self, **changes: Any) -> None:
        with self._lock:
            before = self._c.state
            for name, value in changes.items():
                setattr(self._c, name, value)
            state = self._c.state
            detail = {"reconnects": self._c.reconnects, "last_error": self._c.last_error}
        if "state" in changes and state != before:
            self.events.publish("stream_state", {"stream": self.id, "state": state, "wall_time": _now_iso(), **detail})

    def _run(self) -> None:
        failed = True
        try:
            failed = self._loop()
        except FaceAtlasError as exc:  # the tracker's (a model, the gallery): reconnecting would not cure it
            log.warning("stream %s failed: %s", self.id, exc)
            self._set(last_error=self._error_text(exc))
        except Exception:  # whatever a tracker or source does, the stream ends cleanly and says so
            log.exception("stream %s failed with an unexpected error", self.id)
            self._set(last_error=INTERNAL_ERROR)
        finally:
            try:
                self._flush()  # the open tracks' track_closed, before the end is told
            except Exception:  # the end must still be published
                log.exception("stream %s: closing its tracks failed", self.id)
            self._set(state="failed" if failed else "stopped", stopped_at=_now_iso())
            self.events.close()
            if self.webhook is not None:
                self.webhook.close()

    def _loop(self) -> bool:
        """Read, reconnect, until stopped (False) or out of reconnects (True: failed)."""
        backoff = self._backoff_initial
        outage_since: float | None = None
        first = True
        max_reconnects = self.options.max_reconnects
        while not self._stop.is_set():
            if not first:
                self._set(state="reconnecting", reconnects=self._c.reconnects + 1)
            first = False
            got_frames, error = self._read_once()
            if self._stop.is_set():
                return False
            if got_frames:
                backoff, outage_since = self._backoff_initial, time.monotonic()
                failures = 0
            else:
                failures = self._c.failures + 1
                outage_since = outage_since or time.monotonic()
            self._set(failures=failures, last_error=error)
            if max_reconnects is not None and failures > max_reconnects:
                return True
            self._set(state="reconnecting")
            deadline = time.monotonic() + backoff
            while not self._stop.is_set() and time.monotonic() < deadline:
                if time.monotonic() - outage_since >= self._flush_after and self._tracker is not None:
                    self._flush()  # a long outage: the people seen are gone, close their tracks now
                self._stop.wait(min(0.25, max(0.0, deadline - time.monotonic())))
            backoff = min(backoff * 2, self._backoff_max)
        return False

    def _read_once(self) -> tuple[bool, str]:
        """Open the source and feed it until it ends; (whether it gave a frame, why it ended).

        Only the source's errors end a reading (then the stream reconnects); the tracker's
        propagate and end the stream as failed (reconnecting would not cure them)."""
        try:
            source = self._open_source(self.options)
        except (FaceAtlasError, OSError) as exc:
            return False, self._error_text(exc)
        with self._lock:
            self._source = source
        # one timeline across reconnects: a new source's clock restarts at 0, so it is shifted to
        # when it opened, and never before the last frame fed (the tracker's motion model needs it)
        offset: float | None = None
        index_offset: int | None = None
        wall = time.monotonic() - self._t0
        got = False
        try:
            frames = iter(source)
            while not self._stop.is_set():
                try:
                    frame = next(frames)
                except StopIteration:
                    said = list(getattr(source, "errors", None) or [])
                    why = said[-1] if said else "the camera closed the connection or stopped sending"
                    return got, _one_line(
                        f"the stream ended: {why}".replace(self.options.url, redact(self.options.url))
                    )
                except (FaceAtlasError, OSError) as exc:
                    return got, self._error_text(exc)
                if self._stop.is_set():
                    break
                if not got:
                    got = True
                    self._set(state="running", failures=0)
                if offset is None or index_offset is None:
                    offset = max(wall, self._last_time + 1e-3 - frame.time)
                    index_offset = self._last_index + 1 - frame.index
                at = max(frame.time + offset, self._last_time + 1e-6)
                self._last_time, self._last_index = at, frame.index + index_offset
                self._feed(dataclasses.replace(frame, time=at, index=self._last_index))
            return got, ""
        finally:
            with self._lock:
                self._source = None
                self._c.dropped += int(getattr(source, "dropped", 0) or 0)
            with contextlib.suppress(Exception):
                source.close()

    def _feed(self, frame: Any) -> None:
        tracker = self._tracker
        if tracker is None:
            o = self.options
            tracker = self._tracker = self._make_tracker(fpir=o.fpir, detect_every=o.detect_every, source=redact(o.url))
            self._track_ids = {}
        self._emit(tracker.feed(frame))
        with self._lock:
            self._c.frames += 1
            self._c.last_frame_at = _now_iso()

    def _error_text(self, exc: BaseException) -> str:
        url = self.options.url
        return _one_line(f"{type(exc).__name__}: {exc}".replace(url, redact(url)))

    def _flush(self) -> None:
        """Close every open track (``track_closed`` events); the next frame starts a new tracker."""
        tracker, self._tracker = self._tracker, None
        if tracker is not None:
            self._emit(tracker.finish())

    def _emit(self, events: list[Any]) -> None:
        for event in events:
            data = self._event_json(event)
            if data["kind"] not in self.options.events:
                continue
            published = self.events.publish(data["kind"], data)
            if self.webhook is not None:
                self.webhook.submit(published.data)  # with its id: a receiver can tell a retry from a new event

    def _stream_track_id(self, track_id: int, closing: bool) -> int:
        """The tracker's id as this stream's: unique across the trackers of its reconnects (a
        closed track's is forgotten: nothing comes after its track_closed, and a stream is long)."""
        if track_id not in self._track_ids:
            with self._lock:
                self._c.tracks += 1
                self._track_ids[track_id] = self._c.tracks
        return self._track_ids.pop(track_id) if closing else self._track_ids[track_id]

    def _event_json(self, event: Any) -> dict[str, Any]:
        track = getattr(event, "track", None)
        summary = track.to_json() if track is not None else None
        box = getattr(event, "box", None)
        if box is None and summary is not None:
            box = summary.get("box")
        data: dict[str, Any] = {
            "kind": event.kind,
            "stream": self.id,
            "time": round(float(event.time), 3),
            "wall_time": _now_iso(),
            "track": self._stream_track_id(int(event.track_id), closing=event.kind == "track_closed"),
            "person": event.person,
            "score": None if event.score is None else round(float(event.score), 4),
            "box": None if box is None else [round(float(v), 1) for v in box],
        }
        if event.kind == "track_closed" and summary is not None:
            data["summary"] = {**summary, "track": data["track"]}
        return data


# --- the manager ------------------------------------------------------------------------------------


class StreamManager:
    """At most ``max_streams`` running streams; stopped and failed ones stay listed (the newest
    ``FINISHED_KEPT``) until deleted. Every method may be called from any thread."""

    def __init__(
        self,
        *,
        make_tracker: TrackerFactory,
        open_source: Callable[[StreamOptions], SourceLike] | None = None,
        max_streams: int = 4,
        ring_size: int = 1000,
        subscriber_queue: int = 256,
        max_subscribers: int = 16,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        flush_after: float = 5.0,
        open_timeout: float = 10.0,
        read_timeout: float = 10.0,
        webhook_options: dict[str, Any] | None = None,
        hosts: Sequence[str] = ("*",),
    ) -> None:
        self.max_streams = max_streams
        self.hosts = tuple(hosts)
        self.make_tracker = make_tracker  # clips (POST /v1/videos) use the same
        self._open_source = open_source or default_source(open_timeout, read_timeout)
        self._log_options = {
            "ring_size": ring_size,
            "subscriber_queue": subscriber_queue,
            "max_subscribers": max_subscribers,
        }
        self._timing = {"backoff_initial": backoff_initial, "backoff_max": backoff_max, "flush_after": flush_after}
        self._webhook_options = webhook_options or {}
        self.stop_timeout = open_timeout + read_timeout + 5.0  # a worker opening a URL cannot be interrupted
        self._lock = threading.Lock()
        self._streams: dict[str, Stream] = {}
        self._closed = False

    def start(self, options: StreamOptions) -> dict[str, Any]:
        """Start a stream; its state (``connecting`` at first)."""
        check_url(options.url, STREAM_SCHEMES, "url", self.hosts)
        if options.webhook is not None:
            check_url(options.webhook, ("http", "https"), "webhook", self.hosts)
        unknown = set(options.events) - set(TRACK_EVENTS)
        if unknown:
            raise InvalidArgumentError(f"unknown event kinds {sorted(unknown)}; choose from {list(TRACK_EVENTS)}")
        with self._lock:
            if self._closed:
                raise TooManyStreamsError("the server is shutting down; it starts no more streams")
            running = [s for s in self._streams.values() if not s.finished]
            if self.max_streams == 0:
                raise TooManyStreamsError("live streams are turned off here (FACEATLAS_MAX_STREAMS=0)")
            if len(running) >= self.max_streams:
                raise TooManyStreamsError(
                    f"{len(running)} streams already run (at most {self.max_streams}, FACEATLAS_MAX_STREAMS); "
                    "stop one (DELETE /v1/streams/{id}) first"
                )
            stream_id = secrets.token_hex(6)
            while stream_id in self._streams:
                stream_id = secrets.token_hex(6)
            webhook = None
            if options.webhook is not None:
                webhook = WebhookSender(options.webhook, name=f"webhook-{stream_id}", **self._webhook_options)
            stream = Stream(
                stream_id,
                options,
                make_tracker=self.make_tracker,
                open_source=self._open_source,
                events=EventLog(**self._log_options),
                webhook=webhook,
                **self._timing,
            )
            self._streams[stream_id] = stream
            self._forget_old()
            stream.start()
        return stream.snapshot()

    def stream(self, stream_id: str) -> Stream:
        with self._lock:
            stream = self._streams.get(stream_id)
        if stream is None:
            raise StreamNotFoundError(f"no stream {stream_id!r} (unknown, or stopped and deleted)")
        return stream

    def get(self, stream_id: str) -> dict[str, Any]:
        return self.stream(stream_id).snapshot()

    def list(self) -> list[dict[str, Any]]:
        """Every stream listed, newest first."""
        with self._lock:
            streams = list(self._streams.values())
        return [stream.snapshot() for stream in reversed(streams)]

    def stop(self, stream_id: str) -> dict[str, Any]:
        """Stop a stream (its open tracks are closed as events) and forget it; its final state."""
        stream = self.stream(stream_id)
        if not stream.stop(self.stop_timeout):
            log.warning("stream %s: its worker did not end within %.0f s", stream_id, self.stop_timeout)
        with self._lock:
            self._streams.pop(stream_id, None)
        return stream.snapshot()

    def shutdown(self) -> None:
        """Stop every stream (flushing their tracks) and start no more."""
        with self._lock:
            self._closed = True
            streams = list(self._streams.values())
        for stream in streams:
            stream._stop.set()  # all at once: each then takes its own time to end
        for stream in streams:
            stream.stop(self.stop_timeout)

    def _forget_old(self) -> None:  # with the lock held
        finished = [key for key, stream in self._streams.items() if stream.finished]
        for key in finished[: max(0, len(finished) - FINISHED_KEPT)]:
            del self._streams[key]


def default_source(open_timeout: float, read_timeout: float) -> Callable[[StreamOptions], SourceLike]:
    """The real source: ``open_video`` on the URL, live, reconnected by the stream itself."""

    def open_source(options: StreamOptions) -> SourceLike:
        from faceatlas.video.source import open_video

        source: SourceLike = open_video(
            options.url,
            fps=options.fps,
            live=True,
            reconnect=False,  # the stream reconnects, with back-off it counts and shows
            open_timeout=open_timeout,
            read_timeout=read_timeout,
        )
        return source

    return open_source


# --- the service's models and gallery; clips ---------------------------------------------------------


class _LockedGallery:
    """The service's gallery as a tracker sees it: searched under the engine's gallery lock, like
    every request's search (its in-memory state is caught up from the store under that lock)."""

    def __init__(self, gallery: Any, lock: Any) -> None:
        self._gallery, self._lock = gallery, lock

    @property
    def analyzer(self) -> Any:
        return self._gallery.analyzer  # the engine's: analysis runs on its analysis threads

    @property
    def fpir(self) -> float:
        fpir: float = self._gallery.fpir
        return fpir

    def identify(self, probe: Any, k: int = 5, fpir: float | None = None) -> Any:
        with self._lock:
            return self._gallery.identify(probe, k=k, fpir=fpir)


def service_tracker(engine: Any) -> TrackerFactory:
    """A ``VideoTracker`` on the engine's models (its analysis threads, shared with requests: one
    frame of each stream waits at most) and its gallery."""

    def make(*, fpir: float | None, detect_every: int, source: str) -> TrackerLike:
        from faceatlas.video.tracking import VideoTracker

        gallery = _LockedGallery(engine.gallery(), engine.gallery_lock)
        return VideoTracker(gallery, fpir=fpir, detect_every=detect_every, source=source)

    return make


def clip_job(
    path: str,
    name: str,
    make_tracker: TrackerFactory,
    *,
    fps: float | None = None,
    detect_every: int = 1,
    fpir: float | None = None,
    delete: bool = True,
) -> Callable[[Any], dict[str, Any]]:
    """A job (``JobManager.submit``) that tracks the faces of the clip at ``path`` (an upload the
    client called ``name``, the only name it ever sees); progress counts the video's frames. The
    file is deleted when the job ends, or when it is dropped without running (cancelled queued)."""

    def run(ctx: Any) -> dict[str, Any]:
        from faceatlas.errors import InvalidVideoError, VideoError
        from faceatlas.video.source import open_video

        tracks: list[dict[str, Any]] = []

        def keep(events: list[Any]) -> None:
            for event in events:
                if event.kind == "track_closed" and event.track is not None:
                    tracks.append(event.track.to_json())

        try:
            ctx.progress(0, None, f"reading {name}")
            try:
                video = open_video(path, fps=fps, live=False, reconnect=False)
            except VideoError as exc:
                raise InvalidVideoError(str(exc).replace(path, name)) from None
            with video:
                info = video.info
                tracker = make_tracker(fpir=fpir, detect_every=detect_every, source=name)
                analysed, last_report = 0, 0.0
                for frame in video:
                    keep(tracker.feed(frame))
                    analysed += 1
                    if time.monotonic() - last_report > 0.25:  # progress takes the manager's lock
                        last_report = time.monotonic()
                        ctx.progress(frame.index + 1, info.frames, f"{analysed} frames analysed, {len(tracks)} tracks")
                keep(tracker.finish())
                problems = [problem.replace(path, name) for problem in video.errors]
            total = info.frames if info.frames else analysed
            ctx._set(total, total, f"{analysed} frames analysed, {len(tracks)} tracks")
            return {
                "video": {
                    "name": name,
                    "width": info.width,
                    "height": info.height,
                    "fps": info.fps,
                    "frames": info.frames,
                    "duration": info.duration,
                    "codec": info.codec,
                    "rotation": info.rotation,
                },
                "frames_analysed": analysed,
                "tracks": sorted(tracks, key=lambda t: (t["start"], t["track"])),
                "people": sorted({t["person"] for t in tracks if t["person"] is not None}),
                "problems": problems,
            }
        finally:
            if delete:
                _unlink(path)

    if delete:
        weakref.finalize(run, _unlink, path)  # a queued job cancelled never runs: its file goes with it
    return run


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
