"""The service's full retrains, recorded in Prefect as runs of the flow ``retrain``.

A retrain runs in the service's own process (:func:`alstream.service.trainer.retrain`: labels in, a
model version out) and serves as soon as the pool is scored by it. Prefect records it afterwards,
on the service's recording thread, never on the path of a version: one flow run per retrain, with
its version, labels, start (UTC), seconds and metrics as parameters (Prefect's API times a run by
when it is recorded); a failed retrain is a failed run with the error. ``alstream serve`` picks this recorder
when ``orchestrator = "prefect"``.

Without ``PREFECT_API_URL``, Prefect runs a temporary server in a subprocess: the recorder starts it
before its first record, with time to start on a loaded machine (Prefect's own 20 s leave a stray
server behind when they run out), and :meth:`PrefectRecorder.close` stops it (Prefect's atexit hook
never runs, since uvicorn ends the process with the SIGTERM it caught).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


@functools.cache
def retrain_flow() -> Any:
    """The Prefect flow ``retrain`` whose runs record the service's full retrains (Prefect is imported
    here, on the recording thread, never while the service starts)."""
    from prefect import flow

    def retrain(
        version: int, n_labels: int, started_at: str, train_s: float, metrics: Mapping[str, float]
    ) -> int:
        """A full retrain of the service's model: trained in the service's process, recorded here."""
        return version

    return flow(name="retrain", validate_parameters=False)(retrain)  # Prefect's typed form of flow(fn, ...)


class PrefectRecorder:
    """Records each full retrain as a run of the flow ``retrain`` (an ``Orchestrator``, as
    :mod:`alstream.service.versions` names it)."""

    START_TIMEOUT_S = 180

    def __init__(self) -> None:
        self._server: Any = None  # the temporary server this service started, if any
        self._closed = False

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
        """Record one retrain (times in seconds since the epoch); raises when Prefect does not answer."""
        from prefect import get_client
        from prefect.states import Completed, Failed, Running

        self._start_server()
        started = datetime.fromtimestamp(started_at, UTC).isoformat()
        parameters = {
            "version": version,
            "n_labels": n_labels,
            "started_at": started,
            "train_s": round(finished_at - started_at, 6),
            "metrics": dict(metrics),
        }
        with get_client(sync_client=True) as client:
            run = client.create_flow_run(
                retrain_flow(),
                name=f"retrain-v{version}",
                parameters=parameters,
                tags=["alstream"],
                state=Running(),
            )
            client.set_flow_run_state(
                run.id, Completed() if error is None else Failed(message=error), force=True
            )

    def _start_server(self) -> None:
        from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

        ephemeral = not PREFECT_API_URL.value() and PREFECT_SERVER_EPHEMERAL_ENABLED.value()
        if self._server is not None or not ephemeral:
            return
        from prefect.server.api.server import SubprocessASGIServer

        server = SubprocessASGIServer()  # the one Prefect's client uses too
        if server.running:  # someone else's (a test harness): theirs to stop
            return
        self._server = server  # from now on close() stops it, even while it is starting
        try:
            server.start(timeout=self.START_TIMEOUT_S)
        except BaseException:
            server.stop()  # no half-started server left behind
            self._server = None
            raise
        if self._closed:  # closed while it started
            server.stop()

    def close(self) -> None:
        """Stop the temporary server, if this recorder started one."""
        self._closed = True
        server, self._server = self._server, None
        if server is not None:
            server.stop()
