"""Scoring a pool with a model: class probabilities chunk by chunk, a strategy's scores, its top k.

The model predicts one chunk at a time, so memory beyond the pool stays small.

``score_pool`` gives every row's score. For a linear model (``LogisticRegression``, or
``SGDClassifier`` with log loss; bare or behind float casts and ``StandardScaler``) it folds the
scaling into the weights once, computes the decisions in the pool's float type (BLAS), and turns
them into the strategy's scores without a probability matrix, in buffers allocated once per call
(a binary model: from its one decision column). Any other model, or a pipeline with any other
step, scores as ``strategy(model.predict_proba(chunk))``.

>>> from sklearn.linear_model import SGDClassifier
>>> from alstream.learning.estimators import standardized
>>> from alstream.learning.strategies import margin
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

from alstream.learning.estimators import Classifier
from alstream.learning.strategies import (
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
EXP_LIMIT = {np.float32: 80.0, np.float64: 700.0}  # |logits| exp takes as they are (thousands sum finite)


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
    decisions' sigmoids, normalized to sum 1), otherwise the logits of a softmax. A binary model has
    one column, its decision ``z``: the probabilities are ``[1 - sigmoid(z), sigmoid(z)]``. ``center``
    (the features' fitted mean) is None unless the features' offsets are so large that their products
    would round the decisions away in the pool's float type.
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
    >>> z = X @ form.weights + form.bias.T  # a binary model's one column: its decision
    >>> bool(np.allclose(z[:, 0], model.decision_function(X)))
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
    if len(weights) == 1:  # binary: predict_proba is [1 - sigmoid(z), sigmoid(z)] either way
        one_vs_rest = False
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
        isinstance(step, FunctionTransformer)
        and type(step) is FunctionTransformer  # not a subclass with its own transform
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
    does. Memory beyond the scores: one chunk's buffers, allocated once.

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
    space = None if form is None else Workspace.for_form(form, min(chunk_size, max(len(X), 1)))
    doubtful: list[np.ndarray] = []  # rows to score with predict_proba, gathered: each call costs ms
    waiting = 0
    for rows in chunk_slices(len(X), chunk_size):
        if form is None or space is None:
            out[rows] = score(model.predict_proba(X[rows]))
            continue
        out[rows], trusted = _linear_scores(form, X[rows], score, space)
        if not trusted.all():
            doubtful.append(rows.start + np.flatnonzero(~trusted))
            waiting += len(doubtful[-1])
        if waiting >= chunk_size or (rows.stop == len(X) and doubtful):
            again = np.concatenate(doubtful)
            out[again] = score(model.predict_proba(X[again]))
            doubtful, waiting = [], 0
    return out


@dataclass(frozen=True)
class Workspace:
    """One chunk's buffers, reused chunk after chunk so that the loop allocates nothing."""

    scratch: np.ndarray  # rows x classes values: first the products as BLAS writes them, then weights
    logits: np.ndarray  # (classes, rows): each class contiguous
    vectors: np.ndarray  # (7, rows): per-row values (largest, smallest, total, ...)
    flags: np.ndarray  # (2, rows) booleans: which scores to trust
    centered: np.ndarray | None  # (BLAS_ROWS, features) when the form centers the rows

    @classmethod
    def for_form(cls, form: LinearForm, rows: int) -> Workspace:
        """Buffers for chunks of up to ``rows`` rows scored with ``form``."""
        features, classes = form.weights.shape
        dtype = form.weights.dtype
        centered = None if form.center is None else np.empty((min(rows, BLAS_ROWS), features), dtype)
        return cls(
            scratch=np.empty(rows * classes, dtype),
            logits=np.empty((classes, rows), dtype),
            vectors=np.empty((7, rows), dtype),
            flags=np.empty((2, rows), dtype=bool),
            centered=centered,
        )

    def by_row(self, n: int) -> np.ndarray:
        """``(n, classes)``: where BLAS writes the products."""
        return self.scratch[: n * len(self.logits)].reshape(n, -1)

    def work(self, n: int) -> np.ndarray:
        """``(classes, n)``: the same memory, once the logits are out of it."""
        return self.scratch[: n * len(self.logits)].reshape(len(self.logits), n)


