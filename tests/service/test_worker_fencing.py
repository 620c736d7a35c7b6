"""A worker the group took for dead (``service.roles.WorkerRole`` on PostgreSQL, its Kafka consumer
stood in for): once another worker claimed its shard, what it publishes, drops or reports of it
changes nothing, and it lets the shard go until the group takes the shard away and gives it back;
a normal handover still moves the shard and its candidates."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from alstream.service import roles
from alstream.service.ingest import Topics
from alstream.settings import Settings
from alstream.store import SampleRow, Store
from alstream.store.candidates import Claim
from alstream.store.tables import candidates

TOPIC = "samples"


class Consumer:
    """Stands in for the Kafka consumer: its assignment is what the test says."""

    def __init__(self) -> None:
        self.partitions: set[int] = set()

    def assigned(self, topic: str) -> frozenset[int]:
        return frozenset(self.partitions) if topic == TOPIC else frozenset()


class Ingestor:
    def __init__(self) -> None:
        self.consumer = Consumer()

    def run(self, stop: threading.Event) -> None:
        stop.wait()

    def close(self) -> None:
        pass


class Stream:
    def close(self) -> None:
        pass


@pytest.fixture
def make_worker(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], roles.WorkerRole]]:
    """Workers named as asked, on one PostgreSQL store; they publish and report at every step."""
    monkeypatch.setattr(roles, "KafkaConsumer", Consumer)
    monkeypatch.setattr(roles, "PUBLISH_EVERY_S", 0.0)
    monkeypatch.setattr(roles, "REPORT_EVERY_S", 0.0)
    monkeypatch.setattr(
        roles,
        "open_parts",
        lambda settings, cooperative: (Store(postgres_url), Stream(), Topics(TOPIC, "l", "d")),
    )
    monkeypatch.setattr(roles, "open_ingestor", lambda *args, **kwargs: Ingestor())
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=postgres_url,
        kafka_bootstrap="127.0.0.1:9",  # never reached: the consumer is stood in for
        demo=False,
        candidates_per_shard=10,
        random_share=0.0,
    )
    Store(postgres_url).create()
    workers: list[roles.WorkerRole] = []

    def make(name: str) -> roles.WorkerRole:
        worker = roles.WorkerRole(settings)
        worker.name = name
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        worker.close()


def add_samples(store: Store, prefix: str, n: int) -> None:
    X = load_digits().data.astype(np.float32)
    store.add_samples([SampleRow(f"{prefix}{i}", X[i], shard=0) for i in range(n)])


def rows(store: Store) -> list[tuple]:
    """Every candidate as (id, owner, generation)."""
    c = candidates.c
    with store.engine.connect() as conn:
        return sorted(
            tuple(r)
            for r in conn.execute(candidates.select().with_only_columns(c.sample_id, c.owner, c.generation))
        )


def owners(store: Store) -> set[tuple]:
    return {(owner, generation) for _, owner, generation in rows(store)}


def test_a_stale_worker_changes_nothing_of_the_shard_a_newer_owner_claimed(make_worker) -> None:
    old, new = make_worker("w1"), make_worker("w2")
    store = old.store
    add_samples(store, "a", 30)
    old.ingestor.consumer.partitions = {0}
    old.step()
    assert owners(store) == {("w1", 1)} and len(rows(store)) == 10

    # w1 stalls past its session timeout: the group gives partition 0 to w2, w1 has not heard yet
    new.ingestor.consumer.partitions = {0}
    new.step()
    published = rows(store)
    assert owners(store) == {("w2", 2)} and len(published) == 10
    assert store.candidates.owner(0) == Claim(0, "w2", 2)

    add_samples(store, "b", 40)  # w1 wakes up with a shard that changed: it publishes, fenced
    old.step()
    assert rows(store) == published  # nothing of w2's replaced or dropped
    assert old.shards == {}
    report = store.shard_stats.last(0)
    assert report is not None and report.worker == "w2"
    old.step()  # still assigned, as far as w1's consumer knows: not gained (claimed) again
    assert old.shards == {} and store.candidates.owner(0) == Claim(0, "w2", 2)

    # w1's consumer hears it lost the partition; later a normal handover gives it back to w1
    old.ingestor.consumer.partitions = set()
    old._let_go(frozenset({(TOPIC, 0)}), lost=True)
    new.ingestor.consumer.partitions = set()
    new.step()  # revoked: w2 drops its unleased candidates, its claim still the newest
    assert rows(store) == []
    old.ingestor.consumer.partitions = {0}
    old.step()
    assert sorted(old.shards) == [0] and store.candidates.owner(0) == Claim(0, "w1", 3)
    assert owners(store) == {("w1", 3)} and len(rows(store)) == 10


def test_a_stale_worker_with_nothing_to_publish_learns_from_its_report(make_worker) -> None:
    old = make_worker("w1")
    store = old.store
    add_samples(store, "a", 30)
    old.ingestor.consumer.partitions = {0}
    old.step()
    store.candidates.claim(0, "w2")  # the group gave the shard to w2, which gained it
    published = rows(store)

    old.step()  # no new sample: nothing to publish, but its report is refused
    assert old.shards == {} and rows(store) == published
    report = store.shard_stats.last(0)
    assert report is not None and report.worker == "w1"  # the report before w2's claim, not one after
