"""The database briefly locked or unavailable under a running consumer: writes retry with a bound, then
fail loudly (the batch's offsets stay uncommitted and it is read again); nothing is dropped or doubled."""

from __future__ import annotations

import logging
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.exc import OperationalError

from alstream.messages import Label, ProjectSchema, Sample, encode_label, encode_sample
from alstream.service.ingest import Ingestor, Topics
from alstream.store import Store
from alstream.stream.log import EmbeddedLog

from ..conftest import PostgresServer, create_database
from .conftest import wait_for

BATCH = 1_000
LABELS_PER_BATCH = 50
RETRYING = "transient database error"  # the warning of each retried write
FAILED = "ingest batch failed"  # the error when a batch's write gave up


class Feed:
    """Publishes batches of digits samples and labels for them, and checks the store against them."""

    def __init__(self, stream: EmbeddedLog, topics: Topics) -> None:
        self.stream, self.topics = stream, topics
        self.rng = np.random.default_rng(5)
        self.ids: list[str] = []
        self.labels: dict[str, str] = {}

    def publish(self) -> None:
        start = len(self.ids)
        ids = [f"s-{i}" for i in range(start, start + BATCH)]
        features = (self.rng.random((BATCH, 64)) * 16).astype(np.float32)
        samples = [Sample(id=sid, features=row) for sid, row in zip(ids, features, strict=True)]
        labels = {sid: str(self.rng.integers(10)) for sid in ids[:LABELS_PER_BATCH]}
        self.stream.publish(self.topics.samples, [(s.id.encode(), encode_sample(s)) for s in samples])
        self.stream.publish(
            self.topics.labels,
            [(sid.encode(), encode_label(Label(id=sid, label=label))) for sid, label in labels.items()],
        )
        self.ids += ids
        self.labels |= labels

    def all_stored(self, store: Store) -> bool:
        counts = store.counts()
        return counts["samples"] >= len(self.ids) and counts["labels_total"] >= len(self.labels)

    def assert_stored_exactly_once(self, store: Store) -> None:
        counts = store.counts()
        assert counts["samples"] == len(self.ids) and counts["labels_total"] == len(self.labels)
        assert [s["id"] for s in store.get_samples(self.ids)] == self.ids
        assert {sid: label for sid, (label, _, _) in store.current_labels().items()} == self.labels


@pytest.fixture
def stream(tmp_path: Path) -> Iterator[EmbeddedLog]:
    log = EmbeddedLog(tmp_path / "log")
    try:
        yield log
    finally:
        log.close()


@pytest.fixture
def topics() -> Topics:
    suffix = uuid.uuid4().hex[:8]
    return Topics(f"samples-{suffix}", f"labels-{suffix}", f"dead-{suffix}")


