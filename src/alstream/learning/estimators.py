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
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.utils.validation import has_fit_parameter

from alstream.names import registered

Classifier = Any  # a scikit-learn classifier with fit and predict_proba


def _random_forest(seed: int) -> ClassifierMixin:
    from sklearn.ensemble import RandomForestClassifier  # the ensembles: imported when asked for

    return RandomForestClassifier(n_estimators=100, random_state=seed)


def _gradient_boosting(seed: int) -> ClassifierMixin:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(random_state=seed)


MODELS: dict[str, Callable[[int], ClassifierMixin]] = {
    "logreg": lambda seed: LogisticRegression(max_iter=1000),
    "sgd": lambda seed: SGDClassifier(loss="log_loss", alpha=1e-2, random_state=seed),
    "random_forest": _random_forest,
    "gradient_boosting": _gradient_boosting,
}


def model_name(name: str) -> str:
    """The registered name ``name`` stands for (``Random-Forest`` -> ``random_forest``)."""
    return registered(name, MODELS, "model")


def make_model(name: str, seed: int = 0) -> Classifier:
    """A fresh, unfitted classifier registered under ``name``."""
    return MODELS[model_name(name)](seed)


def standardized(model: Classifier) -> Pipeline:
    """``model`` behind a ``StandardScaler`` (fitted with the model, kept by online updates), in float64:
    any finite float32 features stay finite once scaled.

    >>> import warnings; X = np.array([[0.0], [1.0], [3e38], [-3e38]], dtype=np.float32)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error")  # no overflow
    ...     bool(np.isfinite(standardized(LogisticRegression()).fit(X, [0, 0, 1, 1]).predict_proba(X)).all())
    True
    """
    # np.float64 casts an array (a numpy type, which MLflow's skops format trusts to load)
    return make_pipeline(FunctionTransformer(np.float64), StandardScaler(), model)


def supports_partial_fit(model: Classifier) -> bool:
    """Whether ``model`` (or a pipeline's final step) can learn from new labels without a refit."""
    final = model.steps[-1][1] if isinstance(model, Pipeline) else model
    return callable(getattr(final, "partial_fit", None))


def fit(
    model: Classifier, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None
) -> Classifier:
    """A fresh copy of ``model`` trained on all of ``X``, ``y`` (the input is not modified), each row
    weighted by ``sample_weight`` when given and the model takes weights (else unweighted)."""
    final = model.steps[-1] if isinstance(model, Pipeline) else None
    if sample_weight is None or not has_fit_parameter(model if final is None else final[1], "sample_weight"):
        return clone(model).fit(X, y)
    key = "sample_weight" if final is None else f"{final[0]}__sample_weight"
    return clone(model).fit(X, y, **{key: sample_weight})


def update(model: Classifier, X: np.ndarray, y: np.ndarray, classes: np.ndarray) -> Classifier:
    """A copy of ``model`` updated online on new labels only (``model`` itself is kept)."""
    if not supports_partial_fit(model):
        raise TypeError(f"{type(model).__name__} has no partial_fit: retrain it instead")
    updated = copy.deepcopy(model)
    if isinstance(updated, Pipeline):  # earlier steps stay as fitted; only the final step learns
        updated.steps[-1][1].partial_fit(updated[:-1].transform(X), y, classes=classes)
    else:
        updated.partial_fit(X, y, classes=classes)
    return updated
