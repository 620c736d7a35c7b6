"""Cluster-margin in the service: what ten people lease at once, between two model versions, comes
from ten clusters of the pool, where margin alone gives them near-copies of one another."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_classification

from alstream.service.clusters import spread_order
from alstream.service.engine import Engine, EngineConfig
from alstream.service.trainer import RetrainPolicy
from alstream.settings import Settings
from alstream.store import LabelRow, SampleRow, Store

CLASSES = ["a", "b", "c"]
GROUPS, COPIES = 300, 5  # tight groups of near-copies: a sample's group is int(id) // COPIES
CENTRES, GROUP_Y = make_classification(
    GROUPS, n_features=8, n_informative=5, n_classes=3, n_clusters_per_class=3, random_state=0
)
X = np.repeat(CENTRES, COPIES, axis=0) + np.random.default_rng(0).normal(0, 0.01, (GROUPS * COPIES, 8))
X = X.astype(np.float32)
Y = np.repeat(GROUP_Y, COPIES)


def group(sample_id: str) -> int:
    return int(sample_id) // COPIES


def truth(sample_id: str) -> str:
    return CLASSES[Y[int(sample_id)]] if sample_id.isdigit() else "a"  # the later arrivals: all "a"


def _engine(tmp_path: Path, strategy: str) -> tuple[Engine, Store]:
    """The near-copies streamed in, one copy of three groups per class labeled, the first model trained."""
    store = Store(f"sqlite:///{tmp_path}/{strategy}.db")
    store.create()
    policy = RetrainPolicy(after_labels=10, interval_s=3600.0, online=False, min_per_class=2)
    config = EngineConfig(
        classes=CLASSES, n_features=8, strategy=strategy, policy=policy, track=False, random_share=0.0
    )
    engine = Engine(config, store)
    store.add_samples([SampleRow(str(i), X[i], None, None) for i in range(len(Y))])
    first = [g * COPIES for c in range(3) for g in np.flatnonzero(np.equal(GROUP_Y, c))[:3].tolist()]
    store.add_labels([LabelRow(str(i), CLASSES[Y[i]], "demo", False, "labels:0", i) for i in first])
    engine.sync()
    assert engine.train_step() is not None
    return engine, store


def _ten_at_once(engine: Engine, start: int) -> list:
    """One item each for ten annotators asking at the same moment."""
    barrier, items = threading.Barrier(10), [None] * 10

    def ask(i: int) -> None:
        barrier.wait()
        (items[i],) = engine.queue(1, annotator=f"ann{start + i}")

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return items


def test_ten_people_at_once_get_ten_clusters_with_cluster_margin_and_near_copies_with_margin(tmp_path):
    margin, store = _engine(tmp_path, "margin")
    try:
        by_margin = {group(item.id) for item in _ten_at_once(margin, 0)}
    finally:
        margin.close()
        store.close()
    engine, store = _engine(tmp_path, "cluster_margin")
    try:
        items = _ten_at_once(engine, 0)
        assert {item.strategy for item in items} == {"cluster_margin"}
        clusters, groups = {item.cluster for item in items}, {group(item.id) for item in items}
        print(f"ten at once: {len(by_margin)} groups by margin, {len(groups)} by cluster-margin")
        assert len(by_margin) <= 3  # the most uncertain near-copies, five by five
        assert len(clusters) == 10 and len(groups) == 10
        served = engine.stats()["clusters"]
        assert served["n_clusters"] == 100 and served["fitted_on"] == len(Y) - 9 and served["fits"] == 1

        # They label; before the next version, the next ten people start from other clusters.
        store.add_labels(
            [
                LabelRow(item.id, truth(item.id), f"ann{n}", False, "labels:0", 100 + n)
                for n, item in enumerate(items)
            ]
        )
        engine.sync()
        later = _ten_at_once(engine, 10)
        assert not {item.cluster for item in later} & clusters and len({group(i.id) for i in later}) == 10
        margins = [item.score for item in items + later]
        assert min(margins) > np.quantile(engine.pool.scores[engine.pool.held()], 0.5)  # still uncertain ones
    finally:
        engine.close()
        store.close()


def test_the_pool_is_clustered_again_on_a_new_version_only_once_it_changed_much(tmp_path):
    engine, store = _engine(tmp_path, "cluster_margin")
    offset = 1000

    def label_and_train(n: int) -> None:
        nonlocal offset
        items = engine.queue(n, annotator="ann")
        store.add_labels(
            [
                LabelRow(item.id, truth(item.id), "ann", False, "labels:0", offset + k)
                for k, item in enumerate(items)
            ]
        )
        offset += len(items)
        engine.sync()
        assert engine.train_step() is not None

    try:
        label_and_train(10)  # 10 of 1,491 left the pool: the same clustering
        assert engine.stats()["clusters"]["fits"] == 1
        more = np.random.default_rng(1).normal(0, 3, (400, 8)).astype(np.float32)
        store.add_samples([SampleRow(f"new{i}", row, None, None) for i, row in enumerate(more)])
        engine.sync()
        assert engine.stats()["clusters"]["fits"] == 1  # no version yet
        label_and_train(10)
        assert engine.stats()["clusters"]["fits"] == 2
    finally:
        engine.close()
        store.close()


def test_spread_order_takes_one_of_each_cluster_a_pass_and_served_clusters_wait():
    clusters = np.array([5, 5, 1, 5, 2, 1])  # best first
    assert spread_order(clusters, used={}).tolist() == [0, 2, 4, 1, 5, 3]
    assert spread_order(clusters, used={5: 1, 1: 2}).tolist() == [4, 0, 1, 2, 3, 5]
    assert spread_order(clusters[:0], used={}).tolist() == []


@pytest.mark.parametrize("name", ["cluster-margin", "Cluster_Margin"])
def test_the_service_takes_cluster_margin_by_name_and_refuses_what_only_experiments_run(name):
    assert Settings(strategy=name).strategy == "cluster_margin"
    with pytest.raises(
        ValueError, match=r"unknown strategy 'committee-vote': choose one of .*cluster_margin"
    ):
        Settings(strategy="committee-vote")
