"""The experiment protocol: the same splits for every strategy, repeated over seeds.

For each seed: a stratified test split; the features standardized on the training pool
(its labels unused); an initial labeled set (``initial_fraction`` of the pool: stratified, or the
most typical points of as many clusters, ``initial_set="typical"``);
a reference model trained on the whole pool; then the loop, once per strategy.

Each round also records what the stopping rules (``alstream.learning.stopping``) read: the model's
predictions on the seed's stop set (a fixed random sample of the initially unlabeled pool, the same
for every strategy) and its mean uncertainty over the rows still unlabeled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from alstream.errors import InvalidInput
from alstream.experiment.config import ExperimentConfig, StreamConfig
from alstream.experiment.datasets import Dataset, load_dataset
from alstream.experiment.loop import PLAIN_STEPS, Oracle, Round, Steps, run_loop
from alstream.learning import stopping
from alstream.learning.cold_start import typical_sample
from alstream.learning.estimators import Classifier, make_model
from alstream.learning.querying import make_strategy

RoundCallback = Callable[[str, int, Round], None]
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


@dataclass(frozen=True)
class Split:
    """One seed's data: the pool (oracle labels hidden behind ``Oracle``), test set, seed set."""

    seed: int
    X_pool: np.ndarray
    y_pool: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    initial: np.ndarray


@dataclass(frozen=True)
class ExperimentResult:
    """Tidy learning curves (one row per strategy, seed and round) and the full-pool reference.

    ``stop_predictions[(strategy, seed)]`` holds each round's predictions on the seed's stop set
    (rounds x rows); the curves' ``uncertainty_<measure>`` columns, the mean uncertainty of the rows
    still unlabeled.
    """

    config: ExperimentConfig
    curves: pd.DataFrame
    reference: pd.DataFrame
    classes: tuple[str, ...]
    stop_predictions: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)


def uncertainty_column(measure: str) -> str:
    """The curves' column of the mean ``measure`` over the unlabeled pool."""
    return f"uncertainty_{measure}"


def stop_signals(
    model: Classifier, X_pool: np.ndarray, labeled: np.ndarray, stop_set: np.ndarray
) -> tuple[np.ndarray, dict[str, float]]:
    """What the stopping rules need from one round's model: its predictions on ``stop_set`` (the most
    likely class), and its mean uncertainty over the rows not ``labeled`` (0 once none is left)."""
    unlabeled = np.flatnonzero(~labeled)
    proba = model.predict_proba(X_pool[np.concatenate([stop_set, unlabeled])])
    predictions = np.asarray(model.classes_)[proba[: len(stop_set)].argmax(axis=1)]
    rest = proba[len(stop_set) :]
    means = {
        uncertainty_column(m): float(stopping.uncertainty(rest, m).mean()) if len(rest) else 0.0
        for m in stopping.MEASURES
    }
    return predictions, means


def load_experiment_data(config: ExperimentConfig | StreamConfig, seed: int = 0) -> Dataset:
    """The dataset named by ``config``; generated data differ by ``seed``, files and bundled sets do not."""
    return load_dataset(
        config.dataset,
        label_column=config.label_column,
        n_samples=config.n_samples,
        n_features=config.n_features,
        n_classes=config.n_classes,
        drifts=config.drifts,
        seed=seed,
    )


def split_data(X: np.ndarray, y: np.ndarray, config: ExperimentConfig, seed: int) -> Split:
    """Stratified test split and initial labeled set for one seed (``config.initial_set``)."""
    n_classes = len(np.unique(y))
    counts = np.bincount(y)
    if counts.min() < 3:
        raise InvalidInput("every class needs at least 3 samples to split into pool, test and seed set")
    pool, test = train_test_split(
        np.arange(len(y)), test_size=config.test_size, stratify=y, random_state=seed
    )
    n_initial = max(n_classes, round(config.initial_fraction * len(pool)))
    if n_initial >= len(pool):
        raise InvalidInput(f"the initial set ({n_initial}) would take the whole pool ({len(pool)})")
    X_pool, X_test = X[pool], X[test]
    if config.standardize:
        scaler = StandardScaler().fit(X_pool)
        X_pool, X_test = scaler.transform(X_pool), scaler.transform(X_test)
    if config.initial_set == "typical":
        initial = typical_sample(X_pool, n_initial, seed=seed)  # no labels read
    else:
        initial, _ = train_test_split(
            np.arange(len(pool)), train_size=n_initial, stratify=y[pool], random_state=seed
        )
    return Split(seed, X_pool, y[pool], X_test, y[test], np.sort(initial))


