"""HTTP routes: thin, every decision lives in the engine, the messages and the stream."""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from alstream.auth import Role, token_key
from alstream.idempotency import HEADER, check_key, with_ids_from_key
from alstream.messages import (
    InvalidBatch,
    Label,
    Sample,
    SampleIn,
    labels_openapi_extra,
    parse_labels,
    parse_messages,
    send_openapi_extra,
)
from alstream.service.limits import RateLimiter
from alstream.service.runtime import Runtime
from alstream.service.security import Caller, LastAdmin, require
from alstream.stream import StreamUnavailable

router = APIRouter()


class Accepted(BaseModel):
    ids: list[str] = Field(description="Ids of the accepted samples and labels, in the order sent.")
    samples: int
    labels: int


class QueueEntry(BaseModel):
    id: str
    score: float = Field(description="The strategy's uncertainty score (higher: less sure).")
    reason: str = Field(description="'uncertainty', 'random' (unbiased accuracy estimate) or 'cold start'.")
    strategy: str
    model_version: int = Field(description="The model version whose scores chose this item (0: none yet).")
    probabilities: dict[str, float]
    predicted: str | None
    features: list[float] | None = Field(description="The sample's features as stored (None: a text).")
    text: str | None
    meta: dict[str, Any] | None


class ReleaseIn(BaseModel):
    annotator: str | None = Field(
        None, min_length=1, max_length=200, description="Who holds the leases (absent: the token's name)."
    )
    ids: list[str] = Field(max_length=1000, description="Leased items to give back to the queue.")


class ProjectOut(BaseModel):
    classes: list[str]
    keys: dict[str, str] = Field(description="The labeling page's key for each class.")
    data: str = Field(description="'features' or 'text'.")
    feature_names: list[str] | None
    n_features: int | None
    image_shape: tuple[int, int] | None = Field(description="(height, width) when features are pixels.")
    strategy: str
    model: str


class PredictIn(BaseModel):
    features: list[list[float]] | None = Field(
        None, description="Projects of features: rows of features, in the project's feature order."
    )
    texts: list[str] | None = Field(None, description="Projects of texts: the texts.")


class PredictOut(BaseModel):
    model_version: int
    classes: list[str]
    probabilities: list[list[float]]
    predicted: list[str]


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


async def _json(request: Request) -> Any:
    body = await request.body()
    if not body:
        raise HTTPException(422, "empty body: send a JSON object or a list of them")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise HTTPException(422, f"body is not valid JSON: {_json_problem(body, error)}") from None


def _json_problem(body: bytes, error: orjson.JSONDecodeError) -> str:
    """orjson's message, plainer for the usual mistakes: bytes that are not UTF-8, NaN and infinities."""
    try:
        text = body.decode()
    except UnicodeDecodeError as bad:
        return f"not UTF-8: byte {body[bad.start]:#04x} at offset {bad.start}"
    if text.startswith(("NaN", "Infinity"), error.pos):
        return (
            f"NaN and Infinity are not JSON numbers (line {error.lineno} column {error.colno}): send finite "
            "numbers (Python's json.dumps writes NaN unless allow_nan=False)"
        )
    return str(error)


def _invalid(error: InvalidBatch) -> JSONResponse:
    errors = [{"index": e.index, "id": e.id, "field": e.field, "message": e.message} for e in error.errors]
    return JSONResponse(status_code=422, content={"detail": str(error), "errors": errors})


async def _publish(runtime: Runtime, samples: list, labels: list) -> None:
    """Publish in the threadpool: waiting for the broker (or an fsync) must not stall other requests."""

    def publish() -> None:
        if samples:
            runtime.publish_samples(samples)
        if labels:
            runtime.publish_labels(labels)

    try:
        await run_in_threadpool(publish)
    except StreamUnavailable as error:
        raise HTTPException(503, f"the stream is unavailable and the batch was not accepted; send it again "
                                 f"(a sample is stored once per id): {error}") from None  # fmt: skip


IDEMPOTENCY_HELP = (
    "Any unique string per batch (a UUID). Samples without an id get ids derived from it and their "
    "place in the batch, so sending the batch again with the same key stores nothing twice."
)


