"""The retry helper: transient errors are retried with backoff, then raised loudly."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import IntegrityError, OperationalError

from alstream.store import SampleRow, Store, is_transient, retry

LOCKED = sqlite3.OperationalError("database is locked")


def flaky(failures: int, error: Exception = LOCKED):
    calls = []

    def fn() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise error
        return "done"

    return fn, calls


def test_retries_transient_errors_with_growing_delays() -> None:
    fn, calls = flaky(4)
    delays: list[float] = []
    assert retry(fn, attempts=5, base_delay=0.1, max_delay=0.3, sleep=delays.append) == "done"
    assert len(calls) == 5
    assert 0.05 <= delays[0] <= 0.1 and 0.1 <= delays[1] <= 0.2
    assert all(0.15 <= d <= 0.3 for d in delays[2:])


def test_gives_up_loudly(caplog: pytest.LogCaptureFixture) -> None:
    fn, calls = flaky(10)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        retry(fn, attempts=3, sleep=lambda _: None)
    assert len(calls) == 3
    assert any(r.levelno == logging.ERROR and "giving up" in r.message for r in caplog.records)


def test_other_errors_are_not_retried() -> None:
    fn, calls = flaky(1, ValueError("bad row"))
    with pytest.raises(ValueError):
        retry(fn, sleep=lambda _: None)
    assert len(calls) == 1


def test_what_counts_as_transient() -> None:
    assert is_transient(OperationalError("INSERT", {}, LOCKED))
    assert is_transient(sqlite3.OperationalError("database table is locked"))
    assert not is_transient(sqlite3.OperationalError("no such table: samples"))
    assert not is_transient(IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE")))
    assert not is_transient(ValueError())


def test_postgres_connection_failure_is_transient(free_port: int) -> None:
    engine = create_engine(f"postgresql+psycopg://nobody@127.0.0.1:{free_port}/none?connect_timeout=2")
    with pytest.raises(OperationalError) as info:
        engine.connect()
    assert is_transient(info.value)


def _hold_lock(path: Path, seconds: float) -> threading.Event:
    """Hold SQLite's write lock from another connection for ``seconds``; returns when it is held."""
    held, release = threading.Event(), threading.Event()

    def run() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        held.set()
        release.wait(seconds)
        conn.execute("ROLLBACK")
        conn.close()

    threading.Thread(target=run, daemon=True).start()
    held.wait(5)
    return release


def rows(n: int) -> list[SampleRow]:
    return [SampleRow(f"s{i}", np.zeros(4, dtype=np.float32), None, None) for i in range(n)]


def test_write_batch_waits_out_a_held_lock(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = Store(
        f"sqlite:///{tmp_path}/s.db", busy_timeout_ms=50, attempts=10, base_delay=0.05, max_delay=0.2
    )
    store.create()
    start = time.perf_counter()
    release = _hold_lock(tmp_path / "s.db", 0.5)
    try:
        assert store.write_batch(rows(10), []) == (10, 0)
    finally:
        release.set()
    assert time.perf_counter() - start >= 0.4
    assert any("transient" in r.message and r.levelno == logging.WARNING for r in caplog.records)
    assert store.counts()["samples"] == 10
    store.close()


def test_write_batch_fails_loudly_when_the_lock_persists(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(
        f"sqlite:///{tmp_path}/s.db", busy_timeout_ms=20, attempts=3, base_delay=0.01, max_delay=0.02
    )
    store.create()
    release = _hold_lock(tmp_path / "s.db", 10)
    try:
        with pytest.raises(OperationalError, match="database is locked"):
            store.write_batch(rows(10), [])
    finally:
        release.set()
    assert any("giving up after 3 attempts" in r.message for r in caplog.records)
    time.sleep(0.1)
    assert store.counts()["samples"] == 0
    store.close()


def test_a_value_too_large_for_an_index_is_the_records_fault_not_transient():
    """PostgreSQL's program limits (SQLSTATE 54: an id too long for the index) are OperationalErrors to
    psycopg, but no retry cures them: the consumer must dead-letter the record, not retry it forever."""
    import psycopg

    from alstream.store.retry import is_bad_record, is_transient

    error = psycopg.errors.ProgramLimitExceeded("index row size 3016 exceeds btree version 4 maximum 2704")
    assert not is_transient(error) and is_bad_record(error)
    assert is_transient(psycopg.OperationalError("connection lost")) and not is_bad_record(
        psycopg.OperationalError("connection lost")
    )
