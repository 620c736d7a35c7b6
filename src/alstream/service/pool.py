"""The unlabeled pool in memory: features, the current model's scores, and leases.

The store is the source of truth; the pool is rebuilt from it at start-up and follows it.
Serving the queue reads the newest finished scores only: a new model version's scores
replace the old ones in one swap, so selection never mixes versions mid-way.

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

import threading
import time
from dataclasses import dataclass

import numpy as np

from alstream.strategies import tie_keys

UNLABELED, LABELED, SKIPPED = 0, 1, 2


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
        self.lease_owner: list[str | None] = []
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
                self.lease_owner.append(None)
            self._keys[start:end] = tie_keys(np.arange(start, end), self.seed)
            self.size = end
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

    def set_scores(self, scores: np.ndarray, version: int, start: int = 0) -> None:
        """Swap in a model version's scores for positions ``start..start+len(scores)``."""
        with self._lock:
            self.scores[start : start + len(scores)] = scores
            self.version = max(self.version, version)

    def unlabeled(self) -> np.ndarray:
        """Positions of samples nobody has labeled or skipped."""
        return np.flatnonzero(self.status[: self.size] == UNLABELED)

    def take(
        self,
        n: int,
        annotator: str,
        lease_s: float,
        random_share: float = 0.0,
        rng: np.random.Generator | None = None,
        now: float | None = None,
    ) -> list[Taken]:
        """Lease the ``n`` most uncertain available samples to ``annotator``.

        A share of the items (``random_share``, drawn per item) is picked uniformly at random
        instead, so accuracy can be estimated without the bias of uncertainty sampling.
        Items already leased to this annotator are returned again first.
        """
        now = time.monotonic() if now is None else now
        with self._lock:
            size = self.size
            free = (self.status[:size] == UNLABELED) & (self.lease_until[:size] <= now)
            mine = np.flatnonzero(
                (self.status[:size] == UNLABELED) & (self.lease_until[:size] > now)
                & np.array([owner == annotator for owner in self.lease_owner], dtype=bool)
            ) if annotator and size else np.empty(0, dtype=np.int64)  # fmt: skip
            picked: list[tuple[int, str]] = [(int(p), "uncertainty") for p in mine[:n]]
            wanted = n - len(picked)
            rng = rng or np.random.default_rng()
            n_random = int(rng.binomial(wanted, random_share)) if wanted else 0
            available = np.flatnonzero(free)
            if n_random and len(available):
                chosen = rng.choice(available, min(n_random, len(available)), replace=False)
                picked += [(int(p), "random") for p in chosen]
                free[chosen] = False
            rest = n - len(picked)
            if rest > 0:
                picked += [(int(p), "uncertainty") for p in self._top(free, rest)]
            for position, _ in picked:
                self.lease_until[position] = now + lease_s
                self.lease_owner[position] = annotator
            return [Taken(p, self.ids[p], float(self.scores[p]), why, self.version) for p, why in picked]

    def _top(self, free: np.ndarray, k: int) -> np.ndarray:
        candidates = np.flatnonzero(free)
        if len(candidates) <= k:
            order = np.lexsort((self._keys[candidates], self.scores[candidates]))[::-1]
            return candidates[order]
        scores = self.scores[candidates]
        cut = np.partition(scores, len(scores) - k)[len(scores) - k]
        best = candidates[scores >= cut]
        order = np.lexsort((self._keys[best], self.scores[best]))[::-1]
        return best[order][:k]

    def release(self, ids: list[str], annotator: str) -> None:
        """Give leased items back to the queue before their lease ends."""
        with self._lock:
            for position in self.positions(ids):
                if self.lease_owner[position] == annotator:
                    self.lease_until[position] = 0.0

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
