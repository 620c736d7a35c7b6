"""Two ``alstream worker`` processes on a real Kafka topic of 4 partitions and PostgreSQL, and a
stateless replica (``alstream serve --stateless``): the replica's ``/stats`` shows every shard's
numbers and their totals, which equal what each shard holds; the random share it serves comes
from the shards' reservoirs, weighted by their streams; and each worker's retention keeps its
shards' samples bounded in the store while a shard no worker owns keeps all of its own."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sqlalchemy import func, select

from alstream.messages import Sample, encode_sample
from alstream.service.shard_totals import merge
from alstream.store import SampleRow, Store
from alstream.store.tables import candidates, samples
from alstream.stream.kafka import KafkaStream

from ..conftest import wait_while_progressing
from .conftest import AUTH
from .processes import Roles, Service, kill_all, record_version

PARTITIONS = 4
POOL = 200  # per shard: every shard gets more than this many samples
TOP = 50  # candidates_per_shard: also the random picks each shard publishes (its reservoir holds 50)
RETENTION_S = 45  # long enough to check the counts before retention deletes
ORPHAN = 99  # a shard no worker owns (its samples were stored by something else)
STALL_S = 90.0


@pytest.fixture
def system(tmp_path: Path, postgres_url: str, kafka_bootstrap: str) -> Iterator[tuple[Roles, Service, dict]]:
    suffix = uuid.uuid4().hex[:10]
    values = {
        "kafka_bootstrap": kafka_bootstrap,
        "database_url": postgres_url,
        "data_dir": str(tmp_path / "shared"),
        "samples_topic": f"shards-samples-{suffix}",
        "labels_topic": f"shards-labels-{suffix}",
        "dead_letter_topic": f"shards-dead-{suffix}",
        "consumer_group": f"shards-{suffix}",
        "consumer_instance_id": f"w-{suffix}",
        "candidates_per_shard": str(TOP),
        "max_pool": str(POOL),
        "reservoir_share": "0.25",
        "retention_s": str(RETENTION_S),
        "random_share": "0.5",
        "demo": "false",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALSTREAM_")}
    env.update({f"ALSTREAM_{k.upper()}": v for k, v in values.items()})
    workers = Roles("worker", env, tmp_path)
    (tmp_path / "replica").mkdir()
    replica = Service(tmp_path / "replica", args=("--stateless",), **values)
    try:
        yield workers, replica, values
    finally:
        kill_all(workers.procs)
        if replica.process is not None and replica.process.poll() is None:
            with contextlib.suppress(Exception):
                replica.kill()


def per_shard(store: Store) -> dict[int, int]:
    """How many samples of each shard the store holds."""
    with store.engine.connect() as conn:
        query = select(samples.c.shard, func.count()).group_by(samples.c.shard)
        return {int(shard): int(n) for shard, n in conn.execute(query)}


@pytest.mark.timeout(900)
def test_a_replicas_stats_random_share_and_retention_over_two_workers_shards(
    system: tuple[Roles, Service, dict],
) -> None:
    workers, replica, values = system
    digits = load_digits()
    X, y = digits.data.astype(np.float32), digits.target.astype(str)
    store = Store(values["database_url"])
    store.create()
    record_version(store, Path(values["data_dir"]) / "models", X[:300], y[:300], number=1)
    store.add_samples([SampleRow(f"o-{i}", row, shard=ORPHAN) for i, row in enumerate(X[:100])])
    stream = KafkaStream(values["kafka_bootstrap"], partitions=PARTITIONS)
    messages = [
        (f"d-{i}".encode(), encode_sample(Sample(id=f"d-{i}", features=row))) for i, row in enumerate(X)
    ]
    stream.publish(values["samples_topic"], messages, timeout=60)
    stream.publish(values["labels_topic"], [], timeout=60)
    workers.start()
    workers.start()

    def stats() -> dict:
        if replica.process is None:  # not started yet: what its /stats would merge
            return merge(store.shard_stats.reports())
        return httpx.get(f"{replica.url}/stats", headers=AUTH, timeout=60).raise_for_status().json()

    def wait(done, what: str) -> None:
        progress = lambda: (per_shard(store), store.candidates.counts(), workers.progress())  # noqa: E731
        wait_while_progressing(done, progress, stall_s=STALL_S, what=what, detail=workers.output, poll_s=0.2)

    held: dict[int, int] = {}  # what each shard holds in the store, before retention deletes

    def counted() -> bool:
        now = stats()
        held.update(per_shard(store))
        shards = now["shards"]
        fresh = sorted(int(s) for s, r in shards.items() if not r["stale"] and r["model_version"] == 1)
        arrived = {int(s): r["arrivals"] for s, r in shards.items()}
        return fresh == list(range(PARTITIONS)) and arrived == {s: held.get(s) for s in range(PARTITIONS)}

    wait(counted, "every shard reporting what it holds")  # the arrivals stay: no more samples come
    replica.start()  # once the workers are busy no more: ready once it serves model version 1
    report = stats()
    totals, shards = report["totals"], report["shards"]
    assert {int(s): r["arrivals"] for s, r in shards.items()} == {s: held[s] for s in range(PARTITIONS)}
    assert totals["arrivals"] == len(X) == sum(held[s] for s in range(PARTITIONS))
    assert totals["shards"] == PARTITIONS and report["stale"] == [] and totals["model_versions"] == [1]
    for shard in range(PARTITIONS):  # each shard holds its own samples, its pool full
        mine = shards[str(shard)]
        assert mine["pool"] == POOL < held[shard] and mine["reservoir"] == POOL // 4
        assert mine["arrivals"] == mine["pool"] + mine["evicted"] + mine["rejected"]
    for name in ("pool", "reservoir", "evicted", "rejected"):
        assert totals[name] == sum(shards[str(s)][name] for s in range(PARTITIONS)), name
    assert totals["pool"] == PARTITIONS * POOL
    assert {shards[str(s)]["worker"] for s in range(PARTITIONS)} and totals["retention"] is not None

    # the random picks: every shard's, weighted so that together they stand for the whole stream
    def published() -> dict[int, tuple[int, float]]:
        with store.engine.connect() as conn:
            query = select(candidates.c.shard, func.count(), func.sum(candidates.c.weight))
            query = query.where(candidates.c.reason == "random").group_by(candidates.c.shard)
            return {int(shard): (int(n), float(weight)) for shard, n, weight in conn.execute(query)}

    # a shard publishes at most once a second: its last samples' picks may follow its report
    wait(lambda: set(published()) == set(range(PARTITIONS)), "every shard publishing its random picks")
    picks = published()
    assert {s: n for s, (n, _) in picks.items()} == dict.fromkeys(range(PARTITIONS), TOP)
    assert sum(weight for _, weight in picks.values()) == pytest.approx(len(X))
    served = []
    with httpx.Client(headers=AUTH, timeout=60) as client:
        for turn in range(15):
            answer = client.get(f"{replica.url}/queue", params={"n": 10, "annotator": f"ann-{turn}"})
            served += answer.raise_for_status().json()
    reasons = Counter(item["reason"] for item in served)
    assert len(served) == 150 and 40 <= reasons["random"] <= 110, reasons  # binomial(150, 0.5)
    assert all(item["strategy"] == "random" for item in served if item["reason"] == "random")
    assert {item["reason"] for item in served} == {"random", "uncertainty"}

    # retention: each worker's shards shrink to their pools; the orphan shard keeps all its samples
    def retained() -> bool:
        held = per_shard(store)
        return all(held[s] <= POOL + 1 for s in range(PARTITIONS))

    wait(retained, "the workers' retention deleting their shards' departed samples")
    assert per_shard(store)[ORPHAN] == 100
    # /stats says so once each shard reported its last deletes (every half second)
    deleted = lambda: stats()["totals"]["retention"]["deleted"]  # noqa: E731
    wait_while_progressing(
        lambda: deleted() >= len(X) - PARTITIONS * (POOL + 1),
        deleted,
        stall_s=STALL_S,
        what="the shards' reports counting retention's deletes",
        detail=workers.output,
        poll_s=0.2,
    )
    stream.close()
    store.close()
