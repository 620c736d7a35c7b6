import json
import subprocess
import sys

import mlflow  # noqa: F401
from prefect.settings import PREFECT_API_URL, temporary_settings
from typer.testing import CliRunner

# MLflow (imported above) and Prefect attach log handlers to sys.stderr when first imported: import
# them here, not inside CliRunner, whose captured stream is closed after each invocation.
import alstream.flows.active_learning_flow
import alstream.flows.prefect_server
from alstream.cli import app
from alstream.learning.querying import query_strategy_names

runner = CliRunner()
SMALL = ["--dataset", "iris", "--iterations", "2", "--batch-size", "5", "--seeds", "2", "--workers", "1"]


def test_experiment_compares_a_strategy_with_continuous_training(prefect_backend, local_mlflow):
    result = runner.invoke(app, ["experiment", *SMALL, "--strategy", "margin", "--name", "cli-check"])
    assert result.exit_code == 0, result.output
    assert "margin" in result.output and "random" in result.output and "AULC" in result.output
    rows = json.loads((local_mlflow / "metrics" / "cli-check-margin.json").read_text())
    assert len(rows) == 2 * 3 and {r["seed"] for r in rows} == {0, 1}
    assert (local_mlflow / "reports" / "cli-check.png").exists()
    assert (local_mlflow / "mlflow.db").exists()
    assert "MLflow run" in result.output


def test_two_workers_run_on_a_local_cluster_started_while_the_server_boots(
    prefect_backend, local_mlflow, monkeypatch
):
    flow_run, given = alstream.flows.active_learning_flow.run_flow, {}

    def run_flow(*args, **kwargs):
        given.update(kwargs)
        return flow_run(*args, **kwargs)

    monkeypatch.setattr(alstream.flows.active_learning_flow, "run_flow", run_flow)
    args = ["--dataset", "iris", "--iterations", "2", "--batch-size", "5", "--seeds", "2", "--workers", "2"]
    result = runner.invoke(app, ["experiment", *args, "--strategy", "typical"])
    assert result.exit_code == 0, result.output
    assert given["address"].startswith("tcp://127.0.0.1:")  # the cluster the command started, warm
    for strategy in ("typical", "random"):
        rows = json.loads((local_mlflow / "metrics" / f"iris-logreg-{strategy}.json").read_text())
        assert len(rows) == 2 * 3 and {r["seed"] for r in rows} == {0, 1}
    assert "MLflow run" in result.output


