"""``alstream trainer`` with Prefect, as real processes on a real Prefect server (with its scheduler,
triggers and actions) and a SQLite store: the active trainer serves the deployment
``full-retrain/alstream-retrain``; new labels fire its trigger, its schedule runs it, each run
records exactly one full version, a drift starts a run that weighs the labels before it less (once
the server answers, if it does not at the drift; replacing an earlier drift's run that has not
started), and Prefect's API lists the runs."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Running
from sklearn.datasets import load_digits

from alstream.flows import trainer_deployment
from alstream.flows.prefect_server import TemporaryServer
from alstream.flows.trainer_deployment import DEPLOYMENT, EVENT, FLOW, PrefectDeployment
from alstream.service.model_files import ModelFiles
from alstream.store import LabelRow, SampleRow, Store

from ..conftest import start_prefect_server, wait_while_progressing
from ..service.processes import Roles, kill_all
from ..service.test_trainer_role import Labeler, versions

STALL_S = 120.0  # a wait fails only when nothing moved (versions, runs, the trainers' logs) this long
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
NOT_STARTED = "cannot start the drift's full retrain"  # logged when the server does not answer


class Api:
    """What Prefect's API says of the deployment."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _client(self) -> Any:
        return get_client(sync_client=True)

    def deployment(self) -> Any:
        with temporary_settings(updates={PREFECT_API_URL: self.url}), self._client() as client:
            try:
                return client.read_deployment_by_name(f"{FLOW}/{DEPLOYMENT}")
            except Exception:  # not there yet
                return None

    def automations(self, deployment_id: Any) -> list[Any]:
        with temporary_settings(updates={PREFECT_API_URL: self.url}), self._client() as client:
            return client.read_resource_related_automations(f"prefect.deployment.{deployment_id}")

    def runs(self) -> list[Any]:
        deployment = self.deployment()
        if deployment is None:
            return []
        only = DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
        with temporary_settings(updates={PREFECT_API_URL: self.url}), self._client() as client:
            return client.read_flow_runs(deployment_filter=only)

    def finished(self) -> list[Any]:
        """The runs that ran and ended (a schedule's runs still to come are left out)."""
        return [run for run in self.runs() if run.state and run.state.type.value in TERMINAL]


def start_trainer(tmp_path: Path, url: str, **settings: str) -> Roles:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALSTREAM_", "PREFECT_"))}
    env.update(
        {
            "ALSTREAM_DATABASE_URL": f"sqlite:///{tmp_path}/alstream.db",
            "ALSTREAM_DATA_DIR": str(tmp_path / "shared"),
            "ALSTREAM_DEMO": "false",
            "ALSTREAM_ONLINE_UPDATES": "false",  # every version a full one: a flow run's
            "ALSTREAM_TRAINER_POLL_S": "0.2",
            "PREFECT_API_URL": url,
            "PREFECT_RUNNER_POLL_FREQUENCY": "1",
            **{f"ALSTREAM_{k.upper()}": v for k, v in settings.items()},
        }
    )
    trainers = Roles("trainer", env, tmp_path, "--no-mlflow", "--orchestrator", "prefect")
    trainers.start()
    return trainers


@pytest.fixture
def labeled(tmp_path: Path) -> Iterator[Labeler]:
    store = Store(f"sqlite:///{tmp_path}/alstream.db")
    store.create()
    labeler = Labeler(store)
    labeler.label(40)  # four per class on average: past the cold start
    yield labeler
    store.close()


def waiter(api: Api, store: Store, trainers: Roles):
    def wait(done, what: str) -> None:
        wait_while_progressing(
            done,
            lambda: (versions(store), len(api.finished()), trainers.progress()),
            stall_s=STALL_S,
            what=what,
            detail=trainers.output,
            poll_s=0.5,
        )

    return wait


def full_versions(store: Store) -> list[int]:
    return [int(row["version"]) for row in store.models() if row["kind"] == "full" and row["status"] == "ok"]


