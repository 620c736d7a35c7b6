"""The ``alstream`` command line."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperCommand

from alstream.errors import (
    AlstreamError,
    ConfigError,
    ConsumerBusy,
    InvalidInput,
    LastAdmin,
    OrchestratorUnavailable,
)
from alstream.imports import collector_paused
from alstream.logs import configure_logging

# Each command imports what it needs when it runs: the experiment's modules (scikit-learn, pandas),
# the service's, Prefect and MLflow are not loaded for every command.
if TYPE_CHECKING:
    from alstream.experiment.config import ExperimentConfig, StreamConfig
    from alstream.service.versions import Orchestrator
    from alstream.settings import Settings

app = typer.Typer(help="alstream: active learning that picks what people label.", no_args_is_help=True)
console = Console()
log = logging.getLogger(__name__)

# Prefect's temporary server (used when no PREFECT_API_URL is set) is an implementation
# detail of a local run: no telemetry, and no shutdown tracebacks from its subprocess.
QUIET_PREFECT = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_SERVER_LEVEL": "CRITICAL",
}
# The same for the Dask workers' processes, which set Prefect's logging up from their environment.
QUIET_WORKERS = {f"PREFECT_LOGGING_LOGGERS_PREFECT_{name}_RUNS_LEVEL": "WARNING" for name in ("FLOW", "TASK")}
QUIET_SERVER_PROCESS = {"PREFECT_LOGGING_ROOT_LEVEL": "CRITICAL"}  # set after this process's logging
# The service's files (its data, MLflow's database and model artifacts, Prefect's temporary server's)
# are its owner's only, as PostgreSQL does; alstream's own files set their modes explicitly too.
PRIVATE_UMASK = 0o077


# The switches of the commands that record model versions (serve, trainer).
MlflowOption = Annotated[
    bool | None,
    typer.Option("--mlflow/--no-mlflow", help="Log model versions to MLflow (default: the mlflow setting)."),
]
OrchestratorOption = Annotated[
    str | None,
    typer.Option(help="Record full retrains in: prefect or none (default: the orchestrator setting)."),
]


@app.callback()
def main() -> None:
    """Active learning on a live data stream: pick what people label, learn faster."""
    configure_logging(logging.WARNING)  # serve and consume: the log_level setting, once they read it


class NamesInHelp(TyperCommand):
    """A command whose options' help names the registries' entries ({models}, {strategies},
    {selectors}, {initial_sets}), filled in when its help is shown: the registries import
    scikit-learn, which no other command should wait for."""

    def format_help(self, ctx: Any, formatter: Any) -> None:  # typer's click: private types
        from alstream.experiment.config import INITIAL_SETS
        from alstream.learning.estimators import MODELS
        from alstream.learning.querying import query_strategy_names
        from alstream.learning.selective import SELECTORS

        names = {
            "models": ", ".join(MODELS),
            "strategies": ", ".join(query_strategy_names()),
            "selectors": ", ".join(SELECTORS),
            "initial_sets": " or ".join(INITIAL_SETS),
        }
        for param in self.params:
            help_ = getattr(param, "help", None)
            if help_:
                param.help = help_.format_map(names)  # type: ignore[attr-defined]
        super().format_help(ctx, formatter)


@app.command(cls=NamesInHelp)
def experiment(
    dataset: Annotated[
        str, typer.Option(help="digits, breast_cancer, wine, iris, generated, drift, or a CSV/Parquet path.")
    ] = "digits",
    protocol: Annotated[
        str,
        typer.Option(help="pool: rounds of queries from a pool; stream: arrivals in order, a label budget."),
    ] = "pool",
    strategy: Annotated[
        list[str],
        typer.Option(
            help="Repeat to compare. pool: {strategies} (default entropy); stream: {selectors} (default "
            "all). 'all' = every one."
        ),
    ] = [],  # noqa: B006
    baseline: Annotated[bool, typer.Option(help="Also run continuous training (random sampling).")] = True,
    model: Annotated[str, typer.Option(help="One of {models} (default logreg; stream: sgd).")] = "",
    initial_fraction: Annotated[
        float, typer.Option(help="Share of the training pool labeled at start.")
    ] = 0.1,
    initial_set: Annotated[str, typer.Option(help="Drawn {initial_sets} (TypiClust).")] = "stratified",
    batch_size: Annotated[float, typer.Option(help="Labels a round, or a pool share (0 < x < 1).")] = 20,
    iterations: Annotated[int, typer.Option(help="Rounds of select, label, retrain.")] = 20,
    seeds: Annotated[int, typer.Option(help="Repetitions with different splits (seeds 0..n-1).")] = 5,
    test_size: Annotated[float, typer.Option(help="Share of the data held out for testing.")] = 0.25,
    online: Annotated[
        bool, typer.Option(help="Update with partial_fit instead of refitting, where possible.")
    ] = False,
    refit_every: Annotated[
        int, typer.Option(help="With --online, a full refit every N rounds (0: never).")
    ] = 0,
    name: Annotated[str, typer.Option(help="Experiment name (default: <dataset>-<model>).")] = "",
    output_dir: Annotated[Path, typer.Option(help="Where models/, metrics/ and reports/ go.")] = Path("."),
    mlflow: Annotated[bool, typer.Option(help="Log runs, metrics and models to MLflow.")] = True,
    orchestrator: Annotated[
        str, typer.Option(help="Run as a Prefect flow (prefect) or with no server at all (none).")
    ] = "prefect",
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Runs at once, each a process of a local Dask cluster (default: the CPUs).",
            show_default=False,
        ),
    ] = None,
    dask_address: Annotated[
        str, typer.Option(help="A Dask scheduler to run on instead of a local cluster (tcp://host:8786).")
    ] = "",
    save_every_round: Annotated[
        bool, typer.Option(help="Write every round's model, not only each run's last.")
    ] = False,
    label_column: Annotated[str, typer.Option(help="Label column of a CSV/Parquet file.")] = "label",
    n_samples: Annotated[int, typer.Option(help="Generated data: samples.")] = 10_000,
    n_features: Annotated[int, typer.Option(help="Generated data: features.")] = 20,
    n_classes: Annotated[int, typer.Option(help="Generated data: classes.")] = 2,
    budget: Annotated[float, typer.Option(help="Stream: share of the arrivals people may label.")] = 0.1,
    initial: Annotated[int, typer.Option(help="Stream: first arrivals labeled before the rest.")] = 20,
    update_every: Annotated[int, typer.Option(help="Stream: arrivals between model updates.")] = 10,
    drifts: Annotated[int, typer.Option(help="--dataset drift: how many times the classes move.")] = 1,
    skactiveml: Annotated[
        bool, typer.Option(help="Stream: also run scikit-activeml's strategies on the same stream.")
    ] = True,
) -> None:
    """Simulate active learning on labeled data and compare strategies with continuous training."""
    with collector_paused():  # scikit-learn, pandas and the experiment's modules
        from alstream.experiment.config import BASELINE, ExperimentConfig, StreamConfig
        from alstream.experiment.parallel import local_cpus
        from alstream.learning.querying import query_strategy_names
        from alstream.learning.selective import SELECTORS

    if protocol not in ("pool", "stream"):
        raise typer.BadParameter(
            f"unknown protocol {protocol!r}: choose pool or stream", param_hint="--protocol"
        )
    if orchestrator not in ("prefect", "none"):
        raise typer.BadParameter(
            f"unknown orchestrator {orchestrator!r}: choose prefect or none", param_hint="--orchestrator"
        )
    names = list(SELECTORS) if protocol == "stream" else query_strategy_names()
    default = [s for s in SELECTORS if s != BASELINE] if protocol == "stream" else ["entropy"]
    strategies = names if "all" in strategy else list(strategy) or default
    if baseline:
        strategies.append(BASELINE)
    if protocol == "stream":
        try:
            stream_config = StreamConfig(
                dataset=dataset,
                strategies=tuple(strategies),
                model=model or "sgd",
                budget=budget,
                initial=initial,
                update_every=update_every,
                seeds=seeds,
                skactiveml=skactiveml,
                name=name,
                label_column=label_column,
                n_samples=n_samples,
                n_features=n_features,
                n_classes=n_classes,
                drifts=drifts,
            )
        except (AlstreamError, FileNotFoundError) as error:
            raise typer.BadParameter(str(error)) from None
        _run_stream(stream_config, output_dir)
        return
    model = model or "logreg"
    try:
        config = ExperimentConfig(
            dataset=dataset,
            strategies=tuple(strategies),
            model=model,
            initial_fraction=initial_fraction,
            initial_set=initial_set,
            batch_size=batch_size,
            iterations=iterations,
            seeds=seeds,
            test_size=test_size,
            online=online,
            refit_every=refit_every,
            name=name,
            label_column=label_column,
            n_samples=n_samples,
            n_features=n_features,
            n_classes=n_classes,
            drifts=drifts,
        )
    except (AlstreamError, FileNotFoundError) as error:
        raise typer.BadParameter(str(error)) from None
    if mlflow:
        _check_tracking()
    workers = workers or local_cpus()
    run = Launch(output_dir, mlflow, orchestrator, workers, dask_address or None, save_every_round)
    _print_summary(_run_pool(config, run))


def _run_stream(config: StreamConfig, output_dir: Path) -> None:
    from alstream.experiment.config import BASELINE, PREFIX
    from alstream.experiment.outputs import write_metrics
    from alstream.experiment.progress import stream_progress
    from alstream.experiment.report import write_report
    from alstream.experiment.stream import run_stream_experiment, summarize_stream

    with stream_progress(config) as advance:
        try:
            result = run_stream_experiment(config, on_point=advance)
        except InvalidInput as error:  # e.g. a stream too short for its initial set
            console.print(f"[red]error:[/] {error}")
            raise typer.Exit(2) from None
    write_metrics(output_dir, result)
    markdown, plot = write_report(result, output_dir / "reports")
    summary = summarize_stream(result).set_index("strategy")
    full = float(result.reference["accuracy"].mean())
    table = Table(
        title=f"{config.name}: prequential accuracy {full:.3f} with every label",
        caption=f"budget {config.budget:g} of the arrivals; gain over {BASELINE} in points",
    )
    columns = ["strategy", "labels", "prequential acc.", f"vs {BASELINE}"]
    columns += ["scikit-activeml acc."] if config.skactiveml else []
    for column in columns:
        table.add_column(column, justify="left" if column == "strategy" else "right", no_wrap=True)
    accuracy = summary["accuracy"]
    for strategy in sorted(config.strategies, key=lambda s: -accuracy.loc[s]):
        row = summary.loc[strategy]
        cells = [
            strategy,
            f"{row['labels']:.0f} ({row['share']:.1%})",
            f"{row['accuracy']:.3f} ± {row['accuracy_std']:.3f}",
            f"{row['gain']:+.1f}",
        ]
        if config.skactiveml:
            cells.append(f"{accuracy.loc[PREFIX + strategy]:.3f}")
        table.add_row(*cells)
    console.print(table)
    console.print(f"report: [bold]{markdown}[/]  plot: {plot}")


def _check_tracking() -> None:
    from alstream.tracking import check_reachable

    try:
        check_reachable()
    except ConnectionError as error:
        console.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None


@dataclass(frozen=True)
class Launch:
    """How to run a pool experiment: where its files go, and on what."""

    output_dir: Path
    track: bool
    orchestrator: str
    workers: int
    address: str | None
    save_every_round: bool


def _run_pool(config: ExperimentConfig, run: Launch) -> dict:
    for key, value in QUIET_PREFECT.items():
        os.environ.setdefault(key, value)
    from alstream.experiment.progress import experiment_progress

    with ExitStack() as stack:
        ready = [run]

        def warm_up() -> None:
            with collector_paused():  # MLflow's modules, and the cluster's
                ready[0] = _warm_up(run, stack)

        if run.orchestrator == "prefect":
            stack.enter_context(_prefect_api(warm_up))  # while the server boots
        else:
            warm_up()
        run = ready[0]
        advance = stack.enter_context(experiment_progress(config))
        try:
            if run.orchestrator == "none":
                outcome = _run_without_prefect(config, run, advance)
            else:
                from alstream.flows.active_learning_flow import run_flow

                outcome = run_flow(
                    config,
                    str(run.output_dir),
                    track=run.track,
                    on_round=advance,
                    save_every_round=run.save_every_round,
                    workers=run.workers,
                    address=run.address,
                )
        except InvalidInput as error:  # e.g. a file whose classes are too small to split
            console.print(f"[red]error:[/] {error}")
            raise typer.Exit(2) from None
    return outcome


def _warm_up(run: Launch, stack: ExitStack) -> Launch:
    """Ready what the runs need, in ``stack``: MLflow's store, and a local Dask cluster of warm
    workers when ``run`` asks for several; returns ``run`` on that cluster."""
    if run.track:
        from alstream.tracking import configure

        configure()  # imports MLflow and migrates a new store now, not after the runs
    if run.workers == 1 or run.address:
        return run
    from alstream.experiment.parallel import PRELOAD, local_cluster

    preload = "alstream.flows.active_learning_flow" if run.orchestrator == "prefect" else PRELOAD
    return replace(run, address=stack.enter_context(local_cluster(run.workers, [preload])))


@contextmanager
def _prefect_api(meanwhile: Callable[[], None] = lambda: None) -> Iterator[str]:
    """The Prefect API the flow runs against (a temporary server, started with a spinner), with
    ``meanwhile()`` done while it boots; exit 2 saying what to do when there is none."""
    from alstream.experiment.parallel import quiet_dask

    quiet_dask()  # before Dask is imported, here and in the workers
    for key, value in QUIET_WORKERS.items():
        os.environ.setdefault(key, value)
    with collector_paused():
        from alstream.flows.prefect_server import prefect_api

    def booting() -> None:
        with collector_paused():
            import alstream.flows.active_learning_flow  # noqa: F401 (Prefect sets its logging up on first use)

        for name in ("prefect.task_runs", "prefect.flow_runs"):  # the progress bars say it; their lines
            logging.getLogger(name).setLevel(logging.WARNING)  # would cut through the bars
        meanwhile()

    text = "starting Prefect's temporary server ({:.0f} s; --orchestrator none runs without one)"
    try:
        with ExitStack() as stack:
            with Console(stderr=True).status(text.format(0)) as status:
                wait = prefect_api(lambda seconds: status.update(text.format(seconds)), booting)
                url = stack.enter_context(wait)
            yield url
    except OrchestratorUnavailable as error:
        console.print(f"[red]error:[/] {error}", soft_wrap=True)
        raise typer.Exit(2) from None


def _run_without_prefect(config: ExperimentConfig, run: Launch, advance: Callable[..., None]) -> dict:
    """The pool experiment with no orchestration server: here, or on a Dask cluster."""
    from alstream.experiment.pipeline import conduct
    from alstream.experiment.protocol import load_experiment_data

    track = None
    if run.track:
        from alstream.tracking import log_experiment

        track = log_experiment
    go = partial(
        conduct,
        config,
        run.output_dir,
        data=load_experiment_data(config),
        track=track,
        save_every_round=run.save_every_round,
    )
    if run.workers == 1 and not run.address:
        return go(on_round=advance)
    from alstream.experiment.parallel import dask_client, dask_submit, listen

    with dask_client(run.workers, run.address) as client:
        listen(client, advance)
        return go(submit=dask_submit(client))


def _print_summary(outcome: dict) -> None:
    rows = outcome["summary"]
    table = Table(
        title=f"{outcome['name']}: full-pool accuracy {outcome['full_pool_accuracy']:.3f}",
        caption="labels needed to reach 95% / 99% of the full-pool accuracy",
    )
    for column in ("strategy", "AULC", "final acc.", "95%", "99%"):
        table.add_column(column, justify="left" if column == "strategy" else "right", no_wrap=True)
    for row in sorted(rows, key=lambda r: -r["aulc"]):
        table.add_row(
            row["strategy"],
            f"{row['aulc']:.4f} ± {row['aulc_std']:.4f}",
            f"{row['final_accuracy']:.3f}",
            _labels(row["labels_to_95%"]),
            _labels(row["labels_to_99%"]),
        )
    console.print(table)
    console.print(f"report: [bold]{outcome['report']}[/]  plot: {outcome['plot']}")
    if outcome["mlflow_run_id"]:
        console.print(f"MLflow run {outcome['mlflow_run_id']}: see it with [bold]make mlflow-ui[/]")


def _labels(value: float | None) -> str:
    return "not reached" if value is None or value != value else str(int(value))


@app.command()
def serve(
    project: Annotated[
        Path | None, typer.Option(help="Project file (TOML); default ./alstream.toml if present.")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on (default from settings).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default from settings).")] = None,
    consumer: Annotated[bool, typer.Option(help="Run the stream consumer in this process.")] = True,
    mlflow: MlflowOption = None,
    orchestrator: OrchestratorOption = None,
    stateless: Annotated[
        bool,
        typer.Option(
            help="Serve as one API replica of several: /queue leases from the workers' candidates "
            "in the store; no consumer, pool or training here."
        ),
    ] = False,
) -> None:
    """Run the service: the HTTP API, the stream consumer and the learning loop."""
    with collector_paused():  # the service's modules (serve's own collector settings: server.py)
        from alstream.service.app import create_app
        from alstream.service.server import route_server_log, serve

        settings = _recording_settings(project, mlflow, orchestrator)
        settings = settings.model_copy(update={"host": host or settings.host, "port": port or settings.port})
        route_server_log(configure_logging(settings.log_level))
        _check_mlflow(settings)
        recorder = None if stateless else _orchestrator(settings.orchestrator)
        app_ = create_app(
            settings, consume=consumer and not stateless, orchestrator=recorder, stateless=stateless
        )
    console.print(f"alstream on [bold]http://{settings.host}:{settings.port}[/]  (API docs at /docs)")
    serve(app_, settings)


@app.command()
def trainer(
    project: Annotated[Path | None, typer.Option(help="Project file (TOML).")] = None,
    mlflow: MlflowOption = None,
    orchestrator: OrchestratorOption = None,
) -> None:
    """Train model versions from the store's labels: the active trainer, or a standby that takes over
    when the active one dies (one is elected by a lock in the store). With Prefect, the active one
    serves the full retrains as the deployment alstream-retrain."""
    from alstream.service.roles import TrainerRole

    settings = _recording_settings(project, mlflow, orchestrator)
    configure_logging(settings.log_level)
    _check_mlflow(settings)
    if settings.orchestrator == "prefect":  # full retrains: runs of a deployment this trainer serves
        from alstream.flows.trainer_deployment import PrefectDeployment

        role = TrainerRole(settings, deployment=PrefectDeployment.open())
    else:
        role = TrainerRole(settings)
    try:
        _until_stopped(role.run)
    finally:
        role.close()


@app.command()
def worker(project: Annotated[Path | None, typer.Option(help="Project file (TOML).")] = None) -> None:
    """Consume the Kafka partitions the group assigns, keep their pools, score them with the newest
    model version and publish their best samples to the shared queue."""
    from alstream.service.roles import WorkerRole

    os.umask(PRIVATE_UMASK)
    settings = _load_settings(project)
    configure_logging(settings.log_level)
    try:
        role = WorkerRole(settings)
    except ConfigError as error:
        console.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None
    try:
        _until_stopped(role.run)
    finally:
        role.close()


def _until_stopped(run: Callable[[threading.Event], None]) -> None:
    """``run(stop)``; SIGTERM sets ``stop``, Ctrl-C ends it."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        run(stop)


