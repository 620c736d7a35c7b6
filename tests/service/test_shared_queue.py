"""The stateless replica's queue (service.shared_queue) on a SQLite store: it applies the token's cap
as the single process does (not for admin tokens), serves the random share from the shards' picks,
marked as random, and its stats merge the shards' reports and draw the recorded versions' curve."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from alstream.service.engine import CURVE_POINTS, EngineConfig
from alstream.service.featurize import StoredFeatures
from alstream.service.model_files import ModelFiles
from alstream.service.routes.stats import ReplicaStats, stats_out
from alstream.service.shared_queue import SharedQueue
from alstream.store import SampleRow, Store
from alstream.store.rows import dump_json
from alstream.store.tables import models

from .processes import record_version

N = 200


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[SharedQueue]:
    store = Store(f"sqlite:///{tmp_path}/store.db")
    store.create()
    digits = load_digits()
    X, y = digits.data[:N].astype(np.float32), digits.target[:N].astype(str)
    store.add_samples([SampleRow(f"d-{i}", row, shard=i % 2) for i, row in enumerate(X)])
    record_version(store, tmp_path / "models", X, y, number=1)
    ids = [f"d-{i}" for i in range(N)]
    for shard in range(2):  # half the best, half the picks of each shard's stream of 1000
        mine = ids[shard::2]
        store.candidates.publish(
            shard, 1, mine[:50], [0.9] * 50, picks=mine[50:], pick_scores=[0.1] * 50, stream=1_000
        )
    config = EngineConfig(
        classes=[str(c) for c in range(10)],
        n_features=X.shape[1],
        random_share=0.5,
        max_leases_per_annotator=100,
        max_leases_per_token=7,
    )
    shared = SharedQueue(config, store, StoredFeatures(X.shape[1]), ModelFiles(tmp_path / "models"))
    yield shared
    store.close()


def test_a_token_is_capped_unless_an_admin_token(queue: SharedQueue) -> None:
    assert len(queue.queue(5, "ann", token="k")) == 5
    assert len(queue.queue(5, "bob", token="k")) == 2  # the token's seventh
    assert queue.queue(5, "cy", token="k") == []
    assert len(queue.queue(5, "cy", token="admin", token_capped=False)) == 5


def test_the_random_share_is_served_from_the_picks_and_marked(queue: SharedQueue) -> None:
    served = [item for turn in range(20) for item in queue.queue(5, f"ann-{turn}", token=f"k{turn}")]
    reasons = Counter(item.reason for item in served)
    assert len(served) == 100 and 25 <= reasons["random"] <= 75, reasons  # binomial(100, 0.5)
    for item in served:
        random_pick = int(item.id[2:]) // 2 >= 50  # the picks: the second half of each shard's ids
        assert (item.reason == "random") == random_pick and (item.strategy == "random") == random_pick
        assert item.model_version == 1 and item.predicted is not None
    stats = queue.stats()
    assert stats["random_share"] == 0.5 and stats["totals"]["shards"] == 0  # no worker reported


def test_the_curve_is_the_newest_recorded_versions_with_the_trainers_drifts(queue: SharedQueue) -> None:
    """As the single process's: the newest ``CURVE_POINTS`` versions, oldest first, each its kind,
    labels and metrics as recorded; a drift the trainer reported marks the first version recorded
    after it, even when the version before is past the bound. Failed versions are not on it."""
    store = queue.store
    start = datetime(2020, 1, 1, tzinfo=UTC)  # before now: the version recorded last
    rows = [
        {
            "version": v,
            "kind": "online" if v % 2 else "full",
            "n_labels": 10 * v,
            "metrics": dump_json({"stream_accuracy": v / 2000, "stream_samples": 50.0}),
            "status": "ok",
            "created_at": start + timedelta(seconds=v),
        }
        for v in range(2, CURVE_POINTS + 3)
    ]
    with store.transaction() as conn:  # version 1 is the fixture's
        conn.execute(models.insert(), rows)
    store.record_model(kind="full", n_labels=0, metrics={}, status="failed", version=CURVE_POINTS + 3)
    at = {v: (start + timedelta(seconds=v)).timestamp() for v in range(CURVE_POINTS + 3)}
    events = [
        {"signal": "scores", "at": at[2] - 0.5, "estimate": 0.1},  # version 2's: off the curve
        {"signal": "accuracy", "at": at[4] - 0.5, "estimate": 0.2, "model_version": 3, "n_labels": 30},
        {"signal": "accuracy", "at": at[500] - 0.5, "estimate": 0.3, "model_version": 499},
        {"signal": "accuracy", "at": at[500] - 0.25, "estimate": 0.3, "model_version": 499},
        {"signal": "accuracy", "at": at[CURVE_POINTS + 2] + 1, "estimate": 0.4},  # no version after it yet
    ]
    store.trainer_stats.report("trainer", {"drift": {"detected": len(events), "events": events}})
    curve = queue.stats()["learning_curve"]
    assert [p["version"] for p in curve] == list(range(3, CURVE_POINTS + 3))
    assert curve[0] == {
        "version": 3,
        "kind": "online",
        "n_labels": 30,
        "drift": False,
        "stream_accuracy": 3 / 2000,
        "stream_samples": 50.0,
    }
    assert [p["version"] for p in curve if p["drift"]] == [4, 500]
    assert isinstance(stats_out(queue.stats(), None), ReplicaStats)

    queue._checked = -np.inf  # the next look for a newer version comes at once
    store.record_model(kind="full", n_labels=1, metrics={}, status="ok", version=CURVE_POINTS + 4)
    curve = queue.stats()["learning_curve"]
    assert [p["version"] for p in curve[:2]] == [4, 5] and curve[-1]["version"] == CURVE_POINTS + 4
    assert [p["version"] for p in curve if p["drift"]] == [4, 500, CURVE_POINTS + 4]