@np.errstate(all="ignore")  # overflows and underflows are expected, and the rows they spoil marked
def _linear_scores(
    form: LinearForm, X: np.ndarray, score: Strategy, space: Workspace
) -> tuple[np.ndarray, np.ndarray]:
    """The chunk's scores, and which of them rounding cannot have spoiled (views of ``space``)."""
    n = len(X)
    logits = class_logits(form, X, space)
    if len(logits) == 1:
        return _binary_scores(logits[0], score, space.vectors[:, :n], space.flags[:, :n])
    high, low, total, unsure, scores, spare, lower = space.vectors[:, :n]
    small = _small_logits(logits, form.one_vs_rest, high, low)
    if form.one_vs_rest:
        weights, logs, sign = *_sigmoids(logits, low, score, space.work(n), unsure), 1.0
    else:
        weights, logs, sign = *_softmax_weights(logits, high, score, space.work(n), unsure), -1.0
    np.sum(weights, axis=0, out=total)  # the probabilities are weights / total
    np.divide(unsure, total, out=unsure)  # unsure held the largest weight
    np.subtract(1.0, unsure, out=unsure)  # least-confident: 1 - the largest probability
    if score is least_confident:
        scores = unsure
    elif score is margin:
        first, second = _top_two(weights, scores, spare, lower)
        np.subtract(first, second, out=scores)
        np.divide(scores, total, out=scores)
        np.subtract(1.0, scores, out=scores)
    elif score is entropy:  # log total - sum(w log w) / total; logs = sign * log w
        np.einsum("ij,ij->j", weights, logs, out=scores)
        np.multiply(scores, sign, out=scores)
        np.divide(scores, total, out=scores)
        np.add(np.log(total, out=spare), scores, out=scores)
    else:
        scores = score((weights / total).T)
    return scores, _trusted(scores, small, high, low, total, unsure, spare, space.flags[:, :n])