@pytest.mark.timeout(900)
def test_new_labels_fire_the_deployment_and_each_run_records_one_version(
    prefect_server: TemporaryServer, labeled: Labeler, tmp_path: Path
) -> None:
    api, store = Api(prefect_server.url), labeled.store
    trainers = start_trainer(
        tmp_path, prefect_server.url, retrain_after_labels="10", retrain_interval_s="3600"
    )
    try:
        wait = waiter(api, store, trainers)
        # The trainer creates the deployment, then its automation: wait for both.
        wait(
            lambda: (d := api.deployment()) is not None and len(api.automations(d.id)) >= 1,
            "the deployment and its automation",
        )
        deployment = api.deployment()
        (schedule,) = deployment.schedules
        assert schedule.schedule.interval.total_seconds() == 3600 and schedule.active
        (automation,) = api.automations(deployment.id)
        assert automation.trigger.expect == {EVENT} and automation.trigger.threshold == 1
        assert automation.enabled

        # The 40 labels there at start: one event, one run, version 1.
        wait(lambda: len(api.finished()) >= 1 and versions(store) == [1], "the first retrain")
        for n in (2, 3):
            labeled.label(10)
            wait(lambda n=n: len(api.finished()) >= n and len(versions(store)) >= n, f"retrain {n}")
        runs = api.finished()
        assert [run.state.type.value for run in runs] == ["COMPLETED"] * 3, [run.state for run in runs]
        assert not any(run.auto_scheduled for run in runs)  # the trigger's, not the schedule's
        assert versions(store) == full_versions(store) == [1, 2, 3]  # one version a run, each once
        assert [row["n_labels"] for row in store.models()] == [40, 50, 60]
        assert "serving model version 3 (full, 60 labels)" in trainers.text(0)
    finally:
        kill_all(trainers.procs)


@pytest.mark.timeout(900)
def test_the_schedule_runs_the_deployment_when_labels_wait(
    prefect_server: TemporaryServer, labeled: Labeler, tmp_path: Path
) -> None:
    api, store = Api(prefect_server.url), labeled.store
    trainers = start_trainer(
        tmp_path, prefect_server.url, retrain_after_labels="1000", retrain_interval_s="10"
    )
    try:
        wait = waiter(api, store, trainers)
        wait(lambda: len(api.finished()) >= 1 and len(versions(store)) >= 1, "a scheduled retrain")
        labeled.label(10)
        wait(lambda: len(versions(store)) >= 2, "the next scheduled retrain")
        runs = api.finished()
        assert runs and all(run.auto_scheduled for run in runs)  # the schedule's: no trigger fired
        assert all(run.state.type.value == "COMPLETED" for run in runs), [run.state for run in runs]
        assert versions(store) == full_versions(store) == [1, 2]
        assert [row["n_labels"] for row in store.models()] == [40, 50]
    finally:
        kill_all(trainers.procs)


