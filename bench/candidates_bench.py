"""The shared queue (``alstream.store.candidates``): /queue-sized leases by many annotators at once.

``--candidates`` (10^5) candidates published over ``--shards`` (6) shards, with ``--labels``
(10^5) label events of other samples in the store (a lease checks the candidates it takes against
them); then ``--threads`` (20) annotators, each on a thread and a connection of its own, spread
over the run's replicas (``--runs backend:replicas[:random_share]``; each replica a process with
its own ``Store``, as API replicas would be), each ``--leases`` times: lease ``n=5`` (caps of 10 per
annotator and 20 per token, TTL 10 min; a ``random_share`` of the items random picks, of which
each shard published a tenth of its candidates), then end the previous lease's items (labeled), so
live leases stay bounded as with people.

Measured: every lease and every end (p50/p99), leases per second over the whole run (ends
included), the CPU time per lease (and its end) of the server and of the replicas, whatever else
the machine runs (its load average is in the report), each shard's first publish and a republish
while nothing else runs; and counted: items leased twice (0, or the queue is broken).

PostgreSQL: a private server started as tests/conftest.py does (its ``PostgresServer``; fsync and
synchronous commit off, as in the tests: a production server would add its commit's flush to each
lease), or ``--postgres-url`` (a server where the user may CREATE DATABASE). SQLite: a file in WAL
mode, as the store opens it (one process: writers take turns). Both share this machine's cores
with the threads. Results: a table and ``bench/results/candidates.json``.

    PYTHONPATH=src .venv/bin/python bench/candidates_bench.py
    PYTHONPATH=src .venv/bin/python bench/candidates_bench.py --candidates 10000 --leases 50  # quick
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import psycopg
from rich.table import Table
from sqlalchemy.engine import make_url

from alstream.store import LabelRow, Store
from alstream.store.candidates import Candidates
from common import RESULTS, console, percentiles, table, write_report
from provenance import ROOT, machine, source_info

N, CAP, TOKEN_CAP, TTL_S = 5, 10, 20, 600.0


@contextlib.contextmanager
def postgres(url: str | None) -> Iterator[tuple[str, Path | None]]:
    """An admin URL and the server's ``postmaster.pid`` (None: ``url``'s server, not ours)."""
    if url:
        yield url, None
        return
    sys.path.insert(0, str(ROOT))
    from tests.conftest import PostgresServer, _pg_bindir

    bindir = _pg_bindir()
    if bindir is None:
        raise SystemExit("no PostgreSQL binaries (initdb, pg_ctl): bash scripts/system-packages.sh")
    server = PostgresServer(bindir)
    try:
        yield server.admin_url, server.root / "data" / "postmaster.pid"
    finally:
        server.remove()


def server_cpu_s(pid_file: Path | None) -> float | None:
    """CPU seconds the server has used: the postmaster, its live backends and those that ended."""
    if pid_file is None:
        return None
    postmaster = psutil.Process(int(pid_file.read_text().split()[0]))
    times = postmaster.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in postmaster.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += sum(child.cpu_times()[:2])
    return total


def database(admin_url: str) -> str:
    """A fresh database on the server of ``admin_url``."""
    name = f"alstream_bench_{uuid.uuid4().hex[:8]}"
    libpq = make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def fill(store: Store, args: argparse.Namespace) -> dict[str, Any]:
    """Labels of other samples, then each shard's candidates; the publishes' times."""
    for start in range(0, args.labels, 10_000):
        rows = [
            LabelRow(f"labeled-{i}", "a", "ann", False, "labels:0", i)
            for i in range(start, min(start + 10_000, args.labels))
        ]
        store.add_labels(rows)
    rng = np.random.default_rng(0)
    per_shard = args.candidates // args.shards
    publish_s = []
    for shard in range(args.shards):
        names = [f"s{shard}-{i}" for i in range(per_shard)]
        picks = [f"r{shard}-{i}" for i in range(per_shard // 10)]
        started = time.perf_counter()
        store.candidates.publish(
            shard,
            1,
            names,
            rng.random(per_shard).tolist(),
            picks=picks,
            pick_scores=rng.random(len(picks)).tolist(),
            stream=(shard + 1) * 100 * len(picks),
        )
        publish_s.append(time.perf_counter() - started)
    return {"per_shard": per_shard, "publish_s": publish_s}


def replica(url: str, first: int, threads: int, leases: int, share: float, start: Any, results: Any) -> None:
    """One API replica, in a process of its own: annotators ``first`` ... on ``threads`` threads (a
    connection each), all from ``start`` (a barrier of every replica and the bench) on; their
    timings and what they leased go to ``results``."""
    lease_ms: list[float] = []  # list.append is atomic: the threads share these
    end_ms: list[float] = []
    leased: list[str] = []
    short: list[int] = []  # leases that found fewer than N free items
    errors: list[str] = []
    ready = threading.Barrier(threads + 1)

    def run(queue: Candidates, i: int) -> None:
        annotator, previous = f"ann{first + i}", []
        try:
            ready.wait()
            for _ in range(leases):
                began = time.perf_counter()
                got = [
                    c.id
                    for c in queue.lease(
                        annotator,
                        f"key{first + i}",
                        N,
                        TTL_S,
                        cap=CAP,
                        token_cap=TOKEN_CAP,
                        random_share=share,
                    )
                ]
                lease_ms.append((time.perf_counter() - began) * 1e3)
                leased.extend(got)
                if len(got) < N:
                    short.append(1)
                if previous:
                    began = time.perf_counter()
                    queue.end(previous)
                    end_ms.append((time.perf_counter() - began) * 1e3)
                previous = got
        except BaseException as error:  # reported by the bench
            errors.append(repr(error))

    with Store(url) as store:  # its engine's pool: up to 15 connections
        workers = [threading.Thread(target=run, args=(store.candidates, i)) for i in range(threads)]
        for worker in workers:
            worker.start()
        start.wait()
        cpu = time.process_time()
        ready.wait()
        for worker in workers:
            worker.join()
        done, cpu = time.monotonic(), time.process_time() - cpu
    results.put(
        {
            "lease_ms": lease_ms,
            "end_ms": end_ms,
            "leased": leased,
            "short": len(short),
            "errors": errors,
            "done": done,
            "cpu_s": cpu,
        }
    )


def annotate(
    url: str, replicas: int, share: float, pid_file: Path | None, args: argparse.Namespace
) -> dict[str, Any]:
    """``args.threads`` annotators over ``replicas`` processes, started together; what they did."""
    context = get_context("spawn")
    start, results, per = context.Barrier(replicas + 1), context.Queue(), args.threads // replicas
    processes = [
        context.Process(target=replica, args=(url, first, per, args.leases, share, start, results))
        for first in range(0, per * replicas, per)
    ]
    for process in processes:
        process.start()
    start.wait(timeout=300)
    began, server_cpu = time.monotonic(), server_cpu_s(pid_file)
    runs = [results.get(timeout=3600) for _ in processes]
    if server_cpu is not None:
        server_cpu = server_cpu_s(pid_file) - server_cpu  # the replicas' connections are closed by now
    for process in processes:
        process.join()
    if errors := [e for r in runs for e in r["errors"]]:
        raise RuntimeError(f"{len(errors)} annotators failed, the first: {errors[0]}")
    wall_s = max(r["done"] for r in runs) - began
    times = Counter(item for r in runs for item in r["leased"])
    leases = sum(len(r["lease_ms"]) for r in runs)
    return {
        "replicas": replicas,
        "random_share": share,
        "wall_s": wall_s,
        "leases": leases,
        "leases_per_s": leases / wall_s,
        "items_leased": len(times),
        "items_leased_twice": sum(1 for n in times.values() if n > 1),
        "short_leases": sum(r["short"] for r in runs),
        "lease": percentiles([t for r in runs for t in r["lease_ms"]]),
        "end": percentiles([t for r in runs for t in r["end_ms"]]),
        # CPU per lease (and the end that follows it), whatever else the machine runs
        "server_cpu_ms_per_lease": None if server_cpu is None else server_cpu / leases * 1e3,
        "client_cpu_ms_per_lease": sum(r["cpu_s"] for r in runs) / leases * 1e3,
    }


def one_run(
    backend: str, replicas: int, share: float, url: str, pid_file: Path | None, args: argparse.Namespace
) -> dict[str, Any]:
    print(f"{backend}, {replicas} replica(s): filling", file=sys.stderr)
    with Store(url) as store:
        store.create()
        filled = fill(store, args)
        if backend == "postgresql":  # the statistics autovacuum would have gathered by now
            with store.engine.connect() as conn:
                conn.exec_driver_sql("ANALYZE")
                conn.commit()
        print(f"{backend}: {args.threads} annotators x {args.leases} leases", file=sys.stderr)
        run = annotate(url, replicas, share, pid_file, args)
        names = [f"s0-{i}" for i in range(filled["per_shard"])]
        scores = np.random.default_rng(1).random(len(names)).tolist()
        started = time.perf_counter()
        store.candidates.publish(0, 2, names, scores)
        republish_s = time.perf_counter() - started
        counts = store.candidates.counts()
    return {"backend": backend, **filled, "republish_s": republish_s, **run, "after": counts}


def results_table(results: list[dict[str, Any]], args: argparse.Namespace) -> Table:
    title = (
        f"{args.threads} annotators, leases of {N} (caps {CAP}, token {TOKEN_CAP}) from "
        f"{args.candidates:,} candidates over {args.shards} shards, {args.labels:,} labels"
    )
    out = table(
        title,
        [
            "backend",
            "replicas",
            "random share",
            "leases/s",
            "lease p50 ms",
            "lease p99 ms",
            "end p50 ms",
            "end p99 ms",
            "server CPU ms/lease",
            "client CPU ms/lease",
            "publish a shard s",
            "leased twice",
        ],
    )
    for r in results:
        lease, end = r["lease"], r["end"]
        out.add_row(
            r["backend"],
            str(r["replicas"]),
            f"{r['random_share']:g}",
            f"{r['leases_per_s']:,.0f}",
            f"{lease['p50_ms']:.2f}",
            f"{lease['p99_ms']:.2f}",
            f"{end['p50_ms']:.2f}",
            f"{end['p99_ms']:.2f}",
            "-" if (cpu := r["server_cpu_ms_per_lease"]) is None else f"{cpu:.2f}",
            f"{r['client_cpu_ms_per_lease']:.2f}",
            f"{np.median(r['publish_s']):.2f}",
            str(r["items_leased_twice"]),
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", type=int, default=100_000)
    parser.add_argument("--shards", type=int, default=6)
    parser.add_argument("--labels", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=20)
    parser.add_argument("--leases", type=int, default=200, help="per annotator")
    parser.add_argument(
        "--runs",
        nargs="+",
        default=["postgresql:2", "postgresql:2:0.1", "postgresql:1", "sqlite:1"],
        help="backend:replicas[:random_share] (SQLite: one process, the case it serves)",
    )
    parser.add_argument("--postgres-url", help="a server to CREATE DATABASE on (default: a private one)")
    parser.add_argument("--out", type=Path, default=RESULTS / "candidates.json")
    args = parser.parse_args()
    results, load = [], {"start": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="alstream-candidates-") as tmp, contextlib.ExitStack() as stack:
        server = None
        for number, run in enumerate(args.runs):
            backend, replicas, *share = run.split(":")
            if backend == "sqlite":
                url, pid_file = f"sqlite:///{tmp}/store{number}.db", None
            else:
                server = server or stack.enter_context(postgres(args.postgres_url))
                url, pid_file = database(server[0]), server[1]
            results.append(one_run(backend, int(replicas), float(*share or [0]), url, pid_file, args))
    out = console(150)
    out.print(results_table(results, args))
    created = datetime.now(UTC).isoformat(timespec="seconds")
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "postgres_url")}
    load["end"] = os.getloadavg()
    write_report(
        args.out,
        {
            "benchmark": "candidates",
            "created": created,
            "settings": settings,
            "lease": {"n": N, "cap": CAP, "token_cap": TOKEN_CAP, "ttl_s": TTL_S},
            "alstream": source_info(),
            "machine": {**machine(), "load_average": load},
            "results": results,
        },
    )
    out.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
