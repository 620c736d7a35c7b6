"""HTTP routes: thin, every decision lives in the engine, the messages and the stream."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from alstream.auth import Role, token_key
from alstream.idempotency import HEADER, MAX_KEY_CHARS, check_key, with_ids_from_key
from alstream.messages import (
    InvalidBatch,
    ItemError,
    Label,
    Sample,
    parse_labels,
    parse_messages,
    parse_predict,
)
from alstream.messages.openapi import NAME_PATTERN
from alstream.messages.validation import is_name
from alstream.service.limits import RateLimiter
from alstream.service.runtime import Runtime
from alstream.service.security import Caller, LastAdmin, require
from alstream.service.serving import QueueItem
from alstream.stream import StreamUnavailable

router = APIRouter()
T = TypeVar("T")


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


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers of a route."""
    return {code: {"model": Invalid if code == 422 else Problem, "description": _WHY[code]} for code in codes}


TOKEN = (401, 403)
BODY = (408, 413, 422)


class Accepted(BaseModel):
    ids: list[str] = Field(description="Ids of the accepted samples and labels, in the order sent.")
    samples: int
    labels: int


class ReleaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    annotator: str | None = Field(
        None, min_length=1, max_length=200, pattern=NAME_PATTERN,
        description="Who holds the leases (absent: the token's name).",
    )  # fmt: skip
    ids: list[Annotated[str, Field(max_length=1000)]] = Field(
        max_length=1000, description="Leased items to give back to the queue."
    )


class ProjectOut(BaseModel):
    classes: list[str]
    keys: dict[str, str] = Field(description="The labeling page's key for each class.")
    data: str = Field(description="'features' or 'text'.")
    feature_names: list[str] | None
    n_features: int | None
    image_shape: list[int] | None = Field(
        min_length=2, max_length=2, description="[height, width] when features are pixels."
    )
    strategy: str
    model: str


class PredictOut(BaseModel):
    model_version: int
    classes: list[str]
    probabilities: list[list[float]]
    predicted: list[str]


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def _json(body: bytes) -> Any:
    """The decoded JSON of a request body (call it off the event loop: a body may be 64 MB)."""
    if not body:
        raise InvalidBatch([ItemError(-1, None, "", "empty body: send a JSON object or a list of them")])
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        problem = f"body is not valid JSON: {_json_problem(body, error)}"
        raise InvalidBatch([ItemError(-1, None, "", problem)]) from None


def _json_problem(body: bytes, error: orjson.JSONDecodeError) -> str:
    """orjson's message, plainer for the usual mistake: NaN and infinities (the edge refused bytes
    that are not UTF-8 already: :mod:`alstream.service.bodies`)."""
    text = body.decode(errors="replace")
    if text.startswith(("NaN", "Infinity"), error.pos):
        return (
            f"NaN and Infinity are not JSON numbers (line {error.lineno} column {error.colno}): send finite "
            "numbers (Python's json.dumps writes NaN unless allow_nan=False)"
        )
    return str(error)


async def _off_loop(request: Request, parse: Callable[[Any], T]) -> T:
    """``parse(decoded body)`` in the threadpool: decoding and checking a large body must not
    stall the event loop (and with it every other request, ``/health`` included)."""
    body = await request.body()  # already read whole by the edge (WholeBody)
    return await run_in_threadpool(lambda: parse(_json(body)))


def _invalid(error: InvalidBatch) -> JSONResponse:
    errors = [{"index": e.index, "id": e.id, "field": e.field, "message": e.message} for e in error.errors]
    return JSONResponse(status_code=422, content={"detail": str(error), "errors": errors})


async def _publish(runtime: Runtime, samples: list, labels: list) -> None:
    """Publish in the threadpool: waiting for the broker (or an fsync) must not stall other requests."""

    try:
        await run_in_threadpool(runtime.publish, samples, labels)  # InvalidBatch: too large, none published
    except StreamUnavailable as error:
        raise HTTPException(503, f"the stream is unavailable and the batch was not accepted; send it again "
                                 f"(a sample is stored once per id): {error}") from None  # fmt: skip


