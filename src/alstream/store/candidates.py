"""The shared queue: each shard's best candidates and their leases, in the ``candidates`` table.

Every worker publishes the best samples of its shard (a Kafka partition) with their scores and
the model version that scored them; any number of stateless API replicas lease from all shards at
once, best first. A shard's unleased rows are replaced at each publish (never appended), so the
table holds what the shards published last plus the leases out.

A shard publishes **random picks** too: members of its pool's reservoir (a uniform sample of its
stream), each weighted by the stream samples it stands for (the shard's arrivals over the picks it
published). A lease's random share is drawn from all shards' free picks by weight (Efraimidis and
Spirakis: the largest ``u ** (1 / weight)``), so the random items are a uniform sample of the whole
stream, whatever each shard's size, and the accuracy measured on them stays unbiased.

PostgreSQL: a lease takes its rows with ``SELECT ... FOR UPDATE SKIP LOCKED``, so two replicas never
lease one item, nor wait for the rows another is taking; a capped annotator's leases are taken under
an advisory lock of hers, and a capped token's under one of the token's, so both caps hold across
replicas (every lease locks the annotator first, then the token: no two wait on each other); an
uncapped lease takes no lock. A take says in its RETURNING which of its rows were labeled meanwhile;
the best are read best first from a partial index without the random picks, and the draw reads the
picks from one of theirs (migration 0010). SQLite: writers are serialized (in this process by a
lock, between processes by the file's), and the ``BEGIN IMMEDIATE`` transaction each call runs in
stands in for both.

A lease that ended (``leased_until`` passed) is free again: leases take it, a publish replaces
it. Times are UTC; replicas' clocks should agree to well within a lease.

**Fencing.** A worker the group took for dead (a stall past the session timeout) may wake up and
publish or drop a shard that moved to another worker meanwhile. So each gain of a shard claims it
(:meth:`Candidates.claim`): one statement bumps the shard's generation in ``shard_owners``, and the
:class:`Claim` it returns is the worker's fencing token. A publish or drop with a claim first reads
the shard's generation ``FOR SHARE`` (a claim's update waits for it, or it for the claim) and, when
that is no longer the claim's, writes nothing and raises :class:`~alstream.errors.ShardFenced`;
each row it writes names its owner and generation (``shard_stats`` reports are fenced alike).

Why not Kafka's own group generation: confluent-kafka does not expose it
(``consumer_group_metadata()`` is opaque, for transactions); it is one number for the whole group,
bumped by every rebalance whether a partition moved or not; and only the broker checks it, on
offset commits, while the writes to fence go to the database. A generation per shard, bumped and
checked in the database the writes go to, fences exactly those writes, on SQLite too (where
``BEGIN IMMEDIATE`` serializes claims and writes; the single process keeps its queue in memory and
never uses this table). A write without a claim is not fenced: for a store with one writer (tests,
benchmarks).
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    delete,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from alstream.errors import ShardFenced
from alstream.store.database import SQLITE_BEGIN
from alstream.store.lists import listed, listed_pairs
from alstream.store.retry import retry
from alstream.store.tables import candidates, labels, shard_owners

MAX_PER_SHARD = 100_000  # candidates one shard may publish at once
MAX_LEASE = 1_000  # items one lease may take
_CHUNK = 1_000  # ids bound, or rows sent, in one statement
_LEASE_LOCK = 0x63616E64  # the advisory lock class of an annotator's leases ("cand")
_TOKEN_LOCK = 0x746F6B6E  # the advisory lock class of a token's leases ("tokn")
RANDOM = "random"  # the reason of a random pick
# A uniform draw in (0, 1] as each database writes it (SQLite's random() is a signed 64-bit integer;
# 0 would give ln's NULL, which sorts last).
_UNIFORM: dict[str, Callable[[], Any]] = {
    "postgresql": lambda: 1.0 - func.random(),
    "sqlite": lambda: 0.5 + func.random() / 18446744073709551616.0,
}
_INSERT: dict[str, Callable[[Table], postgresql.Insert | sqlite.Insert]] = {
    "postgresql": postgresql.insert,
    "sqlite": sqlite.insert,
}
_c = candidates.c
_o = shard_owners.c


@dataclass(frozen=True)
class Candidate:
    """One candidate: its sample, the shard that published it, its score, version and reason."""

    id: str
    shard: int
    score: float
    version: int
    reason: str  # "uncertainty", "cold start", or "random" (a random pick)
    cluster: int | None = None  # the shared queue does not spread over clusters (yet)


@dataclass(frozen=True)
class Claim:
    """A worker's hold on a shard: its fencing token, valid until another worker claims the shard."""

    shard: int
    owner: str
    generation: int


