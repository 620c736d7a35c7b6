"""The unlabeled pool in memory: features, the current model's scores, and leases.

The store is the source of truth; the pool is rebuilt from it at start-up and follows it.
Serving the queue reads the newest finished scores only: a new model version's scores
replace the old ones in one swap, so selection never mixes versions mid-way.

Leases are bounded: an annotator holds at most ``max_per_annotator`` items and a token
(``holder``) at most ``max_per_holder``; a lease that ended (expired, released, labeled) is
forgotten, so annotators who went away leave nothing behind.

>>> pool = Pool(n_features=2)
>>> pool.add(["a", "b", "c"], np.array([[0, 0], [1, 1], [2, 2]], dtype=np.float32))
3
>>> pool.set_scores(np.array([0.1, 0.9, 0.5]), version=1)
>>> [item.id for item in pool.take(2, annotator="ann", lease_s=60)]
['b', 'c']
>>> [item.id for item in pool.take(2, annotator="bob", lease_s=60)]
['a']
"""

from __future__ import annotations

import heapq
import threading
import time
from dataclasses import dataclass

import numpy as np

from alstream.strategies import tie_keys

UNLABELED, LABELED, SKIPPED = 0, 1, 2
RERANK_TAIL = 20_000  # add() ranks again past this many unranked samples (or a tenth of the ranked)


@dataclass(frozen=True)
class Taken:
    """One leased item: its position, id, score and why it was chosen."""

    position: int
    id: str
    score: float
    reason: str  # "uncertainty" or "random"
    version: int  # the model version whose score chose it (0: no model yet)


