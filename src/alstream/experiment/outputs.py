"""Files an experiment leaves behind: each round's model and the metrics of each run.

A run is one strategy of one experiment, named ``<experiment>-<strategy>``:
``models/<run>/seed<s>/iter_<k>.joblib`` and ``metrics/<run>.csv`` / ``.json`` (one row per
round and seed).
"""

from __future__ import annotations

import json
from pathlib import Path

import joblib

from alstream.experiment.protocol import ExperimentResult
from alstream.loop import Round


def run_name(experiment: str, strategy: str) -> str:
    """The name of one strategy's run within an experiment."""
    return f"{experiment}-{strategy.replace(':', '-')}"  # skactiveml:split -> skactiveml-split


def save_model(root: Path, run: str, seed: int, rnd: Round) -> Path:
    """Write the model of one round; returns its path."""
    path = Path(root) / "models" / run / f"seed{seed}" / f"iter_{rnd.iteration}.joblib"
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(rnd.model, path)
    return path


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