class Candidates:
    """The ``candidates`` table; every call is one transaction, retried on transient errors.

    ``now`` arguments default to the time now (UTC); tests pass their own.
    """

    def __init__(self, engine: Engine, *, max_per_shard: int = MAX_PER_SHARD, **retry_options: Any) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.max_per_shard = max_per_shard
        self._retry = retry_options
        self._insert = _INSERT[self.dialect](candidates)
        self._random = random.Random()  # which leased items are random picks
        # SQLite: this process's writers queue here rather than poll the file's lock (busy_timeout);
        # the store's audits queue here too (a replica's audit writes follow its leases).
        self.writing = threading.Lock() if self.dialect == "sqlite" else contextlib.nullcontext()

    def publish(
        self,
        shard: int,
        version: int,
        ids: Sequence[str],
        scores: Sequence[float],
        reason: str = "uncertainty",
        now: datetime | None = None,
        *,
        picks: Sequence[str] = (),
        pick_scores: Sequence[float] = (),
        stream: int = 0,
        claim: Claim | None = None,
    ) -> None:
        """Make ``ids`` (scored ``scores`` by model ``version``) ``shard``'s unleased candidates, and
        ``picks`` (scored ``pick_scores``: a uniform sample of the ``stream`` samples the shard saw)
        its random picks; an id in both is a random pick.

        Its other unleased candidates go; leased ones stay until their lease ends (an id leased
        now keeps its lease and its old score). Ids the store has a label event for are left out.
        An id another shard published unleased moves to this one (a partition changed owner).
        With a ``claim`` (of ``shard``) it writes only while that is the shard's newest generation,
        else raises :class:`~alstream.errors.ShardFenced` having written nothing.
        """
        _check(claim, shard)
        for named, valued in ((ids, scores), (picks, pick_scores)):
            if len(named) != len(valued):
                raise ValueError(f"{len(named)} ids but {len(valued)} scores")
            if len(named) > self.max_per_shard:
                raise ValueError(f"{len(named)} candidates, more than max_per_shard={self.max_per_shard}")
        now = _utc(now)
        best = dict(zip(ids, map(float, scores), strict=True))  # one row per id
        picked = dict(zip(picks, map(float, pick_scores), strict=True))
        for sample_id in picked:
            best.pop(sample_id, None)
        # the stream samples each pick stands for
        weight = max(stream, len(picked)) / len(picked) if picked else None
        columns = (
            "sample_id",
            "score",
            "shard",
            "version",
            "reason",
            "published_at",
            "weight",
            "owner",
            "generation",
        )

        def upsert(chunk: list[str], values: dict[str, float], why: str, weight: float | None) -> Any:
            rows = listed_pairs(chunk, [values[i] for i in chunk], self.dialect).subquery()
            constants = [
                literal(shard),
                literal(version),
                literal(why),
                literal(now, _c.published_at.type),
                literal(weight, _c.weight.type),
                literal(None if claim is None else claim.owner, _c.owner.type),
                literal(None if claim is None else claim.generation, _c.generation.type),
            ]
            # SQLite reads the ON of ON CONFLICT as a join's unless the SELECT has a WHERE
            source = select(rows.c.key, rows.c.value, *constants).where(true())
            statement = self._insert.from_select(columns, source)
            excluded = statement.excluded
            return statement.on_conflict_do_update(
                index_elements=[_c.sample_id],
                set_={
                    **{name: excluded[name] for name in columns[1:]},
                    "leased_by": None,
                    "token_key": None,
                    "leased_until": None,
                },
                where=_free(now),
            )

        def work(conn: Connection) -> None:
            hold(conn, claim)
            conn.execute(delete(candidates).where(_c.shard == shard, _free(now)))
            for values, why, each in ((best, reason, None), (picked, RANDOM, weight)):
                labeled = self._labeled(conn, list(values))
                for chunk in _chunks([i for i in values if i not in labeled]):
                    conn.execute(upsert(chunk, values, why, each))

        self._write(work)

    def lease(
        self,
        annotator: str,
        token_key: str | None,
        n: int,
        ttl_s: float,
        cap: int | None = None,
        now: datetime | None = None,
        *,
        token_cap: int | None = None,
        random_share: float = 0.0,
        then: Callable[[Connection, list[Candidate]], None] | None = None,
    ) -> list[Candidate]:
        """Lease to ``annotator`` (through the token ``token_key``) for ``ttl_s`` seconds the ``n``
        best free candidates of all shards, best first; fewer when there are fewer, or when she
        would hold more than ``cap`` live leases, or the token more than ``token_cap`` (None: no
        cap). Each item is, with probability ``random_share``, a random pick instead (drawn over
        all shards by weight; the best candidate when none is free). Labeled samples are never
        leased: one labeled since it was published is removed when a lease meets it, and another
        taken; her leases of samples labeled since end before her caps are counted.

        ``then(conn, leased)`` runs in the lease's transaction before it commits (each attempt's:
        a retried lease calls it again): what it writes commits with the lease, and what it raises
        undoes the lease."""
        if not 0 <= n <= MAX_LEASE:
            raise ValueError(f"n={n}: a lease takes 0 to {MAX_LEASE} items")
        now = _utc(now)
        until = now + timedelta(seconds=ttl_s)
        leased = {"leased_by": annotator, "token_key": token_key, "leased_until": until}
        draws = [self._random.random() < random_share for _ in range(n)] if random_share else [False] * n
        token_cap = None if token_key is None else token_cap

        def live(*where: Any) -> Any:
            return select(func.count()).select_from(candidates).where(*where, _c.leased_until > now)

        def work(conn: Connection) -> list[Candidate]:
            self._lock_caps(
                conn, annotator if cap is not None else None, token_key if token_cap is not None else None
            )
            k = n
            if cap is not None or token_cap is not None:  # what she labeled since is hers no more
                held = conn.execute(_held(annotator, now)).all()
                gone = [sample_id for sample_id, labeled in held if labeled]
                self._end(conn, gone)
                if cap is not None:  # her live leases: those she holds, less those just ended
                    k = min(k, cap - (len(held) - len(gone)))
            if token_cap is not None:
                k = min(k, token_cap - conn.execute(live(_c.token_key == token_key)).scalar_one())
            k = max(k, 0)
            random = _take_random(now, leased, _UNIFORM[self.dialect])
            picks = self._take(conn, sum(draws[:k]), random)
            best = self._take(conn, k - len(picks), _take_best(now, leased))
            if len(picks) + len(best) < k:  # too few best (a cold start: the shards' pools are their
                picks += self._take(conn, k - len(picks) - len(best), random)  # reservoirs): picks fill
            taken = sorted(picks + best, key=lambda c: (-c.score, c.id))
            if then is not None:
                then(conn, taken)
            return taken

        return self._write(work)

    def _lock_caps(self, conn: Connection, annotator: str | None, token_key: str | None) -> None:
        """PostgreSQL: wait for the other leases of ``annotator``, then of ``token_key`` (None: not
        capped, no lock) to commit, so that her cap and the token's count every live lease; SQLite's
        ``BEGIN IMMEDIATE`` already serializes them."""
        if self.dialect != "postgresql":
            return
        for lock, key in ((_LEASE_LOCK, annotator), (_TOKEN_LOCK, token_key)):
            if key is not None:
                conn.execute(select(func.pg_advisory_xact_lock(lock, func.hashtext(key))))

    def _take(self, conn: Connection, k: int, take: Callable[[int], Any]) -> list[Candidate]:
        """Up to ``k`` candidates leased by ``take(k)``; labeled ones among them (each row says, in
        the same statement) go for good, and others come instead (a NOT EXISTS in the query would let
        PostgreSQL's planner hash-join the whole labels table)."""
        taken: list[Candidate] = []
        while k > 0:
            rows = conn.execute(take(k)).all()
            labeled = [row[0] for row in rows if row[-1]]
            self._end(conn, labeled)
            taken += [Candidate(*row[:-1]) for row in rows if not row[-1]]
            k = len(labeled) if len(rows) == k else 0
        return taken

    def release(self, annotator: str, ids: Sequence[str]) -> int:
        """Give ``annotator``'s leases of ``ids`` back (free again now); returns how many were hers."""
        free = {"leased_by": None, "token_key": None, "leased_until": None}

        def work(conn: Connection) -> int:
            return sum(
                conn.execute(
                    update(candidates)
                    .where(_c.sample_id.in_(listed(chunk, self.dialect)), _c.leased_by == annotator)
                    .values(free)
                ).rowcount
                for chunk in _chunks(list(ids))
            )

        return self._write(work)

    def end(self, ids: Sequence[str], conn: Connection | None = None) -> int:
        """Remove the candidates ``ids`` for good, leased or not (labeled); returns how many were.
        In ``conn``'s transaction when given (a lease's ``then``), else in one of its own."""
        if conn is not None:
            return self._end(conn, list(ids))
        return self._write(lambda own: self._end(own, list(ids)))

    def expire(self, now: datetime | None = None) -> int:
        """Free the leases that ended by ``now`` (leases and publishes treat them as free anyway);
        returns how many."""
        now = _utc(now)
        statement = (
            update(candidates)
            .where(_c.leased_until <= now)
            .values(leased_by=None, token_key=None, leased_until=None)
        )
        return self._write(lambda conn: conn.execute(statement).rowcount)

    def held(self, now: datetime | None = None, shard: int | None = None) -> list[str]:
        """The ids leased at ``now`` (of ``shard`` only, unless None): the shards pin them."""
        query = select(_c.sample_id).where(_c.leased_until > _utc(now))
        if shard is not None:
            query = query.where(_c.shard == shard)
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def drop_shard(self, shard: int, now: datetime | None = None, *, claim: Claim | None = None) -> int:
        """Remove ``shard``'s unleased candidates (its partition moved); its leased ones stay until
        their leases end. Returns how many went. With a ``claim``, fenced as :meth:`publish` is."""
        _check(claim, shard)
        statement = delete(candidates).where(_c.shard == shard, _free(_utc(now)))

        def work(conn: Connection) -> int:
            hold(conn, claim)
            return conn.execute(statement).rowcount

        return self._write(work)

    def claim(self, shard: int, owner: str, now: datetime | None = None) -> Claim:
        """Make ``owner`` (a worker that just gained ``shard``) its owner, at the next generation (1
        for a shard never claimed): from now on the claims before it are fenced."""
        row = {"shard": shard, "owner": owner, "generation": 1, "claimed_at": _utc(now)}
        insert = _INSERT[self.dialect](shard_owners).values(row)
        statement = insert.on_conflict_do_update(
            index_elements=[_o.shard],
            set_={
                "owner": insert.excluded.owner,
                "generation": _o.generation + 1,
                "claimed_at": insert.excluded.claimed_at,
            },
        ).returning(_o.generation)
        generation = self._write(lambda conn: conn.execute(statement).scalar_one())
        return Claim(shard, owner, int(generation))

    def owner(self, shard: int) -> Claim | None:
        """``shard``'s newest claim, if it has one."""
        with self.engine.connect() as conn:
            row = conn.execute(select(_o.owner, _o.generation).where(_o.shard == shard)).first()
        return None if row is None else Claim(shard, row.owner, int(row.generation))

    def counts(self, now: datetime | None = None) -> dict[str, int]:
        """``candidates`` in the table and, of them, ``leased`` at ``now``."""
        leased = func.count().filter(_c.leased_until > _utc(now))
        with self.engine.connect() as conn:
            total, held = conn.execute(select(func.count(), leased).select_from(candidates)).one()
        return {"candidates": int(total), "leased": int(held)}

    def _end(self, conn: Connection, ids: list[str]) -> int:
        where = (_c.sample_id.in_(listed(chunk, self.dialect)) for chunk in _chunks(ids))
        return sum(conn.execute(delete(candidates).where(named)).rowcount for named in where)

    def _labeled(self, conn: Connection, ids: list[str]) -> set[str]:
        """Those of ``ids`` that a label event names (skips too)."""
        labeled: set[str] = set()
        for chunk in _chunks(ids):
            named = labels.c.sample_id.in_(listed(chunk, self.dialect))
            labeled.update(conn.execute(select(labels.c.sample_id).where(named).distinct()).scalars())
        return labeled

    def _write(self, work):
        def attempt():
            with self.writing, self.engine.connect() as conn:
                conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
                with conn.begin():
                    return work(conn)

        return retry(attempt, **self._retry)


