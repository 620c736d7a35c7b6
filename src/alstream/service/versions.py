"""Recording model versions, and serving the newest one again after a restart.

Each finished version is saved as a file, then recorded in the store, on a thread of its own, in
version order. MLflow logs it on another thread: a tracking server that is down (its client retries
for minutes) delays only the run id, which fills in once logged, never the store's record. An
orchestrator (Prefect: ``alstream.flows.retrain_flow``) records each full retrain on a third
thread, after the version serves: while it does not answer, the runs wait (the newest
``MAX_UNRECORDED``) and go, in order, with the next one.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from alstream.service.background import Worker
from alstream.service.model_files import ModelFiles
from alstream.service.trainer import ModelVersion

log = logging.getLogger(__name__)
MLFLOW_CLOSE_WAIT_S = 10.0  # at shutdown, how long model versions may still wait for MLflow
ORCHESTRATOR_CLOSE_WAIT_S = 10.0  # and full retrains for the orchestrator
MAX_UNRECORDED = 1000  # full retrains kept for an orchestrator that does not answer (the newest)


class Orchestrator(Protocol):
    """Where full retrains are recorded besides the store, after they serve (``alstream serve`` picks
    one from the ``orchestrator`` setting)."""

    def record(
        self,
        *,
        version: int,
        n_labels: int,
        started_at: float,
        finished_at: float,
        metrics: Mapping[str, float],
        error: str | None = None,
    ) -> None:
        """Record one retrain (times: seconds since the epoch; ``error``: it failed); raise if it cannot."""

    def close(self) -> None:
        """Let go of what it started."""


class VersionRecords:
    """Writes each version's file, store row and MLflow run, and hands each full retrain to the
    orchestrator; finds the version to serve at start."""

    def __init__(
        self,
        store: Any,
        model_files: ModelFiles | None,
        *,
        track: bool,
        project: str,
        params: dict[str, Any],
        orchestrator: Orchestrator | None = None,
    ) -> None:
        self.store, self.model_files = store, model_files  # no model files: versions live in memory only
        self.track, self.project, self.params = track, project, params
        self.orchestrator = orchestrator
        self.unrecorded: deque[dict[str, Any]] = deque(maxlen=MAX_UNRECORDED)  # retrains it has not taken
        self._records = Worker("alstream-records")  # model files and store rows, in version order
        self._mlflow = Worker("alstream-mlflow")  # may stall for minutes when MLflow does not answer
        self._runs = Worker("alstream-orchestrator")  # may stall while the orchestrator starts

    def record(self, version: ModelVersion, metrics: dict[str, float]) -> None:
        """Record ``version`` in the background."""
        self._records.submit(self._record, version, metrics)

    def failed(self, kind: str, n_labels: int, error: str | None, number: int) -> None:
        """Record a version that failed to train, in the background."""
        self._records.submit(
            self.store.record_model,
            kind=kind,
            n_labels=n_labels,
            metrics={},
            status="failed",
            error=error,
            version=number,
        )
        if kind == "full":  # after the versions before it (through the records' thread)
            now = time.time()
            self._records.submit(
                self._run,
                version=number,
                n_labels=n_labels,
                started_at=now,
                finished_at=now,
                metrics={},
                error=error or "failed",
            )

    def _record(self, version: ModelVersion, metrics: dict[str, float]) -> None:
        path = None
        if self.model_files is not None:
            try:
                path = self.model_files.save(dataclasses.replace(version, metrics=metrics))
            except Exception:
                log.exception("could not save model version %s: a restart will not serve it", version.version)
        self.store.record_model(
            kind=version.kind,
            n_labels=version.n_labels,
            metrics=metrics,
            status="ok",
            path=path,
            version=version.version,
        )
        if self.track:
            self._mlflow.submit(self._log_to_mlflow, version, metrics)
        if version.kind == "full":
            started_at, finished_at = version.created_at - version.train_s, version.created_at
            self._run(
                version=version.version,
                n_labels=version.n_labels,
                metrics=metrics,
                started_at=started_at,
                finished_at=finished_at,
                error=None,
            )

    def _run(self, **run: Any) -> None:
        """Hand a full retrain to the orchestrator, on its own thread."""
        if self.orchestrator is not None:
            self._runs.submit(self._record_runs, run)

    def _record_runs(self, run: dict[str, Any]) -> None:
        """Record ``run`` after those still waiting, in order; on a failure, they all wait for the next."""
        assert self.orchestrator is not None
        self.unrecorded.append(run)
        while self.unrecorded:
            try:
                self.orchestrator.record(**self.unrecorded[0])
            except Exception as error:
                first, waiting = self.unrecorded[0]["version"], len(self.unrecorded)
                log.warning(
                    "the orchestrator could not record full retrain %s (%s: %s); %d wait for the next one",
                    first,
                    type(error).__name__,
                    error,
                    waiting,
                )
                return
            self.unrecorded.popleft()

    def _log_to_mlflow(self, version: ModelVersion, metrics: dict[str, float]) -> None:
        try:
            from alstream import tracking

            params = {**self.params, "kind": version.kind, "n_labels": version.n_labels}
            run_id = tracking.log_model_version(
                version.model,
                project=self.project,
                version=version.version,
                kind=version.kind,
                params=params,
                metrics=metrics,
                register=version.kind == "full",
            )
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
                log.warning(
                    "model version %s is not restored from %s: %s: %s",
                    row["version"],
                    row["path"],
                    type(error).__name__,
                    error,
                )
                continue
            log.info("serving model version %d, restored from %s", version.version, row["path"])
            return version
        return None

    def close(self) -> None:
        """Wait for the store's records; MLflow and the orchestrator get at most
        ``MLFLOW_CLOSE_WAIT_S`` and ``ORCHESTRATOR_CLOSE_WAIT_S`` more."""
        self._records.close(timeout_s=None)
        left = self._mlflow.close(timeout_s=MLFLOW_CLOSE_WAIT_S)
        if left:
            log.warning(
                "MLflow did not answer: %d model version(s) not logged there (their files and store "
                "records are kept)",
                left,
            )
        if self._runs.close(timeout_s=ORCHESTRATOR_CLOSE_WAIT_S) or self.unrecorded:
            log.warning(
                "the orchestrator did not record every full retrain (%d waiting; the store has them)",
                len(self.unrecorded),
            )
