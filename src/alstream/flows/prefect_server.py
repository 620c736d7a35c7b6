"""Prefect's API for an experiment: the server ``PREFECT_API_URL`` names, or a temporary one.

Without ``PREFECT_API_URL``, ``prefect_api`` starts one temporary server (Prefect's own, in a
subprocess) and every later flow of this process, and every task on a local Dask worker, reuses
it: Prefect would otherwise start one per process, and give up after a fixed limit. The wait has
no limit while the server process lives; ``waiting(seconds)`` hears of it. When no server can be
had, ``OrchestratorUnavailable`` says what to do, in one line.
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

import alstream
from alstream.errors import OrchestratorUnavailable

INSTEAD = "or run without Prefect: --orchestrator none"
PORT_IN_USE = 3  # uvicorn's exit status when it cannot bind
SERVER_ENV = {
    "PREFECT_UI_ENABLED": "0",
    "PREFECT__SERVER_EPHEMERAL": "1",
    "PREFECT__SERVER_FINAL": "1",
    "PREFECT_LOGGING_ROOT_LEVEL": "CRITICAL",  # no shutdown tracebacks from the subprocess
}


@dataclass
class TemporaryServer:
    """A Prefect server in a subprocess, on a free port of 127.0.0.1."""

    process: subprocess.Popen[bytes]
    url: str
    errors: IO[bytes]

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.errors.close()

    def last_error(self) -> str:
        self.errors.seek(0)
        lines = [line.strip() for line in self.errors.read().decode(errors="replace").splitlines()]
        return next((line for line in reversed(lines) if line), "")


_SERVER: TemporaryServer | None = None  # this process's temporary server, once started


def answers(url: str, timeout_s: float = 5.0) -> bool:
    """Whether the Prefect API at ``url`` says it is healthy."""
    try:
        return httpx.get(f"{url.rstrip('/')}/health", timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


def server_command(port: int) -> list[str]:
    """Prefect's API server under uvicorn, as Prefect starts its temporary one (its app through
    ``alstream.flows.prefect_app``: imported with the collector paused)."""
    app_dir = str(Path(alstream.__file__).resolve().parents[1])  # this alstream, wherever it lies
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        app_dir,
        "--factory",
        "alstream.flows.prefect_app:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "error",
        "--lifespan",
        "on",
    ]


def start_server(
    waiting: Callable[[float], None] = lambda _: None,
    command: Callable[[int], list[str]] | None = None,
    poll_s: float = 0.2,
    meanwhile: Callable[[], object] = lambda: None,
    services: bool = False,
    port: int | None = None,
) -> TemporaryServer:
    """Start a temporary server (``command(port)``, default ``server_command``), do ``meanwhile()``
    while it boots, and wait, without a limit, until it answers or its process exits. ``services``:
    with all of the server's services (the scheduler too), not only an ephemeral server's. ``port``:
    on that one (None: a free one)."""
    command = command or server_command
    env = {**os.environ, **get_current_settings().to_environment_variables(exclude_unset=True), **SERVER_ENV}
    if services:
        env.pop("PREFECT__SERVER_EPHEMERAL")
    if port is not None and not _is_free(port):  # what answers there would pass for this server
        raise OrchestratorUnavailable(f"Prefect's temporary server cannot start on port {port}: it is taken")
    started = time.monotonic()
    while True:
        port_now = _free_port() if port is None else port
        errors = tempfile.TemporaryFile()  # noqa: SIM115 (the server's, closed by its stop)
        process = subprocess.Popen(command(port_now), env=env, stdout=subprocess.DEVNULL, stderr=errors)
        server = TemporaryServer(process, f"http://127.0.0.1:{port_now}/api", errors)
        meanwhile()
        meanwhile = lambda: None  # noqa: E731 (once)
        while server.alive() and not answers(server.url, timeout_s=2.0):
            waiting(time.monotonic() - started)
            time.sleep(poll_s)
        if server.alive():
            return server
        if process.returncode != PORT_IN_USE or port is not None:  # else another took the port: another one
            why = server.last_error() or f"exit status {process.returncode}"
            server.stop()
            raise OrchestratorUnavailable(
                f"Prefect's temporary server did not start ({why}): start one with `make prefect-server` "
                f"and set PREFECT_API_URL, {INSTEAD}"
            )
        server.stop()


@contextmanager
def prefect_api(
    waiting: Callable[[float], None] = lambda _: None, meanwhile: Callable[[], object] = lambda: None
) -> Iterator[str]:
    """The Prefect API this process's flows (and their Dask workers' tasks) use, for the block;
    ``meanwhile()`` runs while a temporary server boots (or at once)."""
    global _SERVER
    given = PREFECT_API_URL.value()
    if given or (_SERVER is not None and _SERVER.alive()):
        meanwhile()
    if given:
        if not answers(given):
            raise OrchestratorUnavailable(
                f"no Prefect server answers at {given}: start it, unset PREFECT_API_URL for a temporary "
                f"one, {INSTEAD}"
            )
        yield given
        return
    if _SERVER is None or not _SERVER.alive():
        _SERVER = start_server(waiting, meanwhile=meanwhile)
        atexit.register(_stop, _SERVER)
    with temporary_settings(updates={PREFECT_API_URL: _SERVER.url}):
        yield _SERVER.url


def _stop(server: TemporaryServer) -> None:
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=5)  # the logs still queued reach the server before it goes
    server.stop()


def _is_free(port: int) -> bool:
    """Whether nothing listens on ``port`` of 127.0.0.1 (closed connections waiting out TIME_WAIT
    there do not count: a server binds past them, as uvicorn does)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
