"""Stopping rules: when more labels stop paying for themselves, without labeling anything to find out.

The rules read only what the model says about unlabeled data, round after round, so they work
where no test set exists (a live labeling service).

**Stabilizing predictions** (Bloodgood and Vijay-Shanker, 2009): a *stop set*, a fixed random
sample of the unlabeled pool drawn once, is predicted by every new model; the rule stops when
Cohen's kappa between successive models' predictions, averaged over the last ``window`` pairs,
reaches ``threshold``. This is small-text's ``KappaAverage`` (as corrected in 1.3.3; before, it
compared the changes between successive kappas): no decision before ``window`` pairs (``window + 1``
models), then ``mean(last window kappas) >= threshold``, with identical predictions counting as 1.

>>> rule = StabilizingPredictions(window=2, threshold=0.9)
>>> models = [[0, 1, 1, 0], [0, 1, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0]]  # predictions on the stop set
>>> rule.kappas(models).round(2).tolist()
[0.5, 1.0, 1.0]
>>> rule.should_stop(models[:3]), rule.stop_round(models)
(False, 3)

**Predicted change of F** (Altschuler and Bloodgood, 2019): the same stop set, but the rule reads
how much the F-measure could have changed between successive models, ``1 - F`` of one model's
predictions scored against the other's, and stops once each of the last ``window`` changes is below
``threshold``. This is small-text's ``DeltaFScore`` (defaults 0.05 and 3), which scores the positive
class of two; here F is the mean over classes (macro), so that it reads many classes, and no label
order matters.

>>> rule = PredictedChangeOfF(window=2, threshold=0.2)
>>> rule.changes(models).round(2).tolist()
[0.27, 0.0, 0.0]
>>> rule.stop_round(models)
3

**Overall uncertainty** (Zhu, Wang and Hovy, 2008): stop when the model's mean uncertainty over
the unlabeled pool (or the stop set) falls below ``threshold``. Uncertainty is the entropy of
each row's probabilities divided by ``log(n_classes)`` (so it lies in [0, 1] whatever the number
of classes; small-text's ``OverallUncertainty`` reads it so, with the same default 0.05), or least
confidence (one minus the top probability).

>>> rule = OverallUncertainty(threshold=0.2, measure="least_confident")
>>> proba = np.array([[0.9, 0.1], [0.6, 0.4]])  # the model on the unlabeled rows
>>> round(rule.uncertainty(proba), 3), rule.should_stop(proba)
(0.25, False)
>>> rule.stop_round([0.5, 0.3, 0.15, 0.25])  # mean uncertainty of rounds 0, 1, 2, 3
2

A service calls ``should_stop`` with the predictions of its successive model versions on one stop
set (oldest first), or with the current model's probabilities on its unlabeled pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from numpy.typing import ArrayLike

STOP_SET_SIZE = 1000  # rows of the unlabeled pool in the stop set (or all of them, if fewer)
MEASURES = ("entropy", "least_confident")


def cohen_kappa(a: ArrayLike, b: ArrayLike) -> float:
    """Cohen's kappa between two label vectors: ``(p_o - p_e) / (1 - p_e)``.

    ``p_o`` is the share of rows where they agree, ``p_e`` the agreement expected by chance from
    each vector's label frequencies. Equal to ``sklearn.metrics.cohen_kappa_score``, except where
    that is undefined (``p_e = 1``: both vectors one and the same label), which is full agreement
    here, 1.0.

    >>> cohen_kappa([0, 0, 1, 1], [0, 0, 1, 0])
    0.5
    >>> cohen_kappa(["a", "a"], ["a", "a"])
    1.0
    """
    a, b = np.asarray(a).ravel(), np.asarray(b).ravel()
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"kappa needs two label vectors of one non-zero length, got {a.size} and {b.size}")
    labels, codes = np.unique(np.concatenate([a, b]), return_inverse=True)
    first, second = codes[: a.size], codes[a.size :]
    observed = float(np.mean(first == second))
    k = len(labels)
    expected = float(np.bincount(first, minlength=k) @ np.bincount(second, minlength=k)) / a.size**2
    if expected >= 1.0:
        return 1.0
    return (observed - expected) / (1.0 - expected)


def f_agreement(a: ArrayLike, b: ArrayLike) -> float:
    """The macro F-measure of ``b``'s labels scored against ``a``'s: the mean over the labels either
    uses of ``2 tp / (2 tp + fp + fn)``. Symmetric; 1.0 when they agree everywhere.

    >>> f_agreement([0, 0, 1, 1], [0, 1, 1, 1])  # F of 0: 2 / 3; of 1: 4 / 5
    0.7333333333333334
    >>> f_agreement(["a", "b", "c", "c"], ["a", "b", "b", "c"])  # F 1, 2/3, 2/3
    0.7777777777777777
    """
    a, b = np.asarray(a).ravel(), np.asarray(b).ravel()
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"F needs two label vectors of one non-zero length, got {a.size} and {b.size}")
    labels, codes = np.unique(np.concatenate([a, b]), return_inverse=True)
    first, second = codes[: a.size], codes[a.size :]
    k = len(labels)
    both = np.bincount(first[first == second], minlength=k)  # tp of each label
    split = np.bincount(first, minlength=k) + np.bincount(second, minlength=k)  # 2 tp + fp + fn, > 0
    return float(np.mean(2 * both / split))


def draw_stop_set(unlabeled: ArrayLike, size: int = STOP_SET_SIZE, seed: int = 0) -> np.ndarray:
    """A fixed random sample of ``size`` of the ``unlabeled`` pool indices (all if fewer), sorted.

    >>> draw_stop_set(np.arange(10, 20), size=3, seed=0).tolist()
    [15, 16, 19]
    """
    unlabeled = np.asarray(unlabeled)
    if size < 1:
        raise ValueError(f"a stop set needs at least one row, got size={size}")
    if len(unlabeled) <= size:
        return np.sort(unlabeled)
    return np.sort(np.random.default_rng(seed).choice(unlabeled, size=size, replace=False))


def uncertainty(proba: ArrayLike, measure: str = "entropy") -> np.ndarray:
    """Each row's uncertainty: entropy / log(n_classes) (0 sure, 1 uniform), or least confidence.

    >>> uncertainty([[0.5, 0.5], [1.0, 0.0]]).tolist()
    [1.0, 0.0]
    >>> uncertainty([[0.6, 0.4]], "least_confident").round(2).tolist()
    [0.4]
    """
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[1] < 1:
        raise ValueError(f"proba must be (rows, classes), got shape {proba.shape}")
    if measure == "least_confident":
        return 1.0 - proba.max(axis=1)
    if measure == "entropy":
        if proba.shape[1] == 1:
            return np.zeros(len(proba))
        terms = proba * np.log(np.where(proba > 0, proba, 1.0))  # 0 log 0 = 0
        return np.maximum(-terms.sum(axis=1) / np.log(proba.shape[1]), 0.0)
    raise ValueError(f"unknown uncertainty measure {measure!r}: use one of {', '.join(MEASURES)}")


class _SuccessiveModels:
    """A rule on one value per pair of successive models' predictions on the stop set (``values``),
    that stops once the last ``window`` of them pass (``passes``)."""

    window: int

    def values(self, predictions: Sequence[ArrayLike]) -> np.ndarray:
        raise NotImplementedError

    def passes(self, values: np.ndarray) -> bool:
        raise NotImplementedError

    def should_stop(self, predictions: Sequence[ArrayLike]) -> bool:
        """Whether the rule stops after the last of ``predictions`` (every model so far, oldest first)."""
        self._check()
        if len(predictions) <= self.window:
            return False
        return self.passes(self.values(predictions[-self.window - 1 :]))

    def stop_round(self, predictions: Sequence[ArrayLike]) -> int | None:
        """The first round (index into ``predictions``) at which the rule stops; None if none."""
        self._check()
        values = self.values(predictions) if len(predictions) > 1 else np.empty(0)
        for end in range(self.window, len(values) + 1):  # values[end - 1] compares rounds end - 1, end
            if self.passes(values[end - self.window : end]):
                return end
        return None

    def _check(self) -> None:
        if self.window < 1:
            raise ValueError(f"window must be at least 1, got {self.window}")


@dataclass(frozen=True)
class StabilizingPredictions(_SuccessiveModels):
    """Stop once successive models agree on the stop set: mean kappa of the last ``window`` pairs
    of successive models' predictions >= ``threshold`` (Bloodgood and Vijay-Shanker, 2009)."""

    window: int = 3
    threshold: float = 0.99

    @property
    def label(self) -> str:
        return f"stabilizing predictions (mean κ of last {self.window} ≥ {self.threshold:g})"

    def kappas(self, predictions: Sequence[ArrayLike]) -> np.ndarray:
        """Kappa between each model's predictions and the previous one's (one fewer than models)."""
        return np.array([cohen_kappa(a, b) for a, b in pairwise(predictions)])

    values = kappas

    def passes(self, values: np.ndarray) -> bool:
        return bool(values.mean() >= self.threshold)


