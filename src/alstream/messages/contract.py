"""The message contract of one project, written once as pydantic models: they validate every body
and topic message, and the OpenAPI request bodies are their JSON Schema
(:mod:`alstream.messages.openapi`).

A sample; a label (``Labeled``: a class, or ``Skipped``); the ``/send`` item, a union of the two
discriminated on ``kind`` (absent means a sample); the bodies of ``/send``, ``/labels`` and
``/predict``; and a topic's sample and label (they may carry ``token_key``, and a sample's features
may be packed). Strict, as JSON's types: a string is never a number, nor a boolean an integer.
orjson decodes a body, pydantic-core checks it; what JSON Schema cannot say runs as Python
validators: ``meta`` is at most ``max_meta_bytes`` once encoded, an id at most 2,000 bytes of UTF-8,
and a body's features become one read-only float32 matrix for the batch (:func:`_values`).

>>> models = contract(ProjectSchema(classes=["a", "b"], n_features=2))
>>> [sample] = models.send.validate(b'{"id": "s1", "features": [1, 2.5]}')
>>> sample.id, sample.features
('s1', array([1. , 2.5], dtype=float32))
>>> models.send.validate(b'[{"kind": "label", "id": "s1", "skipped": true}]')
[Label(id='s1', label=None, annotator=None, skipped=True, token_key=None)]
"""

from __future__ import annotations

import binascii
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from threading import Lock
from typing import Annotated, Any, Literal, NotRequired, Required, cast

import cachetools
import numpy as np
import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    GetCoreSchemaHandler,
    StringConstraints,
    Tag,
    TypeAdapter,
    ValidationInfo,
    create_model,
)
from pydantic_core import PydanticCustomError, core_schema
from typing_extensions import TypeAliasType, TypedDict

from alstream.messages.ids import ordered_id
from alstream.messages.schema import (
    FLOAT32_LIMIT,
    MAX_ANNOTATOR_CHARS,
    MAX_ID_BYTES,
    MAX_SAFE_INTEGER,
    ProjectSchema,
)
from alstream.messages.values import Label, Sample

_CONTROL = "\\x00-\\x1f\\x7f-\\x9f"
NAME_PATTERN = f"^[^{_CONTROL}]*[^\\s{_CONTROL}][^{_CONTROL}]*$"  # no control character, not blank
KEY_PATTERN = f"^[^{_CONTROL}]*$"
BASE64_PATTERN = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"  # strict, padded
TEXT_PATTERN = "^[^\\x00]*[^\\s\\x00][^\\x00]*$"  # not blank, no NUL
_CLOSED = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

MetaKey = Annotated[str, StringConstraints(pattern=KEY_PATTERN)]
MetaValue = TypeAliasType(
    "MetaValue",
    "bool | int | float | str | list[MetaValue] | dict[MetaKey, MetaValue] | None",  # keys at any depth
)
Number = Annotated[float, Field(gt=-FLOAT32_LIMIT, lt=FLOAT32_LIMIT)]
DefaultId = Callable[[int], str]  # a sample's id from its place in the batch, when it has none


class SampleModel(BaseModel):
    """The base of every project's sample model."""

    model_config = _CLOSED


class LabelModel(BaseModel):
    """The base of every project's label models (``Labeled``, ``Skipped``)."""

    model_config = _CLOSED


def _integral(value: Any) -> Any:
    """JSON cannot tell 7 from 7.0: both are the integer 7 (JSON Schema's ``integer`` too)."""
    return int(value) if type(value) is float and value.is_integer() else value


def _class_name(value: Any) -> Any:
    """A literal compares with ``==``, where ``True == 1``; JSON Schema's ``enum`` tells them apart."""
    if isinstance(value, bool):
        raise PydanticCustomError("literal_error", "expected a class name, got a boolean")
    return _integral(value)


def _boolean(value: Any) -> Any:
    """``skipped`` is true or false, not 1 or 0 (which ``Literal[True]`` would take)."""
    if not isinstance(value, bool):
        raise PydanticCustomError("bool_type", "expected true or false")
    return value


def _id_bytes(value: Any) -> Any:
    """An id is at most 2,000 bytes of UTF-8 (PostgreSQL's index entries hold at most 2704)."""
    if isinstance(value, str) and len(value.encode()) > MAX_ID_BYTES:
        raise PydanticCustomError(
            "id_bytes",
            "too long: {bytes} bytes in UTF-8, at most {limit}",
            {"bytes": len(value.encode()), "limit": MAX_ID_BYTES},
        )
    return value


