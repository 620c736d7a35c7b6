"""What retention asks of the store, on SQLite and PostgreSQL: arrival times, and deleting only
samples no label names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from alstream.store import LabelRow, SampleRow


def test_arrivals_are_timed_and_only_unlabeled_samples_are_deleted(store):
    before = datetime.now(UTC) - timedelta(seconds=5)
    store.add_samples([SampleRow(f"s{i}", np.zeros(2, dtype=np.float32), None, None) for i in range(10)])
    store.add_labels(
        [LabelRow("s2", "a", "ann", False, "labels:0", 0), LabelRow("s3", None, "ann", True, "labels:0", 1)]
    )
    seqs, old = store.arrivals_after(0, before, 100)
    assert len(seqs) == 10 and not old.any()  # arrived after `before`
    seqs, old = store.arrivals_after(int(seqs[4]), datetime.now(UTC) + timedelta(seconds=5), 3)
    assert len(seqs) == 3 and old.all()  # in seq order, after the one given
    everything, _ = store.arrivals_after(0, before, 100)
    assert store.delete_unlabeled(everything[:5].tolist()) == 3  # s2 is labeled, s3 skipped: both stay
    assert {s["id"] for s in store.get_samples([f"s{i}" for i in range(10)])} == {
        f"s{i}" for i in (2, 3, *range(5, 10))
    }
    assert store.counts()["labels_total"] == 2


def test_a_range_is_deleted_in_one_statement_but_the_kept_labeled_and_recent_ones(store):
    store.add_samples([SampleRow(f"s{i}", np.zeros(2, dtype=np.float32), None, None) for i in range(20)])
    store.add_labels([LabelRow("s5", "a", "ann", False, "labels:0", 0)])
    seqs, _ = store.arrivals_after(0, datetime.now(UTC), 100)
    keep = [int(seqs[7]), int(seqs[8])]
    assert (
        store.delete_unlabeled_between(
            int(seqs[0]), int(seqs[14]), datetime.now(UTC) - timedelta(hours=1), keep
        )
        == 0
    )
    deleted = store.delete_unlabeled_between(
        int(seqs[0]), int(seqs[14]), datetime.now(UTC) + timedelta(seconds=5), keep
    )
    assert deleted == 15 - 2 - 1  # s7 and s8 kept (in the pool), s5 labeled
    left = {s["id"] for s in store.get_samples([f"s{i}" for i in range(20)])}
    assert left == {"s5", "s7", "s8", *(f"s{i}" for i in range(15, 20))}


def test_arrival_times_compare_in_any_time_zone_and_are_stored_as_before(store):
    """``before`` in another zone means the same instant; SQLite rows hold the text sqlite3's own
    datetime adapter writes (the rows of earlier versions), so old and new rows compare alike."""
    from datetime import timezone

    start = datetime.now(UTC)
    store.add_samples([SampleRow(f"s{i}", np.zeros(2, dtype=np.float32), None, None) for i in range(3)])
    plus_two = timezone(timedelta(hours=2))
    _, old = store.arrivals_after(0, (start - timedelta(seconds=5)).astimezone(plus_two), 10)
    assert not old.any()
    _, old = store.arrivals_after(0, (datetime.now(UTC) + timedelta(seconds=5)).astimezone(plus_two), 10)
    assert old.all()
    if store.dialect == "sqlite":
        with store.engine.connect() as conn:
            stored = conn.exec_driver_sql("SELECT arrived_at FROM samples").scalars().all()
        assert all(datetime.fromisoformat(t).isoformat(" ") == t and t.endswith("+00:00") for t in stored)


def test_the_samples_past_a_time_and_the_labeled_ones_are_counted(store):
    """What a consumer apart asks to know retention's backlog (``service/backlog.py``)."""
    store.add_samples([SampleRow(f"s{i}", np.zeros(2, dtype=np.float32), None, None) for i in range(6)])
    between = datetime.now(UTC)
    store.add_samples([SampleRow(f"t{i}", np.zeros(2, dtype=np.float32), None, None) for i in range(4)])
    assert store.count_arrived_before(between - timedelta(hours=1)) == 0
    assert store.count_arrived_before(between) == 6
    assert store.count_arrived_before(datetime.now(UTC) + timedelta(seconds=5)) == 10
    assert store.count_labeled_samples() == 0
    store.add_labels(
        [
            LabelRow("s1", "a", "ann", False, "labels:0", 0),
            LabelRow("s1", "b", "ann", False, "labels:0", 1),  # relabeled: one sample
            LabelRow("t2", None, "ann", True, "labels:0", 2),  # skipped: kept too
            LabelRow("gone", "a", "ann", False, "labels:0", 3),  # before its sample
        ]
    )
    assert store.count_labeled_samples() == 3


def test_the_count_past_a_time_finds_the_young_ones_behind_gaps_and_untimed_rows(store):
    """The young rows' first seq is found by bisection: deleted runs of seqs, rows from before
    arrival times were kept (NULL: old), an empty store, every boundary: the count is the scan's."""
    from sqlalchemy import update

    from alstream.store.tables import samples

    assert store.count_arrived_before(datetime.now(UTC)) == 0
    store.add_samples([SampleRow(f"s{i}", np.zeros(2, dtype=np.float32), None, None) for i in range(40)])
    seqs, _ = store.arrivals_after(0, datetime.now(UTC), 100)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with store.transaction() as conn:
        for i, seq in enumerate(seqs.tolist()):
            at = None if i < 3 else start + timedelta(seconds=i)
            conn.execute(update(samples).where(samples.c.seq == seq).values(arrived_at=at))
    store.delete_unlabeled([int(s) for s in seqs[5:12]] + [int(s) for s in seqs[30:33]])
    deleted = [*range(5, 12), *range(30, 33)]
    kept = [i for i in range(40) if i not in deleted]
    for second in range(-1, 42):
        expected = sum(1 for i in kept if i < 3 or i < second)
        if store.dialect == "sqlite":  # young seqs are taken as all there (retention deletes old ones):
            young = next((i for i in kept if i >= max(3, second)), 40)  # the young rows deleted here count
            expected = max(0, expected - sum(1 for i in deleted if i > young))  # as young: fewer old
        assert store.count_arrived_before(start + timedelta(seconds=second)) == expected, second
