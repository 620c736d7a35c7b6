"""Scoring a pool with a model: class probabilities chunk by chunk, a strategy's scores, its top k.

The model predicts one chunk at a time, so memory beyond the pool stays small.

``score_pool`` gives every row's score. For a linear model (``LogisticRegression``, or
``SGDClassifier`` with log loss; bare or behind float casts and ``StandardScaler``) it folds the
scaling into the weights once, computes the decisions in the pool's float type (BLAS), and turns
them into the strategy's scores without a probability matrix. Any other model, or a pipeline
with any other step, scores as ``strategy(model.predict_proba(chunk))``.

>>> from sklearn.linear_model import SGDClassifier
>>> from alstream.estimators import standardized
>>> from alstream.strategies import margin
>>> X = np.array([[-2.0, 1.0], [-0.5, 0.0], [0.5, 2.0], [2.0, 1.0]], dtype=np.float32)
>>> model = standardized(SGDClassifier(loss="log_loss", random_state=0)).fit(X, [0, 0, 1, 1])
>>> bool(np.allclose(score_pool(model, X, "margin"), margin(model.predict_proba(X)), atol=1e-6))
True

``query_model`` keeps the ``k`` most uncertain rows. For a fitted ``LogisticRegression`` on a
dense array it computes the same probabilities class by class (``coef @ X.T``, then a softmax over
contiguous rows): no second pass over the pool to check it, no row-wise reductions. The chunk is
returned as a transposed view, which the strategies read without a copy.

>>> from sklearn.linear_model import LogisticRegression
>>> X = np.array([[-2.0], [-0.5], [0.5], [2.0]])
>>> model = LogisticRegression().fit(X, [0, 0, 1, 1])
>>> np.allclose(linear_proba(model, X), model.predict_proba(X))
True
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy.special import expit
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from alstream.estimators import Classifier
from alstream.strategies import (
    Selection,
    Strategy,
    chunk_slices,
    entropy,
    get_strategy,
    least_confident,
    margin,
    select_from_chunks,
)

POOL_CHUNK = 8192  # rows scored at once by score_pool (bench/rescore_bench.py --chunks measures others)
BLAS_ROWS = 1024  # rows per matrix product inside a chunk: OpenBLAS is fastest on short blocks
ROUNDING = 3e-6  # score error allowed from the float type: beyond it, center the chunks or call predict_proba
TINY_TOTAL = 1e-30  # one-vs-rest rows whose sigmoids sum below this are left to predict_proba


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


# --------------------------------------------------------------------------------------------
# Re-scoring a whole pool


@dataclass(frozen=True)
class LinearForm:
    """A fitted linear classifier with its input scaling folded in: ``(X - center) @ weights + bias``.

    A column a class. With ``one_vs_rest`` those are minus the decisions (the probabilities are the
    decisions' sigmoids, normalized to sum 1), otherwise the logits of a softmax (a binary model's are
    ``[0, z]``). ``center`` (the features' fitted mean) is None unless the features' offsets are so
    large that their products would round the decisions away in the pool's float type.
    """

    weights: np.ndarray  # (features, classes), C-contiguous, in the pool's float type
    bias: np.ndarray  # (classes, 1): added to the decisions laid out class by class
    one_vs_rest: bool
    center: np.ndarray | None = None  # (features,), subtracted from each row first


def linear_form(model: Classifier, dtype: np.dtype | type = np.float32) -> LinearForm | None:
    """``model`` as one affine map of the raw features and a link; None for any other model.

    A pipeline qualifies when its steps before a linear model are float casts or ``StandardScaler``:
    ``(x - mean_) / scale_`` (as fitted, zero variances already 1) folds into the weights.

    >>> from sklearn.pipeline import make_pipeline
    >>> X, y = np.array([[0.0, 10.0], [1.0, 30.0], [2.0, 20.0], [3.0, 50.0]]), [0, 0, 1, 1]
    >>> model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    >>> form = linear_form(model, np.float64)
    >>> z = X @ form.weights + form.bias.T  # logits [0, decision] of a binary model
    >>> bool(np.allclose(z[:, 1], model.decision_function(X)))
    True
    >>> linear_form(make_pipeline(FunctionTransformer(np.log1p), LogisticRegression()).fit(X, y)) is None
    True
    """
    *transforms, final = [step for _, step in model.steps] if type(model) is Pipeline else [model]
    one_vs_rest = _one_vs_rest(final)
    if one_vs_rest is None:
        return None
    coef = np.asarray(final.coef_, dtype=np.float64)
    intercept = np.broadcast_to(np.asarray(final.intercept_, dtype=np.float64), len(coef))
    scale, shift = np.ones(coef.shape[1]), np.zeros(coef.shape[1])  # the steps map x to x * scale + shift
    mean = None  # of the raw features: the first scaler with a mean_ (even without with_mean) saw them
    for step in transforms:
        if _is_cast(step):
            continue
        if type(step) is not StandardScaler or getattr(step, "n_features_in_", None) != coef.shape[1]:
            return None
        if mean is None:
            mean = step.mean_
        if step.with_mean:
            shift -= step.mean_
        if step.with_std:
            scale /= step.scale_
            shift /= step.scale_
    weights, bias = coef * scale, intercept + coef @ shift  # z = weights @ x + bias
    center = None
    if mean is not None and np.finfo(dtype).eps * np.abs(weights * mean).sum(axis=1).max() > ROUNDING:
        center = mean.astype(dtype)  # the products around the mean would round the decisions away
        bias = bias + weights @ center
    if len(weights) == 1:  # binary: predict_proba is [1 - sigmoid(z), sigmoid(z)], the softmax of [0, z]
        weights, bias, one_vs_rest = np.vstack([np.zeros_like(weights), weights]), np.r_[0.0, bias], False
    if one_vs_rest:  # exp then gives exp(-z) for the sigmoids without a pass to negate
        weights, bias = -weights, -bias
    weights = np.ascontiguousarray(weights.T, dtype=dtype)
    return LinearForm(weights, bias.astype(dtype)[:, None], one_vs_rest, center)


def _one_vs_rest(model: Classifier) -> bool | None:
    """Whether a fitted linear model's probabilities are one-vs-rest; None if it is not one we know."""
    if not isinstance(getattr(model, "coef_", None), np.ndarray):  # unfitted, or sparsified
        return None
    if type(model) is SGDClassifier:
        return True if model.loss == "log_loss" else None
    if type(model) is LogisticRegression:  # multi_class is gone since scikit-learn 1.8
        multi_class = getattr(model, "multi_class", "deprecated")
        return multi_class == "ovr" or (multi_class in ("auto", "deprecated") and model.solver == "liblinear")
    return None


def _is_cast(step: object) -> bool:
    """A pipeline step that passes the features on as they are, or as floats."""
    if step is None or (isinstance(step, str) and step == "passthrough"):
        return True
    return (
        type(step) is FunctionTransformer
        and any(step.func is func for func in (None, np.float64, np.float32))
        and not step.kw_args
    )


def score_pool(
    model: Classifier, X: np.ndarray, strategy: str | Strategy = "entropy", *, chunk_size: int = POOL_CHUNK
) -> np.ndarray:
    """Every row's score under ``strategy`` (the higher, the less sure the model), a chunk at a time.

    A linear model (see ``linear_form``) scores a float array in its float type: the decisions by
    BLAS, then least-confident, margin or entropy straight from them (another strategy gets the
    chunk's probabilities). The scores are ``strategy(model.predict_proba(X))`` up to the rounding of
    each decision's terms (float32: about 1e-6 for rows like those fitted, more for rows far out).
    Rows whose decisions are too large for that (beyond float32, or large and undecided) and
    one-vs-rest rows whose sigmoids all underflow score with ``predict_proba``, as any other model
    does. Memory beyond the scores: one chunk's.

    >>> from sklearn.ensemble import RandomForestClassifier
    >>> X, y = np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 1, 0, 1]
    >>> forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    >>> bool((score_pool(forest, X, least_confident) == least_confident(forest.predict_proba(X))).all())
    True
    """
    score = get_strategy(strategy) if isinstance(strategy, str) else strategy
    form = None
    if isinstance(X, np.ndarray) and X.ndim == 2 and X.dtype in (np.float32, np.float64):
        form = linear_form(model, X.dtype)
    if form is not None and form.weights.shape[0] != X.shape[1]:
        form = None  # predict_proba says what is wrong
    out = np.empty(len(X))
    for rows in chunk_slices(len(X), chunk_size):
        if form is None:
            out[rows] = score(model.predict_proba(X[rows]))
            continue
        out[rows], trusted = _linear_scores(form, X[rows], score)
        if not trusted.all():
            doubtful = np.flatnonzero(~trusted)
            out[rows.start + doubtful] = score(model.predict_proba(X[rows][doubtful]))
    return out


@np.errstate(all="ignore")  # overflows and underflows are expected, and the rows they spoil marked
def _linear_scores(form: LinearForm, X: np.ndarray, score: Strategy) -> tuple[np.ndarray, np.ndarray]:
    """The chunk's scores, and which of them rounding cannot have spoiled."""
    by_row = np.empty((len(X), form.weights.shape[1]), dtype=form.weights.dtype)
    centered = None if form.center is None else np.empty((min(len(X), BLAS_ROWS), X.shape[1]), X.dtype)
    for rows in chunk_slices(len(X), BLAS_ROWS):
        block = X[rows]
        if centered is not None:
            block = np.subtract(block, form.center, out=centered[: len(block)])
        np.matmul(block, form.weights, out=by_row[rows])
    logits = np.add(by_row.T, form.bias, order="C")  # (classes, rows): each class contiguous
    low, high = logits.min(axis=0), logits.max(axis=0)
    if form.one_vs_rest:  # logits = -z; the sigmoids 1 / (1 + exp(-z)), in place
        np.exp(logits, out=logits)
        logits += 1.0
        weights, log_weights = np.reciprocal(logits, out=logits), None
        top = 1.0 / (1.0 + np.exp(low))  # the largest sigmoid
    else:  # softmax, shifted so that the largest is exp(0) = 1
        logits -= high
        weights, log_weights, top = np.exp(logits), logits, 1.0
    total = weights.sum(axis=0)  # the probabilities are weights / total
    unsure = 1.0 - top / total  # least-confident: 1 - the largest probability
    if score is least_confident:
        scores = unsure
    elif score is margin:
        first, second = _top_two(weights)
        scores = 1.0 - (first - second) / total
    elif score is entropy:  # log total - sum(w log w) / total
        logs = np.log(weights) if log_weights is None else log_weights
        scores = np.log(total) - np.einsum("ij,ij->j", weights, logs) / total
    else:
        scores = score((weights / total).T)
    # Rounding moves each decision by about eps * its size; the scores feel that as far as the
    # probabilities are not all on one class. Small sums of sigmoids lose digits to underflow.
    size = np.maximum(np.abs(low), np.abs(high))
    doubt = np.finfo(logits.dtype).eps * size * unsure
    return scores, np.isfinite(scores) & (doubt <= ROUNDING) & (total >= TINY_TOTAL)


def _top_two(cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The largest and second largest value of each column (equal when two rows tie)."""
    first, second = np.maximum(cols[0], cols[1]), np.minimum(cols[0], cols[1])
    lower = np.empty_like(first)
    for col in cols[2:]:
        np.minimum(first, col, out=lower)
        np.maximum(second, lower, out=second)
        np.maximum(first, col, out=first)
    return first, second
