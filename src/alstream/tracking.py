"""MLflow at the edge: one parent run per comparison, one nested child run per strategy.

The parent holds the configuration, the comparison summary (``<strategy>.aulc``, ...), the report
and the plot; each child holds its strategy's learning curve (step = round), its summary and its
final model, registered as ``alstream-<config name>-<strategy>``.

Where runs go: ``MLFLOW_TRACKING_URI`` if set (a server, another SQLite file, a file store),
otherwise ``DEFAULT_TRACKING_URI``: a SQLite database ``mlflow.db`` in the current folder.
With a SQLite store, artifacts go beside the database, under ``mlartifacts/<experiment>/``.

MLflow is imported inside the functions only, so importing this module stays cheap.

>>> metric_name("labels_to_99%"), metric_name("accuracy@135")
('labels_to_99pct', 'accuracy_at_135')
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import pandas as pd

from alstream.learning.curves import summarize

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Metric

DEFAULT_DB = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
EXPERIMENT = "alstream"
MODEL_ARTIFACT = "model"
MAX_METRICS_PER_BATCH = 1000  # MLflow's limit for one log_batch call
MAX_PARAMS_PER_BATCH = 100
KEYS = ("strategy", "seed", "iteration", "n_labeled")

# Loggers whose INFO/WARNING output says nothing a user can act on (database migrations on first
# use, the Git SHA of scripts run outside a repository or without git). Errors still show.
_QUIET_LOGGERS = {
    "mlflow.store.db.utils": logging.WARNING,
    "alembic": logging.WARNING,
    "mlflow.utils.git_utils": logging.ERROR,
}

T = TypeVar("T")


class Comparison(Protocol):
    """What :func:`log_experiment` reads of an experiment's result (``ExperimentResult`` is one)."""

    @property
    def config(self) -> Any: ...  # its name, dataset, model, strategies and params()

    @property
    def curves(self) -> pd.DataFrame: ...

    @property
    def reference(self) -> pd.DataFrame: ...


def default_tracking_uri() -> str:
    """``sqlite:///<cwd>/mlflow.db``, an absolute path taken from the current folder."""
    return f"sqlite:///{(Path.cwd() / DEFAULT_DB).resolve().as_posix()}"


