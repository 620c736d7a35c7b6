"""Request limits: the size of a body, and how often a token may send.

>>> bucket = RateLimiter(rate_per_s=1.0, burst=2)
>>> [bucket.wait("k", now=0.0) for _ in range(3)]
[0.0, 0.0, 1.0]
>>> bucket.wait("k", now=1.0)
0.0
"""

from __future__ import annotations

import threading
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send


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


class BodySizeLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets 413, whether it says its length or not."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _TooLarge
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = f'{{"detail":"the request body is over the limit of {self.max_bytes} bytes"}}'.encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


__all__ = ["BodySizeLimit", "RateLimiter"]
