import tracemalloc
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_digits, make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from alstream.learning.estimators import make_model, standardized
from alstream.learning.inference import (
    has_fast_path,
    linear_form,
    linear_proba,
    probability_chunks,
    query_model,
    score_pool,
)
from alstream.learning.strategies import STRATEGIES, entropy, least_confident, margin, query_proba


def _data(n_classes, n=600):
    X, y = make_classification(
        n_samples=n, n_features=12, n_informative=8, n_classes=n_classes, random_state=0
    )
    return LogisticRegression(max_iter=1000).fit(X[:200], y[:200]), X[200:]


@pytest.fixture(scope="module", params=[2, 3, 10], ids=lambda c: f"{c}-classes")
def fitted(request):
    return _data(request.param, n=2000 if request.param == 10 else 600)


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_query_model_matches_query_proba_on_the_models_probabilities(fitted, name):
    model, X = fitted
    ids = np.arange(1000, 1000 + 2 * len(X), 2)
    ref = query_proba(model.predict_proba(X), 30, name, seed=3, ids=ids)
    for chunk_size in (1, 7, 64, 10_000):
        sel = query_model(model, X, 30, name, seed=3, ids=ids, chunk_size=chunk_size)
        np.testing.assert_array_equal(sel.indices, ref.indices)
        np.testing.assert_allclose(sel.scores, ref.scores, rtol=1e-9, atol=1e-12)


def test_the_fast_path_gives_scikit_learns_probabilities(fitted):
    model, X = fitted
    assert has_fast_path(model, X)
    np.testing.assert_allclose(linear_proba(model, X), model.predict_proba(X), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(
        linear_proba(model, X.astype(np.float32)), model.predict_proba(X.astype(np.float32)), rtol=1e-5
    )


def test_extreme_decisions_do_not_overflow(fitted):
    model, X = fitted
    proba = linear_proba(model, X * 1e4)
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_other_models_and_inputs_use_their_own_predict_proba():
    model, X = _data(3)

    class Tweaked(LogisticRegression):
        def predict_proba(self, X):
            return np.full((len(X), 3), 1 / 3)

    tweaked = Tweaked(max_iter=1000).fit(X, model.predict(X))
    pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, model.predict(X))
    forest = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, model.predict(X))
    assert not has_fast_path(tweaked, X) and not has_fast_path(pipeline, X) and not has_fast_path(forest, X)
    assert not has_fast_path(model, pd.DataFrame(X))
    for other in (tweaked, pipeline, forest):
        chunks = list(probability_chunks(other, X, 100))
        np.testing.assert_allclose(np.vstack([p for _, p in chunks]), other.predict_proba(X))


