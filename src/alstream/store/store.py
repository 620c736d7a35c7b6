"""The :class:`Store`: idempotent batch writes and the reads the pool, queue and trainer need."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    delete,
    distinct,
    exists,
    false,
    func,
    inspect,
    or_,
    select,
)
from sqlalchemy.engine import URL

from alstream.migrating import MIGRATING
from alstream.store import label_events
from alstream.store.audits import Audits
from alstream.store.candidates import Candidates, Claim, hold
from alstream.store.database import SQLITE_BEGIN, in_autocommit, make_engine
from alstream.store.label_events import LabelEvent
from alstream.store.lists import listed
from alstream.store.retry import retry
from alstream.store.rows import LabelRow, SampleRow, dump_json, encode_features, load_json
from alstream.store.shard_stats import ShardStats
from alstream.store.tables import labels, metadata, models, samples
from alstream.store.tokens import Tokens
from alstream.store.trainer_stats import TrainerStats

_DELETE_CHUNK = 2000  # samples deleted in one short transaction
_MIGRATION_LOCK = 0x616C7374  # PostgreSQL advisory lock held while migrating ("alst")
# Held by a transaction that stores labels, from their insert to its commit ("labl"): label ids are
# then committed in the order they are taken, and a reader of the ids above the last it saw (the
# trainer, each worker's engine) never passes one still to come. A holder that stops between its
# insert and its commit (a paused process, a lost network) is ended by the server after
# LABELS_IDLE_S (its batch is read again), so the other writers of labels wait that long at most.
_LABELS_LOCK = 0x6C61626C
LABELS_IDLE_S = 30
# Alembic's scripts (not a package: alembic runs them). Revision 0001 is the schema as it was before
# migrations existed; each later one changes the tables, and ``tables.py`` holds the result.
MIGRATIONS = Path(__file__).with_name("migrations")
BASELINE = "0001"
HEAD = "0010"  # the newest revision: a new migration moves it here too (a test checks it is Alembic's)
# Alembic's table of the revision a database is at, as Alembic makes it.
_VERSION = Table(
    "alembic_version",
    MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)


def _arrived_before(before: datetime) -> Any:
    """Samples that arrived before ``before``, or before arrival times were kept (NULL)."""
    before = _utc(before).astimezone(UTC)  # SQLite's DATETIME binds the wall time, not the zone
    return or_(samples.c.arrived_at.is_(None), samples.c.arrived_at < before)


def _utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class Store:
    """Samples, labels and model versions behind one SQLAlchemy Core engine.

    ``url`` is ``sqlite:///path.db`` or ``postgresql://...``. Writes are idempotent and
    ``write_batch`` is the consumer's unit of work: one transaction, retried on transient errors.
    """

    def __init__(
        self,
        url: str | URL,
        *,
        busy_timeout_ms: int = 5000,
        attempts: int = 6,
        base_delay: float = 0.05,
        max_delay: float = 2.0,
    ) -> None:
        self.engine = make_engine(url, busy_timeout_ms=busy_timeout_ms)
        self.dialect = self.engine.dialect.name
        self._retry: dict[str, Any] = {"attempts": attempts, "base_delay": base_delay, "max_delay": max_delay}
        self.tokens = Tokens(self.engine)
        self.candidates = Candidates(self.engine, **self._retry)
        self.shard_stats = ShardStats(self.engine, **self._retry)
        self.audits = Audits(self.engine, writing=self.candidates.writing, **self._retry)
        self.trainer_stats = TrainerStats(self.engine, **self._retry)
        mark = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        sample_columns = ("id", "features", "text", "meta", "arrived_at", "shard")
        self._insert_samples = _insert_sql(samples.name, sample_columns, ("id",), mark)
        self._insert_sample_arrays = _insert_arrays_sql(
            samples.name, sample_columns, SAMPLE_ARRAY_TYPES, "arrived_at", ("id",)
        )
        label_columns = (
            "sample_id",
            "label",
            "annotator",
            "skipped",
            "source",
            "stream_offset",
            "created_at",
            "token_key",
        )
        self._insert_labels = _insert_sql(labels.name, label_columns, ("source", "stream_offset"), mark)
        features, texts = "features IS NOT NULL", "features IS NULL AND text IS NOT NULL"
        self._select_after = {  # by shard or not
            sharded: _after_sql("features", features, mark, sharded) for sharded in (False, True)
        }
        self._select_texts_after = {
            sharded: _after_sql("text", texts, mark, sharded) for sharded in (False, True)
        }
        self._bind_time = labels.c.created_at.type.bind_processor(self.engine.dialect)
        self._labels_after = label_events.after()

    # -- lifecycle -------------------------------------------------------------------------------

    def create(self, *, always_migrate: bool = False) -> None:
        """Bring the schema to the newest revision (creating the tables in an empty database).

        An empty database gets the tables as ``tables.py`` declares them, stamped at the newest
        revision (Alembic's recipe for a new database; the tests check that the migrations build the
        same tables), and a database at the newest revision is left as it is: Alembic and its scripts
        run only when there is something to migrate (``always_migrate``: on an empty database too).
        A database made before migrations existed (tables, no ``alembic_version``) is stamped at the
        baseline first. The whole upgrade is one transaction, held under a lock, so stores created at
        once in several processes migrate once.
        """
        retry(lambda: self._migrate(always_migrate), **self._retry)

    def _migrate(self, always_migrate: bool) -> None:
        with MIGRATING, self.transaction() as conn:  # Alembic's context is global: one at a time
            if self.dialect == "postgresql":  # SQLite: the transaction's write lock does this
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
            tables = set(inspect(conn).get_table_names())
            if _VERSION.name in tables:
                if conn.execute(select(_VERSION.c.version_num)).scalars().all() == [HEAD]:
                    return
            elif not tables & set(metadata.tables) and not always_migrate:
                metadata.create_all(conn)
                _VERSION.create(conn)
                conn.execute(_VERSION.insert().values(version_num=HEAD))
                return
            from alembic import command
            from alembic.config import Config

            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = conn
            if _VERSION.name not in tables and samples.name in tables:
                command.stamp(config, BASELINE)
            command.upgrade(config, "head")

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction (SQLite: ``BEGIN IMMEDIATE``); commits on success."""
        with self.engine.connect() as conn:
            conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
            with conn.begin():
                yield conn

    # -- writes ----------------------------------------------------------------------------------

    def add_samples(self, rows: Sequence[SampleRow], conn: Connection | None = None) -> int:
        """Insert samples not stored yet (by ``id``); returns how many were new."""
        if conn is None:
            return self._write(lambda c: self.add_samples(rows, c))
        if not rows:
            return 0
        now = self._now()
        if self.dialect == "postgresql":  # one statement of arrays, not a statement a row
            arrays = (
                [r.id for r in rows],
                [encode_features(r.features) for r in rows],
                [r.text for r in rows],
                [dump_json(r.meta) for r in rows],
                [r.shard for r in rows],
            )
            return conn.exec_driver_sql(self._insert_sample_arrays, (now, *arrays)).rowcount
        params = [(r.id, encode_features(r.features), r.text, dump_json(r.meta), now, r.shard) for r in rows]
        return conn.exec_driver_sql(self._insert_samples, params).rowcount

    def _now(self) -> Any:
        """The time now, as the driver binds a timezone-aware column. SQLite: the text that sqlite3's
        own adapter made of it for each row (what the rows hold), made once for the batch."""
        now: Any = datetime.now(UTC)
        if self.dialect == "sqlite":
            return now.isoformat(" ")
        return now if self._bind_time is None else self._bind_time(now)

    def add_labels(self, rows: Sequence[LabelRow], conn: Connection | None = None) -> int:
        """Insert label events not stored yet (by ``(source, offset)``); returns how many were new.
        On PostgreSQL the transaction holds ``_LABELS_LOCK`` from here to its commit: the last thing it
        does (``write_batch`` stores the samples first)."""
        if conn is None:
            return self._write(lambda c: self.add_labels(rows, c))
        if not rows:
            return 0
        if self.dialect == "postgresql":  # SQLite: one writer at a time already (BEGIN IMMEDIATE)
            idle = f"{LABELS_IDLE_S * 1000:.0f}ms"
            conn.exec_driver_sql(
                f"SELECT set_config('idle_in_transaction_session_timeout', '{idle}', true), "
                f"pg_advisory_xact_lock({_LABELS_LOCK})"
            )
        now = self._now()
        params = [
            (r.sample_id, r.label, r.annotator, bool(r.skipped), r.source, r.offset, now, r.token_key)
            for r in rows
        ]
        return conn.exec_driver_sql(self._insert_labels, params).rowcount

    def write_batch(self, samples: Sequence[SampleRow], labels: Sequence[LabelRow]) -> tuple[int, int]:
        """Samples then labels in one transaction; returns (new samples, new labels)."""
        return self._write(lambda c: (self.add_samples(samples, c), self.add_labels(labels, c)))

    def record_model(
        self,
        *,
        kind: str,
        n_labels: int,
        metrics: dict,
        status: str,
        error: str | None = None,
        mlflow_run_id: str | None = None,
        path: str | None = None,
        version: int | None = None,
    ) -> int:
        """Record a model version; returns its number (``version`` if given, else the next one)."""
        values = {
            "kind": kind,
            "n_labels": n_labels,
            "metrics": dump_json(metrics),
            "status": status,
            "error": error,
            "mlflow_run_id": mlflow_run_id,
            "path": path,
            "created_at": datetime.now(UTC),
        }
        if version is not None:
            values["version"] = version
        return self._write(lambda c: c.execute(models.insert().values(values)).inserted_primary_key[0])

    def set_mlflow_run(self, version: int, run_id: str) -> None:
        """Attach the MLflow run a model version was logged as (logged after it was recorded)."""
        statement = models.update().where(models.c.version == version).values(mlflow_run_id=run_id)
        self._write(lambda c: c.execute(statement))

    def _write(self, work):
        def attempt():
            with self.transaction() as conn:
                return work(conn)

        return retry(attempt, **self._retry)

    # -- reads -----------------------------------------------------------------------------------

    def samples_after(
        self, seq: int, limit: int, shard: int | None = None
    ) -> tuple[np.ndarray, list[str], np.ndarray]:
        """Up to ``limit`` feature samples with ``seq`` above the given one (of ``shard`` only, unless
        None), in seq order.

        Returns ``(seqs int64 (n,), ids, features float32 (n, d))``; ``d`` is 0 when none.
        """
        with self.engine.connect() as conn:  # raw SQL: no per-row result processing on big loads
            statement = self._select_after[shard is not None]
            rows = conn.exec_driver_sql(statement, _after(seq, limit, shard)).fetchall()
        if not rows:
            return np.empty(0, dtype=np.int64), [], np.empty((0, 0), dtype=np.float32)
        seqs, ids, blobs = zip(*rows, strict=True)
        widths = set(map(len, blobs))
        if len(widths) != 1:
            raise ValueError(f"samples after seq {seq} have feature vectors of different lengths")
        features = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), widths.pop() // 4)
        return np.array(seqs, dtype=np.int64), list(ids), features

    def texts_after(
        self, seq: int, limit: int, shard: int | None = None
    ) -> tuple[np.ndarray, list[str], list[str]]:
        """Up to ``limit`` text samples with ``seq`` above the given one (of ``shard`` only, unless
        None), in seq order.

        Returns ``(seqs int64 (n,), ids, texts)``.
        """
        with self.engine.connect() as conn:
            statement = self._select_texts_after[shard is not None]
            rows = conn.exec_driver_sql(statement, _after(seq, limit, shard)).fetchall()
        seqs = np.array([row[0] for row in rows], dtype=np.int64)
        return seqs, [row[1] for row in rows], [row[2] for row in rows]

    def get_samples(self, ids: Sequence[str], conn: Connection | None = None) -> list[dict]:
        """The stored samples among ``ids``, in the order asked: id, features (list), text, meta;
        read in ``conn`` when given (a lease's transaction), else in a connection of its own."""
        if conn is None:
            with self.engine.connect() as own:
                return self.get_samples(ids, own)
        found: dict[str, dict] = {}
        cols = (samples.c.id, samples.c.features, samples.c.text, samples.c.meta)
        wanted = listed(list(dict.fromkeys(ids)), self.dialect)
        for sid, blob, text, meta in conn.execute(select(*cols).where(samples.c.id.in_(wanted))):
            features = None if blob is None else np.frombuffer(blob, dtype="<f4").tolist()
            found[sid] = {"id": sid, "features": features, "text": text, "meta": load_json(meta)}
        return [found[i] for i in ids if i in found]

    def current_labels(
        self, ids: Sequence[str] | None = None
    ) -> dict[str, tuple[str | None, str | None, bool]]:
        """sample_id -> (label, annotator, skipped) of its latest label event ("latest wins"), for
        every labeled sample or those among ``ids``."""
        return {sid: event[1:] for sid, event in self.current_label_events(ids).items()}

    def current_label_events(
        self, ids: Sequence[str] | None = None
    ) -> dict[str, tuple[int, str | None, str | None, bool]]:
        """sample_id -> (id, label, annotator, skipped) of its latest label event, for every labeled
        sample or those among ``ids``."""
        if ids is None:
            current = _current()
        else:
            current = _current(labels.c.sample_id.in_(listed(list(dict.fromkeys(ids)), self.dialect)))
        c = current.c
        query = select(c.sample_id, c.id, c.label, c.annotator, c.skipped)
        with self.engine.connect() as conn:
            return {sid: (int(i), lab, ann, bool(sk)) for sid, i, lab, ann, sk in conn.execute(query)}

    def known_ids(self, ids: Sequence[str]) -> set[str]:
        """Those of ``ids`` that a stored sample has."""
        query = select(samples.c.id).where(samples.c.id.in_(listed(list(dict.fromkeys(ids)), self.dialect)))
        with self.engine.connect() as conn:
            return set(conn.execute(query).scalars())

    def labels_after(self, label_id: int, limit: int | None = None) -> list[LabelEvent]:
        """Label events with row id above ``label_id``, oldest first:
        ``(id, sample_id, label, annotator, skipped, created_at)``."""
        with in_autocommit(self.engine.connect()) as conn:
            rows = label_events.rows_after(conn, self._labels_after, label_id, limit)
        return [label_events.event(row) for row in rows]

    def label_counts(self) -> dict[str, int]:
        """Per class, over current labels that are not skipped."""
        current = _current()
        query = (
            select(current.c.label, func.count())
            .where(current.c.skipped == false(), current.c.label.is_not(None))
            .group_by(current.c.label)
            .order_by(current.c.label)
        )
        with self.engine.connect() as conn:
            return {label: n for label, n in conn.execute(query)}

    def conflicts(self) -> list[dict]:
        """Samples whose annotators' latest (non-skipped) labels disagree.

        ``[{"sample_id": ..., "labels": [{"annotator": ..., "label": ...}, ...]}]``, by sample id.
        """
        last = (
            select(func.max(labels.c.id).label("id"))
            .where(labels.c.skipped == false(), labels.c.label.is_not(None))
            .group_by(labels.c.sample_id, labels.c.annotator)
            .subquery()
        )
        per_annotator = (
            select(labels.c.sample_id, labels.c.annotator, labels.c.label)
            .join(last, labels.c.id == last.c.id)
            .subquery()
        )
        disputed = (
            select(per_annotator.c.sample_id)
            .group_by(per_annotator.c.sample_id)
            .having(func.count(distinct(per_annotator.c.label)) > 1)
        )
        query = (
            select(per_annotator)
            .where(per_annotator.c.sample_id.in_(disputed))
            .order_by(per_annotator.c.sample_id, per_annotator.c.annotator)
        )
        out: dict[str, dict] = {}
        with self.engine.connect() as conn:
            for sid, annotator, label in conn.execute(query):
                entry = out.setdefault(sid, {"sample_id": sid, "labels": []})
                entry["labels"].append({"annotator": annotator, "label": label})
        return list(out.values())

    def arrivals_after(self, seq: int, before: datetime, limit: int) -> tuple[np.ndarray, np.ndarray]:
        """``(seqs, old)`` of up to ``limit`` samples after ``seq``, in seq order: ``old`` when the
        sample arrived before ``before`` (or before arrival times were kept)."""
        old = _arrived_before(before)
        query = select(samples.c.seq, old).where(samples.c.seq > seq).order_by(samples.c.seq).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return np.array([r[0] for r in rows], dtype=np.int64), np.array(
            [bool(r[1]) for r in rows], dtype=bool
        )

    def first_not_due(self, seq: int, upto: int, before: datetime, shard: int | None = None) -> int | None:
        """The first seq after ``seq`` and up to ``upto`` of a sample (of ``shard`` only, unless None)
        that arrived at ``before`` or later (None: every one of them arrived before). One row read
        back: the database scans."""
        old = _arrived_before(before)
        query = (
            select(samples.c.seq)
            .where(samples.c.seq > int(seq), samples.c.seq <= int(upto), ~old, *_of_shard(shard))
            .order_by(samples.c.seq)
            .limit(1)
        )
        with self.engine.connect() as conn:
            first = conn.execute(query).scalar()
        return None if first is None else int(first)

    def last_seq(self) -> int:
        """The newest stored sample's ``seq`` (0 when none is stored)."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.max(samples.c.seq))).scalar() or 0)

    def count_arrived_before(self, before: datetime) -> int:
        """How many stored samples arrived before ``before``. Arrivals are stored in seq order, so the
        young ones begin at one seq, found by bisection (a few dozen lookups of the primary key), and
        the old ones are the rows before it (when writers race, the boundary is off by what they
        had in flight at once). SQLite: the young rows are the seqs from it to the last, none
        missing (retention deletes old ones only, and keeps the newest: SQLite gives a seq again
        only when the largest is deleted), so only the whole table is counted."""
        with self.engine.connect() as conn:
            first = conn.execute(select(func.min(samples.c.seq))).scalar()  # one each: SQLite reads
            last = conn.execute(select(func.max(samples.c.seq))).scalar()  # one end of the key, not all
            if first is None or last is None:
                return 0
            young = self._first_young(conn, int(first), int(last) + 1, _arrived_before(before))
            if self.dialect == "sqlite":  # SQLite counts a whole table from page headers, a range row by row
                total = conn.execute(select(func.count()).select_from(samples)).scalar() or 0
                first_young = conn.execute(
                    select(func.min(samples.c.seq)).where(samples.c.seq >= young)
                ).scalar()
                return max(0, int(total) - (0 if first_young is None else int(last) + 1 - int(first_young)))
            return int(conn.execute(select(func.count()).where(samples.c.seq < young)).scalar() or 0)

    @staticmethod
    def _first_young(conn: Connection, low: int, high: int, old: Any) -> int:
        """The seq where the young rows begin: every row below ``low`` is old, every row from
        ``high`` on is young."""
        while low < high:
            middle = (low + high) // 2
            query = select(samples.c.seq, old).where(samples.c.seq >= middle).order_by(samples.c.seq).limit(1)
            row = conn.execute(query).first()
            if row is None or row[0] >= high or not row[1]:
                high = middle
            else:
                low = int(row[0]) + 1
        return low

    def count_labeled_samples(self) -> int:
        """How many sample ids a label event names (skips too): what retention never deletes."""
        query = select(func.count(distinct(labels.c.sample_id)))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)

    def delete_unlabeled_between(
        self,
        first: int,
        last: int,
        before: datetime,
        keep: Sequence[int] = (),
        shard: int | None = None,
        claim: Claim | None = None,
    ) -> int:
        """Delete the samples (of ``shard`` only, unless None) with ``first <= seq <= last``, arrived
        before ``before``, that no label event names, but those at ``keep``; one statement, one short
        transaction. Returns how many were deleted. With a ``claim`` of the shard, fenced: when
        another worker claimed it since, nothing is deleted and ``ShardFenced`` is raised."""
        unlabeled = ~exists().where(labels.c.sample_id == samples.c.id)
        old = _arrived_before(before)
        where = [samples.c.seq >= int(first), samples.c.seq <= int(last), old, unlabeled, *_of_shard(shard)]
        if len(keep):
            where.append(samples.c.seq.not_in(listed(keep, self.dialect, integers=True)))
        query = delete(samples).where(*where)

        def fenced(conn: Connection) -> int:
            hold(conn, claim)
            return int(conn.execute(query).rowcount)

        return self._write(fenced)

    def delete_unlabeled(self, seqs: Sequence[int]) -> int:
        """Delete the samples at ``seqs`` that no label event names (labeled samples are kept forever);
        returns how many were deleted. One short transaction per chunk: ingestion never waits long."""
        deleted = 0
        unlabeled = ~exists().where(labels.c.sample_id == samples.c.id)
        for start in range(0, len(seqs), _DELETE_CHUNK):
            chunk = listed(seqs[start : start + _DELETE_CHUNK], self.dialect, integers=True)
            query = delete(samples).where(samples.c.seq.in_(chunk), unlabeled)
            deleted += self._write(lambda c, q=query: c.execute(q).rowcount)
        return deleted

    def counts(self) -> dict[str, int]:
        """samples, labeled (latest label not skipped), skipped (latest label skipped), labels_total."""
        current = _current()

        def count(from_: Any, *where: Any) -> Any:
            return select(func.count()).select_from(from_).where(*where).scalar_subquery()

        query = select(
            count(samples).label("samples"),
            count(current, current.c.skipped == false(), current.c.label.is_not(None)).label("labeled"),
            count(current, current.c.skipped).label("skipped"),
            count(labels).label("labels_total"),
        )
        with self.engine.connect() as conn:
            return {k: int(v) for k, v in conn.execute(query).one()._mapping.items()}

    def models(self) -> list[dict]:
        """Every model version, oldest first."""
        with self.engine.connect() as conn:
            return [_model(r) for r in conn.execute(select(models).order_by(models.c.version))]

    def newest_models(self, n: int, status: str = "ok") -> list[dict]:
        """The newest ``n`` model versions with ``status``, oldest first."""
        query = select(models).where(models.c.status == status).order_by(models.c.version.desc()).limit(n)
        with self.engine.connect() as conn:
            return [_model(r) for r in reversed(conn.execute(query).all())]

    def latest_model(self, status: str | None = "ok") -> dict | None:
        """The newest model version with ``status`` (any status when None)."""
        query = select(models).order_by(models.c.version.desc()).limit(1)
        if status is not None:
            query = query.where(models.c.status == status)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else _model(row)


def _of_shard(shard: int | None) -> list[Any]:
    """The condition that a sample came from ``shard`` (none when None)."""
    return [] if shard is None else [samples.c.shard == int(shard)]


def _current(*where: Any):
    """Subquery: each sample's latest label event (of the samples ``where`` picks)."""
    latest = select(func.max(labels.c.id).label("id")).where(*where).group_by(labels.c.sample_id).subquery()
    return (
        select(labels.c.id, labels.c.sample_id, labels.c.label, labels.c.annotator, labels.c.skipped)
        .join(latest, labels.c.id == latest.c.id)
        .subquery()
    )


