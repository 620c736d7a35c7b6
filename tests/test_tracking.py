"""MLflow tracking against a real SQLite store in a temporary folder.

One small experiment is logged once per module (MLflow's first database migration takes seconds);
the tests read it back with ``MlflowClient``.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import mlflow
import mlflow.sklearn
import numpy as np
import pytest
from mlflow import MlflowClient
from sklearn.datasets import load_iris

from alstream import tracking
from alstream.experiment.config import ExperimentConfig
from alstream.experiment.protocol import run_experiment
from alstream.learning.curves import summarize

STRATEGIES = ("margin", "random")
ITERATIONS = 3
SEEDS = 2


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tracking")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder}/mlflow.db")
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        config = ExperimentConfig(
            dataset="iris",
            strategies=STRATEGIES,
            seeds=SEEDS,
            iterations=ITERATIONS,
            batch_size=5,
            name="iris-test",
        )
        models = {}

        def keep_last_of_first_seed(strategy, seed, rnd):
            if seed == 0:
                models[strategy] = rnd.model

        result = run_experiment(config, on_round=keep_last_of_first_seed)
        plot = folder / "curves.png"
        plot.write_bytes(b"\x89PNG not really a picture")
        report = folder / "report.md"
        report.write_text("# iris-test\n")

        batches, single_metrics = [], []
        log_batch = MlflowClient.log_batch

        def spy_batch(self, run_id, metrics=(), params=(), tags=(), synchronous=None):
            batches.append(SimpleNamespace(run_id=run_id, metrics=list(metrics), params=list(params)))
            return log_batch(self, run_id, metrics=metrics, params=params, tags=tags, synchronous=synchronous)

        with pytest.MonkeyPatch.context() as spies:
            spies.setattr(MlflowClient, "log_batch", spy_batch)
            spies.setattr(MlflowClient, "log_metric", lambda *a, **k: single_metrics.append(a))
            parent_id = tracking.log_experiment(result, models, plot=plot, report=report)

        client = MlflowClient()
        experiment = client.get_experiment_by_name("alstream")
        runs = client.search_runs([experiment.experiment_id])
        children = {r.info.run_name: r for r in runs if r.info.run_id != parent_id}
        yield SimpleNamespace(
            folder=folder,
            config=config,
            result=result,
            models=models,
            plot=plot,
            parent=client.get_run(parent_id),
            children=children,
            runs=runs,
            client=client,
            batches=batches,
            single_metrics=single_metrics,
        )
        mlflow.set_tracking_uri(None)  # forget the temporary store; the env var is restored next


def test_one_parent_with_one_nested_child_per_strategy(logged):
    parent = logged.parent
    assert parent.info.run_name == "iris-test"
    assert parent.info.status == "FINISHED"
    assert "mlflow.parentRunId" not in parent.data.tags
    assert len(logged.runs) == 1 + len(STRATEGIES)
    assert set(logged.children) == set(STRATEGIES)
    for strategy, child in logged.children.items():
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.experiment_id == parent.info.experiment_id
        assert child.info.status == "FINISHED"
        assert child.data.tags["strategy"] == strategy
    assert parent.data.tags["dataset"] == "iris"
    assert parent.data.tags["model"] == "logreg"
    assert mlflow.active_run() is None


def test_child_curves_are_means_over_seeds_per_round(logged):
    curves = logged.result.curves
    for strategy, child in logged.children.items():
        runs = curves[curves["strategy"] == strategy]
        means = runs.groupby("iteration").mean(numeric_only=True)
        stds = runs.groupby("iteration")["accuracy"].std()
        for name in ("accuracy", "macro_f1", "log_loss", "n_labeled", "accuracy_std"):
            history = logged.client.get_metric_history(child.info.run_id, name)
            assert [m.step for m in sorted(history, key=lambda m: m.step)] == list(range(ITERATIONS + 1))
            values = {m.step: m.value for m in history}
            expected = stds if name == "accuracy_std" else means[name]
            assert values == pytest.approx(expected.to_dict())
        for seed in range(SEEDS):
            history = logged.client.get_metric_history(child.info.run_id, f"accuracy.seed{seed}")
            per_seed = runs[runs["seed"] == seed].set_index("iteration")["accuracy"]
            assert {m.step: m.value for m in history} == pytest.approx(per_seed.to_dict())


def test_params_and_summary_metrics(logged):
    summary = summarize(logged.result.curves, logged.result.reference).set_index("strategy")
    parent = logged.parent.data
    assert parent.params["batch_size"] == "5"
    assert parent.params["strategies"] == "margin,random"
    assert parent.metrics["reference.accuracy"] == pytest.approx(logged.result.reference["accuracy"].mean())
    for strategy, child in logged.children.items():
        params, metrics = child.data.params, child.data.metrics
        assert params["strategy"] == strategy
        assert (params["dataset"], params["batch_size"], params["iterations"]) == ("iris", "5", "3")
        assert (params["seeds"], params["model"]) == ("2", "logreg")
        assert metrics["aulc"] == pytest.approx(summary.loc[strategy, "aulc"])
        assert metrics["aulc_std"] == pytest.approx(summary.loc[strategy, "aulc_std"])
        assert parent.metrics[f"{strategy}.aulc"] == pytest.approx(summary.loc[strategy, "aulc"])
        budgets = [c for c in summary.columns if c.startswith("accuracy@")]
        assert budgets
        for column in budgets:
            name = column.replace("@", "_at_")
            assert metrics[name] == pytest.approx(summary.loc[strategy, column])
            assert parent.metrics[f"{strategy}.{name}"] == metrics[name]
        for column in ("labels_to_95%", "labels_to_99%"):
            reached = summary.loc[strategy, column]
            name = column.replace("%", "pct")
            if reached is None or np.isnan(reached):
                assert name not in metrics
            else:
                assert metrics[name] == reached
        assert not any("%" in n or "@" in n for n in [*metrics, *parent.metrics])


def test_final_models_are_registered_and_load_back(logged):
    X, _ = load_iris(return_X_y=True)
    for strategy, child in logged.children.items():
        name = f"alstream-iris-test-{strategy}"
        (version,) = logged.client.search_model_versions(f"name='{name}'")
        assert version.run_id == child.info.run_id
        loaded = mlflow.sklearn.load_model(f"models:/{name}/{version.version}")
        np.testing.assert_array_equal(loaded.predict(X), logged.models[strategy].predict(X))
        np.testing.assert_allclose(loaded.predict_proba(X), logged.models[strategy].predict_proba(X))
        # MLflow links the metrics of the model's round (the last) to the logged model
        model = logged.client.get_logged_model(version.source.removeprefix("models:/"))
        linked = {m.key: m for m in model.metrics}
        assert linked["accuracy.seed0"].step == ITERATIONS
        curves = logged.result.curves
        last = curves[(curves["strategy"] == strategy) & (curves["seed"] == 0)].iloc[-1]
        assert linked["accuracy.seed0"].value == pytest.approx(last["accuracy"])


def test_artifacts_land_beside_the_database(logged):
    parent = {a.path for a in logged.client.list_artifacts(logged.parent.info.run_id)}
    assert {"report.md", "curves.png", "curves.csv", "summary.csv"} <= parent
    for child in logged.children.values():
        assert "curves.png" in {a.path for a in logged.client.list_artifacts(child.info.run_id)}
    artifacts = logged.folder / "mlartifacts"
    assert logged.parent.info.artifact_uri.startswith(artifacts.resolve().as_uri())
    assert (artifacts / "alstream" / logged.parent.info.run_id / "artifacts" / "report.md").is_file()
    assert len(list(artifacts.rglob("model.skops"))) == len(STRATEGIES)
    assert not (logged.folder / "mlruns").exists()


def test_metrics_go_in_batches_never_one_call_per_value(logged):
    assert logged.single_metrics == []
    assert all(len(b.metrics) <= 1000 and len(b.params) <= 100 for b in logged.batches)
    # ours: one call for the parameters and one for the metrics, per run; MLflow's own: one per
    # logged model, linking the metrics of the model's round to it (they carry its model_id)
    ours = [b for b in logged.batches if not any(m.model_id for m in b.metrics)]
    assert sorted(b.run_id for b in ours) == sorted(2 * [r.info.run_id for r in logged.runs])
    assert len(logged.batches) - len(ours) == len(STRATEGIES)
    for child in logged.children.values():
        points = [m for b in ours if b.run_id == child.info.run_id for m in b.metrics]
        per_round = ("accuracy", "macro_f1", "log_loss", "n_labeled", "accuracy_std")
        seeds = tuple(f"accuracy.seed{s}" for s in range(SEEDS))
        for name in per_round + seeds:
            assert sorted(m.step for m in points if m.key == name) == list(range(ITERATIONS + 1))


def test_batches_are_split_at_mlflows_limits():
    calls = []

    class Client:
        def log_batch(self, run_id, metrics=(), params=()):
            calls.append((len(metrics), len(params)))

    metrics = [("m", float(i), i) for i in range(2500)]
    tracking._log_batch(Client(), "run", params={f"p{i}": i for i in range(150)}, metrics=metrics)
    assert calls == [(0, 100), (0, 50), (1000, 0), (1000, 0), (500, 0)]


def test_a_failure_ends_the_runs_as_failed(logged, monkeypatch):
    def broken(model, name, step):
        raise RuntimeError("disk full")

    monkeypatch.setattr(tracking, "_log_model", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        tracking.log_experiment(logged.result, logged.models, experiment_name="alstream-failing")
    assert mlflow.active_run() is None
    experiment = logged.client.get_experiment_by_name("alstream-failing")
    runs = logged.client.search_runs([experiment.experiment_id])
    assert len(runs) == 2  # the parent and the first child, where it broke
    assert {r.info.status for r in runs} == {"FAILED"}


def test_inside_a_callers_run_the_comparison_nests_under_it(logged):
    with mlflow.start_run(experiment_id=logged.parent.info.experiment_id, run_name="flow") as outer:
        parent_id = tracking.log_experiment(logged.result, {}, experiment_name="alstream-nested")
        assert mlflow.active_run().info.run_id == outer.info.run_id
    assert mlflow.active_run() is None
    parent = logged.client.get_run(parent_id)
    assert parent.data.tags["mlflow.parentRunId"] == outer.info.run_id
    experiment = logged.client.get_experiment_by_name("alstream-nested")
    children = logged.client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'"
    )
    assert sorted(r.info.run_name for r in children) == sorted(STRATEGIES)
    assert len(logged.client.search_model_versions("name='alstream-iris-test-margin'")) == 1  # no model


def test_bad_arguments_fail_before_any_run(logged):
    with pytest.raises(ValueError, match="entropy"):
        tracking.log_experiment(logged.result, {"entropy": object()}, experiment_name="alstream-bad")
    with pytest.raises(FileNotFoundError):
        tracking.log_experiment(logged.result, {}, plot=Path("missing.png"), experiment_name="alstream-bad")
    assert logged.client.get_experiment_by_name("alstream-bad") is None


def test_tracking_uri_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert tracking.tracking_uri() == "http://tracking.example:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.chdir(tmp_path)
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path.resolve().as_posix()}/mlflow.db"
    assert tracking.tracking_uri() == tracking.DEFAULT_TRACKING_URI
    assert tracking._artifact_location(tracking.tracking_uri(), "my runs") == (
        (tmp_path / "mlartifacts" / "my-runs").resolve().as_uri()
    )
    assert tracking._artifact_location("http://tracking.example:5000", "alstream") is None


def test_configure_sets_mlflows_uri(logged):
    uri = os.environ["MLFLOW_TRACKING_URI"]
    assert tracking.configure() == uri == mlflow.get_tracking_uri()


def test_importing_alstream_does_not_import_mlflow():
    code = "import sys, alstream, alstream.tracking; print('mlflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_an_unreachable_tracking_server_is_named_at_once(monkeypatch, free_port):
    uri = f"http://127.0.0.1:{free_port}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(ConnectionError, match=f"no MLflow tracking server answers at {uri}.*--no-mlflow"):
        tracking.check_reachable(timeout_s=2.0)


def test_a_server_that_answers_and_local_stores_pass(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        tracking.check_reachable(f"http://127.0.0.1:{server.server_port}")  # answers 501: it is there
    finally:
        server.shutdown()
    tracking.check_reachable(f"sqlite:///{tmp_path}/mlflow.db")
    tracking.check_reachable(tmp_path.as_uri())
