import time

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from alstream.experiment.config import ExperimentConfig
from alstream.experiment.protocol import run_experiment
from alstream.flows.active_learning_flow import active_learning_flow, run_flow
from alstream.learning.curves import summarize

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


def test_the_flow_runs_each_strategy_and_seed_as_one_prefect_task(flow_run):
    state, _ = flow_run
    assert state.is_completed()
    names = _task_names(state.state_details.flow_run_id)
    for step in (
        "load data",
        "split",
        "full-pool reference",
        "write models",
        "write metrics",
        "write report",
        "log to MLflow",
    ):
        assert step in names, names
    assert sorted(n for n in names if n.startswith("run ")) == ["run margin"] * 2 + ["run random"] * 2
    assert names.count("split") == names.count("full-pool reference") == 2  # one a seed
    assert "select" not in names and "retrain" not in names  # rounds are no tasks of their own


def test_the_flow_leaves_each_runs_last_model_metrics_report_and_mlflow_runs(flow_run):
    state, root = flow_run
    outcome = state.result()
    for strategy in ("margin", "random"):
        run = f"iris-logreg-{strategy}"
        for seed in (0, 1):
            assert [p.name for p in (root / "models" / run / f"seed{seed}").iterdir()] == ["iter_3.joblib"]
        assert (root / "metrics" / f"{run}.csv").read_text().count("\n") == 1 + 2 * 4
        assert (root / "metrics" / f"{run}.json").exists()
    assert (root / "reports" / "iris-logreg.md").exists() and (root / "reports" / "iris-logreg.png").exists()
    parent = MlflowClient().get_run(outcome["mlflow_run_id"])
    assert parent.info.status == "FINISHED"
    assert {row["strategy"] for row in outcome["summary"]} == {"margin", "random"}


def test_on_a_dask_cluster_the_runs_give_the_same_curves_and_every_round_reaches_the_caller(
    prefect_backend, tmp_path
):
    heard = []

    def hear(strategy, seed, rnd):
        heard.append((strategy, seed, rnd.iteration))

    outcome = run_flow(CONFIG, str(tmp_path), track=False, workers=2, save_every_round=True, on_round=hear)
    here = run_experiment(CONFIG)  # the same protocol, in this process
    pd.testing.assert_frame_equal(pd.DataFrame(outcome["summary"]), summarize(here.curves, here.reference))
    assert sorted(heard) == [(s, seed, k) for s in ("margin", "random") for seed in (0, 1) for k in range(4)]
    for seed in (0, 1):  # every round's model, as asked
        files = sorted(p.name for p in (tmp_path / "models" / "iris-logreg-margin" / f"seed{seed}").iterdir())
        assert files == [f"iter_{k}.joblib" for k in range(4)]
