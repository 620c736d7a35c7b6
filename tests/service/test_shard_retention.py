"""Retention in a worker: each shard's engine deletes its own departed samples from the store (by
``samples.shard``), so a worker's shards stay bounded while every other shard's samples stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from alstream.service.engine import Engine, EngineConfig
from alstream.service.roles import ShardStore
from alstream.store import SampleRow, Store

LATER = datetime.now(UTC) + timedelta(days=30)  # every sample stored in this test is old by then
POOL = 200


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    url = (
        f"sqlite:///{tmp_path}/store.db"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    store = Store(url)
    store.create()
    request.addfinalizer(store.close)
    return store


def send(store: Store, start: int, n: int) -> None:
    """``n`` samples, every other one of shard 0 (the rest of shard 1)."""
    rng = np.random.default_rng(start)
    rows = [SampleRow(f"s{i}", rng.random(2, dtype=np.float32), shard=i % 2) for i in range(start, start + n)]
    store.add_samples(rows)


def stored(store: Store, shard: int) -> set[str]:
    with store.engine.connect() as conn:
        query = "SELECT id FROM samples WHERE shard = %d" % shard  # noqa: UP031 - an int of the test's
        return set(conn.exec_driver_sql(query).scalars())


def retain(engine: Engine, now: datetime) -> None:
    """Retention's steps until it looked at every sample the engine followed."""
    retention = engine.retention
    assert retention is not None
    for _ in range(100):
        retention.step(engine.store, engine._last_seq, engine.pool.seq[engine.pool.held()], now)
        if retention.looked_at >= engine._last_seq - 1:
            return
    raise AssertionError("retention never looked at every sample")


def test_a_shards_retention_bounds_its_own_samples_and_leaves_the_others(store: Store) -> None:
    config = EngineConfig(classes=["a", "b"], n_features=2, track=False, max_pool=POOL, retention_s=3600.0)
    engine = Engine(config, ShardStore(store, 0))
    try:
        for start in range(0, 6_000, 2_000):  # the stream goes on: shard 0 stays at its pool
            send(store, start, 2_000)
            engine.sync()
            retain(engine, LATER)
            engine.sync()  # what the pool pushed out since goes at the next look
            retain(engine, LATER)
            mine, pool = stored(store, 0), set(engine.pool.index)
            assert pool <= mine, "a sample of the pool deleted"
            assert len(mine) <= POOL + 1 + len(engine.retention._kept) + len(engine.retention._left), (
                "shard 0 unbounded"
            )
            assert stored(store, 1) == {f"s{i}" for i in range(1, start + 2_000, 2)}, "shard 1 touched"
        assert len(mine - pool) <= 1  # only shard 0's newest, left for SQLite's seq
        assert engine.retention.deleted == 3_000 - len(mine)
    finally:
        engine.close()
