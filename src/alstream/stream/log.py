"""EmbeddedLog: the durable, file-based stand-in for Kafka on a laptop.

Layout under the log's directory: `topics/<topic>.log` holds one append-only segment per topic
(partition 0; a record's offset is its index in the file) and `groups/<group>.json` each
consumer group's committed positions. Several processes may publish at once (an exclusive flock
serialises appends); each group may have only one consumer at a time (a second one is refused).
"""

from __future__ import annotations

import threading
import time
from array import array
from collections.abc import Sequence
from pathlib import Path

from alstream.stream.base import Message, Record, StreamUnavailable, next_positions
from alstream.stream.frames import check_topic, encode
from alstream.stream.positions import GroupPositions, Position
from alstream.stream.segment import SegmentReader, SegmentWriter

POLL_STEP = 0.01


def segment_path(directory: Path, topic: str) -> Path:
    return directory / "topics" / f"{check_topic(topic)}.log"


class EmbeddedLog:
    """A Stream on local files: `publish` returns once the batch is fsynced."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # the owner's only, as its files
        self._writers: dict[str, SegmentWriter] = {}
        self._lock = threading.Lock()

    def publish(self, topic: str, messages: Sequence[Message], timeout: float = 10.0) -> None:
        path = segment_path(self.directory, topic)
        if not messages:
            return
        data = b"".join([encode(key, value) for key, value in messages])
        try:
            with self._lock:
                writer = self._writers.get(topic)
                if writer is None:
                    writer = self._writers[topic] = SegmentWriter(path)
                writer.append(data, timeout)
        except OSError as exc:
            raise StreamUnavailable(f"embedded log write failed: {exc}") from exc

    def consumer(self, group: str, topics: Sequence[str]) -> EmbeddedConsumer:
        return EmbeddedConsumer(self.directory, group, topics)

    def close(self) -> None:
        with self._lock:
            for writer in self._writers.values():
                writer.close()
            self._writers.clear()


class _TopicCursor:
    """Where a consumer reads in one topic, and the byte ends of the records it handed out."""

    def __init__(self, reader: SegmentReader, committed: Position) -> None:
        self.reader = reader
        self.committed = committed
        self.next = committed
        self.ends = array("q")  # byte end of each delivered record, from offset `committed.offset`

    def read(self, topic: str, limit: int) -> list[Record]:
        frames = self.reader.read(self.next.byte, limit)
        if not frames:
            return []
        offset = self.next.offset
        records = [Record(topic, 0, offset + i, key, value) for i, (key, value, _) in enumerate(frames)]
        self.ends.extend(end for _, _, end in frames)
        self.next = Position(offset + len(frames), frames[-1][2])
        return records

    def position_after(self, offset: int) -> Position:
        """The committed position that follows delivered record `offset`."""
        index = offset - self.committed.offset
        if not 0 <= index < len(self.ends):
            raise ValueError(f"offset {offset} was not delivered by this consumer")
        return Position(offset + 1, self.ends[index])

    def mark_committed(self, position: Position) -> None:
        del self.ends[: position.offset - self.committed.offset]
        self.committed = position


class EmbeddedConsumer:
    """Reads a group's topics from its committed positions. Commits never move a group backwards."""

    def __init__(self, directory: Path, group: str, topics: Sequence[str]) -> None:
        paths = {topic: segment_path(directory, topic) for topic in topics}
        self._group = GroupPositions(directory / "groups", group)
        self._stored = self._group.load()
        self._cursors = {
            topic: _TopicCursor(SegmentReader(path), self._stored.get(topic, Position()))
            for topic, path in paths.items()
        }
        self._order = list(self._cursors)

    def poll(self, max_records: int = 1000, timeout: float = 1.0) -> list[Record]:
        deadline = time.monotonic() + timeout
        while True:
            records = self._read(max_records)
            remaining = deadline - time.monotonic()
            if records or remaining <= 0:
                return records
            time.sleep(min(POLL_STEP, remaining))

    def _read(self, max_records: int) -> list[Record]:
        records: list[Record] = []
        for topic in self._order:
            if len(records) >= max_records:
                break
            records += self._cursors[topic].read(topic, max_records - len(records))
        self._order.append(self._order.pop(0))  # take turns starting with each topic
        return records

    def commit(self, records: Sequence[Record]) -> None:
        updates: dict[str, Position] = {}
        for (topic, _), next_offset in next_positions(records).items():
            cursor = self._cursors.get(topic)
            if cursor is None:
                raise ValueError(f"topic {topic!r} is not consumed by this consumer")
            if next_offset > cursor.committed.offset:
                updates[topic] = cursor.position_after(next_offset - 1)
        if not updates:
            return
        try:
            self._group.save({**self._stored, **updates})
        except OSError as exc:
            raise StreamUnavailable(f"embedded log commit failed: {exc}") from exc
        self._stored.update(updates)
        for topic, position in updates.items():
            self._cursors[topic].mark_committed(position)

    def close(self) -> None:
        for cursor in self._cursors.values():
            cursor.reader.close()
        self._group.close()
