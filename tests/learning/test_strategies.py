"""Tests for the query strategies and the streaming top-k selection."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from modAL.uncertainty import entropy_sampling, margin_sampling, uncertainty_sampling

from alstream.learning.strategies import (
    STRATEGIES,
    entropy,
    get_strategy,
    least_confident,
    margin,
    query_proba,
)

UNCERTAINTY = ["least_confident", "margin", "entropy"]
ALL = [*UNCERTAINTY, "random"]
FAST = settings(max_examples=60, deadline=None)


# --- hand-computed values -------------------------------------------------------------------


@pytest.mark.parametrize("name", UNCERTAINTY)
def test_binary_half_is_most_uncertain_and_certain_rows_least(name):
    p = np.linspace(0.0, 1.0, 11)
    scores = STRATEGIES[name](np.column_stack([p, 1 - p]))
    assert np.argmax(scores) == 5  # p = 0.5
    assert scores[0] == scores[-1] == scores.min()  # p = 0 and p = 1
    # symmetric in p <-> 1 - p, and rising towards 0.5
    np.testing.assert_allclose(scores, scores[::-1], atol=1e-12)
    assert np.all(np.diff(scores[:6]) > 0)
    assert query_proba(np.column_stack([p, 1 - p]), 1, name).indices.tolist() == [5]


def test_binary_half_values():
    half = np.array([[0.5, 0.5], [1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(least_confident(half), [0.5, 0.0, 0.0])
    np.testing.assert_allclose(margin(half), [1.0, 0.0, 0.0])
    np.testing.assert_allclose(entropy(half), [math.log(2), 0.0, 0.0], atol=1e-15)


ROWS = np.array(
    [
        [0.6, 0.3, 0.1],
        [0.2, 0.5, 0.3],
        [0.1, 0.2, 0.7],
        [1 / 3, 1 / 3, 1 / 3],
        [0.5, 0.5, 0.0],
        [0.45, 0.1, 0.45],
        [1.0, 0.0, 0.0],
    ]
)


def test_least_confident_by_hand():
    expected = [0.4, 0.5, 0.3, 2 / 3, 0.5, 0.55, 0.0]
    np.testing.assert_allclose(least_confident(ROWS), expected, atol=1e-12)


def test_margin_by_hand():
    # 1 - (p_first - p_second)
    expected = [1 - 0.3, 1 - 0.2, 1 - 0.5, 1.0, 1.0, 1.0, 0.0]
    np.testing.assert_allclose(margin(ROWS), expected, atol=1e-12)
    # the runner-up is not among the first two columns
    np.testing.assert_allclose(margin(np.array([[0.1, 0.4, 0.2, 0.3]])), [0.9], atol=1e-12)
    # a single class has no runner-up: margin 0
    np.testing.assert_array_equal(margin(np.ones((3, 1))), [0.0, 0.0, 0.0])


def test_entropy_by_hand_in_nats():
    expected = [
        0.897946,  # -(.6 ln .6 + .3 ln .3 + .1 ln .1)
        1.029653,  # -(.2 ln .2 + .5 ln .5 + .3 ln .3)
        0.801819,  # -(.1 ln .1 + .2 ln .2 + .7 ln .7)
        1.098612,  # ln 3
        0.693147,  # ln 2, the zero contributes 0 * log 0 = 0
        0.948915,  # -(2 * .45 ln .45 + .1 ln .1)
        0.0,
    ]
    scores = entropy(ROWS)
    assert not np.isnan(scores).any()
    np.testing.assert_allclose(scores, expected, atol=1e-6)
    textbook = [-sum(p * math.log(p) for p in row if p > 0) for row in ROWS]
    np.testing.assert_allclose(scores, textbook, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", ALL)
def test_strategies_do_not_modify_their_input(name):
    for proba in (ROWS.copy(), np.asfortranarray(ROWS)):
        before = proba.copy()
        STRATEGIES[name](proba)
        np.testing.assert_array_equal(proba, before)


# --- property tests ---------------------------------------------------------------------------

# weights from a few small integers (many zeros and exact ties) or continuous values
weight = st.one_of(st.sampled_from([0.0, 0.0, 1.0, 1.0, 2.0, 3.0]), st.floats(1e-3, 1.0))


@st.composite
def probas(draw, min_rows=1, max_rows=40):
    n = draw(st.integers(min_rows, max_rows))
    c = draw(st.integers(1, 5))
    w = draw(hnp.arrays(np.float64, (n, c), elements=weight))
    w[w.sum(axis=1) == 0] = 1.0
    if draw(st.booleans()) and n > 1:  # duplicate some rows: exact score ties
        w[draw(st.integers(0, n - 1)) :] = w[0]
    return w / w.sum(axis=1, keepdims=True)


@st.composite
def pool_and_k(draw):
    proba = draw(probas())
    k = draw(st.integers(1, len(proba)))
    return proba, k


@st.composite
def pool_with_ids(draw):
    """A pool whose rows are the unlabeled part of a bigger index space."""
    proba, k = draw(pool_and_k())
    n_labeled = draw(st.integers(0, 30))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    labeled_mask = np.zeros(len(proba) + n_labeled, dtype=bool)
    labeled_mask[rng.choice(len(labeled_mask), n_labeled, replace=False)] = True
    return proba, k, np.flatnonzero(~labeled_mask), np.flatnonzero(labeled_mask)


seeds = st.integers(0, 2**63)


@FAST
@given(pool_with_ids(), st.sampled_from(ALL), seeds)
def test_selects_k_unique_rows_from_the_unlabeled_pool(data, name, seed):
    proba, k, unlabeled, labeled = data
    sel = query_proba(proba, k, name, seed=seed, ids=unlabeled)
    assert len(sel.indices) == len(sel.scores) == k
    assert len(np.unique(sel.indices)) == k
    assert np.all((sel.indices >= 0) & (sel.indices < len(proba)))
    chosen = unlabeled[sel.indices]
    assert set(chosen) <= set(unlabeled)
    assert not set(chosen) & set(labeled)


@FAST
@given(pool_with_ids(), st.sampled_from(ALL), seeds, st.randoms(use_true_random=False))
def test_row_order_does_not_change_the_chosen_ids(data, name, seed, rnd):
    proba, k, ids, _ = data
    perm = np.array(rnd.sample(range(len(proba)), len(proba)))
    a = ids[query_proba(proba, k, name, seed=seed, ids=ids).indices]
    b = ids[perm][query_proba(proba[perm], k, name, seed=seed, ids=ids[perm]).indices]
    assert set(a.tolist()) == set(b.tolist())
    np.testing.assert_array_equal(a, b)  # same order too: ties are ordered by key


@FAST
@given(pool_with_ids(), st.sampled_from(ALL), seeds)
def test_same_seed_same_selection(data, name, seed):
    proba, k, ids, _ = data
    a = query_proba(proba, k, name, seed=seed, ids=ids)
    b = query_proba(proba.copy(), k, name, seed=seed, ids=ids.copy())
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.scores, b.scores)


@FAST
@given(pool_and_k(), st.sampled_from(ALL), seeds)
def test_default_ids_are_row_positions(data, name, seed):
    proba, k = data
    a = query_proba(proba, k, name, seed=seed)
    b = query_proba(proba, k, name, seed=seed, ids=np.arange(len(proba)))
    np.testing.assert_array_equal(a.indices, b.indices)


@FAST
@given(pool_with_ids(), st.sampled_from(ALL), seeds)
def test_chunk_size_does_not_change_the_selection(data, name, seed):
    proba, k, ids, _ = data
    ref = query_proba(proba, k, name, seed=seed, ids=ids, chunk_size=10_000)
    for chunk_size in (1, 3, 7):
        sel = query_proba(proba, k, name, seed=seed, ids=ids, chunk_size=chunk_size)
        np.testing.assert_array_equal(sel.indices, ref.indices)
        np.testing.assert_array_equal(sel.scores, ref.scores)


@FAST
@given(pool_and_k(), st.sampled_from(ALL), seeds)
def test_selected_scores_are_the_k_largest_most_uncertain_first(data, name, seed):
    proba, k = data
    sel = query_proba(proba, k, name, seed=seed, chunk_size=4)
    scores = STRATEGIES[name](proba)
    np.testing.assert_array_equal(sel.scores, scores[sel.indices])
    assert np.all(np.diff(sel.scores) <= 0)  # most uncertain first
    unselected = np.delete(scores, sel.indices)
    if len(unselected):
        assert unselected.max() <= sel.scores.min()


@FAST
@given(pool_and_k(), st.sampled_from(ALL), st.integers(1, 5))
def test_asking_for_more_than_the_pool_raises(data, name, extra):
    proba, _ = data
    with pytest.raises(ValueError, match="pool"):
        query_proba(proba, len(proba) + extra, name)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("k", [0, -1])
def test_non_positive_k_raises(name, k):
    with pytest.raises(ValueError, match="k must be at least 1"):
        query_proba(ROWS, k, name)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="2-D"):
        query_proba(np.array([0.5, 0.5]), 1)
    with pytest.raises(ValueError, match="ids"):
        query_proba(ROWS, 1, ids=np.arange(len(ROWS) - 1))
    with pytest.raises(ValueError, match="chunk_size"):
        query_proba(ROWS, 1, chunk_size=0)
    with pytest.raises(ValueError, match="NaN"):
        query_proba(np.array([[np.nan, 0.5], [0.5, 0.5]]), 1, "least_confident")


def test_custom_callable_strategy():
    sel = query_proba(ROWS, 2, strategy=lambda p: p[:, 0])
    assert sel.indices.tolist() == [6, 0]  # largest first column: 1.0, then 0.6


# --- registry ---------------------------------------------------------------------------------


def test_get_strategy_names():
    assert get_strategy("least_confident") is least_confident
    assert get_strategy("least-confident") is least_confident
    assert get_strategy(" Margin ") is margin
    for name, fn in STRATEGIES.items():
        assert get_strategy(name) is fn


def test_unknown_strategy_lists_the_choices():
    with pytest.raises(ValueError, match="unknown strategy") as err:
        get_strategy("uncertainty")
    for name in STRATEGIES:
        assert name in str(err.value)
    with pytest.raises(ValueError, match="unknown strategy"):
        query_proba(ROWS, 1, "bald")


# --- random strategy --------------------------------------------------------------------------


def test_random_is_deterministic_per_seed_and_varies_across_seeds():
    proba = np.random.default_rng(0).dirichlet(np.ones(3), size=1000)
    a = query_proba(proba, 50, "random", seed=7).indices
    np.testing.assert_array_equal(a, query_proba(proba, 50, "random", seed=7).indices)
    picks = [set(query_proba(proba, 50, "random", seed=s).indices.tolist()) for s in range(20)]
    # two random 50-subsets of 1000 share 2.5 rows on average; identical ones mean no randomness
    overlaps = [len(picks[i] & picks[j]) for i in range(20) for j in range(i + 1, 20)]
    assert max(overlaps) < 15
    assert 1.0 < np.mean(overlaps) < 5.0
    # it does not follow the probabilities: not the same set as the entropy choice
    assert len(set(a.tolist()) & set(query_proba(proba, 50, "entropy").indices.tolist())) < 15


def test_random_is_roughly_uniform():
    n, k, runs = 100, 10, 3000
    proba = np.random.default_rng(1).dirichlet(np.ones(2), size=n)
    counts = np.zeros(n)
    for seed in range(runs):
        counts[query_proba(proba, k, "random", seed=seed).indices] += 1
    expected = runs * k / n  # 300 per index, binomial sd ~16
    assert np.all(np.abs(counts - expected) < 0.25 * expected)  # > 4.5 sd
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 2 * (n - 1)  # ~ chi2 with ~99 dof, mean 99 * (1 - k/n)


def test_random_subset_pool_is_uniform_over_the_given_ids():
    ids = np.arange(0, 2000, 7)  # the unlabeled part of a bigger space
    proba = np.full((len(ids), 2), 0.5)
    counts = np.zeros(len(ids))
    for seed in range(1000):
        counts[query_proba(proba, 20, "random", seed=seed, ids=ids).indices] += 1
    expected = 1000 * 20 / len(ids)  # ~69.9
    assert np.all(np.abs(counts - expected) < 0.5 * expected)


# --- agreement with modAL ---------------------------------------------------------------------


class FixedProba:
    """A stand-in classifier whose predict_proba looks up precomputed rows by X."""

    def __init__(self, proba):
        self.proba = proba

    def predict_proba(self, X):
        return self.proba[np.asarray(X).ravel()]


MODAL = {
    "least_confident": uncertainty_sampling,
    "margin": margin_sampling,
    "entropy": entropy_sampling,
}


@pytest.mark.parametrize("name", UNCERTAINTY)
@pytest.mark.parametrize(("seed", "n_classes", "k"), [(0, 2, 10), (1, 3, 25), (2, 5, 1), (3, 10, 60)])
def test_same_selection_as_modal(name, seed, n_classes, k):
    n = 400
    proba = np.random.default_rng(seed).dirichlet(np.full(n_classes, 0.7), size=n)
    theirs, _ = MODAL[name](FixedProba(proba), np.arange(n).reshape(-1, 1), n_instances=k)
    ours = query_proba(proba, k, name, chunk_size=97)
    assert set(ours.indices.tolist()) == set(np.asarray(theirs).tolist())


# --- dtypes -------------------------------------------------------------------


@pytest.mark.parametrize("name", UNCERTAINTY)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_float32_gives_the_float64_selection(name, seed):
    p32 = np.random.default_rng(seed).dirichlet(np.ones(4), size=300).astype(np.float32)
    s32 = query_proba(p32, 20, name)
    s64 = query_proba(p32.astype(np.float64), 20, name)
    assert set(s32.indices.tolist()) == set(s64.indices.tolist())
    np.testing.assert_allclose(s32.scores, s64.scores, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", UNCERTAINTY)
def test_float32_with_zeros_has_no_nan(name):
    p32 = ROWS.astype(np.float32)
    scores = STRATEGIES[name](p32)
    assert not np.isnan(scores).any()
    np.testing.assert_allclose(scores, STRATEGIES[name](ROWS), atol=1e-6)
    assert query_proba(p32, 3, name).indices.tolist() == query_proba(ROWS, 3, name).indices.tolist()


def test_entropy_of_subnormal_probabilities_does_not_depend_on_the_chunk():
    a, zero, c = [1.0, 1e-310], [1.0, 0.0], [1.0, 0.996e-310]  # valid rows: each sums to 1
    proba = np.array([a, zero, c])
    picks = {cs: query_proba(proba, 1, "entropy", chunk_size=cs).indices[0] for cs in (1, 2, 3)}
    assert len(set(picks.values())) == 1, picks


def test_integer_probabilities_are_accepted():
    one_hot = np.array([[1, 0], [0, 1], [1, 0]])
    for name in STRATEGIES:
        assert query_proba(one_hot, 2, name).indices.shape == (2,)
