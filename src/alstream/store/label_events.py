"""The label events as the trainer follows them (:meth:`Store.labels_after`, and with the open
guesses they name :meth:`Audits.labels_after`): one query shape for both."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, Select, bindparam, select

from alstream.store.tables import labels

LabelEvent = tuple[int, str, str | None, str | None, bool, datetime]
_l = labels.c
AFTER = "after_label_id"  # the bound row id the events come after
COLUMNS = (_l.id, _l.sample_id, _l.label, _l.annotator, _l.skipped, _l.created_at)


def after(*more: Any) -> Select:
    """The label events with row id above the one bound as ``after_label_id``, oldest first: their
    :data:`COLUMNS` and then ``more``. Built once and run by :func:`rows_after` (a statement built
    for each read cost more than the LEFT JOIN it added, measured on SQLite)."""
    return select(*COLUMNS, *more).where(_l.id > bindparam(AFTER)).order_by(_l.id)


def rows_after(
    conn: Connection, query: Select, label_id: int, limit: int | None, **params: Any
) -> Sequence[Row]:
    """``query`` (one of :func:`after`'s, its other ``params`` bound) run for the events above
    ``label_id``, ``limit`` at most."""
    return conn.execute(query if limit is None else query.limit(limit), {AFTER: label_id, **params}).all()


def event(row: Sequence[Any]) -> LabelEvent:
    """A row of :func:`after`'s as ``(id, sample_id, label, annotator, skipped, created_at)``."""
    row_id, sample_id, label, annotator, skipped, created = row[: len(COLUMNS)]
    at = created.replace(tzinfo=UTC) if created.tzinfo is None else created  # SQLite: naive, UTC
    return int(row_id), sample_id, label, annotator, bool(skipped), at
