"""What a sample's id costs the store: random ids against ids in arrival order, on SQLite.

The store keeps a unique index on sample ids. Each kind of id below fills a store with ``--rows``
samples (64 float32 features), then runs what the service does at a steady state, ``--rounds``
times: insert 20,000 new samples in batches of 5,000 (as the consumer writes them), and let
retention delete the 20,000 oldest but a tenth (pool members) in one statement. Reported: the
store's time per sample for each, with alstream's own ids (``ordered_id``: ``/send`` without an
id; ``stream_id``: a topic message without one) next to the random uuid4 that alstream made
before, and to a client's counter (``s<n>``). The target: alstream's ids cost at most half of what
random ids cost per sample.

    PYTHONPATH=src .venv/bin/python bench/store_ids_bench.py               # 10^6 rows, 10 rounds
    PYTHONPATH=src .venv/bin/python bench/store_ids_bench.py --rows 200000 --rounds 3 --out /tmp/ids.json
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from common import RESULTS, console, print_verdict, write_report
from provenance import machine, source_info

BATCH, ROUND = 5_000, 20_000
KEPT = 0.1  # the share of a retention range still in the pool (kept)


def kinds() -> dict[str, Callable[[int], str]]:
    from alstream.messages.ids import ordered_id, stream_id

    return {
        "uuid4 (random)": lambda i: uuid.uuid4().hex,
        "ordered_id (/send)": lambda i: ordered_id(),
        "stream_id (topic)": lambda i: stream_id("alstream.samples", 0, i),
        "counter s<n>": lambda i: f"s{i}",
    }


def run(make_id: Callable[[int], str], rows: int, rounds: int, home: Path) -> dict[str, float]:
    """Fill a store with ``rows`` samples, then time ``rounds`` of inserts and retention deletes."""
    from alstream.store import SampleRow, Store

    store = Store(f"sqlite:///{home}/alstream.db")
    store.create()
    features = np.random.default_rng(0).random(64, dtype=np.float32)

    def insert(start: int, n: int) -> None:
        for at in range(start, start + n, BATCH):
            ids = range(at, min(at + BATCH, start + n))
            store.add_samples([SampleRow(make_id(i), features) for i in ids])

    insert(0, rows)
    rng, first, top = np.random.default_rng(1), 1, rows
    inserted = deleted = 0.0
    for _ in range(rounds):
        began = time.perf_counter()
        insert(top, ROUND)
        inserted += time.perf_counter() - began
        top += ROUND
        keep = (first + rng.choice(ROUND, int(ROUND * KEPT), replace=False)).tolist()
        began = time.perf_counter()
        due = datetime.now(UTC) + timedelta(days=1)
        gone = store.delete_unlabeled_between(first, first + ROUND - 1, due, keep)
        deleted += time.perf_counter() - began
        assert gone == ROUND - len(keep), gone
        first += ROUND
    n = rounds * ROUND
    store.engine.dispose()
    return {
        "insert_us": 1e6 * inserted / n,
        "delete_us": 1e6 * deleted / (n * (1 - KEPT)),
        "per_sample_us": 1e6 * (inserted + deleted) / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="samples in the store before timing")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--out", type=Path, default=RESULTS / "store_ids.json")
    args = parser.parse_args()
    load = {"start": list(os.getloadavg())}
    results: dict[str, dict[str, float]] = {}
    from rich.progress import track

    for name, make_id in track(list(kinds().items()), description="id kinds"):
        with tempfile.TemporaryDirectory(prefix="alstream-ids-") as home:
            results[name] = run(make_id, args.rows, args.rounds, Path(home))
    load["end"] = list(os.getloadavg())
    out = console(100)
    from rich.table import Table

    table = Table(title=f"The store's time per sample, {args.rows:,} stored (SQLite, µs)")
    for column in ("id", "insert", "delete", "per sample", "vs uuid4"):
        table.add_column(column, justify="left" if column == "id" else "right")
    random = results["uuid4 (random)"]["per_sample_us"]
    for name, r in results.items():
        share = r["per_sample_us"] / random
        figures = (r["insert_us"], r["delete_us"], r["per_sample_us"])
        table.add_row(name, *(f"{f:.1f}" for f in figures), f"{share:.2f}x")
    out.print(table)
    checks = [
        {
            "target": f"{name}: at most half the store's time per sample of uuid4",
            "measured": f"{results[name]['per_sample_us']:.1f} vs {random:.1f} µs",
            "passed": results[name]["per_sample_us"] <= random / 2,
        }
        for name in ("ordered_id (/send)", "stream_id (topic)")
    ]
    print_verdict(out, checks)
    report: dict[str, Any] = {
        "benchmark": "store_ids",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": {"rows": args.rows, "rounds": args.rounds, "batch": BATCH, "round": ROUND, "kept": KEPT},
        "alstream": source_info(),
        "machine": {**machine(), "load_average": load},
        "results": results,
        "checks": checks,
    }
    write_report(args.out, report)
    out.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
