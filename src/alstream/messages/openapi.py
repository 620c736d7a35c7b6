"""The request bodies of ``POST /send``, ``/labels`` and ``/predict`` as JSON Schema, for one project.

The schemas say exactly what :mod:`alstream.messages.validation` accepts -- the project's classes,
its feature count or names, every length and character rule -- so that a client generated from the
OpenAPI document, or a tool that tests it (schemathesis), sees the same contract the service
applies. Two rules are beyond JSON Schema and only the checks apply them: ``meta`` is at most
``max_meta_bytes`` once encoded, and a message is at most ``max_message_bytes``.

>>> schema = send_body(ProjectSchema(classes=["a", "b"], n_features=2))
>>> sample = schema["oneOf"][0]["oneOf"][0]
>>> sample["required"], sample["properties"]["features"]["minItems"]
(['features'], 2)
"""

from __future__ import annotations

from typing import Any

from alstream.messages.schema import FLOAT32_LIMIT, MAX_ANNOTATOR_CHARS, MAX_SAFE_INTEGER, ProjectSchema

_CONTROL = "\\x00-\\x1f\\x7f-\\x9f"
NAME_PATTERN = f"^[^{_CONTROL}]*[^\\s{_CONTROL}][^{_CONTROL}]*$"  # no control character, not blank
KEY_PATTERN = f"^[^{_CONTROL}]*$"
TEXT_PATTERN = "^[^\\x00]*\\S[^\\x00]*$"  # not blank, no NUL
NULL = {"type": "null"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, NULL]}


def _name(max_chars: int, description: str) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": max_chars, "pattern": NAME_PATTERN,
            "description": description}  # fmt: skip


def _id(project: ProjectSchema) -> dict[str, Any]:
    text = _name(project.max_id_chars, "The sample's id: no control characters, not blank.")
    number = {"type": "integer", "minimum": -MAX_SAFE_INTEGER, "maximum": MAX_SAFE_INTEGER,
              "description": "Becomes its string."}  # fmt: skip
    return {"anyOf": [text, number], "examples": ["s-1"]}


def _label(project: ProjectSchema) -> dict[str, Any]:
    numbers = [int(c) for c in project.classes if c.lstrip("-").isdigit() and str(int(c)) == c]
    return {"enum": [*project.classes, *numbers], "description": "One of the project's classes.",
            "examples": [project.classes[0]]}  # fmt: skip


def _number() -> dict[str, Any]:
    return {"type": "number", "exclusiveMinimum": -FLOAT32_LIMIT, "exclusiveMaximum": FLOAT32_LIMIT}


def _features(project: ProjectSchema) -> dict[str, Any]:
    listed: dict[str, Any] = {"type": "array", "items": _number(), "minItems": project.n_features or 1}
    if project.n_features is not None:
        listed["maxItems"] = project.n_features
    if project.feature_names is None:
        return {**listed, "description": "Numbers within float32's range, in the project's order."}
    named = {"type": "object", "properties": {name: _number() for name in project.feature_names},
             "required": list(project.feature_names), "additionalProperties": False}  # fmt: skip
    return {"anyOf": [listed, named], "description": "Numbers: a list in the order of feature_names, or "
            "an object with exactly those names."}  # fmt: skip


META_VALUE_REF = "#/components/schemas/MetaValue"


def meta_value() -> dict[str, Any]:
    """Any JSON value whose objects' keys hold no control character (a component: it refers to itself)."""
    ref = {"$ref": META_VALUE_REF}
    scalars = [NULL, {"type": "boolean"}, {"type": "string"}, {"type": "number"}]
    return {"anyOf": [*scalars, {"type": "array", "items": ref}, _meta_object(ref)]}


def _meta_object(values: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "propertyNames": {"pattern": KEY_PATTERN}, "additionalProperties": values}


def _text(project: ProjectSchema) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": project.max_text_chars, "pattern": TEXT_PATTERN,
            "description": "The text: not blank, no NUL character."}  # fmt: skip


def sample_schema(project: ProjectSchema, *, on_send: bool = True) -> dict[str, Any]:
    """One sample (on ``/send``, ``kind`` may say "sample"; absent means a sample too)."""
    data = project.data
    other = "text" if data == "features" else "features"
    meta = _meta_object({"$ref": META_VALUE_REF})
    meta["description"] = (
        f"Any JSON object (keys without control characters) of at most {project.max_meta_bytes} bytes."
    )
    properties: dict[str, Any] = {
        "id": _nullable(_id(project)),
        data: _features(project) if data == "features" else _text(project),
        other: NULL,
        "meta": _nullable(meta),
        "label": _nullable(_label(project)),
        "annotator": _nullable(_name(MAX_ANNOTATOR_CHARS, "Who gave the label.")),
    }
    if on_send:
        properties["kind"] = {"enum": ["sample", None], "description": 'Absent or null: "sample".'}
    return {"type": "object", "title": "Sample", "required": [data], "properties": properties,
            "additionalProperties": False}  # fmt: skip


def label_schema(project: ProjectSchema, *, on_send: bool = False) -> dict[str, Any]:
    """One label: a class, or ``"skipped": true`` with no label (on ``/send``, ``"kind": "label"``)."""
    common = {"id": _id(project), "annotator": _nullable(_name(MAX_ANNOTATOR_CHARS, "Who labels it."))}
    if on_send:
        common["kind"] = {"const": "label"}
    required = ["id", "kind"] if on_send else ["id"]
    labeled = {**common, "label": _label(project), "skipped": {"enum": [False, None]}}
    skipped = {**common, "label": NULL, "skipped": {"const": True}}
    return {
        "title": "Label",
        "oneOf": [_closed(labeled, [*required, "label"]), _closed(skipped, [*required, "skipped"])],
    }


def _closed(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties, "additionalProperties": False}


def _one_or_many(item: dict[str, Any], project: ProjectSchema) -> dict[str, Any]:
    many = {"type": "array", "items": item, "minItems": 1, "maxItems": project.max_batch}
    return {"oneOf": [item, many]}


def send_body(project: ProjectSchema) -> dict[str, Any]:
    """``POST /send``: one item or a list of items, each a sample or (with ``kind``) a label."""
    item = {"oneOf": [sample_schema(project), label_schema(project, on_send=True)]}
    return _one_or_many(item, project)


def labels_body(project: ProjectSchema) -> dict[str, Any]:
    """``POST /labels``: one label or a list of labels (no ``kind`` there)."""
    return _one_or_many(label_schema(project), project)


def predict_body(project: ProjectSchema) -> dict[str, Any]:
    """``POST /predict``: rows of features, or texts, as a sample carries them."""
    key = "texts" if project.data == "text" else "features"
    row = _text(project) if key == "texts" else _features(project)
    rows = {"type": "array", "items": row, "minItems": 1, "maxItems": project.max_batch}
    return {"type": "object", "required": [key], "properties": {key: rows}, "additionalProperties": False}


def request_body(schema: dict[str, Any], examples: list[Any] | None = None) -> dict[str, Any]:
    """An OpenAPI ``requestBody`` of JSON with ``schema``."""
    content: dict[str, Any] = {"schema": schema}
    if examples:
        content["examples"] = {f"example {i + 1}": {"value": value} for i, value in enumerate(examples)}
    return {"required": True, "content": {"application/json": content}}


__all__ = [
    "META_VALUE_REF",
    "label_schema",
    "labels_body",
    "meta_value",
    "predict_body",
    "request_body",
    "sample_schema",
    "send_body",
]
