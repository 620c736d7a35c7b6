"""The stream's accuracy and its drift on several machines, on a real PostgreSQL: two stateless
replicas (the shared queue) lease random picks and record the model's guesses; the active trainer
(``TrainerRole``, on a thread here) scores them as the labels come. Both replicas' ``/stats`` show
the same estimate, running and per version, exactly the share of random items whose guess was
right (other labels do not count); a new trainer goes on from the store without counting a label
twice; a drift (the labels turn against the model) is found once, shown alike by both replicas, and
raises their random share for ``drift_boost_s``. Their learning curve is the trainer's versions."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from alstream.service.engine import EngineConfig
from alstream.service.featurize import StoredFeatures
from alstream.service.model_files import ModelFiles
from alstream.service.routes.stats import ReplicaStats, stats_out
from alstream.service.shared_audit import trainer_report
from alstream.service.shared_queue import SharedQueue
from alstream.service.snapshot import Snapshot
from alstream.service.trainer_role import TrainerRole
from alstream.settings import Settings
from alstream.store import LabelRow, SampleRow, Store

from ..conftest import wait_while_progressing
from .conftest import wait_for
from .processes import record_version

CLASSES = [str(c) for c in range(10)]
BEST, PICKS = 300, 400  # per shard, of two: more than the test leases
SHARE, BOOSTED = 0.3, 0.8  # random_share, drift_random_share


class System:
    """Two replicas, the store, and a trainer that can be stopped and started again."""

    def __init__(self, tmp_path: Path, url: str) -> None:
        self.store = Store(url)
        self.store.create()
        digits = load_digits()
        self.X, self.y = digits.data.astype(np.float32), digits.target.astype(str)
        self.store.add_samples([SampleRow(f"d-{i}", row, shard=i % 2) for i, row in enumerate(self.X)])
        models = tmp_path / "shared" / "models"
        record_version(self.store, models, self.X[:300], self.y[:300], number=1)
        ids = [f"d-{i}" for i in range(300, len(self.X))]  # not trained on
        for shard in range(2):
            mine = ids[shard::2]
            self.store.candidates.publish(
                shard,
                1,
                mine[:BEST],
                [1.0 - i / BEST for i in range(BEST)],
                picks=mine[BEST : BEST + PICKS],
                pick_scores=[0.0] * PICKS,
                stream=len(mine),
            )
        config = EngineConfig(
            classes=CLASSES, n_features=64, random_share=SHARE, drift_random_share=BOOSTED, track=False
        )
        self.replicas = [
            SharedQueue(config, Store(url), StoredFeatures(64), ModelFiles(models)) for _ in range(2)
        ]
        self.settings = Settings(
            database_url=url,
            data_dir=tmp_path / "shared",
            demo=False,
            mlflow=False,
            online_updates=False,
            retrain_after_labels=100_000,
            retrain_interval_s=3600.0,
            trainer_poll_s=0.2,
            random_share=SHARE,
            drift_random_share=BOOSTED,
            drift_boost_s=600.0,
        )
        self.trainer: tuple[TrainerRole, threading.Event, threading.Thread] | None = None
        self.offset = 0
        self.turn = 0

    def start_trainer(self) -> None:
        role, stop = TrainerRole(self.settings, track=False), threading.Event()
        thread = threading.Thread(target=role.run, args=(stop,), daemon=True)
        thread.start()
        self.trainer = role, stop, thread

    def stop_trainer(self) -> None:
        assert self.trainer is not None
        role, stop, thread = self.trainer
        stop.set()
        thread.join(timeout=60)
        role.close()
        self.trainer = None

    def lease(self, n: int) -> list:
        """``n`` items leased to a new annotator, half through each replica."""
        self.turn += 1
        items = []
        for k, replica in enumerate(self.replicas):
            items += replica.queue(n // 2, f"ann-{self.turn}-{k}", token=f"k{self.turn}-{k}")
        return items

    def label(self, items: list, right: bool = True) -> None:
        """Label ``items`` as the workers' consumers store labels: the truth, or (``right`` False)
        a class other than the model's guess."""
        rows = []
        for item in items:
            truth = self.y[int(item.id[2:])]
            label = truth if right else CLASSES[(CLASSES.index(item.predicted or "0") + 1) % 10]
            rows.append(LabelRow(item.id, label, "ann", False, "labels:0", self.offset))
            self.offset += 1
        self.store.write_batch([], rows)

    def stats(self) -> list[dict]:
        return [replica.stats() for replica in self.replicas]

    def close(self) -> None:
        if self.trainer is not None:
            self.stop_trainer()
        for replica in self.replicas:
            replica.store.close()
        self.store.close()