def __getattr__(name: str) -> str:
    if name == "DEFAULT_TRACKING_URI":  # computed on access: it follows the current folder
        return default_tracking_uri()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, otherwise the SQLite database in the current folder."""
    return os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def configure() -> str:
    """Point MLflow at ``tracking_uri()`` (the registry follows it), quiet its chatter; return it."""
    import mlflow

    _quiet()
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    _migrated(uri)
    return uri


_MIGRATED: set[str] = set()


def _migrated(uri: str) -> None:
    """A local tracking database (not a server) is migrated on first use, with Alembic: do that now,
    under the lock alstream's store migrates under too (Alembic's context is global)."""
    if uri in _MIGRATED or uri.split(":", 1)[0] in ("http", "https", "databricks", "file"):
        return
    import mlflow

    from alstream.migrating import MIGRATING

    with MIGRATING:
        client = mlflow.MlflowClient(uri)
        client.search_experiments(max_results=1)  # the tracking store's tables
        client.search_registered_models(max_results=1)  # the registry's
        _MIGRATED.add(uri)


def check_reachable(uri: str | None = None, timeout_s: float = 5.0) -> None:
    """Raise ``ConnectionError`` saying what to do when a tracking server does not answer.

    Local stores (SQLite, files) always pass; a server passes when it answers at all. Without this
    check MLflow's own retries would hold a run for minutes before failing.

    >>> check_reachable("sqlite:///mlflow.db")
    """
    uri = uri or tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return
    import httpx

    try:
        httpx.get(f"{uri.rstrip('/')}/health", timeout=timeout_s)
    except httpx.HTTPError as error:
        raise ConnectionError(
            f"no MLflow tracking server answers at {uri} ({error or type(error).__name__}): start it, "
            "point MLFLOW_TRACKING_URI at another store, or run without MLflow (--no-mlflow)"
        ) from None


def metric_name(name: str) -> str:
    """A name MLflow accepts for a metric or parameter: ``%`` -> ``pct``, ``@`` -> ``_at_``."""
    name = name.replace("%", "pct").replace("@", "_at_")
    return re.sub(r"[^\w.\- /]", "_", name)


def registered_model_name(config_name: str, strategy: str) -> str:
    """``alstream-<config name>-<strategy>``, without the characters the registry refuses."""
    return re.sub(r"[/:]", "-", f"alstream-{config_name}-{strategy}")


def log_experiment(
    result: Comparison,
    final_models: dict[str, object],
    *,
    plot: Path | None = None,
    report: Path | None = None,
    experiment_name: str = EXPERIMENT,
) -> str:
    """Log a comparison to MLflow (see the module docstring) and return the parent run id.

    ``final_models[strategy]`` is the model a strategy ended with (last round of the first seed);
    a strategy missing from it gets no logged model. Runs that fail end as FAILED, and no run is
    left active.
    """
    import mlflow

    config = result.config
    unknown = sorted(set(final_models) - set(config.strategies))
    if unknown:
        raise ValueError(f"final_models has strategies not in the experiment: {', '.join(unknown)}")
    for path in (plot, report):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"no such file to log: {path}")

    uri = configure()
    client = mlflow.MlflowClient(uri)
    experiment_id = _experiment_id(client, experiment_name, uri)
    summary = summarize(result.curves, result.reference).set_index("strategy")
    params = {metric_name(k): v for k, v in config.params().items()}
    tags = {"dataset": config.dataset, "model": config.model}

    with mlflow.start_run(
        experiment_id=experiment_id,
        run_name=config.name,
        tags={**tags, "strategies": ",".join(config.strategies), "alstream.role": "comparison"},
        nested=mlflow.active_run() is not None,  # inside a caller's run: nest under it
    ) as parent:
        parent_id = parent.info.run_id
        comparison = [
            (f"{strategy}.{name}", value, 0)
            for strategy, row in summary.iterrows()
            for name, value in _summary_metrics(row)
        ]
        reference = result.reference.drop(columns="seed").mean()
        comparison += [(f"reference.{metric_name(str(k))}", float(v), 0) for k, v in reference.items()]
        _log_batch(client, parent_id, params=params, metrics=comparison)
        mlflow.log_text(result.curves.to_csv(index=False), "curves.csv")
        mlflow.log_text(summary.reset_index().to_csv(index=False), "summary.csv")
        for path in (report, plot):
            if path is not None:
                mlflow.log_artifact(str(path))

        for strategy in config.strategies:
            with mlflow.start_run(
                experiment_id=experiment_id,
                run_name=strategy,
                nested=True,  # tags the child with mlflow.parentRunId
                tags={**tags, "strategy": strategy, "alstream.role": "strategy"},
            ) as child:
                curves = result.curves[result.curves["strategy"] == strategy]
                metrics = round_metrics(curves)
                metrics += [(n, v, 0) for n, v in _summary_metrics(summary.loc[strategy])]
                child_params = {**params, "strategy": strategy}
                _log_batch(client, child.info.run_id, params=child_params, metrics=metrics)
                if plot is not None:
                    mlflow.log_artifact(str(plot))
                if strategy in final_models:
                    name = registered_model_name(config.name, strategy)
                    _log_model(final_models[strategy], name, step=int(curves["iteration"].max()))
    return parent_id


def round_metrics(curves: pd.DataFrame) -> list[tuple[str, float, int]]:
    """One strategy's curve as ``(name, value, step)``: means over seeds, accuracy spread, per seed.

    Per round (step = iteration): the mean over seeds of every metric and of ``n_labeled``,
    ``accuracy_std`` (over seeds; 0 with one seed), and ``accuracy.seed<k>`` for each seed.
    """
    values = [c for c in curves.columns if c not in KEYS]
    grouped = curves.groupby("iteration", sort=True)
    means = grouped[["n_labeled", *values]].mean()
    means["accuracy_std"] = grouped["accuracy"].std().fillna(0.0)
    points = [
        (str(name), float(value), int(cast(int, step)))  # step: the index, the iteration numbers
        for step, row in means.iterrows()
        for name, value in row.items()
    ]
    points += [
        (f"accuracy.seed{seed}", float(accuracy), int(step))
        for seed, step, accuracy in curves[["seed", "iteration", "accuracy"]].itertuples(index=False)
    ]
    return points


def _summary_metrics(row: pd.Series) -> Iterator[tuple[str, float]]:
    """A strategy's summary figures with MLflow-safe names; figures never reached are left out."""
    for name, value in row.items():
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            yield metric_name(str(name)), float(value)


