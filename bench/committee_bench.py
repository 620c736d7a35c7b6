"""Query-by-committee benchmark: a pool of 10^6 x 64 float32 rows re-scored by a committee of linear models.

A committee of ``--members`` (5) logistic regressions on 10 classes, fitted on bootstraps of 500
labeled rows (``fit_committee``), re-scores a pool of ``--rows`` (10^6) x 64 float32 rows and keeps
the 100 most disputed (``query_committee``: each member's probabilities chunk by chunk, class by
class as ``linear_proba`` computes them, then the disagreement and the top k). Beside it, one of
the same models picking by margin (``query_model``, the same fast path), so the table shows what
the committee costs over a single model, and that model's scores alone by ``score_pool`` (the
service's fused path, no selection). Timings are the best of ``--repeats``; one process pinned
to one CPU, one BLAS thread. Results: a table, and JSON in ``bench/results/committee.json``.

    .venv/bin/python bench/committee_bench.py
    .venv/bin/python bench/committee_bench.py --rows 100000 --members 3
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from alstream.learning.committee import fit_committee, query_committee
from alstream.learning.inference import query_model, score_pool
from common import RESULTS, console, write_report
from provenance import machine, source_info

N_FEATURES, N_CLASSES, N_FIT, K = 64, 10, 500, 100


def best_of(repeats: int, fn: Callable[[], Any]) -> float:
    """The fewest wall seconds ``fn`` took over ``repeats`` calls."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "committee.json")
    args = parser.parse_args()
    cpu = sorted(os.sched_getaffinity(0))[-1]
    os.sched_setaffinity(0, {cpu})
    threadpool_limits(limits=1)
    out = console(130)
    load_before = os.getloadavg()
    X_fit, y_fit = make_classification(
        N_FIT + args.rows, n_features=N_FEATURES, n_informative=32, n_classes=N_CLASSES, random_state=0
    )
    pool = X_fit[N_FIT:].astype(np.float32)
    X_fit, y_fit = X_fit[:N_FIT], y_fit[:N_FIT]
    model = LogisticRegression(max_iter=1000)
    start = time.perf_counter()
    members = fit_committee(model, X_fit, y_fit, n_members=args.members, seed=0)
    fit_s = time.perf_counter() - start
    single = model.fit(X_fit, y_fit)
    rows: list[dict[str, Any]] = []
    cases: dict[str, Callable[[], Any]] = {
        "margin, one model (query_model)": lambda: query_model(single, pool, K, "margin"),
        "margin scores, one model (score_pool, fused)": lambda: score_pool(single, pool, "margin"),
        f"committee-vote, {args.members} members": lambda: query_committee(members, pool, K, "vote"),
        f"committee-kl, {args.members} members": lambda: query_committee(members, pool, K, "kl"),
    }
    for name, fn in cases.items():
        seconds = best_of(args.repeats, fn)
        rows.append({"case": name, "rescore_s": seconds, "us_per_row": seconds / args.rows * 1e6})
    for row in rows:
        row["vs_one_model"] = row["rescore_s"] / rows[0]["rescore_s"]
    table = Table(
        title=f"re-scoring {args.rows:,} x {N_FEATURES} float32 rows, {N_CLASSES} classes, logistic "
        f"regression, top {K}, one CPU (committee fit on {N_FIT} labels: {fit_s:.2f} s)"
    )
    for column in ("case", "re-score s", "µs / row", "vs one model"):
        table.add_column(column, justify="left" if column == "case" else "right")
    for row in rows:
        table.add_row(
            row["case"], f"{row['rescore_s']:.2f}", f"{row['us_per_row']:.2f}", f"{row['vs_one_model']:.1f}x"
        )
    out.print(table)
    write_report(
        args.out,
        {
            "benchmark": "committee",
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "config": {
                "rows": args.rows,
                "features": N_FEATURES,
                "classes": N_CLASSES,
                "members": args.members,
                "fit_rows": N_FIT,
                "k": K,
                "repeats": args.repeats,
                "model": "LogisticRegression(max_iter=1000), pool float32",
            },
            "alstream": source_info(),
            "machine": {
                **machine(),
                "cpu": cpu,
                "load_average": {"start": load_before, "end": os.getloadavg()},
            },
            "committee_fit_s": fit_s,
            "results": rows,
        },
    )
    out.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
