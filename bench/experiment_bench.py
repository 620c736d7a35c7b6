"""Experiment wall time: `make compare` through the command line against the same protocol in Python.

The protocol of `make compare` (``alstream experiment --strategy all``: digits, logistic regression,
every registered strategy and the random baseline, 5 seeds, 20 rounds of 20 labels) is timed four
ways, each in a fresh process:

* ``api, 1 CPU``: ``run_experiment`` (the Python API), pinned to one CPU, one BLAS thread;
* ``cli, 1 CPU``: the command line on that CPU (its default: one worker, in its own process), with
  Prefect's temporary server and MLflow, as ``make compare`` runs it (in the environment a user has:
  no thread-count variables; its runs use one BLAS thread each of their own accord);
* ``cli, 1 worker``, ``cli, 2 workers``: the command line on two CPUs, ``--workers 1`` and
  ``--workers 2`` (a local Dask cluster), with Prefect and MLflow;
* ``no orchestrator, 1 worker`` / ``2 workers``: the same with ``--orchestrator none`` (MLflow, no
  Prefect): how far the grid on Dask scales by itself, Prefect's server and task engine left out.

The targets (issue 12): the command line on one CPU within 1.5x of the API, and 2 workers at least
1.7x faster than 1. Each command line run has its own folder, MLflow database and Prefect home (a
short run first creates Prefect's and MLflow's databases, so that no measured run pays for their
migrations, which a first ``make compare`` pays once). The
machine's load average is recorded before and after each: a busy machine slows the parallel run
most. So is the CPU time of each run's processes (itself, Prefect's server, Dask's workers), which
the machine's other work inflates less than the wall time. Results: a table, and JSON in
``bench/results/experiment.json``.

    .venv/bin/python bench/experiment_bench.py
    .venv/bin/python bench/experiment_bench.py --seeds 2 --strategies margin random
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.table import Table

from common import ONE_THREAD, RESULTS, console, print_verdict, write_report
from provenance import ROOT, machine, source_info

API = """
import sys
from threadpoolctl import threadpool_limits
from alstream.experiment.config import ExperimentConfig
from alstream.experiment.protocol import run_experiment
from alstream.learning.querying import query_strategy_names
threadpool_limits(1)
seeds, strategies = int(sys.argv[1]), sys.argv[2:] or query_strategy_names()
run_experiment(ExperimentConfig(dataset="digits", strategies=tuple(strategies), seeds=seeds))
"""


def children_cpu_s() -> float:
    """CPU seconds (user and system) of this process's children that have ended, and theirs."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], cpus: set[int], cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run ``command`` on ``cpus``; its wall seconds, the CPU seconds of its processes (itself, Prefect's
    server, Dask's workers: the load of the machine's other work left out) and the load average around it."""
    before, cpu = os.getloadavg(), children_cpu_s()
    start = time.perf_counter()
    done = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        preexec_fn=lambda: os.sched_setaffinity(0, cpus),
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return {
        "wall_s": seconds,
        "cpu_s": children_cpu_s() - cpu,
        "load_before": before,
        "load_after": os.getloadavg(),
    }


def cli(
    folder: Path, seeds: int, strategies: list[str], extra: list[str]
) -> tuple[list[str], dict[str, str]]:
    """The command line of `make compare` (``--strategy all`` unless ``strategies``) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env = {k: v for k, v in env.items() if k not in ONE_THREAD}  # as a user runs it: it limits itself
    env |= {
        "PREFECT_HOME": str(folder / "prefect"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{folder}/mlflow.db",
    }
    chosen = [arg for s in strategies or ["all"] for arg in ("--strategy", s)]
    command = [sys.executable, "-m", "alstream", "experiment", *chosen, "--seeds", str(seeds), *extra]
    return command, env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--strategies", nargs="*", default=[], help="default: all (as make compare)")
    parser.add_argument("--out", type=Path, default=RESULTS / "experiment.json")
    args = parser.parse_args()
    out = console(120)
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("this benchmark needs two CPUs (one for the one-CPU runs, both for the workers)")
    one, two = {cpus[-1]}, set(cpus[-2:])
    env = {**os.environ, **ONE_THREAD, "PYTHONPATH": str(ROOT / "src")}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="alstream-experiment-bench-") as tmp:
        home = Path(tmp)
        with out.status("api, 1 CPU"):
            api = [sys.executable, "-c", API, str(args.seeds), *args.strategies]
            rows.append({"case": "api, 1 CPU", "cpus": 1, **timed(api, one, home, env)})
        cases = [
            ("cli, 1 CPU", one, []),
            ("cli, 1 worker", two, ["--workers", "1"]),
            ("cli, 2 workers", two, ["--workers", "2"]),
            ("no orchestrator, 1 worker", two, ["--workers", "1", "--orchestrator", "none"]),
            ("no orchestrator, 2 workers", two, ["--workers", "2", "--orchestrator", "none"]),
        ]
        for i, (case, cpu_set, extra) in enumerate(cases):
            folder = home / f"run{i}"
            warm, warm_env = cli(folder, 1, ["margin"], ["--dataset", "iris", "--iterations", "1"])
            with out.status(f"{case}: Prefect's and MLflow's databases first"):
                timed(warm, cpu_set, folder, {**warm_env, "PYTHONPATH": env["PYTHONPATH"]})
            command, run_env = cli(folder, args.seeds, args.strategies, extra)
            with out.status(case):
                measured = timed(command, cpu_set, folder, {**run_env, "PYTHONPATH": env["PYTHONPATH"]})
            rows.append({"case": case, "cpus": len(cpu_set), "command": " ".join(command[2:]), **measured})
    by_case = {row["case"]: row["wall_s"] for row in rows}
    overhead = by_case["cli, 1 CPU"] / by_case["api, 1 CPU"]
    speedup = by_case["cli, 1 worker"] / by_case["cli, 2 workers"]
    checks = [
        {"target": "cli on 1 CPU within 1.5x of the API", "value": overhead, "passed": overhead <= 1.5},
        {"target": "2 workers >= 1.7x faster than 1", "value": speedup, "passed": speedup >= 1.7},
    ]
    table = Table(
        title=f"`make compare` protocol ({args.seeds} seeds, {', '.join(args.strategies) or 'all'})"
    )
    for column in ("case", "CPUs", "wall s", "vs api", "CPU s", "load before", "load after"):
        table.add_column(column, justify="left" if column == "case" else "right")
    for row in rows:
        table.add_row(
            row["case"],
            str(row["cpus"]),
            f"{row['wall_s']:.1f}",
            f"{row['wall_s'] / by_case['api, 1 CPU']:.2f}x",
            f"{row['cpu_s']:.1f}",
            f"{row['load_before'][0]:.2f}",
            f"{row['load_after'][0]:.2f}",
        )
    out.print(table)
    for check in checks:
        out.print(f"{check['target']}: {check['value']:.2f}x {'met' if check['passed'] else 'missed'}")
    bare = by_case["no orchestrator, 1 worker"] / by_case["no orchestrator, 2 workers"]
    out.print(f"without Prefect (--orchestrator none), 2 workers vs 1: {bare:.2f}x (the grid on Dask alone)")
    print_verdict(out, checks)
    write_report(
        args.out,
        {
            "benchmark": "experiment",
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "config": {
                "seeds": args.seeds,
                "strategies": args.strategies or "all",
                "dataset": "digits",
                "iterations": 20,
                "batch_size": 20,
                "model": "logreg",
            },
            "alstream": source_info(),
            "machine": {**machine(), "cpus_used": sorted(two)},
            "results": rows,
            "checks": checks,
            "speedup_without_prefect": bare,
        },
    )
    out.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
