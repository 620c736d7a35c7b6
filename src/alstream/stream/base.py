"""The stream interface: publish batches durably, consume them per group, commit what was handled."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from alstream.errors import StreamUnavailable

Message = tuple[bytes | None, bytes]
"""One message to publish: (key, value)."""

RevokeHook = Callable[[frozenset[tuple[str, int]], bool], None]
"""Called with the (topic, partition) pairs a consumer group takes away from a member, and whether
they were lost (the group gave them away already: the member was thought dead) rather than revoked
(no other member gets them before the hook returns). It runs on the polling thread, inside ``poll``,
and may block until the caller let go of them."""


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed message and where it sits in the stream."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None  # None: a message without a value (a tombstone)


class Consumer(Protocol):
    """Reads a group's topics from its committed position; one thread at a time."""

    def poll(self, max_records: int = 1000, timeout: float = 1.0) -> list[Record]:
        """Up to `max_records` new records, waiting up to `timeout` seconds when there are none."""
        ...

    def commit(self, records: Sequence[Record]) -> None:
        """Synchronously commit the position after the highest offset per (topic, partition)."""
        ...

    def close(self) -> None: ...


class Stream(Protocol):
    """A durable, ordered message stream with consumer groups."""

    def publish(self, topic: str, messages: Sequence[Message], timeout: float = 10.0) -> None:
        """Return only once every message is durable (embedded: fsynced; Kafka: acknowledged by all
        in-sync replicas). On failure raise StreamUnavailable: some messages may have been written,
        so consumers must be idempotent by message id."""
        ...

    def consumer(self, group: str, topics: Sequence[str], *, on_revoke: RevokeHook | None = None) -> Consumer:
        """A member of ``group`` reading ``topics``; ``on_revoke``: see :data:`RevokeHook`."""
        ...

    def close(self) -> None: ...


def next_positions(records: Sequence[Record]) -> dict[tuple[str, int], int]:
    """The offset after the highest one per (topic, partition): what a commit stores."""
    positions: dict[tuple[str, int], int] = {}
    for record in records:
        key = (record.topic, record.partition)
        positions[key] = max(positions.get(key, 0), record.offset + 1)
    return positions


__all__ = ["Consumer", "Message", "Record", "Stream", "StreamUnavailable", "next_positions"]
