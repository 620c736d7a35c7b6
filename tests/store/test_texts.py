"""Text samples: read back after a seq, in arrival order, exactly as sent."""

from __future__ import annotations

import numpy as np

from alstream.store import SampleRow, Store


def text(i: int) -> SampleRow:
    return SampleRow(f"t{i}", None, f"text number {i}", {"i": i})


def test_texts_after_pages_in_arrival_order_and_skips_feature_samples(store: Store) -> None:
    order = [5, 2, 8, 1, 9, 3]
    for i in order[:3]:
        store.add_samples([text(i)])
    store.add_samples([SampleRow("f", np.ones(3, dtype=np.float32))])  # a feature sample
    store.add_samples([text(i) for i in order[3:]])
    seen, seqs, last = [], [], 0
    while True:
        s, ids, texts = store.texts_after(last, 4)
        if not ids:
            break
        assert s.dtype == np.int64 and len(s) == len(ids) == len(texts) <= 4
        seen += list(zip(ids, texts, strict=True))
        seqs += s.tolist()
        last = int(s[-1])
    assert seen == [(f"t{i}", f"text number {i}") for i in order]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    _, ids, _ = store.samples_after(0, 100)
    assert ids == ["f"]  # texts are not in the feature pool


def test_texts_round_trip_exactly(store: Store) -> None:
    written = ["Crème brûlée 🍮\nsecond line", "  spaces kept  ", "quotes ' \" and \\ slash", "x" * 50_000]
    store.add_samples([SampleRow(f"t{i}", None, t) for i, t in enumerate(written)])
    _, ids, texts = store.texts_after(0, 10)
    assert ids == ["t0", "t1", "t2", "t3"] and texts == written


def test_no_texts_after(store: Store) -> None:
    seqs, ids, texts = store.texts_after(0, 10)
    assert (len(seqs), ids, texts) == (0, [], [])
    store.add_samples([text(1)])
    seqs, _, _ = store.texts_after(0, 10)
    assert store.texts_after(int(seqs[-1]), 10)[1] == []
