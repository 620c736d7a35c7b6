"""pydantic's errors in the API's words: one :class:`ItemError` per bad field of a bad item (its
index, its id when known, the field, what is wrong), whatever the union branches pydantic tried.

pydantic says which rule failed (the type, a length, a pattern, a range) and where; the message
names the rule as the README states it, and the value's detail (the position of a control
character, the bad positions of a feature list, the names missing) comes from the refused value.
"""

from __future__ import annotations

import difflib
import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from alstream.messages.schema import _MAX_LISTED, MAX_ANNOTATOR_CHARS, MAX_SAFE_INTEGER, ProjectSchema
from alstream.messages.values import ItemError

SAMPLE_FIELDS = ("id", "features", "text", "meta", "label", "annotator")
LABEL_FIELDS = ("id", "label", "skipped", "annotator")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
# The order of an item's errors: as the fields are read, unknown ones first.
_RANK = {"": 0, "kind": 0, "id": 1, "text": 2, "features": 2, "skipped": 3, "meta": 4, "annotator": 5}
_RANK |= {"token_key": 6, "label": 7}


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


def short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def listing(items: list[str], limit: int = _MAX_LISTED) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" (and {len(items) - limit} more)" if len(items) > limit else "")


class Explain:
    """Turns the errors of one body (or message) of ``project`` into ItemErrors. ``shape``: "send",
    "labels", "topic_sample", "topic_label" (a topic's: ``token_key`` allowed) or "predict"."""

    def __init__(self, project: ProjectSchema, shape: str, default_id: Callable[[int], str] | None = None):
        self.project = project
        self.shape = shape
        self.default_id = default_id
        self.data = project.data
        self.other = "text" if self.data == "features" else "features"

    def items(
        self, errors: Sequence[Mapping[str, Any]], items: list[Any], *, indexed: bool
    ) -> list[ItemError]:
        """``errors`` (pydantic's, of a list when ``indexed``, else of ``items[0]``), in index order."""
        by_field: dict[tuple[int, str], list[tuple[tuple, Mapping[str, Any]]]] = defaultdict(list)
        for error in errors:
            loc = tuple(error["loc"])
            index, loc = (loc[0], loc[1:]) if indexed and loc and isinstance(loc[0], int) else (0, loc)
            loc = self._untagged(loc)
            field = "kind" if error["type"] == "kind" else str(loc[0]) if loc else ""
            inside = loc[1:]
            if field == "features" and inside[:1] in (("list",), ("named",), ("packed",)):
                inside = inside[1:]  # the form of the features: the union's tag
            by_field[index, field].append((inside, error))
        out = []
        for (index, field), found in by_field.items():
            item = items[index] if index < len(items) else None
            item_id = self._item_id(index, item, by_field)
            out.append(ItemError(index, item_id, field, self.message(field, found, item)))
        return sorted(out, key=lambda e: (e.index, _RANK.get(e.field, 0)))

    def _untagged(self, loc: tuple) -> tuple:
        """``loc`` without the tags of the unions of items (sample or label; labeled or skipped)."""
        if self.shape == "send" and loc[:1] == ("sample",):
            return loc[1:]
        if self.shape == "send" and loc[:1] == ("label",):
            loc = loc[1:]
        if self.shape in ("send", "labels", "topic_label") and loc[:1] in (("labeled",), ("skipped",)):
            return loc[1:]
        return loc

    def _item_id(self, index: int, item: Any, by_field: Mapping[tuple[int, str], Any]) -> str | None:
        """The item's id when it is valid (or made for it), for the error's ``id``."""
        if not isinstance(item, Mapping) or (index, "id") in by_field:
            return None
        raw = item.get("id")
        if isinstance(raw, str):
            return raw
        if type(raw) is int or (type(raw) is float and raw.is_integer()):
            return str(int(raw))
        is_sample = raw is None and item.get("kind") in (None, "sample")
        return self.default_id(index) if is_sample and self.default_id is not None else None

    # ------------------------------------------------------------------ messages

    def message(self, field: str, found: list[tuple[tuple, Mapping[str, Any]]], item: Any) -> str:
        types = {error["type"] for _, error in found}
        value = item.get(field) if isinstance(item, Mapping) else None
        if field == "":
            return f"expected a JSON object, got {type_name(item)}"
        if field == "kind" and "kind" in types:
            return f'expected "sample" or "label", got {short(value)}'
        itself = {error["type"] for inside, error in found if not inside}  # the field, not within it
        if "extra_forbidden" in itself:
            return self.unknown(field, item)
        if "missing" in itself:
            return self.missing(field, item)
        if field == self.other and "none_required" in types:
            return f"this project's samples carry {self.data}, not {self.other}"
        explain = getattr(self, f"_{field}", None)
        if explain is not None:
            return explain(value, found, types)
        return "; ".join(error["msg"] for _, error in found)

    def unknown(self, field: str, item: Any) -> str:
        is_label = self.shape in ("labels", "topic_label") or (
            self.shape == "send" and isinstance(item, Mapping) and item.get("kind") == "label"
        )
        allowed: tuple[str, ...] = LABEL_FIELDS if is_label else SAMPLE_FIELDS
        allowed += ("kind",) if self.shape == "send" else ("token_key",) if "topic" in self.shape else ()
        hint = difflib.get_close_matches(field, allowed, n=1)
        why = f"did you mean {hint[0]!r}?" if hint else f"allowed fields: {', '.join(allowed)}"
        return f"unknown field ({why})"

    def missing(self, field: str, item: Any) -> str:
        if field == "id":
            return "missing: the id of the sample is required"
        if field == "label":
            return 'missing: give a label, or "skipped": true'
        hint = ""
        labelish = isinstance(item, Mapping) and "kind" not in item and ("label" in item or "skipped" in item)
        if self.shape == "send" and labelish:
            hint = '; to label an existing sample, add "kind": "label"'
        return f"missing: this project's samples need {self.data}{hint}"

    def name(self, value: Any, found: list, types: set[str], max_chars: int, blank: str) -> str:
        if not isinstance(value, str):
            return f"expected a string, got {type_name(value)}"
        if "id_bytes" in types:
            return next(error["msg"] for _, error in found if error["type"] == "id_bytes")
        if len(value) > max_chars:
            return f"too long: {len(value)} characters, at most {max_chars}"
        if not value.strip():
            return blank
        return control(value) or "; ".join(error["msg"] for _, error in found)

    def _id(self, value: Any, found: list, types: set[str]) -> str:
        if isinstance(value, str):
            return self.name(value, found, types, self.project.max_id_chars, "must be a non-empty string")
        if type(value) is int or (type(value) is float and value.is_integer()):
            return f"integer ids are at most {MAX_SAFE_INTEGER} either way: send it as a string"
        return f"expected a string (or an integer), got {type_name(value)}"

    def _annotator(self, value: Any, found: list, types: set[str]) -> str:
        return self.name(value, found, types, MAX_ANNOTATOR_CHARS, "must be a non-empty string (or absent)")

    def _text(self, value: Any, found: list, types: set[str]) -> str:
        if not isinstance(value, str):
            return f"expected a string, got {type_name(value)}"
        if not value.strip():
            return "must not be empty"
        if "\x00" in value:  # PostgreSQL cannot store it; other control characters (tabs, newlines) are text
            return f"holds a NUL character (\\u0000) at position {value.index(chr(0))}"
        return f"too long: {len(value)} characters, at most {self.project.max_text_chars}"

    def _label(self, value: Any, found: list, types: set[str]) -> str:
        if "none_required" in types:
            return "a skipped item carries no label: drop one of label and skipped"
        if type(value) is float and value.is_integer():
            value = str(int(value))
        if type(value) is int:
            value = str(value)
        if not isinstance(value, str):
            return f"expected a class name (string), got {type_name(value)}"
        known = listing([repr(c) for c in self.project.classes], limit=20)
        return f"unknown class {short(value)}: known classes are {known}"

    def _skipped(self, value: Any, found: list, types: set[str]) -> str:
        return f"expected true or false, got {type_name(value)}"

    def _token_key(self, value: Any, found: list, types: set[str]) -> str:
        return f"expected a token key (a short string), got {short(value)}"

    def _meta(self, value: Any, found: list, types: set[str]) -> str:
        if not isinstance(value, dict):
            return f"expected a JSON object, got {type_name(value)}"
        for loc, error in found:
            if not loc:  # the object itself: its size, or a number beyond 64 bits
                return str(error["msg"])
        for loc, error in found:
            if error["type"] == "string_pattern_mismatch" and loc[-1:] == ("[key]",):
                return f"key {short(loc[-2])} holds a control character"
        return (
            "not plain JSON: only objects with string keys, lists, strings, finite numbers, booleans and null"
        )

    def _features(self, value: Any, found: list, types: set[str]) -> str:
        custom = [error["msg"] for _, error in found if error["type"] in ("packed", "array_type")]
        if custom:
            return custom[0]
        names = self.project.feature_names
        if isinstance(value, Mapping):
            if names is None:
                return "this project has no feature_names: send features as a list"
            if value.keys() != set(names):
                missing = [repr(n) for n in names if n not in value]
                unknown = [repr(k) for k in value if k not in names]
                parts = [f"missing {listing(missing)}"] if missing else []
                parts += [f"unknown {listing(unknown)}"] if unknown else []
                return "wrong feature names: " + "; ".join(parts)
        elif not isinstance(value, list | tuple) and not hasattr(value, "ndim"):
            expected = "a list of numbers" + (" or an object of name: number" if names else "")
            return f"expected {expected}, got {type_name(value)}"
        return numbers(value, found, self.project.n_features)

    def row(self, key: str, value: Any, found: list) -> str:
        """A ``/predict`` row's message: a sample's features, or its text."""
        types = {error["type"] for _, error in found}
        return self._text(value, found, types) if key == "texts" else self._features(value, found, types)


