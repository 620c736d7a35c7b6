"""Retention: the store keeps the pool, every labeled sample and what the pool has not seen yet;
the rest goes once old enough. A restart rebuilds the same bounded pool from what is left."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from alstream.service import retention as retention_module
from alstream.service.engine import Engine, EngineConfig
from alstream.service.retention import LEFT_SHARE, Retention
from alstream.store import LabelRow, SampleRow, Store

from ..conftest import wait_while_progressing

CLASSES = ["a", "b"]
LATER = datetime.now(UTC) + timedelta(days=30)  # every sample stored in this test is old by then


def _engine(store: Store) -> Engine:
    config = EngineConfig(classes=CLASSES, n_features=2, track=False, max_pool=500, retention_s=3600.0)
    return Engine(config, store)


def _send(store: Store, start: int, n: int) -> None:
    rng = np.random.default_rng(start)
    store.add_samples(
        [SampleRow(f"s{i}", rng.random(2, dtype=np.float32), None, None) for i in range(start, start + n)]
    )


def _retain(engine: Engine, now: datetime) -> int:
    """Retention's steps until it looked at every sample followed (a step does a bounded part)."""
    assert engine.retention is not None
    deleted = engine.retention.step(engine.store, engine._last_seq, engine.pool.seq[engine.pool.held()], now)
    for _ in range(100):
        if engine.retention.looked_at >= engine._last_seq:
            break
        deleted += engine.retention.step(
            engine.store, engine._last_seq, engine.pool.seq[engine.pool.held()], now
        )
    return deleted


def _stored(store: Store) -> set[str]:
    with store.engine.connect() as conn:
        return {row[0] for row in conn.exec_driver_sql("SELECT id FROM samples")}


def test_old_samples_out_of_the_pool_leave_the_store_and_the_rest_stay(tmp_path: Path, monkeypatch):
    store = Store(f"sqlite:///{tmp_path}/store.db")
    store.create()
    engine = _engine(store)
    try:
        _send(store, 0, 5_000)
        engine.sync()
        labels = ["s3", "s4000", engine.queue(1, "ann")[0].id]  # two long evicted, one from the pool
        store.add_labels([LabelRow(i, "a", "ann", False, "labels:0", n) for n, i in enumerate(labels)])
        engine.sync()
        _send(store, 5_000, 100)  # stored, not followed yet
        assert _retain(engine, datetime.now(UTC)) == 0 and len(_stored(store)) == 5_100  # nothing is old yet
        deleted = _retain(engine, LATER)
        in_pool = set(engine.pool.index)
        assert len(in_pool) == 499  # one was labeled
        newest = {"s4999"}  # the newest followed stays, so that no later sample gets its seq again
        assert _stored(store) == in_pool | set(labels) | newest | {f"s{i}" for i in range(5_000, 5_100)}
        assert deleted == 5_000 - len(in_pool | set(labels) | newest) == engine.retention.deleted
        assert store.current_labels(labels).keys() == set(labels)  # label events stay

        engine.sync()  # the 100 arrive and take places: the samples they push out go, together, later
        pushed_out = in_pool - set(engine.pool.index)
        assert 0 < len(pushed_out) < LEFT_SHARE * 499
        _retain(engine, LATER)
        assert pushed_out <= _stored(store) and engine.retention.state()["left_pool"] == len(pushed_out)
        monkeypatch.setattr(retention_module, "LEFT_MAX_S", 0.0)  # the first of them waited long enough
        _retain(engine, LATER)
        assert not pushed_out & _stored(store) and engine.retention.state()["left_pool"] == 0
        assert _stored(store) == set(engine.pool.index) | set(labels) | {"s5099"}
    finally:
        engine.close()
        store.close()


def test_a_restart_rebuilds_the_same_bounded_pool(tmp_path: Path):
    store = Store(f"sqlite:///{tmp_path}/store.db")
    store.create()
    first = _engine(store)
    try:
        for start in range(0, 20_000, 2_000):
            _send(store, start, 2_000)
            first.sync()
        _retain(first, LATER)
        assert _stored(store) <= set(first.pool.index) | {"s19999"}  # the pool, and the newest followed
    finally:
        first.close()
    again = _engine(store)
    try:
        again.sync()
        assert set(again.pool.index) == set(first.pool.index)
        assert set(again.pool.reservoir()) and {again.pool.ids[p] for p in again.pool.reservoir()} == {
            first.pool.ids[p] for p in first.pool.reservoir()
        }
    finally:
        again.close()
        store.close()