def test_all_strategies_without_baseline_or_mlflow(prefect_backend, local_mlflow):
    args = [
        "experiment",
        *SMALL,
        "--strategy",
        "all",
        "--no-baseline",
        "--no-mlflow",
        "--model",
        "sgd",
        "--online",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    runs = sorted(p.stem for p in (local_mlflow / "metrics").glob("*.csv"))
    assert runs == sorted(f"iris-sgd-{s}" for s in query_strategy_names())  # every registered strategy
    assert not (local_mlflow / "mlflow.db").exists()


def test_bad_options_are_refused_before_anything_runs(local_mlflow):
    for args, message in [
        (["--strategy", "nope"], "unknown strategy 'nope'"),
        (["--dataset", "mnist"], "unknown dataset 'mnist'"),
        (["--dataset", "missing.csv"], "no such data file"),
        (["--model", "svm"], "unknown model 'svm'"),
        (["--initial-fraction", "1.5"], "initial_fraction"),
        (["--online"], "'logreg' has no partial_fit"),
        (["--batch-size", "1.5"], "batch_size must be a count or a share of the pool"),
        (["--initial-set", "best"], "unknown initial set 'best'"),
        (["--orchestrator", "airflow"], "unknown orchestrator 'airflow'"),
    ]:
        result = runner.invoke(app, ["experiment", *args])
        assert result.exit_code == 2, (args, result.output)
        assert message in " ".join(result.output.split()), result.output
    assert not (local_mlflow / "models").exists()


def test_tokens_are_made_listed_and_revoked(tmp_path, monkeypatch):
    from alstream.auth import hash_token, token_key
    from alstream.store import Store

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALSTREAM_DATABASE_URL", f"sqlite:///{tmp_path}/alstream.db")
    made = runner.invoke(app, ["token", "create", "--role", "annotator", "--name", "ann"])
    assert made.exit_code == 0, made.output
    token = next(word for word in made.output.split() if word.startswith("als_"))
    key = token_key(token)
    store = Store(f"sqlite:///{tmp_path}/alstream.db")
    assert store.tokens.find(key)["digest"] == hash_token(token)
    listed = runner.invoke(app, ["token", "list"])
    assert key in listed.output and "annotator" in listed.output and token not in listed.output
    assert runner.invoke(app, ["token", "revoke", key]).exit_code == 0
    assert store.tokens.find(key) is None
    assert runner.invoke(app, ["token", "revoke", key]).exit_code == 1
    refused = runner.invoke(app, ["token", "create", "--role", "boss"])
    assert refused.exit_code == 2 and "unknown role 'boss'" in refused.output
    store.close()


def test_an_unreachable_tracking_server_stops_the_run_before_it_starts(local_mlflow, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # the discard port: nobody answers
    result = runner.invoke(app, ["experiment", *SMALL])
    assert result.exit_code == 2, result.output
    assert "no MLflow tracking server answers at http://127.0.0.1:9" in " ".join(result.output.split())
    assert not (local_mlflow / "models").exists()


def test_a_token_may_label_as_the_names_given_and_the_last_admin_token_stays(tmp_path, monkeypatch):
    from alstream.auth import token_key
    from alstream.store import Store

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALSTREAM_DATABASE_URL", f"sqlite:///{tmp_path}/alstream.db")
    monkeypatch.delenv("ALSTREAM_ADMIN_TOKEN", raising=False)

    def create(*args: str) -> str:
        made = runner.invoke(app, ["token", "create", *args])
        assert made.exit_code == 0, made.output
        return token_key(next(word for word in made.output.split() if word.startswith("als_")))

    desk = create("--role", "annotator", "--name", "desk", "--annotator", "ann", "--annotator", "bob")
    store = Store(f"sqlite:///{tmp_path}/alstream.db")
    assert store.tokens.find(desk)["annotators"] == ["desk", "ann", "bob"]
    assert "desk, ann, bob" in " ".join(runner.invoke(app, ["token", "list"]).output.split())
    admin = create("--role", "admin", "--name", "root")
    refused = runner.invoke(app, ["token", "revoke", admin])
    assert refused.exit_code == 1 and "last admin token" in " ".join(refused.output.split())
    assert store.tokens.find(admin) is not None
    other = create("--role", "admin", "--name", "other")
    assert runner.invoke(app, ["token", "revoke", admin]).exit_code == 0
    monkeypatch.setenv("ALSTREAM_ADMIN_TOKEN", "a-configured-admin-token-0123")
    assert runner.invoke(app, ["token", "revoke", other]).exit_code == 0  # the configured one remains
    store.close()


def test_consume_says_what_stops_it_before_it_starts(tmp_path, monkeypatch):
    from alstream.settings import Settings
    from alstream.stream.log import EmbeddedLog

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALSTREAM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ALSTREAM_DATABASE_URL", f"sqlite:///{tmp_path}/alstream.db")
    missing = runner.invoke(app, ["consume", "--project", "nope.toml"])
    assert missing.exit_code == 2 and "nope.toml' not found" in missing.output, missing.output
    settings = Settings()
    log = EmbeddedLog(tmp_path / "data" / "log")
    held = log.consumer(settings.consumer_group, [settings.samples_topic])  # as `alstream serve`'s would
    try:
        busy = runner.invoke(app, ["consume"])
    finally:
        held.close()
        log.close()
    said = " ".join(busy.output.split())
    assert busy.exit_code == 2 and "already has a consumer" in said and "--no-consumer" in said, said


def test_without_prefect_the_experiment_asks_for_no_server(local_mlflow, monkeypatch):
    def no_server(*_):
        raise AssertionError("--orchestrator none asked for a Prefect server")

    monkeypatch.setattr(alstream.flows.prefect_server, "prefect_api", no_server)
    args = ["--dataset", "iris", "--iterations", "2", "--seeds", "2", "--workers", "1", "--no-mlflow"]
    options = ["--orchestrator", "none", "--batch-size", "0.1", "--initial-set", "typical"]
    result = runner.invoke(app, ["experiment", *args, *options, "--strategy", "margin"])
    assert result.exit_code == 0, result.output
    rows = json.loads((local_mlflow / "metrics" / "iris-logreg-margin.json").read_text())
    # a pool of 112 (iris less a 25% test split): 11 typical rows first, then 10% of it a round
    assert sorted({r["n_labeled"] for r in rows}) == [11, 22, 33] and len(rows) == 2 * 3
    assert sorted(p.name for p in (local_mlflow / "models" / "iris-logreg-margin" / "seed0").iterdir()) == [
        "iter_2.joblib"  # the last round's model only, by default
    ]


def test_a_prefect_server_that_does_not_answer_is_named_in_one_line(local_mlflow):
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        result = runner.invoke(app, ["experiment", *SMALL, "--no-mlflow"])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        "error: no Prefect server answers at http://127.0.0.1:9/api: start it, unset PREFECT_API_URL for a "
        "temporary one, or run without Prefect: --orchestrator none"
    ]
    assert not (local_mlflow / "metrics").exists()


def test_a_temporary_server_that_cannot_start_says_why_and_what_to_do_in_one_line(local_mlflow, monkeypatch):
    failing = [sys.executable, "-c", "import sys; sys.exit('unable to open database file')"]
    monkeypatch.setattr(alstream.flows.prefect_server, "server_command", lambda port: failing)
    monkeypatch.setattr(alstream.flows.prefect_server, "_SERVER", None)
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        result = runner.invoke(app, ["experiment", *SMALL, "--no-mlflow"])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        "error: Prefect's temporary server did not start (unable to open database file): start one with "
        "`make prefect-server` and set PREFECT_API_URL, or run without Prefect: --orchestrator none"
    ]