@contextmanager
def consuming(stream: EmbeddedLog, store: Store, topics: Topics) -> Iterator[Ingestor]:
    """The service's consumer loop in a thread, as `alstream consume` runs it."""
    ingestor = Ingestor(stream, store, ProjectSchema.digits(), topics, "group")
    stop = threading.Event()
    thread = threading.Thread(target=ingestor.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield ingestor
    finally:
        stop.set()
        thread.join(timeout=30)
        ingestor.close()
    assert not thread.is_alive()


@contextmanager
def write_lock(path: Path) -> Iterator[None]:
    """Another connection holds SQLite's write lock (an open write transaction) until the block ends."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


@contextmanager
def consumed_into(
    store: Store, stream: EmbeddedLog, topics: Topics, first_batch: bool = True
) -> Iterator[tuple[Feed, Ingestor]]:
    """``store`` created and fed by the consumer (``first_batch``: one batch already stored); at the
    end, every published sample and label must be in it exactly once."""
    store.create()
    feed = Feed(stream, topics)
    try:
        with consuming(stream, store, topics) as ingestor:
            if first_batch:
                feed.publish()
                wait_for(lambda: feed.all_stored(store), what="the first batch")
            yield feed, ingestor
        feed.assert_stored_exactly_once(store)
    finally:
        store.close()


def assert_counted(ingestor: Ingestor, samples: int) -> None:
    """The consumer counted ``samples``, no more: it counts a batch just after its transaction commits,
    so the count may trail the store for a moment."""
    wait_for(lambda: ingestor.counts.samples >= samples, what="the consumer's count")
    assert ingestor.counts.samples == samples


def logged(caplog: pytest.LogCaptureFixture, text: str, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage() and r.levelno == level]


def test_a_write_waits_out_a_brief_lock_and_loses_nothing(
    tmp_path: Path, stream: EmbeddedLog, topics: Topics, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.WARNING)
    # A retry budget of 10 tries, each waiting 0.2 s for the lock, with 1.6 to 3.3 s of backoff between;
    # the lock is let go as soon as the first try has failed.
    store = Store(f"sqlite:///{tmp_path}/alstream.db", busy_timeout_ms=200, attempts=10, max_delay=0.5)
    with consumed_into(store, stream, topics) as (feed, ingestor):
        with write_lock(tmp_path / "alstream.db"):
            feed.publish()
            wait_for(lambda: logged(caplog, RETRYING, logging.WARNING), what="a retried write")
            assert store.counts()["samples"] == BATCH  # the lock held the write back
        wait_for(lambda: feed.all_stored(store), what="the batch written under the lock")
        assert_counted(ingestor, 2 * BATCH)
    assert not logged(caplog, FAILED, logging.ERROR)  # the retries absorbed the lock


def test_a_lock_longer_than_the_retry_budget_fails_the_batch_loudly_then_it_is_stored_once(
    tmp_path: Path, stream: EmbeddedLog, topics: Topics, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.WARNING)
    store = Store(f"sqlite:///{tmp_path}/alstream.db", busy_timeout_ms=50, attempts=3, max_delay=0.1)
    with consumed_into(store, stream, topics) as (feed, ingestor):
        with write_lock(tmp_path / "alstream.db"):
            feed.publish()
            wait_for(lambda: len(logged(caplog, FAILED, logging.ERROR)) >= 2, what="two failed tries")
            assert logged(caplog, "giving up after 3 attempts", logging.ERROR)
            failure = logged(caplog, FAILED, logging.ERROR)[0]
            assert isinstance(failure.exc_info[1], OperationalError)
            assert "database is locked" in str(failure.exc_info[1])
            assert store.counts()["samples"] == ingestor.counts.samples == BATCH
        # The consumer reopens from the committed offsets after each failure: the batch comes back
        # only because its offsets were not committed.
        feed.publish()
        wait_for(lambda: feed.all_stored(store), what="everything, once the lock is gone")
        assert_counted(ingestor, 3 * BATCH)


def test_postgres_stopped_under_the_consumer_loses_nothing(
    postgres_server: PostgresServer, stream: EmbeddedLog, topics: Topics, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.WARNING)
    store = Store(create_database(postgres_server.admin_url))  # the default retry budget
    with consumed_into(store, stream, topics) as (feed, ingestor):
        postgres_server.stop()
        try:
            feed.publish()
            wait_for(lambda: logged(caplog, FAILED, logging.ERROR), what="a batch failing loudly")
        finally:
            postgres_server.start()
        assert logged(caplog, RETRYING, logging.WARNING)  # retried before it gave up
        assert logged(caplog, "giving up after 6 attempts", logging.ERROR)
        feed.publish()
        wait_for(lambda: feed.all_stored(store), what="everything, once the server is back")
        assert_counted(ingestor, 3 * BATCH)


def test_a_consumer_that_cannot_reopen_keeps_trying_instead_of_dying(
    tmp_path: Path, stream: EmbeddedLog, topics: Topics, caplog: pytest.LogCaptureFixture, monkeypatch
):
    caplog.set_level(logging.WARNING)
    store = Store(f"sqlite:///{tmp_path}/alstream.db", busy_timeout_ms=50, attempts=2, max_delay=0.1)
    with consumed_into(store, stream, topics, first_batch=False) as (feed, ingestor):
        opened = ingestor._open
        refusals = iter([True, True])  # the stream refuses the first two reopenings

        def flaky_open():
            if next(refusals, False):
                raise RuntimeError("stream not reachable")
            return opened()

        monkeypatch.setattr(ingestor, "_open", flaky_open)
        with write_lock(tmp_path / "alstream.db"):
            feed.publish()
            wait_for(lambda: logged(caplog, FAILED, logging.ERROR), what="a failed batch")
        wait_for(lambda: len(logged(caplog, "cannot reopen", logging.ERROR)) == 2, what="two refusals")
        wait_for(lambda: feed.all_stored(store), what="the batch, after the stream came back")
