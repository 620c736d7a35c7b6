"""Retention: the store does not grow forever either.

An unlabeled sample is deleted from the store once it arrived over ``retention_s`` ago and is not
in the pool (it lost its place, or never won one); a sample still in the pool then is deleted when
it leaves. Labeled samples and every label event are kept forever. The work is done in bounded
batches, each delete a short transaction of its own, so ingestion never waits long behind it; only
samples the engine has followed are looked at, so none is deleted before the pool had its chance;
and never the newest of them: SQLite would give its seq to the next sample, which the engine,
following the store by seq, would never see.

The engine's thread alone calls :meth:`Retention.step`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

BATCH = 20_000  # samples looked at per store query, deleted in one statement (but the pool's)
STEP_BUDGET_S = 0.25  # a step stops after this long; the next one goes on
MIN_BATCH = 256
REFRESH_S = 5.0  # how long the pool's sorted seqs serve at most (a tenth of retention_s if less)
MAX_KEEP = 10_000  # pool members named in one delete statement (a range with more is split)


class Retention:
    """Looks at the stored samples in arrival order, once each; remembers the ones the pool held."""

    def __init__(self, retention_s: float, batch: int = BATCH) -> None:
        self.retention_s, self.batch = retention_s, batch
        self.looked_at = 0  # the samples up to this seq have been looked at
        self._kept = np.empty(0, dtype=np.int64)  # looked at while in the pool: deleted once they leave it
        self.deleted = 0
        self._limit = batch  # rows read per query: twice what the last one found due, within bounds
        self._inside: np.ndarray | None = None  # the pool's seqs, sorted (O(pool log pool): not every step)
        self._inside_upto = 0  # the last seq followed when they were taken
        self._inside_at = 0.0
        self.behind = False  # the last step ran out of time with more due: the next should come soon

    def step(
        self,
        store: Any,
        followed: int,
        pool_seqs: np.ndarray | Callable[[], np.ndarray],
        now: datetime | None = None,
    ) -> int:
        """Delete what is due, up to ``followed`` (the last seq the pool has seen), the pool holding
        ``pool_seqs``; returns how many samples were deleted.

        ``pool_seqs`` may be a function: then what it returns is sorted once every ``REFRESH_S`` and
        serves until then, for the samples followed when it was taken (a sample followed later may
        be in the pool: it waits for the next); a sample that left the pool since waits too.
        """
        cutoff = (now or datetime.now(UTC)) - timedelta(seconds=self.retention_s)
        if callable(pool_seqs):
            refresh = min(REFRESH_S, self.retention_s / 10)  # a short retention is not held back long
            if self._inside is None or time.monotonic() - self._inside_at >= refresh:
                self._inside, self._inside_upto, self._inside_at = (
                    np.sort(pool_seqs()),
                    followed,
                    time.monotonic(),
                )
            inside, followed = self._inside, min(followed, self._inside_upto)
        else:
            inside = np.sort(pool_seqs)
        deleted = 0
        if len(self._kept):  # they were in the pool when looked at: those that left it go now
            held = _member(self._kept, inside)
            deleted += store.delete_unlabeled(self._kept[~held].tolist())
            self._kept = self._kept[held]
        started, self.behind = time.monotonic(), False
        while True:  # a batch at least, then batches until the time is spent (more due: behind)
            head, old = store.arrivals_after(self.looked_at, cutoff, 1)  # one row: is anything due?
            if not len(head) or not old[0] or head[0] >= followed:
                break
            limit = self._limit
            seqs, old = store.arrivals_after(self.looked_at, cutoff, limit)
            full = len(seqs) == limit
            due = old & (seqs < followed)  # the newest followed stays: SQLite gives a deleted last seq again
            if not due.all():  # stop at the first sample not due: the rest arrived later
                seqs, full = seqs[: int(np.argmin(due))], False
            self._limit = min(self.batch, max(MIN_BATCH, 2 * len(seqs)))  # about what comes due a step
            if not len(seqs):
                break
            self.looked_at = int(seqs[-1])
            held = _member(seqs, inside)
            self._kept = np.concatenate([self._kept, seqs[held]])
            deleted += _delete_range(store, seqs, held, cutoff)
            if not full:
                break
            if time.monotonic() - started >= STEP_BUDGET_S:
                self.behind = True
                break
        self.deleted += deleted
        return deleted

    def state(self) -> dict[str, Any]:
        return {
            "retention_s": self.retention_s,
            "deleted": self.deleted,
            "waiting_to_leave_pool": len(self._kept),
        }


def _delete_range(store: Any, seqs: np.ndarray, held: np.ndarray, before: datetime) -> int:
    """Delete the unlabeled samples of ``seqs`` (sorted, consecutive in the store) arrived before
    ``before``, but those ``held`` in the pool, in ranges of few exceptions."""
    deleted = 0
    for part in np.array_split(np.arange(len(seqs)), max(1, -(-int(held.sum()) // MAX_KEEP))):
        if len(part):
            rows = seqs[part]
            deleted += store.delete_unlabeled_between(rows[0], rows[-1], before, rows[held[part]].tolist())
    return deleted


def _member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Which ``values`` are in ``sorted_set``."""
    if not len(sorted_set):
        return np.zeros(len(values), dtype=bool)
    where = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[where] == values