def _log_batch(
    client: MlflowClient,
    run_id: str,
    *,
    params: dict[str, object] | None = None,
    metrics: Sequence[tuple[str, float, int]] = (),
) -> None:
    """Parameters and ``(name, value, step)`` metrics in as few ``log_batch`` calls as MLflow allows."""
    from mlflow.entities import Metric, Param

    param_list = [Param(k, str(v)) for k, v in (params or {}).items()]
    for chunk in _chunks(param_list, MAX_PARAMS_PER_BATCH):
        client.log_batch(run_id, params=chunk)
    now = int(time.time() * 1000)
    metric_list: list[Metric] = [Metric(name, value, now, step) for name, value, step in metrics]
    for metric_chunk in _chunks(metric_list, MAX_METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=metric_chunk)


def _chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    return (items[start : start + size] for start in range(0, len(items), size))


def _log_model(model: Any, name: str, step: int) -> None:
    """Log ``model`` (skops format) into the active run and register it as ``name``.

    ``step`` is the round the model comes from: MLflow links that round's metrics to the model.
    """
    import mlflow.sklearn

    signature = None
    n_features = getattr(model, "n_features_in_", None)
    if n_features is not None:
        import numpy as np
        from mlflow.models import infer_signature

        example = np.zeros((1, int(n_features)))
        signature = infer_signature(example, model.predict(example))
    mlflow.sklearn.log_model(
        model,
        name=MODEL_ARTIFACT,
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
        # the flavour's own requirements: skips a slow subprocess that would infer them
        pip_requirements=mlflow.sklearn.get_default_pip_requirements(include_skops=True),
        signature=signature,
        registered_model_name=name,
        step=step,
    )


def _experiment_id(client: MlflowClient, name: str, uri: str) -> str:
    """The id of experiment ``name``, created (artifacts beside a SQLite database) if missing."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, artifact_location=_artifact_location(uri, name))
        except MlflowException as error:  # created meanwhile by another process
            if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                raise
            experiment = client.get_experiment_by_name(name)
            assert experiment is not None  # it exists now: the other process made it
    if experiment.lifecycle_stage == "deleted":
        raise ValueError(
            f"MLflow experiment {name!r} is deleted: restore it (mlflow experiments restore) "
            "or choose another experiment name"
        )
    return experiment.experiment_id


def _artifact_location(uri: str, experiment_name: str) -> str | None:
    """``<database folder>/mlartifacts/<experiment>`` for a SQLite store; else MLflow decides."""
    if not uri.startswith("sqlite:///") or ":memory:" in uri:
        return None
    database = Path(uri.removeprefix("sqlite:///").split("?", 1)[0])
    folder = re.sub(r"[^\w.-]+", "-", experiment_name).strip("-.") or EXPERIMENT
    return (database.resolve().parent / ARTIFACTS_DIR / folder).as_uri()


def _quiet() -> None:
    """Silence MLflow's informational chatter, unless the user configured those loggers."""
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")  # no git executable: no import warning
    for name, level in _QUIET_LOGGERS.items():
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(level)


def log_model_version(
    model: object,
    *,
    project: str,
    version: int,
    kind: str,
    params: dict[str, object],
    metrics: dict[str, float],
    register: bool = True,
    experiment_name: str = "alstream-service",
) -> str:
    """One run per model version of the service: its parameters, metrics (step = version) and,
    when ``register``, the model registered as ``alstream-<project>``. Returns the run id."""
    import mlflow

    uri = configure()
    client = mlflow.MlflowClient(uri)
    experiment_id = _experiment_id(client, experiment_name, uri)
    tags = {"alstream.role": "model-version", "project": project, "kind": kind, "version": str(version)}
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{project}-v{version}", tags=tags) as run:
        values = [(metric_name(k), float(v), version) for k, v in metrics.items() if v == v]
        _log_batch(
            client, run.info.run_id, params={metric_name(k): v for k, v in params.items()}, metrics=values
        )
        if register:
            _log_model(model, re.sub(r"[/:]", "-", f"alstream-{project}"), step=version)
        return run.info.run_id
