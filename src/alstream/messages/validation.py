"""The checks every sample and label passes: ``parse_samples`` / ``parse_labels`` /
``parse_messages`` take a decoded JSON payload and accept all of it or raise :class:`InvalidBatch`
naming every bad item (the rules are in :mod:`alstream.messages`)."""

from __future__ import annotations

import binascii
import difflib
import itertools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import orjson

from alstream.messages.ids import ordered_id
from alstream.messages.schema import (
    _MAX_LISTED,
    FLOAT32_LIMIT,
    MAX_ANNOTATOR_CHARS,
    MAX_ID_BYTES,
    MAX_SAFE_INTEGER,
    ProjectSchema,
)
from alstream.messages.values import MAX_ERRORS, InvalidBatch, ItemError, Label, Sample

_NUMBER_TYPES = frozenset(
    {int, float, np.float64, np.float32, np.float16, np.int64, np.int32, np.int16, np.int8}
    | {np.uint64, np.uint32, np.uint16, np.uint8}
)

SAMPLE_FIELDS = ("id", "features", "text", "meta", "label", "annotator")
# The fields of a plain sample, the common case that :meth:`Checker.plain_samples` checks per batch.
_PLAIN_FIELDS = frozenset({"id", "features"})
_PLAIN_NUMBERS = frozenset({float, int})
# Names (ids, annotators, labels, meta keys) hold no control characters (C0, DEL, C1): they end up in logs,
# file names and database keys, where they are invisible or break things (PostgreSQL refuses NUL).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
LABEL_FIELDS = ("id", "label", "skipped", "annotator")


