from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from sklearn.datasets import load_digits

from alstream.flows.retrain_flow import PrefectRecorder
from alstream.service.app import create_app
from alstream.settings import Settings

from ..service.conftest import ADMIN_TOKEN, AUTH, wait_for

Y = load_digits().target


def retrain_runs() -> list:
    """The completed runs of the flow ``retrain`` on the session's Prefect server."""
    with get_client(sync_client=True) as prefect:
        runs = prefect.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["retrain"])))
    return [r for r in runs if r.state and r.state.is_completed()]


def test_full_retrains_are_prefect_runs_and_every_version_is_an_mlflow_run(prefect_backend, local_mlflow):
    settings = Settings(
        data_dir=local_mlflow / "data",
        database_url=f"sqlite:///{local_mlflow}/alstream.db",
        retrain_after_labels=10,
        retrain_interval_s=3600.0,
        admin_token=ADMIN_TOKEN,
    )
    before = {r.id for r in retrain_runs()}  # the session's server holds other tests' runs too
    with TestClient(create_app(settings, track=True, orchestrator=PrefectRecorder()), headers=AUTH) as client:
        wait_for(lambda: client.get("/health").json()["model_version"] is not None, 120, "the first model")
        items = client.get("/queue", params={"n": 12, "annotator": "oracle"}).json()
        labels = [{"id": i["id"], "label": str(Y[int(i["id"].split("-")[1])])} for i in items]
        assert client.post("/labels", json=labels).status_code == 202
        wait_for(lambda: client.get("/stats").json()["labeled"] == 42, 60, "the labels")
        wait_for(lambda: not client.app.state.runtime.engine._pending, 120, "a model with the labels")
        trainer = client.app.state.runtime.engine.trainer

        def recorded() -> bool:
            models = client.get("/models").json()
            return len(models) == trainer.current.version and all(m["mlflow_run_id"] for m in models)

        wait_for(recorded, 120, "every version recorded with its MLflow run")
        models = client.get("/models").json()
        full = sorted(m["version"] for m in models if m["kind"] == "full")

        def new_runs() -> list:
            return [r for r in retrain_runs() if r.id not in before]

        wait_for(lambda: len(new_runs()) == len(full), 120, "a Prefect run per full retrain")

    kinds = {m["kind"] for m in models}
    assert "full" in kinds
    runs = new_runs()
    assert sorted(r.parameters["version"] for r in runs) == full
    assert {r.parameters["n_labels"] for r in runs} <= {m["n_labels"] for m in models}
    mlflow = MlflowClient()
    for model in models:
        run = mlflow.get_run(model["mlflow_run_id"])
        assert run.data.tags["kind"] == model["kind"]
        assert int(run.data.tags["version"]) == model["version"]
        assert "holdout_accuracy" in run.data.metrics
    registered = mlflow.search_model_versions("name='alstream-demo-digits'")
    assert len(registered) == sum(m["kind"] == "full" for m in models)
