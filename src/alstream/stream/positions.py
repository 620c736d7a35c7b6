"""A consumer group's committed positions, stored in one small file replaced atomically."""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from alstream.errors import ConsumerBusy
from alstream.stream.segment import fsync_dir


@dataclass(frozen=True, slots=True)
class Position:
    """The next offset to read in a topic and the byte position where its record starts in its
    segment (a reader starts a segment whose base is `offset` at byte 0, whatever `byte` says:
    the position may have been taken at the end of the segment before)."""

    offset: int = 0
    byte: int = 0


class GroupPositions:
    """`<dir>/<group>.json`, plus a `<group>.lock` that keeps a second consumer of the group out."""

    def __init__(self, directory: Path, group: str) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._dir = directory
        name = quote(group, safe="")
        self._path = directory / f"{name}.json"
        self._lock_fd = os.open(directory / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise ConsumerBusy(f"consumer group {group!r} already has a consumer on this log") from None

    def load(self) -> dict[str, Position]:
        try:
            raw = json.loads(self._path.read_bytes())
        except FileNotFoundError:
            return {}
        return {topic: Position(p["offset"], p["byte"]) for topic, p in raw.items()}

    def save(self, positions: dict[str, Position]) -> None:
        """Write to a temporary file, fsync it, rename it over the old one, fsync the folder."""
        data = json.dumps({t: {"offset": p.offset, "byte": p.byte} for t, p in positions.items()})
        tmp = self._path.with_name(f"{self._path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self._path)
        fsync_dir(self._dir)

    def close(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


def committed_offsets(directory: Path, topic: str) -> dict[str, int]:
    """The next offset each group committed in `topic`, for the groups that committed there (read
    without their locks: each file is replaced whole)."""
    offsets = {}
    for path in directory.glob("*.json"):
        try:
            raw = json.loads(path.read_bytes())
        except FileNotFoundError:
            continue
        if topic in raw:
            offsets[unquote(path.stem)] = int(raw[topic]["offset"])
    return offsets
