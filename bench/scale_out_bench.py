"""Scale-out on one machine: ingest plus scoring with 1 and 2 ``alstream worker``, ``/queue`` through
1 and 2 ``alstream serve --stateless`` replicas, and a killed worker's partitions serving again.

A Kafka broker (``scripts/kafka.sh``, a temporary home) and PostgreSQL (a private server, as
tests/conftest.py starts it; or ``--postgres-url``). Each run has its own database, topics (6
partitions) and group, and model version 1 recorded before the workers start.

* **Throughput.** The workers join the empty topic; once they own every partition they are stopped
  (SIGSTOP), ``--samples`` samples are produced to Kafka, and they go on (SIGCONT): the producer does
  not compete with them. The clock runs from SIGCONT until every sample is stored and every shard
  published candidates after that (a publish follows the step that scored the shard's last arrivals;
  publishes come at most once a second, so the end is up to 1 s late in both runs). An unmeasured
  run of one worker on a fifth of the samples comes first (``warm_up``). Target: 2 workers >= 1.7 x
  one.
* **Memory per sample:** the single worker's RSS before the samples and after, over the samples.
* **/queue:** ``--clients`` clients (asyncio, one process), each leasing 5 and releasing them,
  ``--rounds`` times, spread over the replicas; latencies of ``GET /queue``; PostgreSQL's CPU (every
  backend: the leases, the releases and the workers' own queries) over the leases made, and so the
  CPU of the replicas, the clients (this process), the workers and the whole machine (other work
  too), and the machine's busy share: where the time goes when every process shares the CPUs.
* **Takeover:** SIGKILL one of the 2 workers; seconds until the survivor owns its partitions and has
  published them (Kafka's session timeout, 10 s, is the floor: static members are waited for).

The machine is shared: the load average is recorded at the start and end. Results: a table and
``bench/results/scale_out.json``.

    PYTHONPATH=src .venv/bin/python bench/scale_out_bench.py
    PYTHONPATH=src .venv/bin/python bench/scale_out_bench.py --only queue  # results/scale_out_queue.json
    PYTHONPATH=src .venv/bin/python bench/scale_out_bench.py --only throughput  # scale_out_throughput.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
from rich.table import Table
from sklearn.datasets import load_digits
from sqlalchemy import func, select, text

from alstream.messages import Sample, encode_sample
from alstream.service.model_files import ModelFiles
from alstream.service.trainer import RetrainPolicy, Trainer
from alstream.store import Store
from alstream.store.tables import candidates, samples
from alstream.stream.kafka import KafkaStream
from candidates_bench import database, postgres, server_cpu_s
from common import ONE_THREAD, RESULTS, console, free_port, percentiles, print_verdict, wait, write_report
from provenance import machine, source_info
from service_bench import kafka_broker

ALSTREAM = Path(sys.executable).parent / "alstream"
PARTITIONS = 6
LEASE_N = 5  # items a client leases a request
TARGET_SPEEDUP = 1.7
ADMIN_TOKEN = "bench-admin-token-0123456789"
TIMEOUT_S = 600  # a step that takes longer than this has failed


@dataclass
class System:
    """The workers (and replicas) of one run, with their own database, topics and group."""

    home: Path
    url: str
    bootstrap: str
    env: dict[str, str]
    store: Store
    topic: str  # the samples topic
    workers: list[subprocess.Popen] = field(default_factory=list)
    replicas: list[tuple[str, subprocess.Popen]] = field(default_factory=list)

    def log(self, name: str) -> Path:
        return self.home / f"{name}.log"

    def start(self, name: str, *args: str) -> subprocess.Popen:
        with self.log(name).open("wb") as out:
            return subprocess.Popen(
                [str(ALSTREAM), *args], env=self.env, cwd=self.home, stdout=out, stderr=subprocess.STDOUT
            )

    def owned(self, n: int) -> set[int]:
        shards: set[int] = set()
        for shard, what in re.findall(r"shard (\d+): (assigned|moved)", self.log(f"worker-{n}").read_text()):
            (shards.add if what == "assigned" else shards.discard)(int(shard))
        return shards

    def moves(self, alive: list[int]) -> int:
        """Partitions the workers ``alive`` gave up so far (rebalances)."""
        return sum(self.log(f"worker-{n}").read_text().count(" moved to another worker") for n in alive)

    def partitioned(self, alive: list[int]) -> bool:
        for n in alive:
            if self.workers[n].poll() is not None:
                raise RuntimeError(f"worker {n} exited: {self.log(f'worker-{n}').read_text()[-3000:]}")
        owned = [self.owned(n) for n in alive]
        return all(owned) and sum(map(len, owned)) == PARTITIONS

    def last_times(self) -> tuple[datetime, datetime]:
        """When the last sample was stored, and the last shard published after its last sample."""
        arrived, published = self._latest()
        return max(arrived.values()), max(published.values())

    def caught_up(self, n: int) -> bool:
        """All ``n`` samples stored, and each shard published after its last one arrived (a publish
        follows the step that scored what the shard had)."""
        if self.store.counts()["samples"] < n:
            return False
        arrived, published = self._latest()
        return all(shard in published and published[shard] >= at for shard, at in arrived.items())

    def _latest(self) -> tuple[dict[int, datetime], dict[int, datetime]]:
        with self.store.engine.connect() as conn:
            arrived = conn.execute(
                select(samples.c.shard, func.max(samples.c.arrived_at)).group_by(samples.c.shard)
            )
            last = {shard: _utc(at) for shard, at in arrived}
            rows = conn.execute(
                select(candidates.c.shard, func.max(candidates.c.published_at)).group_by(candidates.c.shard)
            )
            return last, {shard: _utc(at) for shard, at in rows}

    def published_after(self, when: datetime) -> set[int]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                select(candidates.c.shard, func.max(candidates.c.published_at)).group_by(candidates.c.shard)
            ).all()
        return {s for s, at in rows if _utc(at) > when}


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


@contextlib.contextmanager
def system(admin: str, bootstrap: str, workers: int) -> Iterator[System]:
    """``workers`` workers on a fresh database and fresh topics, owning every partition, idle."""
    suffix = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory(prefix="alstream-scale-") as home:
        url = database(admin)
        settings = {
            "database_url": url,
            "kafka_bootstrap": bootstrap,
            "data_dir": f"{home}/shared",
            "samples_topic": f"bench-samples-{suffix}",
            "labels_topic": f"bench-labels-{suffix}",
            "dead_letter_topic": f"bench-dead-{suffix}",
            "consumer_group": f"bench-{suffix}",
            "consumer_instance_id": f"b-{suffix}",
            "demo": "false",
            "admin_token": ADMIN_TOKEN,
            "queue_rate_per_s": "100000",
            "queue_burst": "100000",
        }
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALSTREAM_")}
        env.update({**ONE_THREAD, **{f"ALSTREAM_{k.upper()}": v for k, v in settings.items()}})
        store = Store(url)
        store.create()
        record_first_version(store, Path(home) / "shared" / "models")
        stream = KafkaStream(bootstrap, partitions=PARTITIONS)
        stream.publish(settings["samples_topic"], [], timeout=60)  # made with 6 partitions
        stream.publish(settings["labels_topic"], [], timeout=60)
        stream.close()
        made = System(Path(home), url, bootstrap, env, store, settings["samples_topic"])
        try:
            for n in range(workers):
                made.workers.append(made.start(f"worker-{n}", "worker"))
            wait(
                lambda: made.partitioned(list(range(workers))),
                TIMEOUT_S,
                f"{workers} workers owning the partitions",
            )
            yield made
        finally:
            for proc in [*made.workers, *(p for _, p in made.replicas)]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGCONT)
                    proc.kill()
                proc.wait()
            store.close()


def record_first_version(store: Store, folder: Path) -> None:
    """Model version 1 (the digits, as the trainer would train it), its file and its row."""
    digits = load_digits()
    trainer = Trainer("sgd", [str(c) for c in range(10)], RetrainPolicy())
    version = trainer.train_full(digits.data.astype(np.float32), digits.target.astype(str))
    path = ModelFiles(folder).save(version)
    store.record_model(
        kind="full", n_labels=len(digits.target), metrics={}, status="ok", path=path, version=1
    )


def messages(n: int) -> list[tuple[bytes, bytes]]:
    """``n`` samples: the digits again and again, with noise (their features packed)."""
    digits = load_digits().data.astype(np.float32)
    rng = np.random.default_rng(0)
    X = digits[np.arange(n) % len(digits)] + rng.normal(0, 0.5, (n, digits.shape[1])).astype(np.float32)
    return [(f"s-{i}".encode(), encode_sample(Sample(id=f"s-{i}", features=row))) for i, row in enumerate(X)]


@dataclass(frozen=True)
class Usage:
    """CPU seconds so far: the broker's, this process's, and the machine's (busy, and in all)."""

    broker_s: float | None
    bench_s: float
    machine_busy_s: float
    machine_s: float

    @classmethod
    def now(cls, broker: psutil.Process | None) -> Usage:
        machine = psutil.cpu_times()
        idle = machine.idle + getattr(machine, "iowait", 0.0)
        total = sum(machine)
        broker_s = None if broker is None else sum(broker.cpu_times()[:2])
        return cls(broker_s, sum(psutil.Process().cpu_times()[:2]), total - idle, total)

    def __sub__(self, other: Usage) -> Usage:
        broker = None if self.broker_s is None or other.broker_s is None else self.broker_s - other.broker_s
        return Usage(
            broker,
            self.bench_s - other.bench_s,
            self.machine_busy_s - other.machine_busy_s,
            self.machine_s - other.machine_s,
        )


