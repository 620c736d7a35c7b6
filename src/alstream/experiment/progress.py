"""Rich progress bars for long work: one bar per strategy of an experiment."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from alstream.experiment.config import ExperimentConfig, StreamConfig
from alstream.experiment.loop import RoundFigures
from alstream.experiment.stream import PointCallback

RoundCallback = Callable[[str, int, RoundFigures], None]


@contextmanager
def experiment_progress(config: ExperimentConfig, console: Console | None = None) -> Iterator[RoundCallback]:
    """Show rounds done per strategy; yields the callback that advances the bars."""
    per_strategy = len(config.seed_list) * (config.iterations + 1)
    with _bars(config.strategies, per_strategy, "rounds", console) as advance:

        def advance_round(strategy: str, seed: int, rnd: RoundFigures) -> None:
            accuracy = rnd.metrics.get("accuracy", float("nan"))
            advance(strategy, f"seed {seed}  labels {rnd.n_labeled}  accuracy {accuracy:.3f}")

        yield advance_round


@contextmanager
def stream_progress(config: StreamConfig, console: Console | None = None) -> Iterator[PointCallback]:
    """Show the points of each curve done (alstream's and scikit-activeml's runs); yields the callback."""
    with _bars(config.runs, len(config.seed_list) * config.points, "points", console) as advance:

        def advance_point(run: str, seed: int, point: dict[str, float]) -> None:
            status = (
                f"seed {seed}  labels {point['n_labeled']}  prequential {point['prequential_accuracy']:.3f}"
            )
            advance(run, status)

        yield advance_point


@contextmanager
def _bars(
    names: tuple[str, ...], total: int, unit: str, console: Console | None
) -> Iterator[Callable[[str, str], None]]:
    """One bar per name, of ``total`` steps; yields ``advance(name, status)``."""
    console = console or Console(stderr=True)
    width = max(16, *map(len, names))
    columns = (
        TextColumn(f"[bold]{{task.description:<{width}}}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(f"{unit}  {{task.fields[status]}}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
        bars = {name: progress.add_task(name, total=total, status="") for name in names}
        yield lambda name, status: progress.update(bars[name], advance=1, status=status)
