"""What each shard's worker reported last, in the ``shard_stats`` table: one row per shard,
replaced at each report, so the table is as big as the number of partitions.

A stateless replica's ``/stats`` reads every row and merges them (:mod:`alstream.service.
shard_totals`); a row's age says whether its shard still reports (a shard whose worker died
keeps its last row until its new owner reports).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Table, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from alstream.store.retry import retry
from alstream.store.rows import dump_json, load_json
from alstream.store.tables import shard_stats

_INSERT: dict[str, Callable[[Table], postgresql.Insert | sqlite.Insert]] = {
    "postgresql": postgresql.insert,
    "sqlite": sqlite.insert,
}


@dataclass(frozen=True)
class ShardReport:
    """One shard's numbers, who reported them and when (UTC)."""

    shard: int
    worker: str
    stats: dict[str, Any]
    reported_at: datetime


class ShardStats:
    """The ``shard_stats`` table; each write one short transaction, retried on transient errors."""

    def __init__(self, engine: Engine, **retry_options: Any) -> None:
        self.engine = engine
        self._insert = _INSERT[engine.dialect.name](shard_stats)
        self._retry = retry_options

    def report(self, shard: int, worker: str, stats: Mapping[str, Any], now: datetime | None = None) -> None:
        """Make ``stats`` what ``shard`` reports, from ``worker``, at ``now`` (default: now)."""
        row = {"shard": shard, "worker": worker, "stats": dump_json(dict(stats)), "reported_at": _utc(now)}
        statement = self._insert.values(row)
        statement = statement.on_conflict_do_update(
            index_elements=[shard_stats.c.shard],
            set_={name: statement.excluded[name] for name in ("worker", "stats", "reported_at")},
        )
        self._run(statement)

    def reports(self) -> list[ShardReport]:
        """Every shard's last report, by shard."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(shard_stats).order_by(shard_stats.c.shard)).all()
        return [_report(row) for row in rows]

    def last(self, shard: int) -> ShardReport | None:
        """``shard``'s last report, if it has one."""
        with self.engine.connect() as conn:
            row = conn.execute(select(shard_stats).where(shard_stats.c.shard == shard)).first()
        return None if row is None else _report(row)

    def drop(self, shard: int) -> None:
        """Forget ``shard``'s report."""
        self._run(delete(shard_stats).where(shard_stats.c.shard == shard))

    def _run(self, statement: Any) -> None:
        def attempt() -> None:
            with self.engine.begin() as conn:
                conn.execute(statement)

        retry(attempt, **self._retry)


def _report(row: Any) -> ShardReport:
    shard, worker, text, at = row
    return ShardReport(int(shard), worker, load_json(text), _utc(at))


def _utc(at: datetime | None) -> datetime:
    """``at`` (default: now) in UTC; SQLite gives back a naive UTC time."""
    if at is None:
        return datetime.now(UTC)
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
