"""Recording model versions, and serving the newest one again after a restart.

Each finished version is saved as a file, then recorded in the store, on a thread of its own, in
version order. MLflow logs it on another thread: a tracking server that is down (its client retries
for minutes) delays only the run id, which fills in once logged, never the store's record.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from alstream.service.background import Worker
from alstream.service.model_files import ModelFiles
from alstream.service.trainer import ModelVersion

log = logging.getLogger("alstream.service")
MLFLOW_CLOSE_WAIT_S = 10.0  # at shutdown, how long model versions may still wait for MLflow


class VersionRecords:
    """Writes each version's file, store row and MLflow run; finds the version to serve at start."""

    def __init__(
        self, store: Any, model_files: ModelFiles | None, *, track: bool, project: str, params: dict[str, Any]
    ) -> None:
        self.store, self.model_files = store, model_files  # no model files: versions live in memory only
        self.track, self.project, self.params = track, project, params
        self._records = Worker("alstream-records")  # model files and store rows, in version order
        self._mlflow = Worker("alstream-mlflow")  # may stall for minutes when MLflow does not answer

    def record(self, version: ModelVersion, metrics: dict[str, float]) -> None:
        """Record ``version`` in the background."""
        self._records.submit(self._record, version, metrics)

    def failed(self, kind: str, n_labels: int, error: str | None, number: int) -> None:
        """Record a version that failed to train, in the background."""
        self._records.submit(self.store.record_model, kind=kind, n_labels=n_labels, metrics={},
                             status="failed", error=error, version=number)  # fmt: skip

    def _record(self, version: ModelVersion, metrics: dict[str, float]) -> None:
        path = None
        if self.model_files is not None:
            try:
                path = self.model_files.save(dataclasses.replace(version, metrics=metrics))
            except Exception:
                log.exception("could not save model version %s: a restart will not serve it", version.version)
        self.store.record_model(kind=version.kind, n_labels=version.n_labels, metrics=metrics, status="ok",
                                path=path, version=version.version)  # fmt: skip
        if self.track:
            self._mlflow.submit(self._log_to_mlflow, version, metrics)

    def _log_to_mlflow(self, version: ModelVersion, metrics: dict[str, float]) -> None:
        try:
            from alstream import tracking

            params = {**self.params, "kind": version.kind, "n_labels": version.n_labels}
            run_id = tracking.log_model_version(
                version.model, project=self.project, version=version.version, kind=version.kind,
                params=params, metrics=metrics, register=version.kind == "full",
            )  # fmt: skip
            self.store.set_mlflow_run(version.version, run_id)
        except Exception:
            log.exception("could not log model version %s to MLflow", version.version)

    def newest_restorable(self, check: Callable[[ModelVersion, int], None]) -> ModelVersion | None:
        """The newest saved version whose file loads and passes ``check`` (version, recorded number);
        each one skipped is logged with why."""
        if self.model_files is None:
            return None
        for row in reversed(self.store.models()):
            if row["status"] != "ok" or not row["path"]:
                continue
            try:
                version = self.model_files.load(row["path"])
                check(version, int(row["version"]))
            except Exception as error:
                log.warning("model version %s is not restored from %s: %s: %s",
                            row["version"], row["path"], type(error).__name__, error)  # fmt: skip
                continue
            log.info("serving model version %d, restored from %s", version.version, row["path"])
            return version
        return None

    def close(self) -> None:
        """Wait for the store's records; MLflow gets at most ``MLFLOW_CLOSE_WAIT_S`` more."""
        self._records.close(timeout_s=None)
        left = self._mlflow.close(timeout_s=MLFLOW_CLOSE_WAIT_S)
        if left:
            log.warning("MLflow did not answer: %d model version(s) not logged there (their files and store "
                        "records are kept)", left)  # fmt: skip
