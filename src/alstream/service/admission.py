"""How arrivals enter the pool: scored by the serving model and, when a selective strategy is set,
asked about (or let pass, to the reservoir only) within the label budget.

A model that cannot score new samples must not keep them out: they enter unscored, and the next
version's re-score ranks them.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from alstream.learning.estimators import Classifier
from alstream.learning.inference import probability_chunks, score_pool
from alstream.learning.selective import Selector, get_selector
from alstream.learning.strategies import Strategy
from alstream.service.budget import LabelBudget
from alstream.service.pool import Pool

log = logging.getLogger(__name__)
CHUNK = 16384


class Admission:
    """Scores arrivals and offers them to the pool; one writer (the engine's thread)."""

    def __init__(
        self,
        strategy: Strategy,
        selector: str | None = None,
        labels_per_hour: float | None = None,
        seed: int = 0,
    ) -> None:
        self.strategy = strategy
        self.selector: Selector | None = None if selector is None else get_selector(selector, 1.0, seed=seed)
        self.budget = LabelBudget(labels_per_hour)

    def score(self, model: Classifier | None, X: np.ndarray) -> np.ndarray:
        """The strategy's score of each row under ``model`` (0 without a model)."""
        if model is None or not len(X):
            return np.zeros(len(X))
        return score_pool(model, X, self.strategy)

    def offer(
        self, pool: Pool, ids: list[str], X: np.ndarray, seqs: np.ndarray, model: Classifier | None
    ) -> np.ndarray:
        """Offer new unlabeled samples to ``pool``; returns their scores."""
        scores, asked = self._judge(model, X)
        self.budget.arrived(len(X), time.time())
        pool.add(ids, X, scores, seqs=seqs, asked=asked)
        return scores

    def labeled(self, n: int) -> None:
        """People gave ``n`` new labels (the budget's measure, when it is ``auto``)."""
        self.budget.labeled(n, time.time())

    def _judge(self, model: Classifier | None, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        try:
            if self.selector is None or model is None or not len(X):
                return self.score(model, X), None
            proba = np.concatenate([p for _, p in probability_chunks(model, X, CHUNK)])
            share = self.budget.share(time.time())
            self.selector.budget = share
            manager = getattr(self.selector, "budget_manager_", None)
            if manager is not None:
                manager.budget = share
            return self.strategy(proba), self.selector.ask(proba)
        except Exception:
            log.exception("the model cannot score %d new samples: they join unscored", len(X))
            return np.zeros(len(X)), None

    def state(self) -> dict | None:
        """What ``/stats`` shows of the selective strategy and its budget (None: none is set)."""
        if self.selector is None:
            return None
        return {"strategy": type(self.selector).__name__, **self.budget.state(time.time())}
