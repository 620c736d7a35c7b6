"""A topic's writer: appends to the newest segment under the topic's lock, rolls past a size."""

from __future__ import annotations

from pathlib import Path

from alstream.file_lock import FileLock
from alstream.stream.segment import SegmentWriter
from alstream.stream.topic import TopicFiles


class TopicWriter:
    """Appends batches to a topic's newest segment, beginning a new one once it holds
    `segment_bytes` (a batch is never split, so a segment may end up larger).

    Every append holds the topic's flock: several processes may publish to one log, and each
    first looks for a segment another one began."""

    def __init__(self, files: TopicFiles, segment_bytes: int, lock: FileLock) -> None:
        self._files = files
        self._segment_bytes = segment_bytes
        self._lock = lock
        self._active: SegmentWriter | None = None

    @classmethod
    def open(cls, files: TopicFiles, segment_bytes: int) -> TopicWriter:
        files.ensure_folder()
        return cls(files, segment_bytes, FileLock.open(files.lock_path("append")))

    def append(self, data: bytes, records: int, timeout: float) -> bool:
        """Write `records` whole frames durably; True when a new segment was begun for them."""
        with self._lock.held(timeout):
            active = self._newest()
            rolled = active.records > 0 and active.end >= self._segment_bytes
            if rolled:
                base = active.base + active.records
                active = self._switch(self._files.path(base), base)
            active.append(data, records)
        return rolled

    def _newest(self) -> SegmentWriter:
        """The newest segment (perhaps begun by another process), caught up with its records."""
        segments = self._files.segments()
        path, base = (segments[-1].path, segments[-1].base) if segments else (self._files.path(0), 0)
        active = self._active
        if active is None or active.path != path:
            active = self._switch(path, base)
        active.catch_up()
        return active

    def _switch(self, path: Path, base: int) -> SegmentWriter:
        if self._active is not None:
            self._active.close()
        self._active = SegmentWriter.open(path, base)
        return self._active

    def close(self) -> None:
        if self._active is not None:
            self._active.close()
            self._active = None
        self._lock.close()
