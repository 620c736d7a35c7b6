"""Bodies in, values out: ``parse_samples`` / ``parse_labels`` / ``parse_messages`` /
``parse_predict`` take a request body (its JSON bytes, or the decoded JSON) and accept all of it or
raise :class:`InvalidBatch` naming every bad item (the rules are in :mod:`alstream.messages`).

The models of :mod:`alstream.messages.contract` decide; bytes are checked as they are, in Rust.
A refused body is checked again from its decoded JSON, which says what is wrong: JSON that is not
JSON (:func:`decode_body`), a batch that is not one (:func:`batch_items`), and every bad item
(:class:`~alstream.messages.problems.Explain`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import numpy as np
import orjson
from pydantic import ValidationError

from alstream.messages import collector
from alstream.messages.contract import Body, DefaultId, contract, float32_rows
from alstream.messages.problems import Explain, type_name
from alstream.messages.schema import ProjectSchema
from alstream.messages.values import MAX_ERRORS, InvalidBatch, ItemError, Label, Sample


def parse_samples(payload: Any, schema: ProjectSchema, default_id: DefaultId | None = None) -> list[Sample]:
    """One sample or a list of them (``/send`` without ``kind``); ``default_id(index)`` names a
    sample sent without an id (default: a UUIDv7). InvalidBatch lists every bad item."""
    return _parse(contract(schema).samples, payload, schema, "samples", default_id)


def parse_labels(payload: Any, schema: ProjectSchema) -> list[Label]:
    """One label or a list of them (``/labels``); InvalidBatch lists every bad item."""
    return _parse(contract(schema).labels, payload, schema, "labels", None)


def parse_messages(
    payload: Any, schema: ProjectSchema, default_id: DefaultId | None = None
) -> tuple[list[Sample], list[Label]]:
    """The ``/send`` body: samples and labels mixed, told apart by ``kind`` (absent: "sample").

    Returns (samples, labels), each in batch order; labels may refer to samples of the same batch.
    ``default_id(index)`` names a sample sent without an id (default: a UUIDv7).
    """
    values = _parse(contract(schema).send, payload, schema, "send", default_id)
    return [v for v in values if isinstance(v, Sample)], [v for v in values if isinstance(v, Label)]


def parse_predict(payload: Any, schema: ProjectSchema) -> np.ndarray | list[str]:
    """The body of ``/predict``: ``{"features": [row, ...]}`` (each row as a sample's ``features``)
    for a project of features, as one float32 matrix; ``{"texts": [...]}`` for one of texts, as
    checked texts. At most ``max_batch`` rows; InvalidBatch names every bad row by its index."""
    key = "texts" if schema.data == "text" else "features"
    adapter = contract(schema).predict
    try:
        if isinstance(payload, bytes):
            rows = getattr(adapter.validate_json(payload), key)
        else:
            rows = getattr(adapter.validate_python(payload), key)
    except ValidationError:
        rows = _predict_rows(decode_body(payload) if isinstance(payload, bytes) else payload, schema, key)
    return rows if key == "texts" else np.stack(float32_rows(rows))


def _predict_rows(payload: Any, schema: ProjectSchema, key: str) -> list[Any]:
    """What is wrong with a refused ``/predict`` body, as InvalidBatch."""
    if not isinstance(payload, Mapping) or set(payload) != {key}:
        example = '["...", ...]' if key == "texts" else "[[...], ...]"
        hint = f'this project\'s samples are {schema.data}: send {{"{key}": {example}}}'
        raise InvalidBatch([ItemError(-1, None, "", hint)])
    rows = payload[key]
    if not isinstance(rows, list) or not rows:
        raise InvalidBatch([ItemError(-1, None, key, f"expected a non-empty list, got {type_name(rows)}")])
    if len(rows) > schema.max_batch:
        too_many = f"{len(rows)} rows, at most {schema.max_batch} allowed"
        raise InvalidBatch([ItemError(-1, None, key, too_many)])
    try:
        return getattr(contract(schema).predict.validate_python(payload), key)
    except ValidationError as error:
        explain = Explain(schema, "predict")
        by_row: dict[int, list[tuple[tuple, Any]]] = {}
        for found in error.errors():
            index, *inside = cast(tuple[int, ...], found["loc"][1:])
            if inside[:1] in (["list"], ["named"]):
                inside = inside[1:]  # the form of the features: the union's tag
            by_row.setdefault(index, []).append((tuple(inside), found))
        errors = [ItemError(i, None, key, explain.row(key, rows[i], by_row[i])) for i in sorted(by_row)]
        raise _refused(errors) from None


def _parse(body: Body, payload: Any, schema: ProjectSchema, shape: str, default_id: DefaultId | None) -> Any:
    with collector.paused():
        return _checked(body, payload, schema, shape, default_id)


def _checked(
    body: Body, payload: Any, schema: ProjectSchema, shape: str, default_id: DefaultId | None
) -> Any:
    context = {"default_id": default_id}
    if isinstance(payload, bytes | bytearray | memoryview):
        payload = decode_body(bytes(payload))
    try:  # the fast way first; refused: each rule checked alone, to say which failed
        return body.validate(payload, context, fast=True)
    except ValidationError:
        pass
    items = batch_items(payload, schema)
    try:
        return body.validate(payload, context)
    except ValidationError as error:
        explain = Explain(schema, shape, default_id)
        raise _refused(explain.items(error.errors(), items, indexed=isinstance(payload, list))) from None


def _refused(errors: list[ItemError]) -> InvalidBatch:
    return InvalidBatch(errors[:MAX_ERRORS], len(errors))


def batch_items(payload: Any, schema: ProjectSchema) -> list[Any]:
    """The items of a body: one object, or a non-empty list of at most ``max_batch``; else
    InvalidBatch about the batch as a whole (``index = -1``)."""
    if isinstance(payload, Mapping):
        return [payload]
    if isinstance(payload, list | tuple):
        if not payload:
            raise InvalidBatch([ItemError(-1, None, "", "empty batch")])
        if len(payload) > schema.max_batch:
            too_many = f"batch has {len(payload)} items, at most {schema.max_batch} allowed"
            raise InvalidBatch([ItemError(-1, None, "", too_many)])
        return list(payload)
    problem = f"expected a JSON object or a list of objects, got {type_name(payload)}"
    raise InvalidBatch([ItemError(-1, None, "", problem)])


def decode_body(body: bytes) -> Any:
    """The decoded JSON of a request body, or InvalidBatch saying why it is not JSON."""
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


__all__ = ["batch_items", "decode_body", "parse_labels", "parse_messages", "parse_predict", "parse_samples"]
