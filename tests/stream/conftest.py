"""Fixtures for the stream suite: one Kafka broker per session, and each Stream implementation."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from alstream.stream import Consumer, Record, Stream
from alstream.stream.kafka import KafkaStream
from alstream.stream.log import EmbeddedLog


@pytest.fixture(params=["embedded", "kafka", "kafka-static"])
def stream(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stream]:
    """Each implementation of the Stream interface (Kafka with dynamic and static group members)."""
    if request.param == "embedded":
        impl: Stream = EmbeddedLog(tmp_path / "log")
    else:
        member_dir = tmp_path / "members" if request.param == "kafka-static" else None
        impl = KafkaStream(request.getfixturevalue("kafka_bootstrap"), member_dir=member_dir)
    try:
        yield impl
    finally:
        impl.close()


@pytest.fixture
def topic() -> str:
    """A topic no other test uses (the Kafka broker lives for the whole session)."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def group() -> str:
    return f"group-{uuid.uuid4().hex[:12]}"


Drain = Callable[[Consumer, int], list[Record]]


@pytest.fixture
def drain() -> Drain:
    """Poll until `count` records came (or 30 s passed), then make sure no more arrive."""

    def _drain(consumer: Consumer, count: int) -> list[Record]:
        records: list[Record] = []
        for _ in range(60):
            if len(records) >= count:
                break
            records += consumer.poll(max_records=count - len(records), timeout=0.5)
        records += consumer.poll(timeout=0.2)
        return records

    return _drain