@dataclass(frozen=True)
class SeedData:
    """What every run of one seed shares: its split, its stop set and the classes (encoded)."""

    split: Split
    stop_set: np.ndarray
    classes: np.ndarray


@dataclass(frozen=True)
class Run:
    """One strategy on one seed: its curve rows, each round's stop-set predictions, its last model."""

    strategy: str
    seed: int
    rows: list[dict[str, object]]
    stop_predictions: np.ndarray
    model: Classifier

    @property
    def last_iteration(self) -> int:
        return len(self.stop_predictions) - 1  # one row of predictions a round, from round 0


class Submitted(Protocol[T_co]):
    """A unit of work handed to ``submit``: a future, or its value at once (``Done``)."""

    def result(self) -> T_co: ...


@dataclass(frozen=True)
class Done(Generic[T]):
    """The value of work that ran at once, as a future would give it."""

    value: T

    def result(self) -> T:
        return self.value


Submit = Callable[..., Submitted[Any]]  # submit(fn, *args): fn(*args) now, in a thread or elsewhere


def run_now(fn: Callable[..., T], *args: Any) -> Done[T]:
    """``Submit`` that runs ``fn`` here, at once (on the values of any ``Done`` among ``args``)."""
    return Done(fn(*(arg.value if isinstance(arg, Done) else arg for arg in args)))


def encode_labels(data: Dataset) -> tuple[np.ndarray, tuple[str, ...]]:
    """The labels as 0..k-1, and the class names they stand for."""
    encoder = LabelEncoder().fit(data.y)
    return encoder.transform(data.y), tuple(map(str, encoder.classes_))


def prepare_seed(config: ExperimentConfig, data: Dataset, seed: int) -> SeedData:
    """One seed's split (``split_data``) and stop set, drawn from the initially unlabeled pool."""
    y, classes = encode_labels(data)
    split = split_data(data.X, y, config, seed)
    unlabeled = np.setdiff1d(np.arange(len(split.y_pool)), split.initial)
    return SeedData(split, stopping.draw_stop_set(unlabeled, seed=seed), np.arange(len(classes)))


def batch_count(config: ExperimentConfig, pool: int) -> int:
    """Labels per round: ``batch_size`` itself, or that share of a pool of ``pool`` rows (at least 1).

    >>> batch_count(ExperimentConfig(batch_size=0.05), 1347), batch_count(ExperimentConfig(), 1347)
    (67, 20)
    """
    size = config.batch_size
    return max(1, round(size * pool)) if size < 1 else int(size)


def full_pool_reference(
    config: ExperimentConfig, seed_data: SeedData, steps: Steps = PLAIN_STEPS
) -> dict[str, float]:
    """The test scores of a model trained on the whole pool of one seed."""
    split = seed_data.split
    full = steps.retrain(make_model(config.model, split.seed), split.X_pool, split.y_pool)
    return {"seed": split.seed, **steps.evaluate(full, split.X_test, split.y_test, seed_data.classes)}


