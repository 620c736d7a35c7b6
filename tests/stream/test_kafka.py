"""What only the Kafka implementation promises: interop with plain clients, failing fast, static
group members that never share an id."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer

from alstream.stream import Record, StreamUnavailable
from alstream.stream.kafka import ErrorLog, KafkaConsumer, KafkaStream, MemberSlot

UNREACHABLE = "127.0.0.1:1"


def test_records_from_a_plain_producer_are_consumed(kafka_bootstrap: str, topic, group, drain):
    stream = KafkaStream(kafka_bootstrap)
    stream.publish(topic, [])  # creates the topic
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(30):
        producer.produce(topic, key=None if i % 2 else f"k{i}".encode(), value=f"v{i}".encode())
    assert producer.flush(10) == 0
    consumer = stream.consumer(group, [topic])
    try:
        records = drain(consumer, 30)
    finally:
        consumer.close()
        stream.close()
    assert [(r.key, r.value) for r in records] == [
        (None if i % 2 else f"k{i}".encode(), f"v{i}".encode()) for i in range(30)
    ]


def test_publish_to_an_unreachable_broker_fails_fast():
    stream = KafkaStream(UNREACHABLE)
    start = time.monotonic()
    with pytest.raises(StreamUnavailable):
        stream.publish("nowhere", [(None, b"x")], timeout=1.5)
    assert time.monotonic() - start < 5


def test_undelivered_messages_fail_fast_when_the_topic_is_known():
    stream = KafkaStream(UNREACHABLE)
    stream._topics._known.add("nowhere")  # skip creation: exercise the delivery timeout itself
    start = time.monotonic()
    with pytest.raises(StreamUnavailable, match="not acknowledged"):
        stream.publish("nowhere", [(b"k", b"x")] * 10, timeout=1.5)
    assert time.monotonic() - start < 5


def test_static_member_ids_are_unique_on_a_host_and_taken_back_when_freed(tmp_path: Path):
    first, second = MemberSlot(tmp_path, "group/a", "host"), MemberSlot(tmp_path, "group/a", "host")
    other_group = MemberSlot(tmp_path, "group-b", "host")
    assert (first.id, second.id, other_group.id) == ("host-0", "host-1", "host-0")
    first.release()
    assert MemberSlot(tmp_path, "group/a", "host").id == "host-0"  # a restarted consumer: the same id


def test_two_static_members_of_a_group_share_its_partitions(
    kafka_bootstrap: str, topic, group, tmp_path: Path
):
    stream = KafkaStream(kafka_bootstrap, partitions=2, member_dir=tmp_path)
    stream.publish(topic, [(f"k{i}".encode(), f"v{i}".encode()) for i in range(40)])
    a, b = stream.consumer(group, [topic]), stream.consumer(group, [topic])
    seen: dict[str, set[int]] = {"a": set(), "b": set()}
    try:
        for _ in range(100):  # both poll (and so rejoin) until each has had partitions
            for name, consumer in (("a", a), ("b", b)):
                seen[name] |= {r.partition for r in consumer.poll(timeout=0.1)}
            if seen["a"] and seen["b"] and len(seen["a"] | seen["b"]) == 2:
                break
    finally:
        a.close()
        b.close()
        stream.close()
    assert seen["a"] and seen["b"]  # neither fenced the other out: each read a partition


def test_a_revoked_partition_goes_to_the_next_owner_only_once_the_revoke_hook_returned(
    kafka_bootstrap: str, topic, group, tmp_path: Path
):
    """Cooperative rebalancing: what a worker's handoff of a shard rests on (no two owners at once)."""
    stream = KafkaStream(kafka_bootstrap, partitions=2, member_dir=tmp_path, cooperative=True)
    stream.publish(topic, [])
    let_go, hooked, returned = threading.Event(), threading.Event(), []

    def hook(partitions: frozenset[tuple[str, int]], lost: bool) -> None:
        hooked.set()
        let_go.wait(60)
        returned.append((partitions, lost, time.monotonic()))

    first = stream.consumer(group, [topic], on_revoke=hook)
    second = None
    stop = threading.Event()
    polling = threading.Thread(target=lambda: [first.poll(timeout=0.1) for _ in iter(stop.is_set, True)])
    try:
        for _ in range(600):  # alone in the group: both partitions
            first.poll(timeout=0.1)
            if len(first.assigned(topic)) == 2:
                break
        assert first.assigned(topic) == {0, 1}
        polling.start()
        second = stream.consumer(group, [topic])
        for _ in range(600):
            second.poll(timeout=0.1)
            if hooked.is_set():
                break
        assert hooked.is_set(), "the first member was never asked to give a partition up"
        waited = time.monotonic()
        while time.monotonic() - waited < 3:  # the hook holds on: the partition goes nowhere
            second.poll(timeout=0.1)
            assert not second.assigned(topic)
        assert len(first.assigned(topic)) == 1  # the one revoked is gone before the hook is called
        let_go.set()
        for _ in range(600):
            second.poll(timeout=0.1)
            if second.assigned(topic):
                break
        gained = time.monotonic()
        assert second.assigned(topic) and not second.assigned(topic) & first.assigned(topic)
        [(partitions, lost, at)] = returned
        assert partitions == {(topic, p) for p in second.assigned(topic)} and not lost and at <= gained
    finally:
        let_go.set()
        stop.set()
        if polling.is_alive():
            polling.join()
        first.close()
        if second is not None:
            second.close()
        stream.close()