@pytest.fixture
def system(tmp_path: Path, postgres_url: str) -> Iterator[System]:
    made = System(tmp_path, postgres_url)
    try:
        yield made
    finally:
        made.close()


def random_items(items: list) -> list:
    return [item for item in items if item.reason == "random"]


def expected(system: System, audited: list) -> float:
    return float(np.mean([item.predicted == system.y[int(item.id[2:])] for item in audited]))


def scored(stats: dict) -> int:
    """The random items scored, over every version."""
    return sum(v["samples"] for v in stats["stream_accuracy_by_version"].values())


def wait_for_samples(system: System, n: int) -> None:
    wait_for(
        lambda: all(s["stream_accuracy_samples"] == n for s in system.stats()),
        timeout=60,
        what=f"both replicas showing {n} scored random items",
    )


@pytest.mark.timeout(300)
def test_replicas_show_the_trainers_stream_accuracy_and_drift(system: System) -> None:
    system.start_trainer()
    audited: list = []
    for _ in range(6):  # labeled truthfully: random ones and the best alike
        items = system.lease(20)
        system.label(items)
        audited += random_items(items)
    assert all(item.predicted is not None and item.model_version == 1 for item in audited)
    assert 15 <= len(audited) <= 60  # binomial(120, 0.3)
    wait_for_samples(system, len(audited))
    first, second = system.stats()
    assert first["stream_accuracy"] == pytest.approx(expected(system, audited))
    assert first["stream_accuracy_by_version"] == {
        "1": {"accuracy": pytest.approx(expected(system, audited)), "samples": len(audited)}
    }
    assert {k: first[k] for k in ("stream_accuracy", "drift")} == {
        k: second[k] for k in ("stream_accuracy", "drift")
    }
    assert first["drift"]["random_share"] == SHARE and first["drift"]["boost_until"] is None
    assert isinstance(stats_out(first, None), ReplicaStats)  # the shape /stats sends

    # a new trainer goes on from the store: nothing counted twice, the new labels counted
    system.stop_trainer()
    system.store.trainer_stats.report("gone", {})  # what the last one reported: gone too
    system.start_trainer()
    for _ in range(3):
        items = system.lease(20)
        system.label(items)
        audited += random_items(items)
    wait_for_samples(system, len(audited))
    assert system.stats()[0]["stream_accuracy"] == pytest.approx(expected(system, audited[-200:]))

    # the labels turn against the model: a drift, found once, shown by both replicas, the share raised
    for _ in range(40):
        items = system.lease(20)
        system.label(items, right=False)
        audited += random_items(items)
        if system.stats()[0]["drift"]["detected"]:
            break
    wait_for(lambda: all(s["drift"]["random_share"] == BOOSTED for s in system.stats()), what="the boost")
    wait_for(lambda: all(scored(s) == len(audited) for s in system.stats()), what="every audit scored")
    first, second = system.stats()
    assert first["drift"] == second["drift"]
    accuracy_drifts = [e for e in first["drift"]["events"] if e["signal"] == "accuracy"]
    assert len(accuracy_drifts) >= 1 and first["drift"]["detected"] == len(first["drift"]["events"])
    assert first["drift"]["boost_until"] is not None and first["stream_accuracy"] < 0.9
    assert isinstance(stats_out(first, None), ReplicaStats)
    served = system.lease(100)
    assert len(random_items(served)) >= 60, len(random_items(served))  # binomial(100, 0.8); 0.3 before

    # a new trainer keeps the drifts found and the boost, and goes on counting
    system.stop_trainer()
    system.start_trainer()
    system.label(served, right=False)  # the stream as it is now: no drift again, none replayed
    audited += random_items(served)
    wait_for(lambda: all(scored(s) == len(audited) for s in system.stats()), what="the new labels scored")
    again = system.stats()[0]["drift"]
    assert again["detected"] == first["drift"]["detected"] and again["random_share"] == BOOSTED
    assert again["boost_until"] == pytest.approx(first["drift"]["boost_until"], abs=1.0)


