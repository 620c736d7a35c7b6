"""The random items replicas served, in the ``audits`` table: the model's guess for each and, once
a person labels it, whether the guess was right.

A stateless replica records the guess of each random pick it leases (:meth:`Audits.served`) in the
lease's own transaction, before the annotator sees it, so by the time her label is stored the guess
is there. The active trainer reads the labels with the open guesses they name, in one query
(:meth:`Audits.labels_after`), and writes the scores of those guesses with its next read (in its
statement on PostgreSQL, its transaction on SQLite; as it stops: :meth:`Audits.scored`), so the
stream's accuracy rests on rows every replica shares and a new trainer resumes from
(:meth:`Audits.tallies`, :meth:`Audits.recent`). Bounded: one row per sample served at random; open
ones beyond the newest ``MAX_OPEN`` are pruned (:meth:`Audits.prune`), scored ones (one per labeled
random item) beyond the newest ``MAX_SCORED`` are folded into their model version's counts in
``audit_tallies`` (:meth:`Audits.fold`: deleted and counted in one transaction, one row per model
version, the newest ``MAX_VERSIONS`` versions'), so the tallies stay exact.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    Engine,
    String,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY

from alstream.store import label_events
from alstream.store.database import SQLITE_BEGIN, in_autocommit
from alstream.store.label_events import LabelEvent
from alstream.store.lists import listed
from alstream.store.retry import is_transient, retry
from alstream.store.tables import audit_tallies, audits, labels

MAX_OPEN = 100_000  # guesses served and not labeled yet that are kept: the newest
MAX_SCORED = 100_000  # scored guesses kept as rows (the newest: what recent reads), the rest folded
MAX_VERSIONS = 100  # model versions whose folded tallies are kept (the newest; /stats shows them)
_CHUNK = 1_000
_INSERT: dict[str, Callable[[Table], postgresql.Insert | sqlite.Insert]] = {
    "postgresql": postgresql.insert,
    "sqlite": sqlite.insert,
}
_a = audits.c
_t = audit_tallies.c
Guess = tuple[str, int, str]  # (sample id, model version, predicted class)
Outcome = tuple[str, int, bool]  # (sample id, the label event id that scored its guess, correct)


class NotRecorded(Exception):
    """Guesses written in another's transaction (a lease's) failed for a reason no retry cures; that
    transaction is lost with them (PostgreSQL aborts it)."""


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
        self._labels_after = _with_open_guesses(self.dialect)
        self._scoring_read = _scoring_read() if self.dialect == "postgresql" else None
        self._add_tallies = _adding(_INSERT[self.dialect](audit_tallies))

    def served(
        self, guesses: Sequence[Guess], now: datetime | None = None, conn: Connection | None = None
    ) -> None:
        """Record each random item's guess ``(sample id, version, predicted)``; a sample served
        before keeps its first guess. In ``conn``'s transaction when given (a lease's: the guesses
        commit with it, one statement more and no round trip of their own), else in one of their own.
        In ``conn``, a failure no retry cures raises :class:`NotRecorded`: the transaction is lost
        with it (PostgreSQL aborts it; a SAVEPOINT to keep it would cost two round trips more)."""
        at = _utc(now)
        rows = [{"sample_id": s, "version": int(v), "predicted": p, "served_at": at} for s, v, p in guesses]
        if not rows:
            return
        if conn is None:
            self._run(lambda own: own.execute(self._insert, rows))
            return
        try:
            conn.execute(self._insert, rows)
        except Exception as error:
            if is_transient(error):  # the whole transaction is retried
                raise
            raise NotRecorded(f"{len(rows)} guesses: {error}") from error

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

    def labels_after(
        self, label_id: int, limit: int | None = None, *, scores: Sequence[Outcome] = ()
    ) -> tuple[list[LabelEvent], list[Guess]]:
        """:meth:`Store.labels_after`'s label events and the open guesses of the samples they name,
        read in one query (the guesses joined to the labels: no round trip of their own). ``scores``
        (:meth:`scored`'s: the trainer's since its last read) are written with it: on PostgreSQL in
        the same statement, on SQLite in the same transaction; tried once, as the read alone is
        (the trainer keeps them until they are written)."""
        outcomes = _firsts(scores)
        if not outcomes:
            found = self._read(self._labels_after, label_id, limit)
        elif self._scoring_read is not None:  # PostgreSQL
            found = self._read(self._scoring_read, label_id, limit, **_arrays(outcomes))
        else:
            found = self._once(lambda conn: self._scores_then_read(conn, outcomes, label_id, limit))
        return [label_events.event(row) for row in found], _guesses(found)

    def scored(self, outcomes: Sequence[Outcome]) -> None:
        """``(sample id, label event id, correct)``: the label that scored each open guess (a sample
        named twice: its first label); one statement (in autocommit on PostgreSQL: no BEGIN and
        no COMMIT to wait for)."""
        firsts = _firsts(outcomes)
        if firsts:
            self._run(lambda conn: self._write_scores(conn, firsts), autocommit=True)

    def _read(self, query: Any, label_id: int, limit: int | None, **params: Any) -> Sequence[Any]:
        """``query``'s label events (one statement: in autocommit on PostgreSQL)."""
        with in_autocommit(self.engine.connect()) as conn:
            return label_events.rows_after(conn, query, label_id, limit, **params)

    def _scores_then_read(
        self, conn: Connection, outcomes: list[Outcome], label_id: int, limit: int | None
    ) -> Sequence[Any]:
        self._write_scores(conn, outcomes)
        return label_events.rows_after(conn, self._labels_after, label_id, limit)

    def _write_scores(self, conn: Connection, outcomes: list[Outcome]) -> None:
        """One executemany of the row's UPDATE (psycopg pipelines it: one round trip, one implicit
        transaction; SQLite runs it in this process)."""
        conn.execute(self._score, [{"sid": s, "lid": lid, "ok": ok} for s, lid, ok in outcomes])

    def tallies(self) -> dict[int, tuple[int, int]]:
        """Per model version: (guesses right, guesses scored), those folded and those still rows (one
        statement: one snapshot, a fold in between never counted twice or missed)."""
        folded = select(_t.version, _t.correct, _t.scored)
        query = union_all(folded, _counted(_a, _a.label_id.is_not(None)))
        totals: dict[int, tuple[int, int]] = {}
        with self.engine.connect() as conn:
            for version, right, scored in conn.execute(query):
                r, n = totals.get(int(version), (0, 0))
                totals[int(version)] = (r + int(right), n + int(scored))
        return totals

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

    def fold(self, keep: int = MAX_SCORED, versions: int = MAX_VERSIONS) -> int:
        """Fold the scored guesses but the newest ``keep`` (by label) into ``audit_tallies``: deleted
        and added to their version's counts in one transaction, and the tallies of versions older than
        the newest ``versions`` forgotten; returns how many guesses went."""
        return self._run(lambda conn: self._fold(conn, keep, versions))

    def _fold(self, conn: Connection, keep: int, versions: int) -> int:
        """:meth:`fold` in ``conn``'s transaction: the rows at or below the ``keep + 1``-th newest
        label counted per version (on PostgreSQL those its DELETE returns), deleted, added."""
        newest = select(_a.label_id).where(_a.label_id.is_not(None)).order_by(_a.label_id.desc())
        cutoff = conn.execute(newest.offset(keep).limit(1)).scalar()
        if cutoff is None:
            return 0
        older = _a.label_id <= cutoff
        if self.dialect == "postgresql":  # what the DELETE took, counted: exact whatever commits meanwhile
            gone = delete(audits).where(older).returning(_a.version, _a.correct).cte("gone")
            counts = conn.execute(_counted(gone.c).add_cte(gone)).all()
        else:  # BEGIN IMMEDIATE: no other writer between the count and the DELETE
            counts = conn.execute(_counted(_a, older)).all()
            conn.execute(delete(audits).where(older))
        if counts:
            conn.execute(self._add_tallies, [{"version": v, "correct": r, "scored": n} for v, r, n in counts])
            newest = select(_t.version).order_by(_t.version.desc()).offset(versions - 1).limit(1)
            oldest_kept = conn.execute(newest).scalar()
            if oldest_kept is not None:
                conn.execute(delete(audit_tallies).where(_t.version < oldest_kept))
        return sum(int(n) for _, _, n in counts)

    def counts(self) -> dict[str, int]:
        """Guesses ``open`` (not labeled yet) and ``scored``, as rows (those folded not counted)."""
        scored = func.count().filter(_a.label_id.is_not(None))
        with self.engine.connect() as conn:
            total, done = conn.execute(select(func.count(), scored).select_from(audits)).one()
        return {"open": int(total) - int(done), "scored": int(done)}

    def _run(self, work: Callable[[Any], Any], *, autocommit: bool = False) -> Any:
        """:meth:`_once`, retried on transient errors."""
        return retry(lambda: self._once(work, autocommit=autocommit), **self._retry)

    def _once(self, work: Callable[[Any], Any], *, autocommit: bool = False) -> Any:
        """``work(conn)`` in a transaction of its own; ``autocommit``: on PostgreSQL each of its
        statements is a transaction of its own (no BEGIN, no COMMIT: for statements each whole
        alone), on SQLite it is still one (its BEGIN IMMEDIATE: the lock)."""
        with self._writing, self.engine.connect() as conn:
            if autocommit:
                in_autocommit(conn)
            conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
            with conn.begin():
                return work(conn)


