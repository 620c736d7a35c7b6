"""Where a consumer group reads one topic of the embedded log, from segment to segment."""

from __future__ import annotations

import logging
from array import array

from alstream.stream.base import Record
from alstream.stream.positions import Position
from alstream.stream.segment import SegmentReader
from alstream.stream.topic import TopicFiles, containing

log = logging.getLogger(__name__)
OPEN_TRIES = 3


class Delivered:
    """The byte end of each record handed out and not committed yet, by offset: runs of
    consecutive offsets (a new run where deleted records were skipped)."""

    def __init__(self) -> None:
        self._runs: list[tuple[int, array]] = []

    def add(self, first: int, ends: list[int]) -> None:
        if self._runs and self._runs[-1][0] + len(self._runs[-1][1]) == first:
            self._runs[-1][1].extend(ends)
        else:
            self._runs.append((first, array("q", ends)))

    def end_of(self, offset: int) -> int:
        for first, ends in self._runs:
            if first <= offset < first + len(ends):
                return ends[offset - first]
        raise ValueError(f"offset {offset} was not delivered by this consumer")

    def forget_before(self, offset: int) -> None:
        runs = []
        for first, ends in self._runs:
            if first + len(ends) > offset:
                cut = max(0, offset - first)
                del ends[:cut]
                runs.append((first + cut, ends))
        self._runs = runs


class TopicCursor:
    """Reads `files` for `group` from `committed` (`stored`: whether the group committed there),
    moving into each newer segment once it exists, to the oldest one left when records were
    deleted before the group read them."""

    def __init__(self, files: TopicFiles, group: str, committed: Position, stored: bool) -> None:
        self.files = files
        self.group = group
        self.committed = committed
        self.stored = stored
        self.next = committed
        self.delivered = Delivered()
        self._reader: SegmentReader | None = None

    def read(self, limit: int) -> list[Record]:
        if self._reader is None and not self._open():
            return []
        assert self._reader is not None
        frames = self._reader.read(self.next.byte, limit)
        if not frames and self._move_on():
            frames = self._reader.read(self.next.byte, limit)
        if not frames:
            return []
        offset, topic = self.next.offset, self.files.topic
        records = [Record(topic, 0, offset + i, key, value) for i, (key, value, _) in enumerate(frames)]
        self.delivered.add(offset, [end for _, _, end in frames])
        self.next = Position(offset + len(frames), frames[-1][2])
        return records

    def _open(self) -> bool:
        """Open the segment that holds `next`, or the oldest one when that one is gone."""
        for _ in range(OPEN_TRIES):  # a segment may be deleted between listing and opening
            segments = self.files.segments()
            if not segments:
                return False
            segment = containing(segments, self.next.offset)
            if segment is None:
                segment = segments[0]
                self._skip_to(segment.base)
            try:
                self._reader = SegmentReader.open(segment.path, segment.base)
            except FileNotFoundError:
                continue
            if self.next.offset == segment.base:
                self.next = Position(segment.base, 0)
            return True
        return False

    def _move_on(self) -> bool:
        """At the end of the segment read: into the next one once it exists, or anew (from the
        oldest left) when this one was deleted. False: nothing more to read yet."""
        assert self._reader is not None
        if not self.files.path(self.next.offset).exists() and self._reader.path.exists():
            return False  # still the newest segment
        # It takes no more records now, but some may have come just before the next one began.
        if self._reader.read(self.next.byte, 1):
            return True
        self.close()
        return self._open()

    def _skip_to(self, base: int) -> None:
        if self.stored or self.next.offset > 0:
            log.warning(
                "embedded log: group %r had not read offsets %d to %d of topic %r before they were "
                "deleted (log_retention_bytes); it resumes at offset %d, the oldest left",
                self.group,
                self.next.offset,
                base - 1,
                self.files.topic,
                base,
            )
        else:
            log.info(
                "embedded log: group %r starts topic %r at offset %d, the oldest left",
                self.group,
                self.files.topic,
                base,
            )
        self.next = Position(base, 0)

    def position_after(self, offset: int) -> Position:
        """The committed position that follows delivered record `offset`."""
        return Position(offset + 1, self.delivered.end_of(offset))

    def mark_committed(self, position: Position) -> None:
        self.delivered.forget_before(position.offset)
        self.committed = position

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
