import itertools

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.preprocessing import StandardScaler

from alstream.experiment.loop import Oracle, Steps, run_loop, select_batch
from alstream.learning.inference import query_model


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _run(digits, **options):
    X, y = digits
    initial = np.arange(0, 1000, 10)  # 100 labels, every class present
    return list(
        run_loop(
            LogisticRegression(max_iter=500),
            X[:1000],
            Oracle(y[:1000]),
            initial,
            X[1000:],
            y[1000:],
            **options,
        )
    )


def test_each_round_adds_one_batch_of_new_samples(digits):
    rounds = _run(digits, strategy="entropy", batch_size=15, iterations=4)
    assert [r.iteration for r in rounds] == [0, 1, 2, 3, 4]
    assert [r.n_labeled for r in rounds] == [100, 115, 130, 145, 160]
    asked = np.concatenate([r.queried for r in rounds[1:]])
    assert len(np.unique(asked)) == len(asked) == 60
    assert not np.isin(asked, rounds[0].queried).any()


def test_round_k_is_chosen_by_the_model_of_round_k_minus_1(digits):
    X, _ = digits
    rounds = _run(digits, strategy="margin", batch_size=10, iterations=3)
    labeled = np.zeros(1000, dtype=bool)
    labeled[rounds[0].queried] = True
    for previous, current in itertools.pairwise(rounds):
        unlabeled = np.flatnonzero(~labeled)
        expected = unlabeled[query_model(previous.model, X[unlabeled], 10, "margin", ids=unlabeled).indices]
        assert sorted(current.queried) == sorted(expected)
        labeled[current.queried] = True


def test_models_of_earlier_rounds_are_not_changed_by_later_ones(digits):
    X, _ = digits
    rounds = _run(digits, strategy="entropy", batch_size=20, iterations=2)
    first = rounds[0].model.predict_proba(X[:50])
    np.testing.assert_allclose(rounds[0].model.predict_proba(X[:50]), first)
    assert not np.allclose(rounds[2].model.predict_proba(X[:50]), first)


def test_metrics_are_reported_every_round(digits):
    rounds = _run(digits, strategy="random", batch_size=20, iterations=2)
    for r in rounds:
        assert set(r.metrics) == {"accuracy", "macro_f1", "log_loss"}
        assert 0.5 < r.metrics["accuracy"] <= 1.0


def test_online_updates_use_partial_fit_and_keep_learning(digits):
    X, y = digits
    calls = {"update": 0, "retrain": 0}
    plain = Steps()

    def update(*args):
        calls["update"] += 1
        return plain.update(*args)

    def retrain(*args):
        calls["retrain"] += 1
        return plain.retrain(*args)

    steps = Steps(update=update, retrain=retrain)
    model = SGDClassifier(loss="log_loss", alpha=1e-3, random_state=0)
    rounds = list(
        run_loop(
            model,
            X[:1000],
            Oracle(y[:1000]),
            np.arange(0, 1000, 10),
            X[1000:],
            y[1000:],
            batch_size=20,
            iterations=6,
            online=True,
            refit_every=3,
            steps=steps,
        )
    )
    assert calls == {"update": 4, "retrain": 2}  # rounds 3 and 6 refit in full
    assert rounds[-1].metrics["accuracy"] > 0.8


def test_the_loop_stops_when_the_pool_is_empty(digits):
    X, y = digits
    rounds = list(
        run_loop(
            LogisticRegression(max_iter=500),
            X[:60],
            Oracle(y[:60]),
            np.arange(0, 60, 3),
            X[1000:],
            y[1000:],
            batch_size=15,
            iterations=10,
        )
    )
    assert [r.n_labeled for r in rounds] == [20, 35, 50, 60]


def test_select_batch_returns_pool_indices_of_unlabeled_samples(digits):
    X, y = digits
    model = LogisticRegression(max_iter=500).fit(X[:200], y[:200])
    unlabeled = np.arange(200, 400)
    picked = select_batch(model, X, unlabeled, 25, "entropy", seed=0)
    assert len(set(picked)) == 25 and set(picked) <= set(unlabeled)


def test_bad_batch_size_is_refused(digits):
    with pytest.raises(ValueError, match="batch_size"):
        _run(digits, batch_size=0, iterations=1)


def test_a_pool_strategy_is_made_once_a_run_and_sees_the_labels(digits):
    from alstream.learning.diversity import ClusterMargin

    _, y = digits
    seen = []

    def select(model, X, unlabeled, k, strategy, seed, labels=None):
        seen.append((strategy, labels[np.setdiff1d(np.arange(len(X)), unlabeled)].copy()))
        return select_batch(model, X, unlabeled, k, strategy, seed, labels)

    rounds = _run(digits, strategy="cluster-margin", batch_size=10, iterations=3, steps=Steps(select=select))
    strategies = {id(strategy) for strategy, _ in seen}
    assert len(strategies) == 1 and isinstance(seen[0][0], ClusterMargin)  # one object: clustered once
    assert seen[0][0].clusterer_ is not None
    labeled = np.sort(rounds[0].queried)
    for (_, labels), r in zip(seen, rounds[1:], strict=True):  # the labels known before each round
        np.testing.assert_array_equal(labels, y[labeled])
        labeled = np.sort(np.concatenate([labeled, r.queried]))
    asked = np.concatenate([r.queried for r in rounds[1:]])
    assert len(np.unique(asked)) == 30 and not np.isin(asked, rounds[0].queried).any()
