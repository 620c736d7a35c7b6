"""Messages in and out: the project's data contract, and the checks every sample and label passes.

Samples and labels reach alstream through ``POST /send``, ``POST /labels`` and Kafka topics that
any client may write. All of them go through this module, so the rules are the same everywhere:

* ``parse_samples`` / ``parse_labels`` / ``parse_messages`` check a decoded JSON payload (one
  object or a list of objects) and raise :class:`InvalidBatch` naming **every** bad item and why;
  nothing is half-accepted.
* ``decode_sample`` / ``decode_label`` check the raw bytes of one stream message and raise
  :class:`InvalidMessage` with the reason (the consumer sends those to the dead-letter topic).
* ``encode_sample`` / ``encode_label`` write the JSON the topics carry; decoding it gives back an
  equal object.

Rules (the README repeats them for clients):

Sample
    ``id``: optional; a uuid4 hex is generated when it is absent or null. A non-empty string of
    at most ``max_id_chars`` characters, not only whitespace. Integers are accepted and converted
    to their decimal string (``7`` -> ``"7"``; so ``7`` and ``"7"`` are the same id); floats and
    booleans are refused. Exactly one of ``features`` or ``text``, whichever ``schema.data``
    says. ``features``: a list of numbers (``n_features`` of them when the schema fixes a count)
    or, when the schema names its features, an object with exactly those names. Numbers are JSON
    integers or floats, finite, within float32 range; booleans and strings are not numbers.
    Features are stored as float32 in ``feature_names`` order. ``text``: a non-empty string (not
    only whitespace) of at most ``max_text_chars`` characters. ``meta``: optional JSON object of
    at most ``max_meta_bytes`` bytes once encoded, with finite numbers only. ``label``: optional,
    one of ``schema.classes``; integers are converted (``3`` -> ``"3"``). ``annotator``:
    optional non-empty string of at most 200 characters. Any other field is an error (so typos
    such as ``"featurs"`` are caught).
Label
    ``id`` (required, same rules as a sample id), then either ``label`` (one of the classes) or
    ``"skipped": true`` with no label; ``annotator`` optional. The same id may appear several
    times in one batch of labels (two annotators, or a correction): they are kept in order.
Batch
    One object or a non-empty list of at most ``max_batch`` objects. Duplicate sample ids within
    one batch are refused on the later items. Errors are collected for all items; at most
    :data:`MAX_ERRORS` are listed, ``InvalidBatch.total`` counts them all. Errors about the
    batch as a whole (not a list, empty, too long) carry ``index = -1``.
``/send`` (``parse_messages``)
    Each item may carry ``"kind": "sample"`` or ``"kind": "label"``. **An item without
    ``kind`` is a sample** -- never guessed from its other fields. An item that looks like a
    label (``label``/``skipped`` but no features or text) and has no ``kind`` fails as a sample
    with a hint to add ``"kind": "label"``.
"""

from __future__ import annotations

import difflib
import math
import string
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "MAX_ANNOTATOR_CHARS",
    "MAX_ERRORS",
    "InvalidBatch",
    "InvalidMessage",
    "ItemError",
    "Label",
    "LabelIn",
    "ProjectSchema",
    "Sample",
    "SampleIn",
    "decode_label",
    "decode_sample",
    "digits_feature_names",
    "encode_label",
    "encode_sample",
    "labels_openapi_extra",
    "parse_labels",
    "parse_messages",
    "parse_samples",
    "send_openapi_extra",
]

MAX_ERRORS = 100  # errors listed in one InvalidBatch; ``total`` counts them all
MAX_ANNOTATOR_CHARS = 200
_MAX_LISTED = 5  # bad positions / names / classes named in one message
_NUMBER_TYPES = frozenset(
    {int, float, np.float64, np.float32, np.float16, np.int64, np.int32, np.int16, np.int8}
    | {np.uint64, np.uint32, np.uint16, np.uint8}
)

SAMPLE_FIELDS = ("id", "features", "text", "meta", "label", "annotator")
LABEL_FIELDS = ("id", "label", "skipped", "annotator")