def _recording_settings(project: Path | None, mlflow: bool | None, orchestrator: str | None) -> Settings:
    """The settings of a process that records model versions (``mlflow``, ``orchestrator``: the
    command line's, None: the settings'), its files private, Prefect's temporary server quiet."""
    for key, value in {**QUIET_PREFECT, **QUIET_SERVER_PROCESS}.items():
        os.environ.setdefault(key, value)
    os.umask(PRIVATE_UMASK)
    given = {"mlflow": mlflow, "orchestrator": orchestrator}
    return _load_settings(project, **{k: v for k, v in given.items() if v is not None})


def _check_mlflow(settings: Settings) -> None:
    """Warn when MLflow is on and does not answer (versions still serve; they reach it later)."""
    if settings.mlflow:
        from alstream.tracking import check_reachable

        try:
            check_reachable()
        except ConnectionError as error:  # the service still serves; versions reach MLflow once it answers
            log.warning("%s; until it answers, recording each model version waits on MLflow's retries", error)


def _load_settings(project: Path | None, **given: object) -> Settings:
    """The settings, or exit 2 saying what is wrong with them."""
    from alstream.settings import Settings

    try:
        return Settings.load(project, **given)
    except ConfigError as error:
        console.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None


def _orchestrator(name: str) -> Orchestrator | None:
    """The recorder of full retrains the ``orchestrator`` setting names (None: none)."""
    if name == "none":
        return None
    from alstream.flows.retrain_flow import PrefectRecorder  # Prefect itself: on its recording thread

    return PrefectRecorder()


