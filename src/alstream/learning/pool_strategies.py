"""Pool strategies: what a strategy that needs more than probabilities is given, and returns.

A pool strategy sees the whole pool ``X`` (labeled rows and unlabeled ones), which of its rows
may be picked (``unlabeled``), the model of the last round (or None before there is one), the
labels known so far, and each row's id. ``query`` returns a ``Selection``: ``k`` rows of ``X``
from ``unlabeled``, in the order they were picked. Constructors only store parameters (as in
scikit-learn); what a strategy learns about the pool (clusters, densities) it keeps in attributes
ending in ``_`` and reuses on the next query.

Every strategy reads the rows in id order (``in_id_order``), so the picks depend on the seed and
the ids, never on row order.

>>> rows, ids = in_id_order(np.array([1, 2]), ids=np.array([30, 20, 10]), k=1)
>>> rows.tolist(), ids.tolist()
([2, 1], [30, 20, 10])
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from alstream.learning.estimators import Classifier
from alstream.learning.strategies import Selection


@runtime_checkable
class PoolStrategy(Protocol):
    """A query strategy that reads the pool: its ``query`` picks ``k`` rows of ``X`` from ``unlabeled``."""

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
    ) -> Selection: ...


def pool_ids(n: int, ids: np.ndarray | None) -> np.ndarray:
    """The ids of a pool of ``n`` rows: ``ids`` checked (one per row, no two alike), or the positions."""
    if ids is None:
        return np.arange(n)
    ids = np.asarray(ids)
    if ids.shape != (n,):
        raise ValueError(f"got {len(ids)} ids for a pool of {n} samples")
    if len(np.unique(ids)) != n:
        raise ValueError("ids must be unique")
    return ids


def in_id_order(
    unlabeled: np.ndarray, *, ids: np.ndarray | None = None, k: int, n: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``unlabeled`` sorted by id, and the pool's ids (``n`` rows; default: as many as ids).

    Refuses a ``k`` below 1 or above the rows to choose from, and rows outside the pool.
    """
    unlabeled = np.asarray(unlabeled, dtype=np.int64)
    if n is None:
        if ids is None:
            raise ValueError("give the pool's size n or its ids")
        n = len(ids)
    ids = pool_ids(n, ids)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if len(unlabeled) and (unlabeled.min() < 0 or unlabeled.max() >= n):
        raise ValueError(f"unlabeled rows must be in [0, {n})")
    if len(np.unique(unlabeled)) != len(unlabeled):
        raise ValueError("unlabeled rows must be unique")
    if k > len(unlabeled):
        raise ValueError(f"asked for {k} samples but the pool has only {len(unlabeled)} to choose from")
    return unlabeled[np.argsort(ids[unlabeled], kind="stable")], ids


def labeled_rows(n: int, unlabeled: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The rows of a pool of ``n`` that are not in ``unlabeled``, sorted by id."""
    mask = np.ones(n, dtype=bool)
    mask[unlabeled] = False
    rows = np.flatnonzero(mask)
    return rows[np.argsort(ids[rows], kind="stable")]


def needs_model(model: Classifier | None, name: str) -> Classifier:
    """``model``, or a ValueError that says the strategy ``name`` needs one."""
    if model is None:
        raise ValueError(f"{name} needs a fitted model: label an initial set first (or use typical)")
    return model