def test_every_report_names_the_same_end_of_the_boost() -> None:
    """Reports made at different times say the same ``boost_until`` (replicas reading different ones
    show the same), and none once the boost is over."""
    snapshot = Snapshot(random_share=SHARE, boost_share=BOOSTED, boost_until=100.0, boost_ends_at=1.8e9)
    early, late = trainer_report(snapshot, monotonic=10.0), trainer_report(snapshot, monotonic=99.9)
    assert early["boost_until"] == late["boost_until"] == 1.8e9
    assert trainer_report(snapshot, monotonic=100.0)["boost_until"] is None


@pytest.mark.timeout(300)
def test_replicas_show_the_learning_curve_of_the_trainers_versions(system: System) -> None:
    """Each version the trainer records is a point on both replicas' curves, as recorded (kind,
    labels, the stream's accuracy it was trained at); the version trained after the drift it found
    is marked."""
    more = {"retrain_after_labels": 40, "min_labels_per_class": 1}  # a version per round of 40 labels
    system.settings = system.settings.model_copy(update=more)
    system.start_trainer()

    def newest() -> int:
        return max(point["version"] for point in system.stats()[0]["learning_curve"])

    def progress() -> tuple:
        latest = system.store.latest_model()
        return (latest and latest["version"], [scored(s) for s in system.stats()])

    for version in (2, 3):  # labeled truthfully
        system.label(system.lease(40))
        wait_while_progressing(lambda v=version: newest() >= v, progress, what=f"version {version}")
    assert not any(point["drift"] for point in system.stats()[0]["learning_curve"])

    for _ in range(40):  # the labels turn against the model: a drift, and a full retrain at once
        system.label(system.lease(20), right=False)
        if system.stats()[0]["drift"]["detected"]:
            break
    drifts = [event["at"] for event in system.stats()[0]["drift"]["events"]]
    assert drifts, "no drift found"

    def trained_after_drift() -> bool:  # and both replicas show it
        [last] = system.store.newest_models(1)
        shown = {max(p["version"] for p in s["learning_curve"]) for s in system.stats()}
        return last["created_at"].timestamp() >= drifts[0] and shown == {last["version"]}

    wait_while_progressing(trained_after_drift, progress, what="a version after the drift")
    first, second = system.stats()
    assert first["learning_curve"] == second["learning_curve"]
    curve = first["learning_curve"]  # the trainer goes on: the rows up to the curve's newest
    rows = [r for r in system.store.models() if r["status"] == "ok" and r["version"] <= curve[-1]["version"]]
    assert [p["version"] for p in curve] == [row["version"] for row in rows] and len(rows) >= 4
    for point, row in zip(curve, rows, strict=True):
        assert {k: point[k] for k in ("kind", "n_labels")} == {k: row[k] for k in ("kind", "n_labels")}
        assert {k: v for k, v in point.items() if k not in ("version", "kind", "n_labels", "drift")} == row[
            "metrics"
        ]
    assert all(0 <= p["stream_accuracy"] <= 1 and p["stream_samples"] > 0 for p in curve[1:])  # trainer's
    after = next(row["version"] for row in rows if row["created_at"].timestamp() >= drifts[0])
    marked = [p["version"] for p in curve if p["drift"]]
    assert marked[0] == after, (marked, after)  # the first version after the first drift
    assert isinstance(stats_out(first, None), ReplicaStats)
