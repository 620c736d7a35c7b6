"""Model versions."""

from __future__ import annotations

from alstream.store import Store


def test_versions_count_up_and_latest_ignores_failures(store: Store) -> None:
    assert store.latest_model() is None
    v1 = store.record_model(kind="logreg", n_labels=10, metrics={"accuracy": 0.8}, status="ok", path="m/1")
    v2 = store.record_model(
        kind="logreg", n_labels=20, metrics={"accuracy": 0.85}, status="ok", mlflow_run_id="r2"
    )
    v3 = store.record_model(kind="logreg", n_labels=30, metrics={}, status="failed", error="diverged")
    assert (v1, v2, v3) == (1, 2, 3)
    latest = store.latest_model()
    assert latest is not None
    assert (latest["version"], latest["n_labels"], latest["metrics"], latest["mlflow_run_id"]) == (
        2,
        20,
        {"accuracy": 0.85},
        "r2",
    )
    assert store.latest_model(status="failed")["error"] == "diverged"
    assert store.latest_model(status=None)["version"] == 3
    assert [m["version"] for m in store.models()] == [1, 2, 3]
    assert store.models()[0]["path"] == "m/1"
    assert all(m["created_at"].tzinfo is not None for m in store.models())


def test_the_mlflow_run_is_attached_after_the_version_is_recorded(store: Store) -> None:
    v1 = store.record_model(kind="online", n_labels=10, metrics={}, status="ok")
    v2 = store.record_model(kind="full", n_labels=20, metrics={}, status="ok")
    assert [m["mlflow_run_id"] for m in store.models()] == [None, None]
    store.set_mlflow_run(v2, "run-2")
    assert [(m["version"], m["mlflow_run_id"]) for m in store.models()] == [(v1, None), (v2, "run-2")]