KEY_PATTERN = r"^[\x20-\x7e]*[\x21-\x7e][\x20-\x7e]*$"  # printable ASCII, not blank: as check_key
IDEMPOTENCY_HELP = (
    "Any unique string per batch (a UUID). Samples without an id get ids derived from it and their "
    "place in the batch, so sending the batch again with the same key stores nothing twice."
)


def _rate_limited(request: Request, caller: Annotated[Caller, require("send")]) -> Caller:
    _throttle(_runtime(request).send_limiter, "/send", caller)
    return caller


def _throttle(limiter: RateLimiter, route: str, caller: Caller) -> None:
    """429 with Retry-After when ``caller``'s token called ``route`` too often."""
    wait = limiter.wait(caller.key)
    if wait:
        raise HTTPException(429, f"too many requests to {route} with this token: retry in {wait:.1f} s",
                            headers={"Retry-After": str(math.ceil(wait))})  # fmt: skip


def _in_callers_name(caller: Caller, samples: list[Sample], labels: list[Label]) -> tuple[list, list]:
    """Labels (and labeled samples) in the caller's name: an annotator named must be one the token may
    act as (else 403), none named is the token's name; each carries the token's key."""
    named = [x.annotator for x in (*labels, *samples) if x.annotator is not None]
    refused = [name for name in named if not caller.may_act_as(name)]
    if refused:
        raise HTTPException(403, caller.refusal(refused))
    if len(named) < len(labels) + sum(s.label is not None for s in samples) and not is_name(caller.name):
        raise HTTPException(403, f"this token's name {caller.name!r} cannot be an annotator's (a control "
                                 "character, or over 200 characters): name the annotator, or use a token "
                                 "made with a plain name")  # fmt: skip

    def own(item: Any) -> Any:
        return dataclasses.replace(item, annotator=item.annotator or caller.name, token_key=caller.key)

    return [own(s) if s.label is not None else s for s in samples], [own(label) for label in labels]


@router.post(
    "/send",
    status_code=202,
    response_model=Accepted,
    summary="Send samples and labels into the stream",
    responses=errors(400, *TOKEN, *BODY, 429, 503),  # the body's schema: alstream.service.contract
)
async def send(
    request: Request,
    caller: Annotated[Caller, Depends(_rate_limited)],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=HEADER,
            description=IDEMPOTENCY_HELP,
            min_length=1,
            max_length=MAX_KEY_CHARS,
            pattern=KEY_PATTERN,
        ),
    ] = None,
) -> Any:
    """One message or a batch of up to 10,000. Every item is validated first; if any is invalid
    nothing is accepted (422 lists each bad item and why). 202 once the stream holds them all; 503 when
    it does not take them within ``publish_timeout_s``: send the batch again, with the same ids (or
    the same ``Idempotency-Key``)."""
    if idempotency_key is not None:
        try:
            check_key(idempotency_key)
        except ValueError as error:
            raise HTTPException(400, str(error)) from None
    runtime = _runtime(request)

    def parse(payload: Any) -> tuple[list, list]:
        if idempotency_key is not None:
            payload = with_ids_from_key(payload, key=idempotency_key, scope=caller.key)
        return parse_messages(payload, runtime.settings.project)

    try:
        samples, labels = await _off_loop(request, parse)
        samples, labels = _in_callers_name(caller, samples, labels)
        await _publish(runtime, samples, labels)
    except InvalidBatch as error:
        return _invalid(error)
    return Accepted(ids=[s.id for s in samples] + [label.id for label in labels], samples=len(samples),
                    labels=len(labels))  # fmt: skip


