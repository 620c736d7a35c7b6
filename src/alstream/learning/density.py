"""Density-weighted uncertainty: information density (Settles & Craven 2008).

An uncertain sample that is also typical of the pool teaches more than an outlier. The density of a
sample is its mean similarity ``1 / (1 + distance)`` to a reference sample of the pool (seeded,
``n_reference`` rows: never all pairs), computed once per sample; its score is
``uncertainty * density ** beta``.

>>> X = np.array([[0.0], [0.1], [0.2], [5.0]])
>>> information_density(X).round(3).tolist()  # the outlier at 5.0 is the least dense
[0.727, 0.747, 0.729, 0.377]

>>> from sklearn.linear_model import LogisticRegression
>>> model = LogisticRegression().fit(np.array([[-1.0], [1.0]]), [0, 1])
>>> X = np.array([[-0.1], [-0.05], [0.0], [0.05], [8.0], [-8.0]])
>>> picked = DensityWeighted().query(X, np.arange(6), 3, model=model)
>>> sorted(picked.indices.tolist())  # uncertain and dense: not the outliers
[1, 2, 3]
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import pairwise_distances

from alstream.learning.estimators import Classifier
from alstream.learning.inference import probability_chunks
from alstream.learning.pool_strategies import in_id_order, needs_model
from alstream.learning.strategies import STRATEGIES, Selection, TopK, get_strategy, strategy_name, tie_keys

CHUNK = 4096  # rows compared with the reference at once


def information_density(
    X: np.ndarray, reference: np.ndarray | None = None, *, metric: str = "euclidean", chunk_size: int = CHUNK
) -> np.ndarray:
    """Each row's mean similarity ``1 / (1 + distance)`` to the rows of ``reference`` (default: ``X``
    itself, all pairs, as modAL's ``information_density``), ``chunk_size`` rows at a time."""
    X = np.asarray(X)
    reference = X if reference is None else np.asarray(reference)
    out = np.empty(len(X))
    for start in range(0, len(X), chunk_size):
        distances = pairwise_distances(X[start : start + chunk_size], reference, metric=metric)
        out[start : start + chunk_size] = (1.0 / (1.0 + distances)).mean(axis=1)
    return out


class DensityWeighted:
    """Information density: ``uncertainty(proba) * density ** beta``, highest first.

    ``uncertainty``: ``margin``, ``entropy`` or ``least_confident``; ``beta``: the density's weight
    (0: plain uncertainty); ``n_reference``: rows of the pool the density is measured against, drawn
    once by seeded hash of their ids; ``metric``: any of ``sklearn.metrics.pairwise_distances``.
    ``ids_`` (sorted) and ``density_`` keep the density of every sample scored so far.
    """

    def __init__(
        self,
        uncertainty: str = "margin",
        beta: float = 1.0,
        n_reference: int = 1000,
        metric: str = "euclidean",
    ) -> None:
        self.uncertainty = uncertainty
        self.beta = beta
        self.n_reference = n_reference
        self.metric = metric

    def query(
        self,
        X: np.ndarray,
        unlabeled: np.ndarray,
        k: int,
        *,
        model: Classifier | None = None,
        labels: np.ndarray | None = None,
        seed: int = 0,
        ids: np.ndarray | None = None,
        chunk_size: int = 16384,
    ) -> Selection:
        """The ``k`` rows of ``unlabeled`` with the highest density-weighted uncertainty."""
        model = needs_model(model, "density")
        name = strategy_name(self.uncertainty)
        if name not in STRATEGIES or name == "random":
            raise ValueError(
                f"uncertainty must be margin, entropy or least_confident, got {self.uncertainty!r}"
            )
        rows, ids = in_id_order(unlabeled, ids=ids, k=k, n=len(X))
        weights = self.densities(X, ids, rows, seed) ** self.beta
        score, top = get_strategy(name), TopK(k, seed)
        for part, proba in probability_chunks(model, X[rows], chunk_size):
            top.push(score(proba) * weights[part], ids=ids[rows[part]])
        picked = top.result()
        return Selection(indices=rows[picked.indices], scores=picked.scores)

    def densities(self, X: np.ndarray, ids: np.ndarray, rows: np.ndarray, seed: int) -> np.ndarray:
        """The density of each of ``rows``, computed for those not seen before (the reference is
        drawn from ``X`` on the first call, or when the seed changes)."""
        if getattr(self, "ids_", None) is None or getattr(self, "seed_", None) != seed:
            drawn = np.argsort(tie_keys(ids, seed), kind="stable")[: self.n_reference]
            self.reference_ = X[drawn]  # in key order: the same whatever the row order
            self.ids_, self.density_, self.seed_ = np.empty(0, dtype=ids.dtype), np.empty(0), seed
        wanted = ids[rows]
        where = np.minimum(np.searchsorted(self.ids_, wanted), max(len(self.ids_) - 1, 0))
        known = (self.ids_[where] == wanted) if len(self.ids_) else np.zeros(len(rows), dtype=bool)
        if not known.all():
            new = information_density(X[rows[~known]], self.reference_, metric=self.metric)
            merged = np.concatenate([self.ids_, wanted[~known]])
            order = np.argsort(merged, kind="stable")
            self.ids_, self.density_ = merged[order], np.concatenate([self.density_, new])[order]
            where = np.searchsorted(self.ids_, wanted)
        return self.density_[where]