def _with_open_guesses(dialect: str, *also: Any) -> Any:
    """The label events (:func:`label_events.after`) with the open guesses they name (and ``also``).
    PostgreSQL: a LATERAL probe of the guess's row for each label (its planner hashed the whole
    table for a plain LEFT JOIN: at 100 labels and 20,000 open guesses 4.1 ms against 1.3); SQLite:
    a LEFT JOIN (its planner probes the primary key)."""
    where = (_a.sample_id == labels.c.sample_id, _a.label_id.is_(None), *also)
    if dialect != "postgresql":
        joined = labels.outerjoin(audits, and_(*where))
        return label_events.after(_a.version, _a.predicted).select_from(joined)
    guess = select(_a.version, _a.predicted).where(*where).limit(1).lateral("guess")
    return label_events.after(guess.c.version, guess.c.predicted).select_from(labels.outerjoin(guess, true()))


def _scoring_read() -> Any:
    """PostgreSQL: the scores (bound as the arrays ``sids``, ``lids``, ``oks``) written and the label
    events read with their open guesses, in one statement: the scores' ``UPDATE ... FROM unnest``
    a CTE (run once, whole, whether read or not); the guesses it scores are left out (in the
    statement's snapshot they are still open). Against the UPDATE then the read, on one connection:
    0.25 to 0.4 ms less at 10 scores (100 or 10 labels)."""
    arrays = (
        bindparam("sids", type_=ARRAY(String)),
        bindparam("lids", type_=ARRAY(BigInteger)),
        bindparam("oks", type_=ARRAY(Boolean)),
    )
    given = func.unnest(*arrays).table_valued("sid", "lid", "ok").render_derived()
    scored = (
        update(audits)
        .where(_a.sample_id == given.c.sid, _a.label_id.is_(None))
        .values(label_id=given.c.lid, correct=given.c.ok)
        .returning(_a.sample_id)
        .cte("scored")
    )
    left_out = _a.sample_id.not_in(select(scored.c.sample_id))
    return _with_open_guesses("postgresql", left_out).add_cte(scored)