@app.command()
def consume(
    project: Annotated[Path | None, typer.Option(help="Project file (TOML).")] = None,
) -> None:
    """Run only the stream consumer: samples and labels from the stream into the store."""
    from alstream.service.runtime import backlog, open_ingestor, open_parts

    os.umask(PRIVATE_UMASK)
    settings = _load_settings(project)
    configure_logging(settings.log_level)
    store, stream, topics = open_parts(settings)
    try:
        waits = backlog(settings, store)  # retention behind: the consumer waits, as in `alstream serve`
        ingestor = open_ingestor(
            settings, stream, store, topics, hold=None if waits is None else waits.behind
        )
    except ConsumerBusy as error:  # the embedded log's group is taken (by `alstream serve`'s consumer?)
        stream.close()
        store.close()
        console.print(f"[red]error:[/] {error}: stop it, or run `alstream serve --no-consumer`")
        raise typer.Exit(2) from None
    log.info("consuming %s and %s as group %r", topics.samples, topics.labels, settings.consumer_group)
    try:
        _until_stopped(ingestor.run)
    finally:
        ingestor.close()
        stream.close()
        store.close()
    counts = ingestor.counts
    log.info(
        "stopped: %d samples, %d labels stored; %d dead letters; %.0f s waiting for retention",
        counts.samples,
        counts.labels,
        counts.dead_letters,
        counts.held_s,
    )


