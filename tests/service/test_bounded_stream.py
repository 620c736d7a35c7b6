"""A small soak: 10^5 arrivals through the store into an engine whose pool holds 10^4, with people
labeling what the queue serves and the model updated online as they do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.datasets import make_classification

from alstream.service.engine import Engine, EngineConfig
from alstream.service.trainer import RetrainPolicy
from alstream.store import LabelRow, SampleRow, Store

CLASSES = ["a", "b", "c"]
ARRIVALS, MAX_POOL, BATCH = 100_000, 10_000, 5_000


def test_an_endless_stream_into_a_bounded_pool(tmp_path: Path):
    X, y = make_classification(ARRIVALS, n_features=8, n_informative=5, n_classes=3, random_state=0)
    X, truth = X.astype(np.float32), np.array(CLASSES)[y]
    store = Store(f"sqlite:///{tmp_path}/store.db")
    store.create()
    policy = RetrainPolicy(after_labels=40, interval_s=3600.0, online=True, full_every=5, min_per_class=2)
    config = EngineConfig(
        classes=CLASSES,
        n_features=8,
        track=False,
        max_pool=MAX_POOL,
        policy=policy,
        reservoir_share=0.1,
        random_share=0.2,
    )
    engine = Engine(config, store)
    labeled: list[str] = []
    offset = 0
    try:
        for start in range(0, ARRIVALS, BATCH):
            rows = range(start, start + BATCH)
            store.add_samples([SampleRow(f"s{i}", X[i], None, None) for i in rows])
            engine.sync()
            items = engine.queue(20, annotator="ann")
            labels = [
                LabelRow(item.id, truth[int(item.id[1:])], "ann", False, "labels:0", offset + n)
                for n, item in enumerate(items)
            ]
            offset += len(labels)
            store.add_labels(labels)
            labeled += [item.id for item in items]
            engine.sync()
            engine.train_step()
            assert len(engine.pool) <= MAX_POOL and len(engine.pool.scores) <= MAX_POOL
        counts = engine.pool.counts()
        assert counts["arrivals"] == ARRIVALS and counts["pool"] == MAX_POOL - 20  # the last 20 just labeled
        assert counts["removed"] == len(labeled) == len(set(labeled)) == 400
        left = counts["evicted"] + counts["rejected"] + counts["removed"] + counts["aged_out"]
        assert counts["pool"] + left == ARRIVALS
        assert len(engine.train_set) == 400 and sum(engine.label_counts().values()) == 400
        assert MAX_POOL // 10 - 400 <= counts["reservoir"] <= MAX_POOL // 10
        assert engine.trainer.current is not None and engine.trainer.current.version > 5
        assert {item.reason for item in engine.queue(200, annotator="bob")} == {"uncertainty", "random"}

        in_reservoir = {int(str(engine.pool.ids[p])[1:]) for p in engine.pool.reservoir()}
        deciles = np.bincount(np.array(sorted(in_reservoir)) // 10_000, minlength=10)
        assert deciles.min() > 0.6 * deciles.mean(), deciles  # from the whole stream, not its end

        gone = next(
            f"s{i}" for i in range(ARRIVALS) if f"s{i}" not in engine.pool.index and f"s{i}" not in labeled
        )
        store.add_labels([LabelRow(gone, truth[int(gone[1:])], "bob", False, "labels:0", offset)])
        engine.sync()  # a label for a sample evicted long ago: its features come from the store
        assert gone in engine.train_set and len(engine.train_set) == 401
    finally:
        engine.close()
        store.close()
