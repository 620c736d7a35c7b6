"""``POST /labels``: labels for stored samples, from people and the page."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from starlette.concurrency import run_in_threadpool

from alstream.messages import parse_labels
from alstream.service.routes.deps import Labeler, RawBody, RuntimeDep, parse_body, publish, throttle
from alstream.service.routes.error_responses import BODY, TOKEN, errors
from alstream.service.routes.send import Accepted

router = APIRouter()


@router.post(
    "/labels",
    status_code=202,
    summary="Label samples (for people and the page)",
    responses=errors(*TOKEN, 404, *BODY, 429, 503),
)
async def labels(runtime: RuntimeDep, caller: Labeler, body: RawBody) -> Accepted:
    """One label or a list: ``{"id": ..., "label": ...}`` or ``{"id": ..., "skipped": true}``, for
    samples the store holds (404 names the others). ``annotator``: one of the names the token may act
    as (absent: its name)."""
    throttle(runtime.labels_limiter, "/labels", caller)
    parsed = await parse_body(body, lambda raw: parse_labels(raw, runtime.settings.project))
    _, parsed = caller.own([], parsed)
    ids = list(dict.fromkeys(label.id for label in parsed))
    missing = sorted(set(ids) - await run_in_threadpool(runtime.store.known_ids, ids))
    if missing:
        shown = ", ".join(repr(i) for i in missing[:10]) + (
            f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        )
        raise HTTPException(
            404,
            f"no stored sample has the id {shown}: label only samples the service "
            "holds (send a sample with its label through /send)",
        )
    await publish(runtime, [], parsed)
    return Accepted(ids=[label.id for label in parsed], samples=0, labels=len(parsed))
