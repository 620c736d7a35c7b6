"""Parsed values and errors: a checked :class:`Sample` or :class:`Label`, and what is wrong with a
refused item (:class:`ItemError`), stream message (:class:`InvalidMessage`) or batch
(:class:`InvalidBatch`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from alstream.errors import InvalidInput

MAX_ERRORS = 100  # errors listed in one InvalidBatch; ``total`` counts them all


@dataclass(frozen=True, eq=False)
class Sample:
    """One validated sample. ``features`` is a read-only float32 vector in feature_names order."""

    id: str
    features: np.ndarray | None = None
    text: str | None = None
    meta: dict | None = None
    label: str | None = None
    annotator: str | None = None
    token_key: str | None = None  # the token that sent its label: set by the service, never by a client

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sample):
            return NotImplemented
        if (self.id, self.text, self.meta, self.label, self.annotator, self.token_key) != (
            other.id,
            other.text,
            other.meta,
            other.label,
            other.annotator,
            other.token_key,
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
    token_key: str | None = None  # the token that sent it: set by the service, never by a client


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


class InvalidMessage(InvalidInput):
    """A stream message that cannot be used; ``reason`` says why (for the dead-letter topic)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class InvalidBatch(InvalidInput):
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