@router.post(
    "/labels",
    status_code=202,
    response_model=Accepted,
    summary="Label samples (for people and the page)",
    responses=errors(*TOKEN, 404, *BODY, 429, 503),
)
async def labels(request: Request, caller: Annotated[Caller, require("label")]) -> Any:
    """One label or a list: ``{"id": ..., "label": ...}`` or ``{"id": ..., "skipped": true}``, for
    samples the store holds (404 names the others). ``annotator``: one of the names the token may act
    as (absent: its name)."""
    runtime = _runtime(request)
    _throttle(runtime.labels_limiter, "/labels", caller)
    try:
        parsed = await _off_loop(request, lambda payload: parse_labels(payload, runtime.settings.project))
        _, parsed = _in_callers_name(caller, [], parsed)
        ids = list(dict.fromkeys(label.id for label in parsed))
        missing = sorted(set(ids) - await run_in_threadpool(runtime.store.known_ids, ids))
        if missing:
            shown = ", ".join(repr(i) for i in missing[:10]) + (
                f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            )
            raise HTTPException(404, f"no stored sample has the id {shown}: label only samples the service "
                                     "holds (send a sample with its label through /send)")  # fmt: skip
        await _publish(runtime, [], parsed)
    except InvalidBatch as error:
        return _invalid(error)
    return Accepted(ids=[label.id for label in parsed], samples=0, labels=len(parsed))


@router.get(
    "/queue",
    response_model=list[QueueItem],
    summary="The next samples to label",
    responses=errors(*TOKEN, 422, 429),
)
def queue(
    request: Request,
    caller: Annotated[Caller, require("label")],
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
) -> Any:
    """The most uncertain samples (and a random share), leased to ``annotator`` for a while.
    Items she already holds come first, unless ``fresh``. An annotator holds at most
    ``max_leases_per_annotator`` items and a (non-admin) token ``max_leases_per_token``: past them,
    fewer than ``n`` come back."""
    runtime = _runtime(request)
    _throttle(runtime.queue_limiter, "/queue", caller)
    name = caller.annotator(annotator)
    taken = runtime.engine.queue(n, name, fresh, token=caller.key, token_capped=not caller.any_name)
    return taken


@router.post("/queue/release", summary="Give leased items back to the queue", responses=errors(*TOKEN, *BODY))
def release(request: Request, body: ReleaseIn, caller: Annotated[Caller, require("label")]) -> dict[str, int]:
    """The page gives back the items it prefetched but did not show, e.g. after a new model.
    ``released``: how many of them the annotator held."""
    return {"released": _runtime(request).engine.release(body.ids, caller.annotator(body.annotator))}


class Me(BaseModel):
    key: str = Field(description="The token's public key.")
    name: str = Field(description="The token's name: the annotator a request that names none acts as.")
    role: str
    annotators: list[str] = Field(description="The names this token may lease, release and label as.")
    any_name: bool = Field(description="Whether it may act in any name (admin tokens).")


@router.get(
    "/me",
    response_model=Me,
    summary="Who this token is, and the names it may label as",
    responses=errors(401),
)
def me(caller: Annotated[Caller, require(None)]) -> Any:
    return Me(key=caller.key, name=caller.name, role=caller.role, annotators=list(caller.annotators),
              any_name=caller.any_name)  # fmt: skip


@router.get(
    "/project",
    response_model=ProjectOut,
    summary="The project: classes, keys, data shape",
    dependencies=[require("read")],
    responses=errors(*TOKEN),
)
def project(request: Request) -> Any:
    settings = _runtime(request).settings
    schema = settings.project
    return ProjectOut(classes=schema.classes, keys=schema.label_keys(), data=schema.data,
                      feature_names=schema.feature_names, n_features=schema.n_features,
                      image_shape=schema.image_shape, strategy=settings.strategy,
                      model=settings.model)  # fmt: skip


@router.get(
    "/stats",
    summary="Pool, labels, model versions and the learning curve",
    dependencies=[require("read")],
    responses=errors(*TOKEN),
)
def stats(request: Request) -> dict[str, Any]:
    """``store`` and ``conflicts`` count the rows the engine has followed (at most a moment behind
    the store): tallied as they arrive, not counted per request."""
    runtime = _runtime(request)
    ingest = runtime.ingestor.counts.__dict__ if runtime.ingestor else None
    return {**runtime.engine.stats(), "ingest": ingest}


