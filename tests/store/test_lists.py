"""Lists of any length in one bound parameter, on SQLite and PostgreSQL: the same statement for
every length (a driver caches each statement it sees: one per length grew the service by hundreds
of MB), and the same answers as ``IN (...)`` would give."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from alstream.store import LabelRow, SampleRow
from alstream.store.lists import listed, listed_pairs
from alstream.store.tables import samples


def test_every_length_is_one_statement(store):
    texts = {
        str(samples.c.seq.in_(listed(range(n), store.dialect, integers=True)).compile(store.engine))
        for n in (1, 7, 5000)
    }
    assert len(texts) == 1


def test_long_lists_of_ids_and_seqs_read_and_delete_what_they_name(store):
    n = 4000  # over SQLite's historical 999 variables, in one statement
    rows = [SampleRow(f"s{i}", np.full(2, i, dtype=np.float32), None, None) for i in range(n)]
    store.add_samples(rows)
    store.add_labels([LabelRow("s3", "a", "ann", False, "labels:0", 0)])
    wanted = [f"s{i}" for i in range(0, n, 2)] + ["missing", "s\u00e9 'quoted\""]
    assert [s["id"] for s in store.get_samples(wanted)] == wanted[:-2]
    assert store.known_ids(wanted) == set(wanted[:-2])
    assert set(store.current_labels(["s3", "s4", "missing"])) == {"s3"}
    seqs, _ = store.arrivals_after(0, datetime.now(UTC), n)
    assert store.delete_unlabeled(seqs[:3000].tolist()) == 2999  # s3 is labeled: it stays
    keep = seqs[3000:3990:2].tolist()
    before = datetime.now(UTC) + timedelta(seconds=5)
    assert store.delete_unlabeled_between(int(seqs[3000]), int(seqs[-1]), before, keep) == 1000 - len(keep)
    left = {s["id"] for s in store.get_samples([f"s{i}" for i in range(n)])}
    assert left == {"s3"} | {f"s{i}" for i in range(3000, 3990, 2)}


def test_pairs_read_back_as_given_in_one_statement_for_every_length(store):
    keys = [f"k{i}" for i in range(3000)] + ["s\u00e9 'quoted\""]
    values = [i / 7 for i in range(3000)] + [1e-300]
    texts = {
        str(listed_pairs(keys[:n], values[:n], store.dialect).compile(store.engine)) for n in (1, 9, 3001)
    }
    assert len(texts) == 1
    with store.engine.connect() as conn:
        rows = conn.execute(listed_pairs(keys, values, store.dialect)).all()
    assert sorted(rows) == sorted(zip(keys, values, strict=True))
