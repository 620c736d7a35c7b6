"""Soak benchmark: a long stream into a bounded pool, with labels and online updates on the whole time.

The issue's words: 10^7 samples streamed as fast as the service takes them into a pool bounded at
10^6, with labels arriving and online updates on: resident memory at the end within 10% of its
level when the pool first filled; ``/queue`` p99 and the ingest rate flat over the run (printed
per 10^6); store size flat with retention on; samples per second sustained (target >= 20,000).

The service is the real one: ``alstream serve`` in its own process (embedded log, SQLite, no
MLflow; sgd with online updates; ``max_pool`` ``--max-pool``; ``retention_s`` ``--retention-s``),
pinned to one CPU as the other service benchmarks are (``--no-pin``: the machine's CPUs). This
process, on the other CPU, runs:

* senders (``--senders``, one by default): ``POST /send`` of ``--batch`` samples each, again and
  again, taking the next batch as soon as the 202 comes. Only the end of the pipeline slows them:
  while more than ``--max-lag`` samples are sent but not yet followed by the engine (in the log or
  the store, not yet offered to the pool), a sender waits. The share of time the senders waited
  says where the bottleneck is: near 0, the HTTP edge; near 1, the consumer or the engine.
* a labeler: every ``--label-every-s``, ``GET /queue?n=--label-n`` (timed) and ``POST /labels`` of
  the true classes of what it served (the oracle: the generated data).
* a monitor: every half second ``GET /stats`` and the service's RSS and CPU time (psutil); at each
  segment's end (every 10^6 followed samples, or a tenth of the run if that is less) also the
  store: the SQLite file with its -wal, its samples rows, and the embedded log's size.

The samples: ``make_classification`` (64 features, 10 classes, 32 informative), a bank of
``--bank`` rows rounded to 2 decimals, sample ``i`` being row ``i mod bank`` under the id ``s<i>``.

Verdicts, each printed as PASS or FAIL: RSS at the end within 10% of RSS when the pool first filled
(the first eviction or rejection); the last segment's ingest rate and ``/queue`` p99 within
``FLAT_FACTOR`` of the first steady segment's (the pool full and retention deleting: begun after
``retention_s``; before, the service does not delete yet and ingests faster than it can for long,
which the table shows); the store flat over the run's second half (rows
and file size of the last segment within 10% of the full-pool segment at the middle of the run:
before, the store fills up to its level, the pool plus ``retention_s`` of arrivals) and within what
retention keeps (rows at most 1.25 x (``max_pool`` + ``retention_s`` x the last segment's ingest
rate)); samples/s sustained over the run >= 20,000.
Results: the per-segment table and ``bench/results/soak.json`` (``soak-quick.json`` with
``--quick``); the exit code is 0 even when a verdict fails (this is a report).

    .venv/bin/python bench/soak_bench.py            # 10^7 samples, pool 10^6 (`make soak`)
    .venv/bin/python bench/soak_bench.py --quick    # 200,000 samples, pool 20,000 (`make bench`)
    PYTHONPATH=src .venv/bin/python bench/soak_bench.py --quick --via log   # no HTTP edge

``--consumer-apart``: the consumer runs in a process of its own (``alstream serve --no-consumer``
and ``alstream consume``), so the service can use both CPUs (nothing is pinned).

``--via log``: the samples are produced straight to the service's embedded-log topic (the JSON any
producer writes), not sent through ``POST /send``: what the consumer and the engine sustain alone.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import psutil

from common import RESULTS, Service, console, percentiles, service, write_report
from provenance import machine, source_info

ADMIN_TOKEN = "soak-bench-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
JSON = {"content-type": "application/json"}
N_FEATURES, N_CLASSES = 64, 10
CLASSES = [str(c) for c in range(N_CLASSES)]
CPUS = sorted(os.sched_getaffinity(0))
POLL_S = 0.5
STALL_S = 180.0  # no sample followed for this long: the run stops, and says so
TARGET_PER_S = 20_000.0
RSS_TOLERANCE = 0.10
STORE_TOLERANCE = 0.10
STORE_SLACK = 1.25  # the engine follows, and retention deletes, a little behind the arrivals
FLAT_FACTOR = 1.5  # last full-pool segment vs the first: ingest rate and /queue p99
SAMPLES_TOPIC = "alstream.samples"  # the service's default samples_topic
QUICK = {"samples": 200_000, "max_pool": 20_000, "retention_s": 5.0}


# --------------------------------------------------------------------------------------- data


class Bank:
    """Generated samples, each row's JSON encoded once; sample ``i`` is row ``i mod len``."""

    def __init__(self, n: int, seed: int = 0) -> None:
        from sklearn.datasets import make_classification

        X, y = make_classification(
            n_samples=n, n_features=N_FEATURES, n_informative=32, n_classes=N_CLASSES, random_state=seed
        )
        self.rows = [orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY) for row in np.round(X, 2)]
        packed = np.round(X, 2).astype("<f4")  # what the service writes for /send: base64 float32s
        self.packed = [b'"' + base64.b64encode(row.tobytes()) + b'"' for row in packed]
        self.y = y

    def body(self, start: int, n: int) -> bytes:
        """The POST /send body of samples ``start`` .. ``start + n - 1``."""
        rows, k = self.rows, len(self.rows)
        items = [b'{"id":"s%d","features":%s}' % (i, rows[i % k]) for i in range(start, start + n)]
        return b"[" + b",".join(items) + b"]"

    def messages(self, start: int, n: int, packed: bool = False) -> list[tuple[bytes, bytes]]:
        """The topic messages (key, value) of samples ``start`` .. ``start + n - 1``, as any producer
        writes them: the JSON of each sample, keyed by its id (``packed``: features as base64)."""
        rows, k = self.packed if packed else self.rows, len(self.rows)
        return [
            (b"s%d" % i, b'{"id":"s%d","features":%s}' % (i, rows[i % k])) for i in range(start, start + n)
        ]

    def label(self, sample_id: str) -> str:
        return str(self.y[int(sample_id[1:]) % len(self.rows)])


