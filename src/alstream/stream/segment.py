"""One segment file of a topic: a writer that appends fsynced batches, a lock-free reader.

The topic's writer (`alstream.stream.writer`) holds the topic's lock around every append.
"""

from __future__ import annotations

import os
from pathlib import Path

from alstream.stream.frames import decode, frame_size_at, iter_frames

READ_CHUNK = 256 * 1024
SCAN_CHUNK = 4 * 1024 * 1024


def fsync_dir(directory: Path) -> None:
    """Make a file's creation or rename in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_frames(fd: int, position: int, size: int, limit: int) -> list[tuple[bytes | None, bytes, int]]:
    """Up to `limit` valid (key, value, end position) records between `position` and `size`."""
    out: list[tuple[bytes | None, bytes, int]] = []
    want = READ_CHUNK
    while len(out) < limit and position < size:
        buf = os.pread(fd, min(size - position, want), position)
        consumed = 0
        for body, end in iter_frames(buf):
            key, value = decode(buf, body, end)
            out.append((key, value, position + end))
            consumed = end
            if len(out) >= limit:
                break
        if consumed:
            position += consumed
            want = READ_CHUNK
            continue
        needed = frame_size_at(buf, 0)
        if needed <= len(buf) or position + needed > size:
            break  # corrupt or incomplete: a torn tail or a write in progress
        want = needed  # one frame larger than the chunk
    return out


def scan(fd: int, position: int, size: int) -> tuple[int, int]:
    """(the byte position after the last valid record from `position`, how many records that is),
    without decoding them."""
    want = SCAN_CHUNK
    count = 0
    while position < size:
        buf = os.pread(fd, min(size - position, want), position)
        consumed = 0
        for _, end in iter_frames(buf):
            consumed = end
            count += 1
        if consumed:
            position += consumed
            want = SCAN_CHUNK
            continue
        needed = frame_size_at(buf, 0)
        if needed <= len(buf) or position + needed > size:
            break
        want = needed
    return position, count


class SegmentReader:
    """Reads one segment, which a writer in another process may be appending to."""

    def __init__(self, fd: int, path: Path, base: int) -> None:
        self._fd = fd
        self.path = path
        self.base = base

    @classmethod
    def open(cls, path: Path, base: int) -> SegmentReader:
        """The reader of segment `path` (FileNotFoundError when it is gone)."""
        return cls(os.open(path, os.O_RDONLY), path, base)

    def read(self, position: int, limit: int) -> list[tuple[bytes | None, bytes, int]]:
        return read_frames(self._fd, position, os.fstat(self._fd).st_size, limit)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class SegmentWriter:
    """Appends framed batches to one segment and fsyncs them; truncates a torn tail first.

    `end` and `records` are what this writer knows of the segment; `catch_up` adds what other
    processes appended. Only call it with the topic's lock held."""

    def __init__(self, fd: int, path: Path, base: int) -> None:
        self._fd = fd
        self.path = path
        self.base = base
        self.end = 0
        self.records = 0

    @classmethod
    def open(cls, path: Path, base: int) -> SegmentWriter:
        """The writer of segment `path`, created (durably) when it does not exist."""
        existed = path.exists()
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        if not existed:
            fsync_dir(path.parent)
        return cls(fd, path, base)

    def catch_up(self) -> None:
        """Count the records other writers appended; cut off whatever invalid bytes follow them."""
        size = os.fstat(self._fd).st_size
        self.end, added = scan(self._fd, self.end, size)
        self.records += added
        if size > self.end:
            os.ftruncate(self._fd, self.end)

    def append(self, data: bytes, records: int) -> None:
        """Write `data` (`records` whole frames) after the valid records, durably."""
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        os.fsync(self._fd)
        self.end += len(data)
        self.records += records

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