def _binary_scores(
    z: np.ndarray, score: Strategy, vectors: np.ndarray, flags: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A binary model's scores from its decisions ``z``, and which to trust.

    With ``a = |z|`` and ``t = exp(-a)``, the smaller probability is ``q = t / (1 + t)``:
    least-confident is ``q``, margin ``1 - (1 - 2q) = 2q``, entropy ``log1p(t) + a q``.
    """
    size, t, q, scores, spare = vectors[:5]
    np.abs(z, out=size)
    np.exp(np.negative(size, out=t), out=t)
    np.divide(t, np.add(t, 1.0, out=q), out=q)
    if score is least_confident:
        scores = q
    elif score is margin:
        np.multiply(q, 2.0, out=scores)
    elif score is entropy:
        np.add(np.log1p(t, out=scores), np.multiply(size, q, out=spare), out=scores)
    else:
        positive = np.where(z >= 0, 1.0 - q, q)  # sigmoid(z)
        scores = score(np.stack([1.0 - positive, positive]).T)
    trusted, check = flags
    bound = ROUNDING / np.finfo(z.dtype).eps  # on |z| * q, as for more classes
    if size.max() <= bound and (scores is q or np.isfinite(scores.sum())):
        trusted.fill(True)
        return scores, trusted
    np.less_equal(np.multiply(size, q, out=spare), bound, out=trusted)  # False for NaN
    trusted &= np.isfinite(scores, out=check)
    return scores, trusted


def class_logits(form: LinearForm, X: np.ndarray, space: Workspace) -> np.ndarray:
    """``form``'s logits of the rows of ``X``, class by class: one matrix product a block of rows."""
    by_row = space.by_row(len(X))
    for rows in chunk_slices(len(X), BLAS_ROWS):
        block = X[rows]
        if space.centered is not None and form.center is not None:
            block = np.subtract(block, form.center, out=space.centered[: len(block)])
        np.matmul(block, form.weights, out=by_row[rows])
    return np.add(by_row.T, form.bias, out=space.logits[:, : len(X)])


def _softmax_weights(
    logits: np.ndarray, high: np.ndarray, score: Strategy, work: np.ndarray, largest: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``exp(logits)``, up to a factor a row (its largest written to ``largest``), and their logarithms.

    The logits are shifted by their row's largest (which then weighs 1) for entropy, which subtracts
    logarithms of the weights' size, and wherever exp could overflow or underflow.
    """
    limit = EXP_LIMIT[logits.dtype.type]
    if score is entropy or high.max(initial=0.0) > limit or high.min(initial=0.0) < -limit:
        np.subtract(logits, high, out=logits)
        largest.fill(1.0)
    else:
        np.exp(high, out=largest)
    return np.exp(logits, out=work), logits


def _sigmoids(
    minus_z: np.ndarray, low: np.ndarray, score: Strategy, work: np.ndarray, largest: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The sigmoids ``1 / (1 + exp(-z))`` (the largest written to ``largest``); for entropy minus
    their logarithms, in place of ``minus_z``."""
    np.exp(low, out=largest)
    largest += 1.0
    np.reciprocal(largest, out=largest)  # the sigmoid of the largest decision
    weights = np.exp(minus_z, out=work)
    weights += 1.0
    if score is entropy:
        np.log(weights, out=minus_z)
    return np.reciprocal(weights, out=weights), minus_z


def _small_logits(logits: np.ndarray, one_vs_rest: bool, high: np.ndarray, low: np.ndarray) -> bool:
    """Whether every logit is small enough for rounding to spare any row's score.

    Writes each row's largest logit to ``high`` (softmax) or smallest to ``low`` (one-vs-rest), as
    the link needs; the other extreme is one reduction over the chunk, and row by row only when the
    chunk's logits are not all small.
    """
    bound = ROUNDING / np.finfo(logits.dtype).eps  # on |logit| * unsure, and unsure <= 1
    if one_vs_rest:
        np.min(logits, axis=0, out=low)
        small = bool(-low.min() <= bound and logits.max() <= bound)  # NaN fails every comparison
    else:
        np.max(logits, axis=0, out=high)
        small = bool(high.max() <= bound and -logits.min() <= bound)
    if not small:
        np.max(logits, axis=0, out=high)
        np.min(logits, axis=0, out=low)
    return small


def _trusted(
    scores: np.ndarray,
    small: bool,
    high: np.ndarray,
    low: np.ndarray,
    total: np.ndarray,
    unsure: np.ndarray,
    spare: np.ndarray,
    flags: np.ndarray,
) -> np.ndarray:
    """Which scores rounding cannot have spoiled (``high`` and ``low`` are read unless ``small``).

    Rounding moves each decision by about eps * its size; the scores feel that as far as the
    probabilities are not all on one class. Small sums of sigmoids lose digits to underflow. A chunk
    of small logits (see ``_small_logits``) passes on two more reductions, without a row's test.
    """
    trusted, check = flags
    finite = scores is unsure or np.isfinite(scores.sum())  # bounded scores: a finite sum
    if small and finite and total.min() >= TINY_TOTAL:
        trusted.fill(True)
        return trusted
    np.greater_equal(total, TINY_TOTAL, out=trusted)  # False for NaN
    if not small:
        size = np.maximum(high, np.negative(low, out=spare), out=spare)  # the largest |logit|
        np.multiply(size, unsure, out=size)
        trusted &= np.less_equal(size, ROUNDING / np.finfo(scores.dtype).eps, out=check)
    trusted &= np.isfinite(scores, out=check)
    return trusted


def _top_two(
    cols: np.ndarray, first: np.ndarray, second: np.ndarray, lower: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The largest and second largest value of each column into ``first`` and ``second`` (equal
    when two rows tie); ``lower`` is scratch."""
    np.maximum(cols[0], cols[1], out=first)
    np.minimum(cols[0], cols[1], out=second)
    for col in cols[2:]:
        lower = np.minimum(first, col, out=lower)
        np.maximum(second, lower, out=second)
        np.maximum(first, col, out=first)
    return first, second
