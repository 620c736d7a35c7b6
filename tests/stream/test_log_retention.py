"""The embedded log stays bounded: segments roll, consumed old ones go, unconsumed ones stay."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from pathlib import Path

import pytest

from alstream.stream.base import Record
from alstream.stream.frames import encode
from alstream.stream.log import EmbeddedConsumer, EmbeddedLog
from alstream.stream.log_retention import LogLimits
from alstream.stream.topic import TopicFiles

SEGMENT = 16 * 1024
BATCH = 50


def batch(count: int, start: int = 0) -> list[tuple[bytes | None, bytes]]:
    return [
        (f"k{i}".encode(), json.dumps({"id": i, "text": "some words"}).encode())
        for i in range(start, start + count)
    ]


def batch_bytes(count: int = BATCH, start: int = 0) -> int:
    return sum(len(encode(key, value)) for key, value in batch(count, start))


def log_bytes(directory: Path) -> int:
    """What the topics' segment files take on disk."""
    return sum(path.stat().st_size for path in (directory / "topics").rglob("*.log"))


def drain(consumer: EmbeddedConsumer) -> list[Record]:
    out: list[Record] = []
    while records := consumer.poll(timeout=0.0):
        out += records
    return out


def publish_consumed(log: EmbeddedLog, consumer: EmbeddedConsumer, batches: int) -> None:
    """Publish ``batches`` batches to "t", the consumer reading and committing each."""
    for start in range(0, batches * BATCH, BATCH):
        log.publish("t", batch(BATCH, start))
        consumer.commit(drain(consumer))


def test_a_consumed_log_stays_under_a_bound_and_its_offsets_keep_increasing(tmp_path: Path):
    log = EmbeddedLog(tmp_path, LogLimits(segment_bytes=SEGMENT, retention_s=0))
    consumer = log.consumer("g", ["t"])
    seen, largest = [], 0
    for start in range(0, 300 * BATCH, BATCH):  # about 50 times the segment size
        log.publish("t", batch(BATCH, start))
        records = drain(consumer)
        consumer.commit(records)
        seen += [r.offset for r in records]
        largest = max(largest, log_bytes(tmp_path))
    assert largest <= SEGMENT + 2 * batch_bytes(BATCH, 300 * BATCH)  # about one segment
    assert seen == list(range(300 * BATCH))
    segments = TopicFiles(tmp_path, "t").segments()
    assert len(segments) == 1 and segments[0].base > 250 * BATCH  # the older ones are gone
    consumer.close()

    log.publish("t", batch(BATCH, 300 * BATCH))  # offsets go on after a restart, from where they were
    again = log.consumer("g", ["t"])
    assert [r.offset for r in drain(again)] == list(range(300 * BATCH, 301 * BATCH))
    again.close()


def test_a_restarted_consumer_reads_exactly_the_records_after_its_commit(tmp_path: Path):
    log = EmbeddedLog(tmp_path, LogLimits(segment_bytes=SEGMENT, retention_s=0))
    consumer = log.consumer("g", ["t"])
    publish_consumed(log, consumer, 40)
    log.publish("t", batch(BATCH, 40 * BATCH))
    records = drain(consumer)
    consumer.commit(records[:17])  # handled only part of what it read, then stopped
    consumer.close()
    for start in range(41 * BATCH, 80 * BATCH, BATCH):
        log.publish("t", batch(BATCH, start))

    restarted = log.consumer("g", ["t"])
    after = drain(restarted)
    assert [r.offset for r in after] == list(range(40 * BATCH + 17, 80 * BATCH))
    assert [(r.key, r.value) for r in after] == batch(80 * BATCH - (40 * BATCH + 17), 40 * BATCH + 17)
    restarted.close()


def test_a_group_that_has_not_committed_keeps_its_segments(tmp_path: Path):
    log = EmbeddedLog(tmp_path, LogLimits(segment_bytes=SEGMENT, retention_s=0))
    fast, slow = log.consumer("fast", ["t"]), log.consumer("slow", ["t"])
    log.publish("t", batch(BATCH))
    slow.commit(drain(slow)[:10])
    slow.close()
    for start in range(BATCH, 100 * BATCH, BATCH):
        log.publish("t", batch(BATCH, start))
        fast.commit(drain(fast))
    assert log_bytes(tmp_path) == batch_bytes(100 * BATCH)  # nothing went: "slow" has read none of it
    assert TopicFiles(tmp_path, "t").segments()[0].base == 0

    slow = log.consumer("slow", ["t"])
    assert [r.offset for r in drain(slow)] == list(range(10, 100 * BATCH))
    slow.close()


