"""Tests for information density and density-weighted uncertainty."""

import numpy as np
import pytest
from modAL.density import information_density as modal_density
from modAL.uncertainty import classifier_entropy, classifier_margin
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from alstream.learning import density
from alstream.learning.density import DensityWeighted, information_density
from alstream.learning.strategies import margin


@pytest.fixture(scope="module")
def pool():
    X, y = make_classification(500, n_features=6, n_informative=4, n_classes=3, random_state=0)
    labeled = np.arange(0, 500, 10)
    model = LogisticRegression(max_iter=1000).fit(X[labeled], y[labeled])
    return X, model, np.setdiff1d(np.arange(500), labeled)


@pytest.mark.parametrize("metric", ["euclidean", "cosine", "manhattan"])
def test_density_is_modals_information_density(pool, metric):
    X, _, _ = pool
    np.testing.assert_allclose(information_density(X, metric=metric), modal_density(X, metric), rtol=1e-7)
    np.testing.assert_allclose(
        information_density(X, metric=metric, chunk_size=7), modal_density(X, metric), rtol=1e-7
    )


def test_density_against_a_reference_by_hand():
    X, reference = np.array([[0.0, 0.0], [3.0, 4.0]]), np.array([[0.0, 0.0], [0.0, 1.0]])
    # row 0: distances 0 and 1; row 1: 5 and sqrt(18)
    expected = [(1 + 1 / 2) / 2, (1 / 6 + 1 / (1 + np.sqrt(18))) / 2]
    np.testing.assert_allclose(information_density(X, reference), expected)


@pytest.mark.parametrize(("uncertainty", "beta"), [("margin", 1.0), ("margin", 3.0), ("entropy", 0.5)])
def test_same_picks_as_modals_density_times_uncertainty(pool, uncertainty, beta):
    X, model, _ = pool
    everything = np.arange(len(X))  # modAL's density is over the pool it is given: all of X
    picked = DensityWeighted(uncertainty, beta=beta, n_reference=len(X)).query(X, everything, 25, model=model)
    scores = 1 - classifier_margin(model, X) if uncertainty == "margin" else classifier_entropy(model, X)
    theirs = scores * modal_density(X) ** beta
    assert set(picked.indices.tolist()) == set(np.argsort(-theirs)[:25].tolist())
    np.testing.assert_allclose(picked.scores, np.sort(theirs)[::-1][:25], rtol=1e-7)


def test_beta_zero_is_plain_margin(pool):
    X, model, unlabeled = pool
    picked = DensityWeighted(beta=0.0).query(X, unlabeled, 10, model=model).indices
    scores = margin(model.predict_proba(X[unlabeled]))
    assert set(picked.tolist()) == set(unlabeled[np.argsort(-scores)[:10]].tolist())


def test_outliers_lose_to_dense_uncertain_rows():
    model = LogisticRegression().fit(np.array([[-1.0, 0.0], [1.0, 0.0]]), [0, 1])
    rng = np.random.default_rng(0)
    dense = rng.normal([0.3, 0.0], 0.3, size=(200, 2))
    outliers = np.array([[0.0, 40.0], [0.0, -40.0], [0.0, 60.0]])  # on the boundary: margin's first picks
    X = np.vstack([dense, outliers])
    by_margin = np.argsort(-margin(model.predict_proba(X)))[:3]
    assert set(by_margin.tolist()) == {200, 201, 202}
    picked = DensityWeighted(n_reference=50).query(X, np.arange(len(X)), 3, model=model).indices
    assert not set(picked.tolist()) & {200, 201, 202}


def test_density_is_computed_once_per_sample_against_a_sample_of_the_pool(pool, monkeypatch):
    X, model, unlabeled = pool
    strategy = DensityWeighted(n_reference=100)
    first = strategy.query(X, unlabeled, 5, model=model, seed=4)
    assert strategy.reference_.shape == (100, X.shape[1])  # never all pairs
    assert len(strategy.ids_) == len(unlabeled)
    kept = strategy.density_.copy()
    monkeypatch.setattr(density, "information_density", lambda *a, **k: 1 / 0)
    rest = np.setdiff1d(unlabeled, first.indices)
    second = strategy.query(X, rest, 5, model=model, seed=4)  # every row seen: nothing computed
    assert not set(second.indices.tolist()) & set(first.indices.tolist())
    np.testing.assert_array_equal(strategy.density_, kept)
    monkeypatch.undo()
    strategy.query(X, np.arange(len(X)), 5, model=model, seed=4)  # the labeled rows too, now
    assert len(strategy.ids_) == len(X)
    np.testing.assert_array_equal(strategy.density_[np.searchsorted(strategy.ids_, unlabeled)], kept)


def test_the_reference_sample_follows_the_seed(pool):
    X, model, unlabeled = pool
    a, b, c = (
        DensityWeighted(n_reference=50),
        DensityWeighted(n_reference=50),
        DensityWeighted(n_reference=50),
    )
    a.query(X, unlabeled, 5, model=model, seed=1)
    b.query(X, unlabeled, 5, model=model, seed=1)
    c.query(X, unlabeled, 5, model=model, seed=2)
    np.testing.assert_array_equal(a.reference_, b.reference_)
    assert not np.array_equal(a.reference_, c.reference_)
    a.query(X, unlabeled, 5, model=model, seed=2)  # a new seed: a new reference
    np.testing.assert_array_equal(a.reference_, c.reference_)


def test_bad_arguments_raise(pool):
    X, model, unlabeled = pool
    with pytest.raises(ValueError, match="needs a fitted model"):
        DensityWeighted().query(X, unlabeled, 3)
    with pytest.raises(ValueError, match="margin, entropy or least_confident"):
        DensityWeighted("random").query(X, unlabeled, 3, model=model)
    with pytest.raises(ValueError, match="unknown strategy"):
        DensityWeighted("bald").query(X, unlabeled, 3, model=model)
