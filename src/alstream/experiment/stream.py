"""The stream protocol: arrivals replayed in order, each judged before its label may be asked for.

For each seed and strategy: the first ``initial`` arrivals are labeled and train the model; then,
``update_every`` arrivals at a time, the model predicts them (prequential, test-then-train), the
selector decides which to ask about within the ``budget``, and the model learns those labels online
(``partial_fit``). Every strategy sees the same stream; ``random`` at the same budget is the baseline,
and scikit-activeml's implementation of each strategy (``skactiveml:<name>``) runs beside alstream's.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.preprocessing import LabelEncoder

from alstream.errors import InvalidInput
from alstream.experiment.config import BASELINE, PREFIX, StreamConfig
from alstream.experiment.protocol import ExperimentResult, load_experiment_data
from alstream.experiment.skactiveml_stream import SkactivemlSelector
from alstream.learning import estimators
from alstream.learning.evaluation import aligned_proba
from alstream.learning.selective import get_selector

ALL_LABELS = "every label"
# on_point(strategy, seed, point): one point of a strategy's curve
PointCallback = Callable[[str, int, dict[str, float]], None]


def make_selector(run: str, config: StreamConfig, seed: int) -> object:
    """The selector behind a curve's name: alstream's, or scikit-activeml's for ``skactiveml:<name>``."""
    if run.startswith(PREFIX):
        return SkactivemlSelector(run.removeprefix(PREFIX), config.budget, window=config.window, seed=seed)
    return get_selector(run, config.budget, window=config.window, seed=seed)


def replay(
    X: np.ndarray,
    y: np.ndarray,
    classes: np.ndarray,
    ask: Callable[[np.ndarray], np.ndarray] | None,
    config: StreamConfig,
    seed: int,
) -> list[dict[str, float]]:
    """Replay the stream once: the curve's points (arrivals judged, labels used, prequential accuracy
    since the last point and overall). ``ask`` None labels every arrival (the reference)."""
    n = len(y)
    if n < config.initial + config.points:
        raise InvalidInput(
            f"a stream of {n} arrivals is too short for {config.initial} initial labels and "
            f"{config.points} points"
        )
    model = estimators.make_model(config.model, seed)
    model = estimators.standardized(model) if config.standardize else model
    first = slice(0, config.initial)
    if len(np.unique(y[first])) < 2:
        raise InvalidInput(f"the first {config.initial} arrivals hold one class only: raise initial")
    model = estimators.fit(model, X[first], y[first])
    correct = np.zeros(n, dtype=bool)
    asked = np.zeros(n, dtype=bool)
    asked[first] = True
    ends = set(np.linspace(config.initial, n, config.points + 1).round().astype(int)[1:].tolist())
    points: list[dict[str, float]] = []
    last = config.initial
    for start in range(config.initial, n, config.update_every):
        rows = slice(start, min(start + config.update_every, n))
        proba = aligned_proba(model, X[rows], classes)  # test first: each arrival is judged before
        correct[rows] = classes[np.argmax(proba, axis=1)] == y[rows]  # its label can be asked for
        asked[rows] = True if ask is None else ask(proba)
        chosen = np.flatnonzero(asked[rows]) + start
        if len(chosen):  # then train
            model = estimators.update(model, X[chosen], y[chosen], classes)
        for end in sorted(e for e in ends if start < e <= rows.stop):
            points.append(
                {
                    "iteration": len(points) + 1,
                    "n_seen": end - config.initial,
                    "n_labeled": int(asked[:end].sum()),
                    "accuracy": float(correct[last:end].mean()),
                    "prequential_accuracy": float(correct[config.initial : end].mean()),
                }
            )
            last = end
    return points


def run_stream_experiment(config: StreamConfig, *, on_point: PointCallback | None = None) -> ExperimentResult:
    """Every strategy (and scikit-activeml's) over every seed's stream; ``on_point`` sees each point.

    The reference is the model that learns every arrival's label.
    """
    rows, reference, names = [], [], None
    for seed in config.seed_list:
        data = load_experiment_data(config, seed)
        encoder = LabelEncoder().fit(data.y)
        y, classes = encoder.transform(data.y), np.arange(len(encoder.classes_))
        names = tuple(map(str, encoder.classes_))
        every = replay(data.X, y, classes, None, config, seed)
        reference.append({"seed": seed, "accuracy": every[-1]["prequential_accuracy"]})
        for run in config.runs:
            selector = make_selector(run, config, seed)
            for point in replay(data.X, y, classes, selector.ask, config, seed):  # type: ignore[attr-defined]
                rows.append({"strategy": run, "seed": seed, **point})
                if on_point is not None:
                    on_point(run, seed, point)
    return ExperimentResult(config, pd.DataFrame(rows), pd.DataFrame(reference), names or ())  # type: ignore[arg-type]


def summarize_stream(result: ExperimentResult) -> pd.DataFrame:
    """One row per curve: labels used, their share of the arrivals judged, prequential accuracy
    (mean and std over seeds) and its gain over ``random`` in points (paired by seed)."""
    final = result.curves.sort_values("iteration").groupby(["strategy", "seed"], sort=False).last()
    final, initial = final.reset_index(), result.config.initial  # type: ignore[attr-defined]  # a StreamConfig
    base = final.loc[final["strategy"] == BASELINE].set_index("seed")["prequential_accuracy"]
    rows = []
    for strategy, runs in final.groupby("strategy", sort=False):
        accuracy = runs.set_index("seed")["prequential_accuracy"]
        gain = 100 * (accuracy - base.reindex(accuracy.index)) if len(base) else pd.Series(np.nan)
        rows.append(
            {
                "strategy": strategy,
                "labels": float(runs["n_labeled"].mean()),
                "share": float(((runs["n_labeled"] - initial) / runs["n_seen"]).mean()),
                "accuracy": float(accuracy.mean()),
                "accuracy_std": float(accuracy.std(ddof=0)),
                "gain": float(gain.mean()),
            }
        )
    return pd.DataFrame(rows)
