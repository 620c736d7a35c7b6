"""Load benchmark: 50 concurrent clients against a real ``alstream serve`` with 10^6 samples in the pool.

The service runs as its own process (``python -m alstream serve``, embedded log, SQLite in a
temporary folder, a 3-class project of 8 features, pinned to one CPU), with a configured admin
token. The pool is filled through ``POST /send`` in batches of 10,000 (the real path: stream,
consumer, store, engine), the first samples labeled so a model is serving before the load; the
fill time is printed. Each client then gets its own producer and annotator tokens (``POST
/tokens``) and loops, without pauses, for ``--seconds``: ``POST /send`` of 20 new samples, ``GET
/queue?n=5&fresh=true`` as its own annotator (as the page asks), and one ``POST /labels`` per item
served (its true class).
The clients are asyncio tasks with their own ``httpx.AsyncClient`` each, in this process, pinned
to the other CPU.

Reported per endpoint: requests, throughput, p50/p99/max latency, errors (any answer but 200/202,
or no answer). Then the service drains, and the store (the SQLite file) is checked: every sample
id and every label that got a 202 must be there (lost writes), each label event once. Limits,
checked in the same run: no errors, no lost or doubled writes, p99 of each endpoint under
``P99_LIMIT_MS``. Results: a rich table and
``bench/results/load.json``; the exit code is 0 even when a limit fails (this is a report).

    .venv/bin/python bench/load_bench.py                 # 10^6 samples, 50 clients, 60 s
    .venv/bin/python bench/load_bench.py --pool 100000 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

from common import RESULTS, console, service, wait, write_report

ADMIN_TOKEN = "load-bench-admin-token-0123456789"
CLASSES = ["a", "b", "c"]
N_FEATURES = 8
FILL_BATCH = 10_000  # the default max_batch
SEND_BATCH = 20  # samples per POST /send during the load
QUEUE_N = 5
PRELABELED = 30  # samples of the fill that carry their label: a model serves before the load
P99_LIMIT_MS = {"POST /send": 1000.0, "GET /queue": 1000.0, "POST /labels": 1000.0}
ENDPOINTS = tuple(P99_LIMIT_MS)
CPUS = sorted(os.sched_getaffinity(0))
WEIGHTS = np.random.default_rng(7).normal(size=(N_FEATURES, len(CLASSES)))  # the true classes


def truth(features: np.ndarray) -> np.ndarray:
    """The true class of each row: a fixed linear rule the model can learn."""
    return np.asarray(CLASSES)[(np.atleast_2d(features) @ WEIGHTS).argmax(axis=1)]


def admin(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=60)


def stats(client: httpx.Client) -> dict[str, Any]:
    response = client.get("/stats")
    response.raise_for_status()
    return response.json()


# --------------------------------------------------------------------------------------- fill


def fill(url: str, n: int, seed: int = 0) -> dict[str, Any]:
    """Send ``n`` samples through POST /send; wait until the pool holds them and a model serves."""
    features = np.random.default_rng(seed).normal(size=(n, N_FEATURES)).astype(np.float32)
    labels = truth(features[:PRELABELED])
    with admin(url) as client:
        start = time.perf_counter()
        for first in range(0, n, FILL_BATCH):
            rows = features[first : first + FILL_BATCH]
            batch = [{"id": f"pool-{first + i}", "features": row} for i, row in enumerate(rows)]
            for i in range(max(0, min(PRELABELED - first, len(batch)))):
                batch[i]["label"] = str(labels[first + i])
            body = orjson.dumps(batch, option=orjson.OPT_SERIALIZE_NUMPY)
            response = client.post("/send", content=body, headers={"content-type": "application/json"})
            if response.status_code != 202:
                raise RuntimeError(f"filling the pool: {response.status_code} {response.text[:300]}")
        sent_s = time.perf_counter() - start
        # labeled samples leave the pool: wait until the engine followed every sample
        wait(lambda: stats(client)["store"]["samples"] >= n, 600, f"{n} samples in the pool", every=0.5)
        pooled_s = time.perf_counter() - start
        wait(lambda: client.get("/health").json()["model_version"] is not None, 300, "the first model")
        wait(lambda: stats(client)["model_version"] is not None, 300, "the pool scored by it")
        base = stats(client)["store"]
    return {
        "samples": n,
        "sent_s": sent_s,
        "in_pool_s": pooled_s,
        "samples_per_s": n / pooled_s,
        "ready_s": time.perf_counter() - start,
        "store_before_load": base,
    }


# --------------------------------------------------------------------------------------- load


@dataclass
class Tally:
    """What the clients saw: latencies and errors per endpoint, and every write that got a 202."""

    latencies_ms: dict[str, list[float]] = field(default_factory=lambda: {e: [] for e in ENDPOINTS})
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ENDPOINTS, 0))
    error_examples: list[str] = field(default_factory=list)
    sample_ids: list[str] = field(default_factory=list)
    labels: list[tuple[str, str, str]] = field(default_factory=list)  # (sample id, annotator, label)

    async def call(self, endpoint: str, request: Any, ok: int) -> httpx.Response | None:
        start = time.perf_counter()
        try:
            response = await request
        except httpx.HTTPError as error:
            response, problem = None, f"{type(error).__name__}: {error}"
        else:
            problem = None if response.status_code == ok else f"{response.status_code} {response.text[:200]}"
        self.latencies_ms[endpoint].append((time.perf_counter() - start) * 1000)
        if problem:
            self.errors[endpoint] += 1
            if len(self.error_examples) < 10:
                self.error_examples.append(f"{endpoint}: {problem}")
            return None
        return response


def make_tokens(url: str, clients: int) -> list[tuple[str, str]]:
    """(producer token, annotator token) for each client, made over POST /tokens."""
    pairs = []
    with admin(url) as client:
        for k in range(clients):
            made = [
                client.post("/tokens", json={"role": role, "name": name})
                for role, name in (("producer", f"load-producer-{k}"), ("annotator", f"annotator-{k}"))
            ]
            for response in made:
                response.raise_for_status()
            pairs.append((made[0].json()["token"], made[1].json()["token"]))
    return pairs


async def one_client(
    url: str, k: int, tokens: tuple[str, str], until: float, tally: Tally, seed: int
) -> None:
    """Send, fetch the queue, label what it served; again until ``until``."""
    rng = np.random.default_rng(seed + k)
    annotator = f"annotator-{k}"
    producer = {"Authorization": f"Bearer {tokens[0]}"}
    labeler = {"Authorization": f"Bearer {tokens[1]}"}
    json_headers = {"content-type": "application/json"}
    n = 0
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        while time.perf_counter() < until:
            ids = [f"c{k}-{n + i}" for i in range(SEND_BATCH)]
            n += SEND_BATCH
            rows = rng.normal(size=(SEND_BATCH, N_FEATURES)).astype(np.float32)
            body = orjson.dumps(
                [{"id": i, "features": r} for i, r in zip(ids, rows, strict=True)],
                option=orjson.OPT_SERIALIZE_NUMPY,
            )
            sent = http.post("/send", content=body, headers={**producer, **json_headers})
            if await tally.call("POST /send", sent, 202) is not None:
                tally.sample_ids.extend(ids)
            served = await tally.call(
                "GET /queue",
                http.get(
                    "/queue", params={"n": QUEUE_N, "annotator": annotator, "fresh": "true"}, headers=labeler
                ),
                200,
            )
            for item in served.json() if served is not None else []:
                label = str(truth(np.asarray(item["features"]))[0])
                body = {"id": item["id"], "label": label, "annotator": annotator}
                labeled = http.post("/labels", json=body, headers=labeler)
                if await tally.call("POST /labels", labeled, 202) is not None:
                    tally.labels.append((item["id"], annotator, label))


async def run_load(url: str, tokens: list[tuple[str, str]], seconds: float) -> tuple[Tally, float, float]:
    """All clients at once for ``seconds``; (the tally, wall seconds, this process's CPU seconds)."""
    tally = Tally()
    cpu = time.process_time()
    start = time.perf_counter()
    until = start + seconds
    await asyncio.gather(
        *(one_client(url, k, pair, until, tally, seed=1000) for k, pair in enumerate(tokens))
    )
    return tally, time.perf_counter() - start, time.process_time() - cpu


# ---------------------------------------------------------------------------------- lost writes


def drain_and_check(url: str, home: Path, tally: Tally, fill_result: dict[str, Any]) -> dict[str, Any]:
    """Wait until the service has followed every accepted write, then look each one up in the store."""
    from alstream.store import Store

    base = fill_result["store_before_load"]
    want_samples = fill_result["samples"] + len(tally.sample_ids)
    want_labels = base["labels_total"] + len(tally.labels)
    with admin(url) as client:

        def drained() -> bool:
            store = stats(client)["store"]
            return store["samples"] >= want_samples and store["labels_total"] >= want_labels

        try:
            drain_s = wait(drained, 180, "the service to store every accepted write", every=0.5)
        except RuntimeError:
            drain_s = None  # the check below counts what is missing
    store = Store(f"sqlite:///{home}/alstream.db")
    try:
        found = {s["id"] for s in store.get_samples(tally.sample_ids)}
        events = [
            (sample_id, annotator, label) for _, sample_id, label, annotator, _, _ in store.labels_after(0)
        ]
    finally:
        store.close()
    accepted, stored = Counter(tally.labels), Counter(events)
    return {
        "drain_s": drain_s,
        "accepted_samples": len(tally.sample_ids),
        "accepted_labels": len(tally.labels),
        "lost_samples": sum(1 for i in tally.sample_ids if i not in found),
        "lost_labels": sum((accepted - stored).values()),
        "extra_label_events": sum((stored - accepted).values()) - base["labels_total"],  # replayed twice
    }


# ------------------------------------------------------------------------------------- report


def summary(tally: Tally, wall_s: float) -> dict[str, Any]:
    out = {}
    for endpoint in ENDPOINTS:
        ms = np.asarray(tally.latencies_ms[endpoint])
        out[endpoint] = {
            "requests": len(ms),
            "per_s": len(ms) / wall_s,
            "errors": tally.errors[endpoint],
            "p50_ms": float(np.percentile(ms, 50)) if len(ms) else None,
            "p99_ms": float(np.percentile(ms, 99)) if len(ms) else None,
            "max_ms": float(ms.max()) if len(ms) else None,
        }
    return out


def check_limits(endpoints: dict[str, Any], lost: dict[str, Any]) -> list[dict[str, Any]]:
    checks = [
        {
            "limit": f"{e} p99 <= {limit:.0f} ms",
            "value": endpoints[e]["p99_ms"],
            "passed": endpoints[e]["p99_ms"] is not None and endpoints[e]["p99_ms"] <= limit,
        }
        for e, limit in P99_LIMIT_MS.items()
    ]
    errors = sum(e["errors"] for e in endpoints.values())
    checks.append({"limit": "errors = 0", "value": errors, "passed": errors == 0})
    for key in ("lost_samples", "lost_labels", "extra_label_events"):
        checks.append({"limit": f"{key.replace('_', ' ')} = 0", "value": lost[key], "passed": lost[key] == 0})
    return checks


def print_report(result: dict[str, Any]) -> None:
    from rich.table import Table

    out = console(130)
    f, load, writes = result["fill"], result["load"], result["writes"]
    out.print(
        f"Fill: {f['samples']:,} samples through POST /send in {f['sent_s']:.1f} s, all in the pool "
        f"after {f['in_pool_s']:.1f} s ({f['samples_per_s']:,.0f} samples/s), a model serving after "
        f"{f['ready_s']:.1f} s"
    )
    table = Table(title=f"{load['clients']} clients for {load['wall_s']:.0f} s, pool of {f['samples']:,}")
    for name in ("endpoint", "requests", "per s", "p50 ms", "p99 ms", "max ms", "errors"):
        table.add_column(name, justify="left" if name == "endpoint" else "right")
    for endpoint, e in result["endpoints"].items():
        numbers = (f"{e['per_s']:.0f}", f"{e['p50_ms']:.1f}", f"{e['p99_ms']:.1f}", f"{e['max_ms']:.0f}")
        table.add_row(endpoint, f"{e['requests']:,}", *numbers, str(e["errors"]))
    out.print(table)
    drain = "not within 180 s" if writes["drain_s"] is None else f"{writes['drain_s']:.1f} s"
    out.print(
        f"Accepted {writes['accepted_samples']:,} samples and {writes['accepted_labels']:,} labels; "
        f"drained in {drain}; lost {writes['lost_samples']} samples and {writes['lost_labels']} labels, "
        f"{writes['extra_label_events']} label events stored twice; "
        f"client CPU {load['client_cpu_share']:.0%}"
    )
    limits = Table(title="Limits")
    for name in ("limit", "value", "result"):
        limits.add_column(name)
    for check in result["limits"]:
        value = check["value"]
        shown = f"{value:.1f}" if isinstance(value, float) else str(value)
        limits.add_row(check["limit"], shown, "[green]PASS" if check["passed"] else "[red]FAIL")
    out.print(limits)
    for example in result["error_examples"]:
        out.print(f"[red]error: {example}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the clients run")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--pool", type=int, default=1_000_000, help="samples in the pool before the load")
    parser.add_argument("--out", type=Path, default=RESULTS / "load.json")
    args = parser.parse_args()
    server_cpu, client_cpu = CPUS[-1], CPUS[0]
    os.sched_setaffinity(0, {client_cpu})
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="alstream-load-") as tmp:
        home = Path(tmp)
        project = json.dumps({"classes": CLASSES, "n_features": N_FEATURES})
        settings = {
            "ALSTREAM_DEMO": "false",
            "ALSTREAM_PROJECT": project,
            "ALSTREAM_ADMIN_TOKEN": ADMIN_TOKEN,
        }
        with service(home, server_cpu, settings) as running:
            url = running.url
            filled = fill(url, args.pool)
            tokens = make_tokens(url, args.clients)
            tally, wall_s, client_cpu_s = asyncio.run(run_load(url, tokens, args.seconds))
            writes = drain_and_check(url, home, tally, filled)
    endpoints = summary(tally, wall_s)
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": len(CPUS),
            "server_cpu": server_cpu,
            "client_cpu": client_cpu,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "settings": {
            "pool": args.pool,
            "clients": args.clients,
            "seconds": args.seconds,
            "features": N_FEATURES,
            "classes": len(CLASSES),
            "send_batch": SEND_BATCH,
            "queue_n": QUEUE_N,
        },
        "fill": filled,
        "load": {"clients": args.clients, "wall_s": wall_s, "client_cpu_share": client_cpu_s / wall_s},
        "endpoints": endpoints,
        "writes": writes,
        "limits": check_limits(endpoints, writes),
        "error_examples": tally.error_examples,
    }
    print_report(result)
    write_report(args.out, result)


if __name__ == "__main__":
    main()
