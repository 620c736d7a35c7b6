"""One suite for every Stream implementation: ordering, groups, commits, redelivery."""

from __future__ import annotations

from alstream.stream import Record, Stream


def messages(count: int, start: int = 0) -> list[tuple[bytes | None, bytes]]:
    """Keyed messages, with every tenth one unkeyed and one empty value."""
    out: list[tuple[bytes | None, bytes]] = []
    for i in range(start, start + count):
        key = None if i % 10 == 3 else f"key-{i}".encode()
        out.append((key, b"" if i == 5 else f'{{"id": {i}}}'.encode()))
    return out


def pairs(records: list[Record]) -> list[tuple[bytes | None, bytes]]:
    return [(r.key, r.value) for r in records]


def test_published_messages_are_consumed_in_order(stream: Stream, topic, group, drain):
    stream.publish(topic, messages(120))
    stream.publish(topic, messages(30, start=120))
    consumer = stream.consumer(group, [topic])
    try:
        records = drain(consumer, 150)
    finally:
        consumer.close()
    assert pairs(records) == messages(150)
    assert [r.offset for r in records] == list(range(150))
    assert {(r.topic, r.partition) for r in records} == {(topic, 0)}


def test_group_resumes_after_commit(stream: Stream, topic, group, drain):
    stream.publish(topic, messages(40))
    first = stream.consumer(group, [topic])
    records = drain(first, 40)
    first.commit(records)
    first.close()

    stream.publish(topic, messages(10, start=40))
    second = stream.consumer(group, [topic])
    try:
        rest = drain(second, 10)
    finally:
        second.close()
    assert pairs(rest) == messages(10, start=40)
    assert [r.offset for r in rest] == list(range(40, 50))


def test_uncommitted_records_are_redelivered(stream: Stream, topic, group, drain):
    stream.publish(topic, messages(20))
    first = stream.consumer(group, [topic])
    records = drain(first, 20)
    first.commit(records[:7])
    first.close()

    second = stream.consumer(group, [topic])
    try:
        again = drain(second, 13)
    finally:
        second.close()
    assert [r.offset for r in again] == list(range(7, 20))
    assert pairs(again) == messages(13, start=7)


def test_commit_is_per_topic_and_takes_the_highest_offset(stream: Stream, topic, group, drain):
    other = f"{topic}-b"
    stream.publish(topic, messages(5))
    stream.publish(other, messages(5))
    first = stream.consumer(group, [topic, other])
    records = drain(first, 10)
    mine = [r for r in records if r.topic == topic]
    first.commit([mine[3], mine[1]])  # unordered: the highest one counts
    first.close()

    second = stream.consumer(group, [topic, other])
    try:
        again = drain(second, 6)
    finally:
        second.close()
    assert sorted((r.topic, r.offset) for r in again) == sorted([(topic, 4)] + [(other, i) for i in range(5)])


def test_two_groups_each_see_everything(stream: Stream, topic, group, drain):
    stream.publish(topic, messages(25))
    a = stream.consumer(group, [topic])
    b = stream.consumer(f"{group}-other", [topic])
    try:
        from_a = drain(a, 25)
        a.commit(from_a)
        from_b = drain(b, 25)
    finally:
        a.close()
        b.close()
    assert pairs(from_a) == pairs(from_b) == messages(25)


def test_publish_of_nothing_is_fine(stream: Stream, topic, group):
    stream.publish(topic, [])
    consumer = stream.consumer(group, [topic])
    try:
        assert consumer.poll(timeout=0.3) == []
        consumer.commit([])
    finally:
        consumer.close()
