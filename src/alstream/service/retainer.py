"""Retention on a thread of its own, beside the engine's.

Deleting is mostly the database's work, which runs without the GIL: on a thread of its own it
overlaps the engine's (reading arrivals, admitting them, training) instead of taking turns with it.
The thread owns the :class:`~alstream.service.retention.Retention`; what it needs of the engine's
state, the pool's seqs, it asks for through a :class:`PoolSeqs` mailbox, which the engine's thread
answers between two steps with a copy (the pool is never read from another thread). The last seq
the engine followed is one int, read as it is: the pool's seqs, taken later, answer for it.

>>> seqs, asked = PoolSeqs(), []
>>> retention = threading.Thread(target=lambda: asked.append(seqs.ask(threading.Event())))
>>> retention.start()
>>> while not asked:  # the engine's loop, between its steps
...     seqs.hand(lambda: np.array([3, 1]))
>>> retention.join(); asked[0].tolist()
[3, 1]
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from alstream.errors import ShardFenced
from alstream.service.retention import Retention

log = logging.getLogger(__name__)

ASK_WAIT_S = 0.5  # how often a wait for the pool's seqs looks whether the service stops


class Stopped(Exception):
    """The service stops while retention waits for the pool's seqs: the step is abandoned."""


class PoolSeqs:
    """The pool's seqs, asked for by retention's thread and handed by the engine's."""

    def __init__(self) -> None:
        self._wanted = threading.Event()
        self._ready = threading.Event()
        self._seqs = np.empty(0, dtype=np.int64)

    def ask(self, stop: threading.Event) -> np.ndarray:
        """The pool's seqs as the engine's thread takes them next (retention's thread); raises
        Stopped when ``stop`` is set first."""
        self._ready.clear()
        self._wanted.set()
        while not self._ready.wait(ASK_WAIT_S):
            if stop.is_set():
                raise Stopped
        return self._seqs

    def hand(self, take: Callable[[], np.ndarray]) -> None:
        """When asked, hand a copy of the pool's seqs (``take``: the engine's thread, between steps)."""
        if self._wanted.is_set():
            self._wanted.clear()
            self._seqs = np.array(take(), dtype=np.int64)
            self._ready.set()


class Retainer:
    """Runs ``retention``'s steps on the store every ``every_s`` (at once while it is behind) until
    stopped; ``followed``: the last seq the engine followed."""

    def __init__(
        self,
        retention: Retention,
        store: Any,
        followed: Callable[[], int],
        seqs: PoolSeqs,
        every_s: float,
    ) -> None:
        self.retention, self.store, self.followed = retention, store, followed
        self.seqs, self.every_s = seqs, every_s

    def run(self, stop: threading.Event) -> None:
        retention = self.retention
        while not stop.is_set():
            try:
                retention.step(self.store, self.followed(), lambda: self.seqs.ask(stop))
            except Stopped:
                return
            except ShardFenced as error:
                log.warning("%s: retention deleted nothing", error)
            except Exception:  # the store is down or busy: the next step goes on from where this one was
                log.exception("retention could not delete old samples; it tries again")
            if not retention.hurried:
                stop.wait(self.every_s)