def digits_feature_names() -> list[str]:
    """scikit-learn's ``load_digits().feature_names``: ``pixel_0_0`` .. ``pixel_7_7``."""
    return [f"pixel_{row}_{col}" for row in range(8) for col in range(8)]


# --------------------------------------------------------------------------- the data contract


class ProjectSchema(BaseModel):
    """The project's data contract: what a sample must look like, and the classes to learn."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    classes: list[str] = Field(description="The known classes: at least 2, unique, non-empty strings.")
    data: Literal["features", "text"] = Field(
        "features", description="What a sample carries: numeric `features` or a `text`."
    )
    n_features: int | None = Field(
        None,
        ge=1,
        description="How many numbers a list of features must have (derived from feature_names when "
        "they are given; no count check when both are unset).",
    )
    feature_names: list[str] | None = Field(
        None,
        description="Feature names: mapping features must have exactly these keys; list features "
        "must have this length and follow this order.",
    )
    image_shape: tuple[int, int] | None = Field(
        None,
        description="(height, width) when list features are the pixels of a grey image: the labeling "
        "page draws them. Needs n_features = height * width.",
    )
    keys: dict[str, str] | None = Field(
        None,
        description="The labeling page's key for each class (one character each); default: the class "
        "name when every class is one character, else 1-9 then letters.",
    )
    max_text_chars: int = Field(100_000, ge=1, description="Longest text accepted, in characters.")
    max_meta_bytes: int = Field(16_384, ge=2, description="Largest `meta` accepted, in bytes of JSON.")
    max_id_chars: int = Field(200, ge=1, description="Longest sample id accepted, in characters.")
    max_batch: int = Field(10_000, ge=1, description="Most items accepted in one batch.")

    @field_validator("classes", mode="before")
    @classmethod
    def _classes_as_strings(cls, value: Any) -> Any:
        # TOML/JSON users write `classes = [0, 1]`; labels accept ints the same way.
        if isinstance(value, list | tuple):
            return [str(c) if type(c) is int else c for c in value]
        return value

    @field_validator("classes")
    @classmethod
    def _check_classes(cls, classes: list[str]) -> list[str]:
        if len(classes) < 2:
            raise ValueError(f"need at least 2 classes, got {len(classes)}")
        if any(not c.strip() for c in classes):
            raise ValueError("class names must be non-empty strings")
        duplicates = sorted({c for c in classes if classes.count(c) > 1})
        if duplicates:
            raise ValueError(f"duplicate class names: {', '.join(map(repr, duplicates))}")
        return classes

    @field_validator("feature_names")
    @classmethod
    def _check_feature_names(cls, names: list[str] | None) -> list[str] | None:
        if names is None:
            return None
        if not names:
            raise ValueError("feature_names, when given, must not be empty")
        if any(not n.strip() for n in names):
            raise ValueError("feature names must be non-empty strings")
        seen: set[str] = set()
        duplicates = sorted({n for n in names if n in seen or seen.add(n)})
        if duplicates:
            raise ValueError(f"duplicate feature names: {', '.join(map(repr, duplicates[:_MAX_LISTED]))}")
        return names

    @field_validator("image_shape")
    @classmethod
    def _check_image_shape(cls, shape: tuple[int, int] | None) -> tuple[int, int] | None:
        if shape is not None and min(shape) < 1:
            raise ValueError(f"image_shape must be two positive numbers, got {list(shape)}")
        return shape

    @model_validator(mode="after")
    def _check_shape(self) -> ProjectSchema:
        if self.data == "text" and (self.n_features is not None or self.feature_names is not None):
            raise ValueError("n_features and feature_names apply to data = 'features' only, not 'text'")
        if self.feature_names is not None:
            if self.n_features is None:
                object.__setattr__(self, "n_features", len(self.feature_names))
            elif self.n_features != len(self.feature_names):
                raise ValueError(
                    f"n_features is {self.n_features} but feature_names has {len(self.feature_names)} names"
                )
        if self.image_shape is not None:
            height, width = self.image_shape
            if self.n_features != height * width:
                raise ValueError(
                    f"image_shape {height}x{width} needs n_features = {height * width}, not {self.n_features}"
                )
        if self.keys is not None:
            _check_keys(self.keys, self.classes)
        return self

    @classmethod
    def digits(cls) -> ProjectSchema:
        """The demo project: scikit-learn's 8x8 digits, classes "0".."9", 64 named pixels."""
        return cls(
            classes=[str(d) for d in range(10)],
            data="features",
            feature_names=digits_feature_names(),
            image_shape=(8, 8),
        )

    def label_keys(self) -> dict[str, str]:
        """The page's key for each class: ``keys`` when set; else the class names when each is one
        character; else 1-9, then the letters the page does not use for anything else."""
        if self.keys is not None:
            return dict(self.keys)
        if all(len(c) == 1 and c not in RESERVED_KEYS for c in self.classes):
            return {c: c for c in self.classes}
        free = [str(d) for d in range(1, 10)] + [k for k in string.ascii_lowercase if k not in RESERVED_KEYS]
        return dict(zip(self.classes, free, strict=False))


