"""Request bodies, read whole at the edge before any route sees the request.

:class:`WholeBody` is ASGI middleware: it reads a request's body up to its route's limit (413 past
it, whether the body says its length or comes chunked) within ``timeout_s`` (408 after it: a body
that trickles in holds no route, no rate budget and no worker), checks that a JSON body is UTF-8
(422 naming the first bad byte), and only then calls the app with the body it has read. So a
route, its dependencies (tokens, rate limits) and its parsing run only for requests that have
fully arrived, and large bodies are checked off the event loop. The bodies held at once, by every
request together, are at most ``budget_bytes``: past it a request is answered 503 (retry later)
instead of the server running out of memory for clients that send and never finish.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

OFF_LOOP_BYTES = 64 * 1024  # bodies larger than this are checked in the threadpool


class WholeBody:
    """See the module docstring. ``limits``: a smaller (or larger) limit per path, in bytes."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        timeout_s: float,
        limits: Mapping[str, int] | None = None,
        budget_bytes: int | None = None,
    ) -> None:
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s
        self.limits = dict(limits or {})
        self.budget_bytes = budget_bytes or 8 * max_bytes
        self.held = 0  # bytes of the bodies being read or served now (the event loop's alone)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.max_bytes)
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            await _refuse(send, 413, f"the request body is over the limit of {limit} bytes")
            return
        counted = [0]
        try:
            try:
                async with asyncio.timeout(self.timeout_s):
                    body = await self._read(receive, limit, counted)
            except TimeoutError:
                await _refuse(send, 408, f"the request body did not arrive within {self.timeout_s:g} s")
                return
            except _TooLarge:
                await _refuse(send, 413, f"the request body is over the limit of {limit} bytes")
                return
            except _Busy:
                await _refuse(send, 503, "the service holds as many request bodies as it may: retry soon")
                return
            except _Disconnected:
                return
            await self._checked(body, headers, scope, receive, send)
        finally:
            self.held -= counted[0]

    async def _read(self, receive: Receive, limit: int, counted: list[int]) -> bytes:
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            counted[0] += len(chunk)
            self.held += len(chunk)
            if counted[0] > limit:
                raise _TooLarge
            if self.held > self.budget_bytes:
                raise _Busy
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _checked(self, body: bytes, headers: dict, scope: Scope, receive: Receive, send: Send) -> None:
        if body and b"json" in headers.get(b"content-type", b"application/json"):
            large = len(body) > OFF_LOOP_BYTES
            problem = await run_in_threadpool(_utf8_problem, body) if large else _utf8_problem(body)
            if problem:
                await _refuse(send, 422, f"body is not valid JSON: {problem}")
                return
        await self.app(scope, _replay(body, receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body in one message, then the client's own messages (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _utf8_problem(body: bytes) -> str | None:
    try:
        body.decode()
    except UnicodeDecodeError as bad:
        return f"not UTF-8: byte {body[bad.start]:#04x} at offset {bad.start}"
    return None


async def _refuse(send: Send, status: int, detail: str) -> None:
    problem: dict = {"detail": detail}
    if status == 422:  # every 422 names what is wrong in the same shape
        problem["errors"] = [{"index": -1, "id": None, "field": "", "message": detail}]
    body = orjson.dumps(problem)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status in (408, 413):  # the rest of the body is not read: the connection cannot be reused
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


class _Busy(Exception):
    pass


__all__ = ["WholeBody"]
