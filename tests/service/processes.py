"""alstream as real processes (`alstream serve`, its roles), for tests that kill them and start them again."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np

from alstream.service.model_files import ModelFiles
from alstream.service.trainer import ModelVersion, RetrainPolicy, Trainer
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
        args: tuple[str, ...] = (),
        **settings: str,
    ) -> None:
        """``mlflow``: log versions to MLflow (as ``alstream serve`` does by default), else ``--no-mlflow``;
        ``orchestrator``: ``--orchestrator`` (``prefect`` is the default of ``alstream serve``); ``env``:
        more environment variables; ``args``: more options of ``alstream serve``; ``settings``:
        ``ALSTREAM_*``."""
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
        self.mlflow, self.orchestrator, self.args = mlflow, orchestrator, args

    def start(self) -> None:
        self.launch()
        wait_for(self.ready, timeout=120, what=f"the service (log: {self.home / 'service.log'})")

    def launch(self) -> None:
        """Start the process; :meth:`ready` says when it answers."""
        command = [sys.executable, "-m", "alstream", "serve", "--port", str(self.port)]
        command += ([] if self.mlflow else ["--no-mlflow"]) + [
            "--orchestrator",
            self.orchestrator,
            *self.args,
        ]
        log = open(self.home / "service.log", "ab")  # noqa: SIM115 - the process owns it
        self.process = subprocess.Popen(command, env=self.env, cwd=self.home, stdout=log, stderr=log)

    def ready(self) -> bool:
        """It answers /health (with a model version, if it waits for one); AssertionError if it died."""
        assert self.process is not None and self.process.poll() is None, "the service died"
        try:
            health = httpx.get(f"{self.url}/health", timeout=2).json()
            return health["model_version"] is not None or not self.wait_for_model
        except httpx.HTTPError:
            return False

    def create_token(self, role: str, name: str) -> str:
        """A new token made through the admin API."""
        answer = httpx.post(
            f"{self.url}/tokens",
            json={"role": role, "name": name},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
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


class Roles:
    """``alstream <role> <args>`` processes (``alstream trainer``, ``alstream worker``), each with its
    log ``<role>-<n>.log`` under ``cwd``; kill them with :func:`kill_all` (``procs``)."""

    def __init__(self, role: str, env: dict[str, str], cwd: Path, *args: str) -> None:
        self.role, self.env, self.cwd, self.args = role, env, cwd, args
        self.procs: list[subprocess.Popen] = []

    def log(self, n: int) -> Path:
        return self.cwd / f"{self.role}-{n}.log"

    def start(self) -> None:
        command = [str(Path(sys.executable).parent / "alstream"), self.role, *self.args]
        with self.log(len(self.procs)).open("wb") as out:
            proc = subprocess.Popen(command, env=self.env, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)

    def text(self, n: int) -> str:
        """What process ``n`` logged so far; AssertionError (with every log) if it died."""
        proc = self.procs[n]
        if proc.poll() is not None:
            raise AssertionError(f"{self.role} {n} exited with {proc.returncode}:\n{self.output()}")
        return self.log(n).read_text(errors="replace")

    def progress(self) -> tuple[int, ...]:
        """The logs' sizes: they grow while the processes work."""
        return tuple(self.log(n).stat().st_size for n in range(len(self.procs)))

    def output(self) -> str:
        logs = (self.log(n).read_text(errors="replace")[-4000:] for n in range(len(self.procs)))
        return "\n".join(f"--- {self.role} {n}\n{text}" for n, text in enumerate(logs))


def record_version(
    store: Store,
    folder: Path,
    X: np.ndarray,
    y: np.ndarray,
    number: int,
    metrics: dict[str, float] | None = None,
) -> ModelVersion:
    """Train version ``number`` as the trainer would, save its file and record it (with ``metrics``)."""
    trainer = Trainer("sgd", [str(c) for c in range(10)], RetrainPolicy())
    trainer.start_at(number - 1)
    version = trainer.train_full(X, y)
    path = ModelFiles(folder).save(version)
    store.record_model(
        kind="full", n_labels=len(y), metrics=metrics or {}, status="ok", path=path, version=number
    )
    return version