def numbers(value: Any, found: list[tuple[tuple, Mapping[str, Any]]], n: int | None) -> str:
    """The message for a feature list (or object) whose numbers failed: the first rule broken of
    count, type, range (an integer beyond a double), finite, float32's range."""
    length = len(value)
    if any(error["type"] in ("too_short", "too_long") for _, error in found) or (
        n is not None and length != n
    ):
        return f"expected {n} numbers, got {length}" if n is not None else "must not be empty"
    kinds: dict[str, list[str]] = defaultdict(list)
    for loc, error in found:
        if not loc:
            continue
        where = f"[{loc[0]}]" if isinstance(loc[0], int) else repr(loc[0])
        bad = error["input"]
        if error["type"] in ("float_type", "float_parsing"):
            kind = "range" if type(bad) is int else "type"
            kinds[kind].append(where if kind == "range" else f"{where} is {type_name(bad)}")
        elif error["type"] == "finite_number":
            kinds["finite"].append(f"{where} is {bad}")
        else:
            kinds["float32"].append(where)
    for kind, words in (
        ("type", "not numbers: "),
        ("range", "numbers out of range at "),
        ("finite", "not finite numbers: "),
        ("float32", "numbers out of float32 range at "),
    ):
        if kinds[kind]:
            return words + listing(kinds[kind])
    return "; ".join(str(error["msg"]) for _, error in found)


def control(value: str) -> str | None:
    """What a name with a control character is told: which one, and where."""
    found = _CONTROL.search(value)
    if found is None:
        return None
    return f"holds a control character ({ascii(found.group())[1:-1]} at position {found.start()})"


__all__ = ["LABEL_FIELDS", "SAMPLE_FIELDS", "Explain", "control", "listing", "numbers", "short", "type_name"]
