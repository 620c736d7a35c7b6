"""Stopping rules: kappa as scikit-learn computes it, the window as small-text's KappaAverage reads it."""

from __future__ import annotations

import warnings
from itertools import pairwise

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, f1_score

from alstream.learning.stopping import (
    OverallUncertainty,
    PredictedChangeOfF,
    StabilizingPredictions,
    cohen_kappa,
    draw_stop_set,
    f_agreement,
    uncertainty,
)


def agreeing(kappas: list[float], n: int = 400, seed: int = 0) -> list[np.ndarray]:
    """Binary predictions of successive models, balanced, whose successive kappas are ``kappas``.

    With both vectors half 0 and half 1, kappa = 2 * agreement - 1: flipping ``f`` rows of each
    class keeps the balance and gives kappa 1 - 4 f / n.
    """
    rng = np.random.default_rng(seed)
    current = np.repeat([0, 1], n // 2)
    rng.shuffle(current)
    models = [current]
    for kappa in kappas:
        flips = round((1 - kappa) * n / 4)
        assert 1 - 4 * flips / n == pytest.approx(kappa), "choose kappas the row count can make"
        nxt = current.copy()
        for label in (0, 1):
            rows = rng.choice(np.flatnonzero(current == label), size=flips, replace=False)
            nxt[rows] = 1 - label
        models.append(nxt)
        current = nxt
    return models


@pytest.mark.parametrize("seed", range(20))
def test_kappa_equals_scikit_learns(seed):
    rng = np.random.default_rng(seed)
    n, k = rng.integers(5, 300), rng.integers(2, 7)
    a = rng.integers(0, k, size=n)
    b = np.where(rng.random(n) < rng.random(), a, rng.integers(0, k, size=n))  # some agreement
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a class missing from one vector
        expected = cohen_kappa_score(a, b)
    assert cohen_kappa(a, b) == pytest.approx(expected, abs=1e-12)
    assert cohen_kappa(a.astype(str), b.astype(str)) == pytest.approx(expected, abs=1e-12)


def test_kappa_of_unrelated_and_opposite_predictions():
    a = np.array([0, 1] * 50)
    assert cohen_kappa(a, a) == 1.0
    assert cohen_kappa(a, 1 - a) == pytest.approx(cohen_kappa_score(a, 1 - a)) == pytest.approx(-1.0)
    assert cohen_kappa(a, np.zeros_like(a)) == pytest.approx(0.0)  # one rater constant: chance level


def test_kappa_where_scikit_learn_is_undefined_is_full_agreement():
    same = np.full(10, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isnan(cohen_kappa_score(same, same))
    assert cohen_kappa(same, same) == 1.0


def test_kappa_refuses_vectors_of_different_lengths():
    with pytest.raises(ValueError, match="length"):
        cohen_kappa([0, 1], [0, 1, 1])


def test_successive_kappas_are_scikit_learns():
    models = agreeing([0.5, 0.8, 0.95, 1.0])
    expected = [cohen_kappa_score(a, b) for a, b in pairwise(models)]
    np.testing.assert_allclose(StabilizingPredictions().kappas(models), expected, atol=1e-12)
    np.testing.assert_allclose(expected, [0.5, 0.8, 0.95, 1.0], atol=1e-12)


def test_stops_exactly_when_the_windows_average_crosses_the_threshold():
    # windows of 3 kappas: (0.9, 0.97, 0.99) 0.953, (0.97, 0.99, 0.99) 0.9833, (0.99, 0.99, 1.0) 0.9933
    models = agreeing([0.9, 0.97, 0.99, 0.99, 1.0, 1.0])
    rule = StabilizingPredictions(window=3, threshold=0.99)
    assert rule.stop_round(models) == 5  # the model of round 5 closes the first window >= 0.99
    assert [rule.should_stop(models[: r + 1]) for r in range(len(models))] == [False] * 5 + [True, True]
    assert StabilizingPredictions(window=3, threshold=0.98).stop_round(models) == 4
    assert StabilizingPredictions(window=3, threshold=0.9934).stop_round(models) == 6


def test_an_average_just_at_the_threshold_stops():
    models = agreeing([0.96, 0.98, 0.98, 1.0])  # last window (0.98, 0.98, 1.0): mean 0.98666...
    at = float(StabilizingPredictions().kappas(models)[-3:].mean())
    assert at == pytest.approx(0.98667, abs=1e-5)
    assert StabilizingPredictions(threshold=at).stop_round(models) == 4
    assert StabilizingPredictions(threshold=np.nextafter(at, 2.0)).stop_round(models) is None


@pytest.mark.parametrize("window", [1, 2, 3, 5])
def test_never_stops_before_window_pairs(window):
    models = [np.array([0, 1, 0, 1])] * 10  # every model agrees with the last: kappa 1
    rule = StabilizingPredictions(window=window, threshold=0.99)
    assert rule.stop_round(models) == window
    assert not any(rule.should_stop(models[: r + 1]) for r in range(window))
    assert rule.stop_round(models[:window]) is None  # window models are window - 1 pairs
    assert rule.stop_round(models[:1]) is None and rule.stop_round([]) is None


def test_a_window_of_zero_is_refused():
    with pytest.raises(ValueError, match="window"):
        StabilizingPredictions(window=0).stop_round([np.zeros(3)] * 3)


def test_the_rule_reads_only_the_last_window():
    models = agreeing([0.2, 0.2, 1.0, 1.0, 1.0])  # an unstable start is forgotten
    assert StabilizingPredictions().stop_round(models) == 5


def test_overall_uncertainty_on_hand_made_probabilities():
    proba = np.array([[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0.0]])
    np.testing.assert_allclose(uncertainty(proba), [0.0, 1.0, np.log(2) / np.log(3)])
    np.testing.assert_allclose(uncertainty(proba, "least_confident"), [0.0, 2 / 3, 0.5])
    rule = OverallUncertainty(threshold=0.6, measure="entropy")
    assert rule.uncertainty(proba) == pytest.approx((1 + np.log(2) / np.log(3)) / 3)  # 0.543
    assert rule.should_stop(proba)
    assert not OverallUncertainty(threshold=0.5).should_stop(proba)
    assert not OverallUncertainty(threshold=0.3, measure="least_confident").should_stop(proba)  # 0.389


def test_overall_uncertainty_stops_at_the_first_round_below_the_threshold():
    rule = OverallUncertainty(threshold=0.1)
    assert rule.stop_round([0.5, 0.2, 0.1, 0.09, 0.12, 0.01]) == 3  # strictly below
    assert rule.stop_round([0.5, 0.2, 0.1]) is None
    assert rule.stop_round([]) is None


def test_an_unknown_measure_is_refused():
    with pytest.raises(ValueError, match="unknown uncertainty measure"):
        OverallUncertainty(measure="margin").uncertainty([[0.5, 0.5]])


def test_stop_set_is_a_fixed_sample_of_the_unlabeled_rows():
    unlabeled = np.arange(100, 3100, 3)
    first, again = draw_stop_set(unlabeled, 200, seed=1), draw_stop_set(unlabeled, 200, seed=1)
    np.testing.assert_array_equal(first, again)
    assert len(np.unique(first)) == 200 and np.isin(first, unlabeled).all()
    assert not np.array_equal(first, draw_stop_set(unlabeled, 200, seed=2))
    np.testing.assert_array_equal(draw_stop_set(unlabeled[:50], 200), unlabeled[:50])  # all, if fewer


@pytest.mark.parametrize("seed", range(8))
def test_f_agreement_is_scikit_learns_macro_f1_and_symmetric(seed):
    rng = np.random.default_rng(seed)
    n_classes = int(rng.integers(2, 6))
    a, b = rng.integers(0, n_classes, size=200), rng.integers(0, n_classes, size=200)
    b[:120] = a[:120]  # related, as successive models are
    expected = f1_score(a, b, average="macro", labels=np.union1d(a, b))
    assert f_agreement(a, b) == pytest.approx(expected) == pytest.approx(f_agreement(b, a))
    names = np.array(["x", "y", "z", "u", "v"])[rng.permutation(5)]  # the labels' names do not matter
    assert f_agreement(names[a], names[b]) == pytest.approx(expected)
    assert f_agreement(a, a) == 1.0 and 0.0 <= f_agreement(a, b) <= 1.0


def test_predicted_change_of_f_stops_once_every_change_of_the_window_is_below_the_threshold():
    models = agreeing([0.9, 0.97, 0.99, 0.99, 1.0, 1.0])  # balanced, two classes: 1 - F = (1 - kappa) / 2
    rule = PredictedChangeOfF(window=3, threshold=0.01)
    np.testing.assert_allclose(rule.changes(models), [0.05, 0.015, 0.005, 0.005, 0.0, 0.0], atol=1e-12)
    assert rule.stop_round(models) == 5  # changes 0.005, 0.005, 0: all below; 0.015 closed the one before
    assert [rule.should_stop(models[: r + 1]) for r in range(len(models))] == [False] * 5 + [True, True]
    assert PredictedChangeOfF(window=1, threshold=0.01).stop_round(models) == 3
    assert PredictedChangeOfF(window=3, threshold=0.005).stop_round(models) is None  # "below": strictly
    assert PredictedChangeOfF().stop_round(models) == 4  # small-text's defaults: 0.05, window 3


@pytest.mark.parametrize("window", [1, 2, 3, 5])
def test_predicted_change_of_f_never_stops_before_window_pairs(window):
    models = [np.array([0, 1, 2, 1])] * 10
    rule = PredictedChangeOfF(window=window)
    assert rule.stop_round(models) == window and rule.stop_round(models[:window]) is None
    assert not any(rule.should_stop(models[: r + 1]) for r in range(window))
    assert rule.stop_round([]) is None
    with pytest.raises(ValueError, match="window"):
        PredictedChangeOfF(window=0).stop_round(models)