class Problem(Exception):
    """One bad field of one item (internal; turned into an ItemError)."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message


def type_name(value: Any) -> str:
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


class Checker:
    """The per-batch state of the checks: the schema's lookups computed once. ``packed``: features
    may also come as the base64 of little-endian float32s (the topics' encoding, :meth:`packed`)."""

    def __init__(self, schema: ProjectSchema, *, packed: bool = False):
        self.schema = schema
        self.packed_ok = packed
        self.classes = frozenset(schema.classes)
        self.names = schema.feature_names
        self.name_set = frozenset(self.names or ())  # read only when there are names
        self.n = schema.n_features

    # ------------------------------------------------------------------ fields

    def unknown_fields(self, item: Mapping, allowed: tuple[str, ...]) -> list[Problem]:
        problems = []
        for key in item:
            if key not in allowed:
                hint = difflib.get_close_matches(str(key), allowed, n=1)
                why = f"did you mean {hint[0]!r}?" if hint else f"allowed fields: {', '.join(allowed)}"
                problems.append(Problem(str(key), f"unknown field ({why})"))
        return problems

    def id(self, value: Any, *, required: bool, default: Callable[[], str] | None = None) -> str:
        """A checked id; a missing one is refused (``required``) or made: ``default()``, else
        :func:`~alstream.messages.ids.ordered_id`."""
        if value is None:
            if required:
                raise Problem("id", "missing: the id of the sample is required")
            return default() if default is not None else ordered_id()
        if type(value) is int or _integral(value):  # JSON cannot tell 7 from 7.0: both are the id "7"
            if abs(value) > MAX_SAFE_INTEGER:
                raise Problem(
                    "id", f"integer ids are at most {MAX_SAFE_INTEGER} either way: send it as a string"
                )
            value = str(int(value))
        elif not isinstance(value, str):
            raise Problem("id", f"expected a string (or an integer), got {type_name(value)}")
        if not value.strip():
            raise Problem("id", "must be a non-empty string")
        _no_control("id", value)
        if len(value) > self.schema.max_id_chars:
            raise Problem("id", f"too long: {len(value)} characters, at most {self.schema.max_id_chars}")
        if len(value) * 4 > MAX_ID_BYTES and len(value.encode()) > MAX_ID_BYTES:  # PostgreSQL's index limit
            raise Problem("id", f"too long: {len(value.encode())} bytes in UTF-8, at most {MAX_ID_BYTES}")
        return value

    def label(self, value: Any) -> str:
        if type(value) is int or _integral(value):
            value = str(int(value))
        elif not isinstance(value, str):
            raise Problem("label", f"expected a class name (string), got {type_name(value)}")
        if value not in self.classes:  # class names hold no control characters: neither does a label
            known = _listing([repr(c) for c in self.schema.classes], limit=20)
            raise Problem("label", f"unknown class {_short(value)}: known classes are {known}")
        return value

    def annotator(self, value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise Problem("annotator", f"expected a string, got {type_name(value)}")
        if not value.strip():
            raise Problem("annotator", "must be a non-empty string (or absent)")
        _no_control("annotator", value)
        if len(value) > MAX_ANNOTATOR_CHARS:
            raise Problem("annotator", f"too long: {len(value)} characters, at most {MAX_ANNOTATOR_CHARS}")
        return value

    def token_key(self, value: Any) -> str | None:
        """The key of the token that sent a label: only on the topics, where the service writes it."""
        if value is None:
            return None
        if not isinstance(value, str) or not 0 < len(value) <= 64:
            raise Problem("token_key", f"expected a token key (a short string), got {_short(value)}")
        return value

    def text(self, value: Any) -> str:
        if not isinstance(value, str):
            raise Problem("text", f"expected a string, got {type_name(value)}")
        if not value.strip():
            raise Problem("text", "must not be empty")
        if "\x00" in value:  # PostgreSQL cannot store it; other control characters (tabs, newlines) are text
            raise Problem("text", f"holds a NUL character (\\u0000) at position {value.index(chr(0))}")
        if len(value) > self.schema.max_text_chars:
            raise Problem("text", f"too long: {len(value)} characters, at most {self.schema.max_text_chars}")
        return value

    def meta(self, value: Any) -> dict | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise Problem("meta", f"expected a JSON object, got {type_name(value)}")
        try:
            encoded = orjson.dumps(value)
        except (TypeError, orjson.JSONEncodeError) as exc:
            raise Problem("meta", f"not plain JSON: {exc}") from None
        if len(encoded) > self.schema.max_meta_bytes:
            raise Problem(
                "meta", f"too large: {len(encoded)} bytes of JSON, at most {self.schema.max_meta_bytes}"
            )
        bad_key = _control_key(value)
        if bad_key is not None:
            raise Problem("meta", f"key {_short(bad_key)} holds a control character")
        plain = orjson.loads(encoded)
        if plain != value:  # NaN/inf (written as null), tuples, non-string keys...
            raise Problem(
                "meta",
                "not plain JSON: only objects with string keys, lists, strings, "
                "finite numbers, booleans and null",
            )
        return plain

    def features(self, value: Any) -> np.ndarray:
        if self.packed_ok and isinstance(value, str):
            return self.packed(value)
        return self.to_float32(*self.feature_values(value))

    def packed(self, value: str) -> np.ndarray:
        """Packed features: the base64 of little-endian float32s, in schema order, all finite."""
        try:
            raw = binascii.a2b_base64(value, strict_mode=True)
        except (binascii.Error, ValueError):  # ValueError: not ASCII
            raise Problem("features", "a string must be the base64 of little-endian float32s") from None
        size = 4 * self.n if self.n is not None else None
        if not raw or len(raw) % 4 or (size is not None and len(raw) != size):
            expected = f"{size} ({self.n} float32s)" if size is not None else "a multiple of 4"
            raise Problem("features", f"packed: {len(raw)} bytes, expected {expected}")
        array = np.frombuffer(raw, dtype="<f4").astype(np.float32, copy=False)
        if not np.isfinite(array).all():
            bad = [f"[{i}] is {array[i]}" for i in np.flatnonzero(~np.isfinite(array)).tolist()]
            raise Problem("features", f"not finite numbers: {_listing(bad)}")
        return array

    def feature_values(self, value: Any) -> tuple[list, list[str] | None]:
        """The numbers of ``value`` in schema order, type- and count-checked; and their names."""
        if isinstance(value, list | tuple):  # the common case first
            values = list(value) if isinstance(value, tuple) else value
            labels: list[str] | None = None
            if self.n is not None and len(values) != self.n:
                raise Problem("features", f"expected {self.n} numbers, got {len(values)}")
            if not values:
                raise Problem("features", "must not be empty")
        elif isinstance(value, Mapping):
            if self.names is None:
                raise Problem("features", "this project has no feature_names: send features as a list")
            keys = value.keys()
            if keys != self.name_set:
                missing = [n for n in self.names if n not in value]
                unknown = [repr(k) for k in keys if k not in self.name_set]
                parts = []
                if missing:
                    parts.append(f"missing {_listing([repr(n) for n in missing])}")
                if unknown:
                    parts.append(f"unknown {_listing(unknown)}")
                raise Problem("features", "wrong feature names: " + "; ".join(parts))
            values = [value[n] for n in self.names]
            labels = self.names
        elif isinstance(value, np.ndarray):
            if value.ndim != 1 or value.dtype.kind not in "iuf":
                raise Problem("features", f"expected a 1-d numeric array, got {value.dtype} {value.shape}")
            values = value.tolist()
            labels = None
            if self.n is not None and len(values) != self.n:
                raise Problem("features", f"expected {self.n} numbers, got {len(values)}")
            if not values:
                raise Problem("features", "must not be empty")
        else:
            expected = "a list of numbers" + (" or an object of name: number" if self.names else "")
            raise Problem("features", f"expected {expected}, got {type_name(value)}")

        def where(i: int) -> str:
            return repr(labels[i]) if labels is not None else f"[{i}]"

        if not set(map(type, values)) <= _NUMBER_TYPES:
            bad = [
                f"{where(i)} is {type_name(v)}" for i, v in enumerate(values) if type(v) not in _NUMBER_TYPES
            ]
            raise Problem("features", f"not numbers: {_listing(bad)}")
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
            raise Problem("features", f"numbers out of range at {_listing(bad)}") from None
        if not np.isfinite(array).all():
            bad = [f"{where(i)} is {values[i]}" for i in np.flatnonzero(~np.isfinite(array)).tolist()]
            raise Problem("features", f"not finite numbers: {_listing(bad)}")
        beyond = np.abs(array) >= FLOAT32_LIMIT  # float32 would make them infinite
        if beyond.any():
            bad = [where(i) for i in np.flatnonzero(beyond).tolist()]
            raise Problem("features", f"numbers out of float32 range at {_listing(bad)}")
        out = array.astype(np.float32)
        out.flags.writeable = False
        return out

    def convert(self, deferred: list[Deferred]) -> list[np.ndarray | Problem]:
        """The float32 vectors of many type-checked feature lists at once (one numpy call for the
        batch when every row has ``n`` numbers); a row whose numbers fail gets its :class:`Problem`."""
        matrix, ok = None, []
        if deferred and self.n is not None:
            try:
                array = np.array([d.values for d in deferred], dtype=np.float64)
            except (OverflowError, ValueError):
                array = None  # a huge integer somewhere: go row by row for the messages
            if array is not None:
                rows_ok = (np.abs(array) < FLOAT32_LIMIT).all(axis=1)  # NaN compares False: not ok
                ok = cast(list[bool], rows_ok.tolist())  # a 2-d array: one bool per row
                with np.errstate(over="ignore"):
                    matrix = array.astype(np.float32)
                matrix.flags.writeable = False
        out: list[np.ndarray | Problem] = []
        for row, values in enumerate(deferred):
            if matrix is not None and ok[row]:
                out.append(matrix[row])
                continue
            try:
                out.append(self.to_float32(values.values, values.labels))
            except Problem as p:
                out.append(p)
        return out

    def finish(self, pending: list[tuple[int, Pending]], errors: Errors) -> dict[int, Sample]:
        """The samples waiting for their features, finished by index (their numbers converted in one
        go, :meth:`convert`); a sample whose numbers fail is reported to ``errors``."""
        done: dict[int, Sample] = {}
        converted = self.convert([p.deferred for _, p in pending])
        for (index, waiting), features in zip(pending, converted, strict=True):
            if isinstance(features, Problem):
                errors.add(index, waiting.id, [features])
            else:
                done[index] = waiting.sample(features)
        return done

    def plain_samples(self, items: list[Any], extra: frozenset[str] = frozenset()) -> list[Sample] | None:
        """The samples of ``items`` when every one is plainly valid, checked once for the batch: a dict
        of a string ``id`` and a list of ``n_features`` finite numbers (other fields: only those of
        ``extra``, which the caller checked). None when any item needs a closer look: the per-item
        checks then find every problem, with their messages. Both give equal samples."""
        if not items or self.schema.data != "features" or self.n is None:
            return None
        fields = _PLAIN_FIELDS | extra
        if set(map(type, items)) != {dict} or not all(map(fields.issuperset, items)):
            return None
        ids = [item.get("id") for item in items]
        if not self._plain_ids(ids):
            return None
        matrix = self._plain_features([item.get("features") for item in items])
        if matrix is None:
            return None
        return [Sample(id=sample_id, features=row) for sample_id, row in zip(ids, matrix, strict=True)]

    def _plain_ids(self, ids: list[Any]) -> bool:
        """Whether every id is a string that :meth:`id` takes as it is (short, not blank, no control)."""
        if set(map(type, ids)) != {str}:
            return False
        longest = min(self.schema.max_id_chars, MAX_ID_BYTES // 4)  # 4 bytes a character at most
        return (
            max(map(len, ids)) <= longest and all(map(str.strip, ids)) and not _CONTROL.search("".join(ids))
        )

    def _plain_features(self, rows: list[Any]) -> np.ndarray | None:
        """The rows as one read-only float32 matrix when each is a list of ``n`` numbers within
        float32's finite range (or each is packed, when that is allowed); None otherwise."""
        if self.packed_ok and set(map(type, rows)) == {str}:
            return self._plain_packed(rows)
        if set(map(type, rows)) != {list} or set(map(len, rows)) != {self.n}:
            return None
        if not set(map(type, itertools.chain.from_iterable(rows))) <= _PLAIN_NUMBERS:
            return None
        try:
            array = np.array(rows, dtype=np.float64)
        except OverflowError:  # a huge integer
            return None
        if not (np.abs(array) < FLOAT32_LIMIT).all():  # NaN compares False too
            return None
        matrix = array.astype(np.float32)
        matrix.flags.writeable = False
        return matrix

    def _plain_packed(self, rows: list[str]) -> np.ndarray | None:
        """:meth:`packed` for the batch: decoded one by one, checked and converted at once."""
        try:
            raw = [binascii.a2b_base64(row, strict_mode=True) for row in rows]
        except (binascii.Error, ValueError):
            return None
        if self.n is None or set(map(len, raw)) != {4 * self.n}:
            return None
        matrix = np.frombuffer(b"".join(raw), dtype="<f4").astype(np.float32, copy=False)
        if not np.isfinite(matrix).all():
            return None
        return matrix.reshape(len(rows), self.n)  # read-only: it views bytes

    # ------------------------------------------------------------------ items

    def sample(
        self,
        item: Any,
        *,
        allowed: tuple[str, ...] = SAMPLE_FIELDS,
        defer: bool = False,
        default_id: Callable[[], str] | None = None,
    ) -> tuple[Sample | Pending | None, str | None, list[Problem]]:
        """(sample or None, the id if known, problems); ``default_id`` names a sample sent without one.
        ``defer``: a sample of list or named features comes back :class:`Pending`, its numbers
        type-checked, for :meth:`finish` to convert with the batch's."""
        if not isinstance(item, dict | Mapping):
            return None, None, [Problem("", f"expected a JSON object, got {type_name(item)}")]
        problems = self.unknown_fields(item, allowed)
        sample_id = None
        try:
            sample_id = self.id(item.get("id"), required=False, default=default_id)
        except Problem as p:
            problems.append(p)
        fields: dict[str, Any] = {}
        data = self.schema.data
        other = "text" if data == "features" else "features"
        if item.get(other) is not None:
            problems.append(Problem(other, f"this project's samples carry {data}, not {other}"))
        if item.get(data) is None:
            hint = ""
            if "kind" in allowed and "kind" not in item and ("label" in item or "skipped" in item):
                hint = '; to label an existing sample, add "kind": "label"'
            problems.append(Problem(data, f"missing: this project's samples need {data}{hint}"))
        else:
            try:
                if data == "text":
                    fields["text"] = self.text(item["text"])
                elif defer and not (self.packed_ok and isinstance(item["features"], str)):
                    fields["features"] = Deferred(*self.feature_values(item["features"]))
                else:
                    fields["features"] = self.features(item["features"])
            except Problem as p:
                problems.append(p)
        for name in ("meta", "annotator", "token_key"):
            if name in allowed:
                try:
                    fields[name] = getattr(self, name)(item.get(name))
                except Problem as p:
                    problems.append(p)
        if item.get("label") is not None:
            try:
                fields["label"] = self.label(item["label"])
            except Problem as p:
                problems.append(p)
        if problems:
            deferred = fields.get("features")
            if isinstance(deferred, Deferred):
                try:
                    self.to_float32(deferred.values, deferred.labels)
                except Problem as p:
                    problems.append(p)
            return None, sample_id, problems
        assert sample_id is not None  # self.id returned it: there were no problems
        features = fields.get("features")
        if isinstance(features, Deferred):
            del fields["features"]
            return Pending(sample_id, fields, features), sample_id, []
        return Sample(id=sample_id, **fields), sample_id, []

    def label_item(
        self, item: Any, *, allowed: tuple[str, ...] = LABEL_FIELDS
    ) -> tuple[Label | None, str | None, list[Problem]]:
        if not isinstance(item, dict | Mapping):
            return None, None, [Problem("", f"expected a JSON object, got {type_name(item)}")]
        problems = self.unknown_fields(item, allowed)
        label_id = label = annotator = token_key = None
        try:
            label_id = self.id(item.get("id"), required=True)
        except Problem as p:
            problems.append(p)
        skipped = item.get("skipped", False)
        if skipped is None:
            skipped = False
        if not isinstance(skipped, bool):
            problems.append(Problem("skipped", f"expected true or false, got {type_name(skipped)}"))
            skipped = False
        raw = item.get("label")
        if skipped and raw is not None:
            problems.append(
                Problem("label", "a skipped item carries no label: drop one of label and skipped")
            )
        elif not skipped and raw is None:
            problems.append(Problem("label", 'missing: give a label, or "skipped": true'))
        elif raw is not None:
            try:
                label = self.label(raw)
            except Problem as p:
                problems.append(p)
        try:
            annotator = self.annotator(item.get("annotator"))
            token_key = self.token_key(item.get("token_key")) if "token_key" in allowed else None
        except Problem as p:
            problems.append(p)
        if problems:
            return None, label_id, problems
        assert label_id is not None  # self.id returned it: there were no problems
        label_ = Label(id=label_id, label=label, annotator=annotator, skipped=skipped, token_key=token_key)
        return label_, label_id, []


@dataclass(frozen=True, slots=True)
class Deferred:
    """Type-checked feature values waiting for the batch's numeric conversion."""

    values: list
    labels: list[str] | None


@dataclass(frozen=True, slots=True)
class Pending:
    """A checked sample but for the numeric conversion of its features (:meth:`Checker.finish`)."""

    id: str
    fields: dict[str, Any]
    deferred: Deferred

    def sample(self, features: np.ndarray) -> Sample:
        return Sample(id=self.id, features=features, **self.fields)


def _plain_kind(item: Any) -> bool:
    """Whether ``item`` is an object whose ``kind`` says sample (or is absent)."""
    if not isinstance(item, dict):
        return False
    kind = item.get("kind")
    return kind is None or (type(kind) is str and kind == "sample")


def is_name(value: str) -> bool:
    """Whether ``value`` may name an annotator: not blank, no control character, at most 200 characters."""
    return bool(value.strip()) and len(value) <= MAX_ANNOTATOR_CHARS and not _CONTROL.search(value)


def _integral(value: Any) -> bool:
    """A float that JSON Schema counts as an integer (``7.0``)."""
    return type(value) is float and value.is_integer()


def _no_control(field: str, value: str) -> None:
    found = _CONTROL.search(value)
    if found is not None:
        raise Problem(
            field, f"holds a control character ({ascii(found.group())[1:-1]} at position {found.start()})"
        )


def _control_key(value: Any) -> str | None:
    """The first key, at any depth of a JSON value, that holds a control character."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and _CONTROL.search(key):
                return key
            found = _control_key(item)
            if found is not None:
                return found
    elif isinstance(value, list):
        for item in value:
            found = _control_key(item)
            if found is not None:
                return found
    return None


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
        [ItemError(-1, None, "", f"expected a JSON object or a list of objects, got {type_name(payload)}")]
    )


class Errors:
    """Collects ItemErrors; the raised InvalidBatch lists the first MAX_ERRORS by index."""

    def __init__(self) -> None:
        self.all: list[ItemError] = []

    @property
    def total(self) -> int:
        return len(self.all)

    def add(self, index: int, item_id: str | None, problems: list[Problem]) -> None:
        self.all.extend(ItemError(index, item_id, p.field, p.message) for p in problems)

    def raise_if_any(self) -> None:
        if self.all:
            ordered = sorted(self.all, key=lambda e: e.index)  # stable: an item's errors keep their order
            raise InvalidBatch(ordered[:MAX_ERRORS], len(ordered))


def _finish(checker: Checker, found: list[tuple[int, Sample | Pending]], errors: Errors) -> list[Sample]:
    """The samples in batch order, the features of those pending converted in one go (errors reported)."""
    done = checker.finish([(i, s) for i, s in found if isinstance(s, Pending)], errors)
    return [s if isinstance(s, Sample) else done[i] for i, s in found if isinstance(s, Sample) or i in done]


def parse_samples(payload: Any, schema: ProjectSchema) -> list[Sample]:
    """Check one sample object or a list of them; raise InvalidBatch listing every bad item."""
    checker = Checker(schema)
    items = _items(payload, schema)
    plain = checker.plain_samples(items)
    if plain is not None:
        return plain
    errors = Errors()
    found: list[tuple[int, Sample | Pending]] = []
    for index, item in enumerate(items):
        sample, sample_id, problems = checker.sample(item, defer=True)
        if problems:
            errors.add(index, sample_id, problems)
        else:
            assert sample is not None  # no problems: a sample
            found.append((index, sample))
    samples = _finish(checker, found, errors)
    errors.raise_if_any()
    return samples


def parse_labels(payload: Any, schema: ProjectSchema) -> list[Label]:
    """Check one label object or a list of them; raise InvalidBatch listing every bad item."""
    checker = Checker(schema)
    items = _items(payload, schema)
    errors = Errors()
    labels: list[Label] = []
    for index, item in enumerate(items):
        label, label_id, problems = checker.label_item(item)
        if problems:
            errors.add(index, label_id, problems)
        elif not errors.total:
            assert label is not None  # no problems: a label
            labels.append(label)
    errors.raise_if_any()
    return labels


def parse_messages(payload: Any, schema: ProjectSchema) -> tuple[list[Sample], list[Label]]:
    """The ``/send`` body: samples and labels mixed, told apart by ``kind`` (absent: "sample").

    Returns (samples, labels), each in batch order; labels may refer to samples of the same batch.
    """
    checker = Checker(schema)
    items = _items(payload, schema)
    if all(map(_plain_kind, items)):
        plain = checker.plain_samples(items, extra=frozenset({"kind"}))
        if plain is not None:
            return plain, []
    errors = Errors()
    found: list[tuple[int, Sample | Pending]] = []
    labels: list[Label] = []
    for index, item in enumerate(items):
        kind = item.get("kind", "sample") if isinstance(item, Mapping) else "sample"
        if kind is None:
            kind = "sample"
        if kind == "sample":
            sample, item_id, problems = checker.sample(item, allowed=(*SAMPLE_FIELDS, "kind"), defer=True)
            if not problems:
                assert sample is not None  # no problems: a sample
                found.append((index, sample))
        elif kind == "label":
            label, item_id, problems = checker.label_item(item, allowed=(*LABEL_FIELDS, "kind"))
            if not problems:
                assert label is not None  # no problems: a label
                labels.append(label)
        else:
            raw_id = item.get("id")
            item_id = raw_id if isinstance(raw_id, str) else None
            problems = [Problem("kind", f'expected "sample" or "label", got {_short(kind)}')]
        if problems:
            errors.add(index, item_id, problems)
    samples = _finish(checker, found, errors)
    errors.raise_if_any()
    return samples, labels


def parse_predict(payload: Any, schema: ProjectSchema) -> np.ndarray | list[str]:
    """The body of ``/predict``: ``{"features": [row, ...]}`` (each row as a sample's ``features``)
    for a project of features, as one float32 matrix; ``{"texts": [...]}`` for one of texts, as
    checked texts. At most ``max_batch`` rows; InvalidBatch names every bad row by its index."""
    key = "texts" if schema.data == "text" else "features"
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
    checker = Checker(schema)
    errors = Errors()
    if key == "texts":
        texts = []
        for index, text in enumerate(rows):
            try:
                texts.append(checker.text(text))
            except Problem as p:
                errors.add(index, None, [p])
        errors.raise_if_any()
        return texts
    typed: list[tuple[int, Deferred]] = []
    for index, row in enumerate(rows):
        try:
            typed.append((index, Deferred(*checker.feature_values(row))))
        except Problem as p:
            errors.add(index, None, [p])
    converted = checker.convert([deferred for _, deferred in typed])
    for (index, _), features in zip(typed, converted, strict=True):
        if isinstance(features, Problem):
            errors.add(index, None, [features])
    errors.raise_if_any()
    return np.stack(cast(list[np.ndarray], converted))
