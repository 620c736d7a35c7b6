"""Freshness benchmark: from a label to the queue ordered by the model that learned it, per pool size.

For pools of 10^5, 10^6 and 10^7 samples x 64 float32 features (10 classes, the default model,
online updates), one engine in this process, its loop on its own thread, pinned to one core:
each round labels the sample at the head of the published queue (a row in the SQLite store, as
the consumer writes it) and waits until a snapshot serves scores of a newer model version. The
time is the engine's whole path: follow the store, move the sample to the training set, update
the model online and re-score the whole pool (both on the fitting thread), swap the scores in,
rank, publish. Each step is timed too (``rescore``: on the fitting thread and the swap).

The pool is filled in-process (the samples are not in the store: 10^7 rows of features would be
about 3 GB of SQLite for a number the store does not change); the first model is trained on 500
labeled rows that are. The verdict: label -> updated queue p99 <= 250 ms at 10^6 (the issue's
target); 10^7 is reported, with the memory it took. HTTP adds the request itself (a few ms: see
``service_bench.py``). Results: a table and ``bench/results/freshness.json``.

    .venv/bin/python bench/freshness_bench.py --sizes 100000 1000000 --repeats 20
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table
from sklearn.datasets import make_classification
from threadpoolctl import threadpool_limits

from alstream.service.engine import Engine, EngineConfig
from alstream.service.trainer import RetrainPolicy
from alstream.store import Store
from alstream.store.rows import LabelRow, SampleRow
from common import RESULTS, console, percentiles, print_verdict, wait, write_report
from provenance import machine, source_info

N_FEATURES, N_CLASSES, N_LABELED = 64, 10, 500
CLASSES = [str(c) for c in range(N_CLASSES)]
TARGET_SIZE, TARGET_P99_MS = 1_000_000, 250.0
FILL_CHUNK = 200_000
STEPS = ("sync", "train_step", "update", "rescore", "publish")
FITTING = "alstream-fit"  # the thread that makes the versions (alstream.service.fitting)


def generated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(
        n_samples=n, n_features=N_FEATURES, n_informative=32, n_classes=N_CLASSES, random_state=seed
    )
    return X.astype(np.float32), y.astype(str)


def timed(engine: Engine, times: dict[str, list[float]]) -> None:
    """Time each of the engine's steps (on its instance: the loop calls them through ``self``), and
    on the fitting thread the update and its re-score of the pool (``update``, ``rescore``)."""

    def timing(name: str, step: Callable[..., Any], thread: str | None = None) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if thread is not None and threading.current_thread().name != thread:
                return step(*args, **kwargs)
            start = time.perf_counter()
            try:
                return step(*args, **kwargs)
            finally:
                times[name].append((time.perf_counter() - start) * 1e3)

        return wrapper

    for name in ("sync", "train_step", "rescore"):
        setattr(engine, name, timing(name, getattr(engine, name)))
    engine._publish = timing("publish", engine._publish)  # type: ignore[method-assign]
    engine.admission.score = timing("rescore", engine.admission.score, FITTING)  # type: ignore[method-assign]
    online_fit = engine.trainer.online_fit
    engine.trainer.online_fit = lambda *a, **k: timing("update", online_fit(*a, **k))  # type: ignore[method-assign]


def one_size(n: int, repeats: int, home: Path) -> dict[str, Any]:
    store = Store(f"sqlite:///{home}/freshness-{n}.db")
    store.create()
    X0, y0 = generated(N_LABELED, seed=1)
    store.add_samples([SampleRow(f"seed-{i}", X0[i]) for i in range(N_LABELED)])
    store.add_labels([LabelRow(f"seed-{i}", y0[i], "bench", False, "bench:0", i) for i in range(N_LABELED)])
    policy = RetrainPolicy(after_labels=10**9, interval_s=1e9, online=True, full_every=10**9)
    engine = Engine(
        EngineConfig(classes=CLASSES, n_features=N_FEATURES, policy=policy, track=False, max_pool=n), store
    )
    engine.sync()
    engine.train_step()  # the first model, in full, on the 500 stored labels
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    for start in range(0, n, FILL_CHUNK):  # the pool, filled as arrivals would be, scored on arrival
        X, _ = generated(min(FILL_CHUNK, n - start), seed=100 + start // FILL_CHUNK)
        ids = [f"p{start + i}" for i in range(len(X))]
        engine.admission.offer(engine.pool, ids, X, np.arange(start, start + len(X)), engine.serving.model)
    engine.rescore(engine.serving)
    engine._publish()
    fill_s = time.perf_counter() - started
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times: dict[str, list[float]] = {name: [] for name in STEPS}
    timed(engine, times)
    stop = threading.Event()
    loop = threading.Thread(target=engine.run, args=(stop,), name="engine", daemon=True)
    loop.start()
    rows = []
    try:
        for i in range(repeats):
            snapshot = engine.snapshot
            sample_id, version = snapshot.queue.ranked[0], snapshot.queue.version
            for name in STEPS:
                times[name].clear()
            start = time.perf_counter()
            store.add_labels([LabelRow(sample_id, CLASSES[i % N_CLASSES], "bench", False, "bench:1", i)])
            newer = lambda v=version: engine.snapshot.queue.version > v  # noqa: E731
            wait(newer, 120, f"version {version + 1}", every=0.001)
            rows.append(
                {
                    "label_to_queue_ms": (time.perf_counter() - start) * 1e3,
                    **{f"{k}_ms": float(sum(v)) for k, v in times.items()},
                }
            )
    finally:
        stop.set()
        loop.join(30)
        engine.close()
        store.close()
    total = [r["label_to_queue_ms"] for r in rows]
    return {
        "size": n,
        "pool": len(engine.pool),
        "repeats": repeats,
        "fill_s": fill_s,
        "rss_mb_before_fill": rss_before,
        "rss_mb_after_fill": rss_mb,
        "label_to_queue": percentiles(total),
        "steps_p50_ms": {k: float(np.median([r[f"{k}_ms"] for r in rows])) for k in STEPS},
        "rows": rows,
    }


def table(results: list[dict[str, Any]]) -> Table:
    t = Table(title="label -> queue ordered by the new model (in-process, one core, online updates)")
    for name in ("pool", "p50 ms", "p99 ms", "max ms", *[f"{s} p50" for s in STEPS], "peak RSS MB"):
        t.add_column(name, justify="right")
    for r in results:
        lat, steps = r["label_to_queue"], r["steps_p50_ms"]
        t.add_row(
            f"{r['pool']:,}",
            f"{lat['p50_ms']:.0f}",
            f"{lat['p99_ms']:.0f}",
            f"{lat['max_ms']:.0f}",
            *[f"{steps[s]:.0f}" for s in STEPS],
            f"{r['rss_mb_after_fill']:,.0f}",
        )
    return t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="10^4 and 10^5, 5 repeats (the harness)")
    parser.add_argument("--out", type=Path, default=RESULTS / "freshness.json")
    args = parser.parse_args()
    sizes, repeats = ([10_000, 100_000], 5) if args.quick else (args.sizes, args.repeats)
    out = console(150)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    load = {"start": os.getloadavg()}
    results = []
    with tempfile.TemporaryDirectory(prefix="alstream-freshness-") as tmp, threadpool_limits(1):
        for n in sizes:
            print(f"pool of {n:,}: filling, then {repeats} labels", file=sys.stderr)
            results.append(one_size(n, repeats, Path(tmp)))
    load["end"] = os.getloadavg()
    out.print(table(results))
    checks = [
        {
            "target": f"label -> updated queue p99 <= {TARGET_P99_MS:.0f} ms at {r['pool']:,}",
            "p99_ms": p99,
            "passed": p99 <= TARGET_P99_MS,
        }
        for r in results
        if r["size"] == TARGET_SIZE and (p99 := r["label_to_queue"]["p99_ms"]) is not None
    ]
    for c in checks:
        out.print(f"{'PASS' if c['passed'] else 'FAIL'}: {c['target']} (measured {c['p99_ms']:.0f} ms)")
    if checks:
        print_verdict(out, checks)
    created = datetime.now(UTC).isoformat(timespec="seconds")
    write_report(
        args.out,
        {
            "benchmark": "freshness",
            "created": created,
            "quick": args.quick,
            "alstream": source_info(),
            "machine": {**machine(), "load_average": load},
            "results": results,
            "checks": checks,
        },
    )
    out.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
