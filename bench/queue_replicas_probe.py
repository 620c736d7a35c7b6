"""``GET /queue`` through 1 and 2 ``alstream serve --stateless`` replicas, without Kafka or workers:
a private PostgreSQL, 6 shards' samples and candidates written straight into the store (and,
``--republish``, each shard's candidates republished every second as a worker would), model
version 1 recorded; then ``--clients`` asyncio clients leasing 5 and releasing them (as
``scale_out_bench``'s queue phase does). ``--hold`` keeps the system up after the runs, with the
replicas' pids printed, to profile them (py-spy) or look at PostgreSQL (pg_stat_activity).

    PYTHONPATH=src .venv/bin/python bench/queue_replicas_probe.py --replicas 1 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import psutil
import psycopg
from sklearn.datasets import load_digits
from sqlalchemy.engine import make_url

from alstream.store import SampleRow, Store
from candidates_bench import database, postgres, server_cpu_s
from common import ONE_THREAD, free_port, percentiles, wait
from scale_out_bench import ADMIN_TOKEN, ALSTREAM, clients, record_first_version

SHARDS = 6


def fill(store: Store, per_shard: int, picks: int, seed: int = 0) -> None:
    digits = load_digits().data.astype(np.float32)
    for shard in range(SHARDS):
        rows = [
            SampleRow(f"s{shard}-{i}", digits[(shard * per_shard + i) % len(digits)], shard=shard)
            for i in range(per_shard + picks)
        ]
        store.add_samples(rows)
        publish(store, shard, per_shard, picks, seed)


def publish(store: Store, shard: int, per_shard: int, picks: int, seed: int) -> None:
    rng = np.random.default_rng(seed * 100 + shard)
    store.candidates.publish(
        shard,
        1,
        [f"s{shard}-{i}" for i in range(per_shard)],
        rng.random(per_shard).tolist(),
        picks=[f"s{shard}-{i}" for i in range(per_shard, per_shard + picks)],
        pick_scores=rng.random(picks).tolist(),
        stream=10 * (per_shard + picks),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--per-shard", type=int, default=1000)
    parser.add_argument("--republish", action="store_true", help="each shard republished every second")
    parser.add_argument("--hold", type=float, default=0, help="seconds to keep the system up after")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the replicas")
    args = parser.parse_args()
    results = []
    with postgres(None) as (admin, pid_file), tempfile.TemporaryDirectory(prefix="alstream-probe-") as home:
        url = database(admin)
        store = Store(url)
        store.create()
        record_first_version(store, Path(home) / "shared" / "models")
        fill(store, args.per_shard, args.per_shard // 10)
        stop = threading.Event()

        def republish() -> None:
            seed = 1
            while not stop.wait(1.0):
                for shard in range(SHARDS):
                    publish(store, shard, args.per_shard, args.per_shard // 10, seed)
                seed += 1

        if args.republish:
            threading.Thread(target=republish, daemon=True).start()
        settings = {
            "database_url": url,
            "data_dir": f"{home}/shared",
            "demo": "false",
            "admin_token": ADMIN_TOKEN,
            "queue_rate_per_s": "100000",
            "queue_burst": "100000",
        }
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALSTREAM_")}
        env.update({**ONE_THREAD, **{f"ALSTREAM_{k.upper()}": v for k, v in settings.items()}})
        env.update(dict(kv.split("=", 1) for kv in args.env))
        procs: list[subprocess.Popen] = []
        try:
            for n in args.replicas:
                urls = []
                for i in range(n):
                    port = free_port()
                    log = (Path(home) / f"replica-{n}-{i}.log").open("wb")
                    cmd = [str(ALSTREAM), "serve", "--stateless", "--port", str(port), "--no-mlflow"]
                    cmd += ["--orchestrator", "none"]
                    proc = subprocess.Popen(cmd, env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT)
                    procs.append(proc)
                    u = f"http://127.0.0.1:{port}"

                    def answers(u: str = u) -> bool:
                        with contextlib.suppress(httpx.HTTPError):
                            return httpx.get(f"{u}/health", timeout=2).status_code == 200
                        return False

                    wait(answers, 120, f"replica on {port}")
                    urls.append(u)
                print("replica pids:", [p.pid for p in procs[-n:]], flush=True)
                waits: list[str] = []
                sampling = threading.Event()

                def sample_waits(waits: list[str] = waits, sampling: threading.Event = sampling) -> None:
                    libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
                    with psycopg.connect(libpq, autocommit=True) as conn:
                        while not sampling.wait(0.05):
                            rows = conn.execute(
                                "SELECT state, coalesce(wait_event_type, '-') || ':' ||"
                                " coalesce(wait_event, '-')"
                                " FROM pg_stat_activity WHERE backend_type = 'client backend'"
                                " AND pid <> pg_backend_pid()"
                            ).fetchall()
                            waits.extend(f"{state} {what}" for state, what in rows)

                sampler = threading.Thread(target=sample_waits, daemon=True)
                sampler.start()
                replicas = [psutil.Process(p.pid) for p in procs[-n:]]
                cpu = sum(sum(r.cpu_times()[:2]) for r in replicas)
                pg = server_cpu_s(pid_file)
                began = time.perf_counter()
                latencies, leased, failed = asyncio.run(clients(urls, args.clients, args.rounds))
                wall = time.perf_counter() - began
                cpu = sum(sum(r.cpu_times()[:2]) for r in replicas) - cpu
                pg = server_cpu_s(pid_file) - pg
                sampling.set()
                sampler.join()
                counted = Counter(waits)
                print({k: round(v / max(len(waits), 1), 3) for k, v in counted.most_common(10)}, flush=True)
                row = {
                    "replicas": n,
                    "requests": len(latencies),
                    "leased": leased,
                    "failed": failed,
                    "requests_per_s": len(latencies) / wall,
                    **{k: round(v, 1) for k, v in percentiles(latencies).items() if k != "n"},
                    "replica_cpu_ms_per_request": round(cpu * 1000 / len(latencies), 2),
                    "postgres_cpu_ms_per_request": round(pg * 1000 / len(latencies), 2),
                    "backends_seen_per_sample": round(len(waits) / max(1, wall / 0.05), 1),
                    "load": os.getloadavg()[0],
                }
                print(json.dumps(row), flush=True)
                results.append(row)
                if args.hold:
                    print("holding", args.hold, "s; db", url, flush=True)
                    time.sleep(args.hold)
                for p in procs:
                    p.terminate()
                    p.wait(30)
                procs.clear()
        finally:
            stop.set()
            for p in procs:
                p.kill()
                p.wait()
            store.close()
    json.dump(results, sys.stdout)
    print()


if __name__ == "__main__":
    main()
