"""EmbeddedLog: the durable, file-based stand-in for Kafka on a laptop.

Layout under the log's directory: `topics/<topic>/` holds a topic's segments (partition 0;
offsets keep increasing from one segment to the next, see `alstream.stream.topic`) and
`groups/<group>.json` each consumer group's committed positions. A new segment begins once the
newest holds `limits.segment_bytes`; closed segments go as `alstream.stream.log_retention` says,
checked after each roll and every few seconds of publishing or committing. Several processes
may publish at once (an exclusive flock serialises appends); each group may have only one
consumer at a time (a second one is refused).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

from alstream.errors import StreamUnavailable
from alstream.stream.base import Message, Record, RevokeHook, next_positions
from alstream.stream.cursor import TopicCursor
from alstream.stream.frames import encode
from alstream.stream.log_retention import LogLimits, Retention
from alstream.stream.positions import GroupPositions, Position
from alstream.stream.topic import TopicFiles
from alstream.stream.writer import TopicWriter

POLL_STEP = 0.01


class EmbeddedLog:
    """A Stream on local files: `publish` returns once the batch is fsynced."""

    def __init__(self, directory: Path, limits: LogLimits | None = None) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # the owner's only, as its files
        self.limits = limits or LogLimits()
        self.retention = Retention(self.directory, self.limits)
        self._writers: dict[str, TopicWriter] = {}
        self._lock = threading.Lock()

    def publish(self, topic: str, messages: Sequence[Message], timeout: float = 10.0) -> None:
        files = TopicFiles(self.directory, topic)
        if not messages:
            return
        data = b"".join([encode(key, value) for key, value in messages])
        try:
            with self._lock:
                writer = self._writers.get(topic)
                if writer is None:
                    writer = self._writers[topic] = TopicWriter.open(files, self.limits.segment_bytes)
                rolled = writer.append(data, len(messages), timeout)
        except OSError as exc:
            raise StreamUnavailable(f"embedded log write failed: {exc}") from exc
        self.retention.maybe(topic, now=rolled)  # after the append lock: other writers go on

    def consumer(
        self, group: str, topics: Sequence[str], *, on_revoke: RevokeHook | None = None
    ) -> EmbeddedConsumer:
        """``on_revoke`` is never called: a consumer of the embedded log reads every partition."""
        return EmbeddedConsumer(self.directory, group, topics, self.retention)

    def close(self) -> None:
        with self._lock:
            for writer in self._writers.values():
                writer.close()
            self._writers.clear()


class EmbeddedConsumer:
    """Reads a group's topics from its committed positions. Commits never move a group backwards."""

    def __init__(
        self, directory: Path, group: str, topics: Sequence[str], retention: Retention | None = None
    ) -> None:
        files = [TopicFiles(directory, topic) for topic in topics]
        self._group = GroupPositions(directory / "groups", group)
        self._stored = self._group.load()
        self._retention = retention
        self._cursors = {
            f.topic: TopicCursor(f, group, self._stored.get(f.topic, Position()), f.topic in self._stored)
            for f in files
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
            records += self._cursors[topic].read(max_records - len(records))
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
            if self._retention is not None:
                self._retention.maybe(topic)

    def close(self) -> None:
        for cursor in self._cursors.values():
            cursor.close()
        self._group.close()
