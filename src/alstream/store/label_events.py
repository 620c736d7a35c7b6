"""The label events as the trainer follows them (:meth:`Store.labels_after`, and with the open
guesses they name :meth:`Audits.labels_after`): one query shape for both."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, select

from alstream.store.tables import labels

LabelEvent = tuple[int, str, str | None, str | None, bool, datetime]
_l = labels.c
COLUMNS = (_l.id, _l.sample_id, _l.label, _l.annotator, _l.skipped, _l.created_at)


def after(label_id: int, limit: int | None, *more: Any) -> Select:
    """The label events with row id above ``label_id`` (at most ``limit``), oldest first, their
    :data:`COLUMNS` and then ``more``."""
    return select(*COLUMNS, *more).where(_l.id > label_id).order_by(_l.id).limit(limit)


def event(row: Sequence[Any]) -> LabelEvent:
    """A row of :func:`after`'s as ``(id, sample_id, label, annotator, skipped, created_at)``."""
    row_id, sample_id, label, annotator, skipped, created = row[: len(COLUMNS)]
    at = created.replace(tzinfo=UTC) if created.tzinfo is None else created  # SQLite: naive, UTC
    return int(row_id), sample_id, label, annotator, bool(skipped), at
