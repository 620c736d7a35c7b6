"""``alstream worker`` as real processes on a real Kafka topic of 4 partitions and PostgreSQL: two
workers split the partitions; each shard's published candidates are the best of that shard's
unlabeled samples under the newest model version, so together they cover the top of the whole pool.
SIGKILL one worker: its partitions move to the other, which rebuilds them from the store and
publishes them, new samples and a new model version included."""

from __future__ import annotations

import os
import re
import signal
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sqlalchemy import select

from alstream.learning.inference import score_pool
from alstream.learning.strategies import get_strategy
from alstream.messages import Label, Sample, encode_label, encode_sample
from alstream.service.trainer import ModelVersion
from alstream.store import Store
from alstream.store.tables import candidates, samples
from alstream.stream.kafka import KafkaStream

from ..conftest import wait_while_progressing
from .processes import Roles, kill_all, record_version

PARTITIONS = 4
TOP = 50  # candidates_per_shard
STRATEGY = "margin"  # the workers' (named: the test scores with it too)
STALL_S = 90.0  # a wait fails only when nothing moved for this long (a dead member leaves after 10 s)


class Workers(Roles):
    """``alstream worker`` processes sharing one data_dir (model files, member slots)."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        super().__init__("worker", env, cwd)

    def owned(self, n: int) -> set[int]:
        """The shards worker ``n`` says it owns now (it must be alive)."""
        shards: set[int] = set()
        for shard, what in re.findall(r"shard (\d+): (assigned|moved)", self.text(n)):
            (shards.add if what == "assigned" else shards.discard)(int(shard))
        return shards


@pytest.fixture
def setup(
    tmp_path: Path, postgres_url: str, kafka_bootstrap: str
) -> Iterator[tuple[Workers, dict[str, str]]]:
    suffix = uuid.uuid4().hex[:10]
    values = {
        "kafka_bootstrap": kafka_bootstrap,
        "database_url": postgres_url,
        "data_dir": str(tmp_path / "shared"),
        "samples_topic": f"workers-samples-{suffix}",
        "labels_topic": f"workers-labels-{suffix}",
        "dead_letter_topic": f"workers-dead-{suffix}",
        "consumer_group": f"workers-{suffix}",
        "consumer_instance_id": f"w-{suffix}",
        "candidates_per_shard": str(TOP),
        "strategy": STRATEGY,
        "max_pool": "100000",  # every sample of a shard stays in its pool: its top is exact
        "demo": "false",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALSTREAM_")}
    env.update({f"ALSTREAM_{k.upper()}": v for k, v in values.items()})
    workers = Workers(env, tmp_path)
    try:
        yield workers, values
    finally:
        kill_all(workers.procs)


def sample_messages(prefix: str, X: np.ndarray) -> list[tuple[bytes, bytes]]:
    return [
        (f"{prefix}-{i}".encode(), encode_sample(Sample(id=f"{prefix}-{i}", features=row)))
        for i, row in enumerate(X)
    ]


def check_shards(store: Store, model: ModelVersion, shards: range) -> None:
    """Each shard's free candidates: its own unlabeled samples, scored by ``model``, its ``TOP`` best
    (ties aside; one that is also a random pick is published as one) and ``TOP`` random picks of its
    reservoir (here every sample); together they hold the whole pool's ``TOP`` best."""
    with store.engine.connect() as conn:
        free = candidates.c.leased_by.is_(None)  # leased ones keep what they were leased as
        columns = (candidates.c.sample_id, candidates.c.shard, candidates.c.version, candidates.c.reason)
        published = conn.execute(select(*columns).where(free)).all()
        rows = conn.execute(select(samples.c.id, samples.c.shard, samples.c.features)).all()
    labeled = set(store.current_labels())
    shard_of = {sid: shard for sid, shard, _ in rows}
    ids = [sid for sid, _, _ in rows if sid not in labeled]
    X = np.array([np.frombuffer(blob, dtype="<f4") for sid, _, blob in rows if sid not in labeled])
    score = dict(zip(ids, score_pool(model.model, X, get_strategy(STRATEGY)), strict=True))
    assert all(shard_of[sid] == shard for sid, shard, *_ in published), "a candidate of another shard"
    assert all(v == model.version for *_, v, _ in published), "candidates of an older version"
    assert not labeled & {sid for sid, *_ in published}, "a labeled sample is a candidate"
    for shard in shards:
        mine = sorted((score[i] for i in ids if shard_of[i] == shard), reverse=True)
        best = {sid for sid, s, _, why in published if s == shard and why != "random"}
        picks = {sid for sid, s, _, why in published if s == shard and why == "random"}
        assert len(picks) == min(TOP, len(mine)), f"shard {shard}: {len(picks)} random picks"
        assert min(TOP, len(mine)) - len(picks) <= len(best) <= TOP, f"shard {shard}: {len(best)} candidates"
        top = {i for i in ids if shard_of[i] == shard and score[i] > mine[min(TOP, len(mine)) - 1] + 1e-12}
        assert top <= best | picks, f"shard {shard}: not its best"
    best = sorted(score, key=score.__getitem__, reverse=True)[:TOP]
    assert {sid for sid, *_ in published} >= {i for i in best if score[i] > score[best[-1]]}


