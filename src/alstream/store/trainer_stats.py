"""What the active trainer reports, in the ``trainer_stats`` table: one row, replaced at each
report. Stateless replicas show it in ``/stats`` (the stream's accuracy on the random items, the
drifts found in it), and workers and replicas read from it whether a drift raised the random share.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Table, select
from sqlalchemy.dialects import postgresql, sqlite

from alstream.store.retry import retry
from alstream.store.rows import dump_json, load_json
from alstream.store.tables import trainer_stats

_ROW = 1
_INSERT: dict[str, Callable[[Table], postgresql.Insert | sqlite.Insert]] = {
    "postgresql": postgresql.insert,
    "sqlite": sqlite.insert,
}


@dataclass(frozen=True)
class TrainerReport:
    """The trainer's numbers, who reported them and when (UTC)."""

    trainer: str
    stats: dict[str, Any]
    reported_at: datetime


class TrainerStats:
    """The ``trainer_stats`` table; each write one short transaction, retried on transient errors."""

    def __init__(self, engine: Engine, **retry_options: Any) -> None:
        self.engine = engine
        self._insert = _INSERT[engine.dialect.name](trainer_stats)
        self._retry = retry_options

    def report(self, trainer: str, stats: Mapping[str, Any], now: datetime | None = None) -> None:
        """Make ``stats`` what the trainer reports, from ``trainer``, at ``now`` (default: now)."""
        at = datetime.now(UTC) if now is None else now.astimezone(UTC)
        row = {"id": _ROW, "trainer": trainer, "stats": dump_json(dict(stats)), "reported_at": at}
        statement = self._insert.values(row)
        statement = statement.on_conflict_do_update(
            index_elements=[trainer_stats.c.id],
            set_={name: statement.excluded[name] for name in ("trainer", "stats", "reported_at")},
        )

        def attempt() -> None:
            with self.engine.begin() as conn:
                conn.execute(statement)

        retry(attempt, **self._retry)

    def last(self) -> TrainerReport | None:
        """The trainer's last report, if there is one."""
        with self.engine.connect() as conn:
            row = conn.execute(select(trainer_stats).where(trainer_stats.c.id == _ROW)).first()
        if row is None:
            return None
        _, trainer, text, at = row
        return TrainerReport(trainer, load_json(text), at.replace(tzinfo=UTC) if at.tzinfo is None else at)
