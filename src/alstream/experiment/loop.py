"""The active-learning loop: the model of round k-1 picks, the oracle labels, a model k learns.

Each step is a plain function held in ``Steps``; the Prefect flow passes task-wrapped
versions of the same functions, so there is one loop whether or not Prefect runs it.

>>> from sklearn.datasets import load_iris
>>> from sklearn.linear_model import LogisticRegression
>>> X, y = load_iris(return_X_y=True)
>>> rounds = list(run_loop(LogisticRegression(max_iter=500), X, Oracle(y), [0, 50, 100],
...                        X, y, strategy="margin", batch_size=5, iterations=3))
>>> [r.n_labeled for r in rounds]
[3, 8, 13, 18]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from alstream.learning import estimators
from alstream.learning.estimators import Classifier
from alstream.learning.evaluation import evaluate
from alstream.learning.pool_strategies import PoolStrategy
from alstream.learning.querying import make_strategy, select


@dataclass(frozen=True)
class Oracle:
    """Reveals the true labels of pool rows, as a person would (simulation only)."""

    y: np.ndarray

    def __call__(self, indices: np.ndarray) -> np.ndarray:
        return np.asarray(self.y)[indices]


def select_batch(
    model: Classifier,
    X: np.ndarray,
    unlabeled: np.ndarray,
    k: int,
    strategy: str | PoolStrategy,
    seed: int,
    labels: np.ndarray | None = None,
) -> np.ndarray:
    """Pool indices of the ``k`` unlabeled rows ``strategy`` picks with ``model`` (the ``k`` it is least
    sure of, for an uncertainty strategy); ``labels`` are read at the labeled rows only."""
    return select(strategy, X, unlabeled, min(k, len(unlabeled)), model=model, labels=labels, seed=seed)


def ask_oracle(oracle: Callable[[np.ndarray], np.ndarray], indices: np.ndarray) -> np.ndarray:
    """The labels of ``indices``, from whoever answers."""
    return np.asarray(oracle(indices))


@dataclass(frozen=True)
class Steps:
    """The loop's steps; swap any of them (Prefect tasks, logging wrappers) without a new loop."""

    train_initial: Callable[..., Classifier] = estimators.fit
    retrain: Callable[..., Classifier] = estimators.fit
    update: Callable[..., Classifier] = estimators.update
    select: Callable[..., np.ndarray] = select_batch
    label: Callable[..., np.ndarray] = ask_oracle
    evaluate: Callable[..., dict[str, float]] = evaluate


PLAIN_STEPS = Steps()


@dataclass(frozen=True)
class Round:
    """One round: the model trained on ``n_labeled`` labels, and how it scores."""

    iteration: int
    n_labeled: int
    queried: np.ndarray
    model: Classifier
    metrics: dict[str, float] = field(default_factory=dict)


class RoundFigures(Protocol):
    """What a progress display reads of a round: a ``Round``, or a note of one that ran elsewhere."""

    @property
    def iteration(self) -> int: ...

    @property
    def n_labeled(self) -> int: ...

    @property
    def metrics(self) -> dict[str, float]: ...


def run_loop(
    model: Classifier,
    X: np.ndarray,
    oracle: Callable[[np.ndarray], np.ndarray],
    initial: Sequence[int] | np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    *,
    strategy: str | PoolStrategy = "entropy",
    batch_size: int = 20,
    iterations: int = 20,
    seed: int = 0,
    online: bool = False,
    refit_every: int = 0,
    classes: np.ndarray | None = None,
    steps: Steps = PLAIN_STEPS,
) -> Iterator[Round]:
    """Yield round 0 (the initial model) and then one round per query, until the pool is empty.

    With ``online`` and an estimator that has ``partial_fit``, each batch updates the model
    instead of refitting it; ``refit_every`` > 0 adds a full refit every that many rounds. A pool
    strategy named by ``strategy`` is made once, so it keeps what it learned of the pool over the rounds.
    """
    if batch_size < 1 or iterations < 0:
        raise ValueError("batch_size must be >= 1 and iterations >= 0")
    initial = np.asarray(initial, dtype=np.int64)
    labeled = np.zeros(len(X), dtype=bool)
    labeled[initial] = True
    first_labels = steps.label(oracle, initial)
    y_known = np.empty(len(X), dtype=first_labels.dtype)
    y_known[initial] = first_labels
    classes = np.unique(y_test) if classes is None else np.asarray(classes)
    online = online and estimators.supports_partial_fit(model)
    query = make_strategy(strategy) if isinstance(strategy, str) else strategy

    current = steps.train_initial(model, X[labeled], y_known[labeled])
    yield Round(0, int(labeled.sum()), initial, current, steps.evaluate(current, X_test, y_test, classes))
    for k in range(1, iterations + 1):
        unlabeled = np.flatnonzero(~labeled)
        if len(unlabeled) == 0:
            return
        picked = steps.select(current, X, unlabeled, batch_size, query, seed, y_known)  # model k-1
        y_known[picked] = steps.label(oracle, picked)
        labeled[picked] = True
        if online and not (refit_every and k % refit_every == 0):
            current = steps.update(current, X[picked], y_known[picked], classes)
        else:
            current = steps.retrain(model, X[labeled], y_known[labeled])
        metrics = steps.evaluate(current, X_test, y_test, classes)
        yield Round(k, int(labeled.sum()), picked, current, metrics)
