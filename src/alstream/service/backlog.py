"""Retention's backlog read from the store, for a consumer in a process of its own.

``alstream serve`` holds its consumer on the engine's own count (``Engine.store_behind``). A
consumer apart (``alstream consume``) cannot read the engine's memory, so it asks the store: of the
samples stored longer than ``retention_s``, the pool keeps at most ``max_pool`` and a label keeps
the labeled ones forever; the rest are retention's backlog. Beyond ``max_overdue`` the consumer
waits (the stream keeps what comes meanwhile). The figure never exceeds the engine's, so a consumer
apart waits no sooner than the engine's own would, and the store stays within ``retention_s`` of
arrivals, the pool, the labeled samples and ``max_overdue``.

>>> from datetime import datetime, timedelta, UTC
>>> class Store:  # 130 samples past retention, 10 of them labeled
...     def count_arrived_before(self, before): return 130
...     def count_labeled_samples(self): return 10
>>> backlog = Backlog(Store(), retention_s=60, max_pool=100, max_overdue=15)
>>> backlog.behind(), backlog.overdue
(True, 20)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

CHECK_S = 5.0  # how often the store is counted, at most (a count reads the key by bisection, then counts)


class CountingStore(Protocol):
    def count_arrived_before(self, before: datetime) -> int: ...

    def count_labeled_samples(self) -> int: ...


class Backlog:
    """Whether the samples retention has yet to delete exceed ``max_overdue``; one thread calls it."""

    def __init__(
        self,
        store: CountingStore,
        *,
        retention_s: float,
        max_pool: int,
        max_overdue: int,
        check_s: float = CHECK_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store, self.retention_s, self.max_pool, self.max_overdue = (
            store,
            retention_s,
            max_pool,
            max_overdue,
        )
        self.check_s, self.clock = check_s, clock
        self.overdue = 0  # as last counted
        self._checked = -float("inf")

    def behind(self) -> bool:
        """Whether the consumer should wait (the store is counted again at most every ``check_s``)."""
        now = self.clock()
        if now - self._checked >= self.check_s:
            self._checked = now
            due = self.store.count_arrived_before(datetime.now(UTC) - timedelta(seconds=self.retention_s))
            self.overdue = max(0, due - self.max_pool - self.store.count_labeled_samples())
        return self.overdue > self.max_overdue
