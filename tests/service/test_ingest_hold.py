"""The consumer waits while the store is behind (``hold``): nothing is stored meanwhile, the
stream keeps it, and all of it is stored once the hold lifts; a hold longer than ``MAX_HOLD_S``
lets a batch through now and then, so that a Kafka consumer stays in its group."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from alstream.messages import ProjectSchema, Sample, encode_sample
from alstream.service import ingest
from alstream.service.ingest import Ingestor, Topics
from alstream.store import Store
from alstream.stream import open_stream

from ..conftest import wait_while_progressing

SCHEMA = ProjectSchema(classes=["a", "b"], n_features=2)
N = 500


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[Store, Ingestor, threading.Event]]:
    """A store, a consumer on an embedded log holding N samples, and the flag its hold reads."""
    store = Store(f"sqlite:///{tmp_path}/store.db")
    store.create()
    stream, topics = open_stream(None, tmp_path / "data"), Topics()
    samples = [Sample(id=f"s{i}", features=np.array([i, 1], dtype=np.float32)) for i in range(N)]
    stream.publish(topics.samples, [(s.id.encode(), encode_sample(s)) for s in samples])
    behind = threading.Event()
    ingestor = Ingestor(stream, store, SCHEMA, topics, "hold", hold=behind.is_set)
    try:
        yield store, ingestor, behind
    finally:
        ingestor.close()
        stream.close()
        store.close()


def _running(ingestor: Ingestor) -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    thread = threading.Thread(target=ingestor.run, args=(stop,), daemon=True)
    thread.start()
    return stop, thread


def test_a_held_consumer_stores_nothing_until_the_hold_lifts(parts):
    store, ingestor, behind = parts
    behind.set()
    stop, thread = _running(ingestor)
    try:
        wait_while_progressing(
            lambda: ingestor.counts.held_s > 0.5,
            lambda: ingestor.counts.held_s,
            what="the held consumer's waiting",
        )
        assert store.counts()["samples"] == 0 and ingestor.counts.batches == 0
        behind.clear()
        wait_while_progressing(
            lambda: ingestor.counts.samples == N, lambda: ingestor.counts.samples, what="the consumer"
        )
        assert store.counts()["samples"] == N
    finally:
        stop.set()
        thread.join(10)


def test_a_long_hold_lets_a_batch_through_now_and_then(parts, monkeypatch):
    store, ingestor, behind = parts
    monkeypatch.setattr(ingest, "MAX_HOLD_S", 0.2)
    monkeypatch.setattr(ingestor, "step", lambda: Ingestor.step(ingestor, max_records=100))
    behind.set()
    stop, thread = _running(ingestor)
    try:
        wait_while_progressing(
            lambda: ingestor.counts.batches >= 2, lambda: ingestor.counts.held_s, what="the held consumer"
        )
        assert ingestor.counts.held_s >= 0.2 * (ingestor.counts.batches - 1)  # it waited between them
        assert 0 < store.counts()["samples"] < N
    finally:
        stop.set()
        thread.join(10)