class Pool:
    """Samples by position; grows by doubling; safe to use from several threads."""

    def __init__(self, n_features: int, capacity: int = 1024, seed: int = 0) -> None:
        self.n_features, self.seed = n_features, seed
        self._lock = threading.RLock()
        self.size = 0
        self.ids: list[str] = []
        self.index: dict[str, int] = {}
        self.features = np.zeros((capacity, n_features), dtype=np.float32)
        self.scores = np.zeros(capacity)
        self.status = np.zeros(capacity, dtype=np.int8)
        self.lease_until = np.zeros(capacity)
        self._owner: dict[int, tuple[str, str | None]] = {}  # leased position -> (annotator, holder)
        self._leased: dict[str, set[int]] = {}  # annotator -> positions leased to them
        self._held: dict[str, set[int]] = {}  # holder (a token's key) -> positions leased through it
        self._ends: list[tuple[float, int]] = []  # heap of (lease end, position): finds expired leases
        self._scheduled: dict[int, float] = {}  # position -> its one entry in _ends
        self._ranked = np.empty(0, dtype=np.int64)  # positions by descending score, from rank()
        self.version = 0
        self._keys = np.zeros(capacity, dtype=np.uint64)

    def __len__(self) -> int:
        return self.size

    def _grow(self, needed: int) -> None:
        capacity = len(self.scores)
        if needed <= capacity:
            return
        while capacity < needed:
            capacity *= 2
        for name in ("features", "scores", "status", "lease_until", "_keys"):
            old = getattr(self, name)
            new = np.zeros((capacity, *old.shape[1:]), dtype=old.dtype)
            new[: self.size] = old[: self.size]
            setattr(self, name, new)

    def add(self, ids: list[str], features: np.ndarray, scores: np.ndarray | None = None) -> int:
        """Add samples not seen before (others are ignored); returns how many were new."""
        with self._lock:
            fresh = [i for i, sample_id in enumerate(ids) if sample_id not in self.index]
            if not fresh:
                return 0
            start, end = self.size, self.size + len(fresh)
            self._grow(end)
            self.features[start:end] = features[fresh]
            self.scores[start:end] = 0.0 if scores is None else np.asarray(scores)[fresh]
            for offset, i in enumerate(fresh):
                self.index[ids[i]] = start + offset
                self.ids.append(ids[i])
            self._keys[start:end] = tie_keys(np.arange(start, end), self.seed)
            self.size = end
            stale = end - len(self._ranked) > max(RERANK_TAIL, len(self._ranked) // 10)
        if stale:  # take() scans the samples added since the last ranking: keep them few
            self.rank()
        return len(fresh)

    def positions(self, ids: list[str]) -> np.ndarray:
        """Positions of the known ids among ``ids`` (unknown ones are left out)."""
        return np.array([self.index[i] for i in ids if i in self.index], dtype=np.int64)

    def mark(self, ids: list[str], status: int) -> None:
        """Record that samples were labeled (or skipped): they leave the queue."""
        with self._lock:
            where = self.positions(ids)
            self.status[where] = status
            self.lease_until[where] = 0.0
            for position in where.tolist():
                self._unlease(position)

    def set_scores(self, scores: np.ndarray, version: int, start: int = 0) -> None:
        """Swap in a model version's scores for positions ``start..start+len(scores)``."""
        with self._lock:
            self.scores[start : start + len(scores)] = scores
            self.version = max(self.version, version)

    def unlabeled(self) -> np.ndarray:
        """Positions of samples nobody has labeled or skipped."""
        return np.flatnonzero(self.status[: self.size] == UNLABELED)

    def rank(self) -> None:
        """Order every sample by score once (after a new version's scores are in), so that
        serving the queue walks this order instead of searching the whole pool per request."""
        with self._lock:
            size = self.size
            scores, keys = self.scores[:size].copy(), self._keys[:size].copy()
        order = np.lexsort((keys, scores))[::-1]
        with self._lock:
            self._ranked = order

    def take(
        self,
        n: int,
        annotator: str,
        lease_s: float,
        random_share: float = 0.0,
        rng: np.random.Generator | None = None,
        now: float | None = None,
        fresh: bool = False,
        holder: str | None = None,
        max_per_annotator: int | None = None,
        max_per_holder: int | None = None,
    ) -> list[Taken]:
        """Lease the ``n`` most uncertain available samples to ``annotator`` (through ``holder``).

        A share of the items (``random_share``, drawn per item) is picked uniformly at random
        instead, so accuracy can be estimated without the bias of uncertainty sampling.
        Items already leased to this annotator are returned again first, unless ``fresh``: then
        only items she does not hold yet (a page that prefetches asks for more this way). New
        items are leased only while she holds fewer than ``max_per_annotator`` and ``holder``
        fewer than ``max_per_holder`` (None: no cap); so fewer than ``n`` may come back.
        """
        now = time.monotonic() if now is None else now
        rng = rng or np.random.default_rng()
        with self._lock:
            self._expire(now)
            held = self._leased.get(annotator, set())
            mine = [] if fresh else sorted(p for p in held if self._available_to(p, annotator, now))
            picked: list[tuple[int, str]] = [(p, "uncertainty") for p in mine[:n]]
            taken = {p for p, _ in picked}
            wanted = n - len(picked)
            if max_per_annotator is not None:
                wanted = min(wanted, max_per_annotator - len(held))
            if max_per_holder is not None and holder is not None:
                wanted = min(wanted, max_per_holder - len(self._held.get(holder, ())))
            wanted = max(wanted, 0)
            n_random = int(rng.binomial(wanted, random_share)) if wanted else 0
            for p in self._random_free(n_random, now, rng, taken):
                picked.append((p, "random"))
                taken.add(p)
            for p in self._top_free(wanted - (len(picked) - len(mine[:n])), now, taken):
                picked.append((p, "uncertainty"))
            for position, _ in picked:
                self._lease(position, annotator, holder, now + lease_s)
            return [Taken(p, self.ids[p], float(self.scores[p]), why, self.version) for p, why in picked]

    def _available_to(self, position: int, annotator: str, now: float) -> bool:
        owner = self._owner.get(position)
        return (
            self.status[position] == UNLABELED
            and self.lease_until[position] > now
            and owner is not None
            and owner[0] == annotator
        )

    def _is_free(self, positions: np.ndarray, now: float) -> np.ndarray:
        return (self.status[positions] == UNLABELED) & (self.lease_until[positions] <= now)

    def _random_free(self, k: int, now: float, rng: np.random.Generator, taken: set[int]) -> list[int]:
        """Up to ``k`` free samples drawn uniformly (rejection sampling: no scan of the pool)."""
        chosen: list[int] = []
        for _ in range(50 * k):
            if len(chosen) >= k or not self.size:
                break
            p = int(rng.integers(self.size))
            if p not in taken and p not in chosen and self._is_free(np.array([p]), now)[0]:
                chosen.append(p)
        return chosen

    def _top_free(self, k: int, now: float, taken: set[int]) -> list[int]:
        """The ``k`` best-scored free samples: the ranked order, then any sample added since."""
        if k <= 0:
            return []
        ranked = self._ranked
        best: list[int] = []
        step = max(256, 4 * k)
        for start in range(0, len(ranked), step):
            block = ranked[start : start + step]
            block = block[self._is_free(block, now)]
            best.extend(p for p in block.tolist() if p not in taken)
            if len(best) >= k:
                break
        best = best[:k]
        tail = np.arange(len(ranked), self.size)  # newer than the ranking, scored on arrival
        tail = tail[self._is_free(tail, now)] if len(tail) else tail
        tail = np.array([p for p in tail.tolist() if p not in taken], dtype=np.int64)
        if len(tail) > 4 * k:  # keep the best of the tail only
            scores = self.scores[tail]
            tail = tail[scores >= np.partition(scores, len(scores) - k)[len(scores) - k]]
        if len(tail):
            both = np.concatenate([np.array(best, dtype=np.int64), tail])
            order = np.lexsort((self._keys[both], self.scores[both]))[::-1]
            best = both[order][:k].tolist()
        return best

    def _lease(self, position: int, annotator: str, holder: str | None, until: float) -> None:
        if self._owner.get(position) != (annotator, holder):
            self._unlease(position)
            self._owner[position] = (annotator, holder)
            self._leased.setdefault(annotator, set()).add(position)
            if holder is not None:
                self._held.setdefault(holder, set()).add(position)
        self.lease_until[position] = until
        if position not in self._scheduled:  # a renewal moves the entry when it comes up (_expire)
            self._scheduled[position] = until
            heapq.heappush(self._ends, (until, position))

    def _unlease(self, position: int) -> None:
        """Forget a position's lease, and its annotator and holder once they hold nothing."""
        owner = self._owner.pop(position, None)
        if owner is None:
            return
        for index, key in ((self._leased, owner[0]), (self._held, owner[1])):
            positions = index.get(key) if key is not None else None
            if positions is not None:
                positions.discard(position)
                if not positions:
                    del index[key]

    def _expire(self, now: float) -> None:
        """Forget the leases that ended by ``now``; a renewed one is looked at again at its new end."""
        ends = self._ends
        while ends and ends[0][0] <= now:
            _, position = heapq.heappop(ends)
            until = float(self.lease_until[position])
            if position in self._owner and until > now:
                self._scheduled[position] = until
                heapq.heappush(ends, (until, position))
            else:
                self._unlease(position)
                del self._scheduled[position]

    def release(self, ids: list[str], annotator: str) -> int:
        """Give ``annotator``'s leased items back to the queue before their lease ends; returns how
        many were hers."""
        released = 0
        with self._lock:
            for position in self.positions(ids).tolist():
                owner = self._owner.get(position)
                if owner is not None and owner[0] == annotator:
                    self.lease_until[position] = 0.0
                    self._unlease(position)
                    released += 1
        return released

    def lease_state(self) -> dict[str, int]:
        """How much lease bookkeeping is held: leases, annotators and holders with one, lease ends."""
        with self._lock:
            return {"leases": len(self._owner), "annotators": len(self._leased), "holders": len(self._held),
                    "lease_ends": len(self._ends)}  # fmt: skip

    def counts(self) -> dict[str, int]:
        with self._lock:
            status = self.status[: self.size]
            now = time.monotonic()
            return {
                "pool": int(self.size),
                "unlabeled": int((status == UNLABELED).sum()),
                "labeled": int((status == LABELED).sum()),
                "skipped": int((status == SKIPPED).sum()),
                "leased": int(((status == UNLABELED) & (self.lease_until[: self.size] > now)).sum()),
            }
