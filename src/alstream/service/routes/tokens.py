"""``/tokens``: create, list and revoke API tokens (admins only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, Field

from alstream.auth import Role, token_key
from alstream.errors import LastAdmin
from alstream.messages.openapi import NAME_PATTERN
from alstream.service.routes.deps import RuntimeDep, require
from alstream.service.routes.error_responses import BODY, TOKEN, errors

router = APIRouter(dependencies=[require("admin")])

AnnotatorName = Annotated[str, Field(min_length=1, max_length=200, pattern=NAME_PATTERN)]


class TokenIn(BaseModel):
    role: Role = Field(description="producer (send samples), annotator (queue and labels) or admin (all).")
    name: AnnotatorName = Field(description="Who or what the token is for: the annotator it labels as.")
    annotators: list[AnnotatorName] = Field(
        default_factory=list, max_length=100, description="Other names it may label as (admins: any name)."
    )


class TokenOut(BaseModel):
    key: str = Field(description="The token's public key: how to name it to revoke it.")
    name: str
    role: str
    annotators: list[str] = Field(
        description="The names it may lease, release and label as (its name first)."
    )
    token: str | None = Field(None, description="The token itself: shown only when it is created.")


@router.post(
    "/tokens",
    status_code=201,
    summary="Create an API token",
    responses=errors(*TOKEN, *BODY),
)
def create_token(runtime: RuntimeDep, body: TokenIn) -> TokenOut:
    token = runtime.gatekeeper.issue(body.role, body.name, body.annotators)
    names = list(dict.fromkeys([body.name, *body.annotators]))
    return TokenOut(key=token_key(token), name=body.name, role=body.role, annotators=names, token=token)


@router.get(
    "/tokens",
    summary="Every API token (never the tokens themselves)",
    responses=errors(*TOKEN),
)
def list_tokens(runtime: RuntimeDep) -> list[TokenOut]:
    active = [t for t in runtime.store.tokens.all() if t["revoked_at"] is None]
    return [
        TokenOut(key=t["key"], name=t["name"], role=t["role"], annotators=t["annotators"]) for t in active
    ]


@router.delete(
    "/tokens/{key}",
    status_code=204,
    summary="Revoke an API token",
    responses=errors(*TOKEN, 404, 409, 422),
)
def revoke_token(runtime: RuntimeDep, key: Annotated[str, Path(max_length=64)]) -> None:
    """The last admin token is not revoked (409) unless an ``admin_token`` is configured: nobody could
    make or revoke tokens any more."""
    try:
        revoked = runtime.gatekeeper.revoke(key)
    except LastAdmin:
        raise HTTPException(
            409,
            f"{key!r} is the last admin token: make another admin token first (or "
            "configure admin_token), then revoke this one",
        ) from None
    if not revoked:
        raise HTTPException(404, f"no active token with key {key!r}")
