"""The HTTP server: uvicorn, bounded against clients that connect and never finish.

uvicorn closes idle keep-alive connections, but a request whose headers trickle in (or never
come) holds its connection forever. Here a request's headers must arrive whole within
``header_timeout_s`` of its first byte (or of the connection), else it is answered 408 and
closed; its body is bounded by :class:`alstream.service.bodies.WholeBody`. Open connections are
bounded by ``max_connections`` (uvicorn answers 503 past it). uvicorn's error log (the traceback of
any unhandled error) goes to alstream's own log handler.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
from collections.abc import Callable
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from alstream.settings import Settings

TIMED_OUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
M_ARENA_MAX, M_MMAP_THRESHOLD = -8, -3  # mallopt's parameters (glibc's malloc.h)


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, with a deadline on each request's headers."""

    header_timeout_s = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._headers_due: asyncio.TimerHandle | None = None
        self._arm()  # the first request's headers, from the moment the client connects

    def data_received(self, data: bytes) -> None:
        if self._headers_due is None and self.conn.their_state is h11.IDLE:
            self._arm()  # the first bytes of the next request on a kept-alive connection
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the headers are in
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._headers_due = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._headers_due is not None:
            self._headers_due.cancel()
            self._headers_due = None

    def _headers_too_slow(self) -> None:
        self._headers_due = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.write(TIMED_OUT)
            self.transport.close()


def protocol(header_timeout_s: float) -> type[HeaderTimeoutProtocol]:
    """The protocol class with its header deadline (uvicorn takes a class, not an instance)."""
    return type("HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout_s": header_timeout_s})


def route_server_log(handler: logging.Handler) -> None:
    """uvicorn's error log (warnings and tracebacks) through ``handler``; its access log stays off."""
    for name in ("uvicorn", "uvicorn.error"):
        server_log = logging.getLogger(name)
        server_log.handlers[:] = [handler] if name == "uvicorn" else []
        server_log.setLevel(logging.WARNING)
        server_log.propagate = name != "uvicorn"
    logging.getLogger("uvicorn.access").disabled = True


def serve(app: Callable[..., Any], settings: Settings) -> None:
    """Run ``app`` on the settings' address until SIGINT or SIGTERM."""
    import uvicorn

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=protocol(settings.header_timeout_s),
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=5,
        log_config=None,  # route_server_log sets it up
    )
    # What is loaded by now (the libraries) lives as long as the process: the collector need not walk
    # it again and again, and young collections come every 50,000 allocations, not 700 (a batch of
    # samples allocates a list per sample). Both took about a quarter of ingest's CPU.
    gc.freeze()
    gc.set_threshold(50_000, 20, 10)
    few_malloc_arenas()
    uvicorn.Server(config).run()


def few_malloc_arenas(arenas: int = 2, mmap_from: int = 1 << 20) -> bool:
    """Before the threads start, tell glibc's malloc to keep at most ``arenas`` arenas (it makes up
    to 8 per core, one per thread that allocates, and each keeps what it freed) and to map every block
    of ``mmap_from`` bytes or more on its own, so that it goes back to the system when freed (glibc
    raises that threshold as large blocks are freed, and then keeps numpy's temporaries of a big
    pool in the heap: resident memory creeps up to their high-water mark). Returns whether it could
    (False off glibc)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_ARENA_MAX, arenas)) and bool(libc.mallopt(M_MMAP_THRESHOLD, mmap_from))
    except (OSError, AttributeError):
        return False


__all__ = ["HeaderTimeoutProtocol", "few_malloc_arenas", "protocol", "route_server_log", "serve"]
