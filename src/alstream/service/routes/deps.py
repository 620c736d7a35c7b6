"""The routes' typed dependencies (as ``deps.py`` in FastAPI's full-stack template) and the steps
they share: the runtime, the caller and the request body; no route reads ``request.app.state``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, HTTPException, Request, Security
from fastapi.params import Depends as Dependency
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from alstream import auth
from alstream.messages import Label, Sample
from alstream.service.limits import RateLimiter
from alstream.service.runtime import Runtime
from alstream.service.security import ASK_THE_STORE, Caller
from alstream.stream import StreamUnavailable

T = TypeVar("T")


async def get_runtime(request: Request) -> Runtime:
    """The app's runtime (async, so on the event loop: ``/health`` never waits for the threadpool)."""
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]

_bearer = HTTPBearer(auto_error=False, description="An alstream API token: `Authorization: Bearer als_...`")
DOING = {"send": "send samples", "label": "read the queue or label", "read": "read", "admin": "do this"}


def require(permission: str | None) -> Dependency:
    """A route dependency: the caller must hold a token whose role allows ``permission`` (None: any
    valid token); 401 without one, 403 when its role lacks the permission."""

    async def caller(
        runtime: RuntimeDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
    ) -> Caller:
        challenge = {"WWW-Authenticate": "Bearer"}
        if credentials is None:
            raise HTTPException(
                401, "this endpoint needs a token: send 'Authorization: Bearer <token>'", headers=challenge
            )
        # on the event loop when no store is asked (most requests: a hop to the threadpool and back
        # cost more than the check), else in the threadpool
        known = runtime.gatekeeper.known(credentials.credentials)
        found = (
            await run_in_threadpool(runtime.gatekeeper.check, credentials.credentials)
            if known == ASK_THE_STORE
            else known
        )
        if found is None:
            raise HTTPException(
                401, "the token is not valid: unknown, malformed or revoked", headers=challenge
            )
        if permission is not None and not auth.allows(found.role, permission):
            raise HTTPException(403, f"a {found.role} token may not {DOING[permission]}")
        return found

    return Depends(caller)


AnyCaller = Annotated[Caller, require(None)]
Labeler = Annotated[Caller, require("label")]


def throttle(limiter: RateLimiter, route: str, caller: Caller) -> None:
    """429 with Retry-After when ``caller``'s token called ``route`` too often."""
    wait = limiter.wait(caller.key)
    if wait:
        raise HTTPException(
            429,
            f"too many requests to {route} with this token: retry in {wait:.1f} s",
            headers={"Retry-After": str(math.ceil(wait))},
        )


async def raw_body(request: Request) -> bytes:
    """The request body, already read whole by the edge (:class:`alstream.service.bodies.WholeBody`)."""
    return await request.body()


RawBody = Annotated[bytes, Depends(raw_body)]


async def parse_body(body: bytes, parse: Callable[[bytes], T]) -> T:
    """``parse(body)`` in the threadpool: checking a large body (64 MB) must not stall the event
    loop (and with it every other request, ``/health`` included). The parsers of
    :mod:`alstream.messages` take the JSON bytes and say what is wrong with them."""
    return await run_in_threadpool(parse, body)


async def publish(runtime: Runtime, samples: list[Sample], labels: list[Label]) -> None:
    """Publish in the threadpool: waiting for the broker (or an fsync) must not stall other requests.
    503 when the stream does not take them in time; InvalidBatch (422) when one is too large."""
    try:
        await run_in_threadpool(runtime.publish, samples, labels)  # InvalidBatch: too large, none published
    except StreamUnavailable as error:
        raise HTTPException(
            503,
            f"the stream is unavailable and the batch was not accepted; send it again "
            f"(a sample is stored once per id): {error}",
        ) from None


__all__ = [
    "AnyCaller",
    "Labeler",
    "RawBody",
    "RuntimeDep",
    "get_runtime",
    "parse_body",
    "publish",
    "require",
    "throttle",
]