def test_a_pool_with_missing_values_is_refused_clearly():
    model, X = _data(3)
    X = X.copy()
    X[5, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        query_model(model, X, 10, "entropy")


def test_asking_for_more_than_the_pool_raises():
    model, X = _data(3)
    with pytest.raises(ValueError, match="pool"):
        query_model(model, X[:5], 6)


# --- score_pool: the whole pool's scores, as the service re-scores it -------------------------

FUSED = {"least_confident": least_confident, "margin": margin, "entropy": entropy}
ATOL = 1e-5  # float32 decisions against scikit-learn's float64 predict_proba
LINKS = ["one-vs-rest", "softmax"]  # ids of [sgd, logistic regression] parameters


def _pool(n_classes, n=3000, wild=False, seed=0):
    """Labeled rows to fit on and a float32 pool; ``wild`` features have scales 0.01 to 1000 and offsets."""
    X, y = make_classification(
        n_samples=300 + n, n_features=16, n_informative=10, n_classes=n_classes, random_state=seed
    )
    if wild:
        X = X * np.logspace(-2, 3, 16) + np.linspace(-50, 50, 16)
    return X[:300], y[:300], X[300:].astype(np.float32)


def _expected(model, pool, strategy):
    """The strategy on the model's probabilities for the pool's values, computed in float64."""
    return STRATEGIES[strategy](model.predict_proba(pool.astype(np.float64)))


def _unscaled(model):
    return make_pipeline(FunctionTransformer(np.float64), model)  # the service's standardize=False


def _logreg():
    return LogisticRegression(max_iter=2000)


def _sgd():
    return make_model("sgd")  # the service's default


LINEAR = {  # name: classes, model, wild features (a model without a scaler needs tame ones)
    "logreg softmax, scaled": (10, lambda: standardized(_logreg()), True),
    "sgd one-vs-rest, scaled": (10, lambda: standardized(_sgd()), True),
    "logreg binary, scaled": (2, lambda: standardized(_logreg()), True),
    "sgd binary, scaled": (2, lambda: standardized(_sgd()), True),
    "sgd, scaled, tame": (10, lambda: standardized(_sgd()), False),
    "logreg softmax, cast only": (4, lambda: _unscaled(_logreg()), False),
    "sgd one-vs-rest, cast only": (4, lambda: _unscaled(_sgd()), False),
    "sgd binary, bare": (2, _sgd, False),
    "logreg softmax, bare": (3, _logreg, False),
    "scaler without mean": (5, lambda: make_pipeline(StandardScaler(with_mean=False), _sgd()), True),
    "scaler without std": (5, lambda: make_pipeline(StandardScaler(with_std=False), _logreg()), True),
    "two scalers, passthrough": (
        3,
        lambda: make_pipeline(StandardScaler(), "passthrough", StandardScaler(), _logreg()),
        True,
    ),
}


@pytest.fixture(scope="module", params=list(LINEAR))
def linear(request):
    n_classes, make, wild = LINEAR[request.param]
    X, y, pool = _pool(n_classes, wild=wild)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # lbfgs on unscaled wild features: fine here
        return make().fit(X, y), pool


@pytest.mark.parametrize("name", list(FUSED))
def test_linear_models_score_like_predict_proba_then_the_strategy(linear, name):
    model, pool = linear
    assert linear_form(model) is not None  # the fast path
    expected = _expected(model, pool, name)
    for chunk_size in (1, 777, 3000):  # the last splits into BLAS blocks of 1024 and a rest
        scores = score_pool(model, pool, name, chunk_size=chunk_size)
        assert scores.shape == (len(pool),)
        np.testing.assert_allclose(scores, expected, rtol=0, atol=ATOL)


def test_any_other_strategy_gets_the_probabilities(linear):
    model, pool = linear
    proba = model.predict_proba(pool.astype(np.float64))

    def second_class(p):
        return np.asarray(p)[:, 1]

    np.testing.assert_allclose(score_pool(model, pool, second_class), proba[:, 1], atol=ATOL)
    assert (score_pool(model, pool, "random") == 0).all()


def test_a_zero_variance_column_scales_as_the_scaler_does():
    X, y, pool = _pool(10, wild=True)
    X[:, 3], pool[:, 3] = 7.0, np.linspace(-1e3, 1e3, len(pool))  # constant when fitted, not later
    for final in (make_model("sgd"), LogisticRegression(max_iter=2000)):
        model = standardized(final).fit(X, y)
        assert model[1].scale_[3] == 1.0
        for name, strategy in FUSED.items():
            expected = strategy(model.predict_proba(pool))
            np.testing.assert_allclose(score_pool(model, pool, name), expected, atol=ATOL)


@pytest.mark.parametrize("final", [make_model("sgd"), LogisticRegression(max_iter=2000)], ids=LINKS)
@pytest.mark.parametrize("n_classes", [2, 10])
def test_a_float64_pool_scores_in_float64(final, n_classes):
    X, y, pool = _pool(n_classes)
    model = standardized(final).fit(X, y)
    pool = pool.astype(np.float64)
    for name, strategy in FUSED.items():
        expected = strategy(model.predict_proba(pool))
        np.testing.assert_allclose(score_pool(model, pool, name), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("final", [make_model("sgd"), LogisticRegression(max_iter=2000)], ids=LINKS)
def test_a_binary_model_scores_from_its_one_decision(final):
    X, y, pool = _pool(2)
    model = standardized(final).fit(X, y)
    form = linear_form(model)
    assert form is not None and form.weights.shape == (16, 1)
    decision = pool @ form.weights[:, 0] + form.bias[0, 0]
    np.testing.assert_allclose(decision, model.decision_function(pool), atol=1e-4)
    for name, strategy in FUSED.items():
        expected = strategy(model.predict_proba(pool.astype(np.float64)))
        np.testing.assert_allclose(score_pool(model, pool, name), expected, atol=ATOL)


@pytest.mark.parametrize("final", [make_model("sgd"), LogisticRegression(max_iter=2000)], ids=LINKS)
def test_tied_classes_have_a_margin_of_one(final):
    """Two classes with the same weights: wherever they lead, the margin is exactly 1."""
    X, y, pool = _pool(4)
    model = standardized(final).fit(X, y)
    model[-1].coef_[1], model[-1].intercept_[1] = model[-1].coef_[0], model[-1].intercept_[0]
    proba = model.predict_proba(pool.astype(np.float64))
    tied = np.isin(np.argmax(proba, axis=1), [0, 1])
    assert tied.sum() > 100
    for chunk_size in (1, 777, 3000):
        scores = score_pool(model, pool, "margin", chunk_size=chunk_size)
        assert (scores[tied] == 1.0).all()
        np.testing.assert_allclose(scores, margin(proba), atol=ATOL)


def test_a_chunk_with_logits_beyond_exp_shifts_them_and_scores_alike():
    """Least-confident and margin take exp of the logits unshifted unless a row's exceed exp's range."""
    X, y, pool = _pool(10)
    model = standardized(LogisticRegression(max_iter=2000)).fit(X, y)
    far = pool.copy()
    far[::100] *= 200.0  # one row in 100: logits in the hundreds, very sure of its class
    decisions = model.decision_function(far.astype(np.float64))
    assert np.abs(decisions[::100]).max() > 200 and np.abs(decisions[1::100]).max() < 80
    proba = model.predict_proba(far.astype(np.float64))
    for name in ("least_confident", "margin"):
        for chunk_size in (50, 3000):  # chunks without a far row, and chunks with
            scores = score_pool(model, far, name, chunk_size=chunk_size)
            np.testing.assert_allclose(scores, FUSED[name](proba), atol=ATOL)


def _fitted(kind, n_classes, seed=0):
    X, y, pool = _pool(n_classes, n=400, seed=seed)
    final = make_model("sgd") if kind == "sgd" else LogisticRegression(C=1e4, max_iter=3000)
    return standardized(final).fit(X, y), pool


@settings(max_examples=40, deadline=None)
@given(
    n_classes=st.sampled_from([2, 3, 10]),
    kind=st.sampled_from(["sgd", "logreg"]),
    magnitude=st.sampled_from([1e-3, 1.0, 1e3, 1e6, 1e30, 3e38]),
    seed=st.integers(0, 2**16),
)
def test_rows_far_out_score_within_the_rounding_of_their_decisions(n_classes, kind, magnitude, seed):
    """Some features blown up: a score may be off by float32's rounding of its decision's terms."""
    model, pool = _fitted(kind, n_classes, seed)
    rng = np.random.default_rng(seed)
    pool = np.clip(pool * rng.choice([1.0, magnitude], size=pool.shape), -3.4e38, 3.4e38).astype(np.float32)
    with np.errstate(all="ignore"):  # scikit-learn's own float64 exp over- and underflows here
        proba = model.predict_proba(pool.astype(np.float64))
        terms = np.abs(model[:-1].transform(pool)[:, None, :] * model[-1].coef_).sum(axis=2).max(axis=1)
    for name, strategy in FUSED.items():
        scores = score_pool(model, pool, name)
        assert np.isfinite(scores).all()
        error = np.abs(scores - strategy(proba))
        assert (error <= ATOL + 2 * np.finfo(np.float32).eps * terms).all()


@pytest.mark.parametrize("kind", ["sgd", "logreg"])
@pytest.mark.parametrize("n_classes", [2, 10])
def test_rows_beyond_float32_decisions_score_as_predict_proba_does(kind, n_classes):
    """Decisions that overflow float32 or sigmoids that all underflow: those rows use predict_proba."""
    model, pool = _fitted(kind, n_classes)
    rng = np.random.default_rng(1)
    for magnitude in (1e20, 1e36, 3e38):
        with np.errstate(over="ignore"):
            huge = np.where(rng.random(pool.shape) < 0.5, pool * magnitude, pool)
        huge = np.clip(huge, -3.4e38, 3.4e38).astype(np.float32)
        with np.errstate(all="ignore"):
            proba = model.predict_proba(huge.astype(np.float64))
        for name, strategy in FUSED.items():
            np.testing.assert_allclose(score_pool(model, huge, name), strategy(proba), atol=ATOL)


def test_the_few_rows_rounding_spoils_are_scored_together_not_a_call_per_chunk():
    """A row far out in every chunk (as a model after online updates meets them): predict_proba costs
    milliseconds a call whatever its rows, so those rows are gathered and scored in one call."""
    model, pool = _fitted("sgd", 10)
    pool = np.tile(pool, (8, 1))[:4_000]
    pool[::100] *= 1e20  # one row in a hundred: doubtful in every chunk of 256
    calls = []
    original = model.predict_proba
    model.predict_proba = lambda X: calls.append(len(X)) or original(X)
    scores = score_pool(model, pool, "entropy", chunk_size=256)
    with np.errstate(all="ignore"):
        expected = entropy(original(pool.astype(np.float64)))
    np.testing.assert_allclose(scores, expected, atol=ATOL)
    assert len(calls) == 1 and calls[0] >= 16  # one call, not one per chunk (16 chunks hold such rows)


class Doubled(StandardScaler):
    """A scaler with its own idea of transform: the fast path must not assume it scales."""

    def transform(self, X, copy=None):
        return super().transform(X, copy=copy) * 2.0


OTHER = {
    "an unknown step": lambda: make_pipeline(
        FunctionTransformer(np.log1p), StandardScaler(), make_model("sgd")
    ),
    "a subclassed scaler": lambda: make_pipeline(Doubled(), LogisticRegression()),
    "a random forest": lambda: RandomForestClassifier(n_estimators=10, random_state=0),
    "a scaled random forest": lambda: standardized(RandomForestClassifier(n_estimators=10, random_state=0)),
    "sgd with modified huber": lambda: standardized(SGDClassifier(loss="modified_huber", random_state=0)),
}


@pytest.mark.parametrize("kind", list(OTHER))
@pytest.mark.parametrize("name", [*FUSED, "random"])
def test_other_models_score_with_their_own_predict_proba_exactly(kind, name):
    X, y, pool = _pool(4, n=1000)
    X, pool = np.abs(X), np.abs(pool)  # in log1p's domain
    model = OTHER[kind]().fit(X, y)
    assert linear_form(model) is None
    np.testing.assert_array_equal(score_pool(model, pool, name), STRATEGIES[name](model.predict_proba(pool)))


def test_the_top_of_the_queue_is_the_same_on_digits():
    X, y = load_digits(return_X_y=True)  # pixels 0..16, some always 0 in the labeled rows
    rng = np.random.default_rng(0)
    order = rng.permutation(len(X))
    labeled, pool = order[:200], X[order[200:]].astype(np.float32)
    k = 50
    for final in (make_model("sgd"), LogisticRegression(max_iter=2000)):
        model = standardized(final).fit(X[labeled], y[labeled])
        for name, strategy in FUSED.items():
            slow = strategy(model.predict_proba(pool))
            fast = score_pool(model, pool, name)
            cut = np.sort(slow)[-k]
            surely_in = np.flatnonzero(slow > cut + ATOL)
            surely_out = np.flatnonzero(slow < cut - ATOL)
            top = set(np.argpartition(fast, -k)[-k:].tolist())
            assert set(surely_in.tolist()) <= top and not top & set(surely_out.tolist())
            assert len(surely_in) > k / 2  # ties aside, not vacuous


def test_memory_beyond_the_scores_is_one_chunk():
    X, y, pool = _pool(10, n=200_000)
    models = [standardized(make_model("sgd")).fit(X, y), OTHER["an unknown step"]().fit(np.abs(X), y)]
    for model, rows in zip(models, (pool, np.abs(pool)), strict=True):
        tracemalloc.start()
        try:
            scores = score_pool(model, rows, "entropy")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < scores.nbytes + 4_000_000  # the pool's features alone are 12.8 MB


def test_an_empty_pool_has_no_scores():
    X, y, pool = _pool(3, n=10)
    model = standardized(make_model("sgd")).fit(X, y)
    assert score_pool(model, pool[:0], "margin").shape == (0,)


def test_bad_pools_and_models_fail_as_predict_proba_does():
    X, y, pool = _pool(3, n=100)
    model = standardized(make_model("sgd")).fit(X, y)
    missing = pool.copy()
    missing[7, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        score_pool(model, missing, "entropy")
    with pytest.raises(ValueError, match="features"):
        score_pool(model, pool[:, :5], "entropy")
    with pytest.raises(NotFittedError):
        score_pool(standardized(make_model("sgd")), pool, "entropy")
