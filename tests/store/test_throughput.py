"""Throughput of the consumer's write path and of loading the pool (printed, not asserted)."""

from __future__ import annotations

import time

import numpy as np

from alstream.store import LabelRow, SampleRow, Store

N, BATCH, D = 100_000, 1000, 64


def test_write_and_load_throughput(store: Store, capsys) -> None:
    rng = np.random.default_rng(0)
    features = rng.standard_normal((N, D)).astype(np.float32)
    batches = [
        [SampleRow(f"s{i}", features[i], None, {"src": "bench", "i": i}) for i in range(b, b + BATCH)]
        for b in range(0, N, BATCH)
    ]
    labels = [LabelRow(f"s{i}", "a", "ann", False, "labels:0", i) for i in range(0, N, 100)]
    start = time.perf_counter()
    for k, batch in enumerate(batches):
        store.write_batch(batch, labels[k * 10 : (k + 1) * 10])
    write_s = time.perf_counter() - start
    start = time.perf_counter()
    last, loaded, chunks = 0, 0, []
    while True:
        seqs, _, chunk = store.samples_after(last, 20_000)
        if not len(seqs):
            break
        last, loaded = int(seqs[-1]), loaded + len(seqs)
        chunks.append(chunk)
    load_s = time.perf_counter() - start
    assert loaded == N
    np.testing.assert_array_equal(np.concatenate(chunks), features)
    with capsys.disabled():
        print(
            f"\n[{store.dialect}] write_batch: {N / write_s:,.0f} samples/s ({N} x {D} float32, "
            f"batches of {BATCH}); samples_after: {N / load_s:,.0f} samples/s"
        )
