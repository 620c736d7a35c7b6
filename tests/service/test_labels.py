"""The label book: where each label's features come from, and the labels that wait, bounded."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alstream.service.featurize import StoredFeatures
from alstream.service.labels import LabelBook
from alstream.service.pool import Pool
from alstream.store import SampleRow, Store


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
