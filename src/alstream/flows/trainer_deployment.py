"""The trainer's full retrains as the Prefect deployment ``full-retrain/alstream-retrain``.

The active ``alstream trainer`` serves it (what ``flow.serve`` does: a ``Runner`` with the flow
added, here on a thread of its own so that the trainer can stop serving when it loses its lock), so
Prefect's UI shows every retrain, its schedule and its history. Each run is a process of its own
(the runner spawns it) that calls the trainer's retrain (labels from the store in, a version out).

- The schedule: every ``retrain_interval_s``, the first one that long after the trainer took over.
- The trigger: the event ``alstream.labels.came``, which the trainer emits each time
  ``retrain_after_labels`` new labels have come (threshold 1). The trainer counts the labels, not
  Prefect: a trigger's threshold counts events inside a time window (``within``), so "one event per
  label, threshold N" would forget labels that came slower than the window, and Prefect cannot sum
  a count carried in the events' payloads.
- A drift: the trainer starts a run at once, with the parameter ``drift_label_id`` (the store's
  newest label when the drift was found), and makes it the deployment's default, so the schedule's
  and the trigger's runs after it weigh the labels before the drift less too (until the next drift).
  A thread of its own starts it (the engine's thread goes on): while the server does not answer it
  asks again, waiting longer each time up to ``RETRY_S``; a newer drift's run replaces it, and
  :meth:`PrefectDeployment.stop` gives it up. At most one drift's run waits: once a newer drift's
  run is created, the one before it is cancelled if still ``Scheduled`` or ``Pending`` (Prefect's
  "Cancelling", as ``prefect flow-run cancel`` does: the server makes it "Cancelled" at once while
  no process runs it); one that runs is left to finish.

Schedules need the server's scheduler service and triggers its triggers and actions services:
Prefect's temporary ("ephemeral") server runs the last two but not the first, so the trainer needs a
full server: ``PREFECT_API_URL`` (one every trainer shares, or a standby that takes over starts a
history of its own), else :func:`alstream.flows.prefect_server.start_server` with ``services=True``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from prefect import flow
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import DeploymentUpdate
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.responses import OrchestrationResult
from prefect.events import DeploymentEventTrigger, emit_event
from prefect.runner import Runner
from prefect.schedules import Interval
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Cancelling
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential

from alstream.flows.prefect_server import TemporaryServer, answers, start_server

log = logging.getLogger(__name__)
FLOW = "full-retrain"
DEPLOYMENT = "alstream-retrain"
EVENT = "alstream.labels.came"
RESOURCE = {"prefect.resource.id": "alstream.trainer"}
RETRY_S = 5.0  # a server that does not answer is asked again after this long
FIRST_RETRY_S = 0.5  # a drift's run that did not start: asked again after this, doubling up to RETRY_S
STOP_WAIT_S = 30.0
WAITING = {StateType.SCHEDULED, StateType.PENDING}  # a run's states before it runs


def retrain_flow(retrain: Callable[[int | None], int | None]) -> Any:
    """The flow ``full-retrain``: one call of ``retrain`` (pickled into the run's own process)."""

    def full_retrain(drift_label_id: int | None = None) -> int | None:
        """A full retrain of the active learner's model from every label in the store (after a drift,
        the labels up to ``drift_label_id`` weigh less); the version it recorded (None: no new
        labels)."""
        return retrain(drift_label_id)

    return flow(name=FLOW, log_prints=True, validate_parameters=False)(full_retrain)


def trigger(deployment: str = DEPLOYMENT) -> DeploymentEventTrigger:
    """Run the deployment on each ``alstream.labels.came`` event."""
    return DeploymentEventTrigger(
        name=f"{deployment}: new labels", expect={EVENT}, match=RESOURCE, posture="Reactive", threshold=1
    )


class PrefectDeployment:
    """Serves the full retrains as a Prefect deployment on the API at ``url`` (a ``Deployment``, as
    :mod:`alstream.service.trainer_role` names it)."""

    def __init__(
        self,
        url: str,
        name: str = DEPLOYMENT,
        poll_s: float | None = None,
        server: TemporaryServer | None = None,
    ) -> None:
        self.url, self.name, self.poll_s, self.server = url, name, poll_s, server
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: Runner | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # served, a drift, or stopping
        self._served = False  # the deployment and its trigger exist: events reach it
        self._held = 0  # labels that came before, told once it is served
        self._drift: int | None = None  # the last drift's label id: every run's parameter
        self._unstarted: int | None = None  # the newest drift whose run has not started yet
        self._waiting: UUID | None = None  # the last drift's run created: cancelled by the next one's
        self._drift_thread: threading.Thread | None = None
        self._deployment_id: Any = None

    @classmethod
    def open(cls, waiting: Callable[[float], None] = lambda _: None) -> PrefectDeployment:
        """On the server ``PREFECT_API_URL`` names (it need not answer yet), else on a temporary one
        with every service, stopped by :meth:`close`."""
        given = PREFECT_API_URL.value()
        if given:
            if not answers(given):
                log.warning("no Prefect server answers at %s yet: the deployment waits for it", given)
            return cls(given)
        server = start_server(waiting, services=True)
        log.info("started a temporary Prefect server at %s (set PREFECT_API_URL to share one)", server.url)
        return cls(server.url, server=server)

    def serve(
        self,
        retrain: Callable[[int | None], int | None],
        *,
        interval_s: float,
        drift_label_id: int | None = None,
    ) -> None:
        """Serve ``retrain`` in the background until :meth:`stop`, its runs weighing as after the drift
        at ``drift_label_id`` (None: none yet); a server that does not answer is asked again every
        ``RETRY_S``."""
        self._stop.clear()
        with self._lock:
            self._drift, self._unstarted = drift_label_id, None
        self._thread = threading.Thread(
            target=self._serve, args=(retrain, interval_s), name="alstream-deployment", daemon=True
        )
        self._thread.start()
        self._drift_thread = threading.Thread(target=self._drift_runs, name="alstream-drift-run", daemon=True)
        self._drift_thread.start()

    def _serve(self, retrain: Callable[[int | None], int | None], interval_s: float) -> None:
        with temporary_settings(updates={PREFECT_API_URL: self.url}):
            while not self._stop.is_set():
                try:
                    asyncio.run(self._run(retrain, interval_s))
                except Exception:
                    log.exception("cannot serve the deployment %s; trying again in %g s", self.name, RETRY_S)
                self._stop.wait(RETRY_S)

    async def _run(self, retrain: Callable[[int | None], int | None], interval_s: float) -> None:
        runner = Runner(name=f"{self.name}-runner", pause_on_shutdown=False, query_seconds=self.poll_s)
        # The first scheduled retrain an interval from now, not at once.
        start = datetime.now(UTC) + timedelta(seconds=interval_s)
        schedule = Interval(interval_s, anchor_date=start)
        retrains = retrain_flow(retrain)
        with self._lock:
            parameters = {"drift_label_id": self._drift}
        self._deployment_id = await runner.aadd_flow(
            retrains, name=self.name, schedule=schedule, triggers=[trigger(self.name)], parameters=parameters
        )
        self._loop, self._runner = asyncio.get_running_loop(), runner
        if self._stop.is_set():
            return
        with self._lock:
            self._served, held, self._held = True, self._held, 0
            self._changed.notify_all()  # a drift's run waiting for it starts now
        if held:
            self._emit(held)
        log.info("serving the Prefect deployment %s/%s at %s", FLOW, self.name, self.url)
        await runner.start()

    def labels_came(self, n: int) -> None:
        """Fire the trigger: ``n`` new labels came (held until the trigger exists: an event before it
        would be lost)."""
        with self._lock:
            if not self._served:
                self._held += n
                return
        self._emit(n)

    def drifted(self, label_id: int) -> None:
        """A drift at the store's label ``label_id``: the deployment's runs weigh the labels up to it
        less from now on, and one starts as soon as it can (served, the server answering), on a
        thread of its own; it replaces an earlier drift's run that has not started yet."""
        with self._lock:
            self._drift = self._unstarted = label_id
            self._changed.notify_all()

    def _drift_runs(self) -> None:
        """Until :meth:`stop`: start the newest drift's run once it is served, asking again while the
        server does not answer."""
        retrying = Retrying(
            retry=retry_if_exception_type(Exception),
            stop=lambda _: self._stop.is_set(),  # stopping: the run is given up
            wait=wait_exponential(multiplier=FIRST_RETRY_S, min=FIRST_RETRY_S, max=RETRY_S),
            sleep=self._pause,
            before_sleep=self._not_started,
            retry_error_callback=lambda _: None,
        )
        while True:
            with self._lock:
                while not self._stop.is_set() and (self._unstarted is None or not self._served):
                    self._changed.wait()
                if self._stop.is_set():
                    return
            retrying(self._start_newest_drift_run)

    def _start_newest_drift_run(self) -> None:
        """Start the run of the newest drift not started (none: nothing to do), cancelling the drift's
        run before it that has not started running; raises when the server does not take it."""
        with self._lock:
            label_id = self._unstarted
        if label_id is None or self._stop.is_set():
            return
        parameters = {"drift_label_id": label_id}
        with temporary_settings(updates={PREFECT_API_URL: self.url}), get_client(sync_client=True) as client:
            # The default first: the trigger's and the schedule's runs (made again) weigh as this one.
            client.update_deployment(self._deployment_id, DeploymentUpdate(parameters=parameters))
            run = client.create_flow_run_from_deployment(self._deployment_id, parameters=parameters)
            with self._lock:
                if self._unstarted == label_id:  # else a newer drift's run is still to start
                    self._unstarted = None
                replaced, self._waiting = self._waiting, run.id
            log.info("drift: started the full retrain %s (labels up to id %d weigh less)", run.name, label_id)
            if replaced is not None:
                self._cancel_waiting(client, replaced)

    def _cancel_waiting(self, client: SyncPrefectClient, run_id: UUID) -> None:
        """Cancel the drift's run ``run_id`` if it has not started running (a newer drift's replaces
        it); a server that does not answer leaves it to run (not asked again: the newer run is made).
        Prefect cannot cancel "unless running": one that starts between the read and the cancel stops."""
        try:
            run = client.read_flow_run(run_id)
            if run.state is None or run.state.type not in WAITING:
                return  # running or ended: left to finish
            result: OrchestrationResult[Any] = client.set_flow_run_state(
                run_id, Cancelling(message="a newer drift's run replaces it")
            )
        except Exception as e:
            log.warning("drift: cannot cancel the replaced full retrain %s (%s); it runs too", run_id, e)
            return
        outcome = result.state.name if result.state is not None else result.status.value
        log.info("drift: cancelling the replaced full retrain %s (%s)", run.name, outcome)

    def _pause(self, seconds: float) -> None:
        """Wait ``seconds`` before asking the server again; a newer drift or :meth:`stop` ends it."""
        with self._lock:
            unstarted = self._unstarted
            self._changed.wait_for(lambda: self._stop.is_set() or self._unstarted != unstarted, seconds)

    def _not_started(self, state: RetryCallState) -> None:
        assert state.outcome is not None and state.next_action is not None  # after a failed attempt
        log.warning(
            "cannot start the drift's full retrain on the deployment %s (%s); asking again in %.1f s",
            self.name,
            state.outcome.exception(),
            state.next_action.sleep,
        )

    def _emit(self, n: int) -> None:
        with temporary_settings(updates={PREFECT_API_URL: self.url}):
            emit_event(EVENT, resource=RESOURCE, payload={"labels": n})

    def stop(self) -> None:
        """Stop serving (Prefect cancels the runs in flight: their versions are not recorded)."""
        self._stop.set()
        with self._lock:
            self._served, self._unstarted = False, None  # a drift's run not started is given up
            self._changed.notify_all()
        loop, runner, thread = self._loop, self._runner, self._thread
        if loop is not None and runner is not None and runner.started:
            future = asyncio.run_coroutine_threadsafe(runner.astop(), loop)
            try:
                future.result(STOP_WAIT_S)
            except Exception:
                log.exception("the deployment's runner did not stop cleanly")
        for waited in (thread, self._drift_thread):
            if waited is not None:
                waited.join(STOP_WAIT_S)
        self._loop = self._runner = self._thread = self._drift_thread = None

    def close(self) -> None:
        """Stop serving, and the temporary server if this one started it."""
        self.stop()
        if self.server is not None:
            self.server.stop()
            self.server = None
