"""Version records: each version in the store (and its file), and the newest good one at start."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from alstream.service.model_files import ModelFiles
from alstream.service.trainer import ModelVersion
from alstream.service.versions import VersionRecords
from alstream.store import Store


def _version(number: int) -> ModelVersion:
    model = LogisticRegression().fit(np.array([[0.0], [1.0]]), ["a", "b"])
    return ModelVersion(number, model, "full", 2, time.time())


def test_versions_are_recorded_in_order_and_the_newest_that_passes_is_restored(tmp_path: Path):
    store = Store(f"sqlite:///{tmp_path}/store.db")
    store.create()
    records = VersionRecords(store, ModelFiles(tmp_path / "models"), track=False, project="p", params={})
    for number in (1, 2, 3):
        records.record(_version(number), {"holdout_accuracy": 0.5 + number / 10})
    records.failed("online", 3, "it diverged", 4)
    records.close()  # waits for the records
    rows = store.models()
    assert [(r["version"], r["status"]) for r in rows] == [(1, "ok"), (2, "ok"), (3, "ok"), (4, "failed")]
    assert rows[2]["metrics"] == {"holdout_accuracy": 0.8} and rows[3]["error"] == "it diverged"

    def no_version_3(version: ModelVersion, number: int) -> None:
        if number == 3:
            raise ValueError("the settings ask for another model")

    again = VersionRecords(store, ModelFiles(tmp_path / "models"), track=False, project="p", params={})
    restored = again.newest_restorable(no_version_3)
    assert restored is not None and restored.version == 2
    assert (
        VersionRecords(store, None, track=False, project="p", params={}).newest_restorable(no_version_3)
        is None
    )
    again.close()
    store.close()


class Flaky:
    """An orchestrator that does not answer for its first ``down`` calls."""

    def __init__(self, down: int) -> None:
        self.down, self.calls, self.runs = down, 0, []

    def record(self, **run) -> None:
        self.calls += 1
        if self.calls <= self.down:
            raise ConnectionError("nobody answers")
        self.runs.append(run)

    def close(self) -> None:
        pass


def test_full_retrains_wait_for_an_orchestrator_that_is_away_and_go_in_order(tmp_path: Path, caplog):
    store = Store(f"sqlite:///{tmp_path}/store.db")
    store.create()
    orchestrator = Flaky(down=2)
    records = VersionRecords(store, None, track=False, project="p", params={}, orchestrator=orchestrator)
    records.record(_version(1), {"holdout_accuracy": 0.6})  # not recorded: away
    records.record(_version(2), {})  # not recorded: still away
    records.record(dataclasses.replace(_version(3), kind="online"), {})  # online updates are not retrains
    records.failed("full", 2, "every label is 'a'", 4)  # back: 1, 2 and 4 go, in order
    records.close()
    assert [(r["version"], r["error"]) for r in orchestrator.runs] == [
        (1, None),
        (2, None),
        (4, "every label is 'a'"),
    ]
    first = orchestrator.runs[0]
    assert first["metrics"] == {"holdout_accuracy": 0.6} and first["started_at"] <= first["finished_at"]
    assert "could not record full retrain 1 (ConnectionError: nobody answers); 1 wait" in caplog.text
    assert "could not record full retrain 1 (ConnectionError: nobody answers); 2 wait" in caplog.text
    assert records.unrecorded == deque() and [r["version"] for r in store.models()] == [1, 2, 3, 4]
    store.close()


STUCK_AT_SHUTDOWN = """
import threading, time
from alstream import tracking
from alstream.service import versions
from alstream.service.trainer import ModelVersion

class Store:
    def __init__(self):
        self.rows = []

    def record_model(self, **row):
        self.rows.append(row)

class Stuck:
    def record(self, **run):
        threading.Event().wait()  # an orchestrator that never answers

    def close(self):
        pass

tracking.log_model_version = lambda *args, **kwargs: threading.Event().wait()  # nor does MLflow
versions.MLFLOW_CLOSE_WAIT_S = versions.ORCHESTRATOR_CLOSE_WAIT_S = 0.2
store = Store()
records = versions.VersionRecords(store, None, track=True, project="p", params={}, orchestrator=Stuck())
for number in (1, 2, 3):
    records.record(ModelVersion(number, None, "full", 2, time.time()), {})
start = time.monotonic()
records.close()
assert time.monotonic() - start < 10, "close waited for MLflow or the orchestrator"
assert [(row["version"], row["status"]) for row in store.rows] == [(1, "ok"), (2, "ok"), (3, "ok")]
"""


def test_shutting_down_with_mlflow_and_the_orchestrator_stuck_keeps_every_record_and_exits():
    """Every store record is written, and neither close nor the process exit waits for the calls
    that never return (why ``background.Worker`` is not a ``ThreadPoolExecutor``)."""
    start = time.monotonic()
    script = [sys.executable, "-c", STUCK_AT_SHUTDOWN]
    done = subprocess.run(script, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - start < 30
