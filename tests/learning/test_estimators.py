import numpy as np
import pytest
from sklearn.datasets import load_iris

from alstream.learning.estimators import MODELS, fit, make_model, standardized, supports_partial_fit, update


@pytest.mark.parametrize("name", list(MODELS))
def test_every_named_model_learns_and_predicts_probabilities(name):
    X, y = load_iris(return_X_y=True)
    model = fit(make_model(name, seed=0), X, y)
    proba = model.predict_proba(X)
    assert proba.shape == (150, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert (model.predict(X) == y).mean() > 0.8


def test_fit_does_not_touch_the_prototype():
    X, y = load_iris(return_X_y=True)
    prototype = make_model("logreg")
    fit(prototype, X, y)
    assert not hasattr(prototype, "coef_")


def test_update_learns_from_new_labels_only_and_keeps_the_old_model():
    X, y = load_iris(return_X_y=True)
    classes = np.unique(y)
    old = fit(make_model("sgd"), X[::10], y[::10])
    before = old.coef_.copy()
    new = update(old, X, y, classes)
    np.testing.assert_array_equal(old.coef_, before)
    assert not np.array_equal(new.coef_, before)


def test_update_refuses_models_without_partial_fit():
    X, y = load_iris(return_X_y=True)
    forest = fit(make_model("random_forest"), X, y)
    assert not supports_partial_fit(forest)
    with pytest.raises(TypeError, match="no partial_fit"):
        update(forest, X, y, np.unique(y))


def test_unknown_model_lists_the_choices():
    with pytest.raises(ValueError, match="logreg, sgd, random_forest, gradient_boosting"):
        make_model("svm")


def test_a_standardized_pipeline_updates_its_final_step_only():
    X, y = load_iris(return_X_y=True)
    pipeline = fit(standardized(make_model("sgd")), X[::5], y[::5])
    assert supports_partial_fit(pipeline)
    scale = pipeline[-2].scale_.copy()
    updated = update(pipeline, X, y, np.unique(y))
    np.testing.assert_array_equal(updated[-2].scale_, scale)
    assert not np.array_equal(updated[-1].coef_, pipeline[-1].coef_)
    assert (updated.predict(X) == y).mean() > 0.7