def _data_it_cannot_use(folder) -> list[tuple[list[str], str]]:
    """Options naming data an experiment cannot run on, each with what the error says."""
    (folder / "small.csv").write_text("a,label\n" + "".join(f"{i},{'xy'[i % 2]}\n" for i in range(4)))
    (folder / "garbled.csv").write_bytes(b"a,label\n\xff\xfe,x\n")
    stream = ["--protocol", "stream", "--dataset", "drift", "--n-samples", "40"]
    return [
        (["--dataset", str(folder / "small.csv")], "every class needs at least 3 samples"),
        (["--dataset", str(folder / "garbled.csv")], "garbled.csv cannot be read"),
        (["--dataset", "generated", "--n-classes", "50", "--n-features", "3"], "generated data: n_classes"),
        ([*stream, "--no-skactiveml"], "a stream of 40 arrivals is too short"),
        ([*stream, "--drifts", "30"], "40 samples cannot make 31 blocks"),
    ]


def test_data_a_run_cannot_use_is_named_and_exits_2(local_mlflow):
    quick = ["--seeds", "1", "--workers", "1", "--no-mlflow", "--orchestrator", "none"]
    for args, message in _data_it_cannot_use(local_mlflow):
        result = runner.invoke(app, ["experiment", *args, *quick])
        assert result.exit_code == 2, (args, result.output)
        assert f"error: {message}" in " ".join(result.output.split()), result.output


def test_data_a_prefect_run_cannot_use_is_named_and_exits_2(prefect_backend, local_mlflow):
    args, message = _data_it_cannot_use(local_mlflow)[0]
    result = runner.invoke(app, ["experiment", *args, "--seeds", "1", "--workers", "1", "--no-mlflow"])
    assert result.exit_code == 2, result.output
    assert f"error: {message}" in " ".join(result.output.split()), result.output


def test_send_refuses_a_file_it_cannot_read_before_it_connects(tmp_path):
    (tmp_path / "garbled.csv").write_bytes(b"a,label\n\xff\xfe,x\n")
    (tmp_path / "data.txt").write_text("a,label\n1,x\n")
    for name, message in [("garbled.csv", "cannot be read"), ("data.txt", "send a .csv or .jsonl")]:
        result = runner.invoke(app, ["send", str(tmp_path / name), "--url", "http://127.0.0.1:9"])
        assert result.exit_code == 2 and message in result.output, result.output


def test_importing_the_command_line_loads_no_command_s_libraries():
    """Each command imports what it needs: none of them waits for scikit-learn, pandas, Prefect or
    MLflow, nor for the experiment's or the service's modules, before it starts."""
    heavy = ("sklearn", "scipy", "pandas", "prefect", "mlflow", "fastapi", "sqlalchemy")
    heavy += ("alstream.experiment", "alstream.service")
    code = f"import sys, alstream.cli; print([m for m in sys.modules if m.startswith({heavy!r})])"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]", loaded.stderr


def test_the_experiments_help_names_every_model_and_strategy():
    from alstream.experiment.config import INITIAL_SETS
    from alstream.learning.estimators import MODELS
    from alstream.learning.selective import SELECTORS

    result = runner.invoke(app, ["experiment", "--help"], env={"COLUMNS": "1000"})
    assert result.exit_code == 0, result.output
    assert "{" not in result.output  # every name filled in
    for name in [*MODELS, *query_strategy_names(), *SELECTORS, *INITIAL_SETS]:
        assert name in result.output, name