def _check(claim: Claim | None, shard: int) -> None:
    if claim is not None and claim.shard != shard:
        raise ValueError(f"a claim of shard {claim.shard} does not write shard {shard}")


def hold(conn: Connection, claim: Claim | None) -> None:
    """Raise :class:`ShardFenced` unless ``claim`` (None: no fence) is its shard's newest; its row
    stays locked (``FOR SHARE``) until the transaction ends, so no claim comes in between (the
    shard's writes in that transaction are the claim's owner's: publishes, drops, retention)."""
    if claim is None:
        return
    held = (
        select(_o.owner, _o.generation)
        .where(_o.shard == claim.shard)
        .with_for_update(read=True)  # SQLite: BEGIN IMMEDIATE already holds the writers off
    )
    newest = conn.execute(held).first()
    if newest is None or int(newest.generation) != claim.generation:
        now = "unclaimed" if newest is None else f"{newest.owner}'s, generation {newest.generation}"
        raise ShardFenced(
            f"shard {claim.shard}: {claim.owner} holds generation {claim.generation}; it is {now}"
        )


def _free(now: datetime) -> Any:
    """The candidate is leased by nobody at ``now``."""
    return or_(_c.leased_until.is_(None), _c.leased_until <= now)


def _take_best(now: datetime, leased: dict[str, Any]) -> Callable[[int], Any]:
    """Lease (``leased``: the lease's columns) the ``k`` best candidates, not random picks, free at
    ``now`` and not being taken by another transaction; returns them (in no order)."""

    def take(k: int) -> Any:
        picked = (
            select(_c.sample_id)
            .where(_free(now), _c.weight.is_(None))
            .order_by(_c.score.desc(), _c.sample_id.desc())  # ix_candidates_best, read backwards
            .limit(k)
            .with_for_update(skip_locked=True, of=candidates)  # SQLite: no such clause, no need
            .cte("picked")
        )
        return _lease_rows(picked, leased)

    return take


