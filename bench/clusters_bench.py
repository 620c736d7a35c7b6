"""What cluster-margin costs the engine's thread: one clustering, and each snapshot it publishes.

A pool of ``--pool`` (10^5) rows of ``make_classification`` (64 features, 3 classes, 3 clusters a
class) in an engine, 60 labels, one full version; then ``--publishes`` (200) snapshots published
in a row, with ``margin`` and with ``cluster_margin`` (the clustering of a sample of the pool, and
the candidates ordered round-robin over clusters). One BLAS thread (threadpoolctl). Results: a line
per strategy and ``bench/results/clusters.json``.

    PYTHONPATH=src .venv/bin/python bench/clusters_bench.py
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import make_classification
from threadpoolctl import threadpool_limits

from alstream.service.engine import Engine, EngineConfig
from alstream.service.trainer import RetrainPolicy
from alstream.store import LabelRow, SampleRow, Store
from common import RESULTS, write_report
from provenance import machine, source_info

CLASSES = ["a", "b", "c"]


def measure(strategy: str, X: np.ndarray, y: np.ndarray, publishes: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as folder:
        store = Store(f"sqlite:///{folder}/store.db")
        store.create()
        policy = RetrainPolicy(after_labels=10, interval_s=3600.0, online=False)
        engine = Engine(
            EngineConfig(
                classes=CLASSES, n_features=X.shape[1], strategy=strategy, track=False, policy=policy
            ),
            store,
        )
        try:
            store.add_samples([SampleRow(f"s{i}", X[i], None, None) for i in range(len(X))])
            store.add_labels(
                [LabelRow(f"s{i}", CLASSES[y[i]], "demo", False, "labels:0", i) for i in range(60)]
            )
            engine.sync()
            started = time.perf_counter()
            engine.train_step()
            version_s = time.perf_counter() - started
            times = []
            for _ in range(publishes):
                started = time.perf_counter()
                engine._publish()
                times.append(time.perf_counter() - started)
            return {
                "strategy": strategy,
                "version_s": version_s,
                "publish_ms_p50": 1000 * float(np.median(times)),
                "publish_ms_p90": 1000 * float(np.quantile(times, 0.9)),
                "clusters": engine.stats()["clusters"],
            }
        finally:
            engine.close()
            store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=100_000)
    parser.add_argument("--publishes", type=int, default=200)
    parser.add_argument("--out", type=Path, default=RESULTS / "clusters.json")
    args = parser.parse_args()
    X, y = make_classification(
        args.pool, n_features=64, n_informative=10, n_classes=3, n_clusters_per_class=3, random_state=0
    )
    with threadpool_limits(1):
        runs = [
            measure(name, X.astype(np.float32), y, args.publishes) for name in ("margin", "cluster_margin")
        ]
    for run in runs:
        print(
            f"{run['strategy']:>14}: version (train, rescore, cluster) {run['version_s']:.2f} s, "
            f"publish p50 {run['publish_ms_p50']:.1f} ms, p90 {run['publish_ms_p90']:.1f} ms, "
            f"{run['clusters']}"
        )
    report = {
        "pool": args.pool,
        "machine": machine(),
        "source": source_info(),
        "load_average": os.getloadavg(),
        "runs": runs,
    }
    write_report(args.out, report)


if __name__ == "__main__":
    main()