@pytest.mark.timeout(900)
def test_a_drift_starts_a_run_that_weighs_the_labels_before_it_less(
    prefect_server: TemporaryServer, tmp_path: Path
) -> None:
    """The replicas' random items: 240 guessed right, then the concept changes (every label moves to
    the next digit) and the guesses go wrong. The trainer's ADWIN finds the drift, a run starts at
    once (neither the trigger nor the schedule would run: 10^5 labels, an hour) with the drift's
    label id, and its model follows the new concept: the labels before the drift weighed 0.05."""
    api, store = Api(prefect_server.url), Store(f"sqlite:///{tmp_path}/alstream.db")
    store.create()
    digits, old, n = load_digits(), 240, 340
    X, y = digits.data.astype(np.float32), digits.target
    # Arrivals in no order: the labeled ones' scores spread over the stream, no drift in them.
    store.write_batch([SampleRow(f"d-{i}", X[i]) for i in np.random.default_rng(0).permutation(len(X))], [])
    new_concept = (y + 1) % 10
    given = [str(y[i]) if i < old else str(new_concept[i]) for i in range(n)]
    store.audits.served([(f"d-{i}", 1, str(y[i])) for i in range(n)])
    store.write_batch([], [LabelRow(f"d-{i}", given[i], "ann", False, "test:0", i) for i in range(n)])
    trainers = start_trainer(
        tmp_path, prefect_server.url, retrain_after_labels="100000", retrain_interval_s="3600"
    )
    try:
        wait = waiter(api, store, trainers)
        wait(lambda: len(api.finished()) >= 1 and versions(store) == [1], "the drift's retrain")
        (run,) = api.finished()
        assert run.state.type.value == "COMPLETED" and not run.auto_scheduled, run.state
        drift = run.parameters["drift_label_id"]
        ids = {sample_id: int(row_id) for row_id, sample_id, *_ in store.labels_after(0)}
        after = [i for i in range(n) if ids[f"d-{i}"] > drift]
        assert after and all(i >= old for i in after)  # found a few wrong guesses into the change
        assert api.deployment().parameters == {"drift_label_id": drift}  # the later runs' too
        assert "drift detected in the accuracy" in trainers.text(0)

        (row,) = store.models()
        model = ModelFiles(tmp_path / "shared" / "models").load(row["path"]).model
        predicted = model.predict(X[n:]).astype(int)  # samples nobody labeled
        assert np.mean(predicted == new_concept[n:]) > 0.6, trainers.output()  # unweighted: about 0.37
        assert np.mean(predicted == y[n:]) < 0.2  # unweighted: about 0.42

        # A trainer that takes over serves the deployment with the drift's weighting still on.
        reported = lambda: (store.trainer_stats.last().stats or {}).get("drift_label_id")  # noqa: E731
        wait(lambda: reported() == drift, "the drift in the trainer's report")
        os.kill(trainers.procs[0].pid, signal.SIGKILL)
        trainers.procs[0].wait(timeout=30)
        trainers.start()
        wait(lambda: "serving the Prefect deployment" in trainers.text(1), "the next trainer serving")
        assert api.deployment().parameters == {"drift_label_id": drift}
        assert "drift: started" not in trainers.text(1)  # the drift's run is not run again
    finally:
        kill_all(trainers.procs)
        store.close()


@pytest.mark.timeout(900)
def test_a_drift_while_the_server_is_down_starts_its_run_once_it_answers_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The server stops once the deployment is served (restarted later on its port and database:
    the same server, unreachable meanwhile). Two drifts come while it is down: ``drifted`` returns
    and the newest one's run is asked for again until the server answers, then created once (the
    older one's never); a drift whose run has not started when the deployment stops is given up."""
    caplog.set_level(logging.INFO, logger="alstream.flows.trainer_deployment")
    home = tmp_path / "prefect"
    server = start_prefect_server(home)
    port, api = urlparse(server.url).port, Api(server.url)
    # The runner looks for runs hourly: they are listed, not run (the retrain, ``str``, is never called).
    deployment = PrefectDeployment(server.url, poll_s=3600)
    drift_logs = lambda: sum("drift" in record.getMessage() for record in caplog.records)  # noqa: E731

    def wait(done, what: str) -> None:
        wait_while_progressing(done, drift_logs, stall_s=STALL_S, what=what, detail=lambda: caplog.text)

    def drift_runs(label_id: int) -> list[Any]:  # not the schedule's, which take the default parameters
        runs = api.runs()
        return [
            run for run in runs if run.parameters.get("drift_label_id") == label_id and not run.auto_scheduled
        ]

    try:
        deployment.serve(str, interval_s=3600)
        served = lambda: "serving the Prefect deployment" in caplog.text  # noqa: E731
        wait_while_progressing(served, lambda: len(caplog.records), stall_s=STALL_S, what="serving")
        server.stop()
        deployment.drifted(7)
        deployment.drifted(9)  # before 7's run started: it replaces it
        wait(lambda: NOT_STARTED in caplog.text, "the drift's run asked for while the server is down")

        server = start_prefect_server(home, port=port)
        wait(lambda: "drift: started" in caplog.text, "the drift's run once the server answers")
        assert len(drift_runs(9)) == 1
        assert not drift_runs(7)
        assert api.deployment().parameters == {"drift_label_id": 9}  # the later runs' too

        server.stop()
        asked = caplog.text.count(NOT_STARTED)
        deployment.drifted(11)
        wait(lambda: caplog.text.count(NOT_STARTED) > asked, "the next drift's run asked for")
        deployment.stop()
        assert not [t for t in threading.enumerate() if t.name == "alstream-drift-run"]  # given up
        server = start_prefect_server(home, port=port)
        assert not drift_runs(11) and len(drift_runs(9)) == 1
        assert caplog.text.count("drift: started") == 1
    finally:
        deployment.stop()
        server.stop()


