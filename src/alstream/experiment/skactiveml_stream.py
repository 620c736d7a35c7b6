"""scikit-activeml's stream strategies behind the ``ask(proba)`` of alstream's selectors, to compare them.

Each arrival goes to scikit-activeml on its own (``query`` then ``update``), as its tutorials run a
stream: its ``VariableUncertaintyBudgetManager.update`` checks the budget once per batch, not once per
arrival, so larger batches would run a slightly different rule. Its random numbers come from numpy's
PCG64 seeded like alstream's (a ``RandomState`` over that generator): given the same probabilities,
fixed uncertainty, variable uncertainty, split and random sampling ask about the very same arrivals;
randomized variable uncertainty draws its noise differently and agrees only in distribution.

>>> import numpy as np
>>> proba = np.random.default_rng(0).dirichlet([1.0, 1.0], size=300)
>>> theirs = SkactivemlSelector("variable_uncertainty", budget=0.1)
>>> from alstream.learning.selective import get_selector
>>> bool((theirs.ask(proba) == get_selector("variable_uncertainty", budget=0.1).ask(proba)).all())
True
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from skactiveml import stream
from skactiveml.base import SkactivemlClassifier
from skactiveml.stream import budgetmanager

from alstream.learning.selective import DEFAULT_BUDGET, DEFAULT_WINDOW, BudgetManager, selector_name


class KnownProbabilities(SkactivemlClassifier):
    """A "classifier" whose samples are their own class probabilities, so a strategy sees given ones."""

    def fit(
        self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None
    ) -> KnownProbabilities:
        return self

    def predict_proba(self, X: np.ndarray, **kwargs: object) -> np.ndarray:
        return np.asarray(X)


class SkactivemlSelector:
    """scikit-activeml's implementation of the selective strategy ``name``, with alstream's defaults."""

    def __init__(
        self, name: str, budget: float = DEFAULT_BUDGET, *, window: int | None = DEFAULT_WINDOW, seed: int = 0
    ) -> None:
        self.name = selector_name(name)
        self.budget = budget
        self.window = window
        self.seed = seed
        self._strategy = self._make()
        self._clf: KnownProbabilities | None = None

    def _make(self) -> Any:
        budget, w = self.budget, BudgetManager(self.budget, self.window).window_
        rng = np.random.RandomState(np.random.PCG64(self.seed))
        if self.name == "random":
            return stream.StreamRandomSampling(budget=budget, random_state=rng)
        if self.name == "fixed_uncertainty":  # its classes are set on the first batch
            return None
        managers = {
            "variable_uncertainty": lambda: budgetmanager.VariableUncertaintyBudgetManager(
                budget=budget, w=w
            ),
            "randomized_variable_uncertainty": lambda: budgetmanager.RandomVariableUncertaintyBudgetManager(
                budget=budget, w=w, random_state=rng
            ),
            "split": lambda: budgetmanager.SplitBudgetManager(budget=budget, w=w, random_state=rng),
        }
        strategies = {
            "variable_uncertainty": stream.VariableUncertainty,
            "randomized_variable_uncertainty": stream.RandomVariableUncertainty,
            "split": stream.Split,
        }
        return strategies[self.name](budget_manager=managers[self.name](), budget=budget, random_state=0)

    def ask(self, proba: np.ndarray) -> np.ndarray:
        """Which arrivals scikit-activeml asks about, one arrival at a time."""
        proba = np.asarray(proba, dtype=np.float64)
        classes = np.arange(proba.shape[1])
        if self._clf is None:
            self._clf = KnownProbabilities(classes=classes).fit(proba, classes)
            if self._strategy is None:
                w = BudgetManager(self.budget, self.window).window_
                manager = budgetmanager.FixedUncertaintyBudgetManager(classes, budget=self.budget, w=w)
                self._strategy = stream.FixedUncertainty(classes, budget_manager=manager, budget=self.budget)
        asked = np.zeros(len(proba), dtype=bool)
        with warnings.catch_warnings():  # its RandomState.get_state warns on a PCG64 (it restores it as is)
            warnings.simplefilter("ignore", RuntimeWarning)
            for i in range(len(proba)):
                row = proba[i : i + 1]
                clf = () if self.name == "random" else (self._clf,)
                queried = self._strategy.query(row, *clf)
                self._strategy.update(row, queried)
                asked[i] = len(queried) > 0
        return asked
