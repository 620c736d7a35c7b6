"""The request bodies of ``POST /send``, ``/labels`` and ``/predict`` as JSON Schema, for one project:
the JSON Schema of the models of :mod:`alstream.messages.contract`, with the models inlined (only
``MetaValue``, which refers to itself, is a component).

They say exactly what the models accept -- the project's classes, its
feature count or names, every length and character rule -- so that a client generated from the
OpenAPI document, or a tool that tests it (schemathesis), sees the same contract the service
applies. Rules beyond JSON Schema are the models' Python validators only: ``meta`` is at most
``max_meta_bytes`` once encoded, an id at most 2,000 bytes of UTF-8, and a message is at most
``max_message_bytes`` (the service's check before publishing).

>>> schema = send_body(ProjectSchema(classes=["a", "b"], n_features=2))
>>> sample = schema["anyOf"][0]["oneOf"][0]
>>> sample["required"], sample["properties"]["features"]["minItems"]
(['features'], 2)
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from alstream.messages.contract import KEY_PATTERN, NAME_PATTERN, TEXT_PATTERN, MetaValue, contract
from alstream.messages.schema import ProjectSchema

META_VALUE_REF = "#/components/schemas/MetaValue"
_COMPONENTS = "#/components/schemas/"


class _Generate(GenerateJsonSchema):
    """pydantic's JSON Schema, with no title on each field, and an object whose keys follow a
    pattern written with ``propertyNames`` (pydantic writes ``patternProperties``, which lets any
    other key through)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def dict_schema(self, schema: core_schema.DictSchema) -> JsonSchemaValue:
        json_schema = super().dict_schema(schema)
        patterns = json_schema.get("patternProperties")
        if patterns is not None and len(patterns) == 1 and "additionalProperties" not in json_schema:
            [(pattern, values)] = patterns.items()
            del json_schema["patternProperties"]
            json_schema["propertyNames"] = {"pattern": pattern}
            json_schema["additionalProperties"] = values
        return json_schema


def _schema(adapter: TypeAdapter[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON Schema of ``adapter`` with its models inlined, and the definitions left (MetaValue)."""
    schema = adapter.json_schema(ref_template=_COMPONENTS + "{model}", schema_generator=_Generate)
    defs = schema.pop("$defs", {})
    kept = {"MetaValue": defs["MetaValue"]} if "MetaValue" in defs else {}

    def inline(value: Any) -> Any:
        if isinstance(value, dict):
            ref = value.get("$ref")
            name = ref[len(_COMPONENTS) :] if isinstance(ref, str) and ref.startswith(_COMPONENTS) else None
            if name is not None and name not in kept:
                return inline({**defs[name], **{k: v for k, v in value.items() if k != "$ref"}})
            return {key: inline(item) for key, item in value.items()}
        if isinstance(value, list):
            return [inline(item) for item in value]
        return value

    return inline(schema), inline(kept)


def meta_value() -> dict[str, Any]:
    """Any JSON value whose objects' keys hold no control character (a component: it refers to itself)."""
    return _schema(TypeAdapter(MetaValue))[1]["MetaValue"]


def send_body(project: ProjectSchema) -> dict[str, Any]:
    """``POST /send``: one item or a list of items, each a sample or (with ``kind``) a label."""
    return copy.deepcopy(_bodies(project.model_dump_json())["send"])


def labels_body(project: ProjectSchema) -> dict[str, Any]:
    """``POST /labels``: one label or a list of labels (no ``kind`` there)."""
    return copy.deepcopy(_bodies(project.model_dump_json())["labels"])


def predict_body(project: ProjectSchema) -> dict[str, Any]:
    """``POST /predict``: rows of features, or texts, as a sample carries them."""
    return copy.deepcopy(_bodies(project.model_dump_json())["predict"])


@functools.lru_cache(maxsize=16)
def _bodies(project_json: str) -> dict[str, dict[str, Any]]:
    """The three bodies' schemas, generated once per project."""
    models = contract(ProjectSchema.model_validate_json(project_json))
    bodies = {"send": models.send.schema, "labels": models.labels.schema, "predict": models.predict}
    return {name: _schema(adapter)[0] for name, adapter in bodies.items()}


def request_body(schema: dict[str, Any], examples: list[Any] | None = None) -> dict[str, Any]:
    """An OpenAPI ``requestBody`` of JSON with ``schema``."""
    content: dict[str, Any] = {"schema": schema}
    if examples:
        content["examples"] = {f"example {i + 1}": {"value": value} for i, value in enumerate(examples)}
    return {"required": True, "content": {"application/json": content}}


__all__ = [
    "KEY_PATTERN",
    "META_VALUE_REF",
    "NAME_PATTERN",
    "TEXT_PATTERN",
    "labels_body",
    "meta_value",
    "predict_body",
    "request_body",
    "send_body",
]
