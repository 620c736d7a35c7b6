"""The engine's state as readers see it: one immutable snapshot, swapped whole.

The engine's thread alone writes the pool, the labels and the model versions. After each change
it makes a :class:`Snapshot` (the queue's order and scores, the version that serves, the numbers
``/stats`` shows) and publishes it by swapping one reference
(:meth:`~alstream.service.leases.Leases.publish`). ``/queue``, ``/predict``, ``/health`` and
``/stats`` read the snapshot of the moment, whole, so they always name the same model version.

>>> snapshot = Snapshot(random_share=0.1, boost_share=0.3, boost_until=100.0)
>>> snapshot.share(now=50.0), snapshot.share(now=150.0)  # raised after a drift, for a while
(0.3, 0.1)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from alstream.service.pool import PoolView
from alstream.service.trainer import ModelVersion


@dataclass(frozen=True)
class Snapshot:
    """What the engine published last; never changed once made."""

    queue: PoolView = field(default_factory=PoolView)
    serving: ModelVersion | None = None  # the version whose scores order the queue
    random_share: float = 0.0  # of the queue, drawn from the reservoir
    boost_share: float = 0.0  # the random share until ``boost_until`` (monotonic time), after a drift
    boost_until: float = 0.0
    boost_ends_at: float = 0.0  # ``boost_until`` in Unix time, as other processes are told
    stats: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    paused: str | None = None  # why the queue serves nothing (pause_when_stable); None: it serves
    # per model version: (accuracy on its random items, how many)
    accuracy_by_version: Mapping[int, tuple[float, int]] = field(default_factory=lambda: MappingProxyType({}))

    def share(self, now: float) -> float:
        """The queue's random share at ``now`` (monotonic time)."""
        return max(self.random_share, self.boost_share) if now < self.boost_until else self.random_share
