import time

import pytest
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from alstream.experiment.config import ExperimentConfig
from alstream.flows.active_learning_flow import active_learning_flow

CONFIG = ExperimentConfig(
    dataset="iris", strategies=("margin", "random"), iterations=3, batch_size=5, seeds=2
)


@pytest.fixture
def flow_run(prefect_backend, local_mlflow):
    state = active_learning_flow(CONFIG, output_dir=str(local_mlflow), return_state=True)
    return state, local_mlflow


def _task_names(flow_run_id) -> list[str]:
    with get_client(sync_client=True) as client:
        for _ in range(50):  # task runs are recorded from events, shortly after they finish
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
            names = [run.name.rsplit("-", 1)[0] for run in runs]
            if "log to MLflow" in names:
                return names
            time.sleep(0.2)
    return names


def test_the_flow_runs_every_step_as_a_prefect_task(flow_run):
    state, _ = flow_run
    assert state.is_completed()
    names = _task_names(state.state_details.flow_run_id)
    for step in ("load data", "initial training", "select", "label", "retrain", "evaluate", "write metrics",
                 "write report", "log to MLflow"):  # fmt: skip
        assert step in names, names
    rounds = 2 * 2 * 3  # strategies x seeds x rounds after the first
    assert names.count("select") == rounds
    assert names.count("initial training") == 2 * 2


def test_the_flow_leaves_models_metrics_report_and_mlflow_runs(flow_run):
    state, root = flow_run
    outcome = state.result()
    for strategy in ("margin", "random"):
        run = f"iris-logreg-{strategy}"
        for seed in (0, 1):
            assert sorted(p.name for p in (root / "models" / run / f"seed{seed}").iterdir()) == [
                f"iter_{k}.joblib" for k in range(4)
            ]
        assert (root / "metrics" / f"{run}.csv").read_text().count("\n") == 1 + 2 * 4
        assert (root / "metrics" / f"{run}.json").exists()
    assert (root / "reports" / "iris-logreg.md").exists() and (root / "reports" / "iris-logreg.png").exists()
    parent = MlflowClient().get_run(outcome["mlflow_run_id"])
    assert parent.info.status == "FINISHED"
    assert {row["strategy"] for row in outcome["summary"]} == {"margin", "random"}