# --------------------------------------------------------------------------------------- the run


@dataclass
class Run:
    """What the threads saw, shared between them."""

    samples: int
    batch: int
    max_lag: int
    packed: bool = False  # --via log: features packed
    next_batch: int = 0
    sent: int = 0
    followed: int = 0  # samples the engine followed, as of the last poll
    send_ms: list[tuple[float, float]] = field(default_factory=list)  # (when, ms)
    queue_ms: list[tuple[float, float]] = field(default_factory=list)
    waited_s: list[tuple[float, float]] = field(default_factory=list)  # (when, seconds a sender waited)
    labels_sent: int = 0
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take_batch(self) -> int | None:
        """The first sample of the next batch to send, or None when all are taken."""
        with self.lock:
            start = self.next_batch
            if start >= self.samples:
                return None
            self.next_batch = min(self.samples, start + self.batch)
            return start

    def error(self, what: str) -> None:
        with self.lock:
            if len(self.errors) < 20:
                self.errors.append(what)

    def hold_back(self) -> None:
        """Wait while more than ``max_lag`` samples are sent but not followed; note how long."""
        began = time.perf_counter()
        while self.sent - self.followed > self.max_lag and not self.stop.is_set():
            time.sleep(0.01)
        if (waited := time.perf_counter() - began) > 0.0005:
            self.waited_s.append((time.perf_counter(), waited))


def sender(url: str, bank: Bank, run: Run) -> None:
    """POST /send batch after batch; waits only while more than ``max_lag`` samples are unfollowed."""
    with httpx.Client(base_url=url, headers={**AUTH, **JSON}, timeout=120) as client:
        while not run.stop.is_set() and (start := run.take_batch()) is not None:
            n = min(run.batch, run.samples - start)
            body = bank.body(start, n)
            run.hold_back()
            while not run.stop.is_set():
                t0 = time.perf_counter()
                try:
                    response = client.post("/send", content=body)
                except httpx.HTTPError as error:
                    run.error(f"POST /send: {type(error).__name__}: {error}")
                    time.sleep(1)
                    continue
                run.send_ms.append((time.perf_counter(), (time.perf_counter() - t0) * 1e3))
                if response.status_code == 202:
                    with run.lock:
                        run.sent += n
                    break
                run.error(f"POST /send: {response.status_code} {response.text[:200]}")
                time.sleep(0.5)  # 429 or 503: the service says wait