def _model(row: Any) -> dict:
    record = dict(row._mapping)
    record["metrics"] = load_json(record["metrics"])
    record["created_at"] = _utc(record["created_at"])
    return record


def _after_sql(column: str, condition: str, mark: str, sharded: bool) -> str:
    """The raw query of ``samples_after`` and ``texts_after``: ``column`` of the rows after a seq."""
    shard = f"AND shard = {mark} " if sharded else ""
    return (
        f"SELECT seq, id, {column} FROM {samples.name} WHERE seq > {mark} AND {condition} {shard}"
        f"ORDER BY seq LIMIT {mark}"
    )


def _after(seq: int, limit: int, shard: int | None) -> tuple[int, ...]:
    """The parameters of :func:`_after_sql`'s query."""
    return (seq, limit) if shard is None else (seq, shard, limit)


# PostgreSQL's array type of each column ``add_samples`` writes (a scalar: one value for every row)
SAMPLE_ARRAY_TYPES = {
    "id": "text[]",
    "features": "bytea[]",
    "text": "text[]",
    "meta": "text[]",
    "shard": "int[]",
}


def _insert_arrays_sql(
    table: str, columns: Sequence[str], types: dict[str, str], scalar: str, key: Sequence[str]
) -> str:
    """PostgreSQL: many rows in one ``INSERT ... SELECT FROM unnest(arrays) ON CONFLICT (key) DO
    NOTHING`` (psycopg's ``%s``): ``scalar``'s value first (one for every row), then an array a column
    of the others, in ``columns``' order. The rows take their seqs in the arrays' order."""
    arrays = [c for c in columns if c != scalar]
    unnest = ", ".join(f"%s::{types[c]}" for c in arrays)
    chosen = ", ".join("%s::timestamptz" if c == scalar else f"r.{c}" for c in columns)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {chosen} "
        f"FROM unnest({unnest}) AS r({', '.join(arrays)}) ON CONFLICT ({', '.join(key)}) DO NOTHING"
    )


def _insert_sql(table: str, columns: Sequence[str], key: Sequence[str], mark: str) -> str:
    """``INSERT ... ON CONFLICT (key) DO NOTHING`` in the driver's own paramstyle."""
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))}) "
        f"ON CONFLICT ({', '.join(key)}) DO NOTHING"
    )