def _take_random(now: datetime, leased: dict[str, Any], uniform: Callable[[], Any]) -> Callable[[int], Any]:
    """Lease ``k`` random picks free at ``now``, drawn by weight without replacement (the largest
    ``ln(u) / weight``, ``u`` uniform in (0, 1]: Efraimidis and Spirakis)."""

    def take(k: int) -> Any:
        picked = (
            select(_c.sample_id)
            .where(_free(now), _c.weight.is_not(None))
            .order_by((func.ln(uniform()) / _c.weight).desc())
            .limit(k)
            .with_for_update(skip_locked=True, of=candidates)
            .cte("picked")
        )
        return _lease_rows(picked, leased)

    return take


def _lease_rows(picked: Any, leased: dict[str, Any]) -> Any:
    """Lease the rows ``picked``; returns each one's columns and whether a label event names it (an
    index lookup per leased row, in RETURNING: no round trip of its own)."""
    return (
        update(candidates)
        .where(_c.sample_id == picked.c.sample_id)
        .values(leased)
        .returning(_c.sample_id, _c.shard, _c.score, _c.version, _c.reason, _is_labeled())
    )


def _held(annotator: str, now: datetime) -> Any:
    """The ids ``annotator`` holds leased at ``now``, each with whether a label event names it."""
    return select(_c.sample_id, _is_labeled()).where(_c.leased_by == annotator, _c.leased_until > now)


def _is_labeled() -> Any:
    """Whether a label event (a skip too) names the candidate: a lookup in ``ix_labels_sample_id_id``
    (the candidate's column spelled out: SQLite's RETURNING would name it unqualified, the labels')."""
    return exists().where(labels.c.sample_id == literal_column("candidates.sample_id")).label("labeled")


def _utc(now: datetime | None) -> datetime:
    """``now`` (default: the time now) in UTC; SQLite binds a datetime's wall time, not its zone."""
    return datetime.now(UTC) if now is None else now.astimezone(UTC)


def _chunks(items: list) -> Iterator[list]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