def _rate_limited(request: Request, caller: Annotated[Caller, require("send")]) -> Caller:
    wait = _runtime(request).send_limiter.wait(caller.key)
    if wait:
        raise HTTPException(429, f"too many requests to /send with this token: retry in {wait:.1f} s",
                            headers={"Retry-After": str(math.ceil(wait))})  # fmt: skip
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

    def own(item: Any) -> Any:
        return dataclasses.replace(item, annotator=item.annotator or caller.name, token_key=caller.key)

    return [own(s) if s.label is not None else s for s in samples], [own(label) for label in labels]


@router.post(
    "/send",
    status_code=202,
    response_model=Accepted,
    summary="Send samples and labels into the stream",
    openapi_extra=send_openapi_extra(),
)
async def send(
    request: Request,
    caller: Annotated[Caller, Depends(_rate_limited)],
    idempotency_key: Annotated[str | None, Header(alias=HEADER, description=IDEMPOTENCY_HELP)] = None,
) -> Any:
    """One message or a batch of up to 10,000. Every item is validated first; if any is invalid
    nothing is accepted (422 lists each bad item and why). 202 once the stream holds them all; 503 when
    it does not take them within ``publish_timeout_s``: send the batch again, with the same ids (or
    the same ``Idempotency-Key``)."""
    payload = await _json(request)
    if idempotency_key is not None:
        try:
            check_key(idempotency_key)
        except ValueError as error:
            raise HTTPException(400, str(error)) from None
        payload = with_ids_from_key(payload, key=idempotency_key, scope=caller.key)
    runtime = _runtime(request)
    try:
        samples, labels = parse_messages(payload, runtime.settings.project)
    except InvalidBatch as error:
        return _invalid(error)
    samples, labels = _in_callers_name(caller, samples, labels)
    await _publish(runtime, samples, labels)
    return Accepted(ids=[s.id for s in samples] + [label.id for label in labels], samples=len(samples),
                    labels=len(labels))  # fmt: skip


@router.post(
    "/labels",
    status_code=202,
    response_model=Accepted,
    summary="Label samples (for people and the page)",
    openapi_extra=labels_openapi_extra(),  # documented only: parse_labels checks the body, as on /send
)
async def labels(request: Request, caller: Annotated[Caller, require("label")]) -> Any:
    """One label or a list: ``{"id": ..., "label": ...}`` or ``{"id": ..., "skipped": true}``, for
    samples the store holds. ``annotator``: one of the names the token may act as (absent: its name)."""
    payload = await _json(request)
    runtime = _runtime(request)
    _throttle(runtime.labels_limiter, "/labels", caller)
    try:
        parsed = parse_labels(payload, runtime.settings.project)
    except InvalidBatch as error:
        return _invalid(error)
    _, parsed = _in_callers_name(caller, [], parsed)
    ids = list(dict.fromkeys(label.id for label in parsed))
    missing = sorted(set(ids) - await run_in_threadpool(runtime.store.known_ids, ids))
    if missing:
        shown = ", ".join(repr(i) for i in missing[:10]) + (
            f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        )
        raise HTTPException(422, f"no stored sample has the id {shown}: label only samples the service holds "
                                 "(send a sample with its label through /send)")  # fmt: skip
    await _publish(runtime, [], parsed)
    return Accepted(ids=[label.id for label in parsed], samples=0, labels=len(parsed))


