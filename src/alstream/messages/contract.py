"""The message contract of one project as pydantic models, written once: a sample, a label (a class,
or skipped), the ``/send`` item (a union of the two, discriminated on ``kind``; absent means a
sample), and the bodies of ``/send``, ``/labels`` and ``/predict``. The OpenAPI request bodies are
their JSON Schema (:mod:`alstream.messages.openapi`); the checks of
:mod:`alstream.messages.validation` apply the same rules at the speed of a batch, with the messages
the API promises, and ``tests/test_messages.py`` checks on generated payloads that the two accept
the same. Two rules are beyond JSON Schema and only the checks apply them: ``meta`` is at most
``max_meta_bytes`` once encoded, and an id at most 2,000 bytes of UTF-8.

>>> models = contract(ProjectSchema(classes=["a", "b"], n_features=2))
>>> models.send.validate_python({"id": "s1", "features": [1, 2.5]}).features
[1.0, 2.5]
>>> type(models.send.validate_python({"kind": "label", "id": "s1", "skipped": True})).__name__
'Skipped'
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    TypeAdapter,
    create_model,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypeAliasType

from alstream.messages.schema import FLOAT32_LIMIT, MAX_ANNOTATOR_CHARS, MAX_SAFE_INTEGER, ProjectSchema

_CONTROL = "\\x00-\\x1f\\x7f-\\x9f"
NAME_PATTERN = f"^[^{_CONTROL}]*[^\\s{_CONTROL}][^{_CONTROL}]*$"  # no control character, not blank
KEY_PATTERN = f"^[^{_CONTROL}]*$"
TEXT_PATTERN = "^[^\\x00]*\\S[^\\x00]*$"  # not blank, no NUL
# Strict: a string is never a number, nor a boolean an integer -- JSON's types, as the checks take them.
_CLOSED = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

MetaKey = Annotated[str, StringConstraints(pattern=KEY_PATTERN)]
MetaValue = TypeAliasType(
    "MetaValue",
    "bool | str | float | list[MetaValue] | dict[MetaKey, MetaValue] | None",  # keys at any depth
)
Number = Annotated[float, Field(gt=-FLOAT32_LIMIT, lt=FLOAT32_LIMIT)]


def _integral(value: Any) -> Any:
    """JSON cannot tell 7 from 7.0: both are the integer 7 (JSON Schema's ``integer`` too)."""
    return int(value) if type(value) is float and value.is_integer() else value


def _not_boolean(value: Any) -> Any:
    """A literal compares with ``==``, where ``True == 1``; JSON Schema's ``enum`` tells them apart."""
    if isinstance(value, bool):
        raise PydanticCustomError("literal_error", "expected a class name, got a boolean")
    return value


def _boolean(value: Any) -> Any:
    """``skipped`` is true or false, not 1 or 0 (which ``Literal[True]`` would take)."""
    if not isinstance(value, bool):
        raise PydanticCustomError("bool_type", "expected true or false")
    return value


def _name(max_chars: int, description: str) -> Any:
    constraints = StringConstraints(min_length=1, max_length=max_chars, pattern=NAME_PATTERN)
    return Annotated[str, constraints, Field(description=description)]


def _id(project: ProjectSchema) -> Any:
    text = _name(project.max_id_chars, "The sample's id: no control characters, not blank.")
    number = Annotated[
        int,
        Field(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER, description="Becomes its string."),
        BeforeValidator(_integral),  # after the constraints, so that they stay in the JSON Schema
    ]
    return Annotated[text | number, Field(examples=["s-1"])]


def _label(project: ProjectSchema) -> Any:
    numbers = [int(c) for c in project.classes if c.lstrip("-").isdigit() and str(int(c)) == c]
    return Annotated[
        Literal[tuple([*project.classes, *numbers])],
        Field(description="One of the project's classes.", examples=[project.classes[0]]),
    ]


def _features(project: ProjectSchema) -> Any:
    listed = Annotated[list[Number], Field(min_length=project.n_features or 1, max_length=project.n_features)]
    if project.feature_names is None:
        return Annotated[listed, Field(description="Numbers within float32's range, in the project's order.")]
    names = project.feature_names  # they need not be identifiers: each is a field's alias
    named = _model("NamedFeatures", {f"f{i}": (Number, Field(alias=name)) for i, name in enumerate(names)})
    description = "Numbers: a list in the order of feature_names, or an object with exactly those names."
    return Annotated[listed | named, Field(description=description)]


def _text(project: ProjectSchema) -> Any:
    constraints = StringConstraints(min_length=1, max_length=project.max_text_chars, pattern=TEXT_PATTERN)
    return Annotated[str, constraints, Field(description="The text: not blank, no NUL character.")]


def _meta(project: ProjectSchema) -> Any:
    description = (
        f"Any JSON object (keys without control characters) of at most {project.max_meta_bytes} bytes."
    )
    return Annotated[dict[MetaKey, MetaValue], Field(description=description)]


def _sample(project: ProjectSchema, *, on_send: bool) -> type[BaseModel]:
    """One sample (on ``/send``, ``kind`` may say "sample"; absent means a sample too)."""
    data = project.data
    other = "text" if data == "features" else "features"
    fields: dict[str, Any] = {
        "id": (_id(project) | None, None),
        data: (_features(project) if data == "features" else _text(project), ...),
        other: (None, None),
        "meta": (_meta(project) | None, None),
        "label": (_label(project) | None, None),
        "annotator": (_name(MAX_ANNOTATOR_CHARS, "Who gave the label.") | None, None),
    }
    if on_send:
        fields["kind"] = (Literal["sample"] | None, Field(None, description='Absent or null: "sample".'))
    return _model("Sample", fields)


def _label_models(project: ProjectSchema, *, on_send: bool) -> Any:
    """A label: a class (``Labeled``), or ``"skipped": true`` with no label (``Skipped``); on
    ``/send`` with ``"kind": "label"``."""
    common: dict[str, Any] = {
        "id": (_id(project), ...),
        "annotator": (_name(MAX_ANNOTATOR_CHARS, "Who labels it.") | None, None),
    }
    if on_send:
        common["kind"] = (Literal["label"], ...)
    labeled = _model(
        "Labeled",
        {
            **common,
            "label": (_label(project), ...),
            "skipped": (Annotated[Literal[False], BeforeValidator(_boolean)] | None, None),
        },
    )
    skipped = _model(
        "Skipped",
        {
            **common,
            "label": (None, None),
            "skipped": (Annotated[Literal[True], BeforeValidator(_boolean)], ...),
        },
    )
    return Annotated[
        Annotated[labeled, Tag("labeled")] | Annotated[skipped, Tag("skipped")],
        Discriminator(_label_kind),
    ]


def _skipped(value: bool) -> Any:
    return Annotated[Literal[value], BeforeValidator(_boolean)]


def _label_kind(value: Any) -> str:
    skipped = value.get("skipped") if isinstance(value, dict) else getattr(value, "skipped", None)
    return "skipped" if skipped is True else "labeled"


def _item_kind(value: Any) -> str | None:
    """A ``/send`` item's kind: ``kind``, absent or null meaning "sample"; None when it is neither."""
    kind = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
    kind = "sample" if kind is None else kind
    return kind if kind in ("sample", "label") else None


def _model(name: str, fields: dict[str, Any]) -> type[BaseModel]:
    """A closed object (no other field) of ``fields``: name -> (type, default or Field)."""
    return create_model(name, __config__=_CLOSED, **fields)


def _list(item: Any, project: ProjectSchema) -> Any:
    """A non-empty list of at most ``max_batch`` ``item``."""
    return Annotated[list[item], Field(min_length=1, max_length=project.max_batch)]


def _one_or_many(item: Any, project: ProjectSchema) -> TypeAdapter[Any]:
    return TypeAdapter(item | _list(item, project))


@dataclass(frozen=True)
class Contract:
    """The request bodies of one project: ``send`` (``POST /send``), ``labels``, ``predict``."""

    send: TypeAdapter[Any]
    labels: TypeAdapter[Any]
    predict: TypeAdapter[Any]


def contract(project: ProjectSchema) -> Contract:
    """The models of ``project``'s messages (built once per project)."""
    return _contract(project.model_dump_json())


@functools.lru_cache(maxsize=16)
def _contract(project_json: str) -> Contract:
    project = ProjectSchema.model_validate_json(project_json)
    item: Any = Annotated[
        Annotated[_sample(project, on_send=True), Tag("sample")]
        | Annotated[_label_models(project, on_send=True), Tag("label")],
        Discriminator(
            _item_kind, custom_error_type="kind", custom_error_message='expected "sample" or "label"'
        ),
    ]
    key = "texts" if project.data == "text" else "features"
    row = _text(project) if key == "texts" else _features(project)
    predict = _model("Predict", {key: (_list(row, project), ...)})
    return Contract(
        send=_one_or_many(item, project),
        labels=_one_or_many(_label_models(project, on_send=False), project),
        predict=TypeAdapter(predict),
    )


__all__ = ["KEY_PATTERN", "NAME_PATTERN", "TEXT_PATTERN", "Contract", "MetaValue", "contract"]