def test_a_topic_no_group_has_committed_in_keeps_everything(tmp_path: Path):
    log = EmbeddedLog(tmp_path, LogLimits(segment_bytes=SEGMENT, retention_s=0))
    for start in range(0, 60 * BATCH, BATCH):  # e.g. the dead-letter topic, or before the consumer starts
        log.publish("t", batch(BATCH, start))
    assert len(TopicFiles(tmp_path, "t").segments()) > 3
    consumer = log.consumer("late", ["t"])
    assert [(r.key, r.value) for r in drain(consumer)] == batch(60 * BATCH)
    consumer.close()


def test_consumed_segments_stay_until_they_are_retention_s_old(tmp_path: Path):
    log = EmbeddedLog(tmp_path, LogLimits(segment_bytes=SEGMENT, retention_s=3600))
    consumer = log.consumer("g", ["t"])
    publish_consumed(log, consumer, 40)
    segments = TopicFiles(tmp_path, "t").segments()
    assert segments[0].base == 0 and len(segments) > 3  # all consumed, but younger than an hour
    an_hour_ago = time.time() - 3601
    for segment in segments[:2]:
        os.utime(segment.path, (an_hour_ago, an_hour_ago))
    deleted = log.retention.enforce("t")
    assert [d.segment.base for d in deleted] == [s.base for s in segments[:2]]
    assert TopicFiles(tmp_path, "t").segments() == segments[2:]
    consumer.close()


def test_forever_keeps_every_segment(tmp_path: Path):
    log = EmbeddedLog(tmp_path, LogLimits(segment_bytes=SEGMENT, retention_s=None))
    consumer = log.consumer("g", ["t"])
    publish_consumed(log, consumer, 40)
    long_ago = time.time() - 10 * 365 * 24 * 3600
    for segment in TopicFiles(tmp_path, "t").segments():
        os.utime(segment.path, (long_ago, long_ago))
    assert log.retention.enforce("t") == []
    assert log_bytes(tmp_path) == batch_bytes(40 * BATCH)
    consumer.close()


def dropped_counts(caplog: pytest.LogCaptureFixture) -> int:
    found = [re.search(r"dropped (\d+) records", r.getMessage()) for r in caplog.records]
    assert all(r.levelno == logging.WARNING for r, m in zip(caplog.records, found, strict=True) if m)
    return sum(int(m[1]) for m in found if m)


def test_the_size_bound_drops_unconsumed_records_and_says_how_many(tmp_path: Path, caplog):
    bound = 4 * SEGMENT
    log = EmbeddedLog(tmp_path, LogLimits(segment_bytes=SEGMENT, retention_s=None, retention_bytes=bound))
    consumer = log.consumer("g", ["t"])
    log.publish("t", batch(BATCH))
    consumer.commit(drain(consumer)[:10])
    consumer.close()
    with caplog.at_level(logging.INFO, logger="alstream.stream"):
        for start in range(BATCH, 200 * BATCH, BATCH):
            log.publish("t", batch(BATCH, start))
            assert log_bytes(tmp_path) <= bound + SEGMENT + batch_bytes(BATCH, start)
    oldest = TopicFiles(tmp_path, "t").segments()[0].base
    assert oldest > 10 and dropped_counts(caplog) == oldest - 10

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="alstream.stream"):
        consumer = log.consumer("g", ["t"])
        records = drain(consumer)
    assert [r.offset for r in records] == list(range(oldest, 200 * BATCH))
    assert [(r.key, r.value) for r in records] == batch(200 * BATCH - oldest, oldest)
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert said and f"resumes at offset {oldest}" in said[0] and "offsets 10 to" in said[0]
    consumer.close()


def test_a_reader_whose_segments_go_under_it_skips_to_the_oldest_left(tmp_path: Path, caplog):
    log = EmbeddedLog(
        tmp_path, LogLimits(segment_bytes=SEGMENT, retention_s=None, retention_bytes=2 * SEGMENT)
    )
    consumer = log.consumer("g", ["t"])
    log.publish("t", batch(BATCH))
    first = consumer.poll(max_records=5, timeout=0.0)  # reading the first segment, which stays open
    consumer.commit(first)
    for start in range(BATCH, 100 * BATCH, BATCH):
        log.publish("t", batch(BATCH, start))
    assert TopicFiles(tmp_path, "t").segments()[0].base > 0
    with caplog.at_level(logging.WARNING, logger="alstream.stream"):
        rest = drain(consumer)
    offsets = [r.offset for r in rest]
    gap = next(i for i in range(1, len(offsets)) if offsets[i] != offsets[i - 1] + 1)
    oldest = TopicFiles(tmp_path, "t").segments()[0].base
    assert offsets[:gap] == list(range(5, offsets[gap - 1] + 1))  # the rest of the segment it had open
    assert offsets[gap:] == list(range(oldest, 100 * BATCH))  # then the oldest segment left
    assert any(f"resumes at offset {oldest}" in r.getMessage() for r in caplog.records)
    consumer.commit(rest)  # records on both sides of the gap commit
    consumer.close()
    again = log.consumer("g", ["t"])
    assert drain(again) == []
    again.close()


