"""What the benchmarks share: ports, percentiles, waiting, a running ``alstream serve``, the report file."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentiles(values_ms: list[float]) -> dict[str, float]:
    """n, p50, p90, p99, max and mean of ``values_ms`` (milliseconds)."""
    a = np.asarray(values_ms, dtype=float)
    return {
        "n": len(a),
        "p50_ms": float(np.percentile(a, 50)),
        "p90_ms": float(np.percentile(a, 90)),
        "p99_ms": float(np.percentile(a, 99)),
        "max_ms": float(a.max()),
        "mean_ms": float(a.mean()),
    }


def wait(condition: Callable[[], bool], timeout: float, what: str, every: float = 0.2) -> float:
    """Poll ``condition`` until true; the seconds it took. RuntimeError after ``timeout``."""
    start = time.perf_counter()
    while not condition():
        if time.perf_counter() - start > timeout:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)
    return time.perf_counter() - start


@dataclass(frozen=True)
class Service:
    """A running ``alstream serve``: its URL and process (and the consumer's, when it runs apart)."""

    url: str
    process: subprocess.Popen
    processes: tuple[subprocess.Popen, ...] = ()  # every process of the service, ``process`` first


@contextlib.contextmanager
def service(
    home: Path, cpu: int | None, settings: dict[str, str], timeout: float = 120, consumer_apart: bool = False
) -> Iterator[Service]:
    """``alstream serve`` in its own process (embedded log and SQLite under ``home``, no MLflow nor
    Prefect, one BLAS thread, ``settings`` as ``ALSTREAM_*`` variables), pinned to ``cpu`` unless None;
    stopped with SIGTERM. ``consumer_apart``: ``serve --no-consumer`` and ``alstream consume``, two
    processes (the CPUs the machine has: ``cpu`` pins the server's only)."""
    import httpx

    port = free_port()
    env = {
        **os.environ,
        "ALSTREAM_DATA_DIR": str(home / "data"),
        "ALSTREAM_DATABASE_URL": f"sqlite:///{home}/alstream.db",
        **ONE_THREAD,
        **settings,
    }
    command = [sys.executable, "-m", "alstream", "serve", "--port", str(port)]
    command += ["--no-mlflow", "--orchestrator", "none"]  # records neither in MLflow nor in Prefect
    with open(home / "service.log", "wb") as log:
        process = subprocess.Popen(
            command + (["--no-consumer"] if consumer_apart else []),
            env=env,
            cwd=home,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        processes = [process]
        if consumer_apart:
            consume = [sys.executable, "-m", "alstream", "consume"]
            consumer = subprocess.Popen(consume, env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT)
            processes.append(consumer)
    if cpu is not None:
        os.sched_setaffinity(process.pid, {cpu})
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"the service exited: {(home / 'service.log').read_text()[-3000:]}")
        try:
            return httpx.get(f"{url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait(answers, timeout, "the service")
        yield Service(url, process, tuple(processes))
    finally:
        for each in processes:
            each.send_signal(signal.SIGTERM)
        for each in processes:
            try:
                each.wait(60)
            except subprocess.TimeoutExpired:
                each.kill()
                each.wait()


def console(width: int) -> Any:
    """A rich console: the terminal's width, or ``width`` columns when the output is not a terminal."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else width)


def table(title: str, columns: Sequence[str]) -> Any:
    """A rich table of ``columns``: the first (the case's name) aligned left, the figures right."""
    from rich.table import Table

    out = Table(title=title)
    for i, column in enumerate(columns):
        out.add_column(column, justify="left" if i == 0 else "right")
    return out


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Write ``report`` as JSON to ``path`` at once (a partial file never replaces a whole one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(report, indent=2, default=str) + "\n")
    partial.replace(path)


def print_verdict(console: Any, checks: list[dict[str, Any]]) -> None:
    """One line: every target met, or how many were missed (each check has ``passed``)."""
    failed = [c for c in checks if not c["passed"]]
    if failed:
        console.print(f"[bold red]FAIL: {len(failed)} of {len(checks)} targets missed")
    else:
        console.print(f"[bold green]PASS: all {len(checks)} targets met")