RESERVED_KEYS = frozenset("?")  # the page's own keys besides Enter, Space, Backspace and arrows


def _check_keys(keys: dict[str, str], classes: list[str]) -> None:
    unknown = sorted(set(keys) - set(classes))
    if unknown:
        raise ValueError(f"keys name unknown classes: {', '.join(map(repr, unknown[:_MAX_LISTED]))}")
    bad = sorted(k for k in keys.values() if len(k) != 1 or not k.isprintable() or k.isspace())
    if bad:
        raise ValueError(f"each key must be one printable character, got {', '.join(map(repr, bad))}")
    taken = sorted(k for k in set(keys.values()) if k in RESERVED_KEYS)
    if taken:
        raise ValueError(f"keys {', '.join(map(repr, taken))} are the page's own")
    values = list(keys.values())
    duplicates = sorted({k for k in values if values.count(k) > 1})
    if duplicates:
        raise ValueError(f"the same key for several classes: {', '.join(map(repr, duplicates))}")


# ------------------------------------------------------------------------------ parsed values


@dataclass(frozen=True, eq=False)
class Sample:
    """One validated sample. ``features`` is a read-only float32 vector in feature_names order."""

    id: str
    features: np.ndarray | None = None
    text: str | None = None
    meta: dict | None = None
    label: str | None = None
    annotator: str | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sample):
            return NotImplemented
        if (self.id, self.text, self.meta, self.label, self.annotator) != (
            other.id,
            other.text,
            other.meta,
            other.label,
            other.annotator,
        ):
            return False
        if self.features is None or other.features is None:
            return self.features is other.features
        return self.features.dtype == other.features.dtype and np.array_equal(self.features, other.features)

    __hash__ = object.__hash__


@dataclass(frozen=True)
class Label:
    """One validated label for the sample ``id``: a class, or ``skipped`` with ``label=None``."""

    id: str
    label: str | None = None
    annotator: str | None = None
    skipped: bool = False


@dataclass(frozen=True)
class ItemError:
    """What is wrong with one item: ``index`` in the batch (-1: the batch itself), its id if known."""

    index: int
    id: str | None
    field: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "id": self.id, "field": self.field, "message": self.message}

    def __str__(self) -> str:
        where = "batch" if self.index < 0 else f"item {self.index}"
        if self.id is not None:
            where += f" (id {self.id!r})"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class InvalidMessage(ValueError):
    """A stream message that cannot be used; ``reason`` says why (for the dead-letter topic)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class InvalidBatch(ValueError):
    """A refused batch. ``errors``: the first :data:`MAX_ERRORS` problems; ``total``: all of them."""

    def __init__(self, errors: list[ItemError], total: int | None = None):
        self.errors = list(errors[:MAX_ERRORS])
        self.total = len(errors) if total is None else total
        self.bad_items = len({e.index for e in self.errors})
        shown = "; ".join(str(e) for e in self.errors[:3])
        more = f"; ... {self.total - 3} more" if self.total > 3 else ""
        super().__init__(f"{self.total} error{'s' if self.total != 1 else ''} in batch: {shown}{more}")

    def to_list(self) -> list[dict[str, Any]]:
        """The listed errors as JSON-ready dicts (the body of a 422 answer)."""
        return [e.to_dict() for e in self.errors]


# --------------------------------------------------------------------------------- validation


class _Problem(Exception):
    """One bad field of one item (internal; turned into an ItemError)."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _listing(items: list[str], limit: int = _MAX_LISTED) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" (and {len(items) - limit} more)" if len(items) > limit else "")