class _FromPython:
    """Python callers may pass a tuple or a 1-d numeric numpy array where JSON has a list (JSON input
    is validated as it is, in Rust)."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> Any:
        schema = handler(source)
        python = core_schema.no_info_before_validator_function(_as_list, schema)
        return core_schema.json_or_python_schema(json_schema=schema, python_schema=python)


def _as_list(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, np.ndarray):
        if value.ndim != 1 or value.dtype.kind not in "iuf":
            raise PydanticCustomError(
                "array_type",
                "expected a 1-d numeric array, got {dtype} {shape}",
                {"dtype": str(value.dtype), "shape": str(value.shape)},
            )
        return value.tolist()
    return value


def _packed(n: int | None) -> Callable[[str], bytes]:
    """Packed features (topics only): the base64 of little-endian float32s, ``n`` of them."""

    def check(value: str) -> bytes:
        try:
            raw = binascii.a2b_base64(value, strict_mode=True)
        except (binascii.Error, ValueError):  # ValueError: not ASCII
            raise PydanticCustomError(
                "packed", "a string must be the base64 of little-endian float32s"
            ) from None
        size = 4 * n if n is not None else None
        if not raw or len(raw) % 4 or (size is not None and len(raw) != size):
            expected = f"{size} ({n} float32s)" if size is not None else "a multiple of 4"
            raise PydanticCustomError("packed", f"packed: {len(raw)} bytes, expected {expected}")
        return raw

    return check


def _meta_bytes(limit: int) -> Callable[[dict], dict]:
    def check(value: dict) -> dict:
        try:
            size = len(orjson.dumps(value))
        except (TypeError, orjson.JSONEncodeError) as exc:  # an integer beyond 64 bits
            raise PydanticCustomError("meta_json", "not plain JSON: {why}", {"why": str(exc)}) from None
        if size > limit:
            raise PydanticCustomError(
                "meta_size",
                "too large: {size} bytes of JSON, at most {limit}",
                {"size": size, "limit": limit},
            )
        return value

    return check


def _name(max_chars: int, description: str) -> Any:
    constraints = StringConstraints(min_length=1, max_length=max_chars, pattern=NAME_PATTERN)
    return Annotated[str, constraints, Field(description=description)]


def _id(project: ProjectSchema, fast: bool = False) -> Any:
    """A string, or an integer that becomes its string. ``fast``: a string is tried first."""
    text = _name(project.max_id_chars, "The sample's id: no control characters, not blank.")
    if project.max_id_chars * 4 > MAX_ID_BYTES:  # only then may an id be too long in bytes
        text = Annotated[text, AfterValidator(_id_bytes)]
    number = Annotated[
        int,
        Field(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER, description="Becomes its string."),
        BeforeValidator(_integral),  # after the constraints, so that they stay in the JSON Schema
    ]
    return Annotated[text | number, Field(examples=["s-1"], union_mode="left_to_right" if fast else "smart")]


def _label(project: ProjectSchema) -> Any:
    numbers = [int(c) for c in project.classes if c.lstrip("-").isdigit() and str(int(c)) == c]
    return Annotated[
        Literal[tuple([*project.classes, *numbers])],
        BeforeValidator(_class_name),
        Field(description="One of the project's classes.", examples=[project.classes[0]]),
    ]


def _features(project: ProjectSchema, *, packed: bool = False, fast: bool = False) -> Any:
    """A sample's features: a list of numbers, or an object of them by name, or (on a topic) packed.
    ``fast``: the forms are tried in order (each refuses the others' JSON type at once), else
    chosen by the value's type, so that pydantic's errors are those of that form."""
    n = project.n_features
    listed: Any = Annotated[
        list[Number],
        Field(min_length=n or 1, max_length=n),
        _FromPython(),
        Field(description="Numbers within float32's range, in the project's order."),
    ]
    kinds: list[Any] = [Annotated[listed, Tag("list")]]
    if project.feature_names is not None:
        names = project.feature_names  # they need not be identifiers: each is a field's alias
        fields: dict[str, Any] = {f"f{i}": (Number, Field(alias=name)) for i, name in enumerate(names)}
        kinds.append(Annotated[create_model("NamedFeatures", __config__=_CLOSED, **fields), Tag("named")])
    if packed and fast and n is not None:  # checked in Rust; decoded with the batch (float32_rows)
        base64 = StringConstraints(
            pattern=BASE64_PATTERN, min_length=4 * -(-4 * n // 3), max_length=4 * -(-4 * n // 3)
        )
        kinds.append(Annotated[Annotated[str, base64], Tag("packed")])
    elif packed:
        kinds.append(Annotated[Annotated[str, AfterValidator(_packed(n))], Tag("packed")])
    if len(kinds) == 1:
        return listed
    description = "Numbers: a list in the order of feature_names, or an object with exactly those names."
    if fast:  # the topics' own form first: a branch that fails costs its error
        kinds = kinds[-1:] + kinds[:-1] if packed else kinds
        return Annotated[_union(kinds), Field(union_mode="left_to_right", description=description)]
    return Annotated[_union(kinds), Discriminator(_features_kind), Field(description=description)]


def _union(members: list[Any]) -> Any:
    union = members[0]
    for member in members[1:]:
        union = union | member
    return union


def _features_kind(value: Any) -> str:
    """Which form of features ``value`` is: a list (the default: its errors say "expected a list")."""
    if isinstance(value, dict):
        return "named"
    return "packed" if isinstance(value, str) else "list"


def _text(project: ProjectSchema) -> Any:
    constraints = StringConstraints(min_length=1, max_length=project.max_text_chars, pattern=TEXT_PATTERN)
    return Annotated[str, constraints, Field(description="The text: not blank, no NUL character.")]


def _meta(project: ProjectSchema) -> Any:
    description = (
        f"Any JSON object (keys without control characters) of at most {project.max_meta_bytes} bytes."
    )
    return Annotated[
        dict[MetaKey, MetaValue],
        AfterValidator(_meta_bytes(project.max_meta_bytes)),
        Field(description=description),
    ]


def _token_key() -> Any:
    return Annotated[str, StringConstraints(min_length=1, max_length=64)] | None


def _sample(
    project: ProjectSchema, *, on_send: bool = False, topic: bool = False, fast: bool = False
) -> type[SampleModel]:
    """One sample (on ``/send``, ``kind`` may say "sample"; absent means a sample too)."""
    fields = _sample_fields(project, on_send=on_send, topic=topic, fast=fast)
    return create_model("Sample", __base__=SampleModel, **fields)


def _topic_sample_dict(project: ProjectSchema) -> Any:
    """A topic's sample checked as a dict (the fields of ``_sample(topic=True, fast=True)``): about
    twice as fast as the model, for the consumer's batches; absent fields stay absent."""
    fields = _sample_fields(project, topic=True, fast=True)
    items = {
        name: Required[kind] if default is ... else NotRequired[kind]
        for name, (kind, default) in fields.items()
    }
    make: Any = TypedDict  # built from the fields, which mypy cannot follow
    typed = make("TopicSample", items)
    typed.__pydantic_config__ = _CLOSED
    return typed


def _sample_fields(
    project: ProjectSchema, *, on_send: bool = False, topic: bool = False, fast: bool = False
) -> dict[str, Any]:
    """A sample's fields: name -> (type, default; ``...`` when required)."""
    data = project.data
    other = "text" if data == "features" else "features"
    fields: dict[str, Any] = {
        "id": (_id(project, fast) | None, None),
        data: (_features(project, packed=topic, fast=fast) if data == "features" else _text(project), ...),
        other: (None, None),
        "meta": (_meta(project) | None, None),
        "label": (_label(project) | None, None),
        "annotator": (_name(MAX_ANNOTATOR_CHARS, "Who gave the label.") | None, None),
    }
    if on_send:
        fields["kind"] = (Literal["sample"] | None, Field(None, description='Absent or null: "sample".'))
    if topic:
        fields["token_key"] = (_token_key(), None)
    return fields


def _label_models(
    project: ProjectSchema, *, on_send: bool = False, topic: bool = False, fast: bool = False
) -> Any:
    """A label: a class (``Labeled``), or ``"skipped": true`` with no label (``Skipped``); on
    ``/send`` with ``"kind": "label"``. ``fast``: the two are tried in order (``skipped`` tells
    them apart), else chosen by ``skipped``, so that pydantic's errors are those of that one."""
    common: dict[str, Any] = {
        "id": (_id(project, fast), ...),
        "annotator": (_name(MAX_ANNOTATOR_CHARS, "Who labels it.") | None, None),
    }
    if on_send:
        common["kind"] = (Literal["label"], ...)
    if topic:
        common["token_key"] = (_token_key(), None)
    labeled = create_model(
        "Labeled",
        __base__=LabelModel,
        **common,
        label=(_label(project), ...),
        skipped=(Annotated[Literal[False], BeforeValidator(_boolean)] | None, None),
    )
    skipped = create_model(
        "Skipped",
        __base__=LabelModel,
        **common,
        label=(None, None),
        skipped=(Annotated[Literal[True], BeforeValidator(_boolean)], ...),
    )
    if fast:
        return Annotated[labeled | skipped, Field(union_mode="left_to_right")]
    return Annotated[
        Annotated[labeled, Tag("labeled")] | Annotated[skipped, Tag("skipped")],
        Discriminator(_label_kind),
    ]


def _label_kind(value: Any) -> str:
    skipped = value.get("skipped") if isinstance(value, dict) else getattr(value, "skipped", None)
    return "skipped" if skipped is True else "labeled"


def _item_kind(value: Any) -> str | None:
    """A ``/send`` item's kind: ``kind``, absent or null meaning "sample"; None when it is neither."""
    kind = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
    kind = "sample" if kind is None else kind
    return kind if kind in ("sample", "label") else None


def _values(features: bool) -> Callable[[Any, ValidationInfo], list[Sample | Label]]:
    """The after-validator of a body: the checked items as values, in batch order, the features of
    the batch converted to float32 at once (``features``: the project's samples carry them); a
    sample without an id named by the context's ``default_id`` (else a UUIDv7)."""

    def values(value: Any, info: ValidationInfo) -> list[Sample | Label]:
        items = value if isinstance(value, list) else [value]
        default_id: DefaultId | None = (info.context or {}).get("default_id")
        fields = [m.__dict__ if isinstance(m, SampleModel) else None for m in items]
        samples = [f for f in fields if f is not None]
        rows = float32_rows([f["features"] for f in samples]) if features and samples else None
        out: list[Any] = []
        row = 0
        for index, (model, found) in enumerate(zip(items, fields, strict=True)):
            if found is None:
                out.append(label(model))
                continue
            name = found["id"]
            if type(name) is not str:
                name = str(name) if name is not None else default_id(index) if default_id else ordered_id()
            out.append(sample(found, name, None if rows is None else rows[row]))
            row += 1
        return out

    return values


def _list(item: Any) -> Any:
    return list[item]


def float32_rows(rows: list[Any]) -> Sequence[np.ndarray]:
    """Checked features (lists of numbers within float32's range, named features, packed bytes) as
    read-only float32 vectors: one matrix for the batch when the rows have one length."""
    lists = rows if set(map(type, rows)) == {list} else [_numbers(row) for row in rows]
    kinds, lengths = set(map(type, lists)), set(map(len, lists))
    if lists and kinds == {bytes} and len(lengths) == 1:  # packed: the bytes of the batch at once
        matrix = np.frombuffer(b"".join(cast(list[bytes], lists)), dtype="<f4").astype(np.float32, copy=False)
        return cast(Sequence[np.ndarray], matrix.reshape(len(lists), -1))  # read-only: it views bytes
    if lists and kinds == {list} and len(lengths) == 1:
        with np.errstate(over="ignore"):  # below FLOAT32_LIMIT: rounds to float32's largest
            matrix = np.array(lists, dtype=np.float32)
        matrix.flags.writeable = False
        return cast(Sequence[np.ndarray], matrix)
    out = []
    for row in lists:
        with np.errstate(over="ignore"):
            vector = (
                np.frombuffer(row, dtype="<f4").astype(np.float32)
                if isinstance(row, bytes)
                else np.array(row, dtype=np.float32)
            )
        vector.flags.writeable = False
        out.append(vector)
    return out


def _numbers(row: Any) -> list | bytes:
    """A row's numbers: named ones in schema order, packed ones as bytes (their base64 was checked)."""
    if isinstance(row, str):
        return binascii.a2b_base64(row, strict_mode=True)
    return list(row.__dict__.values()) if isinstance(row, BaseModel) else row


def sample(fields: dict[str, Any], name: str, features: np.ndarray | None) -> Sample:
    """The value of a checked sample, from its model's ``__dict__`` or its checked dict (either may
    lack some fields)."""
    get = fields.get
    label_ = get("label")
    if label_ is not None:
        label_ = str(label_)
    return Sample(name, features, get("text"), get("meta"), label_, get("annotator"), get("token_key"))


def label(model: LabelModel) -> Label:
    """The value of a checked label."""
    fields = model.__dict__
    return Label(
        id=str(fields["id"]),
        label=None if fields["label"] is None else str(fields["label"]),
        annotator=fields["annotator"],
        skipped=bool(fields["skipped"]),
        token_key=fields.get("token_key"),
    )


@dataclass(frozen=True)
class Body:
    """A request body: one item or a non-empty list of at most ``max_batch``, validated into values.
    ``fast``: (one, many), the unions' members tried in order (the fastest); ``python``: (one, many),
    each union's member chosen by the item, so that a refused body's errors say which rule failed.
    Both check decoded JSON (orjson decodes bytes: ~3x faster than pydantic-core's own JSON mode
    with these models). ``schema``: the JSON Schema's."""

    fast: tuple[TypeAdapter[list[Any]], TypeAdapter[list[Any]]]
    python: tuple[TypeAdapter[list[Any]], TypeAdapter[list[Any]]]
    schema: TypeAdapter[Any]

    def validate(
        self, payload: Any, context: dict[str, Any] | None = None, *, fast: bool = False
    ) -> list[Any]:
        """The values of ``payload``: JSON bytes (decoded by orjson, then checked fast) or decoded JSON."""
        if isinstance(payload, bytes):
            payload, fast = orjson.loads(payload), True
        one, many = self.fast if fast else self.python
        return (many if isinstance(payload, list) else one).validate_python(payload, context=context)


def _body(item: Callable[[bool], Any], project: ProjectSchema) -> Body:
    """The body of ``item(fast)`` (see :class:`Body`)."""

    values = AfterValidator(_values(project.data == "features"))

    def many(fast: bool) -> Any:
        return Annotated[list[item(fast)], Field(min_length=1, max_length=project.max_batch)]  # type: ignore[misc]

    def adapters(fast: bool) -> tuple[TypeAdapter[list[Any]], TypeAdapter[list[Any]]]:
        one: Any = Annotated[item(fast), values]
        listed: Any = Annotated[many(fast), values]
        return TypeAdapter(one), TypeAdapter(listed)

    return Body(fast=adapters(True), python=adapters(False), schema=TypeAdapter(item(False) | many(False)))


def _item(project: ProjectSchema, fast: bool) -> Any:
    """A ``/send`` item: a sample or (with ``"kind": "label"``) a label."""
    sample, label = _sample(project, on_send=True, fast=fast), _label_models(project, on_send=True, fast=fast)
    if fast:  # ``kind`` tells them apart: a label must say it, a sample may not say otherwise
        return Annotated[sample | label, Field(union_mode="left_to_right")]
    return Annotated[
        Annotated[sample, Tag("sample")] | Annotated[label, Tag("label")],
        Discriminator(
            _item_kind, custom_error_type="kind", custom_error_message='expected "sample" or "label"'
        ),
    ]


class Contract:
    """The models of one project: the bodies of ``POST /send`` (``samples``: of samples only),
    ``/labels`` and ``/predict``; a topic's sample and label (one message each), and a batch of
    a topic's samples (``topic_samples``, decoded JSON objects, checked in one call). Each is built
    on first use: the consumer's first batch needs only the topic's (a few of the 56 models), so the
    service's first model does not wait for the bodies' models."""

    def __init__(self, project: ProjectSchema) -> None:
        self.project = project

    @functools.cached_property
    def send(self) -> Body:
        return _body(functools.partial(_item, self.project), self.project)

    @functools.cached_property
    def samples(self) -> Body:
        return _body(lambda fast: _sample(self.project, fast=fast), self.project)

    @functools.cached_property
    def labels(self) -> Body:
        return _body(lambda fast: _label_models(self.project, fast=fast), self.project)

    @functools.cached_property
    def predict(self) -> TypeAdapter[Any]:
        project = self.project
        key = "texts" if project.data == "text" else "features"
        row: Any = _text(project) if key == "texts" else _features(project)
        rows: dict[str, Any] = {
            key: (Annotated[list[row], Field(min_length=1, max_length=project.max_batch)], ...)
        }
        return TypeAdapter(create_model("Predict", __config__=_CLOSED, **rows))

    @functools.cached_property
    def topic_sample(self) -> TypeAdapter[Any]:
        return TypeAdapter(_sample(self.project, topic=True))

    @functools.cached_property
    def topic_samples(self) -> TypeAdapter[list[Any]]:
        return TypeAdapter(_list(_topic_sample_dict(self.project)))

    @functools.cached_property
    def topic_label(self) -> TypeAdapter[Any]:
        return TypeAdapter(_label_models(self.project, topic=True))


@cachetools.cached(cachetools.LRUCache(16), key=lambda project: project.model_dump_json(), lock=Lock())
def contract(project: ProjectSchema) -> Contract:
    """The models of ``project``'s messages (one contract per project; each model built once)."""
    return Contract(project)


__all__ = ["KEY_PATTERN", "NAME_PATTERN", "TEXT_PATTERN", "Contract", "MetaValue", "contract", "float32_rows"]
