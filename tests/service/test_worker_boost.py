"""A drift's boost reaches the workers: an ``alstream worker`` on a real Kafka topic of 2 partitions
and PostgreSQL publishes ``candidates_per_shard`` random picks per shard; while the trainer reports
a drift's boost (``trainer_stats``) it publishes ``drift_random_share / random_share`` times as
many (weighted so that they still stand for the shard's whole stream), and as many as before once
the boost ends."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sqlalchemy import func, select

from alstream.messages import Sample, encode_sample
from alstream.store import Store
from alstream.store.tables import candidates
from alstream.stream.kafka import KafkaStream

from ..conftest import wait_while_progressing
from .processes import Roles, kill_all, record_version

PARTITIONS = 2
TOP = 20  # candidates_per_shard: the random picks each shard publishes without a drift
SHARE, BOOSTED = 0.1, 0.3  # random_share, drift_random_share: three times the picks while boosted
STALL_S = 90.0


@pytest.fixture
def worker(tmp_path: Path, postgres_url: str, kafka_bootstrap: str) -> Iterator[tuple[Roles, dict[str, str]]]:
    suffix = uuid.uuid4().hex[:10]
    values = {
        "kafka_bootstrap": kafka_bootstrap,
        "database_url": postgres_url,
        "data_dir": str(tmp_path / "shared"),
        "samples_topic": f"boost-samples-{suffix}",
        "labels_topic": f"boost-labels-{suffix}",
        "dead_letter_topic": f"boost-dead-{suffix}",
        "consumer_group": f"boost-{suffix}",
        "consumer_instance_id": f"w-{suffix}",
        "candidates_per_shard": str(TOP),
        "max_pool": "400",
        "reservoir_share": "0.5",  # 200 a shard: more than the boosted picks
        "random_share": str(SHARE),
        "drift_random_share": str(BOOSTED),
        "demo": "false",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALSTREAM_")}
    env.update({f"ALSTREAM_{k.upper()}": v for k, v in values.items()})
    roles = Roles("worker", env, tmp_path)
    try:
        yield roles, values
    finally:
        kill_all(roles.procs)


def picks(store: Store) -> dict[int, tuple[int, float]]:
    """Per shard: its random picks, and their weights added up."""
    with store.engine.connect() as conn:
        query = select(candidates.c.shard, func.count(), func.sum(candidates.c.weight))
        query = query.where(candidates.c.reason == "random").group_by(candidates.c.shard)
        return {int(shard): (int(n), float(weight)) for shard, n, weight in conn.execute(query)}


@pytest.mark.timeout(600)
def test_a_drifts_boost_makes_the_workers_publish_more_random_picks(
    worker: tuple[Roles, dict[str, str]],
) -> None:
    roles, values = worker
    digits = load_digits()
    X, y = digits.data.astype(np.float32), digits.target.astype(str)
    store = Store(values["database_url"])
    store.create()
    record_version(store, Path(values["data_dir"]) / "models", X[:300], y[:300], number=1)
    stream = KafkaStream(values["kafka_bootstrap"], partitions=PARTITIONS)
    messages = [
        (f"d-{i}".encode(), encode_sample(Sample(id=f"d-{i}", features=row))) for i, row in enumerate(X)
    ]
    stream.publish(values["samples_topic"], messages, timeout=60)
    stream.publish(values["labels_topic"], [], timeout=60)
    roles.start()

    def published(n: int) -> bool:
        now = picks(store)
        return set(now) == set(range(PARTITIONS)) and all(count == n for count, _ in now.values())

    def wait(n: int, what: str) -> None:
        progress = lambda: (picks(store), roles.progress())  # noqa: E731
        wait_while_progressing(
            lambda: published(n), progress, stall_s=STALL_S, what=what, detail=roles.output
        )

    wait(TOP, "each shard publishing its random picks")
    stream_sizes = {shard: weight for shard, (_, weight) in picks(store).items()}
    store.trainer_stats.report("trainer", {"boost_until": time.time() + 600})  # a drift: boosted
    wait(3 * TOP, "each shard publishing three times the random picks")
    for shard, (_, weight) in picks(store).items():  # still the shard's whole stream
        assert weight == pytest.approx(stream_sizes[shard])
    store.trainer_stats.report("trainer", {"boost_until": None})  # the boost ends
    wait(TOP, "each shard publishing as many random picks as before the drift")
    stream.close()
    store.close()