def test_writers_in_several_instances_roll_into_the_same_segments(tmp_path: Path):
    limits = LogLimits(segment_bytes=4096, retention_s=None)

    def publish(tag: str) -> None:
        log = EmbeddedLog(tmp_path, limits)
        for n in range(40):
            log.publish("t", [(tag.encode(), f"{n}:{i}".encode()) for i in range(BATCH)])
        log.close()

    threads = [threading.Thread(target=publish, args=(tag,)) for tag in "abc"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    consumer = EmbeddedLog(tmp_path).consumer("reader", ["t"])
    records = drain(consumer)
    assert [r.offset for r in records] == list(range(3 * 40 * BATCH))
    for start in range(0, len(records), BATCH):  # every batch whole, in one segment, from one writer
        chunk = records[start : start + BATCH]
        assert len({r.key for r in chunk}) == 1
        assert [r.value.split(b":")[1] for r in chunk] == [str(i).encode() for i in range(BATCH)]
    bases = [segment.base for segment in TopicFiles(tmp_path, "t").segments()]
    assert len(bases) > 10 and all(base % BATCH == 0 for base in bases)
    consumer.close()


def write_old_layout(directory: Path, count: int, committed: int) -> None:
    """A log as the version before segments left it: one file per topic and a group's position."""
    (directory / "topics").mkdir(parents=True)
    frames = [encode(key, value) for key, value in batch(count)]
    (directory / "topics" / "t.log").write_bytes(b"".join(frames) + encode(b"torn", b"tail")[:-2])
    position = {"offset": committed, "byte": sum(len(frame) for frame in frames[:committed])}
    (directory / "groups").mkdir()
    (directory / "groups" / "g.json").write_text(json.dumps({"t": position}))


def test_a_log_of_the_previous_layout_is_read_after_an_upgrade(tmp_path: Path):
    write_old_layout(tmp_path, count=1000, committed=300)
    log = EmbeddedLog(tmp_path, LogLimits(segment_bytes=SEGMENT, retention_s=0))
    consumer = log.consumer("g", ["t"])
    records = drain(consumer)
    assert [r.offset for r in records] == list(range(300, 1000))
    assert [(r.key, r.value) for r in records] == batch(700, 300)

    log.publish("t", batch(BATCH, 1000))  # the old file is larger than a segment: a new one begins
    assert [s.base for s in TopicFiles(tmp_path, "t").segments()] == [0, 1000]
    after = drain(consumer)
    assert [(r.offset, r.key, r.value) for r in after] == [
        (1000 + i, k, v) for i, (k, v) in enumerate(batch(BATCH, 1000))
    ]
    everyone = log.consumer("new", ["t"])
    assert [r.offset for r in drain(everyone)] == list(range(1000 + BATCH))
    everyone.close()

    consumer.commit(after)
    log.retention.enforce("t")
    assert not (tmp_path / "topics" / "t.log").exists()  # read by every group: deleted like any other
    assert [s.base for s in TopicFiles(tmp_path, "t").segments()] == [1000]
    consumer.close()


def test_an_unreadable_group_file_deletes_nothing_and_publishing_goes_on(tmp_path: Path, caplog):
    log = EmbeddedLog(tmp_path, LogLimits(segment_bytes=SEGMENT, retention_s=0))
    consumer = log.consumer("g", ["t"])
    log.publish("t", batch(BATCH))
    consumer.commit(drain(consumer))
    consumer.close()
    (tmp_path / "groups" / "broken.json").write_text('{"t": {"offs')
    with caplog.at_level(logging.WARNING, logger="alstream.stream"):
        for start in range(BATCH, 20 * BATCH, BATCH):
            log.publish("t", batch(BATCH, start))
    assert TopicFiles(tmp_path, "t").segments()[0].base == 0
    assert any("nothing deleted" in r.getMessage() for r in caplog.records)
    assert [r.offset for r in drain(log.consumer("g", ["t"]))] == list(range(BATCH, 20 * BATCH))