def broker_process(bootstrap: str) -> psutil.Process | None:
    """The Kafka broker's process: the java one listening on ``bootstrap``'s port (None: not found)."""
    port = int(bootstrap.rsplit(":", 1)[1])
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] != "java":
            continue
        with contextlib.suppress(psutil.Error):
            if any(
                c.laddr.port == port and c.status == psutil.CONN_LISTEN for c in proc.net_connections("tcp")
            ):
                return proc
    return None


def throughput(made: System, batch: list[tuple[bytes, bytes]], pid_file: Path | None) -> dict[str, Any]:
    """Stop the workers, produce ``batch``, let them go; how fast they store, score and publish it
    (and PostgreSQL's CPU for it)."""
    alive = list(range(len(made.workers)))
    moves_before = made.moves(alive)
    rss_before = sum(psutil.Process(p.pid).memory_info().rss for p in made.workers)
    for proc in made.workers:
        os.kill(proc.pid, signal.SIGSTOP)
    stream = KafkaStream(made.bootstrap, partitions=PARTITIONS)
    produced = time.perf_counter()
    stream.publish(made.topic, batch, timeout=TIMEOUT_S)
    produce_s = time.perf_counter() - produced
    stream.close()
    cpu_before = sum(sum(psutil.Process(p.pid).cpu_times()[:2]) for p in made.workers)
    pg_before = server_cpu_s(pid_file)
    broker = broker_process(made.bootstrap)
    others_before = Usage.now(broker)
    for proc in made.workers:
        os.kill(proc.pid, signal.SIGCONT)
    started_at = datetime.now(UTC)
    wait(lambda: made.caught_up(len(batch)), TIMEOUT_S, "every sample stored, scored and published", 0.1)
    stored, published = made.last_times()
    seconds = (published - started_at).total_seconds()
    cpu_s = sum(sum(psutil.Process(p.pid).cpu_times()[:2]) for p in made.workers) - cpu_before
    pg_after = server_cpu_s(pid_file)
    others = Usage.now(broker) - others_before
    pg_s = None if pg_before is None or pg_after is None else pg_after - pg_before
    rss_after = sum(psutil.Process(p.pid).memory_info().rss for p in made.workers)
    moved = made.moves(alive) > moves_before
    return {
        "workers": len(made.workers),
        "samples": len(batch),
        "produce_s": produce_s,
        "seconds": seconds,
        "samples_per_s": len(batch) / seconds,
        "stored_s": (stored - started_at).total_seconds(),
        "worker_cpu_s": cpu_s,
        "postgres_cpu_ms_per_1000_samples": None if pg_s is None else pg_s * 1e6 / len(batch),
        "postgres_cpu_s": pg_s,
        "broker_cpu_s": others.broker_s,
        "bench_cpu_s": others.bench_s,  # this process: its polls of the store, until caught up
        "machine_busy_cpu_s": others.machine_busy_s,  # every process's, others' work included
        "machine_cpu_s": others.machine_s,  # the CPUs' time: wall clock x logical CPUs
        "rss_before_mb": rss_before / 1e6,
        "rss_after_mb": rss_after / 1e6,
        "rss_bytes_per_sample": (rss_after - rss_before) / len(batch),
        "rebalanced_while_measured": moved,
        # samples/s were every CPU doing this work at its measured CPU per sample (workers,
        # PostgreSQL, the broker and this process's polls): what no number of workers passes here
        "ceiling_samples_per_s": ceiling(len(batch), cpu_s, pg_s, others),
    }


