"""The error answers every route documents: :class:`Problem`, :class:`Invalid` and :func:`errors`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ItemProblem(BaseModel):
    index: int = Field(description="The item's place in the batch; -1: the request as a whole.")
    id: str | None = Field(description="The item's id, when it has one.")
    field: str = Field(description="The field at fault ('' for the item or the request as a whole).")
    message: str


class Problem(BaseModel):
    """Every error answer: what is wrong, in words."""

    detail: str = Field(description="What is wrong, and what to do.")


class Invalid(Problem):
    """A 422: the request names each bad item and field in ``errors``."""

    errors: list[ItemProblem]


_WHY = {
    400: "A header that cannot be used (the Idempotency-Key).",
    401: "No token, or one that is unknown, malformed or revoked.",
    403: "The token's role (or name) may not do this.",
    404: "No such resource.",
    408: "The request body did not arrive in time.",
    409: "The request conflicts with the service's state.",
    413: "The request body is over the limit.",
    422: "The request is not valid: each bad item and field named.",
    429: "Too many requests with this token: retry after Retry-After seconds.",
    503: "The stream did not take the batch in time: send it again (ids make it safe).",
}

TOKEN = (401, 403)
BODY = (408, 413, 422)


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers of a route."""
    return {code: {"model": Invalid if code == 422 else Problem, "description": _WHY[code]} for code in codes}


__all__ = ["BODY", "TOKEN", "Invalid", "ItemProblem", "Problem", "errors"]
