"""Alembic's context is global to a process: stores created at once in threads, while MLflow migrates
its tracking database, must each still migrate (the engine's MLflow thread and a new store did not)."""

from __future__ import annotations

import threading
from functools import partial
from pathlib import Path

import pytest

from alstream import tracking
from alstream.store import Store


def test_stores_and_mlflow_migrating_at_once_in_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    start, errors = threading.Barrier(7), []

    def run(work) -> None:
        start.wait()
        try:
            work()
        except Exception as error:  # collected: the test says which failed
            errors.append(repr(error))

    stores = [Store(f"sqlite:///{tmp_path}/store{i}.db") for i in range(6)]
    # always_migrate: Alembic's scripts, as on an older database (an empty one is stamped without them)
    migrate = [partial(store.create, always_migrate=True) for store in stores]
    threads = [threading.Thread(target=run, args=(work,)) for work in migrate]
    threads.append(threading.Thread(target=run, args=(tracking.configure,)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for store in stores:
        assert store.counts()["samples"] == 0  # migrated: the tables are there
        store.close()
