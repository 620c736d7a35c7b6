"""The embedded log against a queue of two SQLite tables: append, read back in order, trim.

Both get the soak's topic messages (a sample's JSON, 64 features, keyed by its id: ~400 bytes),
``--samples`` of them in batches of ``--batch``, one thread:

- **log**: ``alstream.stream.log.EmbeddedLog`` as the service runs it (default 64 MiB segments,
  each ``publish`` fsynced); read with a consumer group, ``poll`` then ``commit`` per batch; trim:
  retention deletes the closed segments the group has passed.
- **sqlite**: ``messages(seq INTEGER PRIMARY KEY, topic, key, value)`` indexed by (topic, seq) and
  ``offsets(grp, topic, next)``, in WAL mode as the store opens its database. Append: one
  ``BEGIN IMMEDIATE`` transaction per batch; read: per batch, one transaction that selects the next
  rows (as ``Record`` objects, what a consumer returns) and upserts the group's offset, as it would
  in the store's own transaction; trim: ``DELETE`` the rows the log's trim deleted (the file keeps
  its pages for reuse; it shrinks only with ``VACUUM``). Once with ``synchronous = FULL`` (every
  commit fsynced, as durable as the log) and once with ``NORMAL`` (the store's setting: a commit
  survives a crash of the process, not of the machine).

Each phase is timed in wall time and CPU time of this thread; the median of ``--repeat`` runs, each
in a fresh folder, is reported, with the bytes on disk after appending.

    PYTHONPATH=src .venv/bin/python bench/log_vs_sqlite.py                  # 200,000 records
    PYTHONPATH=src .venv/bin/python bench/log_vs_sqlite.py --samples 20000 --out /tmp/log.json
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import RESULTS, write_report
from provenance import machine, source_info
from soak_bench import Bank

TOPIC = "alstream.samples"
Batches = list[list[tuple[bytes, bytes]]]


class Phases:
    """Wall and CPU seconds per phase."""

    def __init__(self) -> None:
        self.seconds: dict[str, dict[str, float]] = {}

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.thread_time()
        yield
        self.seconds[phase] = {"wall_s": time.perf_counter() - wall, "cpu_s": time.thread_time() - cpu}


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def run_log(home: Path, batches: Batches) -> dict[str, Any]:
    """Append, read and trim through the embedded log."""
    from alstream.stream.log import EmbeddedLog
    from alstream.stream.log_retention import LogLimits, Retention

    limits = LogLimits(retention_s=None)  # no deletion while timing append and read
    log, phases, read = EmbeddedLog(home, limits), Phases(), []
    with phases.timed("append"):
        for batch in batches:
            log.publish(TOPIC, batch)
    size = folder_bytes(home)
    consumer = log.consumer("bench", [TOPIC])
    with phases.timed("read"):
        while records := consumer.poll(len(batches[0]), 0):
            read += records
            consumer.commit(records)
    with phases.timed("trim"):
        deletions = Retention(home, LogLimits(limits.segment_bytes, retention_s=0)).enforce(TOPIC)
    consumer.close()
    log.close()
    check(read, batches)
    trimmed = sum(d.segment.end - d.segment.base for d in deletions)
    return {"phases": phases.seconds, "bytes_on_disk": size, "trimmed": trimmed}


def run_sqlite(home: Path, batches: Batches, synchronous: str, trim: int) -> dict[str, Any]:
    """Append, read and trim through two SQLite tables, the store's way (WAL, BEGIN IMMEDIATE)."""
    from alstream.stream.base import Record

    db = sqlite3.connect(home / "queue.db", isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute(f"PRAGMA synchronous = {synchronous}")
    db.executescript(
        "CREATE TABLE messages (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, key BLOB, value BLOB NOT NULL);"
        "CREATE INDEX ix_messages_topic_seq ON messages (topic, seq);"
        "CREATE TABLE offsets (grp TEXT, topic TEXT, next INTEGER NOT NULL, PRIMARY KEY (grp, topic));"
    )

    def transaction(work: Callable[[], Any]) -> Any:
        db.execute("BEGIN IMMEDIATE")
        try:
            done = work()
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return done

    phases, read, size = Phases(), [], 0
    append = "INSERT INTO messages (topic, key, value) VALUES (?, ?, ?)"
    with phases.timed("append"):
        for batch in batches:
            transaction(lambda b=batch: db.executemany(append, [(TOPIC, k, v) for k, v in b]))
    size = folder_bytes(home)
    select = "SELECT seq, key, value FROM messages WHERE topic = ? AND seq >= ? ORDER BY seq LIMIT ?"
    commit = (
        "INSERT INTO offsets (grp, topic, next) VALUES ('bench', ?, ?) "
        "ON CONFLICT (grp, topic) DO UPDATE SET next = excluded.next"
    )

    def step(position: int) -> list[Record]:
        rows = db.execute(select, (TOPIC, position, len(batches[0]))).fetchall()
        records = [Record(TOPIC, 0, seq, key, value) for seq, key, value in rows]
        if records:
            db.execute(commit, (TOPIC, records[-1].offset + 1))
        return records

    with phases.timed("read"):
        while records := transaction(lambda p=(read[-1].offset + 1 if read else 0): step(p)):
            read += records
    with phases.timed("trim"):
        trimmed = transaction(lambda: db.execute("DELETE FROM messages WHERE seq <= ?", (trim,)).rowcount)
    db.close()
    check(read, batches, first_offset=1)
    return {"phases": phases.seconds, "bytes_on_disk": size, "trimmed": trimmed}


def check(records: list[Any], batches: Batches, first_offset: int = 0) -> None:
    """Every message came back once, in order."""
    sent = [m for batch in batches for m in batch]
    assert len(records) == len(sent), (len(records), len(sent))
    assert [r.offset for r in records] == list(range(first_offset, first_offset + len(sent)))
    assert all((r.key, r.value) == m for r, m in zip(records, sent, strict=True))


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per phase, the median wall and CPU seconds of ``runs``; the bytes and trim of the first."""
    phases = {
        phase: {k: statistics.median(r["phases"][phase][k] for r in runs) for k in ("wall_s", "cpu_s")}
        for phase in runs[0]["phases"]
    }
    return {**runs[0], "phases": phases, "runs": [r["phases"] for r in runs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "log_vs_sqlite.json")
    args = parser.parse_args()
    bank = Bank(min(args.samples, 200_000))
    starts = range(0, args.samples, args.batch)
    batches = [bank.messages(s, min(args.batch, args.samples - s)) for s in starts]
    record_bytes = statistics.mean(len(k) + len(v) for batch in batches for k, v in batch)
    load_start = os.getloadavg()
    results: dict[str, list[dict[str, Any]]] = {"log": [], "sqlite FULL": [], "sqlite NORMAL": []}
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="alstream-log-") as tmp:
            results["log"].append(run_log(Path(tmp), batches))
        trim = results["log"][-1]["trimmed"]  # the rows the log's trim let go (offsets 0 .. trim-1)
        for synchronous in ("FULL", "NORMAL"):
            with tempfile.TemporaryDirectory(prefix="alstream-sqlite-") as tmp:
                results[f"sqlite {synchronous}"].append(run_sqlite(Path(tmp), batches, synchronous, trim))
    load_end = os.getloadavg()
    report = {name: median_run(runs) for name, runs in results.items()}
    mb = args.samples * record_bytes / 1e6
    print(
        f"{args.samples:,} records of {record_bytes:.0f} bytes ({mb:.0f} MB) in batches of {args.batch:,}, "
        f"median of {args.repeat} runs; load average {load_start[0]:.2f} -> {load_end[0]:.2f}"
    )
    header = f"{'':14} {'append/s':>10} {'MB/s':>6} {'CPU s':>6} {'read/s':>10} {'MB/s':>6} {'CPU s':>6}"
    print(header + f" {'trim ms':>8} {'disk MB':>8}")
    for name, r in report.items():
        cells = []
        for phase in ("append", "read"):
            wall, cpu = r["phases"][phase]["wall_s"], r["phases"][phase]["cpu_s"]
            cells.append(f"{args.samples / wall:10,.0f} {mb / wall:6.0f} {cpu:6.2f}")
        trim_ms, disk_mb = r["phases"]["trim"]["wall_s"] * 1e3, r["bytes_on_disk"] / 1e6
        print(f"{name:14} {' '.join(cells)} {trim_ms:8.1f} {disk_mb:8.1f}")
    print(f"trim: the {report['log']['trimmed']:,} records of the log's closed segments")
    write_report(
        args.out,
        {
            "benchmark": "log_vs_sqlite",
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "config": {
                "samples": args.samples,
                "batch": args.batch,
                "repeat": args.repeat,
                "record_bytes": record_bytes,
            },
            "alstream": source_info(),
            "machine": {**machine(), "load_average": {"start": load_start, "end": load_end}},
            "results": report,
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
