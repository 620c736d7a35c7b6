"""Scoring a pool with a model: class probabilities chunk by chunk, then a strategy's top k.

The model predicts one chunk at a time, with a fast path for logistic regression.

Any classifier with ``predict_proba`` works. For a fitted ``LogisticRegression`` on a dense
array the same probabilities are computed class by class (``coef @ X.T``, then a softmax
over contiguous rows): no second pass over the pool to check it, no row-wise reductions.
The chunk is returned as a transposed view, which the strategies read without a copy.

>>> from sklearn.linear_model import LogisticRegression
>>> X = np.array([[-2.0], [-0.5], [0.5], [2.0]])
>>> model = LogisticRegression().fit(X, [0, 0, 1, 1])
>>> np.allclose(linear_proba(model, X), model.predict_proba(X))
True
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from alstream.estimators import Classifier
from alstream.strategies import Selection, Strategy, chunk_slices, select_from_chunks


def has_fast_path(model: Classifier, X: object) -> bool:
    """Whether ``linear_proba`` computes exactly what ``model.predict_proba`` would."""
    return (
        type(model) is LogisticRegression
        and hasattr(model, "coef_")
        and isinstance(X, np.ndarray)
        and X.ndim == 2
        and np.issubdtype(X.dtype, np.floating)
        and X.shape[1] == model.coef_.shape[1]
    )


def linear_proba(model: LogisticRegression, X: np.ndarray) -> np.ndarray:
    """``model.predict_proba(X)`` for a fitted logistic regression, as a transposed view."""
    scores = model.coef_ @ X.T  # (classes, rows), each class contiguous
    scores += model.intercept_[:, None]
    if len(scores) == 1:  # binary: sigmoid of the decision, as [1 - p, p]
        positive = expit(scores[0])
        return np.stack([1.0 - positive, positive]).T
    top = scores[0].copy()
    for row in scores[1:]:
        np.maximum(top, row, out=top)
    scores -= top
    np.exp(scores, out=scores)
    total = scores[0].copy()
    for row in scores[1:]:
        total += row
    scores /= total
    return scores.T


def probability_chunks(
    model: Classifier, X: np.ndarray, chunk_size: int
) -> Iterator[tuple[slice, np.ndarray]]:
    """``(rows, proba)`` for consecutive slices of ``X``; only one chunk is alive at a time."""
    predict = linear_proba if has_fast_path(model, X) else type(model).predict_proba
    for rows in chunk_slices(len(X), chunk_size):
        yield rows, predict(model, X[rows])


def query_model(
    model: Classifier,
    X: np.ndarray,
    k: int,
    strategy: str | Strategy = "entropy",
    *,
    seed: int = 0,
    ids: np.ndarray | None = None,
    chunk_size: int = 16384,
) -> Selection:
    """The ``k`` rows of ``X`` the model is least sure of, predicting chunk by chunk.

    Only one chunk of probabilities is alive at a time, so memory beyond the pool stays small.

    >>> from sklearn.linear_model import LogisticRegression
    >>> X = np.array([[-2.0], [-0.1], [0.1], [2.0]])
    >>> model = LogisticRegression().fit(X, [0, 0, 1, 1])
    >>> sorted(query_model(model, X, k=2, strategy="least_confident").indices.tolist())
    [1, 2]
    """
    chunks = probability_chunks(model, X, chunk_size)
    return select_from_chunks(chunks, len(X), k, strategy, seed, ids)