@router.get(
    "/queue",
    response_model=list[QueueEntry],
    summary="The next samples to label",
)
def queue(
    request: Request,
    caller: Annotated[Caller, require("label")],
    n: Annotated[int, Query(ge=1, le=100, description="How many items.")] = 10,
    annotator: Annotated[
        str | None,
        Query(min_length=1, max_length=200, description="Who labels them (absent: the token's name)."),
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
    return [item.__dict__ for item in taken]


@router.post("/queue/release", summary="Give leased items back to the queue")
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


@router.get("/me", response_model=Me, summary="Who this token is, and the names it may label as")
def me(caller: Annotated[Caller, require(None)]) -> Any:
    return Me(key=caller.key, name=caller.name, role=caller.role, annotators=list(caller.annotators),
              any_name=caller.any_name)  # fmt: skip


@router.get(
    "/project",
    response_model=ProjectOut,
    summary="The project: classes, keys, data shape",
    dependencies=[require("read")],
)
def project(request: Request) -> Any:
    settings = _runtime(request).settings
    schema = settings.project
    return ProjectOut(classes=schema.classes, keys=schema.label_keys(), data=schema.data,
                      feature_names=schema.feature_names, n_features=schema.n_features,
                      image_shape=schema.image_shape, strategy=settings.strategy,
                      model=settings.model)  # fmt: skip


@router.get(
    "/stats", summary="Pool, labels, model versions and the learning curve", dependencies=[require("read")]
)
def stats(request: Request) -> dict[str, Any]:
    """``store`` and ``conflicts`` count the rows the engine has followed (at most a moment behind
    the store): tallied as they arrive, not counted per request."""
    runtime = _runtime(request)
    tally = runtime.engine.tally
    return {**runtime.engine.stats(), "store": tally.counts(), "conflicts": tally.conflicts(),
            "ingest": runtime.ingestor.counts.__dict__ if runtime.ingestor else None}  # fmt: skip


@router.get("/models", summary="Every model version with its metrics", dependencies=[require("admin")])
def models(request: Request) -> list[dict[str, Any]]:
    return _runtime(request).store.models()


@router.post(
    "/predict",
    response_model=PredictOut,
    summary="Predict with the current model",
    dependencies=[require("read")],
)
def predict(request: Request, body: PredictIn) -> Any:
    """``{"features": [[...], ...]}`` for a project of features, ``{"texts": [...]}`` for one of texts."""
    runtime = _runtime(request)
    if runtime.settings.project.data == "text":
        if body.texts is None or body.features is not None:
            raise HTTPException(422, 'this project\'s samples are texts: send {"texts": ["...", ...]}')
        if not body.texts:
            raise HTTPException(422, "texts must be a non-empty list of strings")
        features = runtime.featurizer(body.texts)
    else:
        if body.features is None or body.texts is not None:
            raise HTTPException(422, 'this project\'s samples are features: send {"features": [[...], ...]}')
        expected = runtime.engine.config.n_features
        if not body.features or any(len(row) != expected for row in body.features):  # ragged: no array
            raise HTTPException(422, f"features must be rows of {expected} numbers")
        features = np.asarray(body.features, dtype=np.float64)
        if not np.isfinite(features).all():
            raise HTTPException(422, "features must be finite numbers")
    try:
        version, classes, proba = runtime.engine.predict(features)
    except LookupError as error:
        raise HTTPException(409, str(error)) from None
    return PredictOut(model_version=version, classes=classes, probabilities=proba.tolist(),
                      predicted=[classes[i] for i in proba.argmax(axis=1)])  # fmt: skip


AnnotatorName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S")]


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


@router.post("/tokens", status_code=201, response_model=TokenOut, summary="Create an API token",
             dependencies=[require("admin")])  # fmt: skip
def create_token(request: Request, body: TokenIn) -> Any:
    token = _runtime(request).gatekeeper.issue(body.role, body.name, body.annotators)
    names = list(dict.fromkeys([body.name, *body.annotators]))
    return TokenOut(key=token_key(token), name=body.name, role=body.role, annotators=names, token=token)


@router.get("/tokens", response_model=list[TokenOut], summary="Every API token (never the tokens themselves)",
            dependencies=[require("admin")])  # fmt: skip
def list_tokens(request: Request) -> Any:
    active = [t for t in _runtime(request).store.tokens.all() if t["revoked_at"] is None]
    return [
        TokenOut(key=t["key"], name=t["name"], role=t["role"], annotators=t["annotators"]) for t in active
    ]


@router.delete(
    "/tokens/{key}", status_code=204, summary="Revoke an API token", dependencies=[require("admin")]
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
def health(request: Request) -> dict[str, Any]:
    engine = _runtime(request).engine
    return {
        "status": "ok",
        "model_version": engine.serving.version if engine.serving else None,
    }


__all__ = ["SampleIn", "router"]
