"""The experiment's grid on a Dask cluster: a local one of ``workers`` processes, or any scheduler.

Runs report their rounds as Dask events (``announce``, on the worker), which ``listen`` passes to a
callback in the process that follows the experiment: the progress bars see every round wherever it
ran. Dask is imported inside the functions only.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from alstream.experiment.loop import RoundFigures
from alstream.experiment.protocol import Submit
from alstream.imports import preload_script

if TYPE_CHECKING:
    from distributed import Client

TOPIC = "alstream-round"
PRELOAD = "alstream.experiment.pipeline"  # the runs, the writes and what they import
# The scheduler's and workers' INFO lines would cut through the progress bars; their warnings stay.
# And no statistical profiler: a worker samples its task thread's stack every 10 ms, which held the
# GIL from the run so often that a run of `make compare` cost 1.45x its CPU (57.6 -> 45.9 s with 2).
QUIET_DASK = {"DASK_LOGGING__DISTRIBUTED": "warning", "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False"}
FigureCallback = Callable[[str, int, RoundFigures], None]


@dataclass(frozen=True)
class RoundNote:
    """What a progress display reads of a round that ran elsewhere (``Round`` less its model)."""

    iteration: int
    n_labeled: int
    metrics: dict[str, float] = field(default_factory=dict)


def local_cpus() -> int:
    """The CPUs this process may run on: the default number of workers."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cluster_options(workers: int, preload: Sequence[str] = (PRELOAD,)) -> dict[str, Any]:
    """A local cluster of ``workers`` processes of one thread each, no dashboard, each warm: it has
    imported the ``preload`` modules (what a run needs), with the collector paused, before it takes
    its first run."""
    return {
        "n_workers": workers,
        "threads_per_worker": 1,
        "processes": True,
        "dashboard_address": None,
        "preload": [preload_script(*preload)],
    }


def quiet_dask() -> None:
    """Dask's INFO lines and its workers' profiler off, here and in the workers this process starts
    (set before importing it), and the local cluster's notes: that it starts, that it stops its workers."""
    for key, value in QUIET_DASK.items():
        os.environ.setdefault(key, value)
    if "dask.config" in sys.modules:  # read already: a local cluster's nannies hand this config on
        import dask.config

        dask.config.set({"distributed.worker.profile.enabled": False})
    for name, level in (("prefect.task_runner.dask", logging.WARNING), ("distributed.nanny", logging.ERROR)):
        logging.getLogger(name).setLevel(level)


@contextmanager
def local_cluster(workers: int, preload: Sequence[str] = (PRELOAD,)) -> Iterator[str]:
    """A local Dask cluster (``cluster_options``) for the block; yields its scheduler's address."""
    quiet_dask()
    from distributed import LocalCluster

    with LocalCluster(**cluster_options(workers, preload)) as cluster:
        yield cluster.scheduler_address


@contextmanager
def dask_client(workers: int, address: str | None = None) -> Iterator[Client]:
    """A client of the scheduler at ``address``, or of a local cluster of ``workers`` processes."""
    quiet_dask()
    from distributed import Client

    with ExitStack() as stack:
        address = address or stack.enter_context(local_cluster(workers))
        yield stack.enter_context(Client(address, set_as_default=False))


def dask_submit(client: Client) -> Submit:
    """``Submit`` onto ``client``'s cluster: futures passed as arguments stay on the cluster."""
    return lambda fn, *args: client.submit(fn, *args, pure=False)


def announce(strategy: str, seed: int, rnd: RoundFigures) -> None:
    """On a Dask worker, send the round's figures to whoever ``listen``s; elsewhere, nothing."""
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:  # not on a worker
        return
    worker.log_event(TOPIC, (strategy, seed, rnd.iteration, rnd.n_labeled, dict(rnd.metrics)))


def listen(client: Client, on_round: FigureCallback) -> None:
    """Pass every round a worker ``announce``s to ``on_round(strategy, seed, note)``."""

    def handle(event: tuple[float, Any]) -> None:
        strategy, seed, iteration, n_labeled, metrics = event[1]
        on_round(strategy, seed, RoundNote(iteration, n_labeled, metrics))

    client.subscribe_topic(TOPIC, handle)
