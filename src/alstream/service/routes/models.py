"""``GET /models`` and ``POST /predict``: the model versions, and predictions of the serving one."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, cast

import numpy as np
import orjson
from fastapi import APIRouter, Depends
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator, WithJsonSchema

from alstream.messages import ProjectSchema, parse_predict
from alstream.service.featurize import HashedText
from alstream.service.routes.deps import RawBody, RuntimeDep, parse_body, require
from alstream.service.routes.error_responses import BODY, TOKEN, errors

router = APIRouter()


def _probabilities(value: Any) -> np.ndarray:
    """``value`` as a C-ordered array of float64 (orjson writes no other), one row per row asked."""
    array = np.ascontiguousarray(value, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"probabilities are rows of numbers, not an array of {array.ndim} dimensions")
    return array


Probabilities = Annotated[
    np.ndarray,
    PlainValidator(_probabilities),
    PlainSerializer(lambda array: array.tolist(), return_type=list[list[float]]),
    WithJsonSchema({"type": "array", "items": {"type": "array", "items": {"type": "number"}}}),
]


class PredictOut(BaseModel):
    """Each row's probabilities and most probable class, by the version that serves."""

    model_config = ConfigDict(extra="forbid")

    model_version: int = Field(description="The version that predicted.")
    classes: list[str] = Field(description="The model's classes, the order of each row's probabilities.")
    probabilities: Probabilities = Field(description="One row per row asked: each class's probability.")
    predicted: list[str] = Field(description="Each row's most probable class.")

    def encoded(self) -> bytes:
        """This answer's JSON, as :meth:`model_dump_json` writes it but faster (10,000 rows)."""
        return orjson.dumps(vars(self), option=orjson.OPT_SERIALIZE_NUMPY)


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
        predicted = [classes[i] for i in proba.argmax(axis=1)]
        answer = PredictOut(model_version=version, classes=classes, probabilities=proba, predicted=predicted)
        return Response(answer.encoded(), media_type="application/json")

    return await parse_body(body, score)  # no model yet: 409 (alstream.service.app)
