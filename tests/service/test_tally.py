"""/stats' store numbers, tallied by the engine as it follows the store, equal the store's own count."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alstream.service.engine import Engine, EngineConfig
from alstream.store import LabelRow, SampleRow, Store

CLASSES = ["a", "b", "c"]
ANNOTATORS = ["ann", "bob", "eve", None]


def test_the_engine_tally_matches_the_store_counts_and_conflicts(tmp_path: Path):
    store = Store(f"sqlite:///{tmp_path}/store.db")
    store.create()
    engine = Engine(EngineConfig(classes=CLASSES, n_features=2, track=False), store)
    rng = np.random.default_rng(5)
    offset = 0
    try:
        for round_ in range(6):  # labels arrive before, with and after their samples; some are skips
            ids = [f"s{i}" for i in range(round_ * 30, round_ * 30 + 30)]
            store.add_samples([SampleRow(i, rng.random(2, dtype=np.float32), None, None) for i in ids])
            events = []
            for _ in range(80):
                offset += 1
                skipped = bool(rng.random() < 0.15)
                label = None if skipped else str(rng.choice(CLASSES))
                sample = f"s{rng.integers(0, round_ * 30 + 40)}"
                events.append(
                    LabelRow(sample, label, ANNOTATORS[rng.integers(4)], skipped, "labels:0", offset)
                )
            store.add_labels(events)
            engine.sync()
            assert engine.tally.counts() == store.counts()
            assert engine.tally.conflicts() == len(store.conflicts())
        assert 0 < engine.tally.conflicts() < engine.tally.counts()["labeled"]
        assert engine.tally.counts()["skipped"] > 0
    finally:
        engine.close()
        store.close()


def test_labels_waiting_for_their_samples_are_bounded_and_none_is_lost(tmp_path: Path):
    """Labels may precede their samples (through /send or Kafka): the engine keeps the newest
    ``max_waiting_labels`` in memory, counts the others, and finds them in the store on arrival."""
    store = Store(f"sqlite:///{tmp_path}/store.db")
    store.create()
    config = EngineConfig(classes=CLASSES, n_features=2, track=False, max_waiting_labels=10)
    engine = Engine(config, store)
    try:
        ids = [f"early-{i}" for i in range(30)]
        truth = {sample_id: CLASSES[i % 3] for i, sample_id in enumerate(ids)}
        store.add_labels([LabelRow(i, truth[i], "ann", False, "labels:0", n) for n, i in enumerate(ids)])
        engine.sync()
        assert engine.stats()["waiting_labels"] == {"held": 10, "dropped": 20}
        assert len(engine.labels) == 10 and engine.label_counts() == dict.fromkeys(CLASSES, 0)
        store.add_samples([SampleRow(i, np.zeros(2, dtype=np.float32), None, None) for i in ids])
        engine.sync()
        assert engine.labels == truth  # the 20 forgotten ones came back from the store
        assert engine.label_counts() == {"a": 10, "b": 10, "c": 10}
        assert engine.stats()["waiting_labels"] == {"held": 0, "dropped": 20}
        assert len(engine.train_set) == 30 and set(engine.pending()) == set(ids)
    finally:
        engine.close()
        store.close()