@app.command()
def send(
    file: Annotated[
        Path, typer.Argument(help="A CSV file (one sample per row) or JSONL file (one message per line).")
    ],
    url: Annotated[str, typer.Option(help="The service's address.")] = "http://127.0.0.1:8000",
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Messages per request.")] = 500,
    label_column: Annotated[str, typer.Option(help="CSV: the label column, if any.")] = "label",
    id_column: Annotated[str, typer.Option(help="CSV: the id column, if any.")] = "id",
    token: Annotated[
        str, typer.Option(envvar="ALSTREAM_TOKEN", help="A producer (or admin) token.", show_default=False)
    ] = "",
) -> None:
    """Push a CSV or JSONL file into the stream through POST /send, with a progress bar."""
    import httpx
    from rich.progress import Progress

    from alstream.client import RETRYABLE, file_digest, post_batch, read_messages, with_row_ids

    try:
        messages = with_row_ids(
            read_messages(file, label_column=label_column, id_column=id_column), file_digest(file)
        )
    except (OSError, InvalidInput) as error:
        raise typer.BadParameter(str(error)) from None
    sent = 0
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with (
        httpx.Client(base_url=url, timeout=60, headers=headers) as client,
        Progress(console=console) as progress,
    ):
        try:  # a wrong address fails now, not after the retries meant for a service that went away
            client.get("/health", timeout=10)
        except httpx.HTTPError as error:
            console.print(f"[red]cannot reach {url}:[/] {error}")
            raise typer.Exit(1) from None
        bar = progress.add_task(f"sending {file.name}", total=len(messages))
        for start in range(0, len(messages), batch_size):
            batch = messages[start : start + batch_size]
            try:  # waits out 429s, retries 503s and lost connections: ids make resending safe
                response = post_batch(client, batch)
            except httpx.HTTPError as error:
                console.print(f"[red]cannot reach {url}:[/] {error}{AGAIN}")
                raise typer.Exit(1) from None
            if response.status_code != 202:
                status, again = response.status_code, AGAIN if response.status_code in RETRYABLE else ""
                console.print(f"[red]refused ({status}) at message {start}:[/] {response.text[:2000]}{again}")
                raise typer.Exit(1)
            sent += len(batch)
            progress.update(bar, advance=len(batch))
    console.print(f"sent {sent} messages to {url}")


