"""Record framing for the embedded log: [length][crc32][key length][key][value], big-endian.

`length` counts the bytes the CRC covers: the 4-byte key length (-1 for no key), key and value.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterator

HEADER = struct.Struct(">II")
KEY_LENGTH = struct.Struct(">i")
HEADER_SIZE = HEADER.size
MAX_BODY = 256 * 1024 * 1024
TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")


def check_topic(topic: str) -> str:
    """Kafka's rule for topic names, so both implementations accept the same ones."""
    if not TOPIC_NAME.fullmatch(topic) or topic in {".", ".."}:
        raise ValueError(f"invalid topic name {topic!r}: use 1-249 of [A-Za-z0-9._-]")
    return topic


def encode(key: bytes | None, value: bytes) -> bytes:
    """One framed record."""
    body = KEY_LENGTH.pack(-1 if key is None else len(key)) + (key or b"") + value
    return HEADER.pack(len(body), zlib.crc32(body)) + body


def iter_frames(buf: bytes, start: int = 0) -> Iterator[tuple[int, int]]:
    """(body start, frame end) of each complete, valid frame from `start`; stops at the first that
    is incomplete or corrupt (a write in progress or a torn tail)."""
    view = memoryview(buf)
    size = len(buf)
    pos = start
    while pos + HEADER_SIZE <= size:
        length, crc = HEADER.unpack_from(buf, pos)
        body = pos + HEADER_SIZE
        end = body + length
        if length < KEY_LENGTH.size or length > MAX_BODY or end > size:
            return
        if zlib.crc32(view[body:end]) != crc:
            return
        yield body, end
        pos = end


def frame_size_at(buf: bytes, start: int) -> int:
    """The full size the frame at `start` claims, or 0 when its header is incomplete or absurd."""
    if start + HEADER_SIZE > len(buf):
        return 0
    length = HEADER.unpack_from(buf, start)[0]
    return HEADER_SIZE + length if KEY_LENGTH.size <= length <= MAX_BODY else 0


def decode(buf: bytes, body: int, end: int) -> tuple[bytes | None, bytes]:
    """The (key, value) of a frame found by `iter_frames`."""
    key_length = KEY_LENGTH.unpack_from(buf, body)[0]
    start = body + KEY_LENGTH.size
    if key_length < 0:
        return None, buf[start:end]
    return buf[start : start + key_length], buf[start + key_length : end]
