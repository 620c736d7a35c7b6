"""What the topics carry: ``encode_sample`` / ``encode_label`` write the JSON of a sample or a label;
``decode_sample`` / ``decode_samples`` / ``decode_label`` check any client's bytes and raise (or
return) :class:`InvalidMessage` with the reason. Decoding what was encoded gives an equal object.

On a topic a sample's ``features`` may be packed: a string, the base64 of its little-endian
float32s in schema order (what ``encode_sample`` writes): a sample of 64 features decodes and checks
in about 7 µs, against 16 µs as 64 JSON numbers. Any producer may write either form.

>>> import numpy as np
>>> from alstream.messages import ProjectSchema, Sample
>>> schema = ProjectSchema(classes=["a", "b"], n_features=2)
>>> encode_sample(Sample(id="s1", features=np.array([1.0, -2.5], dtype=np.float32)))
b'{"id":"s1","features":"AACAPwAAIMA="}'
>>> decode_sample(b'{"id":"s1","features":"AACAPwAAIMA="}', schema).features
array([ 1. , -2.5], dtype=float32)
>>> decode_sample(b'{"id":"s1","features":[1.0,-2.5]}', schema).features
array([ 1. , -2.5], dtype=float32)
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import orjson
from pydantic import TypeAdapter, ValidationError

from alstream.messages import collector
from alstream.messages.contract import contract, float32_rows, label, sample
from alstream.messages.ids import ordered_id
from alstream.messages.problems import Explain, listing, type_name
from alstream.messages.schema import ProjectSchema
from alstream.messages.values import InvalidMessage, Label, Sample


def encode_sample(s: Sample) -> bytes:
    """The JSON of a sample on a topic; null fields are left out, features are packed."""
    body: dict[str, Any] = {"id": s.id}
    if s.features is not None:
        raw = np.ascontiguousarray(s.features, dtype="<f4").tobytes()
        body["features"] = binascii.b2a_base64(raw, newline=False).decode("ascii")
    for name in ("text", "meta", "label", "annotator", "token_key"):
        value = getattr(s, name)
        if value is not None:
            body[name] = value
    return orjson.dumps(body)


def encode_label(label: Label) -> bytes:
    """The JSON of a label on a topic; null fields are left out, ``skipped`` only when true."""
    body: dict[str, Any] = {"id": label.id}
    if label.label is not None:
        body["label"] = label.label
    if label.annotator is not None:
        body["annotator"] = label.annotator
    if label.skipped:
        body["skipped"] = True
    if label.token_key is not None:
        body["token_key"] = label.token_key
    return orjson.dumps(body)


def _load_object(value: Any) -> dict:
    if value is None:
        raise InvalidMessage("empty message (no value)")
    if not isinstance(value, bytes | bytearray | memoryview | str):
        raise InvalidMessage(f"expected bytes, got {type(value).__name__}")
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise InvalidMessage(f"not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidMessage(f"expected a JSON object, got {type_name(body)}")
    return body


def _checked(value: Any, schema: ProjectSchema, kind: str, adapter: TypeAdapter[Any]) -> Any:
    """The model of one message, checked by ``adapter`` (``kind``: "topic_sample" or
    "topic_label"), or InvalidMessage with the reason."""
    return _explained(_load_object(value), schema, kind, adapter)


def _explained(body: dict, schema: ProjectSchema, kind: str, adapter: TypeAdapter[Any]) -> Any:
    try:
        return adapter.validate_python(body)
    except ValidationError as error:
        problems = Explain(schema, kind).items(error.errors(), [body], indexed=False)
        reason = "; ".join(f"{p.field}: {p.message}" if p.field else p.message for p in problems)
        raise InvalidMessage(reason) from None


def decode_sample(
    value: bytes | None, schema: ProjectSchema, default_id: Callable[[], str] | None = None
) -> Sample:
    """One sample from a topic message, written by any client; InvalidMessage says what is wrong.
    A sample without an id is named ``default_id()`` (default: :func:`~alstream.messages.ids.ordered_id`)."""
    [decoded] = decode_samples([value], schema, None if default_id is None else lambda _: default_id())
    if isinstance(decoded, InvalidMessage):
        raise decoded
    return decoded


def decode_samples(
    values: Sequence[bytes | None], schema: ProjectSchema, default_id: Callable[[int], str] | None = None
) -> list[Sample | InvalidMessage]:
    """:func:`decode_sample` for a batch of messages, checked in one call and their features
    converted in one go: per message, the sample or the InvalidMessage that says what is wrong with
    it (when one is refused, each is checked alone for its reason). A sample without an id is named
    ``default_id(its index)`` (default: :func:`~alstream.messages.ids.ordered_id`)."""
    with collector.paused():
        return _decoded(values, schema, default_id)


def _decoded(
    values: Sequence[bytes | None], schema: ProjectSchema, default_id: Callable[[int], str] | None
) -> list[Sample | InvalidMessage]:
    models = contract(schema)
    out: list[Any] = _bodies(values)  # each message's JSON, parsed once
    good = [i for i, body in enumerate(out) if type(body) is dict]
    features = schema.data == "features"
    try:  # the batch in one call
        bodies = out if len(good) == len(out) else [out[i] for i in good]
        fields = models.topic_samples.validate_python(bodies)  # dicts
    except ValidationError:  # one is refused: each alone, for its reason
        fields = []
        for i in good:
            try:
                fields.append(_explained(out[i], schema, "topic_sample", models.topic_sample).__dict__)
            except InvalidMessage as refused:
                out[i] = refused
        good = [i for i in good if not isinstance(out[i], InvalidMessage)]
    rows = float32_rows([f["features"] for f in fields]) if features and fields else None
    packed = [row for row, f in enumerate(fields) if type(f.get("features")) is not list]
    bad = set(_not_finite(rows, packed)) if features else set()  # packed float32s may be any
    vectors: Sequence[Any] = [None] * len(fields) if rows is None else rows
    for row, (index, f, vector) in enumerate(zip(good, fields, vectors, strict=True)):
        if bad and row in bad:
            out[index] = InvalidMessage(_finite(vector))
            continue
        name = f.get("id")
        if name is None:
            name = default_id(index) if default_id is not None else ordered_id()
        out[index] = sample(f, str(name), vector)
    return out


def _bodies(values: Sequence[bytes | None]) -> list[dict | InvalidMessage]:
    """Each message's JSON object, or the InvalidMessage that says why it is none (parsed at once
    when every message is JSON, one by one for the reasons when one is not)."""
    try:
        bodies = [orjson.loads(value) for value in values]  # type: ignore[arg-type]
    except (orjson.JSONDecodeError, TypeError):
        return [_parsed(value) for value in values]
    if all(type(body) is dict for body in bodies):
        return bodies
    pairs = zip(bodies, values, strict=True)
    return [body if type(body) is dict else _parsed(value) for body, value in pairs]


def _parsed(value: Any) -> dict | InvalidMessage:
    """:func:`_load_object`, or the InvalidMessage that says why it is none."""
    try:
        return _load_object(value)
    except InvalidMessage as error:
        return error


def _not_finite(rows: Sequence[np.ndarray] | None, packed: list[int]) -> list[int]:
    """The rows among ``packed`` that hold a number that is not finite (checked at once)."""
    if rows is None or not packed:
        return []
    if isinstance(rows, np.ndarray):  # one matrix
        finite = np.isfinite(rows[packed]).all(axis=1).tolist()
    else:
        finite = [bool(np.isfinite(rows[row]).all()) for row in packed]
    return [row for row, ok in zip(packed, finite, strict=True) if not ok]


def _finite(features: np.ndarray) -> str:
    """Why packed features that are not all finite are refused."""
    bad = [f"[{i}] is {features[i]}" for i in np.flatnonzero(~np.isfinite(features)).tolist()]
    return f"features: not finite numbers: {listing(bad)}"


def decode_label(value: bytes | None, schema: ProjectSchema) -> Label:
    """One label from a topic message, written by any client; InvalidMessage says what is wrong."""
    return label(_checked(value, schema, "topic_label", contract(schema).topic_label))