def warm_up(admin: str, bootstrap: str, batch: list[tuple[bytes, bytes]], pid_file: Path | None) -> None:
    """A run of one worker on a fifth of ``batch``, not measured: the broker's JIT and PostgreSQL's
    caches warm up before the runs compared (the first of them, one worker's, paid for them: 1.1 s of
    the broker's CPU per 100,000 samples against 0.3 s in the second)."""
    with system(admin, bootstrap, 1) as made:
        throughput(made, batch[: max(1, len(batch) // 5)], pid_file)


def ceiling(n: int, worker_s: float, pg_s: float | None, others: Usage) -> float | None:
    """``n`` samples over the CPU seconds they cost, times the machine's logical CPUs."""
    if pg_s is None or others.broker_s is None:
        return None
    return n * (psutil.cpu_count() or 1) / (worker_s + pg_s + others.broker_s + others.bench_s)


def start_replicas(made: System, n: int) -> list[str]:
    """``n`` more stateless replicas, answering; every replica's URL."""
    for _ in range(n):
        port = free_port()
        name = f"replica-{len(made.replicas)}"
        proc = made.start(
            name, "serve", "--stateless", "--port", str(port), "--no-mlflow", "--orchestrator", "none"
        )
        url = f"http://127.0.0.1:{port}"
        made.replicas.append((url, proc))

        def answers(url: str = url, proc: subprocess.Popen = proc, name: str = name) -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited: {made.log(name).read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{url}/health", timeout=2).status_code == 200
            return False

        wait(answers, TIMEOUT_S, name)
    return [url for url, _ in made.replicas]


async def clients(urls: list[str], n_clients: int, rounds: int) -> tuple[list[float], int, int]:
    """``n_clients`` annotators, each leasing 5 and releasing them ``rounds`` times, over ``urls`` in
    turns; the ``/queue`` latencies (ms), the items leased, and the requests that failed. A new
    connection each request (as through a load balancer; no race with the server's keep-alive)."""
    latencies: list[float] = []
    leased = failed = 0
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    limits = httpx.Limits(max_connections=n_clients, max_keepalive_connections=0)
    async with httpx.AsyncClient(headers=headers, timeout=120, limits=limits) as client:

        async def annotate(c: int) -> None:
            nonlocal leased, failed
            for turn in range(rounds):
                url = urls[(c + turn) % len(urls)]
                began = time.perf_counter()
                try:
                    answer = await client.get(f"{url}/queue", params={"n": LEASE_N, "annotator": f"c-{c}"})
                    latencies.append((time.perf_counter() - began) * 1000)
                    ids = [item["id"] for item in answer.raise_for_status().json()]
                    leased += len(ids)
                    body = {"annotator": f"c-{c}", "ids": ids}
                    release = f"{urls[(c + turn + 1) % len(urls)]}/queue/release"
                    (await client.post(release, json=body)).raise_for_status()
                except httpx.HTTPError:
                    failed += 1

        await asyncio.gather(*(annotate(c) for c in range(n_clients)))
    return latencies, leased, failed


def idle_cost(made: System, pid_file: Path | None, seconds: float = 10.0) -> dict[str, Any]:
    """PostgreSQL's CPU while the workers have nothing new (they poll the store each step)."""
    before = server_cpu_s(pid_file)
    time.sleep(seconds)
    after = server_cpu_s(pid_file)
    per_s = None if before is None or after is None else (after - before) / seconds
    return {"workers": len(made.workers), "seconds": seconds, "postgres_cpu_s_per_s": per_s}


def cpu_s(procs: list[subprocess.Popen]) -> float:
    """CPU seconds (user and system) the processes ``procs`` used so far."""
    return sum(sum(psutil.Process(p.pid).cpu_times()[:2]) for p in procs)


def where_cpu_goes(made: System, before: dict[str, float], requests: int, wall: float) -> dict[str, Any]:
    """CPU ms per lease (with its release) of the replicas, the clients (this process), the workers
    and the machine as a whole (every process, the other work on it too), and the machine's busy share."""
    now = cpu_snapshot(made)
    per_lease = {f"{k}_cpu_ms_per_lease": (now[k] - before[k]) * 1000 / requests for k in now if k != "idle"}
    logical = psutil.cpu_count() or 1
    busy = 1 - (now["idle"] - before["idle"]) / (wall * logical)
    return {**per_lease, "machine_busy_share": busy}


def cpu_snapshot(made: System) -> dict[str, float]:
    times = psutil.cpu_times()
    return {
        "replicas": cpu_s([p for _, p in made.replicas]),
        "clients": sum(os.times()[:2]),
        "workers": cpu_s(made.workers),
        "machine": sum(times) - times.idle - getattr(times, "iowait", 0.0),
        "idle": times.idle + getattr(times, "iowait", 0.0),
    }


def queue_run(
    made: System, urls: list[str], pid_file: Path | None, args: argparse.Namespace
) -> dict[str, Any]:
    cpu = server_cpu_s(pid_file)
    processes = cpu_snapshot(made)
    began = time.perf_counter()
    latencies, leased, failed = asyncio.run(clients(urls, args.clients, args.rounds))
    wall = time.perf_counter() - began
    after = server_cpu_s(pid_file)
    requests = len(latencies)
    spent = where_cpu_goes(made, processes, requests, wall)
    return {
        "replicas": len(urls),
        "clients": args.clients,
        "requests": requests,
        "items_leased": leased,
        "failed_requests": failed,
        "requests_per_s": requests / wall,
        "queue": percentiles(latencies),
        "postgres_cpu_ms_per_lease": None
        if cpu is None or after is None
        else (after - cpu) * 1000 / requests,
        **spent,
    }


def takeover(made: System) -> dict[str, Any]:
    """SIGKILL worker 0 of 2: seconds until worker 1 owns and has published its partitions."""
    moving = made.owned(0)
    with made.store.engine.connect() as conn:
        shards = samples.c.shard.in_(sorted(moving))
        rebuilt = conn.execute(select(func.count()).select_from(samples).where(shards)).scalar_one()
    killed_at, killed = datetime.now(UTC), time.perf_counter()
    made.workers[0].kill()
    made.workers[0].wait()
    wait(
        lambda: made.owned(1) == set(range(PARTITIONS)),
        TIMEOUT_S,
        "the survivor owning every partition",
        0.05,
    )
    owned_s = time.perf_counter() - killed
    wait(lambda: moving <= made.published_after(killed_at), TIMEOUT_S, "the moved shards published", 0.05)
    serving_s = time.perf_counter() - killed
    return {
        "moved_shards": sorted(moving),
        "rebuilt_samples": int(rebuilt),
        "owned_s": owned_s,
        "serving_s": serving_s,
    }


def candidates_size(made: System) -> dict[str, Any]:
    with made.store.engine.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(candidates)).scalar_one()
        size = conn.execute(text("SELECT pg_total_relation_size('candidates')")).scalar_one()
    return {"rows": int(rows), "bytes": int(size), "bytes_per_row": size / max(rows, 1)}


def queue_table(args: argparse.Namespace, queue_runs: list[dict[str, Any]]) -> Table:
    table = Table(title=f"GET /queue, {args.clients} clients x {args.rounds} leases of 5 (and releases)")
    for column in (
        "replicas",
        "requests/s",
        "failed",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "PostgreSQL CPU ms/lease",
        "replicas / clients / workers / machine CPU ms/lease",
        "machine busy",
    ):
        table.add_column(column, justify="right")
    for q in queue_runs:
        pg = q["postgres_cpu_ms_per_lease"]
        spent = (q.get(f"{k}_cpu_ms_per_lease") for k in ("replicas", "clients", "workers", "machine"))
        table.add_row(
            str(q["replicas"]),
            f"{q['requests_per_s']:.0f}",
            str(q["failed_requests"]),
            *(f"{q['queue'][k]:.0f}" for k in ("p50_ms", "p90_ms", "p99_ms")),
            "-" if pg is None else f"{pg:.2f}",
            " / ".join("-" if ms is None else f"{ms:.1f}" for ms in spent),
            f"{q.get('machine_busy_share', 0):.0%}",
        )
    return table


def queue_only(args: argparse.Namespace) -> None:
    """``--only queue``: 2 workers ingest the samples (their candidates), then /queue through 1 and
    2 replicas, as the whole run does."""
    out = console(120)
    load_start = os.getloadavg()
    out.print(f"load average at the start: {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}")
    batch = messages(args.samples)
    with kafka_broker(True, out) as (bootstrap, why), postgres(args.postgres_url) as (admin, pid_file):
        if bootstrap is None:
            raise SystemExit(f"no Kafka broker: {why}")
        with system(admin, bootstrap, 2) as two:
            ingest = throughput(two, batch, pid_file)
            queue_runs = [queue_run(two, start_replicas(two, 1), pid_file, args)]
            queue_runs.append(queue_run(two, start_replicas(two, 1), pid_file, args))
    load_end = os.getloadavg()
    out.print(queue_table(args, queue_runs))
    out.print(f"load average: start {load_start[0]:.2f}, end {load_end[0]:.2f} (1 min)")
    write_report(
        args.out,
        {
            "benchmark": "scale_out_queue",
            "created": datetime.now(UTC).isoformat(),
            "settings": run_settings(
                args,
                "--only queue: the /queue runs of scale_out_bench (2 workers up), on one shared "
                "2-CPU machine (see load_average)",
            ),
            "alstream": source_info(),
            "machine": {**machine(), "load_average": {"start": load_start, "end": load_end}},
            "ingest": ingest,
            "queue": queue_runs,
        },
    )
    out.print(f"wrote {args.out}")


def throughput_table(args: argparse.Namespace, runs: list[dict[str, Any]]) -> Table:
    table = Table(title=f"ingest + scoring, {args.samples:,} samples from Kafka ({PARTITIONS} partitions)")
    for column in (
        "workers",
        "samples/s",
        "s",
        "worker CPU s",
        "PostgreSQL CPU s",
        "broker CPU s",
        "machine busy",
        "RSS MB before -> after",
        "rebalanced",
        "CPU ceiling samples/s",
    ):
        table.add_column(column, justify="right")
    for r in runs:
        pg, broker = r["postgres_cpu_s"], r["broker_cpu_s"]
        table.add_row(
            str(r["workers"]),
            f"{r['samples_per_s']:,.0f}",
            f"{r['seconds']:.1f}",
            f"{r['worker_cpu_s']:.1f}",
            "-" if pg is None else f"{pg:.1f}",
            "-" if broker is None else f"{broker:.1f}",
            f"{r['machine_busy_cpu_s'] / r['machine_cpu_s']:.0%}",
            f"{r['rss_before_mb']:.0f} -> {r['rss_after_mb']:.0f}",
            "yes" if r["rebalanced_while_measured"] else "no",
            "-" if r.get("ceiling_samples_per_s") is None else f"{r['ceiling_samples_per_s']:,.0f}",
        )
    return table


def speedup_checks(runs: list[dict[str, Any]]) -> tuple[float, list[dict[str, Any]]]:
    """2 workers' samples/s over one's, and its check against the target."""
    speedup = runs[1]["samples_per_s"] / runs[0]["samples_per_s"]
    target = {"target": f"2 workers >= {TARGET_SPEEDUP}x one", "value": speedup}
    top = runs[0].get("ceiling_samples_per_s")
    if top is not None:  # the most any number of workers could reach here, at one worker's costs
        target["machine_ceiling_x_one_worker"] = top / runs[0]["samples_per_s"]
    return speedup, [{**target, "passed": speedup >= TARGET_SPEEDUP}]


def throughput_only(args: argparse.Namespace) -> None:
    """``--only throughput``: the 1- and 2-worker ingest runs, as the whole run makes them."""
    out = console(120)
    load_start = os.getloadavg()
    out.print(f"load average at the start: {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}")
    batch = messages(args.samples)
    with kafka_broker(True, out) as (bootstrap, why), postgres(args.postgres_url) as (admin, pid_file):
        if bootstrap is None:
            raise SystemExit(f"no Kafka broker: {why}")
        warm_up(admin, bootstrap, batch, pid_file)
        runs = []
        for n in (1, 2):
            with system(admin, bootstrap, n) as made:
                runs.append(throughput(made, batch, pid_file))
    load_end = os.getloadavg()
    speedup, checks = speedup_checks(runs)
    out.print(throughput_table(args, runs))
    out.print(f"load average: start {load_start[0]:.2f}, end {load_end[0]:.2f} (1 min)")
    out.print(f"2 workers / 1 worker: {speedup:.2f}x (target >= {TARGET_SPEEDUP}x)")
    if "machine_ceiling_x_one_worker" in checks[0]:
        bound = checks[0]["machine_ceiling_x_one_worker"]
        out.print(f"at one worker's CPU per sample, this machine's CPUs allow at most {bound:.2f}x one")
    print_verdict(out, checks)
    write_report(
        args.out,
        {
            "benchmark": "scale_out_throughput",
            "created": datetime.now(UTC).isoformat(),
            "settings": run_settings(
                args, "--only throughput: the ingest runs of scale_out_bench, on one shared 2-CPU machine"
            ),
            "alstream": source_info(),
            "machine": {**machine(), "load_average": {"start": load_start, "end": load_end}},
            "throughput": runs,
            "speedup": speedup,
            "checks": checks,
        },
    )
    out.print(f"wrote {args.out}")


def run_settings(args: argparse.Namespace, note: str) -> dict[str, Any]:
    """What a report says of the run's settings."""
    return {
        "samples": args.samples,
        "partitions": PARTITIONS,
        "clients": args.clients,
        "rounds": args.rounds,
        "lease_n": LEASE_N,
        "note": note,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=20, help="leases per client")
    parser.add_argument("--postgres-url", default=None)
    parser.add_argument(
        "--only",
        choices=["queue", "throughput"],
        default=None,
        help="queue: only the /queue runs (2 workers ingest --samples first, for their candidates; no "
        "1-worker run, no takeover); written to scale_out_queue.json unless --out. throughput: only "
        "the 1- and 2-worker ingest runs; written to scale_out_throughput.json unless --out",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.out is None:
        args.out = RESULTS / (f"scale_out_{args.only}.json" if args.only else "scale_out.json")
    if args.only == "queue":
        queue_only(args)
        return
    if args.only == "throughput":
        throughput_only(args)
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: the processes and servers go too
    out = console(120)
    load_start = os.getloadavg()
    out.print(
        f"load average at the start: {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f} "
        f"on {os.cpu_count()} CPUs (the machine is shared: other work shows in every number)"
    )
    batch = messages(args.samples)
    with kafka_broker(True, out) as (bootstrap, why), postgres(args.postgres_url) as (admin, pid_file):
        if bootstrap is None:
            raise SystemExit(f"no Kafka broker: {why}")
        warm_up(admin, bootstrap, batch, pid_file)
        with system(admin, bootstrap, 1) as one:
            runs = [throughput(one, batch, pid_file)]
        with system(admin, bootstrap, 2) as two:
            runs.append(throughput(two, batch, pid_file))
            size = candidates_size(two)
            idle = idle_cost(two, pid_file)
            queue_runs = [queue_run(two, start_replicas(two, 1), pid_file, args)]
            queue_runs.append(queue_run(two, start_replicas(two, 1), pid_file, args))
            moved = takeover(two)
    load_end = os.getloadavg()

    speedup, checks = speedup_checks(runs)
    out.print(throughput_table(args, runs))
    out.print(queue_table(args, queue_runs))
    out.print(
        f"killed worker's shards {moved['moved_shards']}: the survivor's after {moved['owned_s']:.1f} s, "
        f"published (serving) after {moved['serving_s']:.1f} s (Kafka's session timeout: 10 s)",
        highlight=False,
    )
    out.print(
        f"memory per sample in a worker's pool (RSS): {runs[0]['rss_bytes_per_sample']:.0f} B; candidates: "
        f"{size['rows']:,} rows, {size['bytes_per_row']:.0f} B a row with indexes",
        highlight=False,
    )
    pg = [r["postgres_cpu_ms_per_1000_samples"] for r in runs]
    if None not in pg and idle["postgres_cpu_s_per_s"] is not None:
        out.print(
            f"PostgreSQL CPU: {pg[0]:.0f} / {pg[1]:.0f} ms per 1,000 samples ingested (1 / 2 workers); "
            f"{idle['postgres_cpu_s_per_s'] * 1000:.0f} ms a second with 2 workers idle (their polls)",
            highlight=False,
        )
    out.print(f"load average: start {load_start[0]:.2f}, end {load_end[0]:.2f} (1 min)")
    out.print(f"2 workers / 1 worker: {speedup:.2f}x (target >= {TARGET_SPEEDUP}x)")
    if "machine_ceiling_x_one_worker" in checks[0]:
        bound = checks[0]["machine_ceiling_x_one_worker"]
        out.print(f"at one worker's CPU per sample, this machine's CPUs allow at most {bound:.2f}x one")
    print_verdict(out, checks)
    write_report(
        args.out,
        {
            "benchmark": "scale_out",
            "created": datetime.now(UTC).isoformat(),
            "settings": run_settings(
                args,
                "one shared 2-CPU machine: workers, replicas, Kafka, PostgreSQL and the clients "
                "on the same CPUs, with other work (see load_average)",
            ),
            "alstream": source_info(),
            "machine": {**machine(), "load_average": {"start": load_start, "end": load_end}},
            "throughput": runs,
            "speedup": speedup,
            "queue": queue_runs,
            "takeover": moved,
            "idle": idle,
            "candidates_table": size,
            "checks": checks,
        },
    )
    out.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
