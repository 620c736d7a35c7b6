"""Records written by any client, not only alstream's own publish: a plain confluent-kafka Producer's
JSON is stored, and malformed records of any kind go to the dead-letter topic with the reason
while the consumer keeps going."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from alstream.messages import ProjectSchema
from alstream.service.ingest import Ingestor, Topics
from alstream.store import Store
from alstream.stream import Record, Stream
from alstream.stream.kafka import KafkaStream
from alstream.stream.log import EmbeddedLog

SCHEMA = ProjectSchema.digits()


def features(seed: int, n: int = 64) -> list[float]:
    return [float((seed * 7 + j) % 17) for j in range(n)]


def sample(sid: str | None, seed: int, **fields) -> bytes:
    body = {"features": features(seed), **fields}
    if sid is not None:
        body["id"] = sid
    return orjson.dumps(body)


def label(sid: str, cls: str, **fields) -> bytes:
    return orjson.dumps({"id": sid, "label": cls, **fields})


@dataclass
class Service:
    """A stream, a store and the consumer's topics and group, all the test's own."""

    kind: str
    stream: Stream
    store: Store
    topics: Topics
    group: str
    bootstrap: str | None

    def ingestor(self) -> Ingestor:
        return Ingestor(self.stream, self.store, SCHEMA, self.topics, self.group)

    def write_raw(self, topic: str, messages: list[tuple[bytes | None, bytes | None]]) -> None:
        """Bytes as any client writes them: a plain Producer on Kafka, the log's publish embedded."""
        if self.kind == "embedded":
            self.stream.publish(topic, messages)
            return
        producer = Producer({"bootstrap.servers": self.bootstrap})
        for key, value in messages:
            producer.produce(topic, key=key, value=value)
        assert producer.flush(10) == 0

    def dead_letters(self, count: int, timeout: float = 30.0) -> list[dict]:
        consumer = self.stream.consumer(f"dlq-reader-{uuid.uuid4().hex[:8]}", [self.topics.dead_letter])
        records: list[Record] = []
        deadline = time.monotonic() + timeout
        try:
            while len(records) < count and time.monotonic() < deadline:
                records += consumer.poll(max_records=1000, timeout=0.5)
            records += consumer.poll(timeout=0.5)  # and nothing more
        finally:
            consumer.close()
        return [orjson.loads(r.value) for r in records]


@pytest.fixture(params=["embedded", "kafka"])
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Service]:
    suffix = uuid.uuid4().hex[:10]
    topics = Topics(f"raw-samples-{suffix}", f"raw-labels-{suffix}", f"raw-dead-{suffix}")
    bootstrap = None
    if request.param == "kafka":
        bootstrap = request.getfixturevalue("kafka_bootstrap")
        stream: Stream = KafkaStream(bootstrap)
    else:
        stream = EmbeddedLog(tmp_path / "log")
    store = Store(f"sqlite:///{tmp_path}/alstream.db")
    store.create()
    try:
        yield Service(request.param, stream, store, topics, f"raw-group-{suffix}", bootstrap)
    finally:
        stream.close()
        store.close()


