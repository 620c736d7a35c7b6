"""``/project``, ``/me``, ``/stats`` and ``/health``: what the service is, who calls, how it does."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from alstream.service.routes.deps import AnyCaller, RuntimeDep, require
from alstream.service.routes.error_responses import TOKEN, errors
from alstream.service.routes.stats import Stats, stats_out

router = APIRouter()


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


class Health(BaseModel):
    status: Literal["ok"]
    model_version: int | None = Field(description="The version that serves (None: none yet).")


class Me(BaseModel):
    key: str = Field(description="The token's public key.")
    name: str = Field(description="The token's name: the annotator a request that names none acts as.")
    role: str
    annotators: list[str] = Field(description="The names this token may lease, release and label as.")
    any_name: bool = Field(description="Whether it may act in any name (admin tokens).")


@router.get("/me", summary="Who this token is, and the names it may label as", responses=errors(401))
def me(caller: AnyCaller) -> Me:
    return Me(
        key=caller.key,
        name=caller.name,
        role=caller.role,
        annotators=list(caller.annotators),
        any_name=caller.any_name,
    )


@router.get(
    "/project",
    summary="The project: classes, keys, data shape",
    dependencies=[require("read")],
    responses=errors(*TOKEN),
)
def project(runtime: RuntimeDep) -> ProjectOut:
    settings = runtime.settings
    schema = settings.project
    return ProjectOut(
        classes=schema.classes,
        keys=schema.label_keys(),
        data=schema.data,
        feature_names=schema.feature_names,
        n_features=schema.n_features,
        image_shape=schema.image_shape,
        strategy=settings.strategy,
        model=settings.model,
    )


@router.get(
    "/stats",
    summary="Pool, labels, model versions and the learning curve",
    dependencies=[require("read")],
    responses=errors(*TOKEN),
    response_model_exclude_unset=True,  # a key the numbers lack stays out (a drift before any model)
)
def stats(runtime: RuntimeDep) -> Stats:
    """A full service's numbers, or a stateless replica's (``stateless``: true). ``store`` and
    ``conflicts`` count the rows the engine has followed (at most a moment behind the store):
    tallied as they arrive, not counted per request."""
    ingest = runtime.ingestor.counts.__dict__ if runtime.ingestor else None
    return stats_out(runtime.engine.stats(), ingest)


@router.get("/health", summary="Liveness")
async def health(runtime: RuntimeDep) -> Health:  # on the loop: never queued behind the threadpool
    serving = runtime.engine.snapshot.serving
    return Health(status="ok", model_version=serving.version if serving else None)
