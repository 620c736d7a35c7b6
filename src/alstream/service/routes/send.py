"""``POST /send``: samples and labels into the stream."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException
from pydantic import BaseModel, Field

from alstream.errors import InvalidInput
from alstream.idempotency import HEADER, MAX_KEY_CHARS, check_key, ids_from_key
from alstream.messages import Label, Sample, parse_messages
from alstream.service.routes.deps import RawBody, RuntimeDep, parse_body, publish, require, throttle
from alstream.service.routes.error_responses import BODY, TOKEN, errors
from alstream.service.security import Caller

router = APIRouter()

KEY_PATTERN = r"^[\x20-\x7e]*[\x21-\x7e][\x20-\x7e]*$"  # printable ASCII, not blank: as check_key
IDEMPOTENCY_HELP = (
    "Any unique string per batch (a UUID). Samples without an id get ids derived from it and their "
    "place in the batch, so sending the batch again with the same key stores nothing twice."
)


class Accepted(BaseModel):
    ids: list[str] = Field(description="Ids of the accepted samples and labels, in the order sent.")
    samples: int
    labels: int


def sender(runtime: RuntimeDep, caller: Annotated[Caller, require("send")]) -> Caller:
    """A caller who may send, within the token's rate (429)."""
    throttle(runtime.send_limiter, "/send", caller)
    return caller


async def idempotency_key(
    key: Annotated[
        str | None,
        Header(
            alias=HEADER,
            description=IDEMPOTENCY_HELP,
            min_length=1,
            max_length=MAX_KEY_CHARS,
            pattern=KEY_PATTERN,
        ),
    ] = None,
) -> str | None:
    """The ``Idempotency-Key`` header, if sent; 400 when it cannot be used."""
    if key is not None:
        try:
            check_key(key)
        except InvalidInput as error:
            raise HTTPException(400, str(error)) from None
    return key


@router.post(
    "/send",
    status_code=202,
    summary="Send samples and labels into the stream",
    responses=errors(400, *TOKEN, *BODY, 429, 503),  # the body's schema: alstream.service.openapi_document
)
async def send(
    runtime: RuntimeDep,
    caller: Annotated[Caller, Depends(sender)],
    key: Annotated[str | None, Depends(idempotency_key)],
    body: RawBody,
) -> Accepted:
    """One message or a batch of up to 10,000. Every item is validated first; if any is invalid
    nothing is accepted (422 lists each bad item and why). 202 once the stream holds them all; 503 when
    it does not take them within ``publish_timeout_s``: send the batch again, with the same ids (or
    the same ``Idempotency-Key``)."""

    def parse(raw: bytes) -> tuple[list[Sample], list[Label]]:
        default_id = None if key is None else ids_from_key(key, scope=caller.key)
        return parse_messages(raw, runtime.settings.project, default_id)

    samples, labels = caller.own(*await parse_body(body, parse))
    await publish(runtime, samples, labels)
    return Accepted(
        ids=[s.id for s in samples] + [label.id for label in labels], samples=len(samples), labels=len(labels)
    )
