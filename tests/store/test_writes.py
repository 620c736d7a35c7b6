"""Idempotent, atomic batch writes; arrival order; exact feature round-trips."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alstream.store import LabelRow, SampleRow, Store


def sample(i: int, d: int = 4) -> SampleRow:
    return SampleRow(f"s{i}", np.arange(d, dtype=np.float32) + i, None, {"i": i})


def label(i: int, offset: int, name: str | None = "a", annotator: str = "ann") -> LabelRow:
    return LabelRow(f"s{i}", name, annotator, name is None, "labels:0", offset)


def test_same_batch_twice_is_stored_once(store: Store) -> None:
    samples = [sample(i) for i in range(10)]
    labels = [label(i, i) for i in range(5)]
    assert store.write_batch(samples, labels) == (10, 5)
    assert store.write_batch(samples, labels) == (0, 0)
    assert store.add_samples(samples) == 0
    assert store.add_labels(labels) == 0
    assert store.counts() == {"samples": 10, "labeled": 5, "skipped": 0, "labels_total": 5}


def test_duplicates_within_a_batch_count_once(store: Store) -> None:
    assert store.add_samples([sample(1), sample(2), sample(1)]) == 2
    assert store.add_samples([sample(2), sample(3)]) == 1
    assert store.counts()["samples"] == 3


def test_empty_batch(store: Store) -> None:
    assert store.write_batch([], []) == (0, 0)
    seqs, ids, features = store.samples_after(0, 10)
    assert (len(seqs), ids, features.shape) == (0, [], (0, 0))


def test_batch_is_atomic(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(rows, conn=None):
        raise RuntimeError("labels failed")

    monkeypatch.setattr(store, "add_labels", broken)
    with pytest.raises(RuntimeError, match="labels failed"):
        store.write_batch([sample(i) for i in range(5)], [label(0, 0)])
    assert store.counts()["samples"] == 0
    monkeypatch.undo()
    assert store.write_batch([sample(i) for i in range(5)], [label(0, 0)]) == (5, 1)


def test_a_label_that_arrives_before_its_sample_is_kept(store: Store) -> None:
    assert store.write_batch([sample(1)], [label(99, 0)]) == (1, 1)
    assert store.current_labels()["s99"][0] == "a"
    assert store.write_batch([sample(99)], []) == (1, 0)
    assert store.counts()["samples"] == 2


def test_seq_follows_arrival_and_pages(store: Store) -> None:
    order = [7, 3, 9, 1, 5, 2, 8]
    for i in order:
        store.add_samples([sample(i)])
    store.add_samples([SampleRow("text", None, "a text sample", None)])  # not in the feature pool
    store.add_samples([sample(4)])
    seen, seqs, last = [], [], 0
    while True:
        s, ids, features = store.samples_after(last, 3)
        if not ids:
            break
        assert features.shape == (len(ids), 4) and features.dtype == np.float32
        seen += ids
        seqs += s.tolist()
        last = int(s[-1])
    assert seen == [f"s{i}" for i in [*order, 4]]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_features_round_trip_exactly(store: Store) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((50, 64)).astype(np.float32)
    vectors[0, :4] = [np.finfo(np.float32).max, np.finfo(np.float32).tiny, -0.0, np.inf]
    store.add_samples([SampleRow(f"v{i}", v, None, None) for i, v in enumerate(vectors)])
    _, ids, features = store.samples_after(0, 100)
    assert ids == [f"v{i}" for i in range(50)]
    np.testing.assert_array_equal(features, vectors)
    assert np.signbit(features[0, 2])
    got = store.get_samples(["v3"])[0]["features"]
    np.testing.assert_array_equal(np.array(got, dtype=np.float32), vectors[3])


def test_float64_input_is_stored_as_float32(store: Store) -> None:
    store.add_samples([SampleRow("x", np.array([0.1, 0.2]), None, None)])
    _, _, features = store.samples_after(0, 1)
    np.testing.assert_array_equal(features[0], np.array([0.1, 0.2], dtype=np.float32))


def test_get_samples_in_asked_order(store: Store) -> None:
    store.add_samples([sample(1), SampleRow("t", None, "héllo", {"lang": "fr", "n": [1, 2]})])
    got = store.get_samples(["t", "missing", "s1"])
    assert [g["id"] for g in got] == ["t", "s1"]
    assert got[0] == {"id": "t", "features": None, "text": "héllo", "meta": {"lang": "fr", "n": [1, 2]}}
    assert got[1]["features"] == [1.0, 2.0, 3.0, 4.0] and got[1]["meta"] == {"i": 1}
    many = [f"s{i}" for i in range(1200)]
    store.add_samples([sample(i) for i in range(1200)])
    assert [g["id"] for g in store.get_samples(many)] == many


def test_bad_features_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="1-D"):
        store.add_samples([SampleRow("x", np.zeros((2, 2)), None, None)])


ids = st.integers(0, 40).map(lambda i: f"id{i}")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(ids, max_size=15), max_size=8), data=st.data())
def test_replayed_batches_store_each_id_once(make_store, batches: list[list[str]], data) -> None:
    store = make_store()
    replay = batches + data.draw(st.lists(st.sampled_from(batches), max_size=8) if batches else st.just([]))
    replay = data.draw(st.permutations(replay))
    new = 0
    for batch in replay:
        rows = [SampleRow(i, np.full(3, int(i[2:]), dtype=np.float32), None, None) for i in batch]
        new += store.write_batch(rows, [])[0]
    expected = {i for batch in batches for i in batch}
    _, got, features = store.samples_after(0, 1000)
    assert new == len(expected) == len(got)
    assert set(got) == expected
    assert all(f[0] == int(i[2:]) for i, f in zip(got, features, strict=True))


def test_a_sqlite_wal_grown_while_a_reader_held_it_is_truncated_once_it_restarts(
    tmp_path, monkeypatch
) -> None:
    """A WAL file keeps the size of its busiest stretch (a long read stops checkpoints from
    restarting it); the store truncates it back to ``WAL_LIMIT_BYTES`` once it restarts."""
    from sqlalchemy import func, select

    from alstream.store import database
    from alstream.store.tables import samples

    monkeypatch.setattr(database, "WAL_LIMIT_BYTES", 256 * 1024)
    wal = tmp_path / "s.db-wal"
    with Store(f"sqlite:///{tmp_path}/s.db") as store:
        store.create()
        with store.engine.connect() as reader, reader.begin():
            reader.execute(select(func.count()).select_from(samples)).scalar()  # holds its snapshot
            for start in range(0, 4_000, 500):
                store.add_samples([sample(i, d=256) for i in range(start, start + 500)])
            grown = wal.stat().st_size
        assert grown > 4 * 2**20
        store.add_samples([sample(4_000 + i, d=256) for i in range(500)])  # checkpointed to the end...
        store.add_samples([sample(5_000 + i, d=256) for i in range(10)])  # ... so this one restarts it
        assert wal.stat().st_size <= 2 * 2**20 < grown
        assert store.counts()["samples"] == 4_510
