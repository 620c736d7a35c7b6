"""``alstream worker`` (a real process, its consumers pipelined: a batch written on a thread of its
own while the next is polled) SIGKILLed in the middle of its writes, on a real Kafka topic and
PostgreSQL, then restarted, round after round: every sample and label sent is stored exactly once.

The test holds a lock on the samples and labels tables, so the worker's INSERTs of the round's
records wait inside PostgreSQL (its transactions open, nothing stored) when the worker is killed.
Before the kill lets go of the lock, no offset the worker's groups committed may be past a record
that the store lacks: an offset committed before its records are stored would be, and the restarted
worker would never read those records again."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import Consumer, TopicPartition
from sqlalchemy import select, text

from alstream.messages import Label, Sample, encode_label, encode_sample
from alstream.store import Store
from alstream.store.tables import labels, samples
from alstream.stream.kafka import KafkaStream

from ..conftest import wait_while_progressing
from .processes import Roles, kill_all

PARTITIONS = 2
ROUNDS = 3  # kills
FIRST = 2000  # samples stored before the first round
PER_ROUND = 1500  # samples sent in each round, while the store is locked
LABELS_PER_ROUND = 100  # labels sent in each round (of samples stored before it)
STALL_S = 90.0  # a wait fails only when nothing moved for this long
COMMIT_GRACE_S = 1.0  # after the writes block: time for a commit sent before them to reach the broker
LOCK = "LOCK TABLE samples, labels IN SHARE ROW EXCLUSIVE MODE"  # INSERTs wait, reads go on


@pytest.fixture
def setup(tmp_path: Path, postgres_url: str, kafka_bootstrap: str) -> Iterator[tuple[Roles, dict[str, str]]]:
    suffix = uuid.uuid4().hex[:10]
    values = {
        "kafka_bootstrap": kafka_bootstrap,
        "database_url": postgres_url,
        "data_dir": str(tmp_path / "shared"),
        "samples_topic": f"killed-samples-{suffix}",
        "labels_topic": f"killed-labels-{suffix}",
        "dead_letter_topic": f"killed-dead-{suffix}",
        "consumer_group": f"killed-{suffix}",
        "consumer_instance_id": f"k-{suffix}",
        "demo": "false",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALSTREAM_")}
    env.update({f"ALSTREAM_{k.upper()}": v for k, v in values.items()})
    workers = Roles("worker", env, tmp_path)
    try:
        yield workers, values
    finally:
        kill_all(workers.procs)


def sample_messages(prefix: str, n: int, rng: np.random.Generator) -> list[tuple[bytes, bytes]]:
    X = (rng.random((n, 64)) * 16).astype(np.float32)
    return [
        (f"{prefix}-{i}".encode(), encode_sample(Sample(id=f"{prefix}-{i}", features=x)))
        for i, x in enumerate(X)
    ]


def label_messages(ids: list[str]) -> list[tuple[bytes, bytes]]:
    return [
        (i.encode(), encode_label(Label(id=i, label=str(n % 10), annotator="ann"))) for n, i in enumerate(ids)
    ]


def stored(store: Store) -> tuple[list[str], list[tuple[str, int]], list[str]]:
    """The stored samples' ids, the label events' (source, offset) and the labels' sample ids."""
    with store.engine.connect() as conn:
        ids = list(conn.execute(select(samples.c.id)).scalars())
        events = conn.execute(select(labels.c.source, labels.c.stream_offset, labels.c.sample_id)).all()
    return ids, [(source, int(offset)) for source, offset, _ in events], [sid for *_, sid in events]


def blocked_inserts(store: Store) -> set[str]:
    """The tables (of samples and labels) whose INSERTs wait for a lock in PostgreSQL now."""
    query = text(
        "SELECT query FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    )
    with store.engine.connect() as conn:
        waiting = [q.lstrip().lower() for q in conn.execute(query).scalars()]
    return {
        table
        for table in ("samples", "labels")
        if any(q.startswith(f"insert into {table} ") for q in waiting)
    }


def kafka_client(bootstrap: str, group: str) -> Consumer:
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})


def topic_records(bootstrap: str, topic: str, expected: int) -> dict[tuple[int, int], str]:
    """(partition, offset) -> key of every record of ``topic`` (``expected`` of them)."""
    reader = kafka_client(bootstrap, f"reader-{uuid.uuid4().hex[:8]}")  # assigned: joins no group
    try:
        reader.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        found: dict[tuple[int, int], str] = {}
        idle = time.monotonic()
        while len(found) < expected:
            for msg in reader.consume(num_messages=5000, timeout=0.5):
                if msg.error() is None:
                    found[(msg.partition(), msg.offset())] = msg.key().decode()
                    idle = time.monotonic()
            assert time.monotonic() - idle < STALL_S, f"{topic}: read {len(found)} of {expected} records"
        return found
    finally:
        reader.close()


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The offsets ``group`` committed on ``topic``'s partitions (absent: none committed)."""
    client = kafka_client(bootstrap, group)  # asks the group's coordinator; subscribes to nothing
    try:
        found = client.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=30)
    finally:
        client.close()
    return {tp.partition: tp.offset for tp in found if tp.offset >= 0}