AGAIN = "\nRun the same command again when the service is back: nothing already stored is stored twice."

tokens_app = typer.Typer(help="API tokens: producer (send), annotator (queue and labels), admin (all).")
app.add_typer(tokens_app, name="token")


def _gatekeeper(project: Path | None):
    from alstream.service.private import create_private
    from alstream.service.security import Gatekeeper
    from alstream.store import Store

    settings = _load_settings(project)
    create_private(settings)
    store = Store(settings.database_url)
    store.create()
    return Gatekeeper(store.tokens, settings.admin_token.get_secret_value() if settings.admin_token else None)


@tokens_app.command("create")
def token_create(
    role: Annotated[str, typer.Option(help="producer, annotator or admin.")],
    name: Annotated[str, typer.Option(help="Who or what the token is for: the annotator it labels as.")] = "",
    annotator: Annotated[
        list[str] | None,
        typer.Option(help="Another name it may label as (repeat for several; admins: any name)."),
    ] = None,
    project: Annotated[Path | None, typer.Option(help="Project file (TOML).")] = None,
) -> None:
    """Make a token; it is printed once (only its hash is kept)."""
    names = annotator or []
    for given in [name, *names]:
        if len(given) > 200 or (given and not given.strip()):
            raise typer.BadParameter(f"{given[:40]!r}...: a name is 1-200 characters, not only spaces")
    try:
        token = _gatekeeper(project).issue(role, name or role, names)
    except InvalidInput as error:
        raise typer.BadParameter(str(error), param_hint="--role") from None
    console.print(f"{role} token (shown only now): [bold]{token}[/]", soft_wrap=True)


