"""The data contract: what a project's samples look like, the classes to learn, and the limits
(:class:`ProjectSchema`)."""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_ANNOTATOR_CHARS = 200
MAX_ID_CHARS = 1000  # the most ``max_id_chars`` may be; the store refuses longer ids too
MAX_ID_BYTES = 2000  # an id's UTF-8 bytes at most: PostgreSQL's index entries hold at most 2704
MAX_CLASS_CHARS = 200
MAX_SAFE_INTEGER = (
    2**53
)  # integer ids, either sign: beyond, a JSON reader (JavaScript's, or a float) may round
# Features are stored as float32: a number of this size or more (either sign) would become infinite.
# It is halfway between float32's largest (3.4028234663852886e38) and the next power of two; below
# it, numbers round to float32's largest, as does 3.4028235e38, the way float32's largest is written.
FLOAT32_LIMIT = 3.4028235677973366e38
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1: never part of a name
_MAX_LISTED = 5  # bad positions / names / classes named in one message


def digits_feature_names() -> list[str]:
    """scikit-learn's ``load_digits().feature_names``: ``pixel_0_0`` .. ``pixel_7_7``."""
    return [f"pixel_{row}_{col}" for row in range(8) for col in range(8)]


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
    max_id_chars: int = Field(
        200, ge=1, le=MAX_ID_CHARS, description="Longest sample id accepted, in characters."
    )
    max_batch: int = Field(10_000, ge=1, description="Most items accepted in one batch.")

    @model_validator(mode="before")
    @classmethod
    def _count_named_features(cls, values: Any) -> Any:
        """``n_features`` defaults to the number of ``feature_names``."""
        if isinstance(values, dict) and values.get("n_features") is None:
            names = values.get("feature_names")
            if isinstance(names, list | tuple):
                return {**values, "n_features": len(names)}
        return values

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
        _check_names("class names", classes, MAX_CLASS_CHARS)
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
        _check_names("feature names", names, MAX_CLASS_CHARS)
        duplicates = sorted(n for n, count in Counter(names).items() if count > 1)
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
        if self.feature_names is not None and self.n_features != len(self.feature_names):
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


def is_name(value: str) -> bool:
    """Whether ``value`` may name an annotator: not blank, no control character, at most 200 characters."""
    return bool(value.strip()) and len(value) <= MAX_ANNOTATOR_CHARS and not _CONTROL.search(value)


def _check_names(what: str, names: list[str], max_chars: int) -> None:
    controlled = [n for n in names if _CONTROL.search(n)]
    if controlled:
        shown = ", ".join(ascii(n) for n in controlled[:_MAX_LISTED])
        raise ValueError(f"{what} must not hold control characters: {shown}")
    long = [n for n in names if len(n) > max_chars]
    if long:
        raise ValueError(f"{what} are at most {max_chars} characters: {_short_names(long)}")


def _short_names(names: list[str]) -> str:
    return ", ".join(repr(n[:20] + "...") for n in names[:_MAX_LISTED])


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
