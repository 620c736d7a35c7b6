"""The unlabeled pool in memory, bounded: the samples worth asking about, their scores, and leases.

The stream never ends, so the pool holds at most ``max_size`` samples. Two parts share it:

- a **reservoir** (``reservoir_share`` of the places): a uniform sample of every arrival so far
  (reservoir sampling with random keys: it keeps the arrivals whose seeded key is largest). The
  random share of the queue is drawn from it, so the accuracy measured on random items stays an
  unbiased estimate of the accuracy on the stream.
- the **candidates** (the other places): when they are full, an arrival enters only if it beats
  the least informative candidate (higher score; equal scores: a seeded random key per arrival),
  which then leaves. Before a model exists every score is 0 and the keys alone decide: the
  candidates are then a uniform sample too. A sample a reservoir arrival displaces competes
  as a candidate.

Both keys are seeded hashes of the arrival number, so the same stream always keeps the same
pool, whatever the batches it came in: a restart that reads the store again rebuilds it.

Samples leave the pool when they are labeled or skipped (they join the training set: the engine
keeps it), evicted, or older than ``max_age_s``. A leased sample is never evicted nor aged out
under an annotator's hands. An evicted sample is gone from the pool for good: a later model that
would rank it higher never sees it again (its label, if one comes, still trains the model).

The queue reads the newest finished scores only: a new model version's scores replace the old
ones in one swap, and :meth:`Pool.rank` orders them once, so serving walks that order.

Leases are bounded: an annotator holds at most ``max_per_annotator`` items and a token
(``holder``) at most ``max_per_holder``; a lease that ended (expired, released, labeled) is
forgotten, so annotators who went away leave nothing behind.

>>> pool = Pool(n_features=2, max_size=3, reservoir_share=0.0)
>>> X = np.array([[0, 0], [1, 1], [2, 2], [3, 3]], dtype=np.float32)
>>> pool.add(["a", "b", "c"], X[:3], scores=np.array([0.1, 0.9, 0.5]))
3
>>> pool.add(["d"], X[3:], scores=np.array([0.7]))  # beats "a", the least informative: "a" leaves
1
>>> sorted(pool.index), pool.counts()["evicted"]
(['b', 'c', 'd'], 1)
>>> [item.id for item in pool.take(2, annotator="ann", lease_s=60)]
['b', 'd']
"""

from __future__ import annotations

import heapq
import threading
import time
from dataclasses import dataclass

import numpy as np

from alstream.strategies import tie_keys

RERANK_TAIL = 20_000  # add() ranks again past this many samples added since (or a tenth of the ranked)


@dataclass(frozen=True)
class Taken:
    """One leased item: its position, id, score and why it was chosen."""

    position: int
    id: str
    score: float
    reason: str  # "uncertainty" or "random"
    version: int  # the model version whose score chose it (0: no model yet)


def bytes_per_sample(n_features: int) -> int:
    """Memory one held sample takes: its features, seven numbers, and its id in the list and index."""
    return 4 * n_features + 7 * 8 + 1 + 200


