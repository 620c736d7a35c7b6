"""What only the embedded log promises: crash safety, several processes, its own limits."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from alstream.stream import open_stream
from alstream.stream.frames import encode
from alstream.stream.kafka import KafkaStream
from alstream.stream.log import EmbeddedLog
from alstream.stream.log_retention import LogLimits
from alstream.stream.topic import TopicFiles


def batch(count: int, start: int = 0) -> list[tuple[bytes | None, bytes]]:
    return [
        (f"k{i}".encode(), json.dumps({"id": i, "text": "some words"}).encode())
        for i in range(start, start + count)
    ]


def read_all(log: EmbeddedLog, topic: str, group: str = "reader") -> list[tuple[int, bytes | None, bytes]]:
    consumer = log.consumer(group, [topic])
    try:
        out = []
        while records := consumer.poll(timeout=0.0):
            out += [(r.offset, r.key, r.value) for r in records]
        return out
    finally:
        consumer.close()


@pytest.mark.parametrize(
    "tail",
    [
        encode(b"k", b"cut short")[:-3],
        b"\x00\x00\x00\x10garbage",
        b"\xff" * 3,
        b"\x00\x00\x00\x09" + b"\x00" * 9,
    ],
    ids=["partial-frame", "bad-crc", "partial-header", "zeroed"],
)
def test_torn_tail_is_ignored_then_truncated(tmp_path: Path, tail: bytes):
    log = EmbeddedLog(tmp_path)
    log.publish("t", batch(10))
    log.close()
    path = TopicFiles(tmp_path, "t").path(0)
    good_size = path.stat().st_size
    with path.open("ab") as f:
        f.write(tail)

    reopened = EmbeddedLog(tmp_path)
    assert [o for o, _, _ in read_all(reopened, "t")] == list(range(10))
    reopened.publish("t", batch(5, start=10))
    reopened.close()

    records = read_all(EmbeddedLog(tmp_path), "t", group="after")
    assert [(k, v) for _, k, v in records] == batch(15)
    assert [o for o, _, _ in records] == list(range(15))
    assert path.stat().st_size == good_size + sum(len(encode(k, v)) for k, v in batch(5, start=10))


def test_consumer_positions_survive_a_torn_tail(tmp_path: Path):
    log = EmbeddedLog(tmp_path)
    log.publish("t", batch(4))
    consumer = log.consumer("g", ["t"])
    consumer.commit(consumer.poll(timeout=0.0))
    consumer.close()
    with TopicFiles(tmp_path, "t").path(0).open("ab") as f:
        f.write(b"\x00\x00\x01\x00partial")
    log.publish("t", batch(2, start=4))
    consumer = log.consumer("g", ["t"])
    assert [r.offset for r in consumer.poll(timeout=0.0)] == [4, 5]
    consumer.close()


CHILD = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from alstream.stream.log import EmbeddedLog
    consumer = EmbeddedLog(Path(sys.argv[1])).consumer("child", ["t"])
    print("ready", flush=True)
    records, deadline = [], time.monotonic() + 30
    while len(records) < int(sys.argv[2]) and time.monotonic() < deadline:
        records += consumer.poll(timeout=0.5)
    consumer.commit(records)
    print(json.dumps([[r.offset, r.value.decode()] for r in records]), flush=True)
    """
)


@pytest.mark.parametrize("segment_bytes", [LogLimits().segment_bytes, 4096], ids=["one-segment", "rolling"])
def test_consumer_in_another_process_sees_what_this_one_publishes(tmp_path: Path, segment_bytes: int):
    log = EmbeddedLog(tmp_path, LogLimits(segment_bytes=segment_bytes))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path), "1500"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        for start in range(0, 1500, 50):  # rolling: a new segment every few batches
            log.publish("t", batch(50, start=start))
        out, _ = child.communicate(timeout=60)
    finally:
        child.kill()
    seen = json.loads(out)
    assert [o for o, _ in seen] == list(range(1500))
    assert [v.encode() for _, v in seen] == [v for _, v in batch(1500)]


def test_writers_in_several_instances_interleave_whole_batches(tmp_path: Path):
    def publish(tag: str) -> None:
        log = EmbeddedLog(tmp_path)
        for n in range(20):
            log.publish("t", [(tag.encode(), f"{n}:{i}".encode()) for i in range(50)])
        log.close()

    threads = [threading.Thread(target=publish, args=(tag,)) for tag in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records = read_all(EmbeddedLog(tmp_path), "t")
    assert [o for o, _, _ in records] == list(range(2000))
    for start in range(0, 2000, 50):  # every batch of 50 is contiguous and from one writer
        chunk = records[start : start + 50]
        assert len({k for _, k, _ in chunk}) == 1
        assert [v.split(b":")[1] for _, _, v in chunk] == [str(i).encode() for i in range(50)]


def test_a_message_larger_than_a_read_chunk(tmp_path: Path):
    log = EmbeddedLog(tmp_path)
    big = bytes(range(256)) * 5000  # 1.28 MB
    log.publish("t", [(None, b"small"), (b"big", big), (None, b"after")])
    assert read_all(log, "t") == [(0, None, b"small"), (1, b"big", big), (2, None, b"after")]


def test_one_consumer_per_group(tmp_path: Path):
    log = EmbeddedLog(tmp_path)
    first = log.consumer("g", ["t"])
    with pytest.raises(RuntimeError, match="already has a consumer"):
        log.consumer("g", ["t"])
    first.close()
    log.consumer("g", ["t"]).close()


def test_commit_of_an_undelivered_record_is_refused(tmp_path: Path):
    log = EmbeddedLog(tmp_path)
    log.publish("t", batch(3))
    consumer = log.consumer("g", ["t"])
    records = consumer.poll(max_records=1, timeout=0.0)
    with pytest.raises(ValueError, match="not delivered"):
        consumer.commit([type(records[0])("t", 0, 2, None, b"")])
    consumer.close()


def test_invalid_topic_names_are_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="invalid topic"):
        EmbeddedLog(tmp_path).publish("../escape", [(None, b"x")])


def test_open_stream_picks_the_implementation(tmp_path: Path):
    embedded = open_stream(None, tmp_path)
    assert isinstance(embedded, EmbeddedLog)
    assert embedded.directory == tmp_path / "log" and embedded.limits == LogLimits()
    limits = LogLimits(segment_bytes=4096, retention_s=None, retention_bytes=10**6)
    assert open_stream(None, tmp_path, log_limits=limits).limits == limits
    kafka = open_stream("127.0.0.1:1", tmp_path)
    assert isinstance(kafka, KafkaStream)
