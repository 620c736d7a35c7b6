"""Selective sampling: decide, arrival by arrival, whether one is worth a person's time, under a budget.

The strategies of Žliobaitė et al. (2014, "Active learning with drifting streaming data"), as
scikit-activeml's ``stream`` module and MOA implement them. Each one looks at the model's confidence
in an arrival (its largest class probability) and either asks for the label or lets it pass; a
``BudgetManager`` shared by the uncertainty strategies keeps the share asked at ``budget`` over a
window of recent arrivals.

A selector's ``ask`` takes the class probabilities of a batch of arrivals, in arrival order, and
returns which of them to ask about; its state (threshold, budget spent, random draws) carries over
from one batch to the next, so any split of a stream into batches gives the same answers.

>>> import numpy as np
>>> proba = np.random.default_rng(0).dirichlet([1.0, 1.0], size=10_000)
>>> selector = get_selector("variable_uncertainty", budget=0.1)
>>> asked = selector.ask(proba)
>>> round(float(asked.mean()), 2)
0.1
>>> bool(proba[asked].max(axis=1).mean() < proba.max(axis=1).mean())  # it asks about unsure ones
True
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass

import numpy as np

from alstream.names import registered

DEFAULT_BUDGET = 0.1
DEFAULT_WINDOW = None  # 100 arrivals, as in scikit-activeml and MOA, or 10 / budget if that is more
BLOCK = 1024  # random numbers drawn at a time


@dataclass(eq=False)
class BudgetManager:
    """Keeps the share of arrivals asked about at ``budget`` over a window of about ``window`` arrivals.

    The labels spent are estimated as ``u <- u * (w - 1) / w + asked`` (Žliobaitė et al., 2014);
    an arrival may be asked about only while ``u / w < budget``. So ``u`` stays below
    ``budget * w + 1``, and of the first ``n`` arrivals at most ``limit(n)`` are asked about: the
    budget's share, one window's worth at the start, and at most ``1 / w`` more per arrival. The
    default window, ``max(100, 10 / budget)`` arrivals, keeps that within a tenth of the budget.

    >>> manager = BudgetManager(budget=0.25, window=20)
    >>> manager.ask(12, wants=lambda i: True).astype(int).tolist()  # it would ask about everything
    [1, 1, 1, 1, 1, 1, 0, 0, 1, 0, 0, 0]
    >>> float(manager.ask(10_000, wants=lambda i: True).mean()), manager.limit(10_012)
    (0.2616, 3009)
    """

    budget: float = DEFAULT_BUDGET
    window: int | None = DEFAULT_WINDOW

    def check(self) -> None:
        """Raise a ValueError if a parameter is out of range (``ask`` checks on its first call)."""
        _check_in("budget", self.budget, 0.0, 1.0, low_open=True)
        if self.window is not None and not (isinstance(self.window, int | np.integer) and self.window >= 1):
            raise ValueError(f"window must be a whole number of arrivals, at least 1, got {self.window!r}")

    @property
    def window_(self) -> int:
        """The window in arrivals: ``window``, or by default ``max(100, 10 / budget)``."""
        return self.window or max(100, math.ceil(10 / self.budget))

    def limit(self, n: int) -> int:
        """The most arrivals of the first ``n`` it lets through: the sum of ``asked`` is ``u_n`` plus
        ``u_t / w`` summed over ``t < n``, each term below ``budget * w + 1``."""
        return math.floor((self.budget * self.window_ + 1) * (1 + n / self.window_))

    def ask(self, n: int, wants: Callable[[int], bool]) -> np.ndarray:
        """Which of the next ``n`` arrivals to ask about: arrival ``i`` is asked about if budget is left
        and ``wants(i)``, which is called only then, in order (so it may update its own state)."""
        if not hasattr(self, "spent_"):
            self.check()
            self.spent_ = 0.0
        asked = np.zeros(n, dtype=bool)
        spent, budget, window = self.spent_, self.budget, self.window_
        keep = (window - 1) / window
        for i in range(n):
            if spent / window < budget and wants(i):
                asked[i] = True
                spent = spent * keep + 1.0
            else:
                spent *= keep
        self.spent_ = spent
        return asked


class Selector(ABC):
    """Decides which arrivals to ask about from their class probabilities; subclasses give the rule.

    Subclasses are dataclasses of their parameters: building one only stores them, as in scikit-learn;
    the first batch checks them and sets up the state (the attributes ending in ``_``).
    """

    budget: float

    def ask(self, proba: np.ndarray) -> np.ndarray:
        """A boolean mask over the rows of ``proba`` (arrivals x classes, in arrival order): which to ask
        about. Updates the selector's state as it goes, arrival by arrival."""
        proba = np.asarray(proba, dtype=np.float64)
        if proba.ndim != 2 or proba.shape[1] < 2:
            raise ValueError(f"proba must be 2-D (arrivals x classes, 2 or more), got shape {proba.shape}")
        if np.isnan(proba).any():
            raise ValueError("proba contains NaN: check the model's probabilities")
        if not hasattr(self, "n_classes_"):
            self._start(proba.shape[1])
        elif proba.shape[1] != self.n_classes_:
            raise ValueError(f"proba has {proba.shape[1]} classes, earlier batches had {self.n_classes_}")
        return self._ask(proba)

    def check(self) -> None:
        """Raise a ValueError if a parameter is out of range (``ask`` checks on its first call)."""
        _check_in("budget", self.budget, 0.0, 1.0, low_open=True)

    def _start(self, n_classes: int) -> None:
        """Check the parameters and set the state up, on the first batch."""
        self.check()
        self.n_classes_ = n_classes

    @abstractmethod
    def _ask(self, proba: np.ndarray) -> np.ndarray:
        """The mask for a batch, given checked probabilities."""


