"""Stopping the consumer while a batch is being written (it is written on a thread of its own):
a write that fails or hangs at that moment never raises out of the loop, never keeps the loop (with
a ``hold`` or without) or the process from ending, and its batch stays uncommitted, so the next
consumer stores it. The writer's thread lives as long as its ingestor."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from alstream.messages import ProjectSchema, Sample, encode_sample
from alstream.service import ingest
from alstream.service.ingest import Ingestor, Topics
from alstream.store import Store
from alstream.stream import open_stream

SCHEMA = ProjectSchema(classes=["a", "b"], n_features=2)
N = 50


def _publish(data: Path) -> None:
    stream = open_stream(None, data)
    try:
        samples = [Sample(id=f"s{i}", features=np.array([i, 1], dtype=np.float32)) for i in range(N)]
        stream.publish(Topics().samples, [(s.id.encode(), encode_sample(s)) for s in samples])
    finally:
        stream.close()


def _stored_by_a_new_consumer(data: Path, url: str) -> int:
    """Consume what is left uncommitted with a working store: how many samples it stores."""
    store, stream = Store(url), open_stream(None, data)
    ingestor = Ingestor(stream, store, SCHEMA, Topics(), "g")
    try:
        while ingestor.step(timeout=1.0):
            pass
        return store.counts()["samples"]
    finally:
        ingestor.close()
        stream.close()
        store.close()


class FailingStore(Store):
    def write_batch(self, samples, labels):  # type: ignore[no-untyped-def]
        raise RuntimeError("the disk is full")  # not the records' fault: never dead-lettered


def test_a_write_failing_as_the_stop_comes_is_logged_and_its_batch_read_again(tmp_path, caplog):
    data, url = tmp_path / "data", f"sqlite:///{tmp_path}/store.db"
    _publish(data)
    store, stream = FailingStore(url), open_stream(None, data)
    store.create()
    ingestor = Ingestor(stream, store, SCHEMA, Topics(), "g")
    stop = threading.Event()
    step = ingestor.step

    def step_then_stop() -> int:  # the stop comes while the batch this step handed over is written
        polled = step()
        stop.set()
        return polled

    ingestor.step = step_then_stop  # type: ignore[method-assign]
    try:
        ingestor.run(stop)  # returns: the failure is logged, not raised out of the loop
    finally:
        ingestor.close()
        stream.close()
        store.close()
    assert "the last batch was not stored before the stop" in caplog.text
    assert _stored_by_a_new_consumer(data, url) == N


PROBE = """
import sys, threading
from pathlib import Path
from alstream.messages import ProjectSchema
from alstream.service import ingest
from alstream.store import Store
from alstream.stream import open_stream

class HungStore(Store):
    def write_batch(self, samples, labels):
        threading.Event().wait()  # a database that stopped answering

ingest.STOP_WAIT_S = 0.5
store, stream = HungStore(sys.argv[2]), open_stream(None, Path(sys.argv[1]))
schema = ProjectSchema(classes=["a", "b"], n_features=2)
ingestor = ingest.Ingestor(stream, store, schema, ingest.Topics(), "g")
stop = threading.Event()
ingestor.step = (lambda step: lambda: (step(), stop.set())[0])(ingestor.step)
ingestor.run(stop)
ingestor.close()
stream.close()
print("closed", flush=True)
"""


def test_a_hung_write_keeps_neither_the_stop_nor_the_process_exit_waiting(tmp_path):
    data, url = tmp_path / "data", f"sqlite:///{tmp_path}/store.db"
    _publish(data)
    Store(url).create()
    probe = tmp_path / "probe.py"
    probe.write_text(textwrap.dedent(PROBE))
    # Generous: it waits 0.5 s for the hung write; without a bound on the waits it would never end.
    command = [sys.executable, str(probe), str(data), url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "closed" in done.stdout
    assert _stored_by_a_new_consumer(data, url) == N  # the hung batch was not committed


def test_a_held_consumer_with_a_hung_write_stops_too(tmp_path, monkeypatch):
    # with a ``hold`` (``alstream serve``, ``alstream consume`` with retention) each batch is waited
    # for before the next poll: that wait ends when the stop comes, STOP_WAIT_S later at most
    monkeypatch.setattr(ingest, "STOP_WAIT_S", 0.3)
    data, url = tmp_path / "data", f"sqlite:///{tmp_path}/store.db"
    _publish(data)
    release, entered = threading.Event(), threading.Event()

    class HungStore(Store):
        def write_batch(self, samples, labels):  # type: ignore[no-untyped-def]
            entered.set()
            release.wait(120)  # a database that stopped answering
            return super().write_batch(samples, labels)

    store, stream = HungStore(url), open_stream(None, data)
    store.create()
    ingestor = Ingestor(stream, store, SCHEMA, Topics(), "g", hold=lambda: False)
    stop = threading.Event()
    runner = threading.Thread(target=ingestor.run, args=(stop,), daemon=True)
    try:
        runner.start()
        assert entered.wait(60)
        stop.set()
        runner.join(60)  # without a bound on the wait: until the write ends (never, here)
        assert not runner.is_alive()
    finally:
        release.set()
        runner.join(60)
        ingestor.close()
        stream.close()
        store.close()
    assert _stored_by_a_new_consumer(data, url) == N


def test_an_ingestor_whose_consumer_cannot_open_leaves_no_writer_thread(tmp_path, monkeypatch):
    def busy(self):  # type: ignore[no-untyped-def]
        raise RuntimeError("the group is busy")  # as ConsumerBusy, or a broker that cannot be reached

    monkeypatch.setattr(Ingestor, "_open", busy)
    store = Store(f"sqlite:///{tmp_path}/store.db")
    before = set(threading.enumerate())
    try:
        for _ in range(3):
            with pytest.raises(RuntimeError):
                Ingestor(None, store, SCHEMA, Topics(), "g")  # type: ignore[arg-type]
    finally:
        store.close()
    assert not [t for t in set(threading.enumerate()) - before if t.name == "alstream-store"]
