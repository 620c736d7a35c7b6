"""Samples remember the stream partition (shard) they came from, and a worker reads its shard only."""

from __future__ import annotations

import numpy as np

from alstream.store import SampleRow, Store


def test_a_shards_samples_are_read_alone_in_arrival_order(store: Store) -> None:
    rows = [
        SampleRow(f"s-{i}", np.full(2, i, dtype=np.float32), shard=i % 3 if i < 9 else None)
        for i in range(10)
    ]
    rows += [SampleRow(f"t-{i}", None, text=f"text {i}", shard=i % 2) for i in range(4)]
    store.add_samples(rows)

    seqs, ids, features = store.samples_after(0, 100, shard=1)
    assert ids == ["s-1", "s-4", "s-7"]
    assert features[:, 0].tolist() == [1.0, 4.0, 7.0]
    assert list(seqs) == sorted(seqs)
    after_first = store.samples_after(int(seqs[0]), 1, shard=1)[1]
    assert after_first == ["s-4"]  # after a seq, at most the limit
    assert len(store.samples_after(0, 100)[1]) == 10  # no shard: every one, the shardless too
    assert store.texts_after(0, 100, shard=0)[1:] == (["t-0", "t-2"], ["text 0", "text 2"])
    assert store.texts_after(0, 100, shard=5)[1] == []
