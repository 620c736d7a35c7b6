"""The experiment as a Prefect 3 flow: each strategy x seed run is a task, on Prefect's Dask task runner.

A run's rounds go to the progress bars as Dask events (``alstream.experiment.parallel``), not as
tasks of their own: a task is a unit worth scheduling. ``run_flow`` picks the task runner: a local
Dask cluster of ``workers`` processes, a Dask scheduler at ``address``, or, for one worker, this
process. Runs against ``PREFECT_API_URL`` (``alstream.flows.prefect_server`` starts a temporary server when
it is unset). Only I/O is retried: writing files and logging to MLflow.

>>> from alstream.experiment.config import ExperimentConfig
>>> outcome = run_flow(ExperimentConfig(dataset="iris", iterations=2, seeds=1),
...                    output_dir="/tmp/al-doc", track=False, workers=2)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, cast

from prefect import Task, flow, task
from prefect.cache_policies import NO_CACHE
from prefect.context import get_run_context
from prefect_dask import DaskTaskRunner

from alstream.experiment.config import ExperimentConfig
from alstream.experiment.loop import RoundFigures
from alstream.experiment.outputs import save_final_models, write_metrics
from alstream.experiment.parallel import cluster_options, listen, quiet_dask
from alstream.experiment.pipeline import conduct
from alstream.experiment.protocol import (
    full_pool_reference,
    load_experiment_data,
    prepare_seed,
    run_now,
    run_strategy,
)
from alstream.experiment.report import write_report


def _task(fn: Callable[..., Any], name: str, **options: Any) -> Any:
    # Arrays and models pass between tasks in memory: no caching, no hashing of inputs.
    return task(name=name, cache_policy=NO_CACHE, **options)(fn)  # Prefect's typed form of task(fn, ...)


def _log_to_mlflow(*args: Any, **kwargs: Any) -> str:
    from alstream import tracking  # MLflow is imported only when tracking is on

    return tracking.log_experiment(*args, **kwargs)


load_data = _task(load_experiment_data, "load data")
TASKS: dict[Callable[..., Any], Task[..., Any]] = {
    prepare_seed: _task(prepare_seed, "split"),
    full_pool_reference: _task(full_pool_reference, "full-pool reference"),
    run_strategy: _task(run_strategy, "run", task_run_name="run {strategy}"),
    save_final_models: _task(save_final_models, "write models", retries=2, retry_delay_seconds=1),
    write_metrics: _task(write_metrics, "write metrics", retries=2, retry_delay_seconds=1),
    write_report: _task(write_report, "write report", retries=2, retry_delay_seconds=1),
    _log_to_mlflow: _task(_log_to_mlflow, "log to MLflow", retries=3, retry_delay_seconds=2),
}


def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return TASKS[fn](*args, **kwargs)


def _submit(fn: Callable[..., Any], *args: Any) -> Any:
    return TASKS[fn].submit(*args)


def _run_here(fn: Callable[..., Any], *args: Any) -> Any:
    return run_now(TASKS[fn], *args)


FigureCallback = Callable[[str, int, RoundFigures], None]
# Who hears of each round: not a parameter of the flow, since every task's context carries the flow's
# parameters and code to the workers (a progress display does not travel); read through _listener.
_ON_ROUND: ContextVar[FigureCallback | None] = ContextVar("on_round", default=None)


def _listener() -> FigureCallback | None:
    return _ON_ROUND.get()


@flow(name="active-learning", log_prints=True)
def active_learning_flow(
    config: ExperimentConfig, output_dir: str = ".", track: bool = True, save_every_round: bool = False
) -> dict[str, Any]:
    """Run the experiment, write models, metrics and the report, and log it all to MLflow; each round
    goes to ``run_flow``'s ``on_round``, if any."""
    data = load_data(config)
    on_round, runner = _listener(), get_run_context().task_runner  # type: ignore[union-attr]
    if isinstance(runner, DaskTaskRunner):  # runs on the cluster, their rounds told as events
        if on_round is not None:
            listen(runner.client, on_round)
        submit, here = _submit, None
    else:  # one after another, here
        submit, here = _run_here, on_round
    outcome = conduct(
        config,
        output_dir,
        data=data,
        submit=submit,
        call=_call,
        on_round=here,
        track=_log_to_mlflow if track else None,
        save_every_round=save_every_round,
    )
    print(f"report: {outcome['report']}")
    return outcome


def run_flow(
    config: ExperimentConfig,
    output_dir: str = ".",
    *,
    track: bool = True,
    on_round: FigureCallback | None = None,
    save_every_round: bool = False,
    workers: int = 1,
    address: str | None = None,
) -> dict[str, Any]:
    """``active_learning_flow`` on a local Dask cluster of ``workers`` processes, on the Dask scheduler
    at ``address``, or, with one worker and no address, in this process."""
    flow_ = active_learning_flow
    if address or workers > 1:
        quiet_dask()
        warm = cluster_options(workers, preload=[__name__])  # each worker imports this module at start
        options = {"address": address} if address else {"cluster_kwargs": warm}
        flow_ = flow_.with_options(task_runner=cast(Any, DaskTaskRunner(**options)))  # a TaskRunner
    told = _ON_ROUND.set(on_round)
    try:
        return flow_(config, output_dir, track, save_every_round)
    finally:
        _ON_ROUND.reset(told)
