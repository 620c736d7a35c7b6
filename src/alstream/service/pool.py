"""The unlabeled pool in memory, bounded: the samples worth asking about and their scores.

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

An arrival costs O(batch), not O(pool): the pool keeps its **weak end**, every candidate up to a
bound (the ``LOW_END`` weakest when last found), and evictions choose there; it is found again
over the whole pool only when it runs short or a new version's scores replace the old ones.

Samples leave the pool when they are labeled or skipped (they join the training set: the engine
keeps it), evicted, or older than ``max_age_s``. A :meth:`pinned <Pool.pin>` sample (leased to
someone) is never evicted nor aged out under an annotator's hands. An evicted sample is gone from
the pool for good: a later model that would rank it higher never sees it again (its label, if one
comes, still trains the model).

One thread writes a pool (the engine's). What the queue serves from is a :class:`PoolView`: an
immutable picture of the best-scored samples and of the reservoir, which :meth:`Pool.view` makes
in O(depth + samples added since the last one); a new model version's scores replace the old
ones in one :meth:`~Pool.set_scores`, and the next view follows them.

>>> pool = Pool(n_features=2, max_size=3, reservoir_share=0.0)
>>> X = np.array([[0, 0], [1, 1], [2, 2], [3, 3]], dtype=np.float32)
>>> pool.add(["a", "b", "c"], X[:3], scores=np.array([0.1, 0.9, 0.5]))
3
>>> pool.add(["d"], X[3:], scores=np.array([0.7]))  # beats "a", the least informative: "a" leaves
1
>>> sorted(pool.index), pool.counts()["evicted"]
(['b', 'c', 'd'], 1)
>>> pool.view(depth=2).ranked
('b', 'd')
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from alstream.learning.strategies import tie_keys

LOW_END = 65_536  # candidates the weak end holds when found again (more when many are pinned)


@dataclass(frozen=True)
class PoolView:
    """What the queue serves from, as the pool was: never changed once made.

    ``ranked``: the best-scored samples, best first (the ``depth`` asked for); ``reservoir``:
    ``depth`` of the reservoir's members (those with the largest tie keys: a uniform sample of a
    uniform sample), in arrival order (the same members, the same random draws); their scores
    alongside, by the model version ``version`` (0: no model yet); ``ranked_clusters``: the pool
    cluster of each ranked sample, when the queue spreads over clusters (else empty).
    """

    version: int = 0
    ranked: tuple[str, ...] = ()
    ranked_scores: np.ndarray = field(default_factory=lambda: np.empty(0))
    ranked_clusters: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    reservoir: tuple[str, ...] = ()
    reservoir_scores: np.ndarray = field(default_factory=lambda: np.empty(0))


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


def _at_most(scores: np.ndarray, keys: np.ndarray, score: float, key: np.uint64) -> np.ndarray:
    """Which ``(scores, keys)`` pairs are at most ``(score, key)``."""
    return (scores < score) | ((scores == score) & (keys <= key))


def bottom_k(scores: np.ndarray, keys: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` smallest ``(score, key)`` pairs, in no order.

    >>> bottom_k(np.array([0.5, 0.9, 0.5, 0.1]), np.array([1, 2, 3, 4], dtype=np.uint64), 2).tolist()
    [3, 0]
    """
    return top_k(-scores, ~keys, k)


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
    """Samples by position (a place that is reused once its sample left); one writer thread.

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
        self._rng = np.random.default_rng([seed, 0x7E5E])  # unbounded pools: which arrivals are random items
        capacity = max(1, capacity if max_size is None else min(capacity, max_size))
        self.size = 0  # samples held
        self.ids = np.full(capacity, None, dtype=object)  # the sample id held at each place
        self.index: dict[str, int] = {}
        self._free: list[int] = list(range(capacity - 1, -1, -1))  # places to fill, lowest last
        self.features = np.zeros((capacity, n_features), dtype=np.float32)
        self.scores = np.zeros(capacity)
        self.pinned = np.zeros(capacity, dtype=bool)  # leased: neither evicted nor aged out
        self.arrived_at = np.zeros(capacity)
        self.placed = np.zeros(capacity, dtype=np.int64)  # the placement that filled each place
        self.placements = 0  # places filled, ever: scores computed before a placement miss its place
        self.seq = np.full(capacity, -1, dtype=np.int64)  # arrival number of the sample held (-1: empty)
        self._keys = np.zeros(capacity, dtype=np.uint64)
        self._rkeys = np.zeros(capacity, dtype=np.uint64)  # reservoir keys of the samples held
        self._candidate = np.zeros(capacity, dtype=bool)  # held and not in the reservoir
        self._reservoir = np.zeros(capacity, dtype=np.int64)  # positions in the reservoir: [:_n_reservoir]
        self._n_reservoir = 0
        self._reservoir_view: tuple[tuple[str, ...], np.ndarray] | None = None  # (ids, positions) by arrival
        self._where = np.full(capacity, -1, dtype=np.int64)  # position -> index in _reservoir, or -1
        self._best = np.empty(0, dtype=np.int64)  # the last view's ranked positions
        self._best_seq = np.empty(0, dtype=np.int64)  # the arrival each of them held then
        self._rank_all = True  # scores changed everywhere: the next view looks at every sample
        self._added: list[int] = []  # positions filled since the last view
        self._left: list[str] = []  # ids removed (labeled, skipped) since drain_left()
        # The weak end of the candidates: every candidate at most (score, key) ``_bound`` is in ``_low``
        # (positions, with the arrival each held then), so evictions look there, not at the whole pool.
        self._low: np.ndarray | None = None  # None: to find again (the scores changed)
        self._low_seq = np.empty(0, dtype=np.int64)
        self._bound: tuple[float, np.uint64] = (np.inf, np.uint64(0))
        self._max_seq = -1  # the largest arrival number placed
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
        for name in (
            "features",
            "scores",
            "pinned",
            "arrived_at",
            "placed",
            "seq",
            "_keys",
            "_rkeys",
            "_candidate",
            "_reservoir",
            "_where",
            "ids",
        ):
            old = getattr(self, name)
            empty = -1 if name in ("seq", "_where") else None if name == "ids" else 0
            new = np.full((new_capacity, *old.shape[1:]), empty, old.dtype)
            new[:capacity] = old
            setattr(self, name, new)
        self._free[:0] = range(new_capacity - 1, capacity - 1, -1)

    def _place(
        self, ids: list[str], X: np.ndarray, s: np.ndarray, seq: np.ndarray, now: float, rkeys: np.ndarray
    ) -> np.ndarray:
        """Put samples in free places (as candidates); returns their positions."""
        k = len(ids)
        if not k:
            return np.empty(0, dtype=np.int64)
        positions = np.array(self._free[-k:][::-1], dtype=np.int64)
        del self._free[-k:]
        self.ids[positions] = ids
        self.index.update(zip(ids, positions.tolist(), strict=True))
        self._max_seq = max(self._max_seq, int(seq.max()))
        self.features[positions] = X
        self.scores[positions] = s
        self.seq[positions] = seq
        self._keys[positions] = tie_keys(seq, self.seed)
        self._rkeys[positions] = rkeys
        self.arrived_at[positions] = now
        self.placements += 1
        self.placed[positions] = self.placements
        self.pinned[positions] = False
        self._candidate[positions] = True
        self._added.extend(positions.tolist())
        self.size += k
        return positions

    def _vacate(self, positions: np.ndarray) -> None:
        """Free ``positions`` (held samples leaving the pool)."""
        if not len(positions):
            return
        for position in positions[self._where[positions] >= 0].tolist():
            self._leave_reservoir(position)
        index = self.index
        for sample_id in self.ids[positions].tolist():
            del index[sample_id]
        self.ids[positions] = None
        self.seq[positions] = -1
        self._candidate[positions] = False
        self.pinned[positions] = False
        self._free.extend(positions.tolist())
        self.size -= len(positions)

    def _join_reservoir(self, position: int) -> None:
        self._reservoir_view = None
        self._reservoir[self._n_reservoir] = position
        self._where[position] = self._n_reservoir
        self._n_reservoir += 1
        self._candidate[position] = False

    def _leave_reservoir(self, position: int) -> None:
        """Take ``position`` out of the reservoir (if in it): the last member takes its index."""
        where = int(self._where[position])
        if where < 0:
            return
        self._reservoir_view = None
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
        if seqs is not None and len(seqs) and int(np.min(seqs)) > self._max_seq and len(set(ids)) == len(ids):
            fresh = list(range(len(ids)))  # later arrivals than any held (the engine's): none is held
        else:
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
        if len(self._added) > max(len(self._best), self.size // 2):  # a view would look at nearly all
            self._added, self._rank_all = [], True
        return len(fresh)

    def _add_unbounded(
        self, ids: list[str], X: np.ndarray, s: np.ndarray, seq: np.ndarray, now: float
    ) -> None:
        self._grow(self.size + len(ids))
        positions = self._place(ids, X, s, seq, now, _reservoir_keys(seq, self.seed))
        self.arrivals += len(ids)
        for position in positions[self._rng.random(len(ids)) < self._unbounded_share].tolist():
            self._join_reservoir(position)  # a uniform share, for the random items

    def _admit(
        self, ids: list[str], X: np.ndarray, s: np.ndarray, seq: np.ndarray, now: float, may: np.ndarray
    ) -> None:
        """The reservoir first, then the candidates' competition (of the arrivals that ``may`` compete);
        the pool never exceeds max_size."""
        assert self.max_size is not None
        rkeys = _reservoir_keys(seq, self.seed)
        to_reservoir, displaced = self._reservoir_competition(rkeys)
        self._to_low(displaced)  # candidates now, competing with the arrivals
        self.passed += int((~to_reservoir & ~may).sum())
        arrivals = np.flatnonzero(~to_reservoir & may)
        keys = tie_keys(seq[arrivals], self.seed)
        candidates = self.size - self._n_reservoir
        excess = candidates + len(arrivals) - (self.max_size - self._n_reservoir - int(to_reservoir.sum()))
        if excess > 0:  # the weakest of the candidates free to leave and the arrivals leave
            low = self._weak_end(excess)
            k = min(excess, len(low) + len(arrivals))
            both = bottom_k(
                np.concatenate([self.scores[low], s[arrivals]]), np.concatenate([self._keys[low], keys]), k
            )
            leaving = low[both[both < len(low)]]
            self.evicted += len(leaving)
            self._vacate(leaving)
            out = np.zeros(len(arrivals), dtype=bool)
            out[both[both >= len(low)] - len(low)] = True
            self.rejected += int(out.sum())
            arrivals, keys = arrivals[~out], keys[~out]
        joining = np.flatnonzero(to_reservoir)
        self._grow(self.size + len(arrivals) + len(joining))
        for position in self._place(
            [ids[i] for i in joining.tolist()], X[joining], s[joining], seq[joining], now, rkeys[joining]
        ).tolist():
            self._join_reservoir(position)
        entering = [ids[i] for i in arrivals.tolist()]
        placed = self._place(entering, X[arrivals], s[arrivals], seq[arrivals], now, rkeys[arrivals])
        self._to_low(placed)
        self.arrivals += len(ids)

    def _weak_end(self, k: int) -> np.ndarray:
        """At least the ``k`` weakest candidates free to leave (all of them if fewer), among which the
        ``k`` weakest of all are: the weak end, found again over the whole pool when it ran short."""
        low = self._low
        if low is not None:
            low = low[self.seq[low] == self._low_seq]  # still the same samples
            self._low, self._low_seq = low, self.seq[low]
            free = low[~self.pinned[low]]
            if len(free) >= k or np.isinf(self._bound[0]):
                return free
        candidates = np.flatnonzero(self._candidate[: len(self.scores)])
        want = max(LOW_END, 2 * k + int(self.pinned[candidates].sum()))
        if len(candidates) <= want:
            low, self._bound = candidates, (np.inf, np.uint64(0))
        else:
            low = candidates[bottom_k(self.scores[candidates], self._keys[candidates], want)]
            last = np.lexsort((self._keys[low], self.scores[low]))[-1]
            self._bound = (float(self.scores[low[last]]), self._keys[low[last]])
        self._low, self._low_seq = low, self.seq[low]
        return low[~self.pinned[low]]

    def _to_low(self, positions: np.ndarray) -> None:
        """New candidates at the weak end join it (the weak end keeps every candidate up to its bound)."""
        if self._low is None or not len(positions):
            return
        weak = positions[_at_most(self.scores[positions], self._keys[positions], *self._bound)]
        if len(weak):
            self._low = np.concatenate([self._low, weak])
            self._low_seq = np.concatenate([self._low_seq, self.seq[weak]])
        if len(self._low) > 4 * LOW_END + self.size // 8:  # mostly stale entries: find it again
            self._low = None

    def _reservoir_competition(self, rkeys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which arrivals join the reservoir, and the members they displace (now candidates): it keeps
        the ``reservoir_size`` largest reservoir keys (a seeded hash of the arrival number) of all
        arrivals, a uniform sample of the stream that the same stream always rebuilds (leased members
        stay)."""
        joins = np.zeros(len(rkeys), dtype=bool)
        none = np.empty(0, dtype=np.int64)
        if not self.reservoir_size:
            return joins, none
        members = self._reservoir[: self._n_reservoir]
        leased = members[self.pinned[members]]
        movable = np.setdiff1d(members, leased, assume_unique=True) if len(leased) else members
        places = self.reservoir_size - len(leased)
        if len(movable) + len(rkeys) <= places:
            joins[:] = True
            return joins, none
        held = self._rkeys[movable]
        if len(movable) >= places and len(movable) and not (rkeys > held.min()).any():
            return joins, none  # a long stream: most batches hold no key larger than the reservoir's least
        both = np.concatenate([held, rkeys])
        keep = np.zeros(len(both), dtype=bool)
        keep[top_k(np.zeros(len(both)), both, max(places, 0))] = True
        displaced = movable[~keep[: len(movable)]]
        for position in displaced.tolist():
            self._leave_reservoir(position)
        return keep[len(movable) :], displaced

    # --- leaving --------------------------------------------------------------------------
    def remove(self, ids: list[str]) -> tuple[list[str], np.ndarray]:
        """Take samples out of the pool (labeled or skipped); returns the ids held and their features."""
        found = [i for i in ids if i in self.index]
        positions = np.array([self.index[i] for i in found], dtype=np.int64)
        features = self.features[positions].copy()
        self._vacate(positions)
        self.removed += len(positions)
        self._left.extend(found)
        return found, features

    def drain_left(self) -> list[str]:
        """The ids removed since the last call (their leases end)."""
        left, self._left = self._left, []
        return left

    def expire(self, max_age_s: float, now: float | None = None) -> int:
        """Let samples that arrived over ``max_age_s`` ago leave (not those pinned); returns how many."""
        now = time.time() if now is None else now
        places = len(self.scores)
        old = np.flatnonzero((self.seq[:places] >= 0) & (self.arrived_at[:places] < now - max_age_s))
        old = old[~self.pinned[old]]
        self._vacate(old)
        self.aged_out += len(old)
        return len(old)

    # --- scores ---------------------------------------------------------------------------
    def held(self) -> np.ndarray:
        """Positions that hold a sample."""
        return np.flatnonzero(self.seq[: len(self.scores)] >= 0)

    def set_scores(self, scores: np.ndarray, version: int, positions: np.ndarray | None = None) -> None:
        """Swap in a model version's scores for ``positions`` (default: every position)."""
        if positions is None:
            self.scores[: len(scores)] = scores
        else:
            self.scores[positions] = scores
        self.version = max(self.version, version)
        self._rank_all, self._low = True, None

    def placed_after(self, placements: int) -> np.ndarray:
        """The places filled since :attr:`placements` was ``placements`` (scores taken before are of
        the samples they held then)."""
        return np.flatnonzero(self.placed > placements)

    def pin(self, ids: list[str]) -> None:
        """Exactly these samples are leased now: they stay, whatever comes (unknown ids are ignored)."""
        self.pinned[:] = False
        self.pinned[[self.index[i] for i in ids if i in self.index]] = True

    # --- views ----------------------------------------------------------------------------
    def view(self, depth: int) -> PoolView:
        """The ``depth`` best-scored samples and ``depth`` of the reservoir, as they are now."""
        best = self._top(depth)
        cached = self._reservoir_view
        if cached is None or len(cached[1]) != min(depth, self._n_reservoir):  # members rarely change later
            members = self._reservoir[: self._n_reservoir]
            members = members[top_k(np.zeros(len(members)), self._keys[members], depth)]
            members = members[np.argsort(self.seq[members], kind="stable")]
            self._reservoir_view = cached = (tuple(self.ids[members].tolist()), members)
        reservoir, members = cached
        return PoolView(
            version=self.version,
            ranked=tuple(self.ids[best].tolist()),
            ranked_scores=self.scores[best],
            reservoir=reservoir,
            reservoir_scores=self.scores[members],
        )

    def _top(self, depth: int) -> np.ndarray:
        """Positions of the ``depth`` best held samples, best first.

        The last view kept twice as many: while at least ``depth`` of them are still held, the
        best are among them and the samples added since (every other sample ranked below them);
        otherwise, or once the scores changed, every sample competes again.
        """
        still = self._best[self.seq[self._best] == self._best_seq]
        if self._rank_all or len(still) < min(depth, self.size):
            competing = self.held()
        else:
            added = np.array(self._added, dtype=np.int64)
            added = added[self.seq[added] >= 0] if len(added) else added
            competing = np.union1d(still, added)
        keep = competing[top_k(self.scores[competing], self._keys[competing], 2 * depth)]
        keep = keep[np.lexsort((self._keys[keep], self.scores[keep]))[::-1]]
        self._best, self._best_seq = keep, self.seq[keep]
        self._added, self._rank_all = [], False
        return keep[:depth]

    # --- counts ---------------------------------------------------------------------------
    def counts(self) -> dict[str, int | None]:
        """The pool's size and bound, its reservoir, and what arrived and left: every arrival is
        held, passed (not asked about), rejected, evicted, aged out or removed (labeled or skipped)."""
        return {
            "pool": int(self.size),
            "max_pool": self.max_size,
            "reservoir": int(self._n_reservoir),
            "arrivals": int(self.arrivals),
            "evicted": int(self.evicted),
            "rejected": int(self.rejected),
            "aged_out": int(self.aged_out),
            "removed": int(self.removed),
            "passed": int(self.passed),
        }

    def reservoir(self) -> np.ndarray:
        """Positions in the reservoir (a copy)."""
        return self._reservoir[: self._n_reservoir].copy()
