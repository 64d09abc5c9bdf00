"""A token bucket per client key, in memory: ``rate_per_minute`` on average, ``burst`` at once.

Each key's bucket holds up to ``burst`` tokens and refills at ``rate_per_minute / 60`` tokens a
second; a request takes one. The default burst is ten seconds' worth of the rate
(``rate_per_minute // 6``, at least 1): a page that fires a handful of requests together passes, but
nobody can spend a whole minute's allowance in one instant.

Memory stays bounded: a bucket idle long enough to have refilled completely is the same as no
bucket and is forgotten, and at most ``max_buckets`` are kept (the least recently used go first;
such a client just starts again from a full bucket).

The limiter is per process: with several worker processes each counts on its own.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from faceatlas.errors import InvalidArgumentError

__all__ = ["RateLimiter"]

MAX_BUCKETS = 100_000
_EPSILON = 1e-9  # a bucket refilled to 0.999999999 by float rounding is full enough


class RateLimiter:
    """Token buckets per key; ``check`` says whether a request may pass, and if not, how long to wait.

    >>> limiter = RateLimiter(rate_per_minute=60)      # burst 10
    >>> wait = limiter.check(key_id)
    >>> if wait: ...  # 429, Retry-After: math.ceil(wait)

    ``rate_per_minute <= 0`` means unlimited. Safe to share between threads.
    """

    def __init__(self, rate_per_minute: int, burst: int | None = None, *, max_buckets: int = MAX_BUCKETS) -> None:
        if isinstance(rate_per_minute, bool) or not isinstance(rate_per_minute, int):
            raise TypeError(f"rate_per_minute must be an int, got {rate_per_minute!r}")
        if burst is None:
            burst = max(1, rate_per_minute // 6)
        elif isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise InvalidArgumentError(f"burst must be an int of at least 1 (or None for the default), got {burst!r}")
        if isinstance(max_buckets, bool) or not isinstance(max_buckets, int) or max_buckets < 1:
            raise InvalidArgumentError(f"max_buckets must be a positive int, got {max_buckets!r}")
        self.rate_per_minute = rate_per_minute
        self.burst = burst
        self.max_buckets = max_buckets
        self._per_second = rate_per_minute / 60.0
        # from empty to full: after this long idle a bucket is full, i.e. as good as forgotten
        self._idle_forget = burst / self._per_second if self.limited else 0.0
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()  # key -> [tokens, last seen]; LRU first

    @property
    def limited(self) -> bool:
        return self.rate_per_minute > 0

    def __len__(self) -> int:
        """How many buckets are held now."""
        return len(self._buckets)

    def __repr__(self) -> str:
        if not self.limited:
            return "RateLimiter(unlimited)"
        return f"RateLimiter(rate_per_minute={self.rate_per_minute}, burst={self.burst})"

    def check(self, key: str, now: float | None = None) -> float:
        """0.0 if ``key`` may make a request now (and it is counted), else the seconds until it may.

        ``now`` is a ``time.monotonic()`` reading; pass it to test, leave it out otherwise.
        """
        if not self.limited:
            return 0.0
        if now is None:
            now = time.monotonic()
        with self._lock:
            buckets = self._buckets
            bucket = buckets.get(key)
            if bucket is None:
                tokens = float(self.burst)
            else:
                buckets.move_to_end(key)
                tokens = min(float(self.burst), bucket[0] + max(0.0, now - bucket[1]) * self._per_second)
            if tokens >= 1.0 - _EPSILON:
                tokens = max(0.0, tokens - 1.0)
                wait = 0.0
            else:
                wait = (1.0 - tokens) / self._per_second
            if bucket is None:
                buckets[key] = [tokens, now]
            else:
                bucket[0], bucket[1] = tokens, now
            self._forget(now)
            return wait

    def reset(self, key: str | None = None) -> None:
        """Forget one key's bucket (it starts full again), or every bucket."""
        with self._lock:
            if key is None:
                self._buckets.clear()
            else:
                self._buckets.pop(key, None)

    def _forget(self, now: float) -> None:
        """Drop buckets idle long enough to be full again, then the least recently used over the cap."""
        buckets = self._buckets
        while buckets:
            oldest_key, (_, last) = next(iter(buckets.items()))
            if now - last < self._idle_forget:
                break
            del buckets[oldest_key]
        while len(buckets) > self.max_buckets:
            buckets.popitem(last=False)