def log_producer(log_dir: Path, bank: Bank, run: Run) -> None:
    """Produce batch after batch straight to the samples topic of the service's embedded log (no
    HTTP, no validation at the edge: the consumer checks each record); waits as :func:`sender`."""
    from alstream.stream.log import EmbeddedLog

    stream = EmbeddedLog(log_dir)
    try:
        while not run.stop.is_set() and (start := run.take_batch()) is not None:
            n = min(run.batch, run.samples - start)
            messages = bank.messages(start, n, packed=run.packed)
            run.hold_back()
            t0 = time.perf_counter()
            stream.publish(SAMPLES_TOPIC, messages, timeout=60)
            run.send_ms.append((time.perf_counter(), (time.perf_counter() - t0) * 1e3))
            with run.lock:
                run.sent += n
    finally:
        stream.close()


def labeler(url: str, bank: Bank, run: Run, every_s: float, n: int) -> None:
    """GET /queue (timed), then label what it served with the true classes; every ``every_s``."""
    with httpx.Client(base_url=url, headers=AUTH, timeout=120) as client:
        while not run.stop.is_set():
            started = time.perf_counter()
            try:
                response = client.get("/queue", params={"n": n, "annotator": "soak-labeler", "fresh": "true"})
                run.queue_ms.append((time.perf_counter(), (time.perf_counter() - started) * 1e3))
                response.raise_for_status()
                items = response.json()
                if items:
                    labels = [
                        {"id": item["id"], "label": bank.label(item["id"]), "annotator": "soak-labeler"}
                        for item in items
                    ]
                    client.post("/labels", json=labels).raise_for_status()
                    run.labels_sent += len(labels)
            except httpx.HTTPError as error:
                run.error(f"labeler: {type(error).__name__}: {error}")
            run.stop.wait(max(0.0, every_s - (time.perf_counter() - started)))


def store_size(home: Path) -> dict[str, Any]:
    """The SQLite file and its -wal (MB), its samples rows, and the embedded log's size (MB)."""
    db = home / "alstream.db"
    sizes = {
        name: (home / name).stat().st_size if (home / name).exists() else 0
        for name in ("alstream.db", "alstream.db-wal")
    }
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as connection:
        rows = connection.execute("SELECT count(*) FROM samples").fetchone()[0]
    log = sum(p.stat().st_size for p in (home / "data").rglob("*.log") if p.is_file())
    return {
        "db_mb": sizes["alstream.db"] / 1e6,
        "wal_mb": sizes["alstream.db-wal"] / 1e6,
        "store_mb": sum(sizes.values()) / 1e6,
        "rows": int(rows),
        "log_mb": log / 1e6,
    }


def cpu_seconds(processes: list[psutil.Process]) -> float:
    """CPU seconds the service's processes used so far."""
    return sum(sum(p.cpu_times()[:2]) for p in processes)


