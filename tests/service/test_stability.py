"""The stopping rule in the service: a fixed stop set drawn from the stream, stabilizing predictions
read after each full version a batch of labels on, shown in /stats; the queue can pause then."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from alstream.learning.stopping import StabilizingPredictions
from alstream.service.engine import Engine, EngineConfig
from alstream.service.model_files import ModelFiles
from alstream.service.stability import STATE_FILE, Stability
from alstream.service.trainer import ModelVersion, RetrainPolicy
from alstream.store import LabelRow, SampleRow, Store

from .conftest import demo_service, label_until_stable, service_settings

X, Y = load_digits(return_X_y=True)
X = X.astype(np.float32)
CLASSES = [str(c) for c in range(10)]
BATCH = 10  # labels a round, and the policy's retrain_after_labels: one full version a round


POLICY = RetrainPolicy(after_labels=BATCH, interval_s=3600.0, online=True, full_every=5, min_per_class=2)


def _engine(tmp_path: Path, model_files: ModelFiles | None = None, **config) -> tuple[Engine, Store]:
    """Digits streamed into an engine, three labels per class given."""
    store = Store(f"sqlite:///{tmp_path}/store.db")
    store.create()
    config = EngineConfig(classes=CLASSES, n_features=64, track=False, policy=POLICY, **config)
    engine = Engine(config, store, model_files=model_files)
    store.add_samples([SampleRow(f"d{i}", X[i], None, None) for i in range(len(Y))])
    first = [i for c in range(10) for i in np.flatnonzero(np.equal(Y, c))[:3].tolist()]
    store.add_labels(
        [LabelRow(f"d{i}", str(Y[i]), "demo", False, "labels:0", n) for n, i in enumerate(first)]
    )
    engine.sync()
    engine.train_step()
    return engine, store


def _round(engine: Engine, store: Store, offset: int) -> int:
    """Label what the queue serves (by the truth), train; returns how many were labeled."""
    items = engine.queue(BATCH, annotator="ann")
    rows = [
        LabelRow(item.id, str(Y[int(item.id[1:])]), "ann", False, "labels:0", offset + n)
        for n, item in enumerate(items)
    ]
    store.add_labels(rows)
    engine.sync()
    while engine.train_step() is not None:
        pass
    return len(rows)


def _label_until_stable(engine: Engine, store: Store) -> int:
    """Rounds until the rule says stable; returns the labels given. Fails if the queue ran dry first."""
    offset = 30
    while not engine.stats()["stopping"]["stable"]:
        labeled = _round(engine, store, offset)
        assert labeled, f"the pool ran out at {offset} labels and the model never stabilised"
        offset += labeled
    return offset


def test_the_stop_set_is_a_bounded_seeded_sample_of_the_whole_stream_whatever_the_batches():
    rows = np.arange(10_000, dtype=np.float32)[:, None]
    one, other = Stability(n_features=1, step=10, size=200), Stability(n_features=1, step=10, size=200)
    one.offer(np.arange(10_000), rows)
    for start in range(0, 10_000, 333):
        other.offer(np.arange(start, min(start + 333, 10_000)), rows[start : start + 333])
    assert len(one.keys) == 200 and np.array_equal(np.sort(one.X[:, 0]), np.sort(other.X[:, 0]))
    deciles = np.bincount(one.X[:, 0].astype(int) // 1000, minlength=10)
    assert deciles.min() > 0, deciles  # from the whole stream, not its start or its end
    assert Stability(n_features=2**16, step=10).size < 1000  # wide rows: fewer, within the memory bound


def test_only_full_versions_a_batch_of_labels_apart_are_compared():
    stability = Stability(n_features=1, step=10, rule=StabilizingPredictions(window=2, threshold=0.9))
    X1 = np.linspace(-3, 3, 50, dtype=np.float32)[:, None]
    stability.offer(np.arange(50), X1)
    model = LogisticRegression().fit(X1, X1[:, 0] > 0)

    def version(number: int, n_labels: int, kind: str = "full") -> ModelVersion:
        return ModelVersion(number, model, kind, n_labels=n_labels, created_at=0.0)

    stability.checkpoint(version(1, 30))
    stability.checkpoint(version(2, 35))  # 5 labels on: not compared
    stability.checkpoint(version(3, 60, kind="online"))  # online: not compared
    assert stability.state()["compared_version"] == 1 and not stability.kappas
    stability.checkpoint(version(4, 40))
    assert not stability.stable  # one pair, the window is two
    stability.checkpoint(version(5, 50))
    assert stability.stable and stability.since_version == 5 and stability.kappa == 1.0
    stability.reset()  # a drift
    assert not stability.stable and stability.state()["kappa"] is None and len(stability.keys) == 50


def test_labeling_digits_until_the_model_stabilises_and_stats_say_so(tmp_path: Path):
    engine, store = _engine(tmp_path)
    try:
        first = engine.stats()["stopping"]
        assert first["stable"] is False and first["kappa"] is None and first["stop_set"] == 1000
        labels = _label_until_stable(engine, store)
        stopping = engine.stats()["stopping"]
        assert stopping["kappa"] >= 0.99 and len(stopping["kappas"]) == 3 and stopping["paused"] is False
        assert stopping["since_version"] == stopping["compared_version"] <= engine.serving.version
        left = [i for i in range(len(Y)) if f"d{i}" in engine.pool.index]
        accuracy = (engine.serving.model.predict(X[left]) == np.array(CLASSES)[Y[left]]).mean()
        print(f"stable after {labels} labels, accuracy {accuracy:.3f} on the {len(left)} left")
        assert 60 < labels < len(Y) // 2 and accuracy > 0.9  # neither at once nor at the end
        assert len(engine.queue(5, annotator="bob")) == 5  # pause_when_stable is off: it still serves
    finally:
        engine.close()
        store.close()


def test_pause_when_stable_empties_the_queue_with_the_reason_until_a_drift(tmp_path: Path):
    engine, store = _engine(tmp_path, pause_when_stable=True)
    try:
        assert engine.queue(BATCH, annotator="bob")  # not stable yet: it serves
        engine.release([item.id for item in engine.queue(BATCH, annotator="bob")], "bob")
        _label_until_stable(engine, store)
        items, reason = engine.lease(5, annotator="carol")
        assert items == [] and reason is not None and "the model has stabilised" in reason
        assert engine.queue(5, annotator="ann") == [] and engine.stats()["stopping"]["paused"] is True
        engine._drifted("scores")  # a drift: the rule starts over, the model retrains at once
        engine.train_step()
        assert engine.lease(5, annotator="carol")[1] is None and len(engine.queue(5, annotator="carol")) == 5
    finally:
        engine.close()
        store.close()


def test_the_service_pauses_its_queue_once_stable_and_says_why(tmp_path, request):
    settings = service_settings(tmp_path, "embedded", request, pause_when_stable=True, random_share=0.0)
    with demo_service(settings) as client:
        label_until_stable(client, lambda sample_id: str(Y[int(sample_id.removeprefix("digit-"))]))
        stopping = client.get("/stats").json()["stopping"]
        assert stopping["paused"] is True and stopping["kappa"] >= 0.99
        answer = client.get("/queue", params={"n": BATCH, "annotator": "ann"})
        assert answer.status_code == 200 and answer.json() == []
        assert "the model has stabilised" in answer.headers["Alstream-Queue-Paused"]


def test_a_restarted_stability_resumes_from_its_file_and_offers_nothing_twice(tmp_path: Path):
    path, rule = tmp_path / STATE_FILE, StabilizingPredictions(window=2, threshold=0.9)
    rows = np.linspace(-3, 3, 300, dtype=np.float32)[:, None]
    model = LogisticRegression().fit(rows, rows[:, 0] > 0)
    one = Stability(n_features=1, step=10, rule=rule, size=50, path=path)
    one.offer(np.arange(200), rows[:200])
    for number in (1, 2, 3):
        one.checkpoint(ModelVersion(number, model, "full", n_labels=10 * number, created_at=0.0))
    assert one.stable
    again = Stability(n_features=1, step=10, rule=rule, size=50, path=path)
    assert again.resume(newest_version=3) and again.state() == one.state()
    assert np.array_equal(again.keys, one.keys) and np.array_equal(again.X, one.X)
    again.offer(np.arange(300), rows)  # a restart reads the store again, from its first sample
    one.offer(np.arange(200, 300), rows[200:])  # what the first one would have been offered
    assert np.array_equal(np.sort(again.keys), np.sort(one.keys)) and len(again.keys) == 50
    again.checkpoint(ModelVersion(4, model, "full", n_labels=40, created_at=0.0))
    assert again.state()["compared_version"] == 4 and again.since_version == 3  # the run goes on
    stale = Stability(n_features=1, step=10, rule=rule, size=50, path=path)
    assert not stale.resume(newest_version=2)  # another store: it has no version 4
    assert not Stability(n_features=1, step=10, rule=rule, size=60, path=path).resume(newest_version=9)
    again.reset()  # a drift: a restart after it starts over too
    assert Stability(n_features=1, step=10, rule=rule, size=50, path=path).resume(4)
    assert Stability(n_features=1, step=10, rule=rule, size=50, path=path).kappa is None


def test_a_restarted_engine_reports_the_same_stable_state_and_goes_on_with_new_labels(tmp_path: Path):
    models = ModelFiles(tmp_path / "models")
    engine, store = _engine(tmp_path, models)
    try:
        labels = _label_until_stable(engine, store)
        before = engine.stats()["stopping"]
        assert before["stable"] and (tmp_path / STATE_FILE).exists()
    finally:
        engine.close()
    restarted = Engine(
        EngineConfig(classes=CLASSES, n_features=64, track=False, policy=POLICY), store, model_files=models
    )
    try:
        restarted.sync()
        while restarted.train_step() is not None:
            pass
        after = restarted.stats()["stopping"]
        assert after == before, (before, after)  # no new label: the same stable state and kappa
        _round(restarted, store, labels)
        went_on = restarted.stats()["stopping"]
        assert went_on["compared_version"] > before["compared_version"]
        assert went_on["kappas"][:-1] == before["kappas"][1:]  # the window slid on: it did not start over
    finally:
        restarted.close()
        store.close()
