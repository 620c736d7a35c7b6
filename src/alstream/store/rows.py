"""What the consumer writes, and how it is encoded for the database."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


@dataclass(frozen=True)
class SampleRow:
    """One sample: a float32 feature vector, or a text (then ``features`` is None); ``shard``: the
    stream partition it came from."""

    id: str
    features: np.ndarray | None
    text: str | None = None
    meta: dict | None = None
    shard: int | None = None


@dataclass(frozen=True)
class LabelRow:
    """One label event; ``(source, offset)`` is its idempotency key."""

    sample_id: str
    label: str | None  # None when skipped
    annotator: str | None
    skipped: bool
    source: str  # "topic:partition"
    offset: int
    token_key: str | None = None  # the key of the token that sent it (set by the service, not a client)


def encode_features(features: Any) -> bytes | None:
    """A 1-D vector as raw little-endian float32 bytes (None stays None)."""
    if features is None:
        return None
    array = np.asarray(features, dtype="<f4")
    if array.ndim != 1:
        raise ValueError(f"features must be a 1-D vector, got shape {array.shape}")
    return array.tobytes()


def decode_features(blob: bytes | None) -> np.ndarray | None:
    """Raw float32 bytes back to a vector."""
    return None if blob is None else np.frombuffer(blob, dtype="<f4")


def dump_json(value: Any) -> str | None:
    """Compact JSON text (numpy scalars and arrays allowed); None stays None."""
    return None if value is None else orjson.dumps(value, option=_JSON_OPTIONS).decode()


def load_json(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)