@dataclass(frozen=True)
class PredictedChangeOfF(_SuccessiveModels):
    """Stop once each of the last ``window`` predicted changes of F between successive models on the
    stop set is below ``threshold`` (Altschuler and Bloodgood, 2019)."""

    window: int = 3
    threshold: float = 0.05

    @property
    def label(self) -> str:
        return f"predicted change of F (last {self.window} < {self.threshold:g})"

    def changes(self, predictions: Sequence[ArrayLike]) -> np.ndarray:
        """``1 - F`` between each model's predictions and the previous one's (one fewer than models)."""
        return np.array([1.0 - f_agreement(a, b) for a, b in pairwise(predictions)])

    values = changes

    def passes(self, values: np.ndarray) -> bool:
        return bool((values < self.threshold).all())


@dataclass(frozen=True)
class OverallUncertainty:
    """Stop once the model's mean uncertainty over unlabeled rows is below ``threshold``
    (Zhu, Wang and Hovy, 2008); ``measure`` is ``entropy`` (normalized) or ``least_confident``."""

    threshold: float = 0.05
    measure: str = "entropy"

    @property
    def label(self) -> str:
        name = "normalized entropy" if self.measure == "entropy" else self.measure.replace("_", "-")
        return f"overall uncertainty (mean {name} < {self.threshold:g})"

    def uncertainty(self, proba: ArrayLike) -> float:
        """The mean uncertainty of the rows of ``proba``."""
        return float(uncertainty(proba, self.measure).mean())

    def should_stop(self, proba: ArrayLike) -> bool:
        """Whether the model whose probabilities on the unlabeled rows are ``proba`` is sure enough."""
        return self.uncertainty(proba) < self.threshold

    def stop_round(self, uncertainties: Sequence[float] | np.ndarray) -> int | None:
        """The first round whose mean uncertainty is below ``threshold``; None if none."""
        below = np.flatnonzero(np.asarray(uncertainties, dtype=np.float64) < self.threshold)
        return int(below[0]) if len(below) else None
