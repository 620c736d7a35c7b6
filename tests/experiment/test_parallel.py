"""The grid on a local Dask cluster, without Prefect: the same runs as here, every round heard."""

import threading

import pandas as pd

from alstream.experiment.config import ExperimentConfig
from alstream.experiment.outputs import RoundSink
from alstream.experiment.parallel import dask_client, dask_submit, listen
from alstream.experiment.protocol import load_experiment_data, run_grid

from ..conftest import wait_while_progressing

CONFIG = ExperimentConfig(
    dataset="wine",
    strategies=("margin", "density", "random"),
    iterations=3,
    batch_size=0.05,
    seeds=2,
    initial_set="typical",
)


def test_runs_on_a_cluster_give_the_curves_of_runs_here_and_tell_every_round():
    data = load_experiment_data(CONFIG)
    here, _ = run_grid(CONFIG, data)
    heard, lock = [], threading.Lock()

    def hear(strategy, seed, note):
        with lock:
            heard.append((strategy, seed, note.iteration, note.n_labeled))

    with dask_client(2) as client:
        listen(client, hear)
        there, runs = run_grid(CONFIG, data, dask_submit(client), on_round=RoundSink(CONFIG.name))
        expected = [tuple(r) for r in here.curves[["strategy", "seed", "iteration", "n_labeled"]].to_numpy()]
        wait_while_progressing(
            lambda: len(heard) == len(expected), lambda: len(heard), what="the round events"
        )
    pd.testing.assert_frame_equal(there.curves, here.curves)
    pd.testing.assert_frame_equal(there.reference, here.reference)
    assert sorted(heard) == sorted(expected)
    assert [(r.strategy, r.seed) for r in runs] == [(s, seed) for seed in (0, 1) for s in CONFIG.strategies]


def test_the_local_cluster_s_workers_do_not_profile_their_runs():
    # Dask's profiler samples a worker's task thread every 10 ms: it made every run 1.45x dearer.
    with dask_client(1) as client:
        assert list(client.run(_profiling).values()) == [False]


def _profiling():
    import dask.config

    return dask.config.get("distributed.worker.profile.enabled")


def test_the_local_cluster_s_workers_import_the_runs_modules_frozen():
    # What a run needs is imported before its first run, with the collector paused, then frozen:
    # no full collection walks those modules' objects again.
    with dask_client(1) as client:
        [(imported, frozen)] = client.run(_warm).values()
    assert imported and frozen > 100_000


def _warm():
    import gc
    import sys

    return "alstream.experiment.pipeline" in sys.modules, gc.get_freeze_count()
