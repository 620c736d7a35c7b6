import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from alstream.messages import ProjectSchema
from alstream.settings import Settings, SettingsError


@pytest.fixture(autouse=True)
def clean_env(tmp_path, monkeypatch):
    """No ALSTREAM_* variable from the outside, and a working directory without alstream.toml."""
    for name in list(os.environ):
        if name.startswith("ALSTREAM_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults():
    s = Settings()
    assert s.project_file is None
    assert s.kafka_bootstrap is None
    assert s.database_url == "sqlite:///.alstream/alstream.db"
    assert s.data_dir == Path(".alstream")
    assert (s.samples_topic, s.labels_topic, s.dead_letter_topic) == (
        "alstream.samples",
        "alstream.labels",
        "alstream.dead-letter",
    )
    assert (s.consumer_group, s.host, s.port) == ("alstream", "127.0.0.1", 8000)
    assert s.project == ProjectSchema.digits() and s.project.n_features == 64
    assert s.project.feature_names[9] == "pixel_1_1"
    assert (s.strategy, s.model) == ("margin", "sgd")
    assert (s.retrain_after_labels, s.retrain_interval_s, s.online_updates, s.full_retrain_every) == (
        20,
        30.0,
        True,
        5,
    )
    assert (s.random_share, s.lease_s, s.min_labels_per_class, s.demo) == (0.1, 300.0, 2, True)


def test_every_field_is_described():
    assert all(field.description for field in Settings.model_fields.values())
    assert all(field.description for field in ProjectSchema.model_fields.values())


def test_env_override(monkeypatch):
    monkeypatch.setenv("ALSTREAM_KAFKA_BOOTSTRAP", "broker:9092")
    monkeypatch.setenv("ALSTREAM_DATABASE_URL", "postgresql://u@db/alstream")
    monkeypatch.setenv("ALSTREAM_PORT", "9000")
    monkeypatch.setenv("ALSTREAM_ONLINE_UPDATES", "false")
    monkeypatch.setenv("ALSTREAM_PROJECT__MAX_BATCH", "500")
    s = Settings()
    assert s.kafka_bootstrap == "broker:9092" and s.database_url.startswith("postgresql://")
    assert s.port == 9000 and s.online_updates is False
    assert s.project.max_batch == 500 and s.project.n_features == 64


def test_env_project_as_json(monkeypatch):
    monkeypatch.setenv("ALSTREAM_PROJECT", '{"classes": ["a", "b"], "data": "text"}')
    monkeypatch.setenv("ALSTREAM_DEMO", "false")
    assert Settings().project.data == "text"


def test_empty_kafka_bootstrap_means_embedded(monkeypatch):
    monkeypatch.setenv("ALSTREAM_KAFKA_BOOTSTRAP", "")
    assert Settings().kafka_bootstrap is None


PROJECT_TOML = """
port = 9100
strategy = "least-confident"
model = "logreg"
demo = false
data_dir = "/var/lib/alstream"

[project]
classes = ["cat", "dog"]
feature_names = ["w", "h"]
max_batch = 50
"""


def test_toml_in_working_directory(clean_env):
    path = write(clean_env / "alstream.toml", PROJECT_TOML)
    s = Settings()
    assert s.project_file == path
    assert s.port == 9100 and s.strategy == "least_confident" and s.model == "logreg"
    assert s.data_dir == Path("/var/lib/alstream")
    assert s.project.classes == ["cat", "dog"] and s.project.n_features == 2 and s.project.max_batch == 50


def test_toml_from_load_and_from_env(clean_env, monkeypatch):
    path = write(clean_env / "elsewhere.toml", PROJECT_TOML)
    assert Settings.load(path).port == 9100
    assert Settings.load(path).project_file == path
    monkeypatch.setenv("ALSTREAM_PROJECT_FILE", str(path))
    s = Settings()
    assert s.port == 9100 and s.project_file == path


def test_load_path_beats_env_file_and_cwd_file(clean_env, monkeypatch):
    write(clean_env / "alstream.toml", "port = 1111\n")
    monkeypatch.setenv("ALSTREAM_PROJECT_FILE", str(write(clean_env / "env.toml", "port = 2222\n")))
    assert Settings().port == 2222  # the named file, not ./alstream.toml
    assert Settings.load(write(clean_env / "arg.toml", "port = 3333\n")).port == 3333


def test_env_beats_file_and_file_beats_defaults(clean_env, monkeypatch):
    write(clean_env / "alstream.toml", PROJECT_TOML)
    monkeypatch.setenv("ALSTREAM_PORT", "9200")
    monkeypatch.setenv("ALSTREAM_PROJECT__MAX_BATCH", "7")
    s = Settings()
    assert s.port == 9200  # env
    assert s.project.max_batch == 7 and s.project.classes == [
        "cat",
        "dog",
    ]  # env merged into the file's table
    assert s.model == "logreg"  # file
    assert s.lease_s == 300.0  # default
    assert Settings.load(None, port=9300).port == 9300  # arguments beat everything


@pytest.mark.parametrize(
    ("kwargs", "field", "needle"),
    [
        ({"port": 0}, "port", "greater than or equal to 1"),
        ({"port": 70000}, "port", "less than or equal to 65535"),
        ({"random_share": 1.5}, "random_share", "less than or equal to 1"),
        ({"random_share": -0.1}, "random_share", "greater than or equal to 0"),
        ({"lease_s": 0}, "lease_s", "greater than 0"),
        ({"retrain_interval_s": float("inf")}, "retrain_interval_s", "finite"),
        ({"retrain_after_labels": 0}, "retrain_after_labels", "greater than or equal to 1"),
        ({"full_retrain_every": 0}, "full_retrain_every", "greater than or equal to 1"),
        ({"min_labels_per_class": 0}, "min_labels_per_class", "greater than or equal to 1"),
        ({"text_features": 8}, "text_features", "greater than or equal to 16"),
        ({"text_features": 2**17}, "text_features", "less than or equal to 65536"),
        ({"strategy": "bald"}, "strategy", "unknown strategy 'bald': choose one of entropy"),
        ({"model": "svm"}, "model", "unknown model 'svm': choose one of logreg"),
        ({"samples_topic": "bad topic!"}, "samples_topic", "invalid Kafka topic name"),
        ({"database_url": "alstream.db"}, "database_url", "expected a URL"),
        ({"log_level": "LOUD"}, "log_level", "unknown log level"),
        ({"consumer_group": " "}, "consumer_group", "must not be empty"),
        ({"image_origins": ["cdn.example.org"]}, "image_origins", "'cdn.example.org' is not an origin"),
        ({"image_origins": ["https://cdn.example.org/img"]}, "image_origins", "with no path"),
        ({"image_origins": ["https://x.org; script-src *"]}, "image_origins", "is not an origin"),
        ({"image_origins": ["ftp://x.org"]}, "image_origins", "expected http(s)://host[:port]"),
        ({"image_origins": ["https://x.org:70000"]}, "image_origins", "is not an origin"),
        ({"orchestrator": "airflow"}, "orchestrator", "Input should be 'prefect' or 'none'"),
        ({"colour": "red"}, "colour", "Extra inputs"),
        ({"project": {"classes": ["a"]}, "demo": False}, "project.classes", "at least 2 classes"),
    ],
)
def test_bad_values_name_the_field(kwargs, field, needle):
    with pytest.raises(ValidationError) as info:
        Settings(**kwargs)
    [error] = info.value.errors()
    assert ".".join(map(str, error["loc"])) == field
    assert needle in error["msg"]


def test_together_checks():
    with pytest.raises(ValidationError, match="must differ"):
        Settings(labels_topic="alstream.samples")
    with pytest.raises(ValidationError, match="demo = true seeds the digits demo"):
        Settings(project={"classes": ["a", "b"], "n_features": 2})
    assert Settings(project={"classes": ["a", "b"], "n_features": 2}, demo=False).demo is False
    assert Settings(project={"classes": list("0123456789"), "n_features": 64, "max_batch": 10}).demo


def test_image_origins_are_kept_as_browsers_write_origins(monkeypatch):
    monkeypatch.setenv(
        "ALSTREAM_IMAGE_ORIGINS", '["https://CDN.Example.org/", "https://x.org:443", "http://[::1]:81"]'
    )
    assert Settings().image_origins == ["https://cdn.example.org", "https://x.org", "http://[::1]:81"]
    assert Settings.model_fields["image_origins"].get_default(call_default_factory=True) == []


def test_strategy_and_model_aliases():
    s = Settings(strategy=" Least-Confident ", model="random-forest")
    assert (s.strategy, s.model) == ("least_confident", "random_forest")


def test_file_errors_are_clear(clean_env):
    bad = write(
        clean_env / "bad.toml",
        'prot = 9001\nrandom_share = 2\nstrategy = "bald"\n[project]\nclasses = ["a"]\n',
    )
    with pytest.raises(SettingsError) as info:
        Settings.load(bad)
    message = str(info.value)
    assert "bad.toml" in message
    assert "  prot: unknown setting" in message
    assert "  random_share: Input should be less than or equal to 1 (got 2)" in message
    assert "  strategy: unknown strategy 'bald'" in message
    assert "  project.classes: need at least 2 classes, got 1" in message


def test_mlflow_and_the_orchestrator_are_two_switches(clean_env, monkeypatch):
    assert (Settings().mlflow, Settings().orchestrator) == (True, "prefect")
    monkeypatch.setenv("ALSTREAM_ORCHESTRATOR", "none")
    s = Settings.load(write(clean_env / "alstream.toml", "mlflow = false\n"))
    assert (s.mlflow, s.orchestrator) == (False, "none")
    with pytest.raises(SettingsError) as info:  # the one switch of an older alstream's create_app
        Settings.load(write(clean_env / "old.toml", "track = false\n"))
    assert (
        "  track: unknown setting: MLflow and the orchestrator are two settings, mlflow = true/false and "
        "orchestrator = 'prefect'/'none'" in str(info.value)
    )


def test_missing_and_malformed_files(clean_env, monkeypatch):
    with pytest.raises(SettingsError, match=r"project file .*nope\.toml' not found"):
        Settings.load(clean_env / "nope.toml")
    with pytest.raises(SettingsError, match="not valid TOML"):
        Settings.load(write(clean_env / "broken.toml", "port = \n"))
    monkeypatch.setenv("ALSTREAM_PROJECT_FILE", str(clean_env / "gone.toml"))
    with pytest.raises(SettingsError, match=r"gone\.toml' not found"):
        Settings()


def test_env_errors_are_clear(monkeypatch):
    monkeypatch.setenv("ALSTREAM_PORT", "eighty")
    with pytest.raises(SettingsError, match=r"port: Input should be a valid integer.*'eighty'"):
        Settings.load()


def test_the_stream_settings_say_what_is_wrong(monkeypatch):
    settings = Settings(selector=" Variable-Uncertainty ", label_budget=120)
    assert (settings.selector, settings.label_budget, settings.retention_s) == (
        "variable_uncertainty",
        120.0,
        604800.0,
    )
    monkeypatch.setenv("ALSTREAM_RETENTION_S", "forever")
    assert Settings().retention_s is None and Settings().label_budget == "auto"
    embedded = Settings()
    assert (embedded.log_segment_bytes, embedded.log_retention_s, embedded.log_retention_bytes) == (
        64 * 1024 * 1024,
        60.0,
        None,
    )
    monkeypatch.setenv("ALSTREAM_LOG_RETENTION_S", "forever")
    monkeypatch.setenv("ALSTREAM_LOG_RETENTION_BYTES", str(10**9))
    assert (Settings().log_retention_s, Settings().log_retention_bytes) == (None, 10**9)
    refused = [
        ({"selector": "best"}, "unknown selective strategy"),
        ({"label_budget": 0}, "above 0"),
        ({"max_pool": 3}, "greater than or equal to 10"),
        ({"reservoir_share": 1.0}, "less than 1"),
        ({"log_segment_bytes": 100}, "greater than or equal to 4096"),
        ({"log_retention_s": -1}, "greater than or equal to 0"),
    ]
    for bad, why in refused:
        with pytest.raises(ValidationError, match=why):
            Settings(**bad)
