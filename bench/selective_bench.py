"""Stream protocol benchmark: wall time per 10^5 arrivals, alstream's selectors against scikit-activeml's.

One stream of ``--arrivals`` (10^5) generated arrivals (``make_classification``: 64 features, 10
classes, 32 informative), the class probabilities of a real model for each (the service's sgd,
standardized, fitted on 1,000 earlier rows of the same stream), and one budget (0.1, the default
window). For each selective strategy the same probabilities go to:

* alstream's selector (``get_selector``), ``ask`` in batches of ``--batch`` (1,000) arrivals, over
  the whole stream, as the service asks it per synced batch;
* scikit-activeml's strategy behind the adapter of ``alstream experiment --protocol stream``
  (``SkactivemlSelector``): ``query`` then ``update`` once per arrival, as its tutorials run a
  stream. That costs about a third of a millisecond per arrival, so it is timed on the first
  ``--skactiveml-arrivals`` (10^4) and scaled to 10^5 (linear: the work per arrival does not
  change along the stream); ``--skactiveml-arrivals 100000`` times it all.

Reported per strategy: wall time per 10^5 arrivals of each, the speed-up, the share each asked
about, and how many decisions they share on the arrivals both judged (four of the five strategies
draw the very same random numbers, so they agree exactly; randomized variable uncertainty agrees
in distribution only). Timings: the best of ``--repeats`` runs for alstream (a fresh selector each),
one run for scikit-activeml; one process pinned to one CPU, one BLAS thread. Results: a rich table
and ``bench/results/selective.json``.

    .venv/bin/python bench/selective_bench.py
    .venv/bin/python bench/selective_bench.py --skactiveml-arrivals 100000   # all of it (minutes)
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import make_classification
from threadpoolctl import threadpool_limits

from alstream.experiment.skactiveml_stream import SkactivemlSelector
from alstream.learning.estimators import make_model, standardized
from alstream.learning.selective import DEFAULT_BUDGET, SELECTORS, get_selector
from common import RESULTS, console, write_report
from provenance import machine, source_info

N_FEATURES, N_CLASSES, N_FIT = 64, 10, 1_000
PER = 100_000  # the wall times are per this many arrivals


def stream_proba(n: int, seed: int = 0) -> np.ndarray:
    """The probabilities of ``n`` arrivals under sgd fitted on the ``N_FIT`` rows before them."""
    X, y = make_classification(
        n_samples=N_FIT + n, n_features=N_FEATURES, n_informative=32, n_classes=N_CLASSES, random_state=seed
    )
    model = standardized(make_model("sgd", seed)).fit(X[:N_FIT], y[:N_FIT])
    return model.predict_proba(X[N_FIT:])


def time_alstream(
    name: str, proba: np.ndarray, batch: int, budget: float, repeats: int
) -> tuple[float, np.ndarray]:
    """The best wall seconds of asking a fresh selector about every arrival, ``batch`` at a time."""
    best, asked = float("inf"), np.empty(0, dtype=bool)
    for _ in range(repeats):
        selector = get_selector(name, budget, seed=0)
        start = time.perf_counter()
        asked = np.concatenate([selector.ask(proba[i : i + batch]) for i in range(0, len(proba), batch)])
        best = min(best, time.perf_counter() - start)
    return best, asked


def time_skactiveml(name: str, proba: np.ndarray, budget: float) -> tuple[float, np.ndarray]:
    """Wall seconds of scikit-activeml's strategy asked about each arrival in turn (the adapter's way)."""
    selector = SkactivemlSelector(name, budget, seed=0)
    start = time.perf_counter()
    asked = selector.ask(proba)
    return time.perf_counter() - start, asked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arrivals", type=int, default=PER)
    parser.add_argument("--batch", type=int, default=1_000, help="arrivals per alstream ask()")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET)
    parser.add_argument(
        "--skactiveml-arrivals", type=int, default=10_000, help="arrivals scikit-activeml judges"
    )
    parser.add_argument("--repeats", type=int, default=5, help="alstream runs per strategy (the best counts)")
    parser.add_argument("--out", type=Path, default=RESULTS / "selective.json")
    args = parser.parse_args()
    cpu = sorted(os.sched_getaffinity(0))[-1]
    os.sched_setaffinity(0, {cpu})
    threadpool_limits(limits=1)
    out = console(150)
    load_before = os.getloadavg()
    with out.status(f"a stream of {args.arrivals:,} arrivals and sgd's probabilities"):
        proba = stream_proba(args.arrivals)
    theirs_n = min(args.skactiveml_arrivals, args.arrivals)
    rows: list[dict[str, Any]] = []
    from rich.progress import track

    for name in track(list(SELECTORS), description="strategies", console=out):
        ours_s, ours = time_alstream(name, proba, args.batch, args.budget, args.repeats)
        theirs_s, theirs = time_skactiveml(name, proba[:theirs_n], args.budget)
        ours_per, theirs_per = ours_s * PER / len(proba), theirs_s * PER / theirs_n
        rows.append(
            {
                "strategy": name,
                "alstream_s_per_1e5": ours_per,
                "skactiveml_s_per_1e5": theirs_per,
                "skactiveml_timed_arrivals": theirs_n,
                "skactiveml_scaled": theirs_n != PER,
                "speedup": theirs_per / ours_per,
                "alstream_asked_share": float(ours.mean()),
                "alstream_asked_share_first": float(ours[:theirs_n].mean()),
                "skactiveml_asked_share": float(theirs.mean()),
                "same_decisions_first": float((ours[:theirs_n] == theirs).mean()),
            }
        )
    from rich.table import Table

    scaled = f" (timed on {theirs_n:,}, scaled)" if theirs_n != PER else ""
    table = Table(
        title=f"selective strategies: {args.arrivals:,} arrivals, sgd's probabilities, budget "
        f"{args.budget:g}, one CPU; alstream ask() in batches of {args.batch:,}"
    )
    for column in (
        "strategy",
        "alstream ms / 10^5",
        f"scikit-activeml s / 10^5{scaled}",
        "speed-up",
        "asked: alstream",
        f"asked: scikit-activeml (first {theirs_n:,})",
        f"same decisions (first {theirs_n:,})",
    ):
        table.add_column(column, justify="left" if column == "strategy" else "right")
    for r in rows:
        table.add_row(
            r["strategy"],
            f"{r['alstream_s_per_1e5'] * 1e3:,.1f}",
            f"{r['skactiveml_s_per_1e5']:,.1f}",
            f"{r['speedup']:,.0f}x",
            f"{r['alstream_asked_share']:.2%}",
            f"{r['skactiveml_asked_share']:.2%}",
            f"{r['same_decisions_first']:.2%}",
        )
    out.print(table)
    report = {
        "benchmark": "selective",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": {
            "arrivals": args.arrivals,
            "batch": args.batch,
            "budget": args.budget,
            "skactiveml_arrivals": theirs_n,
            "repeats": args.repeats,
            "model": "standardized sgd",
            "data": f"make_classification, {N_FEATURES} features, {N_CLASSES} classes, fitted on {N_FIT}",
            "skactiveml_calls": "SkactivemlSelector.ask: query then update per arrival",
        },
        "alstream": source_info(),
        "machine": {
            **machine(),
            "cpu": cpu,
            "scikit-activeml": version("scikit-activeml"),
            "load_average": {"start": load_before, "end": os.getloadavg()},
        },
        "results": rows,
    }
    write_report(args.out, report)
    out.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