@tokens_app.command("list")
def token_list(project: Annotated[Path | None, typer.Option(help="Project file (TOML).")] = None) -> None:
    """Every token's key, name, role and state (never the tokens themselves)."""
    table = Table("key", "name", "role", "labels as", "created", "revoked")
    for t in _gatekeeper(project).tokens.all():
        revoked = t["revoked_at"].strftime("%Y-%m-%d %H:%M") if t["revoked_at"] else ""
        names = "any name" if t["role"] == "admin" else ", ".join(t["annotators"])
        table.add_row(
            t["key"], t["name"], t["role"], names, t["created_at"].strftime("%Y-%m-%d %H:%M"), revoked
        )
    console.print(table)


@tokens_app.command("revoke")
def token_revoke(
    key: Annotated[str, typer.Argument(help="The token's key (from `alstream token list`).")],
    project: Annotated[Path | None, typer.Option(help="Project file (TOML).")] = None,
) -> None:
    """Revoke a token: it stops working within seconds, also in a running service. The last admin
    token is kept unless an admin_token is configured."""
    try:
        revoked = _gatekeeper(project).revoke(key)
    except LastAdmin:
        console.print(
            f"[red]{key} is the last admin token: make another (alstream token create --role "
            "admin) or configure admin_token first[/]"
        )
        raise typer.Exit(1) from None
    if not revoked:
        console.print(f"[red]no active token with key {key!r}[/]")
        raise typer.Exit(1)
    console.print(f"revoked {key}")
