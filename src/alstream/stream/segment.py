"""One topic's append-only segment file: a locked, fsynced writer and a lock-free reader."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from alstream.stream.base import StreamUnavailable
from alstream.stream.frames import decode, frame_size_at, iter_frames

READ_CHUNK = 256 * 1024
SCAN_CHUNK = 4 * 1024 * 1024
LOCK_STEP = 0.005


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


def valid_end(fd: int, position: int, size: int) -> int:
    """The byte position after the last valid record from `position`, without decoding records."""
    want = SCAN_CHUNK
    while position < size:
        buf = os.pread(fd, min(size - position, want), position)
        consumed = 0
        for _, end in iter_frames(buf):
            consumed = end
        if consumed:
            position += consumed
            want = SCAN_CHUNK
            continue
        needed = frame_size_at(buf, 0)
        if needed <= len(buf) or position + needed > size:
            break
        want = needed
    return position


class SegmentReader:
    """Reads a segment that another process may be appending to; never takes the lock."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    def read(self, position: int, limit: int) -> list[tuple[bytes | None, bytes, int]]:
        if self._fd is None:
            try:
                self._fd = os.open(self._path, os.O_RDONLY)
            except FileNotFoundError:
                return []
        return read_frames(self._fd, position, os.fstat(self._fd).st_size, limit)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class SegmentWriter:
    """Appends framed batches under an exclusive flock and fsyncs them; truncates a torn tail."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        existed = path.exists()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        if not existed:
            fsync_dir(path.parent)
        self._end = 0  # byte position after the last valid record known to this writer

    def append(self, data: bytes, timeout: float) -> None:
        """Write `data` (whole frames) at the end of the valid records, durably."""
        self._lock(timeout)
        try:
            self._catch_up()
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)
            self._end += len(data)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _lock(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StreamUnavailable("embedded log is locked by another writer") from None
                time.sleep(LOCK_STEP)

    def _catch_up(self) -> None:
        """Skip records other writers appended; cut off whatever invalid bytes follow them."""
        size = os.fstat(self._fd).st_size
        self._end = valid_end(self._fd, self._end, size)
        if size > self._end:
            os.ftruncate(self._fd, self._end)

    def close(self) -> None:
        os.close(self._fd)
