"""Leases: who holds which sample until when, served from the engine's latest snapshot.

HTTP handlers write only this (and the stream): the engine's thread owns the pool and publishes
an immutable :class:`~alstream.service.snapshot.Snapshot` here; a request leases from the
snapshot current when it is served. Both change behind one lock, so a sample that left the pool
(labeled, skipped) is never leased again from an older snapshot.

The engine pins what is leased (:meth:`Leases.held`) so that the pool never evicts it; a sample
leased in the moment the engine was evicting it stays leased, and its label still trains the
model (its features come from the store).

Leases are bounded: an annotator holds at most ``max_per_annotator`` items and a token
(``holder``) at most ``max_per_holder``; a lease that ended (expired, released, labeled) is
forgotten, so annotators who went away leave nothing behind.

>>> from alstream.service.pool import PoolView
>>> from alstream.service.snapshot import Snapshot
>>> leases = Leases(Snapshot(queue=PoolView(version=1, ranked=("a", "b", "c"),
...                                         ranked_scores=np.array([0.9, 0.8, 0.7]))))
>>> [t.id for t in leases.take(2, "ann", lease_s=60, now=0.0)[0]]
['a', 'b']
>>> [t.id for t in leases.take(2, "bob", lease_s=60, now=1.0)[0]]  # not hers
['c']
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from alstream.service.pool import PoolView
from alstream.service.snapshot import Snapshot


@dataclass(frozen=True)
class Taken:
    """One leased item: its id, score and why it was chosen."""

    id: str
    score: float
    reason: str  # "uncertainty" or "random"
    version: int  # the model version whose score chose it (0: no model yet)
    cluster: int | None = None  # its pool cluster, when the queue spreads over clusters


@dataclass
class _Lease:
    annotator: str
    holder: str | None
    until: float
    item: Taken


class Leases:
    """The leases and the snapshot they are taken from; thread-safe (one lock)."""

    def __init__(self, snapshot: Snapshot, seed: int = 0) -> None:
        self._snapshot = snapshot
        self._lock = threading.Lock()
        self._rng = np.random.default_rng([seed, 0x1EA5E])  # which requests get random items
        self._leases: dict[str, _Lease] = {}  # sample id -> its lease
        self._by_annotator: dict[str, set[str]] = {}
        self._by_holder: dict[str, set[str]] = {}  # a token's key -> ids leased through it
        self._ends: list[tuple[float, str]] = []  # heap of (lease end, id): finds expired leases
        self._scheduled: dict[str, float] = {}  # id -> its one entry in _ends
        self.short = False  # a request found fewer free items in the snapshot than it wanted

    @property
    def snapshot(self) -> Snapshot:
        """The snapshot published last (one reference: read it once per request)."""
        return self._snapshot

    def publish(self, snapshot: Snapshot, left: Iterable[str] = ()) -> None:
        """Serve from ``snapshot`` from now on; the samples that ``left`` the pool since the last one
        are leased no more."""
        with self._lock:
            self._snapshot, self.short = snapshot, False
            for sample_id in left:
                self._end(sample_id)

    def held(self, now: float | None = None) -> list[str]:
        """The ids leased at ``now`` (the engine pins them in the pool)."""
        with self._lock:
            self._expire(time.monotonic() if now is None else now)
            return list(self._leases)

    def take(
        self,
        n: int,
        annotator: str,
        lease_s: float,
        random_share: float = 0.0,
        now: float | None = None,
        fresh: bool = False,
        holder: str | None = None,
        max_per_annotator: int | None = None,
        max_per_holder: int | None = None,
    ) -> tuple[list[Taken], Snapshot]:
        """Lease the ``n`` most uncertain available samples to ``annotator`` (through ``holder``);
        returns them and the snapshot they came from.

        A share of the items (``random_share``, drawn per item) is picked uniformly at random from
        the reservoir instead, so accuracy can be estimated without the bias of uncertainty sampling.
        Items already leased to this annotator are returned again first, unless ``fresh``: then
        only items she does not hold yet (a page that prefetches asks for more this way). New
        items are leased only while she holds fewer than ``max_per_annotator`` and ``holder``
        fewer than ``max_per_holder`` (None: no cap); so fewer than ``n`` may come back, and none
        while the snapshot says the queue is ``paused``.
        """
        now = time.monotonic() if now is None else now
        with self._lock:
            self._expire(now)
            snapshot = self._snapshot
            if snapshot.paused is not None:
                return [], snapshot
            view = snapshot.queue
            held = self._by_annotator.get(annotator, set())
            mine = [] if fresh else sorted(held, key=lambda i: -self._leases[i].item.score)[:n]
            items = [self._leases[i].item for i in mine]
            wanted = n - len(items)
            if max_per_annotator is not None:
                wanted = min(wanted, max_per_annotator - len(held))
            if max_per_holder is not None and holder is not None:
                wanted = min(wanted, max_per_holder - len(self._by_holder.get(holder, ())))
            wanted = max(wanted, 0)
            n_random = int(self._rng.binomial(wanted, random_share)) if wanted else 0
            items += self._random_free(n_random, view, set(mine))
            items += self._top_free(wanted - (len(items) - len(mine)), view, {t.id for t in items})
            for item in items:
                self._lease(item, annotator, holder, now + lease_s)
            return items, snapshot

    def _random_free(self, k: int, view: PoolView, taken: set[str]) -> list[Taken]:
        """Up to ``k`` free reservoir members drawn uniformly (rejection sampling: no scan)."""
        chosen: dict[str, Taken] = {}
        members = len(view.reservoir)
        for _ in range(50 * k):
            if len(chosen) >= k or not members:
                break
            i = int(self._rng.integers(members))
            sample_id = view.reservoir[i]
            if sample_id not in taken and sample_id not in chosen and sample_id not in self._leases:
                chosen[sample_id] = Taken(sample_id, float(view.reservoir_scores[i]), "random", view.version)
        return list(chosen.values())

    def _top_free(self, k: int, view: PoolView, taken: set[str]) -> list[Taken]:
        """The ``k`` best-scored samples nobody holds, in the view's order."""
        best: list[Taken] = []
        clusters = view.ranked_clusters.tolist() if len(view.ranked_clusters) else None
        for i, sample_id in enumerate(view.ranked):
            if len(best) >= k:
                break
            if sample_id not in taken and sample_id not in self._leases:
                cluster = None if clusters is None else clusters[i]
                best.append(
                    Taken(sample_id, float(view.ranked_scores[i]), "uncertainty", view.version, cluster)
                )
        self.short = self.short or len(best) < k  # the engine publishes a deeper one
        return best

    def release(self, ids: list[str], annotator: str) -> int:
        """Give ``annotator``'s leased items back before their lease ends; returns how many were hers."""
        with self._lock:
            mine = [i for i in ids if i in self._leases and self._leases[i].annotator == annotator]
            for sample_id in mine:
                self._end(sample_id)
            return len(mine)

    def end(self, ids: Iterable[str]) -> None:
        """These leases end now (the items could not be served)."""
        with self._lock:
            for sample_id in ids:
                self._end(sample_id)

    def state(self) -> dict[str, int]:
        """How much lease bookkeeping is held: leases, annotators and holders with one, lease ends."""
        with self._lock:
            return {
                "leases": len(self._leases),
                "annotators": len(self._by_annotator),
                "holders": len(self._by_holder),
                "lease_ends": len(self._ends),
            }

    # --- bookkeeping, under the lock ------------------------------------------------------
    def _lease(self, item: Taken, annotator: str, holder: str | None, until: float) -> None:
        lease = self._leases.get(item.id)
        if lease is None or (lease.annotator, lease.holder) != (annotator, holder):
            self._end(item.id)
            self._leases[item.id] = lease = _Lease(annotator, holder, until, item)
            self._by_annotator.setdefault(annotator, set()).add(item.id)
            if holder is not None:
                self._by_holder.setdefault(holder, set()).add(item.id)
        lease.until = until
        due = self._scheduled.get(item.id)
        if due is None or due > until:  # a renewal keeps its entry: it moves when it comes up (_expire)
            self._scheduled[item.id] = until
            heapq.heappush(self._ends, (until, item.id))

    def _end(self, sample_id: str) -> None:
        """Forget a lease, and its annotator and holder once they hold nothing (its heap entry goes
        when it comes up)."""
        lease = self._leases.pop(sample_id, None)
        if lease is None:
            return
        for index, key in ((self._by_annotator, lease.annotator), (self._by_holder, lease.holder)):
            if key is None:
                continue
            ids = index.get(key)
            if ids is not None:
                ids.discard(sample_id)
                if not ids:
                    del index[key]

    def _expire(self, now: float) -> None:
        """Forget the leases that ended by ``now``; a renewed one is looked at again at its new end."""
        ends = self._ends
        while ends and ends[0][0] <= now:
            due, sample_id = heapq.heappop(ends)
            if self._scheduled.get(sample_id) != due:  # an entry replaced by a sooner one
                continue
            lease = self._leases.get(sample_id)
            if lease is not None and lease.until > now:
                self._scheduled[sample_id] = lease.until
                heapq.heappush(ends, (lease.until, sample_id))
            else:
                self._end(sample_id)
                del self._scheduled[sample_id]
