"""Retention: the store does not grow forever either.

An unlabeled sample is deleted from the store once it arrived over ``retention_s`` ago and is not
in the pool (it lost its place, or never won one); a sample still in the pool then is deleted when
it leaves. Labeled samples and every label event are kept forever. The work is done in bounded
batches, each delete a short transaction of its own, so ingestion never waits long behind it; only
samples the engine has followed are looked at, so none is deleted before the pool had its chance;
and never the newest of them: SQLite would give its seq to the next sample, which the engine,
following the store by seq, would never see. No row is read back to do it: the database finds
where the samples not yet due begin, and the pool's own seqs name the ones it holds.

The samples that leave the pool after they were looked at lie scattered over the table, a few to
each page; deleted as they leave, each costs a page of its own (about 20 us and 4 kB of WAL per
row, against 2 us for one of a range). So they are gathered and deleted together, in seq order,
once they number ``LEFT_SHARE`` of the pool, or ``LEFT_MAX_S`` after the first of them left:
several to a page (bench: 8 us a row at three to a page). The store holds that many more rows.

When deleting falls behind what comes due (``overdue``: samples past ``retention_s`` not looked at
yet), the store grows: a step then takes longer (:func:`step_budget`), and past
``retention_max_overdue`` the engine asks the consumer to wait, the stream keeping the samples
meanwhile.

One thread calls :meth:`Retention.step`: the engine's, or in its loop retention's own
(:mod:`alstream.service.retainer`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

BATCH = 20_000  # seqs looked at per delete statement (but the pool's)
STEP_BUDGET_S = 0.25  # a step stops after this long; the next one goes on
CATCH_UP = 4.0  # while behind by many ranges, a step may take up to this many budgets
REFRESH_S = 5.0  # how long the pool's sorted seqs serve at most (a tenth of retention_s if less)
MAX_KEEP = 10_000  # pool members named in one delete statement (a range with more is split)
MARKS = 1_000  # (time, seq followed) marks kept to tell how far behind retention is
LEFT_SHARE = 0.125  # pool leavers gathered before they are deleted together, as a share of the pool
LEFT_MAX_S = 60.0  # ... or how long the first of them waits, at most
LEFT_CHUNK = 10_000  # leavers deleted in one call (the store's own transactions are shorter)


class Retention:
    """Looks at the stored samples in arrival order, once each; remembers the ones the pool held.

    ``overdue`` is how many samples arrived over ``retention_s`` ago and are not looked at yet: the
    store is that much bigger than retention wants it (the consumer waits when it is too much).
    """

    def __init__(self, retention_s: float, batch: int = BATCH) -> None:
        self.retention_s, self.batch = retention_s, batch
        self.looked_at = 0  # the samples up to this seq have been looked at
        self._kept = np.empty(0, dtype=np.int64)  # looked at while in the pool: deleted once they leave it
        self._left = np.empty(0, dtype=np.int64)  # those that left it, sorted: deleted together
        self._left_since: float | None = None  # when the first of them left (monotonic)
        self._draining = False  # deleting the leavers, over as many steps as it takes
        self.deleted = 0
        self._inside: np.ndarray | None = None  # the pool's seqs, sorted (O(pool log pool): not every step)
        self._inside_upto = 0  # the last seq followed when they were taken
        self._inside_at = 0.0
        self.behind = False  # the last step ran out of time with more due: the next should come soon
        self.busy_s = 0.0  # time spent in steps, all told
        self.overdue = 0
        self._followed = 0  # the last seq followed at the last step
        self._marks: deque[tuple[float, int]] = deque()  # (wall time, last seq followed then), oldest first

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
        began, now = time.monotonic(), now or datetime.now(UTC)
        budget = step_budget(self.overdue, self.batch)
        cutoff = now - timedelta(seconds=self.retention_s)
        self._mark(now.timestamp(), followed)
        inside, followed, refreshed = self._pool(pool_seqs, followed)
        if refreshed and len(self._kept):  # they were in the pool when looked at: those that left go
            held = _member(self._kept, inside)
            self._gather(self._kept[~held])
            self._kept = self._kept[held]
        self.behind = False
        deleted = self._delete_left(store, len(inside), began + budget / 2)  # ranges get the rest
        last = followed - 1  # the newest followed stays: SQLite gives a deleted last seq again
        while self.looked_at < last:  # a range at least, then ranges until the time is spent
            upto = min(last, self.looked_at + self.batch)
            later = store.first_not_due(self.looked_at, upto, cutoff)  # the rest arrived after it
            first, upto = self.looked_at + 1, upto if later is None else later - 1
            if upto >= first:
                kept = inside[np.searchsorted(inside, first) : np.searchsorted(inside, upto, "right")]
                deleted += _delete_range(store, first, upto, kept, cutoff)
                self._kept = np.concatenate([self._kept, kept])
                self.looked_at = upto
            if later is not None or self.looked_at >= last:
                break
            if time.monotonic() - began >= budget:
                self.behind = True
                break
        self.behind = self.behind or self._draining
        self.deleted += deleted
        self.overdue = max(0, self._due_upto(cutoff.timestamp()) - self.looked_at)
        self.busy_s += time.monotonic() - began
        return deleted

    @property
    def hurried(self) -> bool:
        """Whether the next step should come at once: the last ran out of time, or a range is due."""
        return self.behind or self.overdue >= self.batch

    def _gather(self, left: np.ndarray) -> None:
        """Add ``left`` (sorted seqs that left the pool) to the leavers to delete."""
        if len(left):
            self._left = np.union1d(self._left, left)
            if self._left_since is None:
                self._left_since = time.monotonic()

    def _delete_left(self, store: Any, pool: int, until: float) -> int:
        """Delete the gathered leavers, oldest seq first, once they are many enough or waited long
        enough; a chunk at a time while the step has time (the next step goes on)."""
        waited = self._left_since is not None and time.monotonic() - self._left_since >= LEFT_MAX_S
        if not self._draining and len(self._left) and (len(self._left) >= LEFT_SHARE * pool or waited):
            self._draining = True
        deleted = 0
        while self._draining and time.monotonic() < until:
            chunk, self._left = self._left[:LEFT_CHUNK], self._left[LEFT_CHUNK:]
            deleted += store.delete_unlabeled(chunk.tolist())
            if not len(self._left):
                self._draining, self._left_since = False, None
        return deleted

    def _pool(
        self, pool_seqs: np.ndarray | Callable[[], np.ndarray], followed: int
    ) -> tuple[np.ndarray, int, bool]:
        """The pool's sorted seqs, the last seq they answer for, and whether they were taken now."""
        if not callable(pool_seqs):
            return np.sort(pool_seqs), followed, True
        refresh = min(REFRESH_S, self.retention_s / 10)  # a short retention is not held back long
        taken = self._inside is None or time.monotonic() - self._inside_at >= refresh
        if taken:
            self._inside, self._inside_upto, self._inside_at = (
                np.sort(pool_seqs()),
                followed,
                time.monotonic(),
            )
        assert self._inside is not None
        return self._inside, min(followed, self._inside_upto), taken

    def _mark(self, at: float, followed: int) -> None:
        """Remember the seq followed at ``at`` (every ``retention_s / MARKS`` seconds at most) and
        forget the marks older than what ``retention_s`` needs."""
        if not self._marks or at - self._marks[-1][0] >= max(1.0, self.retention_s / MARKS):
            self._marks.append((at, followed))
        self._followed = followed
        cutoff = at - self.retention_s
        while len(self._marks) > 1 and self._marks[1][0] <= cutoff:
            self._marks.popleft()

    def _due_upto(self, cutoff: float) -> int:
        """A seq every sample up to which arrived before ``cutoff`` (it was followed by then)."""
        at, seq = self._marks[0] if self._marks else (cutoff, 0)
        return seq if at <= cutoff else 0

    def state(self) -> dict[str, Any]:
        return {
            "retention_s": self.retention_s,
            "deleted": self.deleted,
            "waiting_to_leave_pool": len(self._kept),
            "left_pool": len(self._left),  # left the pool since: deleted together
            "overdue": self.overdue,  # arrived over retention_s ago, not looked at yet
            "not_looked_at": max(0, self._followed - self.looked_at),  # followed, not yet looked at
            "behind": self.behind,
            "busy_s": round(self.busy_s, 3),
        }