def _counted(columns: Any, *where: Any) -> Any:
    """Per ``version`` of ``columns`` (the audits' or a CTE's): its guesses right, its guesses."""
    right = func.sum(case((columns.correct.is_(True), 1), else_=0))
    return select(columns.version, right, func.count()).where(*where).group_by(columns.version)


def _adding(insert: postgresql.Insert | sqlite.Insert) -> Any:
    """``insert`` of a version's counts, added to those it has (an upsert)."""
    excluded = insert.excluded
    return insert.on_conflict_do_update(
        index_elements=[_t.version],
        set_={"correct": _t.correct + excluded.correct, "scored": _t.scored + excluded.scored},
    )


def _arrays(outcomes: list[Outcome]) -> dict[str, list]:
    """``outcomes`` as :func:`_scoring_read`'s three arrays."""
    sids, lids, oks = (list(column) for column in zip(*outcomes, strict=True))
    return {"sids": sids, "lids": lids, "oks": oks}


def _firsts(outcomes: Sequence[Outcome]) -> list[Outcome]:
    """``outcomes``, one per sample: that of its first label (its lowest label event id)."""
    first: dict[str, Outcome] = {}
    for sample_id, label_id, correct in sorted(outcomes, key=lambda o: int(o[1])):
        first.setdefault(sample_id, (sample_id, int(label_id), bool(correct)))
    return list(first.values())


def _guesses(rows: Sequence[Any]) -> list[Guess]:
    """The open guesses among :meth:`Audits.labels_after`'s rows (the label's columns, then the
    guess's version and predicted class, NULL for none), one per sample."""
    found = {row[1]: (row[1], int(row[-2]), row[-1]) for row in rows if row[-2] is not None}
    return list(found.values())


def _utc(now: datetime | None) -> datetime:
    return datetime.now(UTC) if now is None else now.astimezone(UTC)


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