@pytest.mark.timeout(900)
def test_a_newer_drift_run_cancels_the_one_before_it_that_has_not_started_running(
    prefect_server: TemporaryServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Drifts at 3, 5, 7 and 9; the runs are listed, not run (the runner's next look is an hour after
    its first). 3's run is made running (through the API) before 5's is created: it is left to
    finish. 7's run, once created, is held before the deployment takes note of it, and 9 drifts
    meanwhile (the overlap that made two retrains): 7's run cancels 5's and 9's cancels 7's."""
    caplog.set_level(logging.INFO, logger="alstream.flows.trainer_deployment")
    api, deployment = Api(prefect_server.url), PrefectDeployment(prefect_server.url, poll_s=3600)
    created, release = threading.Event(), threading.Event()
    real_client = trainer_deployment.get_client

    def holding_client(**kwargs: Any) -> Any:
        """The module's client, 7's run held once created until ``release``."""
        client = real_client(**kwargs)
        create = client.create_flow_run_from_deployment

        def create_and_hold(deployment_id: Any, parameters: dict[str, Any]) -> Any:
            run = create(deployment_id, parameters=parameters)
            if parameters["drift_label_id"] == 7:
                created.set()
                release.wait()
            return run

        client.create_flow_run_from_deployment = create_and_hold
        return client

    monkeypatch.setattr(trainer_deployment, "get_client", holding_client)

    def drift_runs() -> list[tuple[int, str]]:  # not the schedule's, made ahead with the default
        runs = [run for run in api.runs() if not run.auto_scheduled]
        return sorted((run.parameters["drift_label_id"], run.state.type.value) for run in runs)

    def wait(done, what: str) -> None:
        progress = lambda: (len(caplog.records), drift_runs())  # noqa: E731
        wait_while_progressing(
            done, progress, stall_s=STALL_S, what=what, detail=lambda: caplog.text, poll_s=0.2
        )

    started = lambda: caplog.text.count("drift: started")  # noqa: E731
    try:
        deployment.serve(str, interval_s=3600)
        runner = lambda: deployment._runner  # noqa: E731
        wait(lambda: runner() is not None and runner().last_polled is not None, "the runner's first look")
        deployment.drifted(3)
        wait(lambda: started() == 1, "3's run")
        (run_3,) = [run.id for run in api.runs() if not run.auto_scheduled]
        with (
            temporary_settings(updates={PREFECT_API_URL: prefect_server.url}),
            get_client(sync_client=True) as c,
        ):
            c.set_flow_run_state(run_3, Running(), force=True)
        deployment.drifted(5)
        wait(lambda: started() == 2, "5's run")
        assert drift_runs() == [(3, "RUNNING"), (5, "SCHEDULED")]  # a running one is left to finish

        deployment.drifted(7)
        wait(created.is_set, "7's run created")
        deployment.drifted(9)
        release.set()
        expected = [(3, "RUNNING"), (5, "CANCELLED"), (7, "CANCELLED"), (9, "SCHEDULED")]
        wait(lambda: drift_runs() == expected, "the replaced runs cancelled")
        assert [label for label, state in drift_runs() if state != "CANCELLED" and label > 3] == [9]
        assert api.deployment().parameters == {"drift_label_id": 9}
        assert started() == 4 and caplog.text.count("drift: cancelling the replaced") == 2
    finally:
        release.set()
        deployment.stop()
