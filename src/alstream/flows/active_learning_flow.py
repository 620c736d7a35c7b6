"""The experiment as a Prefect 3 flow: every step of the loop is a task that calls the library.

Runs without a server (Prefect's ephemeral mode) or against one (``PREFECT_API_URL``).
Only I/O is retried: writing files and logging to MLflow.

>>> from alstream.experiment.config import ExperimentConfig
>>> outcome = active_learning_flow(ExperimentConfig(dataset="iris", iterations=2, seeds=1),
...                                output_dir="/tmp/al-doc", track=False)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from alstream import estimators
from alstream.curves import summarize
from alstream.evaluation import evaluate
from alstream.experiment.config import ExperimentConfig
from alstream.experiment.outputs import run_name, save_model, write_metrics
from alstream.experiment.protocol import load_experiment_data, run_experiment
from alstream.experiment.report import write_report
from alstream.loop import Round, Steps, ask_oracle, select_batch


def _task(fn: Callable[..., Any], name: str, **options: Any) -> Any:
    # Arrays and models pass between tasks in memory: no caching, no hashing of inputs.
    return task(name=name, cache_policy=NO_CACHE, **options)(fn)  # Prefect's typed form of task(fn, ...)


load_data = _task(load_experiment_data, "load data")
STEPS = Steps(
    train_initial=_task(estimators.fit, "initial training"),
    retrain=_task(estimators.fit, "retrain"),
    update=_task(estimators.update, "online update"),
    select=_task(select_batch, "select"),
    label=_task(ask_oracle, "label"),
    evaluate=_task(evaluate, "evaluate"),
)
save_metrics = _task(write_metrics, "write metrics", retries=2, retry_delay_seconds=1)
save_report = _task(write_report, "write report", retries=2, retry_delay_seconds=1)


def _log_to_mlflow(*args: Any, **kwargs: Any) -> str:
    from alstream import tracking  # MLflow is imported only when tracking is on

    return tracking.log_experiment(*args, **kwargs)


log_to_mlflow = _task(_log_to_mlflow, "log to MLflow", retries=3, retry_delay_seconds=2)


@flow(name="active-learning", log_prints=True)
def active_learning_flow(
    config: ExperimentConfig,
    output_dir: str = ".",
    track: bool = True,
    on_round: Callable[[str, int, Round], None] | None = None,
) -> dict[str, Any]:
    """Run the experiment, write models, metrics and the report, and log it all to MLflow."""
    root = Path(output_dir)
    data = load_data(config)
    final_models: dict[str, Any] = {}

    def keep(strategy: str, seed: int, rnd: Round) -> None:
        save_model(root, run_name(config.name, strategy), seed, rnd)
        if seed == config.seed_list[0]:
            final_models[strategy] = rnd.model
        if on_round is not None:
            on_round(strategy, seed, rnd)

    result = run_experiment(config, data=data, steps=STEPS, on_round=keep)
    save_metrics(root, result)
    markdown, plot = save_report(result, root / "reports")
    run_id = log_to_mlflow(result, final_models, plot=plot, report=markdown) if track else None
    summary = summarize(result.curves, result.reference)
    print(f"report: {markdown}")
    return {
        "name": config.name,
        "report": str(markdown),
        "plot": str(plot),
        "mlflow_run_id": run_id,
        "full_pool_accuracy": float(result.reference["accuracy"].mean()),
        "summary": summary.to_dict(orient="records"),
    }
