"""The orchestrator is never on the path of a model version: the first one serves, and the next ones
do, while the orchestrator has recorded nothing (it is starting, or it does not answer at all)."""

from __future__ import annotations

import threading

import httpx
from fastapi.testclient import TestClient
from sklearn.datasets import load_digits

from alstream.service.app import create_app

from .conftest import AUTH, service_settings, wait_for
from .processes import Service

Y = load_digits().target


class Stuck:
    """An orchestrator whose every record waits until it is let go, as one whose server is starting."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.runs: list[dict] = []

    def record(self, **run) -> None:
        self.go.wait()
        self.runs.append(run)

    def close(self) -> None:
        self.go.set()


def _labels(items: list[dict]) -> list[dict]:
    return [{"id": i["id"], "label": str(Y[int(i["id"].split("-")[1])])} for i in items]


def test_versions_serve_while_the_orchestrator_has_recorded_nothing(tmp_path, request):
    settings = service_settings(tmp_path, "embedded", request, online_updates=False)
    orchestrator = Stuck()
    with TestClient(create_app(settings, track=False, orchestrator=orchestrator), headers=AUTH) as client:
        wait_for(lambda: client.get("/health").json()["model_version"] == 1, what="the first model")
        items: list[dict] = []  # the pool's first snapshot may come a moment after the first model
        wait_for(
            lambda: (
                items.extend(client.get("/queue", params={"n": 12, "annotator": "oracle"}).json()) or items
            ),
            what="items to label",
        )
        assert client.post("/labels", json=_labels(items)).status_code == 202
        wait_for(lambda: client.get("/health").json()["model_version"] == 2, what="a second full version")
        assert orchestrator.runs == []  # both serve, and neither is recorded yet
        orchestrator.go.set()
        wait_for(lambda: len(orchestrator.runs) == 2, what="both recorded")
    assert [(r["version"], r["error"]) for r in orchestrator.runs] == [(1, None), (2, None)]
    assert orchestrator.runs[1]["n_labels"] == 42


def test_alstream_serve_with_prefect_unreachable_serves_and_says_what_waits(tmp_path, free_port):
    env = {
        "PREFECT_API_URL": f"http://127.0.0.1:{free_port}/api",  # nobody listens there
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
    }
    service = Service(tmp_path, mlflow=True, orchestrator="prefect", env=env, online_updates="false")
    log = tmp_path / "service.log"
    try:
        service.start()  # waits for the first model
        http = httpx.Client(base_url=service.url, headers=AUTH, timeout=30)
        assert http.get("/health").json()["model_version"] == 1
        wait_for(lambda: "could not record full retrain 1" in log.read_text(), what="the failure, logged")
        items = http.get("/queue", params={"n": 12, "annotator": "oracle"}).json()
        assert http.post("/labels", json=_labels(items)).status_code == 202
        wait_for(lambda: http.get("/health").json()["model_version"] == 2, what="a second full version")
        wait_for(
            lambda: "1 (ConnectError" in log.read_text() and "2 wait for the next" in log.read_text(),
            what="both waiting for Prefect",
        )
        models = http.get("/models").json()
        assert [(m["version"], m["kind"], m["status"]) for m in models] == [
            (1, "full", "ok"),
            (2, "full", "ok"),
        ]
        http.close()
        service.process.terminate()
        service.process.wait(timeout=60)
        assert (
            "the orchestrator did not record every full retrain (2 waiting; the store has them)"
            in log.read_text()
        )
    finally:
        if service.process is not None and service.process.poll() is None:
            service.kill()
