"""What only the Kafka implementation promises: interop with plain clients, failing fast."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Producer

from alstream.stream import StreamUnavailable
from alstream.stream.kafka import KafkaStream

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
