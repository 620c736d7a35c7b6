"""Query strategies: plain functions from class probabilities to uncertainty scores.

A strategy maps a probability matrix ``proba`` of shape ``(n_samples, n_classes)`` to one
score per row; the higher the score, the less sure the model is, the sooner a person should
label that sample. Selection keeps the ``k`` highest scores with ``np.argpartition`` (never a
full sort of the pool) and breaks ties with a seeded hash of each sample's id, so the choice
depends on the seed and the ids, never on row order.

>>> import numpy as np
>>> proba = np.array([[0.9, 0.1], [0.5, 0.5], [0.7, 0.3]])
>>> least_confident(proba).round(2).tolist()
[0.1, 0.5, 0.3]
>>> query_proba(proba, k=2, strategy="margin").indices.tolist()
[1, 2]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from alstream.names import registered

Strategy = Callable[[np.ndarray], np.ndarray]
DEFAULT_CHUNK_SIZE = 8192


def _as_float(proba: np.ndarray) -> np.ndarray:
    proba = np.asarray(proba)
    return proba if np.issubdtype(proba.dtype, np.floating) else proba.astype(np.float64)


def _columns(proba: np.ndarray) -> np.ndarray:
    """The classes as contiguous rows, so per-class operations run at full speed."""
    return np.ascontiguousarray(_as_float(proba).T)


def least_confident(proba: np.ndarray) -> np.ndarray:
    """One minus the probability of the most likely class.

    >>> least_confident(np.array([[0.5, 0.5], [1.0, 0.0]])).tolist()
    [0.5, 0.0]
    """
    cols = _columns(proba)
    top = cols[0].copy()
    for col in cols[1:]:
        np.maximum(top, col, out=top)
    return np.subtract(1.0, top, out=top)


def margin(proba: np.ndarray) -> np.ndarray:
    """One minus the gap between the two most likely classes (1 = a tie).

    >>> margin(np.array([[0.6, 0.3, 0.1], [0.4, 0.4, 0.2]])).round(2).tolist()
    [0.7, 1.0]
    """
    cols = _columns(proba)
    if len(cols) == 1:
        return np.zeros(cols.shape[1], dtype=cols.dtype)
    first = np.maximum(cols[0], cols[1])
    second = np.minimum(cols[0], cols[1])
    lower = np.empty_like(first)
    for col in cols[2:]:
        np.minimum(first, col, out=lower)
        np.maximum(second, lower, out=second)
        np.maximum(first, col, out=first)
    np.subtract(first, second, out=first)
    return np.subtract(1.0, first, out=first)


def entropy(proba: np.ndarray) -> np.ndarray:
    """Shannon entropy of each row in nats, with 0 * log 0 = 0.

    >>> entropy(np.array([[0.5, 0.5], [1.0, 0.0]])).round(4).tolist()
    [0.6931, 0.0]
    """
    proba = _as_float(proba)
    by_class = proba.flags.f_contiguous and not proba.flags.c_contiguous  # scoring's fast path
    data = proba.T if by_class else proba

    def total(terms: np.ndarray) -> np.ndarray:
        return _row_sum(terms) if by_class else np.einsum("ij->i", terms)

    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.log(data)
        terms *= data
    sums = total(terms)
    if np.isnan(sums).any():  # a zero probability: 0 * log 0 is 0, not nan
        terms[data == 0] = 0.0
        sums = total(terms)
    return np.subtract(0.0, sums, out=sums)


def _row_sum(cols: np.ndarray) -> np.ndarray:
    total = cols[0].copy()
    for col in cols[1:]:
        total += col
    return total


def random(proba: np.ndarray) -> np.ndarray:
    """The same score for every sample: the seeded tie-break then draws a uniform sample.

    This is the continuous-training baseline.

    >>> random(np.array([[0.9, 0.1], [0.5, 0.5]])).tolist()
    [0.0, 0.0]
    """
    return np.zeros(len(proba))


STRATEGIES: dict[str, Strategy] = {
    "entropy": entropy,
    "margin": margin,
    "least_confident": least_confident,
    "random": random,
}


def strategy_name(name: str) -> str:
    """The registered name ``name`` stands for (``Least-Confident`` -> ``least_confident``).

    >>> strategy_name(" Least-Confident ")
    'least_confident'
    """
    return registered(name, sorted(STRATEGIES), "strategy")


def get_strategy(name: str) -> Strategy:
    """The strategy registered under ``name`` (``least-confident`` works too).

    >>> get_strategy("least-confident") is least_confident
    True
    """
    return STRATEGIES[strategy_name(name)]


def tie_keys(ids: np.ndarray, seed: int) -> np.ndarray:
    """A seeded pseudo-random 64-bit key per id (splitmix64), used to break ties."""
    x = np.asarray(ids).astype(np.uint64) + np.uint64((seed * 0x9E3779B97F4A7C15) % 2**64)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@dataclass(frozen=True)
class Selection:
    """The chosen rows, most uncertain first, with their scores."""

    indices: np.ndarray
    scores: np.ndarray


class TopK:
    """Keeps the ``k`` best-scored rows seen so far, fed one chunk of scores at a time.

    Order is by score, then by the seeded tie key of the row's id, so the result is the
    same whatever the order and size of the chunks.

    >>> top = TopK(2, seed=0)
    >>> top.push(np.array([0.1, 0.9]), ids=np.array([0, 1]))
    >>> top.push(np.array([0.5, 0.2]), ids=np.array([2, 3]))
    >>> top.result().indices.tolist()
    [1, 2]
    """

    def __init__(self, k: int, seed: int = 0) -> None:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        self.k, self.seed, self.seen = k, seed, 0
        self._scores = np.empty(0)
        self._ids = np.empty(0, dtype=np.int64)
        self._positions = np.empty(0, dtype=np.int64)

    def push(self, scores: np.ndarray, ids: np.ndarray | None = None) -> None:
        """Offer a chunk of scores; ``ids`` default to the rows' positions in the stream."""
        scores = np.asarray(scores, dtype=np.float64)
        if np.isnan(scores).any():
            raise ValueError("scores contain NaN: check the model's probabilities")
        positions = np.arange(self.seen, self.seen + len(scores))
        ids = positions if ids is None else np.asarray(ids)
        self.seen += len(scores)
        if len(self._scores) >= self.k:  # only rows that can still make the cut
            keep = np.flatnonzero(scores >= self._scores.min())
            scores, ids, positions = scores[keep], ids[keep], positions[keep]
        scores = np.concatenate([self._scores, scores])
        ids = np.concatenate([self._ids, ids])
        positions = np.concatenate([self._positions, positions])
        best = self._best(scores, ids)
        self._scores, self._ids, self._positions = scores[best], ids[best], positions[best]

    def _best(self, scores: np.ndarray, ids: np.ndarray) -> np.ndarray:
        if len(scores) <= self.k:
            return np.arange(len(scores))
        cut = np.partition(scores, len(scores) - self.k)[len(scores) - self.k]
        above = np.flatnonzero(scores > cut)
        tied = np.flatnonzero(scores == cut)
        wanted = self.k - len(above)
        if wanted < len(tied):
            keys = tie_keys(ids[tied], self.seed)
            tied = tied[np.argpartition(keys, len(keys) - wanted)[len(keys) - wanted :]]
        return np.concatenate([above, tied])

    def result(self) -> Selection:
        """The selection, most uncertain first (ties in seeded-key order)."""
        if self.seen < self.k:
            raise ValueError(f"asked for {self.k} samples but the pool has only {self.seen} to choose from")
        order = np.lexsort((tie_keys(self._ids, self.seed), self._scores))[::-1]
        return Selection(indices=self._positions[order], scores=self._scores[order])


