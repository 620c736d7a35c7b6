"""Where one topic of the embedded log lies on disk: its segments, oldest first, and lock files.

`topics/<topic>/<base>.log` holds the records from offset `base` (20 digits) up to the next
segment's base; the newest segment is the one written to. A log written before segments existed
has one file, `topics/<topic>.log`: it is read as the first segment (base 0) until retention
deletes it.
"""

from __future__ import annotations

import bisect
import os
import re
from dataclasses import dataclass
from pathlib import Path

from alstream.stream.frames import check_topic
from alstream.stream.segment import fsync_dir

SEGMENT_NAME = re.compile(r"([0-9]{20})\.log")


@dataclass(frozen=True, slots=True)
class Segment:
    """A segment file and the offset of its first record."""

    base: int
    path: Path


class TopicFiles:
    """The paths of one topic's files under the log's folder `root`."""

    def __init__(self, root: Path, topic: str) -> None:
        self.topic = check_topic(topic)
        self.folder = root / "topics" / topic
        self.legacy = root / "topics" / f"{topic}.log"

    def path(self, base: int) -> Path:
        """The segment that starts at offset `base`."""
        return self.folder / f"{base:020d}.log"

    def lock_path(self, name: str) -> Path:
        return self.folder / f"{name}.lock"

    def ensure_folder(self) -> None:
        """Create the topic's folder and `topics/` (the owner's only), durably."""
        for folder in (self.folder.parent, self.folder):
            if not folder.is_dir():
                folder.mkdir(mode=0o700, exist_ok=True)
                fsync_dir(folder.parent)

    def segments(self) -> list[Segment]:
        """The segments there now, oldest first."""
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            names = []
        bases = sorted(int(match[1]) for name in names if (match := SEGMENT_NAME.fullmatch(name)))
        found = [Segment(base, self.path(base)) for base in bases]
        if (not found or found[0].base > 0) and self.legacy.exists():
            found.insert(0, Segment(0, self.legacy))
        return found


def containing(segments: list[Segment], offset: int) -> Segment | None:
    """The segment where record `offset` is (or would be), None when it is older than them all.

    >>> containing([Segment(0, Path("a")), Segment(10, Path("b"))], 10).path
    PosixPath('b')
    """
    index = bisect.bisect_right([segment.base for segment in segments], offset) - 1
    return segments[index] if index >= 0 else None
