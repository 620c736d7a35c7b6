"""Every query strategy by name: those that score probabilities and those that read the pool.

``alstream.learning.strategies`` holds the strategies that are a function of the model's probabilities
(``entropy``, ``margin``, ``least_confident``, ``random``); the service and any pool use them. The
pool strategies here also read the features, the labels or a committee of models:

* ``cluster_margin``: margin candidates spread over clusters (``alstream.learning.diversity``);
* ``committee_vote``, ``committee_kl``: query by committee (``alstream.learning.committee``);
* ``density``: density-weighted margin (``alstream.learning.density``);
* ``typical``: TypiClust, no model needed (``alstream.learning.cold_start``).

``make_strategy`` gives a fresh pool strategy for one run (it keeps its clusters and densities from
round to round) or a probability strategy's name; ``select`` picks with either.

>>> query_strategy_name("Cluster-Margin")
'cluster_margin'
>>> from sklearn.datasets import load_iris
>>> from sklearn.linear_model import LogisticRegression
>>> X, y = load_iris(return_X_y=True)
>>> model = LogisticRegression(max_iter=500).fit(X[::10], y[::10])
>>> unlabeled = np.flatnonzero(np.arange(150) % 10)
>>> [len(select(make_strategy(name), X, unlabeled, 4, model=model)) for name in ("margin", "typical")]
[4, 4]
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from alstream.learning.cold_start import Typical
from alstream.learning.committee import QueryByCommittee
from alstream.learning.density import DensityWeighted
from alstream.learning.diversity import ClusterMargin
from alstream.learning.estimators import Classifier
from alstream.learning.inference import query_model
from alstream.learning.pool_strategies import PoolStrategy
from alstream.learning.strategies import STRATEGIES, Strategy
from alstream.names import registered

POOL_STRATEGIES: dict[str, Callable[[], PoolStrategy]] = {
    "cluster_margin": ClusterMargin,
    "committee_vote": lambda: QueryByCommittee("vote"),
    "committee_kl": lambda: QueryByCommittee("kl"),
    "density": DensityWeighted,
    "typical": Typical,
}


def query_strategy_names() -> list[str]:
    """Every name ``make_strategy`` knows: the probability strategies, then the pool strategies."""
    return [*STRATEGIES, *POOL_STRATEGIES]


def query_strategy_name(name: str) -> str:
    """The registered name ``name`` stands for, among all query strategies."""
    return registered(name, query_strategy_names(), "strategy")


def make_strategy(name: str) -> str | PoolStrategy:
    """A probability strategy's registered name, or a fresh pool strategy with its defaults."""
    key = query_strategy_name(name)
    return key if key in STRATEGIES else POOL_STRATEGIES[key]()


def select(
    strategy: str | Strategy | PoolStrategy,
    X: np.ndarray,
    unlabeled: np.ndarray,
    k: int,
    *,
    model: Classifier | None = None,
    labels: np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """The rows of ``X`` (from ``unlabeled``) that ``strategy`` picks: a name, a function of the
    probabilities, or a pool strategy."""
    if isinstance(strategy, str):
        strategy = make_strategy(strategy)
    unlabeled = np.asarray(unlabeled, dtype=np.int64)
    if not isinstance(strategy, PoolStrategy):  # scores from probabilities
        if model is None:
            raise ValueError(f"{strategy} needs a fitted model: label an initial set first (or use typical)")
        return unlabeled[query_model(model, X[unlabeled], k, strategy, seed=seed, ids=unlabeled).indices]
    return strategy.query(X, unlabeled, k, model=model, labels=labels, seed=seed).indices