def chunk_slices(n: int, chunk_size: int) -> Iterator[slice]:
    """Consecutive slices of ``chunk_size`` rows covering ``range(n)``."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    for start in range(0, n, chunk_size):
        yield slice(start, min(start + chunk_size, n))


def select_from_chunks(
    proba_chunks: Iterable[tuple[slice, np.ndarray]],
    n: int,
    k: int,
    strategy: str | Strategy,
    seed: int,
    ids: np.ndarray | None,
) -> Selection:
    """The ``k`` most uncertain rows of a pool given as ``(rows, proba)`` chunks."""
    score = get_strategy(strategy) if isinstance(strategy, str) else strategy
    if ids is not None and len(ids) != n:
        raise ValueError(f"got {len(ids)} ids for a pool of {n} samples")
    if k > n:
        raise ValueError(f"asked for {k} samples but the pool has only {n} to choose from")
    top = TopK(k, seed)
    for rows, proba in proba_chunks:
        top.push(score(proba), ids=None if ids is None else ids[rows])
    return top.result()


def query_proba(
    proba: np.ndarray,
    k: int,
    strategy: str | Strategy = "entropy",
    *,
    seed: int = 0,
    ids: np.ndarray | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Selection:
    """The ``k`` most uncertain rows of a probability matrix, scored chunk by chunk.

    >>> query_proba(np.array([[0.2, 0.8], [0.5, 0.5]]), k=1).indices.tolist()
    [1]
    """
    proba = np.asarray(proba)
    if proba.ndim != 2:
        raise ValueError(f"proba must be 2-D (samples x classes), got shape {proba.shape}")
    chunks = ((rows, proba[rows]) for rows in chunk_slices(len(proba), chunk_size))
    return select_from_chunks(chunks, len(proba), k, strategy, seed, ids)
