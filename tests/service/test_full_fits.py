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
from alstream.service.full_fits import FullFits
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


def test_a_fit_is_taken_out_once_finished_and_the_next_rests_as_long_as_it_took():
    fits: FullFits[int] = FullFits(rest=1_000.0)
    gate = threading.Event()
    fits.start(lambda: (gate.wait(), 7)[1], "handed")
    assert fits.busy and fits.done() is None and not fits.rested()
    with pytest.raises(AssertionError):
        fits.start(lambda: 8, "a second at once")
    gate.set()
    wait_while_progressing(lambda: fits.done() is not None or not fits.busy, lambda: 0, what="the fit")
    assert not fits.busy and not fits.rested()  # it took a moment: 1,000 moments of rest
    fits.close()

    failing: FullFits[int] = FullFits(rest=0.0)
    failing.start(lambda: 1 // 0, "handed")
    while (done := failing.done()) is None:
        time.sleep(0.01)
    result, handed = done
    with pytest.raises(ZeroDivisionError):  # the fit's error comes out where its result would
        result()
    assert handed == "handed" and failing.rested()
    failing.close()


def test_the_engines_loop_goes_on_while_a_full_retrain_fits_and_publishes_what_it_was_handed(
    tmp_path: Path, monkeypatch
):
    """The fit of version 1 is held until the engine has read 1,000 samples and 10 labels more: it
    comes out with the 20 labels it was handed, and the 10 later ones make version 2."""
    monkeypatch.setattr(engine_module, "FULL_FIT_REST", 0.0)
    store = Store(f"sqlite:///{tmp_path}/store.db")
    store.create()
    policy = RetrainPolicy(after_labels=10, interval_s=3600.0, online=False)
    engine = Engine(EngineConfig(classes=CLASSES, n_features=2, track=False, policy=policy), store)
    gate, threads = threading.Event(), []
    full_fit = engine.trainer.full_fit

    def held(*args, **kwargs):
        fit = full_fit(*args, **kwargs)

        def run():
            threads.append(threading.current_thread().name)
            gate.wait() if len(threads) == 1 else None
            return fit()

        return run

    engine.trainer.full_fit = held  # type: ignore[method-assign]
    recorded, record = [], engine.records.record
    engine.records.record = lambda version, metrics: (  # type: ignore[method-assign]
        recorded.append((version.version, version.n_labels, version.last_label_id)),
        record(version, metrics),
    )[-1]
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
        assert len(threads) == 2 and all(name.startswith("alstream-fit") for name in threads)
        assert recorded == [(1, 20, handed_label_id), (2, 30, engine._last_label_id)]
        assert handed_label_id < engine._last_label_id
    finally:
        gate.set()
        stop.set()
        loop.join(timeout=30)
        engine.close()
        store.close()
    assert not loop.is_alive()
