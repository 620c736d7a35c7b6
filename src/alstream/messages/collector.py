"""The cyclic garbage collector paused while a batch is checked.

Checking a batch of 5,000 samples makes ~2 x 10^4 containers (pydantic's models, their dicts, the
features' lists) that live until the batch's values are made. The collector's passes meanwhile find
no garbage (they are freed by reference counting either way) but scan them, and promote them to
older generations whose passes scan the whole heap: with it running, ``/send``'s checks cost about
twice their CPU time (``bench/validation_bench.py``).

>>> import gc
>>> with paused():
...     gc.isenabled()
False
>>> gc.isenabled()
True
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused() -> Iterator[None]:
    """The collector off for the block, if it was on (threads that nest it leave it on at the end)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


__all__ = ["paused"]