def size_for(budget_mb: float, n_features: int) -> int:
    """The most samples a pool of ``n_features`` columns holds within ``budget_mb`` MiB.

    >>> size_for(1024, 64)
    2093063
    """
    return max(10, int(budget_mb * 2**20 // bytes_per_sample(n_features)))


def _reservoir_keys(seq: np.ndarray, seed: int) -> np.ndarray:
    """A second seeded key per arrival, independent of the tie keys: orders the reservoir."""
    return tie_keys(seq, seed ^ 0x5EED_0F_7E5E)


def top_k(scores: np.ndarray, keys: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest ``(score, key)`` pairs, in no order; O(n), no sort.

    >>> top_k(np.array([0.5, 0.9, 0.5, 0.1]), np.array([1, 2, 3, 4], dtype=np.uint64), 2).tolist()
    [1, 2]
    """
    n = len(scores)
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    if k >= n:
        return np.arange(n)
    threshold = np.partition(scores, n - k)[n - k]
    above = np.flatnonzero(scores > threshold)
    ties = np.flatnonzero(scores == threshold)
    need = k - len(above)
    if need < len(ties):  # the ties at the threshold: the largest keys win
        ties = ties[np.argpartition(keys[ties], len(ties) - need)[len(ties) - need :]]
    return np.concatenate([above, ties])


class Pool:
    """Samples by position (a place that is reused once its sample left); thread-safe.

    ``max_size`` None: unbounded (the pool grows by doubling, as it does up to ``max_size``).
    """

    def __init__(
        self,
        n_features: int,
        capacity: int = 1024,
        seed: int = 0,
        max_size: int | None = None,
        reservoir_share: float = 0.1,
    ) -> None:
        if max_size is not None and max_size < 1:
            raise ValueError(f"max_size must be at least 1, not {max_size}")
        if not 0.0 <= reservoir_share <= 1.0:
            raise ValueError(f"reservoir_share must be within [0, 1], not {reservoir_share}")
        self.n_features, self.seed, self.max_size = n_features, seed, max_size
        self.reservoir_size = 0 if max_size is None else round(max_size * reservoir_share)
        self._unbounded_share = reservoir_share  # without max_size, every arrival is both
        self._lock = threading.RLock()
        self._rng = np.random.default_rng([seed, 0x7E5E])  # unbounded pools: which arrivals are random items
        capacity = max(1, capacity if max_size is None else min(capacity, max_size))
        self.size = 0  # samples held
        self.ids: list[str | None] = [None] * capacity
        self.index: dict[str, int] = {}
        self._free: list[int] = list(range(capacity - 1, -1, -1))  # places to fill, lowest last
        self.features = np.zeros((capacity, n_features), dtype=np.float32)
        self.scores = np.zeros(capacity)
        self.lease_until = np.zeros(capacity)
        self.arrived_at = np.zeros(capacity)
        self.seq = np.full(capacity, -1, dtype=np.int64)  # arrival number of the sample held (-1: empty)
        self._keys = np.zeros(capacity, dtype=np.uint64)
        self._candidate = np.zeros(capacity, dtype=bool)  # held and not in the reservoir
        self._reservoir = np.zeros(capacity, dtype=np.int64)  # positions in the reservoir: [:_n_reservoir]
        self._n_reservoir = 0
        self._reservoir_order: np.ndarray | None = None  # members in arrival order, for the random draws
        self._where = np.full(capacity, -1, dtype=np.int64)  # position -> index in _reservoir, or -1
        self._owner: dict[int, tuple[str, str | None]] = {}  # leased position -> (annotator, holder)
        self._leased: dict[str, set[int]] = {}  # annotator -> positions leased to them
        self._held: dict[str, set[int]] = {}  # holder (a token's key) -> positions leased through it
        self._ends: list[tuple[float, int]] = []  # heap of (lease end, position): finds expired leases
        self._scheduled: dict[int, float] = {}  # position -> its one entry in _ends
        self._ranked = np.empty(0, dtype=np.int64)  # positions by descending score, from rank()
        self._ranked_seq = np.empty(0, dtype=np.int64)  # the arrival each ranked position held then
        self._added_since_rank: list[int] = []
        self.version = 0
        self.arrivals = 0  # samples offered to the pool, ever
        self.evicted = self.rejected = self.aged_out = self.removed = 0  # how the arrivals left, or not
        self.passed = 0  # arrivals a selective strategy did not ask about (nor the reservoir took)

    def __len__(self) -> int:
        return self.size

    # --- places ---------------------------------------------------------------------------
    def _grow(self, needed: int) -> None:
        capacity = len(self.scores)
        if needed <= capacity:
            return
        new_capacity = capacity
        while new_capacity < needed:
            new_capacity *= 2
        if self.max_size is not None:
            new_capacity = min(new_capacity, self.max_size)
        for name in ("features", "scores", "lease_until", "arrived_at", "seq", "_keys", "_candidate",
                     "_reservoir", "_where"):  # fmt: skip
            old = getattr(self, name)
            new = np.full((new_capacity, *old.shape[1:]), -1 if name in ("seq", "_where") else 0, old.dtype)
            new[:capacity] = old
            setattr(self, name, new)
        self.ids.extend([None] * (new_capacity - capacity))
        self._free[:0] = range(new_capacity - 1, capacity - 1, -1)

    def _place(self, ids: list[str], X: np.ndarray, s: np.ndarray, seq: np.ndarray, now: float) -> np.ndarray:
        """Put samples in free places (as candidates); returns their positions."""
        k = len(ids)
        if not k:
            return np.empty(0, dtype=np.int64)
        positions = np.array(self._free[-k:][::-1], dtype=np.int64)
        del self._free[-k:]
        for position, sample_id in zip(positions.tolist(), ids, strict=True):
            self.ids[position] = sample_id
            self.index[sample_id] = position
        self.features[positions] = X
        self.scores[positions] = s
        self.seq[positions] = seq
        self._keys[positions] = tie_keys(seq, self.seed)
        self.arrived_at[positions] = now
        self.lease_until[positions] = 0.0
        self._candidate[positions] = True
        self._added_since_rank.extend(positions.tolist())
        self.size += k
        return positions

    def _vacate(self, positions: np.ndarray) -> None:
        """Free ``positions`` (held samples leaving the pool)."""
        if not len(positions):
            return
        for position in positions.tolist():
            if self._owner:
                self._unlease(position)
            if self._where[position] >= 0:
                self._leave_reservoir(position)
            del self.index[self.ids[position]]  # type: ignore[arg-type]
            self.ids[position] = None
        self.seq[positions] = -1
        self._candidate[positions] = False
        self.lease_until[positions] = 0.0
        self._free.extend(positions.tolist())
        self.size -= len(positions)

    def _join_reservoir(self, position: int) -> None:
        self._reservoir_order = None
        self._reservoir[self._n_reservoir] = position
        self._where[position] = self._n_reservoir
        self._n_reservoir += 1
        self._candidate[position] = False

    def _leave_reservoir(self, position: int) -> None:
        """Take ``position`` out of the reservoir (if in it): the last member takes its index."""
        where = int(self._where[position])
        if where < 0:
            return
        self._reservoir_order = None
        last = int(self._reservoir[self._n_reservoir - 1])
        self._reservoir[where] = last
        self._where[last] = where
        self._where[position] = -1
        self._n_reservoir -= 1
        self._candidate[position] = self.ids[position] is not None

    # --- arrivals -------------------------------------------------------------------------
    def add(
        self,
        ids: list[str],
        features: np.ndarray,
        scores: np.ndarray | None = None,
        seqs: np.ndarray | None = None,
        now: float | None = None,
        asked: np.ndarray | None = None,
    ) -> int:
        """Offer new samples (ids already held are ignored); returns how many were new.

        ``seqs``: each sample's arrival number (the store's order), which seeds its tie key, so the
        same stream always keeps the same pool; by default, the count of arrivals so far. ``asked``:
        which arrivals a selective strategy would ask about; the others may only join the reservoir.
        """
        now = time.time() if now is None else now
        with self._lock:
            fresh = [i for i, sample_id in enumerate(ids) if sample_id not in self.index]
            if not fresh:
                return 0
            fresh_ids = [ids[i] for i in fresh]
            X = features[fresh]
            s = np.zeros(len(fresh)) if scores is None else np.asarray(scores, dtype=np.float64)[fresh]
            if seqs is None:
                seq = np.arange(self.arrivals, self.arrivals + len(fresh), dtype=np.int64)
            else:
                seq = np.asarray(seqs, dtype=np.int64)[fresh]
            may = np.ones(len(fresh), dtype=bool) if asked is None else np.asarray(asked, dtype=bool)[fresh]
            if self.max_size is None:
                self._add_unbounded(fresh_ids, X, s, seq, now)
            else:
                self._admit(fresh_ids, X, s, seq, now, may)
            stale = len(self._added_since_rank) > max(RERANK_TAIL, len(self._ranked) // 10)
        if stale:  # take() scans the samples added since the last ranking: keep them few
            self.rank()
        return len(fresh)

    def _add_unbounded(
        self, ids: list[str], X: np.ndarray, s: np.ndarray, seq: np.ndarray, now: float
    ) -> None:
        self._grow(self.size + len(ids))
        positions = self._place(ids, X, s, seq, now)
        self.arrivals += len(ids)
        for position in positions[self._rng.random(len(ids)) < self._unbounded_share].tolist():
            self._join_reservoir(position)  # a uniform share, for the random items

    def _admit(
        self, ids: list[str], X: np.ndarray, s: np.ndarray, seq: np.ndarray, now: float, may: np.ndarray
    ) -> None:
        """The reservoir first, then the candidates' competition (of the arrivals that ``may`` compete);
        the pool never exceeds max_size."""
        assert self.max_size is not None
        n = len(ids)
        to_reservoir = self._reservoir_competition(seq)
        passed = ~to_reservoir & ~may
        self.passed += int(passed.sum())
        # the candidates: those held and free to leave, and the arrivals, compete for the places left
        arrivals = np.flatnonzero(~to_reservoir & may)
        held = np.flatnonzero(self._candidate[: len(self.scores)])
        leased = held[self.lease_until[held] > time.monotonic()] if self._owner else held[:0]
        movable = np.setdiff1d(held, leased, assume_unique=True) if len(leased) else held
        places = self.max_size - self._n_reservoir - int(to_reservoir.sum()) - len(leased)
        if len(movable) + len(arrivals) > places:
            scores = np.concatenate([self.scores[movable], s[arrivals]])
            keys = np.concatenate([self._keys[movable], tie_keys(seq[arrivals], self.seed)])
            keep = np.zeros(len(scores), dtype=bool)
            keep[top_k(scores, keys, max(places, 0))] = True
            leaving = movable[~keep[: len(movable)]]
            self.evicted += len(leaving)
            self._vacate(leaving)
            self.rejected += int((~keep[len(movable) :]).sum())
            arrivals = arrivals[keep[len(movable) :]]
        joining = np.flatnonzero(to_reservoir)
        self._grow(self.size + len(arrivals) + len(joining))
        for position in self._place([ids[i] for i in joining.tolist()], X[joining], s[joining], seq[joining],
                                    now).tolist():  # fmt: skip
            self._join_reservoir(position)
        self._place([ids[i] for i in arrivals.tolist()], X[arrivals], s[arrivals], seq[arrivals], now)
        self.arrivals += n

    def _reservoir_competition(self, seq: np.ndarray) -> np.ndarray:
        """Which arrivals join the reservoir: it keeps the ``reservoir_size`` largest reservoir keys (a
        seeded hash of the arrival number) of all arrivals, a uniform sample of the stream that the
        same stream always rebuilds. Members an arrival displaces become candidates (leased ones stay)."""
        joins = np.zeros(len(seq), dtype=bool)
        if not self.reservoir_size:
            return joins
        keys = _reservoir_keys(seq, self.seed)
        members = self._reservoir[: self._n_reservoir]
        leased = members[self.lease_until[members] > time.monotonic()] if self._owner else members[:0]
        movable = np.setdiff1d(members, leased, assume_unique=True) if len(leased) else members
        places = self.reservoir_size - len(leased)
        if len(movable) + len(seq) <= places:
            joins[:] = True
            return joins
        both = np.concatenate([_reservoir_keys(self.seq[movable], self.seed), keys])
        keep = np.zeros(len(both), dtype=bool)
        keep[top_k(np.zeros(len(both)), both, max(places, 0))] = True
        for position in movable[~keep[: len(movable)]].tolist():
            self._leave_reservoir(position)  # a candidate now, competing with the arrivals
        return keep[len(movable) :]

    # --- leaving --------------------------------------------------------------------------
    def remove(self, ids: list[str]) -> tuple[list[str], np.ndarray]:
        """Take samples out of the pool (labeled or skipped); returns the ids held and their features."""
        with self._lock:
            found = [i for i in ids if i in self.index]
            positions = np.array([self.index[i] for i in found], dtype=np.int64)
            features = self.features[positions].copy()
            self._vacate(positions)
            self.removed += len(positions)
            return found, features

    def expire(self, max_age_s: float, now: float | None = None) -> int:
        """Let samples that arrived over ``max_age_s`` ago leave (not those leased); returns how many."""
        now = time.time() if now is None else now
        with self._lock:
            held = self.seq[: len(self.scores)] >= 0
            old = np.flatnonzero(held & (self.arrived_at[: len(self.scores)] < now - max_age_s))
            old = old[self.lease_until[old] <= time.monotonic()]
            self._vacate(old)
            self.aged_out += len(old)
            return len(old)

    # --- scores ---------------------------------------------------------------------------
    def held(self) -> np.ndarray:
        """Positions that hold a sample."""
        return np.flatnonzero(self.seq[: len(self.scores)] >= 0)

    def set_scores(self, scores: np.ndarray, version: int, positions: np.ndarray | None = None) -> None:
        """Swap in a model version's scores for ``positions`` (default: every position)."""
        with self._lock:
            if positions is None:
                self.scores[: len(scores)] = scores
            else:
                self.scores[positions] = scores
            self.version = max(self.version, version)

    def rank(self) -> None:
        """Order every sample by score once (after a new version's scores are in), so that
        serving the queue walks this order instead of searching the whole pool per request."""
        with self._lock:
            held = self.held()
            scores, keys = self.scores[held], self._keys[held]
            self._added_since_rank = []
        order = held[np.lexsort((keys, scores))[::-1]]
        with self._lock:
            self._ranked, self._ranked_seq = order, self.seq[order]

    # --- leasing --------------------------------------------------------------------------
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

        A share of the items (``random_share``, drawn per item) is picked uniformly at random from
        the reservoir instead, so accuracy can be estimated without the bias of uncertainty sampling.
        Items already leased to this annotator are returned again first, unless ``fresh``: then
        only items she does not hold yet (a page that prefetches asks for more this way). New
        items are leased only while she holds fewer than ``max_per_annotator`` and ``holder``
        fewer than ``max_per_holder`` (None: no cap); so fewer than ``n`` may come back.
        """
        now = time.monotonic() if now is None else now
        rng = rng or np.random.default_rng()
        with self._lock:
            self._expire_leases(now)
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
            return [Taken(p, str(self.ids[p]), float(self.scores[p]), why, self.version) for p, why in picked]

    def _available_to(self, position: int, annotator: str, now: float) -> bool:
        owner = self._owner.get(position)
        return self.lease_until[position] > now and owner is not None and owner[0] == annotator

    def _is_free(self, positions: np.ndarray, now: float) -> np.ndarray:
        return (self.seq[positions] >= 0) & (self.lease_until[positions] <= now)

    def _random_free(self, k: int, now: float, rng: np.random.Generator, taken: set[int]) -> list[int]:
        """Up to ``k`` free reservoir members drawn uniformly (rejection sampling: no scan of the pool)."""
        chosen: list[int] = []
        members = self._n_reservoir
        if k and members and self._reservoir_order is None:  # the same members, the same draws
            held = self._reservoir[:members]
            self._reservoir_order = held[np.argsort(self.seq[held])]
        for _ in range(50 * k):
            if len(chosen) >= k or not members:
                break
            p = int(self._reservoir_order[rng.integers(members)])  # type: ignore[index]
            if p not in taken and p not in chosen and self._is_free(np.array([p]), now)[0]:
                chosen.append(p)
        return chosen

    def _top_free(self, k: int, now: float, taken: set[int]) -> list[int]:
        """The ``k`` best-scored free samples: the ranked order, then any sample added since."""
        if k <= 0:
            return []
        ranked, ranked_seq = self._ranked, self._ranked_seq
        best: list[int] = []
        step = max(256, 4 * k)
        for start in range(0, len(ranked), step):
            block, block_seq = ranked[start : start + step], ranked_seq[start : start + step]
            block = block[(self.seq[block] == block_seq) & self._is_free(block, now)]  # still the same sample
            best.extend(p for p in block.tolist() if p not in taken)
            if len(best) >= k:
                break
        best = best[:k]
        tail = np.array(self._added_since_rank, dtype=np.int64)  # newer than the ranking, scored on arrival
        tail = tail[self._is_free(tail, now)] if len(tail) else tail
        tail = np.array([p for p in tail.tolist() if p not in taken], dtype=np.int64)
        if len(tail) > 4 * k:  # keep the best of the tail only
            tail = tail[top_k(self.scores[tail], self._keys[tail], k)]
        if len(tail):
            both = np.unique(np.concatenate([np.array(best, dtype=np.int64), tail]))
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
        if position not in self._scheduled:  # a renewal moves the entry when it comes up (_expire_leases)
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

    def _expire_leases(self, now: float) -> None:
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
            for sample_id in ids:
                position = self.index.get(sample_id)
                owner = None if position is None else self._owner.get(position)
                if owner is not None and owner[0] == annotator:
                    self.lease_until[position] = 0.0
                    self._unlease(position)
                    released += 1
        return released

    # --- counts ---------------------------------------------------------------------------
    def lease_state(self) -> dict[str, int]:
        """How much lease bookkeeping is held: leases, annotators and holders with one, lease ends."""
        with self._lock:
            return {"leases": len(self._owner), "annotators": len(self._leased), "holders": len(self._held),
                    "lease_ends": len(self._ends)}  # fmt: skip

    def counts(self) -> dict[str, int | None]:
        """The pool's size and bound, its reservoir, leases, and what arrived and left: every arrival is
        held, passed (not asked about), rejected, evicted, aged out or removed (labeled or skipped)."""
        with self._lock:
            now = time.monotonic()
            held = self.seq[: len(self.scores)] >= 0
            return {
                "pool": int(self.size),
                "max_pool": self.max_size,
                "reservoir": int(self._n_reservoir),
                "leased": int((held & (self.lease_until[: len(self.scores)] > now)).sum()),
                "arrivals": int(self.arrivals),
                "evicted": int(self.evicted),
                "rejected": int(self.rejected),
                "aged_out": int(self.aged_out),
                "removed": int(self.removed),
                "passed": int(self.passed),
            }

    def reservoir(self) -> np.ndarray:
        """Positions in the reservoir (a copy)."""
        with self._lock:
            return self._reservoir[: self._n_reservoir].copy()