def run_strategy(
    config: ExperimentConfig,
    seed_data: SeedData,
    strategy: str,
    on_round: RoundCallback | None = None,
    steps: Steps = PLAIN_STEPS,
) -> Run:
    """The loop for one strategy on one seed; ``on_round(strategy, seed, round)`` sees each round."""
    split, seed = seed_data.split, seed_data.split.seed
    labeled, seen, rows = np.zeros(len(split.y_pool), dtype=bool), [], []
    rnd: Round | None = None
    for rnd in run_loop(
        make_model(config.model, seed),
        split.X_pool,
        Oracle(split.y_pool),
        split.initial,
        split.X_test,
        split.y_test,
        strategy=strategy,
        batch_size=batch_count(config, len(split.y_pool)),
        iterations=config.iterations,
        seed=seed,
        online=config.online,
        refit_every=config.refit_every,
        classes=seed_data.classes,
        steps=steps,
    ):
        labeled[rnd.queried] = True
        predictions, uncertainties = stop_signals(rnd.model, split.X_pool, labeled, seed_data.stop_set)
        seen.append(predictions)
        rows.append(
            {
                "strategy": strategy,
                "seed": seed,
                "iteration": rnd.iteration,
                "n_labeled": rnd.n_labeled,
                **rnd.metrics,
                **uncertainties,
            }
        )
        if on_round is not None:
            on_round(strategy, seed, rnd)
    assert rnd is not None  # the loop always yields round 0
    return Run(strategy, seed, rows, np.stack(seen), rnd.model)


def grid(config: ExperimentConfig) -> list[tuple[int, str]]:
    """Every run as ``(seed, strategy)``: seed by seed, in the config's strategy order."""
    return [(seed, strategy) for seed in config.seed_list for strategy in config.strategies]


def heaviest_first(config: ExperimentConfig) -> list[tuple[int, str]]:
    """The grid in the order to start it: the pool strategies' runs (each round they cluster the pool
    or train a committee, several times a probability strategy's work) before the rest, so that the
    last runs to finish on a cluster are short ones.

    >>> heaviest_first(ExperimentConfig(strategies=("margin", "typical"), seeds=2))
    [(0, 'typical'), (1, 'typical'), (0, 'margin'), (1, 'margin')]
    """
    return sorted(grid(config), key=lambda run: isinstance(make_strategy(run[1]), str))


def run_grid(
    config: ExperimentConfig,
    data: Dataset,
    submit: Submit = run_now,
    on_round: RoundCallback | None = None,
    steps: Steps = PLAIN_STEPS,
    call: Callable[..., Any] = lambda fn, *args: fn(*args),
) -> tuple[ExperimentResult, list[Run]]:
    """Every strategy on every seed, each run handed to ``submit``: at once, on threads, on a Dask
    cluster or as Prefect tasks. The seeds' splits are made here (``call``: cheap), so that no run
    waits on another task: a cluster hands each run to the next free worker in the order given,
    ``heaviest_first`` (runs behind a task's future would go where its result lies, some workers
    idle at the end). The result, and the runs (with their last models), seed by seed in the
    config's strategy order. The runs made in this process use one BLAS and OpenMP thread each, as
    on Dask's workers: the grid's runs, not one fit's math, are what goes in parallel (on 2 CPUs, two
    BLAS threads made ``make compare`` with one worker twice as slow, each small fit's threads
    waiting on each other)."""
    with threadpool_limits(limits=1):
        seeds = {seed: call(prepare_seed, config, data, seed) for seed in config.seed_list}
        references = [submit(full_pool_reference, config, seeds[seed], steps) for seed in config.seed_list]
        pending = {
            (seed, strategy): submit(run_strategy, config, seeds[seed], strategy, on_round, steps)
            for seed, strategy in heaviest_first(config)
        }
        runs: list[Run] = [pending[seed, strategy].result() for seed, strategy in grid(config)]
    rows = [row for run in runs for row in run.rows]
    predictions = {(run.strategy, run.seed): run.stop_predictions for run in runs}
    reference = pd.DataFrame([future.result() for future in references])
    _, classes = encode_labels(data)
    return ExperimentResult(config, pd.DataFrame(rows), reference, classes, predictions), runs


def run_experiment(
    config: ExperimentConfig,
    *,
    data: Dataset | None = None,
    steps: Steps = PLAIN_STEPS,
    on_round: RoundCallback | None = None,
) -> ExperimentResult:
    """Run every strategy over every seed here, one after another; ``on_round(strategy, seed, round)``
    sees each round."""
    data = load_experiment_data(config) if data is None else data
    result, _ = run_grid(config, data, on_round=on_round, steps=steps)
    return result
