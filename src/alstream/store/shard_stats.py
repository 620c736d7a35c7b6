"""What each shard's worker reported last, in the ``shard_stats`` table: one row per shard,
replaced at each report, so the table is as big as the number of partitions.

A stateless replica's ``/stats`` reads every row and merges them (:mod:`alstream.service.
shard_totals`); a row's age says whether its shard still reports (a shard whose worker died
keeps its last row until its new owner reports). A report with a claim is fenced: written only while
that is its shard's newest (:mod:`alstream.store.candidates`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Table, delete, exists, literal, select, true
from sqlalchemy.dialects import postgresql, sqlite

from alstream.errors import ShardFenced
from alstream.store.candidates import Claim
from alstream.store.retry import retry
from alstream.store.rows import dump_json, load_json
from alstream.store.tables import shard_owners, shard_stats

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

    def report(
        self,
        shard: int,
        worker: str,
        stats: Mapping[str, Any],
        now: datetime | None = None,
        *,
        claim: Claim | None = None,
    ) -> None:
        """Make ``stats`` what ``shard`` reports, from ``worker``, at ``now`` (default: now); with a
        ``claim`` of ``shard`` only while it is the newest, else raise :class:`ShardFenced`."""
        row = {"shard": shard, "worker": worker, "stats": dump_json(dict(stats)), "reported_at": _utc(now)}
        source = select(*(literal(value, shard_stats.c[name].type) for name, value in row.items()))
        if claim is not None:
            if claim.shard != shard:
                raise ValueError(f"a claim of shard {claim.shard} does not write shard {shard}")
            newest = (shard_owners.c.shard == shard) & (shard_owners.c.generation == claim.generation)
            source = source.where(exists().where(newest))
        else:  # SQLite reads the ON of ON CONFLICT as a join's unless the SELECT has a WHERE
            source = source.where(true())
        insert = self._insert.from_select(list(row), source)
        statement = insert.on_conflict_do_update(
            index_elements=[shard_stats.c.shard],
            set_={name: insert.excluded[name] for name in ("worker", "stats", "reported_at")},
        ).returning(shard_stats.c.shard)  # (rowcount: -1 on psycopg when nothing is written)
        if self._run(statement) == 0:
            assert claim is not None  # an unfenced report always writes its row
            raise ShardFenced(f"shard {shard}: {worker}'s generation {claim.generation} is not its newest")

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

    def _run(self, statement: Any) -> int:
        """Run ``statement`` in a transaction of its own; the rows it returns (with RETURNING) or
        changed."""

        def attempt() -> int:
            with self.engine.begin() as conn:
                result = conn.execute(statement)
                return len(result.all()) if result.returns_rows else result.rowcount

        return retry(attempt, **self._retry)


def _report(row: Any) -> ShardReport:
    shard, worker, text, at = row
    return ShardReport(int(shard), worker, load_json(text), _utc(at))


def _utc(at: datetime | None) -> datetime:
    """``at`` (default: now) in UTC; SQLite gives back a naive UTC time."""
    if at is None:
        return datetime.now(UTC)
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