def step_budget(overdue: int, batch: int) -> float:
    """How long a step may take: ``STEP_BUDGET_S``, and while ``overdue`` is several ranges of
    ``batch``, that many budgets (``CATCH_UP`` at most), so retention catches up with a fast stream.

    >>> step_budget(0, 20_000), step_budget(50_000, 20_000), step_budget(10**6, 20_000)
    (0.25, 0.625, 1.0)
    """
    return STEP_BUDGET_S * min(CATCH_UP, max(1.0, overdue / batch))


def _delete_range(store: Any, first: int, last: int, kept: np.ndarray, before: datetime) -> int:
    """Delete the unlabeled samples with ``first <= seq <= last`` arrived before ``before``, but
    those ``kept`` (sorted, in the pool), in ranges that name at most ``MAX_KEEP`` of them."""
    deleted = 0
    for part in range(0, max(1, len(kept)), MAX_KEEP):
        keep = kept[part : part + MAX_KEEP]
        upto = last if part + MAX_KEEP >= len(kept) else int(kept[part + MAX_KEEP]) - 1
        deleted += store.delete_unlabeled_between(first, upto, before, keep.tolist())
        first = upto + 1
    return deleted


def _member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Which ``values`` are in ``sorted_set``."""
    if not len(sorted_set):
        return np.zeros(len(values), dtype=bool)
    where = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[where] == values
