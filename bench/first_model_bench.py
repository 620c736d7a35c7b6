"""Seconds from ``alstream serve`` to its first model, started the way ``make run`` starts it.

The digits demo on a fresh data folder, MLflow in that folder's ``mlflow.db``, the settings' default
orchestrator (Prefect) and no ``PREFECT_API_URL``: Prefect's temporary server, a subprocess. Timed
from the start of the process: the first answer of ``/health``, the first model version it names,
and (when the service started Prefect's server) the first flow run recorded there. Target: the first
model within 2 s of the first answer, whatever Prefect does.

Results: one line per run and ``bench/results/first_model.json``. The exit code is 0 even when the
target is missed: this is a report.

    .venv/bin/python bench/first_model_bench.py            # 3 runs
    .venv/bin/python bench/first_model_bench.py --runs 1
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

import httpx
import numpy as np
import psutil

from common import RESULTS, free_port, write_report
from provenance import machine, source_info

PREFECT_SERVER = "prefect.server.api.server:create_app"
TARGET_S = 2.0
TIMEOUT_S = 300.0


def one_run(home: Path) -> dict[str, float | None]:
    """One start of ``alstream serve`` in ``home``: seconds to each milestone (None: not reached)."""
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(home / "prefect")}
    env.pop("PREFECT_API_URL", None)  # as `make run` without `make prefect-server`
    env.pop("MLFLOW_TRACKING_URI", None)
    command = [sys.executable, "-m", "alstream", "serve", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    times: dict[str, float | None] = {"answers_s": None, "first_model_s": None, "prefect_run_s": None}
    with open(home / "service.log", "wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT)
    try:
        while time.perf_counter() - started < TIMEOUT_S and times["prefect_run_s"] is None:
            if process.poll() is not None:
                raise RuntimeError(f"the service exited: {(home / 'service.log').read_text()[-3000:]}")
            now = time.perf_counter() - started
            try:
                health = httpx.get(f"{url}/health", timeout=2).json()
            except httpx.HTTPError:
                health = None
            if health is not None and times["answers_s"] is None:
                times["answers_s"] = now
            if health is not None and health["model_version"] is not None and times["first_model_s"] is None:
                times["first_model_s"] = now
            if times["first_model_s"] is not None and _prefect_recorded(process):
                times["prefect_run_s"] = time.perf_counter() - started
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return times


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="alstream-first-model-") as home:
            times = one_run(Path(home))
        runs.append(times)
        shown = ", ".join(f"{k} {v:.1f}" if v is not None else f"{k} -" for k, v in times.items())
        print(f"run {i + 1}: {shown}", flush=True)
    firsts = [r["first_model_s"] for r in runs if r["first_model_s"] is not None]
    after_answer = [r["first_model_s"] - r["answers_s"] for r in runs if r["first_model_s"] is not None]
    median = float(np.median(after_answer)) if after_answer else None
    report = {
        "benchmark": "first_model",
        "runs": runs,
        "first_model_s_median": float(np.median(firsts)) if firsts else None,
        "first_model_after_answer_s_median": median,
        "target_after_answer_s": TARGET_S,
        "pass": median is not None and median <= TARGET_S,
        "load_average": os.getloadavg(),
        "source": source_info(),
        "machine": machine(),
    }
    write_report(RESULTS / "first_model.json", report)
    print(
        f"first model: median {report['first_model_s_median']} s from start, {median} s after the first "
        f"answer (target <= {TARGET_S} s): {'met' if report['pass'] else 'missed'}"
    )


if __name__ == "__main__":
    main()
