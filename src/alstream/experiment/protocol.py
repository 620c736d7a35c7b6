"""The experiment protocol: the same splits for every strategy, repeated over seeds.

For each seed: a stratified test split; the features standardized on the training pool
(its labels unused); an initial labeled set (``initial_fraction`` of the pool: stratified, or the
most typical points of as many clusters, ``initial_set="typical"``);
a reference model trained on the whole pool; then the loop, once per strategy.

Each round also records what the stopping rules (``alstream.stopping``) read: the model's
predictions on the seed's stop set (a fixed random sample of the initially unlabeled pool, the same
for every strategy) and its mean uncertainty over the rows still unlabeled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder, StandardScaler

from alstream import stopping
from alstream.cold_start import typical_sample
from alstream.datasets import Dataset, load_dataset
from alstream.estimators import Classifier, make_model
from alstream.experiment.config import ExperimentConfig, StreamConfig
from alstream.loop import PLAIN_STEPS, Oracle, Round, Steps, run_loop

RoundCallback = Callable[[str, int, Round], None]


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
        raise ValueError("every class needs at least 3 samples to split into pool, test and seed set")
    pool, test = train_test_split(
        np.arange(len(y)), test_size=config.test_size, stratify=y, random_state=seed
    )
    n_initial = max(n_classes, round(config.initial_fraction * len(pool)))
    if n_initial >= len(pool):
        raise ValueError(f"the initial set ({n_initial}) would take the whole pool ({len(pool)})")
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


def run_experiment(
    config: ExperimentConfig,
    *,
    data: Dataset | None = None,
    steps: Steps = PLAIN_STEPS,
    on_round: RoundCallback | None = None,
) -> ExperimentResult:
    """Run every strategy over every seed; ``on_round(strategy, seed, round)`` sees each round."""
    data = load_experiment_data(config) if data is None else data
    encoder = LabelEncoder().fit(data.y)
    y = encoder.transform(data.y)
    classes = np.arange(len(encoder.classes_))
    rows, reference, predictions = [], [], {}
    for seed in config.seed_list:
        split = split_data(data.X, y, config, seed)
        stop_set = stopping.draw_stop_set(
            np.setdiff1d(np.arange(len(split.y_pool)), split.initial), seed=seed
        )
        full = steps.retrain(make_model(config.model, seed), split.X_pool, split.y_pool)
        reference.append({"seed": seed, **steps.evaluate(full, split.X_test, split.y_test, classes)})
        for strategy in config.strategies:
            labeled, seen = np.zeros(len(split.y_pool), dtype=bool), []
            for rnd in run_loop(
                make_model(config.model, seed),
                split.X_pool,
                Oracle(split.y_pool),
                split.initial,
                split.X_test,
                split.y_test,
                strategy=strategy,
                batch_size=config.batch_size,
                iterations=config.iterations,
                seed=seed,
                online=config.online,
                refit_every=config.refit_every,
                classes=classes,
                steps=steps,
            ):
                labeled[rnd.queried] = True
                stop_predictions, uncertainties = stop_signals(rnd.model, split.X_pool, labeled, stop_set)
                seen.append(stop_predictions)
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
            predictions[(strategy, seed)] = np.stack(seen)
    classes_ = tuple(map(str, encoder.classes_))
    return ExperimentResult(config, pd.DataFrame(rows), pd.DataFrame(reference), classes_, predictions)