def consume_until(ingestor: Ingestor, done, timeout: float = 30.0) -> None:
    """Step the consumer until `done()`, then a few more polls to show nothing else arrives."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out: {ingestor.counts}"
        ingestor.step(timeout=0.2)
    for _ in range(3):
        ingestor.step(timeout=0.2)


def test_json_from_a_plain_kafka_producer_is_stored(kafka_bootstrap: str, tmp_path: Path):
    suffix = uuid.uuid4().hex[:10]
    topics = Topics(f"plain-samples-{suffix}", f"plain-labels-{suffix}", f"plain-dead-{suffix}")
    stream = KafkaStream(kafka_bootstrap)
    store = Store(f"sqlite:///{tmp_path}/alstream.db")
    store.create()
    ingestor = Ingestor(stream, store, SCHEMA, topics, f"plain-group-{suffix}")  # creates the topics
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(20):  # with ids, some carrying their label, some keyed
        meta = {"source": "plain", "n": i} if i % 3 == 0 else None
        body = sample(f"p-{i}", i, **({"label": str(i % 10)} if i % 2 == 0 else {}), meta=meta)
        producer.produce(topics.samples, key=f"p-{i}".encode() if i % 4 else None, value=body)
    for i in range(5):  # without ids: the consumer names them
        producer.produce(topics.samples, value=sample(None, 100 + i, label="7", annotator="bob"))
    # features by name, labels as integers, ids as integers: any client's JSON
    by_name = dict(zip(SCHEMA.feature_names, features(5), strict=True))
    producer.produce(topics.samples, value=orjson.dumps({"id": 12345, "features": by_name, "label": 4}))
    for i in range(1, 20, 2):
        producer.produce(topics.labels, key=b"x", value=label(f"p-{i}", "1", annotator="carol"))
    producer.produce(topics.labels, value=orjson.dumps({"id": "p-3", "skipped": True}))
    assert producer.flush(10) == 0
    try:
        consume_until(ingestor, lambda: store.counts()["labels_total"] >= 10 + 5 + 1 + 10 + 1)
    finally:
        ingestor.close()
        stream.close()
    counts = store.counts()
    assert counts["samples"] == 26
    assert counts["labels_total"] == 27
    assert ingestor.counts.dead_letters == 0
    current = store.current_labels()
    for i in range(20):
        if i == 3:
            assert current[f"p-{i}"] == (None, None, True)
        elif i % 2:
            assert current[f"p-{i}"] == ("1", "carol", False)
        else:
            assert current[f"p-{i}"] == (str(i % 10), None, False)
    assert current["12345"] == ("4", None, False)
    stored = store.get_samples([f"p-{i}" for i in range(20)] + ["12345"])
    assert [s["features"] for s in stored[:20]] == [features(i) for i in range(20)]
    assert stored[0]["meta"] == {"source": "plain", "n": 0} and stored[1]["meta"] is None
    assert stored[20]["features"] == features(5)
    unnamed = [sid for sid, value in current.items() if value == ("7", "bob", False)]
    assert len(unnamed) == len(set(unnamed)) == 5


MALFORMED_SAMPLES: list[tuple[bytes, str]] = [
    (b"this is not json", "not valid JSON"),
    (b'{"id": "bad-utf8", "features": [1, 2, 3], "x": "\xff\xfe"}', "not valid JSON"),
    (b"\xc3\x28\xa0\xa1", "not valid JSON"),
    (b"[1, 2, 3]", "expected a JSON object"),
    (orjson.dumps({"id": "short", "features": [1.0, 2.0, 3.0]}), "expected 64 numbers, got 3"),
    (orjson.dumps({"id": "long", "features": [1.0] * 65}), "expected 64 numbers, got 65"),
    (orjson.dumps({"id": "cls", "features": features(1), "label": "cat"}), "unknown class 'cat'"),
    (orjson.dumps({"id": "nan", "features": ["a", *features(1)[1:]]}), "not numbers"),
    (orjson.dumps({"id": "nofeat"}), "features: missing"),
    (orjson.dumps({"id": "typo", "features": features(1), "lable": "3"}), "did you mean 'label'"),
]
MALFORMED_LABELS: list[tuple[bytes, str]] = [
    (orjson.dumps({"label": "3"}), "id: missing"),
    (orjson.dumps({"id": "ok-0", "label": "eleven"}), "unknown class 'eleven'"),
    (orjson.dumps({"id": "ok-0"}), "label: missing"),
    (b"{not json", "not valid JSON"),
]


def test_malformed_records_go_to_the_dead_letter_topic_and_the_loop_goes_on(service: Service):
    ingestor = service.ingestor()  # first: on Kafka it creates the topics the raw writes go to
    topics = service.topics
    good_before = [(b"ok", sample(f"ok-{i}", i)) for i in range(5)]
    good_after = [(None, sample(f"ok-{i}", i, label="2")) for i in range(5, 10)]
    bad_samples = [(f"bad-{n}".encode(), value) for n, (value, _) in enumerate(MALFORMED_SAMPLES)]
    service.write_raw(topics.samples, good_before + bad_samples + good_after)
    bad_labels = [(None, value) for value, _ in MALFORMED_LABELS]
    service.write_raw(topics.labels, [*bad_labels, (None, label("ok-1", "9"))])
    n_dead = len(MALFORMED_SAMPLES) + len(MALFORMED_LABELS)
    try:
        consume_until(ingestor, lambda: (c := ingestor.counts).dead_letters >= n_dead and c.labels >= 6)
    finally:
        ingestor.close()

    counts = service.store.counts()
    assert counts["samples"] == 10
    assert counts["labels_total"] == 6
    assert service.store.current_labels()["ok-1"] == ("9", None, False)
    assert ingestor.counts.dead_letters == n_dead

    letters = service.dead_letters(n_dead)
    assert len(letters) == n_dead
    by_place = {(d["topic"], d["offset"]): d for d in letters}
    for n, (value, reason) in enumerate(MALFORMED_SAMPLES):
        letter = by_place[(topics.samples, len(good_before) + n)]
        assert reason in letter["reason"], (value, letter)
        assert letter["partition"] == 0
        assert letter["value"] == value.decode("utf-8", errors="replace")
    for n, (value, reason) in enumerate(MALFORMED_LABELS):
        letter = by_place[(topics.labels, n)]
        assert reason in letter["reason"], (value, letter)
        assert letter["value"] == value.decode("utf-8", errors="replace")


def test_a_kafka_record_without_a_value_is_a_dead_letter_not_a_stuck_consumer(
    kafka_bootstrap: str, tmp_path: Path
):
    """A tombstone (key, no value) from a plain producer once crashed every batch that held it."""
    suffix = uuid.uuid4().hex[:10]
    topics = Topics(f"tomb-samples-{suffix}", f"tomb-labels-{suffix}", f"tomb-dead-{suffix}")
    stream = KafkaStream(kafka_bootstrap)
    store = Store(f"sqlite:///{tmp_path}/alstream.db")
    store.create()
    service = Service("kafka", stream, store, topics, f"tomb-group-{suffix}", kafka_bootstrap)
    ingestor = service.ingestor()
    service.write_raw(topics.samples, [(b"gone", None), (None, sample("after", 1))])
    service.write_raw(topics.labels, [(b"gone", None), (None, label("after", "5"))])
    try:
        consume_until(ingestor, lambda: min(store.counts()["samples"], store.counts()["labels_total"]) >= 1)
        letters = service.dead_letters(2)
    finally:
        ingestor.close()
        stream.close()
        store.close()
    assert sorted((d["topic"], d["offset"], d["value"]) for d in letters) == [
        (topics.labels, 0, None),
        (topics.samples, 0, None),
    ]
    assert all("empty message" in d["reason"] for d in letters)
