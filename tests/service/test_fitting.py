"""Full retrains on a thread of their own: the engine's loop reads arrivals and labels while one
fits, and publishes it, with exactly the labels it was handed, once it is done."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from alstream.service import engine as engine_module
from alstream.service.engine import Engine, EngineConfig
from alstream.service.fitting import Fitting
from alstream.service.trainer import RetrainPolicy
from alstream.store import LabelRow, SampleRow, Store

from ..conftest import wait_while_progressing

CLASSES = ["a", "b"]


def _send(store: Store, start: int, n: int) -> None:
    """Samples ``s<start>`` on: the class is the first feature's sign."""
    rng = np.random.default_rng(start)
    rows = [
        SampleRow(f"s{i}", rng.normal(size=2).astype(np.float32), None, None) for i in range(start, start + n)
    ]
    store.add_samples(rows)


def test_a_job_is_taken_out_once_finished_and_a_full_retrain_rests_as_long_as_it_took():
    """Each job's end is waited for through ``finished`` (called once its result is set): no
    deadline of the test's own."""
    ended = threading.Semaphore(0)
    fitting: Fitting[int] = Fitting(rest=1_000.0, finished=ended.release)
    gate = threading.Event()
    fitting.start(lambda: (gate.wait(), 7)[1], "handed", rests=True)
    assert fitting.busy and fitting.done() is None and not fitting.rested()
    with pytest.raises(AssertionError):
        fitting.start(lambda: 8, "a second at once", rests=True)
    gate.set()
    ended.acquire()
    assert fitting.done() is not None
    assert not fitting.busy and not fitting.rested()  # it took a moment: 1,000 moments of rest
    fitting.close()

    fitting = Fitting(rest=1_000.0, finished=ended.release)
    fitting.start(lambda: (time.sleep(0.01), 7)[1], "an online update", rests=False)
    ended.acquire()
    assert fitting.done() is not None and fitting.rested()  # it does not rest
    fitting.start(lambda: 1 // 0, "handed", rests=False)
    ended.acquire()
    done = fitting.done()
    assert done is not None
    result, handed = done
    with pytest.raises(ZeroDivisionError):  # the job's error comes out where its result would
        result()
    assert handed == "handed" and fitting.rested()
    fitting.close()


def test_the_engines_loop_goes_on_while_a_full_retrain_fits_and_publishes_what_it_was_handed(
    tmp_path: Path, monkeypatch
):
    """The fit of version 1 is held until the engine has read 1,000 samples and 10 labels more: it
    comes out with the 20 labels it was handed, and the 10 later ones make version 2. Each version's
    scores of the pool, taken on the fitting thread, are what it scores now (the places filled while
    it was made scored again)."""
    monkeypatch.setattr(engine_module, "FULL_FIT_REST", 0.0)
    store = Store(f"sqlite:///{tmp_path}/store.db")
    store.create()
    policy = RetrainPolicy(after_labels=10, interval_s=3600.0, online=False)
    engine = Engine(EngineConfig(classes=CLASSES, n_features=2, track=False, policy=policy), store)
    gate, threads = threading.Event(), []
    score = engine.admission.score

    def held(model, X):  # the fitting thread's scores of the pool: its features as they were, held
        if threading.current_thread().name != "alstream-fit":
            return score(model, X)
        threads.append(threading.current_thread().name)
        X = X.copy()
        gate.wait() if len(threads) == 1 else None
        return score(model, X)

    engine.admission.score = held  # type: ignore[method-assign]
    recorded, record, pool = [], engine.records.record, engine.pool

    def recording(version, metrics):  # on the engine's thread, once the version's scores are in
        held = np.flatnonzero(pool.seq >= 0)
        exact = engine.admission.score(version.model, pool.features[held])
        right = bool(np.allclose(pool.scores[held], exact))
        recorded.append((version.version, version.n_labels, version.last_label_id, len(held), right))
        return record(version, metrics)

    engine.records.record = recording  # type: ignore[method-assign]
    _send(store, 0, 200)
    store.add_labels([LabelRow(f"s{i}", CLASSES[i % 2], "ann", False, "labels:0", i) for i in range(20)])
    stop = threading.Event()
    loop = threading.Thread(target=engine.run, args=(stop,), name="engine")
    loop.start()
    try:
        stats = lambda: engine.snapshot.stats  # noqa: E731
        wait_while_progressing(
            lambda: stats()["training_version"] == 1, lambda: engine._last_seq, what="the fit"
        )
        handed_label_id = engine._last_label_id

        _send(store, 200, 1_000)
        store.add_labels(
            [LabelRow(f"s{i}", CLASSES[i % 2], "ann", False, "labels:0", i) for i in range(20, 30)]
        )
        wait_while_progressing(  # read while version 1 fits
            lambda: engine._last_seq == 1_200 and stats()["labeled"] == 30,
            lambda: (engine._last_seq, stats()["labeled"]),
            stall_s=15,
            what="the engine's loop during a fit",
        )
        assert stats()["model_version"] is None and stats()["training_version"] == 1

        gate.set()
        wait_while_progressing(
            lambda: stats()["model_version"] == 2,
            lambda: (stats()["model_version"], stats()["training_version"]),
            what="versions 1 and 2",
        )
        curve = stats()["learning_curve"]
        assert [(p["version"], p["n_labels"]) for p in curve] == [(1, 20), (2, 30)]
        assert len(threads) == 2  # both versions scored the pool on the fitting thread
        assert [r[:3] for r in recorded] == [(1, 20, handed_label_id), (2, 30, engine._last_label_id)]
        assert recorded[0][3] > 1_000  # samples placed while version 1 was made: scored again
        assert [r[4] for r in recorded] == [True, True]  # each version's scores are of what is held
        assert handed_label_id < engine._last_label_id
    finally:
        gate.set()
        stop.set()
        loop.join(timeout=30)
        engine.close()
        store.close()
    assert not loop.is_alive()