@pytest.mark.timeout(900)
def test_two_workers_share_the_partitions_and_one_takes_over_the_others(
    setup: tuple[Workers, dict[str, str]],
) -> None:
    workers, values = setup
    digits = load_digits()
    X, y = digits.data.astype(np.float32), digits.target.astype(str)
    store = Store(values["database_url"])
    store.create()
    folder = Path(values["data_dir"]) / "models"
    first = record_version(store, folder, X[:200], y[:200], number=1)  # as the trainer would have
    stream = KafkaStream(values["kafka_bootstrap"], partitions=PARTITIONS)
    stream.publish(values["samples_topic"], sample_messages("d", X), timeout=60)
    stream.publish(values["labels_topic"], [], timeout=60)  # made with PARTITIONS partitions too

    def wait(done, what: str) -> None:
        progress = lambda: (store.counts()["samples"], store.candidates.counts(), workers.progress())  # noqa: E731
        wait_while_progressing(done, progress, stall_s=STALL_S, what=what, detail=workers.output, poll_s=0.2)

    def checked(model: ModelVersion) -> bool:
        try:
            check_shards(store, model, range(PARTITIONS))
        except AssertionError:
            return False
        return True

    workers.start()
    workers.start()

    def shared() -> bool:
        mine, theirs = workers.owned(0), workers.owned(1)
        return bool(mine and theirs) and mine | theirs == set(range(PARTITIONS))

    wait(
        lambda: shared() and store.counts()["samples"] == len(X) and checked(first),
        "two workers publishing every shard",
    )
    assert not workers.owned(0) & workers.owned(1), "a shard owned by both workers"
    check_shards(store, first, range(PARTITIONS))

    # people label the very best candidates: they leave the shards' candidates
    leased = store.candidates.lease("ann", None, 20, ttl_s=600)
    labels = [
        (c.id.encode(), encode_label(Label(id=c.id, label=y[int(c.id[2:])], annotator="ann"))) for c in leased
    ]
    stream.publish(values["labels_topic"], labels, timeout=60)
    wait(lambda: store.counts()["labeled"] == 20 and checked(first), "the labeled samples leaving")

    victim = 1
    moving = workers.owned(victim)
    killed_at = datetime.now(UTC)
    os.kill(workers.procs[victim].pid, signal.SIGKILL)
    workers.procs[victim].wait(timeout=30)
    more = X[:400] + np.float32(0.5)  # new samples arrive meanwhile, in every partition
    stream.publish(values["samples_topic"], sample_messages("e", more), timeout=60)

    def republished() -> bool:
        with store.engine.connect() as conn:
            when = select(candidates.c.shard, candidates.c.published_at).where(
                candidates.c.leased_by.is_(None)
            )
            latest: dict[int, datetime] = {}
            for shard, at in conn.execute(when):
                at = at if at.tzinfo else at.replace(tzinfo=UTC)
                latest[shard] = max(latest.get(shard, at), at)
        return all(latest.get(shard, killed_at) > killed_at for shard in moving)

    def took_over() -> bool:
        everything = store.counts()["samples"] == len(X) + len(more)
        return workers.owned(0) == set(range(PARTITIONS)) and everything and republished()

    wait(lambda: took_over() and checked(first), "the survivor publishing the killed worker's shards")

    # a new version, trained on more labels, reaches every shard
    second = record_version(store, folder, X[:600], y[:600], number=2)
    wait(lambda: checked(second), "every shard on model version 2")
    check_shards(store, second, range(PARTITIONS))
    stream.close()
    store.close()
