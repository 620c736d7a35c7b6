"""The service as a real process (``alstream serve``), for tests that kill it and start it again."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from alstream.store import Store

from .conftest import ADMIN_TOKEN, wait_for


class Service:
    """``alstream serve`` in its own process, on the digits demo; can be killed and started again."""

    def __init__(
        self,
        home: Path,
        wait_for_model: bool = True,
        mlflow: bool = False,
        orchestrator: str = "none",
        env: dict[str, str] | None = None,
        **settings: str,
    ) -> None:
        """``mlflow``: log versions to MLflow (as ``alstream serve`` does by default), else ``--no-mlflow``;
        ``orchestrator``: ``--orchestrator`` (``prefect`` is the default of ``alstream serve``); ``env``:
        more environment variables; ``settings``: ``ALSTREAM_*``."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.home = home
        self.env = {
            **os.environ,
            "ALSTREAM_DATA_DIR": str(home / "data"),
            "ALSTREAM_DATABASE_URL": f"sqlite:///{home}/alstream.db",
            "ALSTREAM_RETRAIN_AFTER_LABELS": "10",
            "ALSTREAM_RETRAIN_INTERVAL_S": "3600",
            "ALSTREAM_ADMIN_TOKEN": ADMIN_TOKEN,
            **{f"ALSTREAM_{k.upper()}": v for k, v in settings.items()},
            **(env or {}),
        }
        self.process: subprocess.Popen | None = None
        self.wait_for_model = wait_for_model
        self.mlflow, self.orchestrator = mlflow, orchestrator

    def start(self) -> None:
        command = [sys.executable, "-m", "alstream", "serve", "--port", str(self.port)]
        command += ([] if self.mlflow else ["--no-mlflow"]) + ["--orchestrator", self.orchestrator]
        log = open(self.home / "service.log", "ab")  # noqa: SIM115 - the process owns it
        self.process = subprocess.Popen(command, env=self.env, cwd=self.home, stdout=log, stderr=log)
        wait_for(self._ready, timeout=120, what=f"the service (log: {self.home / 'service.log'})")

    def _ready(self) -> bool:
        assert self.process is not None and self.process.poll() is None, "the service died"
        try:
            health = httpx.get(f"{self.url}/health", timeout=2).json()
            return health["model_version"] is not None or not self.wait_for_model
        except httpx.HTTPError:
            return False

    def create_token(self, role: str, name: str) -> str:
        """A new token made through the admin API."""
        answer = httpx.post(f"{self.url}/tokens", json={"role": role, "name": name},
                            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})  # fmt: skip
        answer.raise_for_status()
        return answer.json()["token"]

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def labels(self) -> dict[str, tuple[str | None, str | None, bool]]:
        """sample id -> (label, annotator, skipped), latest wins, straight from the store."""
        store = Store(self.env["ALSTREAM_DATABASE_URL"])
        try:
            return {k: v for k, v in store.current_labels().items() if v[1] != "demo"}
        finally:
            store.close()


def kill_all(procs: list[subprocess.Popen]) -> None:
    """SIGKILL those of ``procs`` still running, and reap them all."""
    for proc in procs:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
