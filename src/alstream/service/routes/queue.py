"""``GET /queue`` and ``POST /queue/release``: the samples to label, leased to an annotator."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from alstream.messages.openapi import NAME_PATTERN
from alstream.service.routes.deps import Labeler, RuntimeDep, throttle
from alstream.service.routes.error_responses import BODY, TOKEN, errors
from alstream.service.serving import QueueItem

router = APIRouter()
PAUSED_HEADER = "Alstream-Queue-Paused"
PAUSED: dict[int | str, dict[str, Any]] = {
    200: {
        "headers": {
            PAUSED_HEADER: {
                "description": "Present when the queue is paused (pause_when_stable: the model has "
                "stabilised): why no item comes.",
                "schema": {"type": "string"},
            }
        }
    }
}


class Released(BaseModel):
    released: int = Field(description="How many of the items the annotator held.")


class ReleaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    annotator: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        pattern=NAME_PATTERN,
        description="Who holds the leases (absent: the token's name).",
    )
    ids: list[Annotated[str, Field(max_length=1000)]] = Field(
        max_length=1000, description="Leased items to give back to the queue."
    )


@router.get("/queue", summary="The next samples to label", responses={**PAUSED, **errors(*TOKEN, 422, 429)})
def queue(
    runtime: RuntimeDep,
    caller: Labeler,
    response: Response,
    n: Annotated[int, Query(ge=1, le=100, description="How many items.")] = 10,
    annotator: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            pattern=NAME_PATTERN,
            description="Who labels them (absent: the token's name).",
        ),
    ] = None,
    fresh: Annotated[
        bool, Query(description="Only items not already leased to this annotator (to prefetch more).")
    ] = False,
) -> list[QueueItem]:
    """The most uncertain samples (and a random share), leased to ``annotator`` for a while.
    Items she already holds come first, unless ``fresh``. An annotator holds at most
    ``max_leases_per_annotator`` items and a (non-admin) token ``max_leases_per_token``: past them,
    fewer than ``n`` come back. While the queue is paused (``pause_when_stable``), none come, and the
    ``Alstream-Queue-Paused`` header says why."""
    throttle(runtime.queue_limiter, "/queue", caller)  # here, not a dependency: a bad query costs none
    name = caller.annotator(annotator)
    items, paused = runtime.engine.lease(n, name, fresh, token=caller.key, token_capped=not caller.any_name)
    if paused is not None:
        response.headers[PAUSED_HEADER] = paused
    return items


@router.post("/queue/release", summary="Give leased items back to the queue", responses=errors(*TOKEN, *BODY))
def release(runtime: RuntimeDep, body: ReleaseIn, caller: Labeler) -> Released:
    """The page gives back the items it prefetched but did not show, e.g. after a new model.
    ``released``: how many of them the annotator held."""
    return Released(released=runtime.engine.release(body.ids, caller.annotator(body.annotator)))
