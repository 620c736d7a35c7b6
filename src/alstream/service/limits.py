"""Request limits: how often a token may call (the size of a body: :mod:`alstream.service.bodies`).

>>> bucket = RateLimiter(rate_per_s=1.0, burst=2)
>>> [bucket.wait("k", now=0.0) for _ in range(3)]
[0.0, 0.0, 1.0]
>>> bucket.wait("k", now=1.0)
0.0
"""

from __future__ import annotations

import threading
import time


class RateLimiter:
    """A token bucket per key: ``burst`` requests at once, then ``rate_per_s``. A bucket that has
    filled up again is forgotten (it is the same as none), so keys that went away cost nothing."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate, self.burst = rate_per_s, float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when)
        self._lock = threading.Lock()
        self._next_sweep = 0.0

    def __len__(self) -> int:
        return len(self._buckets)

    def wait(self, key: str, now: float | None = None) -> float:
        """0 when ``key`` may go now (and it is counted), else the seconds until it may."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if now >= self._next_sweep:
                self._sweep(now)
            tokens, when = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - when) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def _sweep(self, now: float) -> None:
        """Drop the full buckets; at most once per time a bucket takes to fill (amortized O(1))."""
        refill_s = self.burst / self.rate
        self._buckets = {
            k: (t, w) for k, (t, w) in self._buckets.items() if t + (now - w) * self.rate < self.burst
        }
        self._next_sweep = now + max(refill_s, 1.0)


__all__ = ["RateLimiter"]
