"""An experiment from data to report: the grid of runs, the models, metrics and report, and tracking.

``conduct`` takes how to run things: ``submit`` each run (at once, on a Dask cluster, as Prefect
tasks) and ``call`` each write (at once, or as a retried Prefect task), so the flow and a run
without any orchestrator share one pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from alstream.experiment.config import ExperimentConfig
from alstream.experiment.datasets import Dataset
from alstream.experiment.loop import Round
from alstream.experiment.outputs import RoundSink, save_final_models, write_metrics
from alstream.experiment.protocol import Submit, run_grid, run_now
from alstream.experiment.report import write_report
from alstream.learning.curves import summarize

Track = Callable[..., str]  # (result, final models, plot=, report=) -> the tracking run's id


def call_now(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``call`` that runs ``fn`` here."""
    return fn(*args, **kwargs)


def conduct(
    config: ExperimentConfig,
    output_dir: str | Path,
    *,
    data: Dataset,
    submit: Submit = run_now,
    call: Callable[..., Any] = call_now,
    on_round: Callable[[str, int, Round], None] | None = None,
    track: Track | None = None,
    save_every_round: bool = False,
) -> dict[str, Any]:
    """Run the grid, write each run's last model (every round's with ``save_every_round``), the
    metrics and the report, and ``track`` it (MLflow: the first seed's last models). ``on_round``
    sees each round of runs made here; runs on a Dask cluster announce theirs as events."""
    root = Path(output_dir)
    sink = RoundSink(config.name, str(root.resolve()) if save_every_round else None, on_round)
    result, runs = run_grid(config, data, submit, on_round=sink, call=call)
    if not save_every_round:
        call(save_final_models, root, config.name, runs)
    call(write_metrics, root, result)
    markdown, plot = call(write_report, result, root / "reports")
    final_models = {run.strategy: run.model for run in runs if run.seed == config.seed_list[0]}
    run_id = call(track, result, final_models, plot=plot, report=markdown) if track else None
    return {
        "name": config.name,
        "report": str(markdown),
        "plot": str(plot),
        "mlflow_run_id": run_id,
        "full_pool_accuracy": float(result.reference["accuracy"].mean()),
        "summary": summarize(result.curves, result.reference).to_dict(orient="records"),
    }
