"""Retention of the embedded log: which closed segments of a topic may go, and deleting them.

A closed segment (one with a newer segment after it) goes once every consumer group that
committed in its topic has committed past its end and its last write is `retention_s` old; a
topic no group has committed in keeps everything. With `retention_bytes`, the oldest closed
segments also go while the topic is larger than that, consumed or not: a warning says how many
records no group had committed. The newest segment, the one written to, always stays.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from alstream.file_lock import FileLock
from alstream.stream.positions import committed_offsets
from alstream.stream.topic import TopicFiles

log = logging.getLogger(__name__)

CHECK_EVERY_S = 5.0


@dataclass(frozen=True, slots=True)
class LogLimits:
    """How large a segment grows and how long closed segments stay (None: no such bound)."""

    segment_bytes: int = 64 * 1024 * 1024
    retention_s: float | None = 60.0
    retention_bytes: int | None = None

    @property
    def can_delete(self) -> bool:
        return self.retention_s is not None or self.retention_bytes is not None


@dataclass(frozen=True, slots=True)
class ClosedSegment:
    """A segment no record will be appended to: offsets `base` to `end` (excluded)."""

    base: int
    end: int
    path: Path
    size: int
    mtime: float


@dataclass(frozen=True, slots=True)
class Deletion:
    """A segment to delete, and how many of its records the slowest group had not committed."""

    segment: ClosedSegment
    unconsumed: int


def plan(
    closed: list[ClosedSegment], active_bytes: int, committed: dict[str, int], limits: LogLimits, now: float
) -> list[Deletion]:
    """The oldest segments of `closed` (oldest first) that `limits` let go; `committed` holds each
    group's next offset in the topic, `active_bytes` the size of the newest segment."""
    consumed = min(committed.values(), default=0)  # no group: nothing is consumed
    total = active_bytes + sum(segment.size for segment in closed)
    deletions = []
    for segment in closed:
        expired = (
            limits.retention_s is not None
            and bool(committed)
            and segment.end <= consumed
            and max(0.0, now - segment.mtime) >= limits.retention_s
        )
        oversized = limits.retention_bytes is not None and total > limits.retention_bytes
        if not (expired or oversized):
            break  # only ever the oldest go: the log keeps no holes
        unconsumed = segment.end - min(max(segment.base, consumed), segment.end)
        deletions.append(Deletion(segment, unconsumed))
        total -= segment.size
    return deletions


def closed_segments(files: TopicFiles) -> tuple[list[ClosedSegment], int]:
    """The topic's closed segments, oldest first, and the size of its newest one."""
    segments = files.segments()
    if not segments:
        return [], 0
    closed = []
    for segment, following in itertools.pairwise(segments):
        stat = os.stat(segment.path)
        closed.append(ClosedSegment(segment.base, following.base, segment.path, stat.st_size, stat.st_mtime))
    return closed, os.stat(segments[-1].path).st_size


class Retention:
    """Applies `limits` to the topics of the log in `root`: now and then (at most once every
    `every_s` per topic), or at once after a roll. One process at a time per topic, never blocking."""

    def __init__(self, root: Path, limits: LogLimits, every_s: float = CHECK_EVERY_S) -> None:
        self.root = root
        self.limits = limits
        self.every_s = every_s
        self._checked: dict[str, float] = {}
        self._mutex = threading.Lock()

    def maybe(self, topic: str, *, now: bool = False) -> None:
        """Enforce the limits on `topic` if it is time (or `now`); errors are only logged, so a
        publish or commit that called it still succeeds."""
        if not self.limits.can_delete:
            return
        clock = time.monotonic()
        if not now and clock - self._checked.get(topic, -math.inf) < self.every_s:
            return
        if not self._mutex.acquire(blocking=False):
            return  # another thread is at it
        try:
            self._checked[topic] = clock
            self.enforce(topic)
        except (OSError, ValueError, KeyError, TypeError) as exc:  # a group file unreadable: keep all
            log.warning("embedded log: retention of topic %r failed, nothing deleted: %r", topic, exc)
        finally:
            self._mutex.release()

    def enforce(self, topic: str) -> list[Deletion]:
        """Delete the segments of `topic` the limits let go (none when another process is at it)."""
        files = TopicFiles(self.root, topic)
        if not files.folder.is_dir():
            return []
        lock = FileLock.open(files.lock_path("retention"))
        try:
            with lock.try_held() as held:
                if not held:
                    return []
                closed, active_bytes = closed_segments(files)
                committed = committed_offsets(self.root / "groups", topic)
                deletions = plan(closed, active_bytes, committed, self.limits, time.time())
                for deletion in deletions:
                    deletion.segment.path.unlink(missing_ok=True)
        finally:
            lock.close()
        if deletions:
            self._report(topic, deletions)
        return deletions

    def _report(self, topic: str, deletions: list[Deletion]) -> None:
        oldest = deletions[-1].segment.end
        freed = sum(deletion.segment.size for deletion in deletions)
        dropped = sum(deletion.unconsumed for deletion in deletions)
        if dropped:
            log.warning(
                "embedded log: dropped %d records of topic %r that a consumer group had not committed: "
                "the topic was over log_retention_bytes (%s); it now starts at offset %d",
                dropped,
                topic,
                self.limits.retention_bytes,
                oldest,
            )
        log.info(
            "embedded log: deleted %d segment(s) of topic %r (%d bytes); it now starts at offset %d",
            len(deletions),
            topic,
            freed,
            oldest,
        )
