"""``alstream trainer`` as real processes on PostgreSQL: one is active, a second stands by; SIGKILL
the active one (while it may be training) and the standby takes over and trains the next versions.
The versions in the store are numbered 1..n, each once, each with its file. With Prefect, the full
retrains are runs of the deployment the active trainer serves (the standby serves it once it takes
over), between the online updates of the trainer itself."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
from sklearn.datasets import load_digits

from alstream.service.model_files import ModelFiles
from alstream.store import LabelRow, SampleRow, Store

from ..conftest import wait_while_progressing
from .processes import Roles, kill_all

STALL_S = 90.0  # a wait fails only when nothing moved (versions, the trainers' logs) for this long


class Trainers(Roles):
    """``alstream trainer`` processes."""

    def __init__(self, env: dict[str, str], cwd: Path, orchestrator: str = "none") -> None:
        super().__init__("trainer", env, cwd, "--no-mlflow", "--orchestrator", orchestrator)

    def said(self, n: int, words: str) -> bool:
        return words in self.text(n)

    def progress(self) -> tuple[object, ...]:
        """The logs' sizes and the processes' CPU seconds: a trainer still importing moves too."""
        alive = [p for p in self.procs if p.poll() is None]  # a killed one: its log no longer grows
        return (super().progress(), tuple(sum(psutil.Process(p.pid).cpu_times()[:2]) for p in alive))


@pytest.fixture(params=["none", "prefect"])
def trainers(request: pytest.FixtureRequest, tmp_path: Path, postgres_url: str) -> Iterator[Trainers]:
    """Two trainers' settings: full retrains in their own loop, or as runs of the Prefect deployment
    (on a real Prefect server both share)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALSTREAM_", "PREFECT_"))}
    if request.param == "prefect":
        server = request.getfixturevalue("prefect_server")
        env.update({"PREFECT_API_URL": server.url, "PREFECT_RUNNER_POLL_FREQUENCY": "1"})
    env.update(
        {
            "ALSTREAM_DATABASE_URL": postgres_url,
            "ALSTREAM_DATA_DIR": str(tmp_path / "shared"),  # the model files' folder both trainers share
            "ALSTREAM_DEMO": "false",
            "ALSTREAM_RETRAIN_AFTER_LABELS": "10",
            "ALSTREAM_RETRAIN_INTERVAL_S": "3600",
            "ALSTREAM_TRAINER_POLL_S": "0.2",
        }
    )
    made = Trainers(env, tmp_path, request.param)
    try:
        yield made
    finally:
        kill_all(made.procs)


class Labeler:
    """Writes the digits into the store as the workers' consumers would, and labels them in turns."""

    def __init__(self, store: Store) -> None:
        self.store = store
        digits = load_digits()
        self.X, self.y = digits.data.astype(np.float32), digits.target.astype(str)
        store.write_batch([SampleRow(f"d-{i}", row) for i, row in enumerate(self.X)], [])
        self.labeled = 0

    def label(self, n: int) -> None:
        rows = [
            LabelRow(f"d-{i}", self.y[i], "ann", False, "test:0", i)
            for i in range(self.labeled, self.labeled + n)
        ]
        self.store.write_batch([], rows)
        self.labeled += n


def versions(store: Store) -> list[int]:
    return [int(row["version"]) for row in store.models()]


@pytest.mark.timeout(600)
def test_the_standby_trainer_takes_over_when_the_active_one_is_killed(
    trainers: Trainers, postgres_url: str, tmp_path: Path
) -> None:
    store = Store(postgres_url)
    store.create()
    labeler = Labeler(store)
    labeler.label(40)  # four per class on average: past the cold start

    def wait(done, what: str) -> None:
        wait_while_progressing(
            done,
            lambda: (versions(store), trainers.progress()),
            stall_s=STALL_S,
            what=what,
            detail=trainers.output,
            poll_s=0.1,
        )

    trainers.start()
    wait(lambda: trainers.said(0, "active trainer") and len(versions(store)) >= 1, "the first trainer")
    trainers.start()
    wait(lambda: trainers.said(1, "standby trainer"), "the second trainer standing by")
    labeler.label(30)
    wait(lambda: store.latest_model(status=None)["n_labels"] >= 70, "training on the new labels")
    assert not trainers.said(1, "active trainer")  # one active trainer only
    before = versions(store)

    labeler.label(30)  # the active trainer may be training on these when it dies
    os.kill(trainers.procs[0].pid, signal.SIGKILL)
    trainers.procs[0].wait(timeout=30)
    wait(lambda: trainers.said(1, "active trainer"), "the standby taking over")
    labeler.label(30)
    wait(lambda: store.latest_model(status=None)["n_labels"] >= 130, "the new active trainer training")

    numbers = versions(store)
    assert numbers == list(range(1, len(numbers) + 1)), "versions skipped or repeated a number"
    assert len(numbers) > len(before)
    rows = store.models()
    assert all(row["status"] == "ok" for row in rows), [row["error"] for row in rows]
    files = ModelFiles(tmp_path / "shared" / "models")
    newest = rows[-1]
    assert files.load(newest["path"]).version == newest["version"]
    assert "active trainer: the next model version is" in trainers.log(1).read_text()
    store.close()
