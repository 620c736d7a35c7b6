"""Scoring a model on labeled test data.

>>> from sklearn.linear_model import LogisticRegression
>>> X, y = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1])
>>> evaluate(LogisticRegression().fit(X, y), X, y, classes=np.array([0, 1]))["accuracy"]
1.0
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, log_loss

from alstream.learning.estimators import Classifier

METRICS = ("accuracy", "macro_f1", "log_loss")


def aligned_proba(model: Classifier, X: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """``predict_proba`` with one column per class in ``classes``, zeros for unseen ones."""
    proba = model.predict_proba(X)
    if np.array_equal(model.classes_, classes):
        return proba
    full = np.zeros((len(X), len(classes)), dtype=proba.dtype)
    full[:, np.searchsorted(classes, model.classes_)] = proba
    return full


def evaluate(model: Classifier, X: np.ndarray, y: np.ndarray, classes: np.ndarray) -> dict[str, float]:
    """Accuracy, macro-F1 and log loss of ``model`` on ``X``, ``y``."""
    proba = aligned_proba(model, X, classes)
    predicted = classes[np.argmax(proba, axis=1)]
    return {
        "accuracy": float(accuracy_score(y, predicted)),
        "macro_f1": float(f1_score(y, predicted, average="macro", labels=classes, zero_division=0)),
        "log_loss": float(log_loss(y, np.clip(proba, 1e-15, 1.0), labels=classes)),
    }