@dataclass(eq=False)
class FixedUncertainty(Selector):
    """Asks about an arrival when the model's confidence is at most ``threshold``, budget permitting.

    The threshold defaults to ``1/C + budget * (1 - 1/C)`` for ``C`` classes, as scikit-activeml's.
    It does not move: once the model is sure of most arrivals, the budget goes unspent.

    >>> FixedUncertainty(budget=0.2).ask(np.array([[0.5, 0.5], [0.9, 0.1], [0.55, 0.45]])).tolist()
    [True, False, True]
    """

    budget: float = DEFAULT_BUDGET
    _: KW_ONLY
    threshold: float | None = None
    window: int | None = DEFAULT_WINDOW

    def check(self) -> None:
        super().check()
        if self.threshold is not None:
            _check_in("threshold", self.threshold, 0.0, 1.0)
        BudgetManager(self.budget, self.window).check()

    def _start(self, n_classes: int) -> None:
        super()._start(n_classes)
        default = 1 / n_classes + self.budget * (1 - 1 / n_classes)
        self.threshold_ = default if self.threshold is None else self.threshold
        self.budget_manager_ = BudgetManager(self.budget, self.window)

    def _ask(self, proba: np.ndarray) -> np.ndarray:
        sure = (proba.max(axis=1) > self.threshold_).tolist()
        return self.budget_manager_.ask(len(proba), lambda i: not sure[i])


@dataclass(eq=False)
class VariableUncertainty(Selector):
    """Asks about an arrival when the model's confidence is below a threshold that moves with the stream.

    After each arrival with budget left, the threshold goes down by ``step`` (relative) if it was
    asked about, up if not: it settles where the budget is spent on the least sure arrivals, however
    sure the model becomes.

    >>> selector = VariableUncertainty(budget=0.5, step=0.1)
    >>> selector.ask(np.array([[0.6, 0.4], [0.99, 0.01]])).tolist(), round(selector.threshold_, 2)
    ([True, False], 0.99)
    """

    budget: float = DEFAULT_BUDGET
    _: KW_ONLY
    step: float = 0.01
    threshold: float = 1.0
    window: int | None = DEFAULT_WINDOW

    def check(self) -> None:
        super().check()
        _check_in("step", self.step, 0.0, 1.0, low_open=True)
        _check_in("threshold", self.threshold, 0.0, np.inf, low_open=True)
        BudgetManager(self.budget, self.window).check()

    def _start(self, n_classes: int) -> None:
        super()._start(n_classes)
        self.threshold_ = float(self.threshold)
        self.budget_manager_ = BudgetManager(self.budget, self.window)

    def _ask(self, proba: np.ndarray) -> np.ndarray:
        confidence = proba.max(axis=1).tolist()
        return self.budget_manager_.ask(len(confidence), lambda i: self._below_threshold(confidence[i]))

    def _below_threshold(self, confidence: float) -> bool:
        """Whether ``confidence`` is below the (randomized) threshold; moves the threshold."""
        asked = confidence < self.threshold_ * self._noise()
        self.threshold_ *= (1 - self.step) if asked else (1 + self.step)
        return asked

    def _noise(self) -> float:
        return 1.0


@dataclass(eq=False)
class RandomizedVariableUncertainty(VariableUncertainty):
    """Variable uncertainty against a threshold multiplied by a draw from N(1, ``delta``) each time.

    The noise sometimes asks about an arrival the model is sure of, which is how the strategy notices
    a change in the stream (drift) in regions where the model is confidently wrong.

    >>> proba = np.random.default_rng(1).dirichlet([1.0, 1.0], size=5_000)
    >>> sure = proba.max(axis=1) > 0.95
    >>> asked = RandomizedVariableUncertainty(budget=0.1, seed=0).ask(proba)
    >>> bool((asked & sure).any()), bool((VariableUncertainty(budget=0.1).ask(proba) & sure).any())
    (True, False)
    """

    _: KW_ONLY
    delta: float = 1.0
    seed: int = 0

    def check(self) -> None:
        super().check()
        _check_in("delta", self.delta, 0.0, np.inf, low_open=True)

    def _start(self, n_classes: int) -> None:
        super()._start(n_classes)
        self.normal_ = Draws(np.random.default_rng(self.seed), normal=True)

    def _noise(self) -> float:
        return 1.0 + self.delta * self.normal_()


