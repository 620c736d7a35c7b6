"""OpenAPI documentation only: the shapes of ``POST /send`` and ``POST /labels`` bodies for the
API docs and clients. Parsing never uses them (see :mod:`alstream.messages.validation`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from alstream.messages.schema import MAX_ANNOTATOR_CHARS


class SampleIn(BaseModel):
    """A sample as clients send it (documentation only: parsing uses :func:`parse_samples`)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"id": "s-1", "features": [0.0, 3.5, 12.0], "meta": {"source": "camera-2"}},
                {"id": "s-2", "text": "the parcel arrived broken", "label": "complaint", "annotator": "ana"},
            ]
        },
    )

    kind: Literal["sample"] = Field("sample", description='"sample" (the default when absent).')
    id: str | int | None = Field(
        None,
        description="Unique sample id (at most max_id_chars); integers become strings; a uuid4 hex is "
        "generated when absent.",
        examples=["s-1"],
    )
    features: list[float] | dict[str, float] | None = Field(
        None,
        description="Finite numbers: a list of n_features, or an object with exactly the project's "
        "feature_names. Required when the project's data is 'features'.",
        examples=[[0.0, 3.5, 12.0]],
    )
    text: str | None = Field(
        None,
        description="Non-empty text of at most max_text_chars. Required when the project's data is 'text'.",
        examples=["the parcel arrived broken"],
    )
    meta: dict[str, Any] | None = Field(
        None, description="Any JSON object of at most max_meta_bytes, kept with the sample."
    )
    label: str | int | None = Field(
        None, description="A known class, when the sample arrives already labelled.", examples=["3"]
    )
    annotator: str | None = Field(
        None, max_length=MAX_ANNOTATOR_CHARS, description="Who gave the label.", examples=["ana"]
    )


class LabelIn(BaseModel):
    """A label for a sample already sent (documentation only: parsing uses :func:`parse_labels`)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"kind": "label", "id": "s-1", "label": "3", "annotator": "ana"},
                {"kind": "label", "id": "s-2", "skipped": True},
            ]
        },
    )

    kind: Literal["label"] = Field(
        "label", description='Must be "label" on /send (where an item without kind is a sample).'
    )
    id: str | int = Field(description="The id of the labelled sample.", examples=["s-1"])
    label: str | int | None = Field(
        None, description="One of the project's classes; required unless skipped.", examples=["3"]
    )
    skipped: bool = Field(False, description="True when the person could not label it; then no label.")
    annotator: str | None = Field(
        None, max_length=MAX_ANNOTATOR_CHARS, description="Who gave the label.", examples=["ana"]
    )


def send_openapi_extra(max_batch: int = 10_000) -> dict[str, Any]:
    """``openapi_extra`` for ``POST /send``: one item, or a list of items, each a sample or a label."""
    item = {"oneOf": [SampleIn.model_json_schema(), LabelIn.model_json_schema()]}
    body = {"oneOf": [item, {"type": "array", "items": item, "minItems": 1, "maxItems": max_batch}]}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": body}}}}


def labels_openapi_extra(max_batch: int = 10_000) -> dict[str, Any]:
    """``openapi_extra`` for ``POST /labels``: one label, or a list of labels (no ``kind`` there)."""
    item = LabelIn.model_json_schema()
    del item["properties"]["kind"]
    item["examples"] = [{k: v for k, v in example.items() if k != "kind"} for example in item["examples"]]
    body = {"oneOf": [item, {"type": "array", "items": item, "minItems": 1, "maxItems": max_batch}]}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": body}}}}
