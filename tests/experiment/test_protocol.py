import dataclasses
import pickle

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from alstream.errors import ConfigError, InvalidInput
from alstream.experiment.config import ExperimentConfig
from alstream.experiment.datasets import load_dataset
from alstream.experiment.protocol import load_experiment_data, run_experiment, run_grid, run_now, split_data
from alstream.learning.cold_start import typical_sample
from alstream.learning.curves import summarize


@pytest.fixture(scope="module")
def digits_comparison():
    """The protocol of the issue: digits, standardized, logreg, 10% initial, batch 20, 20 rounds, 5 seeds."""
    config = ExperimentConfig(
        dataset="digits",
        strategies=("margin", "entropy", "least_confident", "random"),
        model="logreg",
        initial_fraction=0.1,
        batch_size=20,
        iterations=20,
        seeds=5,
    )
    result = run_experiment(config)
    return result, summarize(result.curves, result.reference).set_index("strategy")


def test_uncertainty_sampling_beats_continuous_training_on_digits(digits_comparison):
    _, summary = digits_comparison
    for strategy in ("margin", "entropy", "least_confident"):
        assert summary.loc[strategy, "aulc"] > summary.loc["random", "aulc"], summary["aulc"]


def test_margin_reaches_99_percent_of_full_pool_accuracy_with_fewer_labels(digits_comparison):
    _, summary = digits_comparison
    margin, random = summary.loc["margin", "labels_to_99%"], summary.loc["random", "labels_to_99%"]
    assert margin == margin  # reached (not NaN)
    assert random != random or margin < random


def test_every_strategy_starts_from_the_same_labeled_set(digits_comparison):
    result, _ = digits_comparison
    first = result.curves[result.curves["iteration"] == 0]
    for _, rounds in first.groupby("seed"):
        assert rounds["accuracy"].nunique() == 1  # same data, same model, same start
    n_pool = round(0.75 * 1797)
    assert set(result.curves["n_labeled"]) == {round(0.1 * n_pool) + 20 * k for k in range(21)}


def test_the_curves_have_one_row_per_strategy_seed_and_round(digits_comparison):
    result, _ = digits_comparison
    assert len(result.curves) == 4 * 5 * 21
    assert len(result.reference) == 5
    assert result.reference["accuracy"].mean() > 0.95


def test_split_is_stratified_and_keeps_test_data_out_of_the_pool():
    data = load_dataset("digits")
    config = ExperimentConfig(dataset="digits", initial_fraction=0.1, test_size=0.25)
    split = split_data(data.X, data.y, config, seed=3)
    assert len(split.X_pool) + len(split.X_test) == len(data.X)
    assert len(split.initial) == round(0.1 * len(split.X_pool))
    counts = np.bincount(split.y_pool[split.initial], minlength=10)
    assert counts.min() >= 12 and counts.max() <= 15  # every class, in proportion
    np.testing.assert_allclose(split.X_pool.mean(axis=0), 0, atol=1e-9)  # standardized on the pool


def test_seeds_change_the_split_and_the_same_seed_repeats_it():
    data = load_dataset("iris")
    config = ExperimentConfig(dataset="iris")
    a, b, c = (split_data(data.X, data.y, config, seed) for seed in (0, 0, 1))
    np.testing.assert_array_equal(a.initial, b.initial)
    assert not np.array_equal(a.X_test, c.X_test)


def test_a_typical_initial_set_is_the_pools_most_typical_points():
    data = load_dataset("digits")
    config = ExperimentConfig(dataset="digits", initial_fraction=0.05, initial_set="Typical")
    split = split_data(data.X, data.y, config, seed=2)
    assert config.initial_set == "typical"
    assert len(split.initial) == round(0.05 * len(split.X_pool)) == len(np.unique(split.initial))
    np.testing.assert_array_equal(
        split.initial, np.sort(typical_sample(split.X_pool, len(split.initial), seed=2))
    )
    np.testing.assert_array_equal(split.initial, split_data(data.X, data.y, config, seed=2).initial)
    stratified = split_data(data.X, data.y, ExperimentConfig(dataset="digits", initial_fraction=0.05), seed=2)
    np.testing.assert_array_equal(split.X_test, stratified.X_test)  # the same split, another initial set
    assert len(np.unique(split.y_pool[split.initial])) >= 9


