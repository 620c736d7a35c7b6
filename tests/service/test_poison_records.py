"""Poison records: records that pass validation but that the database refuses (a NUL that slipped
past the checks, an over-long value) never stop the stream. The consumer bisects the failing batch:
each record the database refuses on its own goes to the dead-letter topic with the database's reason,
every other record is stored once, and the offsets move on. On both databases, Kafka and the
embedded log."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest

from alstream.messages import Label, ProjectSchema, Sample, encode_label, encode_sample
from alstream.messages import contract as models
from alstream.service.ingest import Ingestor, Topics
from alstream.store import Store
from alstream.stream import Stream, open_stream

from ..conftest import create_database, wait_while_progressing

GOOD_PER_BATCH = 300
LONG_ID = "x" * 1500  # over the store's 1000 characters; the schema below lets it through


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/store.db"
    else:
        url = create_database(request.getfixturevalue("postgres_admin_url"))
    store = Store(url)
    store.create()
    try:
        yield store
    finally:
        store.close()


@pytest.fixture(params=["embedded", "kafka"])
def stream(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stream]:
    bootstrap = request.getfixturevalue("kafka_bootstrap") if request.param == "kafka" else None
    stream = open_stream(bootstrap, tmp_path / "data")
    try:
        yield stream
    finally:
        stream.close()


@pytest.fixture
def lenient(monkeypatch: pytest.MonkeyPatch) -> ProjectSchema:
    """The digits project with gaps in its checks, as a bug would leave them: control characters
    pass, ids up to 5000 characters and annotators up to 1000 (the store keeps 1000 and 200)."""
    monkeypatch.setattr(models, "NAME_PATTERN", r"^[\s\S]*\S[\s\S]*$")  # control characters too
    monkeypatch.setattr(models, "MAX_ANNOTATOR_CHARS", 1000)
    models.contract.cache_clear()  # type: ignore[attr-defined]  # the models of the project below are built with these gaps
    return ProjectSchema.digits().model_copy(update={"max_id_chars": 5000})  # no validation: a gap


def poison_feed(stream: Stream, topics: Topics, store: Store) -> tuple[list[str], dict[str, str], list[str]]:
    """Three batches of good samples and labels, poison records among them; returns (good sample ids,
    good labels, the poison records' ids)."""
    rng = np.random.default_rng(0)
    good: list[str] = []
    labels: dict[str, str] = {}
    bad = [LONG_ID, "long-label"]
    if store.dialect == "postgresql":  # SQLite stores a NUL; PostgreSQL refuses it
        bad += ["nul\x00id", "nul-annotator"]
    for batch in range(3):
        ids = [f"s-{batch}-{i}" for i in range(GOOD_PER_BATCH)]
        samples = [Sample(id=i, features=(rng.random(64) * 16).astype(np.float32)) for i in ids]
        messages = [(s.id.encode(), encode_sample(s)) for s in samples]
        if batch == 1:  # the poison in the middle of a batch
            features = np.zeros(64, dtype=np.float32)
            messages.insert(100, (b"long", encode_sample(Sample(id=LONG_ID, features=features))))
            if "nul\x00id" in bad:
                messages.insert(200, (b"nul", encode_sample(Sample(id="nul\x00id", features=features))))
        stream.publish(topics.samples, messages)
        good += ids
        batch_labels = {sid: str(rng.integers(10)) for sid in ids[:20]}
        label_messages = [
            (sid.encode(), encode_label(Label(id=sid, label=label))) for sid, label in batch_labels.items()
        ]
        if batch == 2:
            long_label = orjson.dumps({"id": "long-label", "label": "3", "annotator": "a" * 250})
            label_messages.insert(5, (b"long-label", long_label))  # over the store's 200 characters
            if "nul-annotator" in bad:
                nul = orjson.dumps({"id": "nul-annotator", "label": "3", "annotator": "ana\x00"})
                label_messages.insert(10, (b"nul-annotator", nul))
        stream.publish(topics.labels, label_messages)
        labels |= batch_labels
    return good, labels, bad


def dead_letters(stream: Stream, topics: Topics, expected: int) -> list[dict]:
    consumer = stream.consumer(f"reader-{uuid.uuid4().hex[:6]}", [topics.dead_letter])
    found: list[dict] = []
    try:

        def done() -> bool:
            found.extend(orjson.loads(r.value) for r in consumer.poll(100, 0.5))
            return len(found) >= expected

        wait_while_progressing(done, lambda: len(found), what="the dead-letter topic")
        time.sleep(1.0)
        found.extend(orjson.loads(r.value) for r in consumer.poll(100, 1.0))  # nothing more may come
    finally:
        consumer.close()
    return found


def test_poison_records_are_dead_lettered_and_the_rest_stored_once(
    stream: Stream, store: Store, lenient: ProjectSchema
) -> None:
    suffix = uuid.uuid4().hex[:8]
    topics = Topics(f"samples-{suffix}", f"labels-{suffix}", f"dead-{suffix}")
    good, labels, bad = poison_feed(stream, topics, store)
    ingestor = Ingestor(stream, store, lenient, topics, f"group-{suffix}")
    stop = threading.Event()
    thread = threading.Thread(target=ingestor.run, args=(stop,), daemon=True)
    thread.start()
    try:
        stored = lambda: store.counts()["samples"] + store.counts()["labels_total"]  # noqa: E731
        wait_while_progressing(lambda: stored() >= len(good) + len(labels), stored, what="the consumer")
    finally:
        stop.set()
        thread.join(timeout=30)
        ingestor.close()

    counts = store.counts()
    assert (counts["samples"], counts["labels_total"]) == (len(good), len(labels))  # each good one, once
    assert [s["id"] for s in store.get_samples(good)] == good
    assert {sid: label for sid, (label, _, _) in store.current_labels().items()} == labels

    letters = dead_letters(stream, topics, expected=len(bad))
    reasons = {orjson.loads(letter["value"])["id"]: letter["reason"] for letter in letters}
    assert sorted(reasons) == sorted(bad)  # each poison record once, and nothing else
    assert all(reason.startswith("the store refused it: ") for reason in reasons.values())
    assert "ck_samples_id_length" in reasons[LONG_ID] or "CHECK" in reasons[LONG_ID], reasons[LONG_ID]
    if store.dialect == "postgresql":
        assert "NUL" in reasons["nul\x00id"] and "NUL" in reasons["nul-annotator"]

    # The offsets moved on: a consumer started again reads nothing more, and dead-letters nothing twice.
    again = Ingestor(stream, store, lenient, topics, f"group-{suffix}")
    try:
        assert sum(again.step(timeout=1.0) for _ in range(3)) == 0
    finally:
        again.close()


def test_a_database_wide_failure_is_never_dead_lettered(tmp_path: Path) -> None:
    """A failure that is not a record's own (a table dropped under the consumer) is retried, never
    dead-lettered: bisection ends on one record that still fails for a reason that is not its values."""
    from alstream.stream.log import EmbeddedLog

    store = Store(f"sqlite:///{tmp_path}/store.db")
    store.create()
    stream = EmbeddedLog(tmp_path / "log")
    topics = Topics("s", "l", "d")
    try:
        samples = [Sample(id=f"s-{i}", features=np.zeros(64, "f4")) for i in range(50)]
        stream.publish(topics.samples, [(s.id.encode(), encode_sample(s)) for s in samples])  # bisected
        with store.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE samples")
        ingestor = Ingestor(stream, store, ProjectSchema.digits(), topics, "g")
        with pytest.raises(Exception, match="no such table"):  # halved down to one record, then raised
            ingestor.step(timeout=1.0)
        ingestor.close()
        assert stream.consumer("reader", [topics.dead_letter]).poll(10, 0.5) == []
    finally:
        stream.close()
        store.close()


def test_a_record_over_max_message_bytes_is_dead_lettered(tmp_path: Path) -> None:
    from alstream.stream.log import EmbeddedLog

    store = Store(f"sqlite:///{tmp_path}/store.db")
    store.create()
    stream = EmbeddedLog(tmp_path / "log")
    topics = Topics("s", "l", "d")
    try:
        features = np.zeros(64, dtype=np.float32)
        big = Sample(id="big", features=features, meta={"note": "x" * 3000})
        ok = Sample(id="ok", features=features)
        stream.publish(topics.samples, [(b"big", encode_sample(big)), (b"ok", encode_sample(ok))])
        ingestor = Ingestor(stream, store, ProjectSchema.digits(), topics, "g", max_message_bytes=2048)
        assert ingestor.step(timeout=1.0) == 2
        ingestor.close()
        assert [s["id"] for s in store.get_samples(["big", "ok"])] == ["ok"]
        [letter] = stream.consumer("reader", [topics.dead_letter]).poll(10, 1.0)
        assert "over max_message_bytes (2048)" in orjson.loads(letter.value)["reason"]
    finally:
        stream.close()
        store.close()
