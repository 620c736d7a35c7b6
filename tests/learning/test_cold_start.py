"""Tests for TypiClust: typicality, the picks, and the cold start it gives."""

import warnings

import numpy as np
import pytest
from skactiveml.pool import TypiClust
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits, make_blobs
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from alstream.learning.cold_start import Typical, typical_sample, typicality


def test_typicality_by_hand():
    X = np.array([[0.0], [1.0], [3.0], [7.0]])
    # 2 nearest others: 0 -> 1, 3 (mean 2); 1 -> 0, 3 (1.5); 3 -> 1, 0 (2.5); 7 -> 3, 1 (5)
    np.testing.assert_allclose(typicality(X, n_neighbors=2), [1 / 2, 1 / 1.5, 1 / 2.5, 1 / 5])
    np.testing.assert_allclose(typicality(X, n_neighbors=10), 3 / np.array([11, 9, 9, 17]))  # all 3 others
    assert typicality(X[:1]).tolist() == [1.0]
    assert np.isinf(typicality(np.zeros((3, 2)))).all()  # duplicates


def test_the_largest_uncovered_clusters_give_their_most_typical_point():
    X, blob = make_blobs([80, 60, 40, 20], n_features=2, cluster_std=0.5, random_state=3)
    typical = Typical(n_neighbors=10, clusterer=KMeans(n_init=10))
    picked = typical.query(X, np.arange(len(X)), 3, seed=0)
    assert sorted(blob[picked.indices].tolist()) == [0, 1, 2]  # the three largest blobs, one each
    for row, score in zip(picked.indices, picked.scores, strict=True):
        members = np.flatnonzero(blob == blob[row])
        values = typicality(X[members], n_neighbors=10)
        assert score == pytest.approx(values.max())
        assert row == members[np.argmax(values)]
    # one label: 5 clusters for 1 label + 4 picks; the 4 uncovered ones give a pick each, largest first
    labeled = np.flatnonzero(blob == 0)[:1]
    typical = Typical(n_neighbors=10, clusterer=KMeans(n_init=10))
    later = typical.query(X, np.setdiff1d(np.arange(len(X)), labeled), 4, seed=0)
    cluster = typical.clusters_  # of the rows in id order: here, the positions
    by_size = np.argsort(-np.bincount(cluster), kind="stable")
    assert cluster[later.indices].tolist() == [c for c in by_size if c != cluster[labeled[0]]]


def test_more_picks_than_clusters_go_back_to_the_least_labeled():
    X, _ = make_blobs(200, centers=3, random_state=0)
    typical = Typical(max_clusters=4)
    picked = typical.query(X, np.arange(len(X)), 10, seed=1).indices
    assert len(set(picked.tolist())) == 10
    counts = np.bincount(typical.clusters_[picked], minlength=4)  # ids are the positions: id order
    assert counts.max() - counts.min() <= 1  # every cluster in turn


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("n_labeled", "k"), [(0, 5), (0, 8), (6, 4), (10, 3)])
def test_same_picks_as_scikit_activeml(seed, n_labeled, k):
    X, _ = make_blobs([60, 50, 45, 40, 30, 25, 20, 15], n_features=3, cluster_std=1.5, random_state=0)
    labeled = np.random.default_rng(seed).choice(len(X), n_labeled, replace=False)
    y = np.full(len(X), np.nan)
    y[labeled] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = TypiClust(random_state=seed, k=5).query(X, y, batch_size=k)
    ours = Typical(n_neighbors=5, clusterer=KMeans()).query(
        X, np.setdiff1d(np.arange(len(X)), labeled), k, seed=seed
    )
    assert set(ours.indices.tolist()) == set(theirs.tolist())


def test_a_typical_cold_start_beats_a_uniform_draw_on_digits():
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    pool, test = np.arange(1300), np.arange(1300, len(X))
    typical, uniform = [], []
    for seed in range(5):
        for draw, scores in (
            (typical_sample(X[pool], 20, seed=seed), typical),
            (np.random.default_rng(seed).choice(pool, 20, replace=False), uniform),
        ):
            model = LogisticRegression(max_iter=1000).fit(X[draw], y[draw])
            scores.append(model.score(X[test], y[test]))
        assert len(set(y[typical_sample(X[pool], 20, seed=seed)].tolist())) >= 9  # nearly every digit
    assert np.mean(typical) > np.mean(uniform) + 0.08  # measured: 0.74 against 0.57


def test_bad_arguments_raise():
    X = np.zeros((5, 2))
    with pytest.raises(ValueError, match="pool has only"):
        Typical().query(X, np.arange(2), 3)
    with pytest.raises(ValueError, match="unlabeled rows must be unique"):
        Typical().query(X, np.array([1, 1]), 1)
    with pytest.raises(ValueError, match="ids"):
        Typical().query(X, np.arange(5), 1, ids=np.arange(4))