class _Checker:
    """The per-batch state of the checks: the schema's lookups computed once."""

    def __init__(self, schema: ProjectSchema):
        self.schema = schema
        self.classes = frozenset(schema.classes)
        self.names = schema.feature_names
        self.name_set = frozenset(self.names) if self.names is not None else None
        self.n = schema.n_features

    # ------------------------------------------------------------------ fields

    def unknown_fields(self, item: Mapping, allowed: tuple[str, ...]) -> list[_Problem]:
        problems = []
        for key in item:
            if key not in allowed:
                hint = difflib.get_close_matches(str(key), allowed, n=1)
                why = f"did you mean {hint[0]!r}?" if hint else f"allowed fields: {', '.join(allowed)}"
                problems.append(_Problem(str(key), f"unknown field ({why})"))
        return problems

    def id(self, value: Any, *, required: bool) -> str:
        if value is None:
            if required:
                raise _Problem("id", "missing: the id of the sample is required")
            return uuid.uuid4().hex
        if type(value) is int:
            value = str(value)
        elif not isinstance(value, str):
            raise _Problem("id", f"expected a string (or an integer), got {_type_name(value)}")
        if not value.strip():
            raise _Problem("id", "must be a non-empty string")
        if len(value) > self.schema.max_id_chars:
            raise _Problem("id", f"too long: {len(value)} characters, at most {self.schema.max_id_chars}")
        return value

    def label(self, value: Any) -> str:
        if type(value) is int:
            value = str(value)
        elif not isinstance(value, str):
            raise _Problem("label", f"expected a class name (string), got {_type_name(value)}")
        if value not in self.classes:
            known = _listing([repr(c) for c in self.schema.classes], limit=20)
            raise _Problem("label", f"unknown class {_short(value)}: known classes are {known}")
        return value

    def annotator(self, value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise _Problem("annotator", f"expected a string, got {_type_name(value)}")
        if not value.strip():
            raise _Problem("annotator", "must be a non-empty string (or absent)")
        if len(value) > MAX_ANNOTATOR_CHARS:
            raise _Problem("annotator", f"too long: {len(value)} characters, at most {MAX_ANNOTATOR_CHARS}")
        return value

    def text(self, value: Any) -> str:
        if not isinstance(value, str):
            raise _Problem("text", f"expected a string, got {_type_name(value)}")
        if not value.strip():
            raise _Problem("text", "must not be empty")
        if len(value) > self.schema.max_text_chars:
            raise _Problem("text", f"too long: {len(value)} characters, at most {self.schema.max_text_chars}")
        return value

    def meta(self, value: Any) -> dict | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise _Problem("meta", f"expected a JSON object, got {_type_name(value)}")
        try:
            encoded = orjson.dumps(value)
        except (TypeError, orjson.JSONEncodeError) as exc:
            raise _Problem("meta", f"not plain JSON: {exc}") from None
        if len(encoded) > self.schema.max_meta_bytes:
            raise _Problem(
                "meta", f"too large: {len(encoded)} bytes of JSON, at most {self.schema.max_meta_bytes}"
            )
        plain = orjson.loads(encoded)
        if plain != value:  # NaN/inf (written as null), tuples, non-string keys...
            raise _Problem(
                "meta",
                "not plain JSON: only objects with string keys, lists, strings, "
                "finite numbers, booleans and null",
            )
        return plain

    def features(self, value: Any) -> np.ndarray:
        return self.to_float32(*self.feature_values(value))

    def feature_values(self, value: Any) -> tuple[list, list[str] | None]:
        """The numbers of ``value`` in schema order, type- and count-checked; and their names."""
        if isinstance(value, list | tuple):  # the common case first
            values = list(value) if isinstance(value, tuple) else value
            labels = None
            if self.n is not None and len(values) != self.n:
                raise _Problem("features", f"expected {self.n} numbers, got {len(values)}")
            if not values:
                raise _Problem("features", "must not be empty")
        elif isinstance(value, Mapping):
            if self.names is None:
                raise _Problem("features", "this project has no feature_names: send features as a list")
            keys = value.keys()
            if keys != self.name_set:
                missing = [n for n in self.names if n not in value]
                unknown = [repr(k) for k in keys if k not in self.name_set]
                parts = []
                if missing:
                    parts.append(f"missing {_listing([repr(n) for n in missing])}")
                if unknown:
                    parts.append(f"unknown {_listing(unknown)}")
                raise _Problem("features", "wrong feature names: " + "; ".join(parts))
            values = [value[n] for n in self.names]
            labels: list[str] | None = self.names
        elif isinstance(value, np.ndarray):
            if value.ndim != 1 or value.dtype.kind not in "iuf":
                raise _Problem("features", f"expected a 1-d numeric array, got {value.dtype} {value.shape}")
            values = value.tolist()
            labels = None
            if self.n is not None and len(values) != self.n:
                raise _Problem("features", f"expected {self.n} numbers, got {len(values)}")
            if not values:
                raise _Problem("features", "must not be empty")
        else:
            expected = "a list of numbers" + (" or an object of name: number" if self.names else "")
            raise _Problem("features", f"expected {expected}, got {_type_name(value)}")

        def where(i: int) -> str:
            return repr(labels[i]) if labels is not None else f"[{i}]"

        if not set(map(type, values)) <= _NUMBER_TYPES:
            bad = [
                f"{where(i)} is {_type_name(v)}" for i, v in enumerate(values) if type(v) not in _NUMBER_TYPES
            ]
            raise _Problem("features", f"not numbers: {_listing(bad)}")
        return values, labels

    @staticmethod
    def to_float32(values: list, labels: list[str] | None) -> np.ndarray:
        """Checked numbers as a read-only float32 vector: finite, within float32's range."""

        def where(i: int) -> str:
            return repr(labels[i]) if labels is not None else f"[{i}]"

        try:
            array = np.array(values, dtype=np.float64)
        except OverflowError:
            bad = [where(i) for i, v in enumerate(values) if type(v) is int and not _fits_float(v)]
            raise _Problem("features", f"numbers out of range at {_listing(bad)}") from None
        if not np.isfinite(array).all():
            bad = [f"{where(i)} is {values[i]}" for i in np.flatnonzero(~np.isfinite(array)).tolist()]
            raise _Problem("features", f"not finite numbers: {_listing(bad)}")
        with np.errstate(over="ignore"):
            out = array.astype(np.float32)
        if not np.isfinite(out).all():  # beyond float32 (what rounds to float32's max is fine)
            bad = [where(i) for i in np.flatnonzero(~np.isfinite(out)).tolist()]
            raise _Problem("features", f"numbers out of float32 range at {_listing(bad)}")
        out.flags.writeable = False
        return out

    def fill_features(self, pending: list[tuple[int, Sample]], errors: _Errors) -> dict[int, Sample]:
        """Convert the deferred features of many samples at once (one numpy call for the batch).

        ``pending``: (index, sample whose ``features`` is a :class:`_Deferred`). Returns the
        finished samples by index; a sample whose numbers fail is reported to ``errors``.
        """
        done: dict[int, Sample] = {}
        rows = [s.features.values for _, s in pending]
        matrix = None
        if rows and self.n is not None:
            try:
                array = np.array(rows, dtype=np.float64)
            except (OverflowError, ValueError):
                array = None  # a huge integer somewhere: go row by row for the messages
            if array is not None:
                with np.errstate(over="ignore"):
                    matrix = array.astype(np.float32)
                ok = (np.isfinite(array).all(axis=1) & np.isfinite(matrix).all(axis=1)).tolist()
                matrix.flags.writeable = False
        for row, (index, sample) in enumerate(pending):
            if matrix is not None and ok[row]:
                features = matrix[row]
            else:
                try:
                    features = self.to_float32(sample.features.values, sample.features.labels)
                except _Problem as p:
                    errors.add(index, sample.id, [p])
                    continue
            object.__setattr__(sample, "features", features)
            done[index] = sample
        return done

    # ------------------------------------------------------------------ items

    def sample(
        self, item: Any, *, allowed: tuple[str, ...] = SAMPLE_FIELDS, defer: bool = False
    ) -> tuple[Sample | None, str | None, list[_Problem]]:
        """(sample or None, the id if known, problems)."""
        if not isinstance(item, dict | Mapping):
            return None, None, [_Problem("", f"expected a JSON object, got {_type_name(item)}")]
        problems = self.unknown_fields(item, allowed)
        sample_id = None
        try:
            sample_id = self.id(item.get("id"), required=False)
        except _Problem as p:
            problems.append(p)
        fields: dict[str, Any] = {}
        data = self.schema.data
        other = "text" if data == "features" else "features"
        if item.get(other) is not None:
            problems.append(_Problem(other, f"this project's samples carry {data}, not {other}"))
        if item.get(data) is None:
            hint = ""
            if "kind" in allowed and "kind" not in item and ("label" in item or "skipped" in item):
                hint = '; to label an existing sample, add "kind": "label"'
            problems.append(_Problem(data, f"missing: this project's samples need {data}{hint}"))
        else:
            try:
                if data == "text":
                    fields["text"] = self.text(item["text"])
                elif defer:
                    fields["features"] = _Deferred(*self.feature_values(item["features"]))
                else:
                    fields["features"] = self.features(item["features"])
            except _Problem as p:
                problems.append(p)
        for name in ("meta", "annotator"):
            try:
                fields[name] = getattr(self, name)(item.get(name))
            except _Problem as p:
                problems.append(p)
        if item.get("label") is not None:
            try:
                fields["label"] = self.label(item["label"])
            except _Problem as p:
                problems.append(p)
        if problems:
            deferred = fields.get("features")
            if isinstance(deferred, _Deferred):
                try:
                    self.to_float32(deferred.values, deferred.labels)
                except _Problem as p:
                    problems.append(p)
            return None, sample_id, problems
        return Sample(id=sample_id, **fields), sample_id, []

    def label_item(
        self, item: Any, *, allowed: tuple[str, ...] = LABEL_FIELDS
    ) -> tuple[Label | None, str | None, list[_Problem]]:
        if not isinstance(item, dict | Mapping):
            return None, None, [_Problem("", f"expected a JSON object, got {_type_name(item)}")]
        problems = self.unknown_fields(item, allowed)
        label_id = label = annotator = None
        try:
            label_id = self.id(item.get("id"), required=True)
        except _Problem as p:
            problems.append(p)
        skipped = item.get("skipped", False)
        if skipped is None:
            skipped = False
        if not isinstance(skipped, bool):
            problems.append(_Problem("skipped", f"expected true or false, got {_type_name(skipped)}"))
            skipped = False
        raw = item.get("label")
        if skipped and raw is not None:
            problems.append(
                _Problem("label", "a skipped item carries no label: drop one of label and skipped")
            )
        elif not skipped and raw is None:
            problems.append(_Problem("label", 'missing: give a label, or "skipped": true'))
        elif raw is not None:
            try:
                label = self.label(raw)
            except _Problem as p:
                problems.append(p)
        try:
            annotator = self.annotator(item.get("annotator"))
        except _Problem as p:
            problems.append(p)
        if problems:
            return None, label_id, problems
        return Label(id=label_id, label=label, annotator=annotator, skipped=skipped), label_id, []


@dataclass(frozen=True)
class _Deferred:
    """Type-checked feature values waiting for the batch's numeric conversion."""

    values: list
    labels: list[str] | None


def _fits_float(value: int) -> bool:
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


# ------------------------------------------------------------------------------------ batches


def _items(payload: Any, schema: ProjectSchema) -> list[Any]:
    if isinstance(payload, Mapping):
        return [payload]
    if isinstance(payload, list | tuple):
        if not payload:
            raise InvalidBatch([ItemError(-1, None, "", "empty batch")])
        if len(payload) > schema.max_batch:
            raise InvalidBatch(
                [
                    ItemError(
                        -1, None, "", f"batch has {len(payload)} items, at most {schema.max_batch} allowed"
                    )
                ]
            )
        return list(payload)
    raise InvalidBatch(
        [ItemError(-1, None, "", f"expected a JSON object or a list of objects, got {_type_name(payload)}")]
    )


class _Errors:
    """Collects ItemErrors; the raised InvalidBatch lists the first MAX_ERRORS by index."""

    def __init__(self) -> None:
        self.all: list[ItemError] = []

    @property
    def total(self) -> int:
        return len(self.all)

    def add(self, index: int, item_id: str | None, problems: list[_Problem]) -> None:
        self.all.extend(ItemError(index, item_id, p.field, p.message) for p in problems)

    def raise_if_any(self) -> None:
        if self.all:
            ordered = sorted(self.all, key=lambda e: e.index)  # stable: an item's errors keep their order
            raise InvalidBatch(ordered[:MAX_ERRORS], len(ordered))


def _duplicate(first_seen: dict[str, int], sample_id: str | None, index: int) -> _Problem | None:
    if sample_id is None:
        return None
    first = first_seen.setdefault(sample_id, index)
    if first != index:
        return _Problem("id", f"duplicate id {_short(sample_id)} in this batch (first at index {first})")
    return None


def _finish(checker: _Checker, found: list[tuple[int, Sample]], errors: _Errors) -> list[Sample]:
    """The samples in batch order, their features converted in one go (errors reported)."""
    pending = [(i, s) for i, s in found if isinstance(s.features, _Deferred)]
    done = checker.fill_features(pending, errors)
    return [done.get(i, s) for i, s in found]


def parse_samples(payload: Any, schema: ProjectSchema) -> list[Sample]:
    """Check one sample object or a list of them; raise InvalidBatch listing every bad item."""
    checker = _Checker(schema)
    items = _items(payload, schema)
    errors = _Errors()
    found: list[tuple[int, Sample]] = []
    first_seen: dict[str, int] = {}
    for index, item in enumerate(items):
        sample, sample_id, problems = checker.sample(item, defer=True)
        duplicate = _duplicate(first_seen, sample_id, index)
        if duplicate is not None:
            problems.insert(0, duplicate)
        if problems:
            errors.add(index, sample_id, problems)
        else:
            found.append((index, sample))
    samples = _finish(checker, found, errors)
    errors.raise_if_any()
    return samples


def parse_labels(payload: Any, schema: ProjectSchema) -> list[Label]:
    """Check one label object or a list of them; raise InvalidBatch listing every bad item."""
    checker = _Checker(schema)
    items = _items(payload, schema)
    errors = _Errors()
    labels: list[Label] = []
    for index, item in enumerate(items):
        label, label_id, problems = checker.label_item(item)
        if problems:
            errors.add(index, label_id, problems)
        elif not errors.total:
            labels.append(label)
    errors.raise_if_any()
    return labels


def parse_messages(payload: Any, schema: ProjectSchema) -> tuple[list[Sample], list[Label]]:
    """The ``/send`` body: samples and labels mixed, told apart by ``kind`` (absent: "sample").

    Returns (samples, labels), each in batch order. Duplicate sample ids are refused as in
    :func:`parse_samples`; labels may refer to samples of the same batch.
    """
    checker = _Checker(schema)
    items = _items(payload, schema)
    errors = _Errors()
    found: list[tuple[int, Sample]] = []
    labels: list[Label] = []
    first_seen: dict[str, int] = {}
    for index, item in enumerate(items):
        kind = item.get("kind", "sample") if isinstance(item, Mapping) else "sample"
        if kind is None:
            kind = "sample"
        if kind == "sample":
            sample, item_id, problems = checker.sample(item, allowed=(*SAMPLE_FIELDS, "kind"), defer=True)
            duplicate = _duplicate(first_seen, item_id, index)
            if duplicate is not None:
                problems.insert(0, duplicate)
            if not problems:
                found.append((index, sample))
        elif kind == "label":
            label, item_id, problems = checker.label_item(item, allowed=(*LABEL_FIELDS, "kind"))
            if not problems:
                labels.append(label)
        else:
            raw_id = item.get("id")
            item_id = raw_id if isinstance(raw_id, str) else None
            problems = [_Problem("kind", f'expected "sample" or "label", got {_short(kind)}')]
        if problems:
            errors.add(index, item_id, problems)
    samples = _finish(checker, found, errors)
    errors.raise_if_any()
    return samples, labels


# ------------------------------------------------------------------------------ on the topics

_DUMPS_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def encode_sample(s: Sample) -> bytes:
    """The JSON of a sample on a topic; null fields are left out, features are a list of floats."""
    body: dict[str, Any] = {"id": s.id}
    if s.features is not None:
        body["features"] = np.ascontiguousarray(s.features, dtype=np.float32)
    for name in ("text", "meta", "label", "annotator"):
        value = getattr(s, name)
        if value is not None:
            body[name] = value
    return orjson.dumps(body, option=_DUMPS_OPTIONS)


def encode_label(label: Label) -> bytes:
    """The JSON of a label on a topic; null fields are left out, ``skipped`` only when true."""
    body: dict[str, Any] = {"id": label.id}
    if label.label is not None:
        body["label"] = label.label
    if label.annotator is not None:
        body["annotator"] = label.annotator
    if label.skipped:
        body["skipped"] = True
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
        raise InvalidMessage(f"expected a JSON object, got {_type_name(body)}")
    return body


def _reason(problems: list[_Problem]) -> str:
    return "; ".join(f"{p.field}: {p.message}" if p.field else p.message for p in problems)


def decode_sample(value: bytes, schema: ProjectSchema) -> Sample:
    """One sample from a topic message, written by any client; InvalidMessage says what is wrong."""
    sample, _, problems = _Checker(schema).sample(_load_object(value))
    if problems:
        raise InvalidMessage(_reason(problems))
    return sample


def decode_samples(values: Sequence[bytes], schema: ProjectSchema) -> list[Sample | InvalidMessage]:
    """:func:`decode_sample` for a batch of messages, converting all their features in one go:
    per message, the sample or the InvalidMessage that says what is wrong with it."""
    checker = _Checker(schema)
    out: list[Sample | InvalidMessage] = []
    deferred: list[tuple[int, Sample]] = []
    for index, value in enumerate(values):
        try:
            sample, _, problems = checker.sample(_load_object(value), defer=True)
        except InvalidMessage as error:
            out.append(error)
            continue
        if problems:
            out.append(InvalidMessage(_reason(problems)))
            continue
        out.append(sample)
        if isinstance(sample.features, _Deferred):
            deferred.append((index, sample))
    errors = _Errors()
    checker.fill_features(deferred, errors)  # sets the features of the samples in ``out``
    for error in errors.all:
        out[error.index] = InvalidMessage(f"{error.field}: {error.message}")
    return out


def decode_label(value: bytes, schema: ProjectSchema) -> Label:
    """One label from a topic message, written by any client; InvalidMessage says what is wrong."""
    label, _, problems = _Checker(schema).label_item(_load_object(value))
    if problems:
        raise InvalidMessage(_reason(problems))
    return label


# ------------------------------------------------------------------- OpenAPI documentation only


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
