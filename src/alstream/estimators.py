"""Named classifiers, and how to train them: refit from scratch or update online.

alstream accepts any scikit-learn classifier with ``predict_proba``; the registry only
gives the usual ones a short name for the command line.

>>> model = make_model("sgd", seed=0)
>>> supports_partial_fit(model), supports_partial_fit(make_model("random_forest"))
(True, False)
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin, clone
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression, SGDClassifier

Classifier = Any  # a scikit-learn classifier with fit and predict_proba

MODELS: dict[str, Callable[[int], ClassifierMixin]] = {
    "logreg": lambda seed: LogisticRegression(max_iter=1000),
    "sgd": lambda seed: SGDClassifier(loss="log_loss", alpha=1e-3, random_state=seed),
    "random_forest": lambda seed: RandomForestClassifier(n_estimators=100, random_state=seed),
    "gradient_boosting": lambda seed: HistGradientBoostingClassifier(random_state=seed),
}


def make_model(name: str, seed: int = 0) -> Classifier:
    """A fresh, unfitted classifier registered under ``name``."""
    key = name.strip().lower().replace("-", "_")
    if key not in MODELS:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
    return MODELS[key](seed)


def supports_partial_fit(model: Classifier) -> bool:
    """Whether ``model`` can learn from new labels without a refit."""
    return callable(getattr(model, "partial_fit", None))


def fit(model: Classifier, X: np.ndarray, y: np.ndarray) -> Classifier:
    """A fresh copy of ``model`` trained on all of ``X``, ``y`` (the input is not modified)."""
    return clone(model).fit(X, y)


def update(model: Classifier, X: np.ndarray, y: np.ndarray, classes: np.ndarray) -> Classifier:
    """A copy of ``model`` updated online on new labels only (``model`` itself is kept)."""
    if not supports_partial_fit(model):
        raise TypeError(f"{type(model).__name__} has no partial_fit: retrain it instead")
    updated = copy.deepcopy(model)
    updated.partial_fit(X, y, classes=classes)
    return updated
