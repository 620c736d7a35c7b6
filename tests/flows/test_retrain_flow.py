from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from sklearn.datasets import load_digits

from alstream.service.app import create_app
from alstream.settings import Settings

from ..service.conftest import ADMIN_TOKEN, AUTH, wait_for

Y = load_digits().target


def test_full_retrains_run_as_prefect_flows_and_every_version_is_an_mlflow_run(prefect_backend, local_mlflow):
    settings = Settings(
        data_dir=local_mlflow / "data",
        database_url=f"sqlite:///{local_mlflow}/alstream.db",
        retrain_after_labels=10,
        retrain_interval_s=3600.0,
        admin_token=ADMIN_TOKEN,
    )
    with TestClient(create_app(settings, track=True), headers=AUTH) as client:
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

    kinds = {m["kind"] for m in models}
    assert "full" in kinds
    with get_client(sync_client=True) as prefect:
        runs = prefect.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["retrain"])))
    assert len([r for r in runs if r.state and r.state.is_completed()]) >= 1
    mlflow = MlflowClient()
    for model in models:
        run = mlflow.get_run(model["mlflow_run_id"])
        assert run.data.tags["kind"] == model["kind"]
        assert int(run.data.tags["version"]) == model["version"]
        assert "holdout_accuracy" in run.data.metrics
    registered = mlflow.search_model_versions("name='alstream-demo-digits'")
    assert len(registered) == sum(m["kind"] == "full" for m in models)
