"""Tests for the selective strategies: budget kept, uncertain arrivals asked, scikit-activeml matched."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from alstream.experiment.skactiveml_stream import SkactivemlSelector
from alstream.learning.selective import SELECTORS, BudgetManager, get_selector

BUDGET = 0.1
SPENDERS = ["variable_uncertainty", "randomized_variable_uncertainty", "split", "random"]
SEEDED = ["randomized_variable_uncertainty", "split", "random"]
SAME_RULE = ["fixed_uncertainty", "variable_uncertainty", "split", "random"]


def ask_in_batches(selector, proba: np.ndarray, size: int = 1000) -> np.ndarray:
    return np.concatenate([selector.ask(proba[i : i + size]) for i in range(0, len(proba), size)])


@pytest.fixture(scope="module")
def stream_proba() -> np.ndarray:
    """20,000 arrivals of a 3-class problem, scored by a logistic regression fitted on 200 earlier ones."""
    X, y = make_classification(n_samples=20_200, n_features=10, n_informative=5, n_classes=3, random_state=0)
    return LogisticRegression(max_iter=500).fit(X[:200], y[:200]).predict_proba(X[200:])


@pytest.fixture(scope="module")
def growing_confidence() -> np.ndarray:
    """4,000 arrivals scored by a model fitted on 10 labels, then 4,000 by one fitted on 4,000."""
    X, y = make_classification(
        n_samples=12_000, n_features=10, n_informative=5, class_sep=2.0, random_state=1
    )
    weak = LogisticRegression(C=0.01).fit(X[:10], y[:10])
    strong = LogisticRegression().fit(X[:4000], y[:4000])
    return np.vstack([weak.predict_proba(X[4000:8000]), strong.predict_proba(X[8000:])])


@pytest.mark.parametrize("budget", [0.02, 0.1, 0.3])
@pytest.mark.parametrize("name", SPENDERS)
def test_the_share_asked_stays_at_the_budget(name, budget, stream_proba):
    asked = ask_in_batches(get_selector(name, budget=budget, seed=0), stream_proba)
    assert asked.mean() == pytest.approx(budget, rel=0.1), asked.mean()
    if name != "random":  # the coin is not held to a window; the others never exceed the manager's limit
        assert np.cumsum(asked).max() <= BudgetManager(budget).limit(len(asked))


@given(
    budget=st.floats(0.01, 1.0),
    window=st.integers(1, 500),
    wants=st.lists(st.booleans(), min_size=1, max_size=3000),
)
@settings(max_examples=60, deadline=None)
def test_the_budget_manager_never_lets_more_than_its_limit_through(budget, window, wants):
    manager = BudgetManager(budget, window)
    asked = manager.ask(len(wants), lambda i: wants[i])
    assert not (asked & ~np.array(wants)).any()  # only what the strategy wanted
    counts = np.cumsum(asked)
    assert all(counts[n - 1] <= manager.limit(n) for n in range(1, len(wants) + 1))


def test_fixed_uncertainty_never_exceeds_the_budget_and_asks_only_below_its_threshold(stream_proba):
    selector = get_selector("fixed_uncertainty", budget=BUDGET)
    asked = ask_in_batches(selector, stream_proba)
    assert selector.threshold_ == pytest.approx(1 / 3 + BUDGET * 2 / 3)
    assert (stream_proba[asked].max(axis=1) <= selector.threshold_).all()
    assert asked.sum() <= BudgetManager(BUDGET).limit(len(asked))


@pytest.mark.parametrize("name", ["variable_uncertainty", "split"])
def test_uncertainty_strategies_ask_about_less_sure_arrivals_than_random(name, stream_proba):
    confidence = stream_proba.max(axis=1)
    chosen = ask_in_batches(get_selector(name, budget=BUDGET), stream_proba)
    coin = ask_in_batches(get_selector("random", budget=BUDGET), stream_proba)
    assert confidence[chosen].mean() < confidence[coin].mean() - 0.1
    unsure = confidence < np.quantile(confidence, 0.2)  # the least sure fifth of the stream
    assert unsure[chosen].mean() > 1.5 * unsure[coin].mean()


def test_variable_uncertainty_keeps_spending_once_the_model_is_sure_and_fixed_uncertainty_does_not(
    growing_confidence,
):
    variable, fixed = get_selector("variable_uncertainty", BUDGET), get_selector("fixed_uncertainty", BUDGET)
    by_variable = ask_in_batches(variable, growing_confidence)
    by_fixed = ask_in_batches(fixed, growing_confidence)
    later = slice(4000, None)
    assert by_fixed[:4000].mean() == pytest.approx(BUDGET, rel=0.1)  # an unsure model: both spend it
    assert by_fixed[later].mean() < 0.3 * BUDGET  # a sure model: few arrivals under the fixed threshold
    assert by_variable[later].mean() == pytest.approx(BUDGET, rel=0.1)
    assert variable.threshold_ > fixed.threshold_ + 0.3  # it moved up to where the unsure arrivals are now


@pytest.mark.parametrize("name", list(SELECTORS))
def test_the_same_seed_asks_the_same_whatever_the_batches(name, stream_proba):
    proba = stream_proba[:5000]
    whole = get_selector(name, BUDGET, seed=7).ask(proba)
    np.testing.assert_array_equal(ask_in_batches(get_selector(name, BUDGET, seed=7), proba, size=333), whole)
    np.testing.assert_array_equal(ask_in_batches(get_selector(name, BUDGET, seed=7), proba, size=1), whole)


@pytest.mark.parametrize("name", SEEDED)
def test_another_seed_asks_about_other_arrivals(name, stream_proba):
    a, b = (get_selector(name, BUDGET, seed=seed).ask(stream_proba[:5000]) for seed in (0, 1))
    assert (a != b).mean() > 0.05


@pytest.mark.parametrize("name", SAME_RULE)
def test_scikit_activeml_asks_about_the_very_same_arrivals(name, stream_proba):
    """Same rule, same budget manager, same random numbers (PCG64 from the same seed): same answers."""
    proba = stream_proba[:3000]
    ours = ask_in_batches(get_selector(name, BUDGET, seed=3), proba, size=500)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = ask_in_batches(SkactivemlSelector(name, BUDGET, seed=3), proba, size=500)
    np.testing.assert_array_equal(ours, theirs)
    assert ours.sum() >= 10


def test_scikit_activeml_randomized_variable_uncertainty_agrees_in_distribution(stream_proba):
    """Its noise comes from other draws (legacy Gaussians), so only the share asked and the confidence
    of what is asked agree; both sit between variable uncertainty and random."""
    proba, confidence = stream_proba[:3000], stream_proba[:3000].max(axis=1)
    ours = get_selector("randomized_variable_uncertainty", BUDGET, seed=0).ask(proba)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = SkactivemlSelector("randomized_variable_uncertainty", BUDGET, seed=0).ask(proba)
    assert ours.mean() == pytest.approx(theirs.mean(), abs=0.005)
    assert confidence[ours].mean() == pytest.approx(confidence[theirs].mean(), abs=0.03)
    variable = get_selector("variable_uncertainty", BUDGET).ask(proba)
    coin = get_selector("random", BUDGET, seed=0).ask(proba)
    for asked in (ours, theirs):
        assert confidence[variable].mean() < confidence[asked].mean() < confidence[coin].mean()


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("variable_uncertainty", {"budget": 0.0}, r"budget must be a number in \(0, 1\], got 0.0"),
        ("split", {"budget": 1.5}, r"budget must be a number in \(0, 1\], got 1.5"),
        ("random", {"budget": "0.1"}, "budget must be a number"),
        ("fixed_uncertainty", {"window": 0}, "window must be a whole number of arrivals, at least 1, got 0"),
        ("split", {"window": 2.5}, "window must be a whole number"),
        ("nope", {}, "unknown selective strategy 'nope': choose one of fixed_uncertainty, variable"),
    ],
)
def test_bad_parameters_say_what_is_wrong(name, options, message):
    with pytest.raises(ValueError, match=message):
        get_selector(name, **options)


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("VariableUncertainty(step=0.0)", r"step must be a number in \(0, 1\]"),
        ("VariableUncertainty(threshold=-1.0)", "threshold must be a number"),
        ("FixedUncertainty(threshold=1.5)", r"threshold must be a number in \[0, 1\]"),
        ("RandomizedVariableUncertainty(delta=0)", "delta must be a number"),
        ("Split(random_share=1.0)", r"random_share must be a number in \(0, 1\)"),
    ],
)
def test_bad_strategy_parameters_are_refused_on_the_first_batch(selector, message):
    from alstream.learning import selective

    built = eval(selector, vars(selective))  # the constructor only stores them, as in scikit-learn
    with pytest.raises(ValueError, match=message):
        built.ask(np.full((3, 2), 0.5))


def test_bad_probabilities_are_refused():
    selector = get_selector("variable_uncertainty")
    for proba, message in [
        (np.full(4, 0.5), "2-D"),
        (np.ones((4, 1)), "2 or more"),
        (np.array([[0.5, np.nan]]), "NaN"),
    ]:
        with pytest.raises(ValueError, match=message):
            selector.ask(proba)
    selector.ask(np.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match="proba has 2 classes, earlier batches had 3"):
        selector.ask(np.full((2, 2), 0.5))
