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