class SharedSlot:
    """Two consumers claiming one static member id: what a second host with the same name would do."""

    id = "twin-0"

    def release(self) -> None:
        pass


def test_a_fenced_consumer_says_so_instead_of_going_quiet(kafka_bootstrap: str, topic, group):
    stream = KafkaStream(kafka_bootstrap)
    stream.publish(topic, [(b"k", b"v")])
    first = KafkaConsumer(kafka_bootstrap, group, [topic], client_id="first", slot=SharedSlot())
    second = None
    try:
        for _ in range(60):  # until the first holds the id
            if first.poll(timeout=0.5):
                break
        second = KafkaConsumer(kafka_bootstrap, group, [topic], client_id="second", slot=SharedSlot())
        with pytest.raises(StreamUnavailable, match="fenced"):
            for _ in range(120):  # the broker fences the first; it must raise, so it can be reopened
                second.poll(timeout=0.25)
                first.poll(timeout=0.25)
    finally:
        first.close()
        if second is not None:
            second.close()
        stream.close()


def test_a_non_fatal_error_is_a_warning_once_per_code_and_minute(caplog):
    now = [0.0]
    errors = ErrorLog(every_s=60.0, clock=lambda: now[0])
    lost = KafkaError(KafkaError._TRANSPORT, "broker down")
    unknown = KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)
    with caplog.at_level(logging.WARNING, logger="alstream.stream.kafka"):
        assert errors.warn(lost) and errors.warn(unknown)  # each code has its own minute
        now[0] = 59.0
        assert not any([errors.warn(lost) for _ in range(1000)])  # a tight loop: no more lines
        now[0] = 61.0
        assert errors.warn(lost) and errors.warn(lost) is False
    assert [r.getMessage() for r in caplog.records] == [
        "Kafka consumer error _TRANSPORT (not fatal): broker down",
        "Kafka consumer error UNKNOWN_TOPIC_OR_PART (not fatal): Broker: Unknown topic or partition",
        "Kafka consumer error _TRANSPORT (not fatal): broker down; 1000 more like it since the last warning",
    ]


class ErrorMessage:
    """What confluent-kafka's consume() gives for an error instead of a record."""

    def error(self) -> KafkaError:
        return KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)


def test_poll_warns_of_a_non_fatal_error_and_goes_on(caplog):
    consumer = KafkaConsumer.__new__(KafkaConsumer)  # no client: consume() gives errors, no broker needed
    consumer._consumer = type("Erring", (), {"consume": lambda self, **_: [ErrorMessage()] * 5})()
    consumer._errors = ErrorLog()
    with caplog.at_level(logging.WARNING, logger="alstream.stream.kafka"):
        assert consumer.poll() == [] and consumer.poll() == []
    assert [r.levelno for r in caplog.records] == [logging.WARNING]  # ten errors, one line
    assert "UNKNOWN_TOPIC_OR_PART" in caplog.text


def refusing(code: int) -> KafkaConsumer:
    """A consumer (no client) whose commits the group refuses with ``code``."""

    def commit(self, **_) -> None:
        raise KafkaException(KafkaError(code))

    consumer = KafkaConsumer.__new__(KafkaConsumer)
    consumer._consumer = type("Refusing", (), {"commit": commit})()
    return consumer


@pytest.mark.parametrize(
    "code", [KafkaError.ILLEGAL_GENERATION, KafkaError.REBALANCE_IN_PROGRESS, KafkaError.UNKNOWN_MEMBER_ID]
)
def test_a_commit_refused_while_the_group_rebalances_is_skipped_with_a_warning(code: int, caplog):
    records = [Record("t", 0, 5, None, b"{}")]
    with caplog.at_level(logging.WARNING, logger="alstream.stream.kafka"):
        refusing(code).commit(records)  # stored: read again by the next owner, or a later commit
    assert "offset commit skipped" in caplog.text


def test_a_commit_that_fails_otherwise_raises():
    with pytest.raises(StreamUnavailable, match="commit failed"):
        refusing(KafkaError._TRANSPORT).commit([Record("t", 0, 5, None, b"{}")])