def monitor(
    url: str, running: Service, home: Path, run: Run, segment: int, progress: Any, every_s: float
) -> dict[str, Any]:
    """Poll /stats, RSS and CPU until every sample is followed (or a stall); the polls, the segment
    ends (with the store's size) and the moment the pool first filled."""
    processes = [psutil.Process(p.pid) for p in running.processes]
    polls: list[dict[str, Any]] = []
    ends: list[dict[str, Any]] = []
    full: dict[str, Any] | None = None
    boundary, last_change, last_followed = segment, time.perf_counter(), -1
    with httpx.Client(base_url=url, headers=AUTH, timeout=120) as client:
        while True:
            t0 = time.perf_counter()
            response = client.get("/stats")
            stats_ms = (time.perf_counter() - t0) * 1e3
            stats = response.json()
            poll = {
                "t": time.perf_counter(),
                "followed": stats["store"]["samples"],
                "ingested": (stats["ingest"] or {}).get("samples", stats["store"]["samples"]),
                "sent": run.sent,
                "pool": stats["pool"],
                "reservoir": stats["reservoir"],
                "evicted": stats["evicted"],
                "rejected": stats["rejected"],
                "leased": stats["leased"],
                "labels": stats["store"]["labels_total"],
                "labeled": stats["labeled"],
                "model_version": stats["model_version"],
                "retention_deleted": (stats["retention"] or {}).get("deleted", 0),
                "waiting_to_leave_pool": (stats["retention"] or {}).get("waiting_to_leave_pool", 0),
                "not_looked_at": (stats["retention"] or {}).get("not_looked_at", 0),
                "retention_busy_s": (stats["retention"] or {}).get("busy_s", 0.0),
                "overdue": (stats["retention"] or {}).get("overdue", 0),
                "consumer_held_s": (stats["ingest"] or {}).get("held_s", 0.0),
                "curve_points": len(stats["learning_curve"]),
                "rss_mb": sum(p.memory_info().rss for p in processes) / 1e6,
                "cpu_s": cpu_seconds(processes),
                "stats_ms": stats_ms,
                "stats_kb": len(response.content) / 1e3,
            }
            polls.append(poll)
            run.followed = poll["followed"]
            progress(poll)
            if full is None and (poll["evicted"] or poll["rejected"]):
                full = poll
            done = poll["followed"] >= run.samples
            if poll["followed"] >= boundary or (
                done and ends[-1:] and ends[-1]["followed"] < poll["followed"]
            ):
                ends.append({**poll, **store_size(home)})  # one end per poll: no empty segment
                boundary = (poll["followed"] // segment + 1) * segment
            if done:
                break
            if poll["followed"] != last_followed:
                last_followed, last_change = poll["followed"], time.perf_counter()
            elif time.perf_counter() - last_change > STALL_S:
                run.error(f"stalled: no sample followed for {STALL_S:.0f} s at {last_followed:,}")
                ends.append({**poll, **store_size(home)})
                break
            run.stop.wait(max(0.0, every_s - (time.perf_counter() - t0)))
    return {"polls": polls, "ends": ends, "full": full}


# --------------------------------------------------------------------------------------- report


def segments(run: Run, seen: dict[str, Any], start: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per segment: between two segment ends (the first from the start of sending)."""
    rows, previous = [], start
    full_t = seen["full"]["t"] if seen["full"] else float("inf")
    sending_until = max((t for t, _ in run.send_ms), default=float("inf"))
    for k, end in enumerate(seen["ends"]):
        seconds = end["t"] - previous["t"]
        queue = [ms for t, ms in run.queue_ms if previous["t"] < t <= end["t"]]
        send = [ms for t, ms in run.send_ms if previous["t"] < t <= end["t"]]
        waited = sum(s for t, s in run.waited_s if previous["t"] < t <= end["t"])
        rows.append(
            {
                "segment": k + 1,
                "from": previous["followed"],
                "to": end["followed"],
                "seconds": seconds,
                "samples_per_s": (end["followed"] - previous["followed"]) / seconds,
                "ingested_per_s": (end["ingested"] - previous["ingested"]) / seconds,
                "sent_per_s": (end["sent"] - previous["sent"]) / seconds,
                "queue": percentiles(queue) if queue else None,
                "send": percentiles(send) if send else None,
                "senders_waited_share": waited / seconds,
                "service_cpu_share": (end["cpu_s"] - previous["cpu_s"]) / seconds,
                "versions": (end["model_version"] or 0) - (previous["model_version"] or 0),
                "labels": end["labels"] - previous["labels"],
                "full_pool": previous["t"] >= full_t,
                "sending": end["t"] <= sending_until,  # the senders were still at it when it ended
                "started_s": previous["t"] - start["t"],
                **{
                    key: end[key]
                    for key in (
                        "rss_mb",
                        "pool",
                        "evicted",
                        "rejected",
                        "leased",
                        "store_mb",
                        "db_mb",
                        "wal_mb",
                        "rows",
                        "log_mb",
                        "retention_deleted",
                        "waiting_to_leave_pool",
                        "not_looked_at",
                        "retention_busy_s",
                        "overdue",
                        "consumer_held_s",
                        "curve_points",
                        "stats_ms",
                        "stats_kb",
                        "labeled",
                    )
                },
            }
        )
        previous = end
    return rows


def verdicts(
    rows: list[dict[str, Any]], seen: dict[str, Any], sustained: float, retention_s: float, max_pool: int
) -> list:
    """(what, measured, passed or None when it cannot be judged)."""
    out: list[tuple[str, str, bool | None]] = []
    full = seen["full"]
    if full is None:
        out.append(
            ("RSS at the end within 10% of RSS when the pool first filled", "the pool never filled", None)
        )
    else:
        end = seen["polls"][-1]["rss_mb"]
        ratio = end / full["rss_mb"]
        out.append(
            (
                "RSS at the end within 10% of RSS when the pool first filled",
                f"{end:,.0f} MB vs {full['rss_mb']:,.0f} MB ({ratio - 1:+.1%})",
                abs(ratio - 1) <= RSS_TOLERANCE,
            )
        )
    steady = [r for r in rows if r["full_pool"] and r["sending"]]  # not the drain after the last /send
    deleting = [r for r in steady if r["started_s"] >= retention_s]  # retention at work too
    rate_what = f"ingest rate flat: last >= first steady segment (pool full, retention on) / {FLAT_FACTOR}"
    p99_what = f"/queue p99 flat: last <= {FLAT_FACTOR} x first steady segment (pool full, retention on)"
    if len(deleting) < 2:
        why = "fewer than two full-pool segments after retention_s"
        out.append((rate_what, why, None))
        out.append((p99_what, why, None))
    else:
        first, last = deleting[0], deleting[-1]
        rate = last["samples_per_s"] / first["samples_per_s"]
        measured = f"{last['samples_per_s']:,.0f} vs {first['samples_per_s']:,.0f} samples/s (x{rate:.2f})"
        if steady[0] is not first:
            measured += f"; {steady[0]['samples_per_s']:,.0f} before retention began"
        out.append(
            (
                rate_what,
                measured,
                rate >= 1 / FLAT_FACTOR,
            )
        )
        if first["queue"] and last["queue"]:
            p99 = last["queue"]["p99_ms"] / first["queue"]["p99_ms"]
            out.append(
                (
                    p99_what,
                    f"{last['queue']['p99_ms']:.1f} vs {first['queue']['p99_ms']:.1f} ms (x{p99:.2f})",
                    p99 <= FLAT_FACTOR,
                )
            )
        else:
            out.append((p99_what, "no /queue", None))
    middle = steady[-1]["started_s"] / 2 if steady else 0.0
    settled = [r for r in steady if r["started_s"] >= max(middle, retention_s)]
    what = "store flat over the second half (rows and MB): last within 10% of the segment at the middle"
    if len(settled) < 2:
        out.append((what, "fewer than two such segments", None))
    else:
        first, last = settled[0], settled[-1]
        rows_ratio, mb_ratio = last["rows"] / first["rows"], last["store_mb"] / first["store_mb"]
        out.append(
            (
                what,
                f"{last['rows']:,} vs {first['rows']:,} rows ({rows_ratio - 1:+.1%}); "
                f"{last['store_mb']:,.0f} vs {first['store_mb']:,.0f} MB ({mb_ratio - 1:+.1%})",
                abs(rows_ratio - 1) <= STORE_TOLERANCE and abs(mb_ratio - 1) <= STORE_TOLERANCE,
            )
        )
    what = f"store within what retention keeps: rows <= {STORE_SLACK} x (pool + {retention_s:g} s in)"
    if not steady:
        out.append((what, "no full-pool segment", None))
    else:
        last = steady[-1]
        keeps = max_pool + retention_s * last["ingested_per_s"]
        out.append((what, f"{last['rows']:,} rows vs {keeps:,.0f}", last["rows"] <= STORE_SLACK * keeps))
    out.append(
        (
            f"samples/s sustained over the run >= {TARGET_PER_S:,.0f}",
            f"{sustained:,.0f} samples/s",
            sustained >= TARGET_PER_S,
        )
    )
    return out


def print_report(out: Any, report: dict[str, Any]) -> None:
    from rich.table import Table

    r = report["results"]
    table = Table(
        title=f"soak: {r['followed']:,} samples into a pool bounded at {report['config']['max_pool']:,} "
        f"(retention {report['config']['retention_s']:g} s, online updates, labels arriving)"
    )
    nan = float("nan")
    columns: dict[str, Any] = {
        "samples": lambda s: f"{'*' if s['full_pool'] else ''}{s['from'] / 1e6:.2f}-{s['to'] / 1e6:.2f}M",
        "s": lambda s: f"{s['seconds']:.0f}",
        "samples/s": lambda s: f"{s['samples_per_s']:,.0f}",
        "sent/s": lambda s: f"{s['sent_per_s']:,.0f}",
        "/queue p50": lambda s: f"{(s['queue'] or {}).get('p50_ms', nan):.1f}",
        "/queue p99": lambda s: f"{(s['queue'] or {}).get('p99_ms', nan):.1f}",
        "/send p99": lambda s: f"{(s['send'] or {}).get('p99_ms', nan):.0f}",
        "waited": lambda s: f"{s['senders_waited_share']:.0%}",
        "CPU": lambda s: f"{s['service_cpu_share']:.0%}",
        "RSS MB": lambda s: f"{s['rss_mb']:,.0f}",
        "pool": lambda s: f"{s['pool']:,}",
        "evicted": lambda s: f"{s['evicted']:,}",
        "rejected": lambda s: f"{s['rejected']:,}",
        "store MB": lambda s: f"{s['store_mb']:,.0f}",
        "rows": lambda s: f"{s['rows']:,}",
        "log MB": lambda s: f"{s['log_mb']:,.0f}",
        "versions": lambda s: f"{s['versions']}",
        "/stats kB": lambda s: f"{s['stats_kb']:,.0f}",
    }
    for name in columns:
        table.add_column(name, justify="right")
    for segment in r["segments"]:
        table.add_row(*(cell(segment) for cell in columns.values()))
    out.print(table)
    full = r["pool_first_full"]
    filled = (
        f"* full-pool segment. The pool first filled after {full['followed']:,} samples, "
        f"RSS {full['rss_mb']:,.0f} MB; "
        if full
        else "The pool never filled; "
    )
    out.print(
        f"{filled}sustained {r['sustained_per_s']:,.0f} samples/s over {r['seconds']:.0f} s "
        f"({r['full_pool_per_s']:,.0f} over the full-pool segments); {r['labels_sent']:,} labels sent; "
        f"'waited': the senders' share of time held back by --max-lag (near 100%: the consumer or engine "
        f"is the bottleneck, not the HTTP edge); 'CPU': the service's.",
        highlight=False,
    )
    checks = Table(title="verdicts")
    for name in ("verdict", "measured", "result"):
        checks.add_column(name)
    for what, measured, passed in report["verdicts"]:
        checks.add_row(
            what, measured, {True: "[bold green]PASS", False: "[bold red]FAIL", None: "[yellow]N/A"}[passed]
        )
    out.print(checks)
    for error in r["errors"]:
        out.print(f"[red]error: {error}")


# --------------------------------------------------------------------------------------- main


def _absolute_pythonpath() -> dict[str, str]:
    """``PYTHONPATH`` with each entry absolute: the service runs in its own folder, where a relative
    ``src`` names nothing and Python would import whichever alstream is installed instead."""
    entries = os.environ.get("PYTHONPATH")
    if not entries:
        return {}
    return {"PYTHONPATH": os.pathsep.join(str(Path(e).resolve()) for e in entries.split(os.pathsep) if e)}


def alstream_served(python_path: str | None) -> str:
    """The folder of the alstream package that the service imports."""
    import subprocess
    import sys

    env = {**os.environ, **({"PYTHONPATH": python_path} if python_path else {})}
    command = [sys.executable, "-c", "import alstream, os; print(os.path.dirname(alstream.__file__))"]
    return subprocess.run(
        command, env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True
    ).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=10_000_000)
    parser.add_argument("--max-pool", type=int, default=1_000_000)
    parser.add_argument("--retention-s", type=float, default=60.0)
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"check the harness: {QUICK['samples']:,} samples, pool {QUICK['max_pool']:,}, "
        f"retention {QUICK['retention_s']:g} s",
    )
    parser.add_argument(
        "--segment", type=int, help="samples per segment (default 10^6, or a tenth of the run)"
    )
    parser.add_argument("--batch", type=int, default=5_000, help="samples per POST /send")
    parser.add_argument("--senders", type=int, default=1, choices=(1, 2))
    parser.add_argument(
        "--via",
        choices=("http", "log"),
        default="http",
        help="http: POST /send; log: produce straight to the embedded log's samples topic (no HTTP edge)",
    )
    parser.add_argument(
        "--packed", action="store_true", help="with --via log: features as base64 float32s (as /send writes)"
    )
    parser.add_argument(
        "--max-lag", type=int, default=50_000, help="samples sent but not yet followed, at most"
    )
    parser.add_argument("--label-every-s", type=float, default=0.25)
    parser.add_argument("--label-n", type=int, default=5, help="items per GET /queue, each labeled")
    parser.add_argument("--bank", type=int, default=200_000, help="distinct generated rows")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the service and this process")
    parser.add_argument(
        "--consumer-apart",
        action="store_true",
        help="the consumer in its own process (serve --no-consumer + alstream consume); implies --no-pin",
    )
    parser.add_argument("--out", type=Path, help="default bench/results/soak.json (--quick: soak-quick.json)")
    args = parser.parse_args()
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    args.out = args.out or RESULTS / ("soak-quick.json" if args.quick else "soak.json")
    segment = args.segment or min(1_000_000, max(1, args.samples // 10))
    poll_s = POLL_S if segment >= 1_000_000 else POLL_S / 2.5  # several polls per segment
    pinned = not (args.no_pin or args.consumer_apart) and len(CPUS) >= 2
    server_cpu, client_cpu = (CPUS[-1], CPUS[0]) if pinned else (None, None)
    if client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})
    out = console(170)
    load_before = os.getloadavg()
    with out.status(f"generating {args.bank:,} samples"):
        bank = Bank(args.bank)
    settings = {
        "ALSTREAM_DEMO": "false",
        "ALSTREAM_PROJECT": json.dumps({"classes": CLASSES, "n_features": N_FEATURES}),
        "ALSTREAM_ADMIN_TOKEN": ADMIN_TOKEN,
        "ALSTREAM_MAX_POOL": str(args.max_pool),
        "ALSTREAM_RETENTION_S": str(args.retention_s),
        "ALSTREAM_ONLINE_UPDATES": "true",
        "ALSTREAM_MODEL": "sgd",
        "ALSTREAM_LOG_LEVEL": "WARNING",
        **{f"ALSTREAM_{route}_RATE_PER_S": "1e9" for route in ("SEND", "QUEUE", "LABELS")},  # no rate limits
        **_absolute_pythonpath(),
    }
    served = alstream_served(settings.get("PYTHONPATH"))
    run = Run(samples=args.samples, batch=args.batch, max_lag=args.max_lag, packed=args.packed)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with tempfile.TemporaryDirectory(prefix="alstream-soak-") as tmp:
        home = Path(tmp)
        out.print(
            f"starting alstream serve (pool {args.max_pool:,}, retention {args.retention_s:g} s), "
            f"alstream from {served}"
        )
        with service(home, server_cpu, settings, consumer_apart=args.consumer_apart) as running:
            if args.via == "log":
                produce: tuple[Any, tuple[Any, ...]] = (log_producer, (home / "data" / "log", bank, run))
            else:
                produce = (sender, (running.url, bank, run))
            threads = [
                threading.Thread(target=produce[0], args=produce[1], daemon=True) for _ in range(args.senders)
            ]
            threads.append(
                threading.Thread(
                    target=labeler,
                    daemon=True,
                    args=(running.url, bank, run, args.label_every_s, args.label_n),
                )
            )
            start = {
                "t": time.perf_counter(),
                "followed": 0,
                "ingested": 0,
                "sent": 0,
                "model_version": 0,
                "labels": 0,
                "cpu_s": cpu_seconds([psutil.Process(p.pid) for p in running.processes]),
            }
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                console=out,
            ) as bar:
                task = bar.add_task("samples followed", total=args.samples, info="")

                def progress(poll: dict[str, Any]) -> None:
                    rate = poll["followed"] / max(1e-9, poll["t"] - start["t"])
                    bar.update(
                        task,
                        completed=poll["followed"],
                        info=f"{rate:,.0f}/s pool {poll['pool']:,} RSS {poll['rss_mb']:,.0f} MB",
                    )

                for thread in threads:
                    thread.start()
                seen = monitor(running.url, running, home, run, segment, progress, poll_s)
            run.stop.set()
            for thread in threads:
                thread.join(timeout=150)
            final = httpx.get(f"{running.url}/stats", headers=AUTH, timeout=60).json()
        log = (home / "service.log").read_text(errors="replace").splitlines()
    rows = segments(run, seen, start)
    last = seen["polls"][-1]
    seconds = last["t"] - start["t"]
    steady = [r for r in rows if r["full_pool"]]
    steady_s = sum(r["seconds"] for r in steady)
    results = {
        "followed": last["followed"],
        "seconds": seconds,
        "sustained_per_s": last["followed"] / seconds,
        "full_pool_per_s": sum(r["to"] - r["from"] for r in steady) / steady_s if steady_s else None,
        "labels_sent": run.labels_sent,
        "pool_first_full": seen["full"],
        "segments": rows,
        "queue_all": percentiles([ms for _, ms in run.queue_ms]) if run.queue_ms else None,
        "send_all": percentiles([ms for _, ms in run.send_ms]) if run.send_ms else None,
        "final_stats": {k: v for k, v in final.items() if k != "learning_curve"},
        "learning_curve_points": len(final["learning_curve"]),
        "service_log": {
            "lines": len(log),
            "warnings": sum(" WARNING " in line for line in log),
            "errors": sum(" ERROR " in line for line in log),
            "tail": log[-20:],
        },
        "errors": run.errors,
    }
    report = {
        "benchmark": "soak",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "config": {
            key: getattr(args, key)
            for key in (
                "samples",
                "max_pool",
                "retention_s",
                "batch",
                "senders",
                "max_lag",
                "label_every_s",
                "label_n",
                "bank",
            )
        }
        | {
            "segment": segment,
            "server_cpu": server_cpu,
            "client_cpu": client_cpu,
            "consumer": "its own process" if args.consumer_apart else "in alstream serve",
            "model": "sgd",
            "online_updates": True,
            "stream": "embedded log",
            "via": "POST /send"
            if args.via == "http"
            else "produced straight to the samples topic" + (" (packed features)" if args.packed else ""),
            "store": "SQLite",
            "data": f"make_classification, {N_FEATURES} features, {N_CLASSES} classes, rounded",
            "flat_factor": FLAT_FACTOR,
        },
        "alstream": {**source_info(), "served_from": served},
        "machine": {**machine(), "load_average": {"start": load_before, "end": os.getloadavg()}},
        "results": results,
    }
    report["verdicts"] = verdicts(rows, seen, results["sustained_per_s"], args.retention_s, args.max_pool)
    print_report(out, report)
    write_report(args.out, report)
    out.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
