"""What the random items' audits cost the store, on SQLite and PostgreSQL: a replica's lease records
its random items' guesses in its own transaction (committed with it, seen by any other connection as
soon as ``queue`` returns), and a store that cannot record them still serves the items; the
trainer's sync reads the open guesses with the labels (no statement of their own) and scores them
in one statement."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sqlalchemy import Engine as SqlEngine
from sqlalchemy import event

from alstream.service.engine import Engine, EngineConfig
from alstream.service.featurize import StoredFeatures
from alstream.service.model_files import ModelFiles
from alstream.service.shared_queue import SharedQueue
from alstream.store import LabelRow, SampleRow, Store, label_events
from alstream.store.tables import audits

from .processes import record_version

CLASSES = [str(c) for c in range(10)]
N = 200


class Counted:
    """Statements (SQLite's BEGINs aside: its transactions), commits and connection checkouts on
    ``engine`` (its pool) since made."""

    def __init__(self, engine: SqlEngine) -> None:
        self.numbers = {"statements": 0, "commits": 0, "checkouts": 0}
        self._lock = threading.Lock()
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", lambda *_: self._add("commits"))
        event.listen(engine.pool, "checkout", lambda *_: self._add("checkouts"))

    def _statement(self, _conn, _cursor, statement: str, *_) -> None:
        if not statement.startswith("BEGIN"):
            self._add("statements")

    def _add(self, what: str) -> None:
        with self._lock:
            self.numbers[what] += 1

    def during(self, call) -> dict[str, int]:
        before = dict(self.numbers)
        call()
        return {k: self.numbers[k] - before[k] for k in before}


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def replica(url: str, tmp_path: Path) -> Iterator[SharedQueue]:
    """A replica whose every item is a random pick (version 1 of a model on the digits serves)."""
    store = Store(url)
    store.create()
    digits = load_digits()
    X, y = digits.data[:N].astype(np.float32), digits.target[:N].astype(str)
    store.add_samples([SampleRow(f"d-{i}", row, shard=0) for i, row in enumerate(X)])
    record_version(store, tmp_path / "models", X, y, number=1)
    ids = [f"d-{i}" for i in range(N)]
    store.candidates.publish(0, 1, ids[:10], [0.9] * 10, picks=ids[10:], pick_scores=[0.1] * 190, stream=N)
    config = EngineConfig(classes=CLASSES, n_features=X.shape[1], random_share=1.0, drift_random_share=1.0)
    shared = SharedQueue(config, store, StoredFeatures(X.shape[1]), ModelFiles(tmp_path / "models"))
    assert shared.serving is not None and shared.random_share() == 1.0
    shared._checked = shared.reported._read_at = float("inf")  # not read again: a lease's cost alone
    yield shared
    store.close()


def test_a_lease_and_its_guesses_are_one_transaction(replica: SharedQueue, url: str) -> None:
    counted = Counted(replica.store.engine)
    items: list = []
    numbers = counted.during(lambda: items.extend(replica.queue(5, "ann", token="k")))
    assert len(items) == 5 and all(item.reason == "random" for item in items)
    assert numbers["commits"] == 1 and numbers["checkouts"] == 1, numbers  # before: 2 and 3
    with Store(url) as other:  # another connection sees them at once: committed with the lease
        guesses = sorted(other.audits.open([item.id for item in items]))
    assert guesses == sorted((item.id, 1, item.predicted) for item in items)


def test_a_store_that_cannot_record_the_guesses_still_serves_the_items(
    replica: SharedQueue, caplog: pytest.LogCaptureFixture
) -> None:
    with replica.store.engine.begin() as conn:
        audits.drop(conn)
    with caplog.at_level(logging.ERROR, logger="alstream.service.shared_queue"):
        items = replica.queue(5, "ann", token="k")
    assert len(items) == 5 and all(item.predicted is not None for item in items)
    assert "leased again without" in caplog.text
    assert replica.store.candidates.counts()["leased"] == 5  # the failed attempt's leases undone


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    made = Store(url)
    made.create()
    X = np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32)
    made.add_samples([SampleRow(f"s{i}", X[i]) for i in range(40)])
    made.audits.served([(f"s{i}", 1, "a") for i in range(0, 40, 2)])  # the even ones served at random
    yield made
    made.close()


def test_the_trainer_reads_the_open_guesses_with_the_labels_and_writes_their_scores_with_the_next(
    store: Store,
) -> None:
    """Over a batch with open guesses and the sync after it, the engine that scores the audits costs
    no connection more than its peer that does not, and no statement more on PostgreSQL (the scores
    written in the next read's statement), one on SQLite (in its transaction); none at all for a
    batch without (before: 2 statements and 2 connections more)."""
    config = EngineConfig(classes=["a", "b"], n_features=8, track=False)
    audited, peer = Engine(config, store, audits=store.audits), Engine(config, store)
    counted = Counted(store.engine)
    try:
        for engine in (audited, peer):
            engine.sync()  # the samples

        def twice(engine: Engine) -> None:
            engine.sync()
            engine.sync()

        def batch(first: int) -> tuple[dict[str, int], dict[str, int]]:
            ids = range(first, first + 20, 2)
            store.add_labels([LabelRow(f"s{i}", "ab"[i % 4 // 2], "ann", False, "t:0", i) for i in ids])
            return counted.during(lambda: twice(audited)), counted.during(lambda: twice(peer))

        with_guesses, without = batch(0), batch(1)  # s0, s2, ... s18; then s1, s3, ... s19
        extra = 0 if store.dialect == "postgresql" else 1
        assert with_guesses[0]["statements"] == with_guesses[1]["statements"] + extra, with_guesses
        assert with_guesses[0]["checkouts"] == with_guesses[1]["checkouts"], with_guesses
        assert without[0] == without[1], without
        assert store.audits.counts() == {"open": 10, "scored": 10}
        assert store.audits.tallies() == {1: (5, 10)}  # "a" right for s0, s4, ...; "b" for s2, s6, ...
        assert audited.quality.estimate() == (0.5, 10)
        store.add_labels([LabelRow("s20", "a", "ann", False, "t:0", 20)])
        audited.sync()  # scored, not written yet: the engine writes it as it closes
    finally:
        audited.close()
        peer.close()
    assert store.audits.counts() == {"open": 9, "scored": 11}


def test_scores_the_store_could_not_take_are_written_with_a_later_read(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = EngineConfig(classes=["a", "b"], n_features=8, track=False)
    engine = Engine(config, store, audits=store.audits)
    try:
        store.add_labels([LabelRow("s0", "a", "ann", False, "t:0", 0)])
        engine.sync()  # s0 scored, its score kept for the next read
        read = label_events.rows_after

        def down(*_, **__) -> None:
            raise OSError("the store is away")

        monkeypatch.setattr(label_events, "rows_after", down)
        with pytest.raises(OSError):
            engine.sync()
        monkeypatch.setattr(label_events, "rows_after", read)
        engine.sync()
        assert store.audits.counts() == {"open": 19, "scored": 1}
    finally:
        engine.close()
