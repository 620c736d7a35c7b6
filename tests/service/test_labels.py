"""The label book: where each label's features come from, and the labels that wait, bounded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from alstream.service.engine import Engine, EngineConfig
from alstream.service.featurize import StoredFeatures
from alstream.service.labels import LabelBook
from alstream.service.pool import Pool
from alstream.store import LabelRow, SampleRow, Store


def _book(tmp_path: Path, max_waiting: int = 100) -> tuple[LabelBook, Pool, Store]:
    store = Store(f"sqlite:///{tmp_path}/store.db")
    store.create()
    return LabelBook(store, StoredFeatures(2), 2, max_waiting), Pool(n_features=2), store


def test_a_label_moves_its_sample_from_the_pool_to_the_training_set(tmp_path: Path):
    book, pool, store = _book(tmp_path)
    pool.add(["a", "b"], np.array([[1, 2], [3, 4]], dtype=np.float32))
    book.set("a", "cat", 1, pool)
    assert list(pool.index) == ["b"] and book.train_set.data()[1].tolist() == ["cat"]
    book.set("a", "dog", 2, pool)  # relabeled: the latest wins, still one row
    book.set("b", None, 3, pool)  # skipped: out of the pool, not trained on
    X, y = book.train_set.data()
    assert X.tolist() == [[1.0, 2.0]] and y.tolist() == ["dog"] and not pool.index
    store.close()


def test_a_label_for_an_evicted_sample_takes_its_features_from_the_store(tmp_path: Path):
    book, pool, store = _book(tmp_path)
    store.add_samples([SampleRow("gone", np.array([5, 6], dtype=np.float32), None, None)])
    book.set("gone", "cat", 1, pool)  # not in the pool (evicted long ago)
    assert book.resolve() == [] and book.train_set.data()[0].tolist() == [[5.0, 6.0]]
    store.close()


def test_labels_before_their_samples_wait_and_the_oldest_are_forgotten_past_the_bound(tmp_path: Path):
    book, pool, store = _book(tmp_path, max_waiting=3)
    for i in range(5):
        book.set(f"early-{i}", "cat", i + 1, pool)
    assert book.resolve() == ["early-0", "early-1"]  # forgotten here; the store keeps them
    assert book.waiting() == {"held": 3, "dropped": 2} and len(book) == 3
    labeled = book.arrived(["early-4", "other"], np.array([[7, 8], [9, 9]], dtype=np.float32))
    assert labeled.tolist() == [True, False] and book.train_set.data()[0].tolist() == [[7.0, 8.0]]
    assert book.class_counts(["cat", "dog"]) == {"cat": 1, "dog": 0}
    store.close()


def test_a_sample_read_after_its_label_found_it_in_the_store_is_trained_on_and_never_queued(
    tmp_path: Path,
):
    # the consumer stored the sample and its label after the engine last read samples: the engine
    # reads the label first, finds the sample's features in the store, then reads the sample
    book, pool, store = _book(tmp_path)
    store.add_samples([SampleRow("late", np.array([5, 6], dtype=np.float32), None, None)])
    book.set("late", "cat", 1, pool)
    assert book.resolve() == [] and "late" in book.train_set
    labeled = book.arrived(["late", "new"], np.array([[5, 6], [1, 1]], dtype=np.float32))
    assert labeled.tolist() == [True, False]  # "late" stays out of the pool
    X, y = book.train_set.data()
    assert X.tolist() == [[5.0, 6.0]] and y.tolist() == ["cat"]  # once
    store.close()


def test_a_sample_skipped_before_it_arrived_is_never_queued_and_the_skips_kept_are_bounded(
    tmp_path: Path,
):
    book, pool, store = _book(tmp_path, max_waiting=2)
    for i in range(3):
        book.set(f"skipped-{i}", None, i + 1, pool)  # read before their samples
    book.set("skipped-2", "cat", 4, pool)  # then labeled after all: it waits as a label
    book.set("skipped-3", None, 5, pool)
    assert book.resolve() == []
    features = np.array([[i, 1] for i in range(5)], dtype=np.float32)
    ids = [*(f"skipped-{i}" for i in range(4)), "other"]
    labeled = book.arrived(ids, features)
    # skipped-0 was the oldest of three skips kept to two: forgotten, it joins the pool
    assert labeled.tolist() == [False, True, True, True, False]
    X, y = book.train_set.data()
    assert X.tolist() == [[2.0, 1.0]] and y.tolist() == ["cat"]
    assert book.arrived(["skipped-1"], features[:1]).tolist() == [False]  # once, not for ever
    assert book.waiting()["dropped"] == 1  # skipped-0: the store is asked on arrivals from now on
    store.close()


def test_a_skip_forgotten_past_the_bound_is_found_again_in_the_store(tmp_path: Path):
    # a worker's engine reads every shard's skips, and the pool's evicted samples' too: skips of
    # samples it will never see push out the skip of one of its own, which the store still holds
    book, pool, store = _book(tmp_path, max_waiting=2)
    store.add_labels(
        [LabelRow(s, None, "ann", True, "labels:0", i) for i, s in enumerate(["mine", "x", "y"])]
    )
    for row_id, sample_id, *_ in store.labels_after(0):
        book.set(sample_id, None, row_id, pool)
    labeled = book.arrived(["mine"], np.array([[1, 1]], dtype=np.float32))
    assert labeled.tolist() == [False]  # forgotten here...
    assert book.forgotten_labels(["mine"]) == {"mine": (1, None, "ann", True)}  # ...found there: skipped
    store.close()


class _ABatchLandsAfterTheSamplesRead:
    """Stored features whose read of samples, once it finds no more, lets a batch land (``land``)."""

    def __init__(self, land: list) -> None:
        self.inner, self.land = StoredFeatures(2), land

    def after(self, store: Store, seq: int, limit: int):
        rows = self.inner.after(store, seq, limit)
        if not len(rows[0]) and self.land:
            self.land.pop()()
        return rows

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


@pytest.mark.parametrize("skipped", [False, True], ids=["labeled", "skipped"])
def test_samples_stored_with_their_labels_between_the_engines_two_reads_are_never_queued(
    tmp_path: Path, skipped: bool
):
    # the consumer commits a batch of samples and their labels (or skips) after the engine has read
    # samples and before it reads labels (a batch's write overlapping the engine's sync)
    store = Store(f"sqlite:///{tmp_path}/store.db")
    store.create()
    label = None if skipped else "cat"

    def a_batch() -> None:
        store.add_samples(
            [SampleRow(f"new-{i}", np.array([i, 2], dtype=np.float32), None, None) for i in range(3)]
        )
        store.add_labels([LabelRow(f"new-{i}", label, "ann", skipped, "labels:0", i) for i in range(3)])

    land: list = []
    config = EngineConfig(classes=["cat", "dog"], n_features=2, track=False)
    engine = Engine(config, store, featurizer=_ABatchLandsAfterTheSamplesRead(land))  # type: ignore[arg-type]
    store.add_samples(
        [SampleRow(f"old-{i}", np.array([i, 1], dtype=np.float32), None, None) for i in range(4)]
    )
    try:
        engine.sync()
        land.append(a_batch)
        engine.sync()  # no new samples, then the batch lands, then its three labels are read
        engine.sync()  # then its three samples
        old = {f"old-{i}" for i in range(4)}
        assert set(engine.pool.index) == old
        trained = 0 if skipped else 3
        assert len(engine.train_set) == trained and engine.label_counts() == {"cat": trained, "dog": 0}
        assert {item.id for item in engine.queue(10, annotator="bob")} <= old
    finally:
        engine.close()
        store.close()
