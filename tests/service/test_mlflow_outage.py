"""MLflow away: the service records and serves every model version; only the MLflow run ids wait."""

import time

from fastapi.testclient import TestClient
from sklearn.datasets import load_digits

from alstream.flows.retrain_flow import PrefectRecorder
from alstream.service.app import create_app

from .conftest import AUTH, service_settings, wait_for

Y = load_digits().target


def test_versions_are_recorded_and_shutdown_is_prompt_while_mlflow_does_not_answer(
    tmp_path, request, monkeypatch, prefect_backend
):
    monkeypatch.setenv(
        "MLFLOW_TRACKING_URI", "http://127.0.0.1:9"
    )  # nobody answers; MLflow retries for minutes
    settings = service_settings(tmp_path, "embedded", request)
    app = create_app(settings, track=True, orchestrator=PrefectRecorder())  # as `alstream serve` runs
    with TestClient(app, headers=AUTH) as client:
        wait_for(lambda: client.get("/health").json()["model_version"] is not None, 120, "the first model")
        items = client.get("/queue", params={"n": 12, "annotator": "oracle"}).json()
        labels = [{"id": i["id"], "label": str(Y[int(i["id"].split("-")[1])])} for i in items]
        assert client.post("/labels", json=labels).status_code == 202
        wait_for(lambda: len(client.get("/models").json()) >= 2, 60, "a second version, recorded")
        models = client.get("/models").json()
        assert [m["status"] for m in models] == ["ok"] * len(models)
        assert [m["mlflow_run_id"] for m in models] == [None] * len(models)
        closing = time.monotonic()
    assert time.monotonic() - closing < 60  # the shutdown does not wait out MLflow's retries
