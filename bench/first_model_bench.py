"""Seconds from ``alstream serve``'s launch to its first model, started the way ``make run`` starts it.

The digits demo on a fresh data folder, MLflow in that folder's ``mlflow.db``, the settings' default
orchestrator (Prefect) and no ``PREFECT_API_URL``: Prefect's temporary server, a subprocess. Timed
from the moment the command line is launched: the first model version ``/health`` names (the
target: within 2 s), with the CPU time the process had spent by then (every thread, user and system:
the figure a loaded machine moves least); also the first answer of ``/health``, the first model
after it, and the first flow run Prefect's temporary server holds once it is up.

Bytecode: ``make install`` compiles it (``uv pip install --compile-bytecode``), so the timed runs
read it from a cache of their own (``PYTHONPYCACHEPREFIX``, filled by one untimed start first);
``--cold`` runs add starts with none at all, every module compiled as it loads (stdlib included),
as a first ``make run`` was before the install compiled it.

Results: a table of the runs and ``bench/results/first_model.json``, with the load average (the
machine is often shared). The exit code is 0 even when the target is missed: this is a report.

    .venv/bin/python bench/first_model_bench.py            # 5 runs, 1 cold
    .venv/bin/python bench/first_model_bench.py --runs 1 --cold 0
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
from rich.table import Table

from common import RESULTS, console, free_port, write_report
from provenance import machine, source_info

PREFECT_SERVER = "prefect.server.api.server:create_app"
TARGET_S = 2.0  # from the launch to the first model
TIMEOUT_S = 300.0
POLL_S = 0.02


def one_run(home: Path, pycache: Path, *, cold: bool, wait_for_prefect: bool) -> dict[str, Any]:
    """One start of ``alstream serve`` in ``home``: seconds from the launch to each milestone (None:
    not reached), and the CPU seconds the process had spent at its first model."""
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(home / "prefect"), "PYTHONPYCACHEPREFIX": str(pycache)}
    env.pop("PREFECT_API_URL", None)  # as `make run` without `make prefect-server`
    env.pop("MLFLOW_TRACKING_URI", None)
    if cold:
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # and ``pycache`` is empty: every module compiled
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    command = [sys.executable, "-m", "alstream", "serve", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    run: dict[str, Any] = {
        "bytecode": "none" if cold else "compiled",
        "first_model_s": None,
        "cpu_s": None,
        "answers_s": None,
        "after_answer_s": None,
        "prefect_run_s": None,
    }
    with open(home / "service.log", "wb") as log, httpx.Client(timeout=2) as client:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT)
        service = psutil.Process(process.pid)
        try:
            while time.perf_counter() - started < TIMEOUT_S:
                if process.poll() is not None:
                    raise RuntimeError(f"the service exited: {(home / 'service.log').read_text()[-3000:]}")
                if run["first_model_s"] is None:
                    try:
                        health = client.get(f"{url}/health").json()
                    except httpx.HTTPError:
                        health = None
                    now = time.perf_counter() - started
                    if health is not None and run["answers_s"] is None:
                        run["answers_s"] = now
                    if health is not None and health["model_version"] is not None:
                        cpu = service.cpu_times()
                        run["cpu_s"] = cpu.user + cpu.system
                        run["first_model_s"] = now
                        run["after_answer_s"] = now - run["answers_s"]
                        run["load_average"] = os.getloadavg()
                        if not wait_for_prefect:
                            break
                elif _prefect_recorded(process):
                    run["prefect_run_s"] = time.perf_counter() - started
                    break
                time.sleep(POLL_S if run["first_model_s"] is None else 0.5)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return run


def _prefect_recorded(process: subprocess.Popen) -> bool:
    """Whether Prefect's temporary server, a child of ``process``, holds a completed flow run."""
    for child in psutil.Process(process.pid).children(recursive=True):
        try:
            command = child.cmdline()
        except psutil.Error:
            continue
        if PREFECT_SERVER in " ".join(command):
            api = f"http://127.0.0.1:{command[command.index('--port') + 1]}/api"
            try:
                runs = httpx.post(f"{api}/flow_runs/filter", json={}, timeout=2).json()
            except (httpx.HTTPError, ValueError):
                return False
            return "COMPLETED" in [run.get("state_type") for run in runs]
    return False


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r[key] is not None]
    return float(np.median(values)) if values else None


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed starts with compiled bytecode")
    parser.add_argument("--cold", type=int, default=1, help="starts with no bytecode (not judged)")
    parser.add_argument(
        "--no-prefect", action="store_true", help="stop each run at its first model (Prefect not awaited)"
    )
    args = parser.parse_args()
    load_before = os.getloadavg()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="alstream-first-model-") as folder:
        cache = Path(folder) / "pycache"
        plan = [False] * args.runs + [True] * args.cold
        for i, cold in enumerate([False, *plan]):  # the first start fills the cache: not timed
            home = Path(folder) / f"run{i}"
            home.mkdir()
            pycache = Path(folder) / f"empty{i}" if cold else cache
            awaited = i > 0 and not cold and not args.no_prefect
            run = one_run(home, pycache, cold=cold, wait_for_prefect=awaited)
            if i > 0:
                runs.append(run)
                print(f"run {len(runs)}: {run}", flush=True)
    compiled = [r for r in runs if r["bytecode"] == "compiled"]
    cold_runs = [r for r in runs if r["bytecode"] == "none"]
    median = _median(compiled, "first_model_s")
    report = {
        "benchmark": "first_model",
        "runs": runs,
        "first_model_s_median": median,
        "cpu_s_median": _median(compiled, "cpu_s"),
        "target_s": TARGET_S,
        "pass": median is not None and median <= TARGET_S,
        "first_model_after_answer_s_median": _median(compiled, "after_answer_s"),
        "prefect_run_s_median": _median(compiled, "prefect_run_s"),
        "no_bytecode_first_model_s_median": _median(cold_runs, "first_model_s"),
        "no_bytecode_cpu_s_median": _median(cold_runs, "cpu_s"),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "source": source_info(),
        "machine": machine(),
    }
    write_report(RESULTS / "first_model.json", report)
    table = Table(
        title="alstream serve (digits demo, make run's defaults): seconds from the launch",
        caption=f"load average before {_loads(load_before)}, after {_loads(report['load_average_after'])}",
    )
    columns = ["run", "bytecode", "first model", "CPU", "first answer", "model after answer"]
    columns += ["Prefect recorded", "load (1 min)"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("run", "bytecode") else "right")
    for i, r in enumerate(runs, 1):
        cells = [r["first_model_s"], r["cpu_s"], r["answers_s"], r["after_answer_s"], r["prefect_run_s"]]
        load = r.get("load_average")
        table.add_row(str(i), r["bytecode"], *map(_s, cells), "-" if load is None else f"{load[0]:.1f}")
    out = console(110)
    out.print(table)
    verdict = "met" if report["pass"] else "missed"
    out.print(
        f"first model: median {_s(median)} s from the launch, {_s(report['cpu_s_median'])} s of CPU "
        f"(target <= {TARGET_S} s: {verdict}); {_s(report['first_model_after_answer_s_median'])} s after "
        f"the first answer; Prefect recorded it after {_s(report['prefect_run_s_median'])} s"
    )


def _loads(load: tuple[float, float, float]) -> str:
    return " / ".join(f"{x:.1f}" for x in load)


if __name__ == "__main__":
    main()