@router.get(
    "/models",
    summary="Every model version with its metrics",
    dependencies=[require("admin")],
    responses=errors(*TOKEN),
)
def models(request: Request) -> list[dict[str, Any]]:
    return _runtime(request).store.models()


@router.post(
    "/predict",
    response_model=PredictOut,
    summary="Predict with the current model",
    dependencies=[require("read")],
    responses=errors(*TOKEN, 409, *BODY),
)
async def predict(request: Request) -> Any:
    """``{"features": [[...], ...]}`` for a project of features, ``{"texts": [...]}`` for one of texts:
    at most ``max_batch`` rows, each checked as the features (or the text) of a sample on ``/send``."""
    runtime = _runtime(request)
    schema = runtime.settings.project
    if schema.data == "features" and schema.n_features is None:  # the model's width fixes the count
        schema = schema.model_copy(update={"n_features": runtime.engine.config.n_features})

    def score(payload: Any) -> Response:  # the answer too is written off the loop (10,000 rows of it)
        rows = parse_predict(payload, schema)
        features = runtime.featurizer(rows) if isinstance(rows, list) else rows
        version, classes, proba = runtime.engine.predict(features)
        proba = np.ascontiguousarray(proba, dtype=np.float64)  # orjson writes C-ordered arrays only
        answer = {"model_version": version, "classes": classes, "probabilities": proba,
                  "predicted": [classes[i] for i in proba.argmax(axis=1)]}  # fmt: skip
        return Response(
            orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json"
        )

    try:
        return await _off_loop(request, score)
    except InvalidBatch as error:
        return _invalid(error)
    except LookupError as error:
        raise HTTPException(409, str(error)) from None


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
    response_model=TokenOut,
    summary="Create an API token",
    dependencies=[require("admin")],
    responses=errors(*TOKEN, *BODY),
)
def create_token(request: Request, body: TokenIn) -> Any:
    token = _runtime(request).gatekeeper.issue(body.role, body.name, body.annotators)
    names = list(dict.fromkeys([body.name, *body.annotators]))
    return TokenOut(key=token_key(token), name=body.name, role=body.role, annotators=names, token=token)


@router.get(
    "/tokens",
    response_model=list[TokenOut],
    summary="Every API token (never the tokens themselves)",
    dependencies=[require("admin")],
    responses=errors(*TOKEN),
)
def list_tokens(request: Request) -> Any:
    active = [t for t in _runtime(request).store.tokens.all() if t["revoked_at"] is None]
    return [
        TokenOut(key=t["key"], name=t["name"], role=t["role"], annotators=t["annotators"]) for t in active
    ]


@router.delete(
    "/tokens/{key}",
    status_code=204,
    summary="Revoke an API token",
    dependencies=[require("admin")],
    responses=errors(*TOKEN, 404, 409, 422),
)
def revoke_token(request: Request, key: Annotated[str, Path(max_length=64)]) -> None:
    """The last admin token is not revoked (409) unless an ``admin_token`` is configured: nobody could
    make or revoke tokens any more."""
    try:
        revoked = _runtime(request).gatekeeper.revoke(key)
    except LastAdmin:
        raise HTTPException(409, f"{key!r} is the last admin token: make another admin token first (or "
                                 "configure admin_token), then revoke this one") from None  # fmt: skip
    if not revoked:
        raise HTTPException(404, f"no active token with key {key!r}")


@router.get("/health", summary="Liveness")
async def health(request: Request) -> dict[str, Any]:  # on the loop: never queued behind the threadpool
    engine = _runtime(request).engine
    return {
        "status": "ok",
        "model_version": serving.version if (serving := engine.snapshot.serving) else None,
    }


__all__ = ["Invalid", "Problem", "errors", "router"]
