"""The ids alstream gives samples that arrive without one: in arrival order, not random.

The store keeps a unique index on sample ids. A random id (a uuid4) lands on a random page of
that index, so every insert and every retention delete writes a page of its own: at two million
stored samples SQLite spends about seven times longer per sample than on ids that follow each
other (``bench/store_ids_bench.py``). So the ids made here sort in the order they are made:

* :func:`ordered_id` (``/send`` without an id or an ``Idempotency-Key``): a UUIDv7 (RFC 9562) in
  hex, the milliseconds since 1970 first, then random bits;
* :func:`stream_id` (a stream message without an id): the message's place in the stream, the
  offset in 12 digits so that ids sort as offsets do; a batch replayed after a crash finds the same
  ids again, so the store keeps each sample once.

>>> a, b = ordered_id(), ordered_id()
>>> len(a), a[12], a[:8] <= b[:8]
(32, '7', True)
>>> stream_id("alstream.samples", 3, 1200)
'alstream.samples:3:000000001200'
"""

from __future__ import annotations

import os
import time

_VERSION = 0x7 << 76  # UUIDv7: the version nibble after the 48-bit time
_VARIANT = 0b10 << 62  # RFC 9562's variant bits


def ordered_id() -> str:
    """A new UUIDv7 as 32 hex digits: the time in milliseconds, then 74 random bits."""
    random = int.from_bytes(os.urandom(10), "big")  # 80 bits: 12 for rand_a, 62 for rand_b, 6 spare
    rand_a, rand_b = (random >> 62) & 0xFFF, random & ((1 << 62) - 1)
    return f"{(time.time_ns() // 1_000_000) << 80 | _VERSION | rand_a << 64 | _VARIANT | rand_b:032x}"


def stream_id(topic: str, partition: int, offset: int) -> str:
    """The id of the message at ``offset`` of ``topic``'s ``partition``."""
    return f"{topic}:{partition}:{offset:012d}"
