"""Properties every pool strategy has, the registry of names, and ``select``."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression

from alstream.learning.cold_start import Typical
from alstream.learning.committee import QueryByCommittee
from alstream.learning.density import DensityWeighted
from alstream.learning.diversity import ClusterMargin
from alstream.learning.querying import (
    POOL_STRATEGIES,
    make_strategy,
    query_strategy_name,
    query_strategy_names,
    select,
)
from alstream.learning.strategies import STRATEGIES

NAMES = sorted(POOL_STRATEGIES)
FAST = settings(max_examples=60, deadline=None)


@st.composite
def pools(draw):
    """A pool with labeled and unlabeled rows, ids from a bigger space, a model fitted on the labels."""
    n = draw(st.integers(12, 50))
    n_classes = draw(st.integers(2, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    X = rng.normal(size=(n, draw(st.integers(1, 4))))
    if draw(st.booleans()):  # duplicate rows: exact ties in every score
        X[-3:] = X[0]
    y = rng.integers(0, n_classes, size=n)
    labeled = rng.choice(n, draw(st.integers(n_classes, n // 2)), replace=False)
    y[labeled[:n_classes]] = np.arange(n_classes)  # every class labeled at least once
    unlabeled = np.setdiff1d(np.arange(n), labeled)
    ids = rng.choice(10 * n, size=n, replace=False)
    k = draw(st.integers(1, len(unlabeled)))
    labels = np.where(np.isin(np.arange(n), labeled), y, -1)
    model = LogisticRegression(max_iter=1000).fit(X[labeled], y[labeled])
    return X, labels, unlabeled, ids, k, model


def small(name):
    """The registered strategy with sizes that fit a pool of a few dozen rows."""
    return {
        "cluster_margin": lambda: ClusterMargin(n_clusters=4, candidates=3),
        "committee_vote": lambda: QueryByCommittee("vote", n_members=3),
        "committee_kl": lambda: QueryByCommittee("kl", n_members=3),
        "density": lambda: DensityWeighted(n_reference=10),
        "typical": lambda: Typical(n_neighbors=3),
    }[name]()


def _query(name, X, labels, unlabeled, ids, k, model, seed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # KMeans on duplicated rows finds fewer distinct clusters
        return small(name).query(X, unlabeled, k, model=model, labels=labels, seed=seed, ids=ids)


seeds = st.integers(0, 2**32 - 1)


@FAST
@given(pools(), st.sampled_from(NAMES), seeds)
def test_k_unique_rows_from_the_unlabeled_pool(pool, name, seed):
    X, labels, unlabeled, ids, k, model = pool
    picked = _query(name, X, labels, unlabeled, ids, k, model, seed)
    assert len(picked.indices) == len(picked.scores) == k
    assert len(set(picked.indices.tolist())) == k
    assert set(picked.indices.tolist()) <= set(unlabeled.tolist())
    assert np.isfinite(picked.scores).all() or name == "typical"  # duplicates are infinitely typical


@FAST
@given(pools(), st.sampled_from(NAMES), seeds)
def test_same_seed_same_picks(pool, name, seed):
    X, labels, unlabeled, ids, k, model = pool
    a = _query(name, X, labels, unlabeled, ids, k, model, seed)
    b = _query(name, X.copy(), labels.copy(), unlabeled.copy(), ids.copy(), k, model, seed)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.scores, b.scores)


@FAST
@given(pools(), st.sampled_from(NAMES), seeds, st.randoms(use_true_random=False))
def test_row_order_does_not_change_the_picked_ids(pool, name, seed, rnd):
    X, labels, unlabeled, ids, k, model = pool
    perm = np.array(rnd.sample(range(len(X)), len(X)))
    where = np.argsort(perm)  # row r of X is row where[r] of X[perm]
    a = _query(name, X, labels, unlabeled, ids, k, model, seed)
    b = _query(name, X[perm], labels[perm], where[unlabeled][::-1], ids[perm], k, model, seed)
    np.testing.assert_array_equal(ids[a.indices], ids[perm][b.indices])  # the same ids, in the same order
    np.testing.assert_array_equal(a.scores, b.scores)


def test_seeds_change_the_picks():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    y = (X[:, 0] > 0).astype(int)
    model = LogisticRegression().fit(X[:40], y[:40])
    labels, unlabeled = np.where(np.arange(400) < 40, y, -1), np.arange(40, 400)
    for name in NAMES:
        strategy = DensityWeighted(n_reference=20) if name == "density" else make_strategy(name)
        picks = set()
        for seed in range(4):
            picked = strategy.query(X, unlabeled, 10, model=model, labels=labels, seed=seed)
            picks.add(tuple(sorted(picked.indices.tolist())))
        assert len(picks) > 1, name


# --- registry ------------------------------------------------------------------------------------


def test_every_name_is_known_and_pool_strategies_are_made_fresh():
    assert query_strategy_names() == [*STRATEGIES, *POOL_STRATEGIES]
    assert query_strategy_name("Committee-KL") == "committee_kl"
    assert make_strategy("least-confident") == "least_confident"
    a, b = make_strategy("cluster-margin"), make_strategy("cluster_margin")
    assert isinstance(a, ClusterMargin) and a is not b
    assert make_strategy("committee-vote").disagreement == "vote"
    assert make_strategy("committee-kl").disagreement == "kl"
    assert isinstance(make_strategy("density"), DensityWeighted)
    assert isinstance(make_strategy("typical"), Typical)
    with pytest.raises(ValueError, match="unknown strategy") as error:
        make_strategy("badge")
    for name in query_strategy_names():
        assert name in str(error.value)


def test_select_takes_a_name_a_function_or_a_pool_strategy():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(100, 2))
    y = (X[:, 0] > 0).astype(int)
    model = LogisticRegression().fit(X[:20], y[:20])
    unlabeled = np.arange(20, 100)
    by_name = select("margin", X, unlabeled, 5, model=model)
    assert set(by_name.tolist()) <= set(unlabeled.tolist()) and len(set(by_name.tolist())) == 5
    np.testing.assert_array_equal(select(STRATEGIES["margin"], X, unlabeled, 5, model=model), by_name)
    labels = np.where(np.arange(100) < 20, y, -1)
    for name in NAMES:
        picked = select(name, X, unlabeled, 5, model=model, labels=labels)
        assert len(set(picked.tolist())) == 5 and set(picked.tolist()) <= set(unlabeled.tolist())
    assert len(select("typical", X, np.arange(100), 5)) == 5  # no model needed
    with pytest.raises(ValueError, match="needs a fitted model"):
        select("margin", X, unlabeled, 5)
    with pytest.raises(ValueError, match="needs a fitted model"):
        select("cluster-margin", X, unlabeled, 5)
