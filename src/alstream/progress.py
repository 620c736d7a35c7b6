"""Rich progress bars for long work: one bar per strategy of an experiment."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from alstream.experiment.config import ExperimentConfig
from alstream.loop import Round

RoundCallback = Callable[[str, int, Round], None]


@contextmanager
def experiment_progress(config: ExperimentConfig, console: Console | None = None) -> Iterator[RoundCallback]:
    """Show rounds done per strategy; yields the callback that advances the bars."""
    console = console or Console(stderr=True)
    columns = (
        TextColumn("[bold]{task.description:<16}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rounds  {task.fields[status]}"),
        TimeElapsedColumn(),
    )
    per_strategy = len(config.seed_list) * (config.iterations + 1)
    with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
        bars = {s: progress.add_task(s, total=per_strategy, status="") for s in config.strategies}

        def advance(strategy: str, seed: int, rnd: Round) -> None:
            accuracy = rnd.metrics.get("accuracy", float("nan"))
            status = f"seed {seed}  labels {rnd.n_labeled}  accuracy {accuracy:.3f}"
            progress.update(bars[strategy], advance=1, status=status)

        yield advance
