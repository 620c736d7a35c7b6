"""``GET /models`` and ``POST /predict``: the model versions, and predictions of the serving one."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, cast

import numpy as np
import orjson
from fastapi import APIRouter, Depends
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from alstream.messages import ProjectSchema, parse_predict
from alstream.service.featurize import HashedText
from alstream.service.routes.deps import RawBody, RuntimeDep, parse_body, require
from alstream.service.routes.problems import BODY, TOKEN, errors

router = APIRouter()


class PredictOut(BaseModel):
    model_version: int
    classes: list[str]
    probabilities: list[list[float]]
    predicted: list[str]


class ModelRecord(BaseModel):
    """A model version as the store records it."""

    model_config = ConfigDict(extra="forbid")

    version: int
    kind: str = Field(description="'full' or 'online'.")
    n_labels: int = Field(description="The labels it was trained on.")
    metrics: dict[str, float] = Field(description="Its metrics by name (holdout_*, stream_*); none: failed.")
    status: str = Field(description="'ok' or 'failed'.")
    error: str | None = Field(description="Why it failed.")
    mlflow_run_id: str | None
    path: str | None = Field(description="Its file, under data_dir/models (None: no file).")
    created_at: datetime


@router.get(
    "/models",
    summary="Every model version with its metrics",
    dependencies=[require("admin")],
    responses=errors(*TOKEN),
)
def models(runtime: RuntimeDep) -> list[ModelRecord]:
    return [ModelRecord.model_validate(row) for row in runtime.store.models()]


async def rows_schema(runtime: RuntimeDep) -> ProjectSchema:
    """What each row of ``/predict`` is checked against: the project's schema, with the model's width
    as the feature count when the project names none."""
    schema = runtime.settings.project
    if schema.data == "features" and schema.n_features is None:
        schema = schema.model_copy(update={"n_features": runtime.engine.config.n_features})
    return schema


@router.post(
    "/predict",
    response_model=PredictOut,
    summary="Predict with the current model",
    dependencies=[require("read")],
    responses=errors(*TOKEN, 409, *BODY),
)
async def predict(
    runtime: RuntimeDep, schema: Annotated[ProjectSchema, Depends(rows_schema)], body: RawBody
) -> Response:
    """``{"features": [[...], ...]}`` for a project of features, ``{"texts": [...]}`` for one of texts:
    at most ``max_batch`` rows, each checked as the features (or the text) of a sample on ``/send``."""

    def score(raw: bytes) -> Response:  # the answer too is written off the loop (10,000 rows of it)
        rows = parse_predict(raw, schema)
        texts = cast(HashedText, runtime.featurizer)  # rows are texts in a project of texts
        features = texts(rows) if isinstance(rows, list) else rows
        version, classes, proba = runtime.engine.predict(features)
        proba = np.ascontiguousarray(proba, dtype=np.float64)  # orjson writes C-ordered arrays only
        answer = {
            "model_version": version,
            "classes": classes,
            "probabilities": proba,
            "predicted": [classes[i] for i in proba.argmax(axis=1)],
        }
        return Response(
            orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json"
        )

    return await parse_body(body, score)  # no model yet: 409 (alstream.service.app)
