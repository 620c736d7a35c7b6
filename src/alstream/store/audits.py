"""The random items replicas served, in the ``audits`` table: the model's guess for each and, once
a person labels it, whether the guess was right.

A stateless replica records the guess of each random pick it leases (:meth:`Audits.served`), before
the annotator sees it, so by the time her label is stored the guess is there. The active trainer
follows the labels and scores the open guesses they name (:meth:`Audits.open`, :meth:`Audits.scored`),
so the stream's accuracy rests on rows every replica shares and a new trainer resumes from
(:meth:`Audits.tallies`, :meth:`Audits.recent`). Bounded: one row per sample served at random; open
ones beyond the newest ``keep`` are pruned (:meth:`Audits.prune`), scored ones are one per labeled
random item (fewer than the labels).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Table, bindparam, case, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from alstream.store.database import SQLITE_BEGIN
from alstream.store.lists import listed
from alstream.store.retry import retry
from alstream.store.tables import audits

MAX_OPEN = 100_000  # guesses served and not labeled yet that are kept: the newest
_CHUNK = 1_000
_INSERT: dict[str, Callable[[Table], postgresql.Insert | sqlite.Insert]] = {
    "postgresql": postgresql.insert,
    "sqlite": sqlite.insert,
}
_a = audits.c
Guess = tuple[str, int, str]  # (sample id, model version, predicted class)


class Audits:
    """The ``audits`` table; each write one transaction, retried on transient errors. ``writing``:
    what this process's SQLite writers hold while they write (the store's, shared with its
    candidates: an audit write waits its turn behind the leases rather than poll the file's lock,
    whose busy_timeout sleeps put hundreds of ms into the leases' tail; measured by
    bench/audits_bench.py). None: nothing (PostgreSQL needs nothing)."""

    def __init__(
        self,
        engine: Engine,
        *,
        writing: contextlib.AbstractContextManager | None = None,
        **retry_options: Any,
    ) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._retry = retry_options
        self._writing = contextlib.nullcontext() if writing is None else writing
        self._insert = _INSERT[self.dialect](audits).on_conflict_do_nothing(index_elements=[_a.sample_id])
        self._score = (
            update(audits)
            .where(_a.sample_id == bindparam("sid"), _a.label_id.is_(None))
            .values(label_id=bindparam("lid"), correct=bindparam("ok"))
        )

    def served(self, guesses: Sequence[Guess], now: datetime | None = None) -> None:
        """Record each random item's guess ``(sample id, version, predicted)``; a sample served
        before keeps its first guess."""
        at = _utc(now)
        rows = [{"sample_id": s, "version": int(v), "predicted": p, "served_at": at} for s, v, p in guesses]
        if rows:
            self._run(lambda conn: conn.execute(self._insert, rows))

    def open(self, ids: Sequence[str]) -> list[Guess]:
        """The guesses of those of ``ids`` not scored yet."""
        found: list[Guess] = []
        with self.engine.connect() as conn:
            for chunk in _chunks(list(dict.fromkeys(ids))):
                query = select(_a.sample_id, _a.version, _a.predicted).where(
                    _a.sample_id.in_(listed(chunk, self.dialect)), _a.label_id.is_(None)
                )
                found += [(s, int(v), p) for s, v, p in conn.execute(query)]
        return found

    def scored(self, outcomes: Sequence[tuple[str, int, bool]]) -> None:
        """``(sample id, label event id, correct)``: the label that scored each open guess."""
        rows = [{"sid": s, "lid": int(lid), "ok": bool(ok)} for s, lid, ok in outcomes]
        if rows:
            self._run(lambda conn: conn.execute(self._score, rows))

    def tallies(self) -> dict[int, tuple[int, int]]:
        """Per model version: (guesses right, guesses scored)."""
        right = func.sum(case((_a.correct.is_(True), 1), else_=0))
        query = select(_a.version, right, func.count()).where(_a.label_id.is_not(None)).group_by(_a.version)
        with self.engine.connect() as conn:
            return {int(v): (int(r), int(n)) for v, r, n in conn.execute(query)}

    def recent(self, n: int) -> list[tuple[int, bool]]:
        """The newest ``n`` scored guesses ``(version, correct)``, in the order they were labeled."""
        query = (
            select(_a.version, _a.correct)
            .where(_a.label_id.is_not(None))
            .order_by(_a.label_id.desc())
            .limit(n)
        )
        with self.engine.connect() as conn:
            return [(int(v), bool(ok)) for v, ok in conn.execute(query)][::-1]

    def prune(self, keep: int = MAX_OPEN) -> int:
        """Forget the open guesses but the newest ``keep``; returns how many went."""
        cutoff = (
            select(_a.served_at)
            .where(_a.label_id.is_(None))
            .order_by(_a.served_at.desc())
            .offset(keep)
            .limit(1)
            .scalar_subquery()
        )
        statement = delete(audits).where(_a.label_id.is_(None), _a.served_at <= cutoff)
        return self._run(lambda conn: conn.execute(statement).rowcount)

    def counts(self) -> dict[str, int]:
        """Guesses ``open`` (not labeled yet) and ``scored``."""
        scored = func.count().filter(_a.label_id.is_not(None))
        with self.engine.connect() as conn:
            total, done = conn.execute(select(func.count(), scored).select_from(audits)).one()
        return {"open": int(total) - int(done), "scored": int(done)}

    def _run(self, work: Callable[[Any], Any]) -> Any:
        def attempt() -> Any:
            with self._writing, self.engine.connect() as conn:
                conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
                with conn.begin():
                    return work(conn)

        return retry(attempt, **self._retry)


def _utc(now: datetime | None) -> datetime:
    return datetime.now(UTC) if now is None else now.astimezone(UTC)


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