@dataclass(eq=False)
class Split(VariableUncertainty):
    """Variable uncertainty, except that a ``random_share`` of the arrivals with budget left is decided
    by a coin that asks with probability ``budget``: an unbiased sample that also sees drift.

    >>> proba = np.random.default_rng(1).dirichlet([1.0, 1.0], size=5_000)
    >>> a, b = Split(budget=0.1, seed=0).ask(proba), Split(budget=0.1, seed=0).ask(proba)
    >>> round(float(a.mean()), 2), bool((a == b).all())  # the same seed, the same answers
    (0.1, True)
    """

    _: KW_ONLY
    random_share: float = 0.1
    seed: int = 0

    def check(self) -> None:
        super().check()
        _check_in("random_share", self.random_share, 0.0, 1.0, low_open=True, high_open=True)

    def _start(self, n_classes: int) -> None:
        super()._start(n_classes)
        self.uniform_ = Draws(np.random.default_rng(self.seed))

    def _ask(self, proba: np.ndarray) -> np.ndarray:
        confidence = proba.max(axis=1).tolist()

        def wants(i: int) -> bool:
            if self.uniform_() < self.random_share:  # the random part
                return self.uniform_() <= self.budget
            return self._below_threshold(confidence[i])

        return self.budget_manager_.ask(len(confidence), wants)


@dataclass(eq=False)
class RandomSampling(Selector):
    """Asks about each arrival with probability ``budget``, whatever the model thinks: the baseline.

    It needs no budget manager: the coin spends the budget on average, as scikit-activeml's
    ``StreamRandomSampling`` does (a window would cut its chance runs and leave it about 13% short
    of the labels the other strategies use, at a budget of 0.1 over 100 arrivals).

    >>> round(float(RandomSampling(budget=0.1, seed=0).ask(np.full((10_000, 2), 0.5)).mean()), 2)
    0.1
    """

    budget: float = DEFAULT_BUDGET
    _: KW_ONLY
    seed: int = 0

    def _start(self, n_classes: int) -> None:
        super()._start(n_classes)
        self.rng_ = np.random.default_rng(self.seed)

    def _ask(self, proba: np.ndarray) -> np.ndarray:
        return self.rng_.random(len(proba)) >= 1 - self.budget  # scikit-activeml's comparison


class Draws:
    """Random numbers from ``rng`` one at a time, drawn in blocks: the same numbers, in the same order,
    as drawing them singly, for a fraction of the cost.

    >>> draws = Draws(np.random.default_rng(0))
    >>> [draws() for _ in range(3)] == np.random.default_rng(0).random(3).tolist()
    True
    """

    def __init__(self, rng: np.random.Generator, normal: bool = False) -> None:
        self.rng = rng
        self.normal = normal
        self._block: list[float] = []
        self._next = 0

    def __call__(self) -> float:
        if self._next == len(self._block):
            draw = self.rng.standard_normal if self.normal else self.rng.random
            self._block, self._next = draw(BLOCK).tolist(), 0
        self._next += 1
        return self._block[self._next - 1]


SELECTORS: dict[str, Callable[[float, int | None, int], Selector]] = {
    "fixed_uncertainty": lambda budget, window, seed: FixedUncertainty(budget, window=window),
    "variable_uncertainty": lambda budget, window, seed: VariableUncertainty(budget, window=window),
    "randomized_variable_uncertainty": lambda budget, window, seed: RandomizedVariableUncertainty(
        budget, window=window, seed=seed
    ),
    "split": lambda budget, window, seed: Split(budget, window=window, seed=seed),
    "random": lambda budget, window, seed: RandomSampling(budget, seed=seed),
}


def selector_name(name: str) -> str:
    """The registered name ``name`` stands for (``Variable-Uncertainty`` -> ``variable_uncertainty``).

    >>> selector_name(" Variable-Uncertainty ")
    'variable_uncertainty'
    """
    return registered(name, SELECTORS, "selective strategy")


def get_selector(
    name: str, budget: float = DEFAULT_BUDGET, *, window: int | None = DEFAULT_WINDOW, seed: int = 0
) -> Selector:
    """A fresh selector registered under ``name``, with its parameters checked now.

    >>> get_selector("split", budget=0.05, seed=3)
    Split(budget=0.05, step=0.01, threshold=1.0, window=None, random_share=0.1, seed=3)
    """
    selector = SELECTORS[selector_name(name)](budget, window, seed)
    selector.check()
    return selector


def _check_in(
    name: str, value: object, low: float, high: float, *, low_open: bool = False, high_open: bool = False
) -> None:
    """Raise a ValueError naming ``name`` unless ``value`` is a number in the interval."""
    ok: bool | np.bool
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        ok = False
    else:
        ok = (low < value if low_open else low <= value) and (value < high if high_open else value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")