def test_every_pool_strategy_runs_in_the_protocol():
    names = ("cluster-margin", "committee-vote", "committee-kl", "density", "typical", "margin")
    config = ExperimentConfig(dataset="wine", strategies=names, iterations=3, batch_size=6, seeds=2)
    result = run_experiment(config)
    assert config.strategies == (
        "cluster_margin",
        "committee_vote",
        "committee_kl",
        "density",
        "typical",
        "margin",
    )
    assert len(result.curves) == len(names) * 2 * 4
    assert set(result.curves.groupby(["strategy", "seed"])["n_labeled"].max()) == {13 + 18}
    assert result.curves.groupby("strategy")["accuracy"].last().min() > 0.85


def test_string_labels_from_a_file_work(tmp_path):
    import pandas as pd

    data = load_dataset("wine")
    frame = pd.DataFrame(data.X, columns=data.feature_names)
    frame["kind"] = np.array(["red", "white", "rose"])[data.y]
    path = tmp_path / "wine.csv"
    frame.to_csv(path, index=False)
    config = ExperimentConfig(
        dataset=str(path), label_column="kind", strategies=("margin",), iterations=2, batch_size=5, seeds=1
    )
    result = run_experiment(config)
    assert sorted(result.classes) == ["red", "rose", "white"]
    assert result.curves["accuracy"].iloc[-1] > 0.8
    assert config.name == "wine-logreg"


def test_an_impossible_initial_set_is_refused():
    data = load_dataset("iris")
    with pytest.raises(InvalidInput, match="initial"):
        split_data(data.X, data.y, ExperimentConfig(dataset="iris", initial_fraction=0.999), seed=0)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"strategies": ("nope",)}, InvalidInput, "unknown strategy"),
        ({"model": "svm"}, InvalidInput, "unknown model"),
        ({"initial_fraction": 0.0}, ConfigError, "initial_fraction"),
        ({"batch_size": 0}, ConfigError, "batch_size"),
        ({"seeds": 0}, ConfigError, "seeds"),
        ({"strategies": ()}, ConfigError, "at least one"),
        ({"online": True}, ConfigError, "'logreg' has no partial_fit.*use sgd"),
        ({"model": "random_forest", "online": True}, ConfigError, "no partial_fit"),
        ({"refit_every": 3}, ConfigError, "online updates only"),
        ({"initial_set": "random"}, InvalidInput, "unknown initial set 'random'"),
    ],
)
def test_bad_configs_say_what_is_wrong(options, error, message):
    with pytest.raises(error, match=message):
        ExperimentConfig(**options)


def test_a_config_keeps_what_it_is_given_normalised_and_stays_frozen():
    given = {"strategies": ("Margin", "margin"), "initial_set": "Typical", "batch_size": 5.0}
    config = ExperimentConfig(dataset="iris", **given)
    assert (config.strategies, config.initial_set, config.batch_size) == (("margin",), "typical", 5)
    params = config.params()
    assert config.name == params["name"] == "iris-logreg" and params["strategies"] == "margin"
    assert pickle.loads(pickle.dumps(config)) == config == dataclasses.replace(config)
    assert dataclasses.replace(config, name="mine").name == "mine"
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.strategies = ("entropy",)  # type: ignore[misc]


def test_the_runs_made_here_use_one_blas_thread_each():
    """Many BLAS threads for small fits only wait on each other; the grid's parallelism is its runs."""
    config = ExperimentConfig(dataset="iris", strategies=("margin",), iterations=1, seeds=1)
    threads: list[int] = []

    def submit(fn, *args):
        threads.extend(lib["num_threads"] for lib in threadpool_info())
        return run_now(fn, *args)

    with threadpool_limits(limits=2):  # what a 2-CPU machine has unless told otherwise
        run_grid(config, load_experiment_data(config), submit)
        assert max(lib["num_threads"] for lib in threadpool_info()) == 2  # as it was, after the grid
    assert threads and set(threads) == {1}
