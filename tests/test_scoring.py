import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from alstream.scoring import has_fast_path, linear_proba, probability_chunks, query_model
from alstream.strategies import STRATEGIES, query_proba


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
