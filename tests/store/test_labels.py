"""Label history, "latest wins", skipped labels, conflicts and counts."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import sqlalchemy.exc

from alstream.store import LabelRow, SampleRow, Store
from alstream.store import store as store_module

from ..conftest import create_database


def seed(store: Store, n: int = 5) -> None:
    store.add_samples([SampleRow(f"s{i}", np.zeros(2, dtype=np.float32), None, None) for i in range(n)])


class Stream:
    """Label events with consecutive offsets on one partition."""

    def __init__(self) -> None:
        self.offset = 0

    def __call__(self, sid: str, name: str | None, annotator: str | None = "ann") -> LabelRow:
        self.offset += 1
        return LabelRow(sid, name, annotator, name is None, "labels:0", self.offset)


def test_latest_label_wins_and_history_is_kept(store: Store) -> None:
    seed(store)
    ev = Stream()
    store.add_labels([ev("s0", "cat"), ev("s1", "dog")])
    store.add_labels([ev("s0", "dog", "bob"), ev("s1", None)])
    assert store.current_labels() == {"s0": ("dog", "bob", False), "s1": (None, "ann", True)}
    history = store.labels_after(0)
    assert [(sid, name) for _, sid, name, *_ in history] == [
        ("s0", "cat"),
        ("s1", "dog"),
        ("s0", "dog"),
        ("s1", None),
    ]
    assert [h[4] for h in history] == [False, False, False, True]
    assert store.counts() == {"samples": 5, "labeled": 1, "skipped": 1, "labels_total": 4}


def test_replayed_old_label_does_not_override_newer_one(store: Store) -> None:
    seed(store)
    old, new = (
        LabelRow("s0", "cat", "a", False, "labels:0", 1),
        LabelRow("s0", "dog", "a", False, "labels:0", 2),
    )
    store.add_labels([old, new])
    assert store.add_labels([old]) == 0
    assert store.current_labels()["s0"][0] == "dog"


def test_same_offset_on_another_partition_is_another_label(store: Store) -> None:
    seed(store)
    assert store.add_labels([LabelRow("s0", "a", None, False, "labels:0", 7)]) == 1
    assert store.add_labels([LabelRow("s1", "b", None, False, "labels:1", 7)]) == 1
    assert store.counts()["labels_total"] == 2


def test_labels_after_is_incremental(store: Store) -> None:
    seed(store)
    ev = Stream()
    before = datetime.now(UTC) - timedelta(seconds=5)
    store.add_labels([ev(f"s{i}", "x") for i in range(5)])
    first = store.labels_after(0, limit=2)
    assert len(first) == 2
    rest = store.labels_after(first[-1][0])
    assert [r[1] for r in first + rest] == [f"s{i}" for i in range(5)]
    assert all(r[5].tzinfo is not None and r[5] > before for r in rest)
    assert store.labels_after(rest[-1][0]) == []


def test_skipped_labels_stay_out_of_label_counts(store: Store) -> None:
    seed(store)
    ev = Stream()
    store.add_labels([ev("s0", "cat"), ev("s1", "cat"), ev("s2", "dog"), ev("s3", None), ev("s2", None)])
    assert store.label_counts() == {"cat": 2}
    assert store.counts() == {"samples": 5, "labeled": 2, "skipped": 2, "labels_total": 5}


def test_conflicts_list_disagreeing_annotators(store: Store) -> None:
    seed(store)
    ev = Stream()
    store.add_labels(
        [
            ev("s0", "cat", "ann"),
            ev("s0", "dog", "bob"),  # conflict
            ev("s1", "cat", "ann"),
            ev("s1", "cat", "bob"),  # agreement
            ev("s2", "cat", "ann"),
            ev("s2", "dog", "ann"),  # one annotator changing their mind
            ev("s3", "cat", "ann"),
            ev("s3", None, "bob"),  # a skip is no opinion
            ev("s4", "cat", "ann"),
            ev("s4", "dog", "bob"),
            ev("s4", "cat", "bob"),  # resolved: bob's latest agrees
        ]
    )
    assert store.conflicts() == [
        {
            "sample_id": "s0",
            "labels": [{"annotator": "ann", "label": "cat"}, {"annotator": "bob", "label": "dog"}],
        }
    ]


def test_a_reader_following_label_ids_misses_no_label_of_writers_that_commit_out_of_order(
    store: Store,
) -> None:
    # Two consumers store labels at once (the workers' labels consumers, on PostgreSQL): the first
    # takes its ids, the second takes later ones and commits first. A reader that reads the labels
    # above the last id it saw (the trainer, every worker's engine) must still get the first's.
    seed(store)
    held, first_stored = threading.Event(), threading.Event()

    def first() -> None:
        with store.transaction() as conn:
            store.add_labels([LabelRow("s0", "cat", "ann", False, "labels:0", 1)], conn)
            first_stored.set()
            held.wait(30)  # committed only once the reader has looked

    writer = threading.Thread(target=first)
    writer.start()
    assert first_stored.wait(30)
    second = threading.Thread(
        target=store.add_labels, args=([LabelRow("s1", "dog", "ann", False, "labels:1", 1)],)
    )
    second.start()
    second.join(2)  # it commits at once, unless it waits for the first
    seen = store.labels_after(0)
    last = max((row[0] for row in seen), default=0)
    held.set()
    writer.join(30)
    second.join(30)
    seen += store.labels_after(last)
    assert sorted(row[1] for row in seen) == ["s0", "s1"]


def test_a_writer_stopped_between_its_labels_and_its_commit_holds_up_the_others_briefly(
    postgres_admin_url: str, monkeypatch
) -> None:
    # the labels' lock (PostgreSQL's; SQLite's writers take turns by its file lock, in one process)
    # makes writers of labels take turns; one that stops holding it (a paused process, a lost
    # network) is ended by the server, and the next goes on
    monkeypatch.setattr(store_module, "LABELS_IDLE_S", 1)
    store = Store(create_database(postgres_admin_url))
    store.create()
    seed(store)
    stalled = store.engine.connect()
    transaction = stalled.begin()
    store.add_labels([LabelRow("s0", "cat", "ann", False, "labels:0", 1)], stalled)  # then it stops
    other = threading.Thread(
        target=store.write_batch,
        args=([], [LabelRow("s1", "dog", "bob", False, "labels:1", 1)]),
        daemon=True,
    )
    try:
        other.start()
        other.join(120)  # without an end to the stalled one: as long as it stays stopped (for ever here)
        assert not other.is_alive()
        with pytest.raises(sqlalchemy.exc.DBAPIError):  # the server ended it: its batch is read again
            transaction.commit()
        assert [row[1] for row in store.labels_after(0)] == ["s1"]
    finally:
        stalled.close()
        store.close()
