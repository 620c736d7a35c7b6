"""Training that fails (labels of one class only, a diverging model, an estimator error) leaves the
previous version serving the queue and /predict, and says why in /stats, /models and the log."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression, SGDClassifier

from alstream.learning import estimators

from .conftest import demo_service, service_settings, wait_for

DIGITS_X, DIGITS_Y = load_digits(return_X_y=True)
DEMO_LABELS = 30  # the demo's first version is trained on these


class OutOfMemory(LogisticRegression):
    """A test-only estimator: trains on the demo's labels, runs out of memory on more."""

    def fit(self, X, y, sample_weight=None):
        if len(y) > DEMO_LABELS:
            raise MemoryError("out of memory")
        return super().fit(X, y, sample_weight)


class Overflowing(SGDClassifier):
    """A test-only estimator: SGD that sees its online updates' features a 10^300 times larger, so that
    its weights overflow for real (features the service accepts, within float32, no longer do)."""

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        return super().partial_fit(np.asarray(X) * 1e300, y, classes=classes, sample_weight=sample_weight)


class SilentlyDiverging(LogisticRegression):
    """A test-only estimator: trains on the demo's labels; on more, ends with coefficients that are not
    finite, and says nothing."""

    def fit(self, X, y, sample_weight=None):
        super().fit(X, y, sample_weight)
        if len(y) > DEMO_LABELS:
            self.coef_[:] = np.nan
        return self


@pytest.fixture
def service(request, tmp_path, monkeypatch, caplog) -> Callable:
    """``service(model=...)``: the demo service on the embedded log, first version serving."""
    monkeypatch.setitem(estimators.MODELS, "out_of_memory", lambda seed: OutOfMemory())
    monkeypatch.setitem(estimators.MODELS, "silently_diverging", lambda seed: SilentlyDiverging())
    monkeypatch.setitem(
        estimators.MODELS,
        "overflowing",
        lambda seed: Overflowing(loss="log_loss", alpha=1e-3, random_state=seed),
    )
    caplog.set_level(logging.ERROR, logger="alstream.service")

    @contextmanager
    def start(**overrides) -> Iterator[TestClient]:
        with demo_service(service_settings(tmp_path, "embedded", request, **overrides)) as client:
            yield client

    return start


def label_from_queue(client: TestClient, n: int) -> None:
    items = client.get("/queue", params={"n": n, "annotator": "oracle"}).json()
    labels = [{"id": i["id"], "label": str(DIGITS_Y[int(i["id"].split("-")[1])])} for i in items]
    assert client.post("/labels", json=labels).status_code == 202


def failed_versions(client: TestClient, n: int = 1) -> list[dict]:
    """The failed versions in /models, once there are ``n``."""
    wait_for(lambda: client.get("/stats").json()["training_failures"] >= n, what="a failed training")
    wait_for(
        lambda: sum(m["status"] == "failed" for m in client.get("/models").json()) >= n,
        what="the failure in /models",
    )
    return [m for m in client.get("/models").json() if m["status"] == "failed"]


def assert_serving(client: TestClient, version: int) -> None:
    assert client.get("/health").json()["model_version"] == version
    assert client.get("/stats").json()["model_version"] == version
    predicted = client.post("/predict", json={"features": DIGITS_X[:5].tolist()}).json()
    assert predicted["model_version"] == version and len(predicted["predicted"]) == 5
    items = client.get("/queue", params={"n": 5, "annotator": "checker"}).json()
    assert len(items) == 5 and {i["model_version"] for i in items} == {version}
    assert all(np.isfinite(list(i["probabilities"].values())).all() for i in items)


def test_an_estimator_error_keeps_the_previous_version_and_says_why(service, caplog):
    with service(model="out_of_memory") as client:
        first = client.get("/health").json()["model_version"]
        label_from_queue(client, 10)  # the retrain threshold
        [failed] = failed_versions(client)
        stats = client.get("/stats").json()
        reason = f"version {first + 1} (full) failed: MemoryError: out of memory"
        assert stats["last_training_error"] == failed["error"] == reason
        assert failed["version"] == first + 1 and stats["training_failures"] == 1
        assert "full training failed; the previous model keeps serving" in caplog.text
        assert "MemoryError: out of memory" in caplog.text
        assert_serving(client, first)
        assert client.app.state.runtime.engine.train_step() is None  # no retry until a new label
        label_from_queue(client, 1)
        failed_versions(client, 2)  # a new label: tried again
        assert_serving(client, first)


def test_features_near_float32_limit_train_without_overflow(service):
    """Standardizing runs in float64: samples at the edge of float32 train a version like any other."""
    with service() as client:  # SGD, updated online between full refits
        first = client.get("/health").json()["model_version"]
        huge = [
            {"id": f"huge-{c}", "features": [(-1) ** i * 3.4e38 for i in range(64)], "label": str(c)}
            for c in range(3)
        ]
        assert client.post("/send", json=huge).status_code == 202
        wait_for(lambda: client.get("/health").json()["model_version"] > first, what="a version with them")
        assert client.get("/stats").json()["training_failures"] == 0
        predicted = client.post("/predict", json={"features": [huge[0]["features"]]})
        assert predicted.status_code == 200 and np.isfinite(predicted.json()["probabilities"]).all()


def test_a_model_that_diverges_in_sgd_keeps_the_previous_version(service, caplog):
    with service(model="overflowing") as client:  # SGD, updated online between full refits
        first = client.get("/health").json()["model_version"]
        label_from_queue(client, 3)
        failed = failed_versions(client)
        assert "(online) failed: ValueError: Floating-point under-/overflow" in failed[0]["error"]
        assert "Floating-point under-/overflow" in client.get("/stats").json()["last_training_error"]
        assert "online update failed; the previous model keeps serving" in caplog.text
        assert_serving(client, first)


def test_a_model_with_probabilities_that_are_not_finite_is_refused(service):
    with service(model="silently_diverging") as client:
        first = client.get("/health").json()["model_version"]
        label_from_queue(client, 10)
        [failed] = failed_versions(client)
        assert failed["error"] == (
            f"version {first + 1} (full) failed: FloatingPointError: the model diverged: "
            "its probabilities on the training data are not finite"
        )
        assert_serving(client, first)


def test_labels_of_one_class_only_are_refused(service):
    """The cold-start rule keeps label sets missing a class from training at all; the trainer refuses
    them anyway, since a random forest would learn to answer one class without complaint."""
    with service(model="random_forest") as client:
        first = client.get("/health").json()["model_version"]
        engine = client.app.state.runtime.engine
        X, y = engine.training_data()
        assert engine.fit_full(X[y == "3"], y[y == "3"]) is None  # what the retrain flow's "train" does
        [failed] = failed_versions(client)
        assert failed["error"] == (
            f"version {first + 1} (full) failed: ValueError: every label is '3': "
            "a model needs labels of at least two classes"
        )
        assert client.get("/stats").json()["last_training_error"] == failed["error"]
        assert_serving(client, first)
