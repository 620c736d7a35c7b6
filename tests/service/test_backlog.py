"""A consumer in a process of its own (``alstream consume``) waits while retention is behind, as
``alstream serve``'s does: it counts retention's backlog in the store (``service/backlog.py``), so
the store stays bounded even though the engine that deletes runs elsewhere."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from alstream.messages import ProjectSchema, Sample, encode_sample
from alstream.service.backlog import Backlog
from alstream.service.ingest import Ingestor, Topics
from alstream.service.runtime import backlog
from alstream.settings import Settings
from alstream.store import LabelRow, Store
from alstream.stream import open_stream

from ..conftest import wait_while_progressing

SCHEMA = ProjectSchema(classes=["a", "b"], n_features=2)
N, BATCH, MAX_POOL, MAX_OVERDUE = 600, 100, 10, 50


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path}/store.db")
    store.create()
    yield store
    store.close()


def test_a_consumer_apart_waits_while_the_store_holds_more_than_retention_allows(
    store, tmp_path, monkeypatch
):
    stream, topics = open_stream(None, tmp_path / "data"), Topics()
    samples = [Sample(id=f"s{i:04d}", features=np.array([i, 1], dtype=np.float32)) for i in range(N)]
    stream.publish(topics.samples, [(s.id.encode(), encode_sample(s)) for s in samples])
    store.add_labels([LabelRow("s0001", "a", "ann", False, "labels:0", 0)])  # labeled: kept forever
    waits = Backlog(store, retention_s=1e-3, max_pool=MAX_POOL, max_overdue=MAX_OVERDUE, check_s=0.0)
    ingestor = Ingestor(stream, store, SCHEMA, topics, "apart", hold=waits.behind)
    monkeypatch.setattr(ingestor, "step", lambda: Ingestor.step(ingestor, max_records=BATCH))
    stop = threading.Event()
    thread = threading.Thread(target=ingestor.run, args=(stop,), daemon=True)
    thread.start()
    deleted, most = 0, 0
    try:
        while ingestor.counts.samples < N:
            held = ingestor.counts.held_s
            wait_while_progressing(  # stored a batch, then waits: nothing deletes
                lambda h=held: ingestor.counts.held_s > h + 0.3 or ingestor.counts.samples == N,
                lambda: (ingestor.counts.samples, ingestor.counts.held_s),
                what="the consumer apart",
            )
            stored = store.counts()["samples"]
            most = max(most, stored)
            assert waits.overdue == stored - MAX_POOL - 1 or ingestor.counts.samples == N
            # retention catches up (the engine of another process): all but the pool's newest go
            seqs, _ = store.arrivals_after(0, datetime.now(UTC) + timedelta(hours=1), 2 * N)
            deleted += store.delete_unlabeled(seqs[:-MAX_POOL].tolist())
    finally:
        stop.set()
        thread.join(10)
        ingestor.close()
        stream.close()
    assert ingestor.counts.samples == N  # nothing lost: every sample stored once, in the end
    assert store.counts()["samples"] + deleted == N
    assert ingestor.counts.held_s > 0  # it waited
    # never more than the pool, the labeled one, the backlog allowed, and the batch that crossed it
    assert most <= MAX_POOL + 1 + MAX_OVERDUE + BATCH


def test_without_the_hold_the_same_consumer_stores_everything_at_once(store, tmp_path, monkeypatch):
    """The check of the test above: the hold is what keeps the store small."""
    stream, topics = open_stream(None, tmp_path / "data"), Topics()
    samples = [Sample(id=f"s{i:04d}", features=np.array([i, 1], dtype=np.float32)) for i in range(N)]
    stream.publish(topics.samples, [(s.id.encode(), encode_sample(s)) for s in samples])
    ingestor = Ingestor(stream, store, SCHEMA, topics, "apart")
    monkeypatch.setattr(ingestor, "step", lambda: Ingestor.step(ingestor, max_records=BATCH))
    stop = threading.Event()
    thread = threading.Thread(target=ingestor.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_while_progressing(
            lambda: ingestor.counts.samples == N, lambda: ingestor.counts.samples, what="the consumer"
        )
    finally:
        stop.set()
        thread.join(10)
        ingestor.close()
        stream.close()
    assert store.counts()["samples"] == N > MAX_POOL + 1 + MAX_OVERDUE + BATCH


def test_the_command_holds_on_the_settings_retention_and_pool(store, tmp_path):
    project = SCHEMA
    kept = Settings(project=project, demo=False, data_dir=tmp_path, retention_s="forever")
    assert backlog(kept, store) is None  # every sample kept: nothing to wait for
    settings = Settings(
        project=project, demo=False, data_dir=tmp_path, retention_s=60, max_pool=1000, retention_max_overdue=7
    )
    waits = backlog(settings, store)
    assert waits is not None
    assert (waits.retention_s, waits.max_pool, waits.max_overdue) == (60, 1000, 7)