def test_the_pools_seqs_taken_a_while_ago_never_let_a_newer_pool_member_go(tmp_path: Path, monkeypatch):
    """The pool's sorted seqs are taken once every few seconds: a sample followed after they were
    taken waits, even when old, so none is deleted while the pool may hold it. The newest sample
    followed always stays: a sample stored after it gets a larger seq, never one deleted."""

    def stored() -> np.ndarray:
        return np.sort(store.arrivals_after(0, LATER, 1_000)[0])

    with Store(f"sqlite:///{tmp_path}/r.db") as store:
        store.create()
        _send(store, 1, 100)
        first = stored()
        in_pool = list(first[:50])
        retention = Retention(3600.0)
        assert retention.step(store, int(first[-1]), lambda: np.array(in_pool), LATER) == 49  # not the newest
        _send(store, 101, 100)
        second = stored()[51:]
        assert second[0] > first[-1] and len(second) == 100  # new seqs, after every one seen
        in_pool += list(second[50:])  # the newer ones are in the pool now; the seqs taken before say not
        assert retention.step(store, int(second[-1]), lambda: np.array(in_pool), LATER) == 0
        monkeypatch.setattr(retention_module, "REFRESH_S", 0.0)
        assert retention.step(store, int(second[-1]), lambda: np.array(in_pool), LATER) == 51  # 100 too
        assert retention.step(store, int(second[-1]), lambda: np.empty(0, dtype=np.int64), LATER) == 99
        assert stored().tolist() == [second[-1]]


def test_samples_that_leave_the_pool_are_deleted_together_once_they_are_an_eighth_of_it(
    tmp_path: Path, monkeypatch
):
    """Leavers lie scattered over the table: they wait until they are LEFT_SHARE of the pool (each
    delete then clears several rows of a page), and are counted meanwhile."""
    monkeypatch.setattr(retention_module, "REFRESH_S", 0.0)
    with Store(f"sqlite:///{tmp_path}/r.db") as store:
        store.create()
        _send(store, 0, 1_001)
        seqs = np.sort(store.arrivals_after(0, LATER, 2_000)[0])
        pool, newest = seqs[:1_000], int(seqs[-1])
        retention = Retention(3600.0)
        assert retention.step(store, newest, lambda: pool, LATER) == 0  # all in the pool
        rng = np.random.default_rng(1)
        left = rng.choice(pool, 100, replace=False)
        pool = np.setdiff1d(pool, left)
        assert retention.step(store, newest, lambda: pool, LATER) == 0  # 100 < 900 / 8: they wait
        assert (
            retention.state()["left_pool"] == 100 and len(store.arrivals_after(0, LATER, 2_000)[0]) == 1_001
        )
        more = rng.choice(pool, 20, replace=False)
        pool = np.setdiff1d(pool, more)
        assert retention.step(store, newest, lambda: pool, LATER) == 120  # 120 >= 880 / 8: all go
        assert np.array_equal(np.sort(store.arrivals_after(0, LATER, 2_000)[0]), np.append(pool, newest))
        assert retention.state()["left_pool"] == 0 and retention.deleted == 120


def test_a_step_out_of_time_says_it_is_behind_and_the_engine_steps_again_at_once(tmp_path: Path, monkeypatch):
    """A step stops after STEP_BUDGET_S with more due: it says so, and the engine does not wait
    retention_every_s for the next one (else a store fed faster than one step a period deletes
    keeps growing)."""
    from alstream.service import retention as retention_module

    with Store(f"sqlite:///{tmp_path}/r.db") as store:
        store.create()
        config = EngineConfig(classes=CLASSES, n_features=2, track=False, max_pool=10, retention_s=0.0)
        engine = Engine(config, store)
        try:
            monkeypatch.setattr(retention_module, "STEP_BUDGET_S", 0.0)  # a step: one batch, then out of time
            monkeypatch.setattr(engine.retention, "batch", 1_000)
            _send(store, 0, 3_000)
            engine.sync()  # follows the 3,000, and its retention step deletes a first batch
            assert engine.retention.behind and 0 < engine.retention.deleted <= 1_000
            steps = 1
            while engine.retention.behind and steps < 10:
                engine._retain()  # at once: not retention_every_s later
                steps += 1
            assert engine.retention.deleted == 3_000 - 11  # but the pool's 10 and the newest followed
            assert steps in (3, 4)  # 1,000 a step, one step after another
        finally:
            engine.close()


@contextmanager
def _small_engine(tmp_path: Path, retention_s: float, max_overdue: int) -> Iterator[Engine]:
    """An engine with a pool of 10 over its own SQLite store."""
    with Store(f"sqlite:///{tmp_path}/r.db") as store:
        store.create()
        config = EngineConfig(
            classes=CLASSES,
            n_features=2,
            track=False,
            max_pool=10,
            retention_s=retention_s,
            retention_max_overdue=max_overdue,
        )
        engine = Engine(config, store)
        try:
            yield engine
        finally:
            engine.close()