def committed_not_stored(store: Store, values: dict[str, str], sent: tuple[int, int]) -> list[str]:
    """The records below an offset the worker's groups committed that the store does not hold."""
    bootstrap = values["kafka_bootstrap"]
    ids, events, _ = stored(store)
    have_samples, have_events = set(ids), set(events)
    missing = []
    groups = (values["consumer_group"], f"{values['consumer_group']}.labels")  # roles.labels_group
    for (topic, group), expected in zip(
        ((values["samples_topic"], groups[0]), (values["labels_topic"], groups[1])), sent, strict=True
    ):
        records = topic_records(bootstrap, topic, expected)
        upto = committed(bootstrap, group, topic)
        for (partition, offset), key in sorted(records.items()):
            if offset >= upto.get(partition, 0):
                continue
            if topic == values["labels_topic"]:
                there = (f"{topic}:{partition}", offset) in have_events
            else:
                there = key in have_samples
            if not there:
                missing.append(f"{topic}:{partition}@{offset} ({key})")
    return missing


@pytest.mark.timeout(900)
def test_a_worker_killed_mid_write_stores_every_sample_and_label_once(
    setup: tuple[Roles, dict[str, str]],
) -> None:
    workers, values = setup
    rng = np.random.default_rng(11)
    stream = KafkaStream(values["kafka_bootstrap"], partitions=PARTITIONS)  # topics made before the worker
    store = Store(values["database_url"])
    store.create()
    sent_samples: list[str] = []
    sent_labels: list[str] = []

    def publish(topic: str, messages: list[tuple[bytes, bytes]], into: list[str]) -> None:
        stream.publish(values[topic], messages, timeout=60)
        into += [key.decode() for key, _ in messages]

    def progress() -> object:
        return store.counts(), workers.progress(), blocked_inserts(store)

    def all_stored() -> bool:
        workers.text(len(workers.procs) - 1)  # AssertionError, with its log, if the worker died
        ids, _, labeled = stored(store)
        return set(ids) >= set(sent_samples) and not Counter(sent_labels) - Counter(labeled)

    try:
        first = sample_messages("a", FIRST, rng)
        publish("samples_topic", first, sent_samples)
        stream.publish(values["labels_topic"], [], timeout=60)
        workers.start()
        wait_while_progressing(
            all_stored,
            progress,
            stall_s=STALL_S,
            what="the first samples stored",
            detail=workers.output,
            poll_s=0.2,
        )
        for round_ in range(ROUNDS):
            with store.engine.connect() as lock:
                held = lock.begin()
                lock.exec_driver_sql(LOCK)
                publish("samples_topic", sample_messages(f"r{round_}", PER_ROUND, rng), sent_samples)
                start = round_ * LABELS_PER_ROUND
                ids = [f"a-{i}" for i in range(start, start + LABELS_PER_ROUND)]
                publish("labels_topic", label_messages(ids), sent_labels)
                wait_while_progressing(
                    lambda: blocked_inserts(store) == {"samples", "labels"},
                    progress,
                    stall_s=STALL_S,
                    what=f"round {round_}: the worker's INSERTs of samples and labels waiting on the lock",
                    detail=workers.output,
                    poll_s=0.05,
                )
                time.sleep(COMMIT_GRACE_S)
                victim = workers.procs[-1]
                os.kill(victim.pid, signal.SIGKILL)
                victim.wait(timeout=30)
                gone = committed_not_stored(store, values, (len(sent_samples), len(sent_labels)))
                assert not gone, f"round {round_}: committed before stored: {_some(gone)}"
                held.rollback()  # the dead worker's transactions end with their sockets
            workers.start()  # takes the killed one's static member id: its partitions at once
            wait_while_progressing(
                all_stored,
                progress,
                stall_s=STALL_S,
                what=f"round {round_}: everything sent stored after the restart",
                detail=lambda: f"\n{missing_report(store, sent_samples, sent_labels)}\n{workers.output()}",
                poll_s=0.2,
            )
        ids, events, labeled = stored(store)
        report = missing_report(store, sent_samples, sent_labels)
        assert sorted(ids) == sorted(sent_samples), report
        assert Counter(labeled) == Counter(sent_labels), report
        assert len(set(events)) == len(events) == len(sent_labels), report
    finally:
        stream.close()
        store.close()


def missing_report(store: Store, sent_samples: list[str], sent_labels: list[str]) -> str:
    """The samples and labels sent that the store lacks, and those it holds more often than sent."""
    ids, _, labeled = stored(store)
    have, want = Counter(ids), Counter(sent_samples)
    got, sent = Counter(labeled), Counter(sent_labels)
    missing_samples, twice_samples = sorted((want - have).elements()), sorted((have - want).elements())
    missing_labels, twice_labels = sorted((sent - got).elements()), sorted((got - sent).elements())
    return (
        f"samples: {len(sent_samples)} sent, {len(ids)} stored, missing {_some(missing_samples)}, "
        f"twice {_some(twice_samples)}; labels: {len(sent_labels)} sent, {len(labeled)} stored, "
        f"missing {_some(missing_labels)}, twice or never sent {_some(twice_labels)}"
    )


def _some(ids: list[str], most: int = 50) -> str:
    """``ids`` (how many, and the first ``most``)."""
    return f"{len(ids)} {ids[:most]}{' ...' if len(ids) > most else ''}"
