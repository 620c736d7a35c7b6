"""The label budget in the service: a share of the arrivals, from labels an hour (set or measured),
and a selective strategy that lets the rest only feed the reservoir."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.datasets import make_classification

from alstream.service.budget import LabelBudget
from alstream.service.engine import Engine, EngineConfig
from alstream.service.trainer import RetrainPolicy
from alstream.store import LabelRow, SampleRow, Store


def test_the_share_is_the_budget_over_the_arrival_rate_in_the_window():
    budget = LabelBudget(labels_per_hour=600, window_s=600)
    assert budget.share(now=0.0) == 1.0  # nothing arrived yet
    for minute in range(20):
        budget.arrived(1_000, now=minute * 60.0)  # 60,000 an hour
    assert abs(budget.share(now=20 * 60.0) - 0.01) < 0.002
    budget.arrived(9_000, now=20 * 60.0)  # a burst: ten times the rate in the newest minute
    assert budget.share(now=20 * 60.0 + 1) < 0.01


def test_auto_follows_what_people_actually_label():
    budget = LabelBudget(labels_per_hour=None, window_s=900)
    budget.arrived(6_000, now=0.0)
    assert budget.share(now=1.0) == 1.0  # no label yet: every arrival may compete
    budget.labeled(30, now=10.0)
    assert abs(budget.share(now=60.0) - 30 / 6_000) < 1e-9
    assert budget.state(now=60.0)["measured_labels_per_hour"] == 1800.0


def test_a_selective_strategy_keeps_the_unasked_arrivals_out_of_the_queue(tmp_path: Path):
    X, y = make_classification(30_000, n_features=6, n_informative=4, n_classes=3, random_state=2)
    X = X.astype(np.float32)
    classes = ["a", "b", "c"]
    store = Store(f"sqlite:///{tmp_path}/store.db")
    store.create()
    config = EngineConfig(
        classes=classes,
        n_features=6,
        track=False,
        max_pool=20_000,
        reservoir_share=0.05,
        selector="variable_uncertainty",
        labels_per_hour=30_000.0,
        policy=RetrainPolicy(after_labels=10, min_per_class=2),
    )
    engine = Engine(config, store)
    try:
        store.add_samples([SampleRow(f"s{i}", X[i], None, None) for i in range(300)])
        store.add_labels([LabelRow(f"s{i}", classes[y[i]], "ann", False, "labels:0", i) for i in range(300)])
        engine.sync()
        assert engine.train_step() is not None  # a model: the selector decides from now on
        for start in range(300, 30_000, 2_970):
            store.add_samples([SampleRow(f"s{i}", X[i], None, None) for i in range(start, start + 2_970)])
            engine.sync()
        counts = engine.pool.counts()
        share = engine.stats()["selective"]["share"]
        assert 0.0 < share < 0.05  # 30,000 labels an hour against some 1.8 million arrivals an hour
        assert counts["passed"] > 0.8 * 29_700  # most arrivals were not worth asking about
        left = counts["passed"] + counts["rejected"] + counts["evicted"] + counts["removed"]
        assert counts["pool"] + left == counts["arrivals"] == 30_000
        reservoir = set(engine.pool.reservoir().tolist())
        candidates = [p for p in engine.pool.held().tolist() if p not in reservoir]
        model = engine.trainer.current.model
        confidence = model.predict_proba(X[300:]).max(axis=1).mean()
        asked = model.predict_proba(engine.pool.features[candidates]).max(axis=1).mean()
        assert asked < confidence - 0.05  # those let in are the ones the model is unsure of
    finally:
        engine.close()
        store.close()
