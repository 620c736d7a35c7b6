"""The response models are the shapes sent: a full service's ``/stats`` and a replica's go through
them with every key and value as the engine made them, and ``/predict``'s orjson answer is
``PredictOut``'s JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from pydantic import ValidationError
from sklearn.datasets import make_classification

from alstream.service.engine import Engine, EngineConfig
from alstream.service.featurize import StoredFeatures
from alstream.service.ingest import IngestCounts
from alstream.service.model_files import ModelFiles
from alstream.service.routes.models import PredictOut
from alstream.service.routes.stats import EngineStats, ReplicaStats, stats_out
from alstream.service.shard_totals import shard_report
from alstream.service.shared_queue import SharedQueue
from alstream.service.trainer import RetrainPolicy
from alstream.store import LabelRow, SampleRow, Store

CLASSES = ["a", "b", "c"]
BEFORE_A_MODEL = {"signal": "scores", "at": 1.5, "estimate": 0.25}  # as Drift records them
WITH_A_MODEL = {"signal": "accuracy", "at": 2.5, "estimate": 0.75, "model_version": 1, "n_labels": 60}


def typed(value: Any) -> Any:
    """``value`` (JSON) with each scalar's type: 1 and 1.0, or 0 and False, are told apart."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    return type(value).__name__, value


def sent(model: EngineStats | ReplicaStats) -> Any:
    """The JSON the route sends of ``model`` (it serialises with exclude_unset)."""
    return typed(json.loads(model.model_dump_json(exclude_unset=True)))


def made(stats: dict[str, Any], ingest: dict[str, Any] | None) -> Any:
    """The JSON of the engine's numbers themselves, as the route sent them before the models."""
    return typed(orjson.loads(orjson.dumps({**stats, "ingest": ingest})))


def test_a_full_services_stats_keep_every_key_and_value(tmp_path: Path) -> None:
    X, y = make_classification(400, n_features=6, n_informative=4, n_classes=3, random_state=3)
    X = X.astype(np.float32)
    store = Store(f"sqlite:///{tmp_path}/store.db")
    store.create()
    config = EngineConfig(
        classes=CLASSES,
        n_features=6,
        track=False,
        strategy="cluster_margin",  # every optional part present: clusters, selective, retention
        selector="variable_uncertainty",
        labels_per_hour=100.0,
        retention_s=3600.0,
        policy=RetrainPolicy(after_labels=10, min_per_class=2),
    )
    engine = Engine(config, store, holdout=(X[300:], np.array(CLASSES)[y[300:]]))
    try:
        store.add_samples([SampleRow(f"s{i}", X[i], None, None) for i in range(300)])
        store.add_labels([LabelRow(f"s{i}", CLASSES[y[i]], "ann", False, "labels:0", i) for i in range(60)])
        engine.sync()
        assert engine.train_step() is not None
        engine.sync()
        assert len(engine.queue(5, annotator="ann")) == 5
        stats = engine.stats()
        stats["drift"]["events"] = [BEFORE_A_MODEL, WITH_A_MODEL]
        ingest = IngestCounts(samples=300, labels=60, batches=2, held_s=0.5).__dict__
        out = stats_out(stats, ingest)
        assert isinstance(out, EngineStats)
        assert None not in (stats["clusters"], stats["selective"], stats["retention"])
        assert stats["learning_curve"][-1]["holdout_accuracy"] > 0  # a metric: a key of its own
        assert sent(out) == made(stats, ingest)
        assert list(out.model_dump(exclude_unset=True)) == [*stats, "ingest"]  # in the same order
        with pytest.raises(ValidationError, match="new_number"):  # a key no model names: refused
            stats_out({**stats, "new_number": 1}, ingest)
    finally:
        engine.close()
        store.close()


def test_a_replicas_stats_keep_every_key_and_value(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}/store.db")
    store.create()
    pool = {"pool": 40, "max_pool": 50, "reservoir": 4, "arrivals": 60, "evicted": 5, "rejected": 5}
    retention = {"deleted": 2, "waiting_to_leave_pool": 1, "left_pool": 1, "overdue": 0, "not_looked_at": 0}
    engine = {  # a shard's engine's numbers, those a report takes
        **pool,
        **dict.fromkeys(("aged_out", "removed", "passed"), 3),
        "model_version": 1,
        "retention": {**retention, "behind": False, "retention_s": 60.0},
        "drift": {"detected": 1, "events": [WITH_A_MODEL]},
        "stopping": {"stable": True, "kappa": 0.995, "since_version": 1},
    }
    now = datetime.now(UTC)
    store.shard_stats.report(0, "w0", shard_report(engine), now)
    bare = {**engine, "max_pool": None, "model_version": None, "retention": None, "drift": {"detected": 0}}
    store.shard_stats.report(1, "w1", shard_report(bare), now - timedelta(seconds=60))  # stale
    metrics = {"stream_accuracy": 0.75, "stream_samples": 12.0, "holdout_accuracy": 0.5}
    store.record_model(kind="full", n_labels=60, metrics=metrics, status="ok", version=1)  # as the trainer
    store.trainer_stats.report("trainer", {"drift": {"detected": 1, "events": [WITH_A_MODEL]}})
    config = EngineConfig(classes=CLASSES, n_features=6, random_share=0.3)
    queue = SharedQueue(config, store, StoredFeatures(6), ModelFiles(tmp_path / "models"))
    try:
        stats = queue.stats()
        assert set(stats["shards"]) == {"0", "1"} and stats["stale"] == [1]
        assert stats["learning_curve"] == [
            {"version": 1, "kind": "full", "n_labels": 60, "drift": True, **metrics}  # the drift before it
        ]
        out = stats_out(stats, None)
        assert isinstance(out, ReplicaStats)
        assert sent(out) == made(stats, None)
        assert out.totals.retention is not None and out.shards["1"].retention is None
    finally:
        store.close()


def test_the_predict_answer_is_predict_outs_json() -> None:
    proba = np.asfortranarray([[0.25, 0.75], [1e-8, 1 - 1e-8], [0.5, 0.5]])  # as gradient boosting gives
    answer = PredictOut(model_version=3, classes=["x", "y"], probabilities=proba, predicted=["y", "y", "x"])
    assert typed(orjson.loads(answer.encoded())) == typed(json.loads(answer.model_dump_json()))
    assert orjson.loads(answer.encoded())["probabilities"] == proba.tolist()
    with pytest.raises(ValidationError, match="rows of numbers"):
        PredictOut(model_version=3, classes=["x"], probabilities=np.ones(3), predicted=["x"] * 3)