def test_retention_behind_by_more_than_allowed_holds_the_consumer_until_it_catches_up(
    tmp_path: Path, monkeypatch
):
    """Samples past retention_s that retention has not looked at yet are ``overdue``; beyond
    ``retention_max_overdue`` the engine says the store is behind (the consumer waits on it), and
    once retention has caught up it says so no longer."""
    from alstream.service import retention as retention_module

    with _small_engine(tmp_path, retention_s=0.0, max_overdue=1_500) as engine:
        assert engine.retention is not None
        monkeypatch.setattr(retention_module, "STEP_BUDGET_S", 0.0)
        monkeypatch.setattr(engine.retention, "batch", 1_000)
        _send(engine.store, 0, 3_000)
        assert not engine.store_behind()
        engine.sync()  # a first range of 1,000 goes: 2,000 are overdue
        assert engine.retention.overdue == 3_000 - 1_000 and engine.store_behind()
        engine._retain()
        assert engine.retention.overdue == 1_000 and not engine.store_behind()  # within the bound
        engine._retain()
        assert engine.retention.overdue <= 1 and engine.retention.state()["overdue"] <= 1  # the newest


def test_samples_not_past_retention_s_are_not_overdue(tmp_path: Path):
    """Overdue counts only what arrived over retention_s ago: a store full of young samples is
    not behind, however many there are."""
    with _small_engine(tmp_path, retention_s=3600.0, max_overdue=100) as engine:
        assert engine.retention is not None
        _send(engine.store, 0, 3_000)
        engine.sync()
        engine._retain()
        assert engine.retention.overdue == 0 and engine.retention.deleted == 0 and not engine.store_behind()


def test_a_backlog_is_read_a_budget_at_a_time_and_retention_steps_between(tmp_path: Path):
    """A consumer apart may be a million samples ahead: the engine's loop reads them a step at a
    time (``SYNC_BUDGET_S``), and retention deletes between steps instead of after the whole backlog."""
    store = Store(f"sqlite:///{tmp_path}/store.db")
    store.create()
    config = EngineConfig(  # every sample is old at once; retention steps at every sync
        classes=CLASSES, n_features=2, track=False, max_pool=500, retention_s=0.0, retention_every_s=0.0
    )
    engine = Engine(config, store)
    try:
        for start in range(0, 120_000, 20_000):
            _send(store, start, 20_000)
        assert engine.retention is not None
        assert engine.sync(budget_s=0.0) == (50_000, 0)  # one batch: then labels, retention, the snapshot
        first = engine.retention.deleted
        assert 0 < first < 50_000 and engine.retention.looked_at < 50_000
        assert engine.sync(budget_s=0.0) == (50_000, 0)
        assert first < engine.retention.deleted < 100_000 and engine.retention.looked_at < 100_000
        assert engine.sync() == (20_000, 0)  # no budget: the rest at once
    finally:
        engine.close()
        store.close()


def test_the_engines_loop_deletes_on_a_thread_of_its_own_and_keeps_the_pool(tmp_path: Path):
    """``Engine.run``: retention's steps run on the ``alstream-retention`` thread, handed the pool's
    seqs by the engine's thread between its steps; what is left is the pool and the newest sample."""
    import threading

    store = Store(f"sqlite:///{tmp_path}/store.db")
    store.create()
    engine = _engine(store)
    assert engine.retention is not None
    engine.retention.retention_s = 0.0  # every sample is old at once
    steps: list[str] = []
    step = engine.retention.step

    def on_its_thread(*args, **kwargs):
        steps.append(threading.current_thread().name)
        return step(*args, **kwargs)

    engine.retention.step = on_its_thread  # type: ignore[method-assign]
    stop = threading.Event()
    loop = threading.Thread(target=engine.run, args=(stop,))
    loop.start()
    try:
        for start in range(0, 10_000, 1_000):
            _send(store, start, 1_000)

        def left() -> set[str]:
            return _stored(store)

        wait_while_progressing(
            lambda: engine._last_seq == 10_000 and left() == set(engine.pool.index) | {"s9999"},
            lambda: (engine._last_seq, len(left())),
            what="retention",
        )
        assert set(steps) == {"alstream-retention"} and len(engine.pool.index) == 500
    finally:
        stop.set()
        loop.join(timeout=30)
        engine.close()
        store.close()
    assert not loop.is_alive() and not any(t.name == "alstream-retention" for t in threading.enumerate())
