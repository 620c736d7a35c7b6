import io

import numpy as np
from rich.console import Console

from alstream.experiment.config import ExperimentConfig
from alstream.experiment.loop import Round
from alstream.experiment.progress import experiment_progress

CONFIG = ExperimentConfig(dataset="iris", strategies=("margin", "random"), iterations=2, seeds=2)


def _round(iteration: int, accuracy: float) -> Round:
    return Round(iteration, 10 + 5 * iteration, np.arange(5), model=None, metrics={"accuracy": accuracy})


def test_a_bar_per_strategy_counts_rounds_and_shows_the_last_accuracy():
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120, color_system=None)
    with experiment_progress(CONFIG, console) as advance:
        for seed in (0, 1):
            for k in range(3):
                advance("margin", seed, _round(k, 0.9 + k / 100))
        advance("random", 0, _round(0, 0.85))
    final = screen.getvalue().split("\r")[-1]  # the bars as last drawn
    assert "margin" in final and "6/6 rounds" in final and "seed 1  labels 20  accuracy 0.920" in final
    assert "1/6 rounds" in final and "accuracy 0.850" in final


def test_nothing_is_drawn_when_the_output_is_not_a_terminal():
    screen = io.StringIO()
    with experiment_progress(CONFIG, Console(file=screen, force_terminal=False)) as advance:
        advance("margin", 0, _round(0, 0.9))
    assert screen.getvalue() == ""
