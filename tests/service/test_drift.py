"""Drift: an abrupt change of concept (the same inputs now mean other labels) is detected on the
audit stream within a bounded number of arrivals, and the reaction (retrain at once favouring new
labels, audit more) brings the accuracy back sooner than the same service without it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.datasets import make_classification

from alstream.service.engine import Engine, EngineConfig
from alstream.service.model_files import ModelFiles
from alstream.service.trainer import RetrainPolicy
from alstream.store import LabelRow, SampleRow, Store

CLASSES = ["a", "b", "c"]
STEPS, CHANGE, BATCH, ASKED = 80, 30, 500, 10  # the concept changes before step CHANGE


def _concept(y: np.ndarray, changed: bool) -> np.ndarray:
    return np.array(CLASSES)[(y + 1) % 3 if changed else y]


def _run(tmp_path: Path, reaction: bool) -> tuple[list[float], list[int]]:
    """Holdout accuracy (of the concept at the time) after each step, and the steps with a drift."""
    X, y = make_classification(
        STEPS * BATCH + 2_000,
        n_features=8,
        n_informative=6,
        n_redundant=0,
        n_classes=3,
        class_sep=2.0,
        random_state=1,
    )
    X = X.astype(np.float32)
    held_X, held_y = X[-2_000:], y[-2_000:]
    store = Store(f"sqlite:///{tmp_path}/{reaction}.db")
    store.create()
    policy = RetrainPolicy(after_labels=30, interval_s=3600.0, online=True, full_every=3, min_per_class=2)
    config = EngineConfig(
        classes=CLASSES,
        n_features=8,
        track=False,
        policy=policy,
        max_pool=5_000,
        random_share=0.3,
        drift_reaction=reaction,
        seed=1,
    )
    engine = Engine(config, store)
    accuracy, drifts, offset = [], [], 0
    try:
        for step in range(STEPS):
            changed = step >= CHANGE
            rows = range(step * BATCH, (step + 1) * BATCH)
            store.add_samples([SampleRow(f"s{i}", X[i], None, None) for i in rows])
            engine.sync()
            items = engine.queue(ASKED, annotator="ann")
            truth = _concept(y[[int(item.id[1:]) for item in items]], changed)
            store.add_labels(
                [
                    LabelRow(item.id, label, "ann", False, "labels:0", offset + n)
                    for n, (item, label) in enumerate(zip(items, truth, strict=True))
                ]
            )
            offset += len(items)
            before = engine.drift.detected
            engine.sync()
            engine.train_step()
            if engine.drift.detected > before:
                drifts.append(step)
            current = engine.trainer.current  # None while some class has too few labels
            right = (
                0.0
                if current is None
                else (current.model.predict(held_X) == _concept(held_y, changed)).mean()
            )
            accuracy.append(float(right))
    finally:
        engine.close()
        store.close()
    return accuracy, drifts


def test_a_concept_change_is_detected_and_the_reaction_recovers_sooner(tmp_path: Path):
    reacting, drifts = _run(tmp_path, reaction=True)
    still, still_drifts = _run(tmp_path, reaction=False)
    assert min(reacting[CHANGE - 5 : CHANGE]) > 0.8  # it had learned the first concept
    assert drifts and drifts[0] >= CHANGE and not [d for d in drifts if d < CHANGE]  # no false alarm before
    assert drifts[0] - CHANGE <= 15  # within 15 * 500 arrivals (about 30 audited labels)
    assert still_drifts and still_drifts[0] == drifts[0]  # detected alike; only the reaction differs

    def recovered(curve: list[float]) -> int:
        return next((i for i in range(CHANGE, STEPS) if min(curve[i : i + 3]) > 0.75), STEPS) - CHANGE

    print(f"steps to recover: {recovered(reacting)} with the reaction, {recovered(still)} without")
    assert recovered(reacting) + 5 <= recovered(still)
    assert np.mean(reacting[CHANGE:]) > np.mean(still[CHANGE:]) + 0.05


def test_a_drift_found_elsewhere_weighs_the_labels_up_to_its_id_less(tmp_path: Path):
    """``drifted_at``: a flow run's engine weighs by the drift's label id, as the trainer found it,
    even for labels whose samples the bounded pool let go (their features come from the store later)."""
    store = Store(f"sqlite:///{tmp_path}/elsewhere.db")
    store.create()
    X = np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32)
    store.add_samples([SampleRow(f"s{i}", X[i], None, None) for i in range(60)])
    store.add_labels([LabelRow(f"s{i}", CLASSES[i % 3], "ann", False, "t:0", i) for i in range(60)])
    ids = {sample_id: int(row_id) for row_id, sample_id, *_ in store.labels_after(0)}
    drift = ids["s39"]
    engine = Engine(EngineConfig(classes=CLASSES, n_features=8, track=False, max_pool=10), store)
    try:
        engine.drifted_at(drift)
        while any(engine.sync()):
            pass
        weights = engine.training_weights()
        assert weights is not None
        by_sample = dict(zip(engine.train_set.ids, weights.tolist(), strict=True))
        assert len(by_sample) == 60
        assert all(by_sample[s] == (1.0 if ids[s] > drift else 0.05) for s in by_sample)
    finally:
        engine.close()
        store.close()


def test_the_stored_samples_a_restart_rebuilds_from_are_not_arrivals_to_the_drift_watch(tmp_path: Path):
    """The scores' detector watches what arrives: a restarted engine (or a new trainer) rebuilds its
    pool from stored samples whose scores shift (confident ones, then ones on the boundary) without
    finding a drift in them, and finds one when the same shift arrives after it started."""
    rng = np.random.default_rng(3)
    centres = np.eye(3, 8, dtype=np.float32) * 6.0

    def block(n: int, start: int, unsure: bool) -> list[SampleRow]:
        rows = centres.mean(axis=0) if unsure else centres[rng.integers(0, 3, n)]
        X = (rows + rng.normal(scale=0.5, size=(n, 8))).astype(np.float32)
        return [SampleRow(f"s{start + i}", X[i], None, None) for i in range(n)]

    store = Store(f"sqlite:///{tmp_path}/restart.db")
    store.create()
    models = ModelFiles(tmp_path / "models")
    policy = RetrainPolicy(after_labels=30, interval_s=3600.0, online=False, min_per_class=2)
    config = EngineConfig(classes=CLASSES, n_features=8, track=False, policy=policy, max_pool=20_000, seed=1)
    first = Engine(config, store, model_files=models)
    try:
        taught = block(60, 0, unsure=False)
        store.add_samples(taught)
        store.add_labels(
            [
                LabelRow(row.id, CLASSES[int(np.argmax(row.features))], "ann", False, "labels:0", n)
                for n, row in enumerate(taught)
            ]
        )
        first.sync()
        assert first.train_step() is not None and first.serving is not None
    finally:
        first.close()
    store.add_samples(block(3_000, 100, unsure=False) + block(3_000, 3_100, unsure=True))

    restarted = Engine(config, store, model_files=models)
    try:
        assert restarted.serving is not None  # the version restored scores the stored samples
        while any(restarted.sync()):
            pass
        assert len(restarted.pool) == 6_000 and restarted.drift.detected == 0
        store.add_samples(block(3_000, 6_100, unsure=False))
        restarted.sync()
        assert restarted.drift.detected == 0
        store.add_samples(block(3_000, 9_100, unsure=True))  # new kinds of inputs arrive
        restarted.sync()
        assert restarted.drift.detected >= 1 and restarted.drift.events[-1]["signal"] == "scores"
    finally:
        restarted.close()
        store.close()


def test_labels_given_before_a_drift_weigh_less_whenever_their_features_arrive(tmp_path: Path):
    """One rule, the store's label id: a label up to the drift's weighs ``drift_old_weight`` though
    its sample's features came after the drift (evicted from the bounded pool: from the store; not
    arrived yet: when it does, the label waiting or forgotten); a relabel after the drift weighs 1."""
    store = Store(f"sqlite:///{tmp_path}/evicted.db")
    store.create()
    X = np.random.default_rng(0).normal(size=(400, 8)).astype(np.float32)
    store.add_samples([SampleRow(f"s{i}", X[i], None, None) for i in range(400)])
    store.audits.served([(f"s{i}", 1, "a") for i in range(400)])  # guesses of random items: all "a"
    late = [LabelRow(f"late{i}", "b", "ann", False, "t:0", i) for i in range(2)]  # before their samples
    right = [LabelRow(f"s{i}", "a", "ann", False, "t:0", 2 + i) for i in range(300)]
    wrong = [LabelRow(f"s{i}", "b", "ann", False, "t:0", 2 + i) for i in range(300, 400)]  # the drift
    store.add_labels(late + right + wrong)
    config = EngineConfig(
        classes=CLASSES, n_features=8, track=False, max_pool=10, max_waiting_labels=1
    )  # late0 forgotten while waiting: its label comes from the store when its sample does
    engine = Engine(config, store, audits=store.audits)
    try:
        engine.sync()
        drift = engine.drift_label_id
        assert engine.drift.detected >= 1 and drift is not None
        assert len(engine.train_set) == 400 and len(engine.pool) <= 10  # most came from the store
        assert engine.book.waiting() == {"held": 1, "dropped": 1}
        store.add_samples([SampleRow(f"late{i}", X[i], None, None) for i in range(2)])
        store.add_labels([LabelRow("s0", "c", "ann", False, "t:0", 402)])  # relabeled after the drift
        while any(engine.sync()):
            pass
        assert engine.drift_label_id == drift
        ids = {sample_id: int(row_id) for row_id, sample_id, *_ in store.labels_after(0)}  # the latest
        weights = engine.training_weights()
        assert weights is not None
        by_sample = dict(zip(engine.train_set.ids, weights.tolist(), strict=True))
        assert len(by_sample) == 402 and {"late0", "late1"} <= by_sample.keys()
        assert by_sample["s0"] == 1.0 and by_sample["s1"] == by_sample["late0"] == 0.05
        assert all(by_sample[s] == (1.0 if ids[s] > drift else 0.05) for s in by_sample)
    finally:
        engine.close()
        store.close()
