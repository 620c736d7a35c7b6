"""Files an experiment leaves behind: each run's model and the metrics of each strategy.

A strategy's runs in one experiment are named ``<experiment>-<strategy>``:
``models/<run>/seed<s>/iter_<k>.joblib`` (the last round's model; every round's with
``RoundSink(models_dir=...)``) and ``metrics/<run>.csv`` / ``.json`` (one row per round and seed).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import joblib

from alstream.experiment.loop import Round
from alstream.experiment.parallel import announce
from alstream.experiment.protocol import ExperimentResult, Run


def run_name(experiment: str, strategy: str) -> str:
    """The name of one strategy's run within an experiment."""
    return f"{experiment}-{strategy.replace(':', '-')}"  # skactiveml:split -> skactiveml-split


def save_model(root: Path, run: str, seed: int, rnd: Round) -> Path:
    """Write the model of one round; returns its path."""
    return _dump(rnd.model, root, run, seed, rnd.iteration)


def save_final_models(root: Path, experiment: str, runs: Iterable[Run]) -> list[Path]:
    """Write each run's last model, where ``save_model`` puts that round's; returns the paths."""
    return [
        _dump(run.model, root, run_name(experiment, run.strategy), run.seed, run.last_iteration)
        for run in runs
    ]


def _dump(model: object, root: Path, run: str, seed: int, iteration: int) -> Path:
    path = Path(root) / "models" / run / f"seed{seed}" / f"iter_{iteration}.joblib"
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, path)
    return path


@dataclass(frozen=True)
class RoundSink:
    """What a run does with each round, wherever it runs: write its model under ``models_dir`` (when
    set), then tell ``tell`` (a callback in this process), or ``announce`` it as a Dask event."""

    experiment: str
    models_dir: str | None = None
    tell: Callable[[str, int, Round], None] | None = None

    def __call__(self, strategy: str, seed: int, rnd: Round) -> None:
        if self.models_dir is not None:
            save_model(Path(self.models_dir), run_name(self.experiment, strategy), seed, rnd)
        (self.tell or announce)(strategy, seed, rnd)


def write_metrics(root: Path, result: ExperimentResult) -> list[Path]:
    """Write ``metrics/<run>.csv`` and ``.json`` for every strategy; returns the paths."""
    folder = Path(root) / "metrics"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for strategy, rows in result.curves.groupby("strategy", sort=False):
        run = run_name(result.config.name, str(strategy))
        csv, js = folder / f"{run}.csv", folder / f"{run}.json"
        rows.to_csv(csv, index=False)
        js.write_text(json.dumps(rows.to_dict(orient="records"), indent=1))
        paths += [csv, js]
    return paths
