"""Query benchmark: alstream against modAL and scikit-activeml on one core.

For pools of 10^4, 10^5 and 10^6 samples x 50 features x 10 classes and a logistic regression
fitted on 2,000 labeled rows, it times three steps:

* ``predict_proba`` alone on the whole pool (the floor under any whole query);
* scoring and selection of 100 samples from the precomputed probability matrix ``P``: ours is
  ``query_proba(P, 100, strategy)``; the peers get a classifier whose ``predict_proba`` returns
  ``P``, so all sides time the same step (scikit-activeml is also timed through its scoring
  functions alone, without its ``query`` checks and candidate copy of the pool);
* the whole query from the fitted model: ours is ``query_model(model, X, 100, strategy)``.

Each case runs in a fresh process (forked from a forkserver that did the imports), pinned to one
CPU with one BLAS/OpenMP thread. There it loads the inputs, makes a small warm-up call, measures
the peak resident memory above that baseline (the pool, ``P`` and the model already loaded)
during one call, then times repeated calls. The cases run in rounds (three by default, each case
in a new process every round), so that load from other processes hits all cases alike; the
median and min are over all timed calls. Results: a table per pool size, a verdict on the
targets at 10^6 (at the largest pool, as an indication, in a quick run) and JSON in
``bench/results/query.json``. The exit code is 0 even when a target fails: this is a report.

    .venv/bin/python bench/query_bench.py                 # 10^4, 10^5, 10^6
    .venv/bin/python bench/query_bench.py --sizes 10000,100000
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import pickle
import statistics
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from importlib.metadata import version
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from rich.console import Console
from rich.table import Table
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_info, threadpool_limits

from alstream.learning.inference import query_model
from alstream.learning.strategies import query_proba
from common import print_verdict
from provenance import machine, source_info

N_FEATURES, N_CLASSES, N_LABELED, K = 50, 10, 2_000, 100
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
DEFAULT_STRATEGIES = ("least_confident", "margin", "entropy")
WARMUP_ROWS = 2_000
ONE_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
RESULTS = Path(__file__).resolve().parent / "results"
PRELOAD = [
    "numpy",
    "scipy.stats",
    "sklearn.linear_model",
    "modAL.uncertainty",
    "skactiveml.pool",
    "skactiveml.classifier",
    "alstream.learning.strategies",
    "alstream.learning.inference",
]

OURS, MODAL, SKAL, SKAL_CORE, SKLEARN = (
    "alstream",
    "modAL",
    "scikit-activeml",
    "scikit-activeml (scoring fns)",
    "scikit-learn",
)
PREDICT, SCORING, QUERY = "predict_proba", "scoring+selection", "whole query"
MODAL_FUNCTIONS = {
    "least_confident": "uncertainty_sampling",
    "margin": "margin_sampling",
    "entropy": "entropy_sampling",
}
SKAL_METHODS = {"least_confident": "least_confident", "margin": "margin_sampling", "entropy": "entropy"}

# Targets of the issue, checked at 10^6 for each strategy: (step, what, threshold).
TARGETS = (
    (SCORING, "median_ms", 40.0),
    (SCORING, "speedup", 3.0),
    (SCORING, "peak_mb", 40.0),
    (QUERY, "peak_mb", 40.0),
    (QUERY, "speedup", 1.5),
)
TARGET_SIZE = 1_000_000


class FixedProba(ClassifierMixin, BaseEstimator):
    """A fitted classifier whose ``predict_proba`` returns a precomputed matrix, whatever X."""

    def __init__(self, proba: np.ndarray) -> None:
        self.proba = proba
        self.classes_ = np.arange(proba.shape[1])

    def fit(self, X: np.ndarray, y: np.ndarray) -> FixedProba:
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.proba


# --------------------------------------------------------------------------------------------
# One case, in its own process


def skactiveml_classifier(estimator: Any, X_lab: np.ndarray, y_lab: np.ndarray) -> Any:
    """scikit-activeml's wrapper around an already fitted estimator (no refit in ``query``).

    The wrapper is fitted once on the labeled rows to set its own state, then its inner
    estimator is replaced by ours, so every library queries with the very same model.
    """
    from skactiveml.classifier import SklearnClassifier

    clf = SklearnClassifier(LogisticRegression(max_iter=200), classes=np.arange(N_CLASSES), random_state=0)
    clf.fit(X_lab, y_lab)
    clf.estimator_ = estimator
    return clf


def build_call(
    step: str,
    library: str,
    strategy: str,
    X: np.ndarray,
    P: np.ndarray,
    model: Any,
    y_lab: np.ndarray,
) -> Callable[[], Any]:
    """A no-argument call running one case; it returns the chosen indices (or the matrix)."""
    if step == PREDICT:
        return lambda: model.predict_proba(X)
    # The peers' scoring step gets the stub classifier, their whole query the real model.
    clf = FixedProba(P) if step == SCORING else model
    if library == OURS:
        if step == SCORING:
            return lambda: query_proba(P, K, strategy).indices
        return lambda: query_model(model, X, K, strategy).indices
    if library == MODAL:
        import modAL.uncertainty

        sample = getattr(modAL.uncertainty, MODAL_FUNCTIONS[strategy])
        return lambda: sample(clf, X, n_instances=K)[0]
    if library == SKAL_CORE:
        from skactiveml.pool import uncertainty_scores
        from skactiveml.utils import simple_batch

        def core() -> np.ndarray:
            scores = uncertainty_scores(P, method=SKAL_METHODS[strategy])
            return simple_batch(scores, np.random.RandomState(0), batch_size=K)

        return core
    if library == SKAL:
        from skactiveml.pool import UncertaintySampling

        X_lab = X[:N_LABELED]
        wrapped = skactiveml_classifier(clf, X_lab, y_lab[: len(X_lab)])
        y_missing = np.full(len(X), np.nan)
        qs = UncertaintySampling(method=SKAL_METHODS[strategy], random_state=0)
        return lambda: qs.query(X, y_missing, wrapped, fit_clf=False, batch_size=K)
    raise ValueError(f"unknown library {library!r}")


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _reset_peak_rss() -> bool:
    """Reset the kernel's high-water mark of resident memory to the current RSS (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_extra_mb(fn: Callable[[], Any]) -> tuple[float, str, Any]:
    """Peak resident memory above the current RSS during ``fn()``, in MB (10^6 bytes).

    Two views, the larger wins: the kernel's high-water mark (VmHWM after resetting it; exact up
    to per-thread counter lag) and a thread sampling RSS every millisecond (misses short peaks).
    """
    process = psutil.Process()
    gc.collect()
    base = process.memory_info().rss
    exact = _reset_peak_rss()
    peak, stop = [base], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        out = fn()
    finally:
        stop.set()
        sampler.join()
    peak[0] = max(peak[0], process.memory_info().rss)
    method = "rss sampling at 1 ms"
    if exact:
        peak[0] = max(peak[0], _status_kb("VmHWM") * 1024)
        method = "VmHWM reset via clear_refs + rss sampling at 1 ms"
    return (peak[0] - base) / 1e6, method, out


def time_calls(fn: Callable[[], Any], budget_s: float, min_runs: int, max_runs: int) -> list[float]:
    """Wall times in ms of repeated calls: at least ``min_runs``, more while within budget."""
    times: list[float] = []
    gc.disable()
    try:
        start = time.perf_counter()
        while len(times) < max_runs and (len(times) < min_runs or time.perf_counter() - start < budget_s):
            t0 = time.perf_counter()
            out = fn()
            times.append((time.perf_counter() - t0) * 1e3)
            del out
    finally:
        gc.enable()
    return times


def run_case(case: dict[str, Any]) -> dict[str, Any]:
    """Runs one case in this fresh process: a warm-up call, peak memory, then timed calls."""
    os.sched_setaffinity(0, {case["cpu"]})
    limits = threadpool_limits(limits=1)  # noqa: F841 (kept alive for the whole case)
    warnings.simplefilter("ignore")
    data = Path(case["data_dir"])
    X = np.load(data / "X.npy")
    P = np.load(data / "P.npy")
    y_lab = np.load(data / "y_lab.npy")
    model = pickle.loads((data / "model.pkl").read_bytes())
    step, library, strategy = case["step"], case["library"], case["strategy"]

    warm = min(WARMUP_ROWS, len(X))
    build_call(step, library, strategy, X[:warm], P[:warm], model, y_lab)()
    fn = build_call(step, library, strategy, X, P, model, y_lab)
    mb, method, picks = None, None, None
    if case["measure_memory"]:
        mb, method, out = peak_extra_mb(fn)
        picks = None if step == PREDICT else sorted(int(i) for i in np.ravel(out))
        del out
    return {
        "times_ms": time_calls(fn, case["budget_s"], case["min_runs"], case["max_runs"]),
        "peak_extra_mb": mb,
        "memory_method": method,
        "picks": picks,
        "threadpools": threadpool_info(),
    }


# --------------------------------------------------------------------------------------------
# The driver


def summarize(n: int, step: str, library: str, strategy: str, parts: list[dict]) -> dict:
    """One row from a case's rounds: all timed calls pooled, memory from the first round."""
    times = [t for part in parts for t in part["times_ms"]]
    return {
        "n": n,
        "step": step,
        "library": library,
        "strategy": strategy,
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "runs": len(times),
        "times_ms": times,
        "peak_extra_mb": parts[0]["peak_extra_mb"],
        "memory_method": parts[0]["memory_method"],
        "picks": parts[0]["picks"],
        "threadpools": parts[0]["threadpools"],
    }


def make_pool(n: int, data_dir: Path) -> None:
    """Writes the pool X, the fitted model, its probability matrix P and the labels used."""
    X, y = make_classification(
        n_samples=n,
        n_features=N_FEATURES,
        n_informative=30,
        n_classes=N_CLASSES,
        random_state=0,
    )
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore")  # lbfgs may stop at max_iter: fine for a benchmark
        model = LogisticRegression(max_iter=200).fit(X[:N_LABELED], y[:N_LABELED])
        P = model.predict_proba(X)
    np.save(data_dir / "X.npy", X)
    np.save(data_dir / "P.npy", P)
    np.save(data_dir / "y_lab.npy", y[:N_LABELED])
    (data_dir / "model.pkl").write_bytes(pickle.dumps(model))


def cases_for(strategies: list[str]) -> list[tuple[str, str, str]]:
    cases = [(PREDICT, SKLEARN, "-")]
    for step, libraries in ((SCORING, (OURS, MODAL, SKAL, SKAL_CORE)), (QUERY, (OURS, MODAL, SKAL))):
        cases += [(step, lib, s) for s in strategies for lib in libraries]
    return cases


def add_comparisons(rows: list[dict[str, Any]]) -> None:
    """Speed-up over modAL's same step and strategy, and how many of its picks are shared."""
    modal = {(r["n"], r["step"], r["strategy"]): r for r in rows if r["library"] == MODAL}
    for r in rows:
        ref = modal.get((r["n"], r["step"], r["strategy"]))
        r["speedup_vs_modal"] = ref["median_ms"] / r["median_ms"] if ref else None
        r["speedup_vs_modal_of_mins"] = ref["min_ms"] / r["min_ms"] if ref else None
        r["same_picks_as_modal"] = (
            len(set(r["picks"]) & set(ref["picks"])) if ref and r["picks"] is not None else None
        )


def check_targets(rows: list[dict[str, Any]], strategies: list[str]) -> dict[str, Any]:
    size = TARGET_SIZE if any(r["n"] == TARGET_SIZE for r in rows) else max(r["n"] for r in rows)
    ours = {(r["step"], r["strategy"]): r for r in rows if r["n"] == size and r["library"] == OURS}
    checks = []
    for strategy in strategies:
        for step, what, threshold in TARGETS:
            r = ours[(step, strategy)]
            if what == "speedup":
                value, ok = r["speedup_vs_modal"], r["speedup_vs_modal"] >= threshold
                modal_ms = r["median_ms"] * r["speedup_vs_modal"]
                target = f"{step} >= {threshold:g}x faster than modAL"
                shown = (
                    f"{value:.2f}x (modAL {modal_ms:.1f} ms / ours {r['median_ms']:.1f} ms;"
                    f" of mins {r['speedup_vs_modal_of_mins']:.2f}x)"
                )
            elif what == "median_ms":
                value, ok = r["median_ms"], r["median_ms"] <= threshold
                target = f"{step} <= {threshold:g} ms"
                shown = f"{value:.1f} ms (min {r['min_ms']:.1f})"
            else:
                value, ok = r["peak_extra_mb"], r["peak_extra_mb"] <= threshold
                target = f"{step} peak extra memory <= {threshold:g} MB"
                shown = f"{value:.1f} MB"
            checks.append(
                {
                    "strategy": strategy,
                    "target": target,
                    "step": step,
                    "metric": what,
                    "threshold": threshold,
                    "value": value,
                    "measured": shown,
                    "passed": bool(ok),
                }
            )
    return {
        "size": size,
        "official": size == TARGET_SIZE,
        "checks": checks,
        "all_passed": all(c["passed"] for c in checks),
    }


def size_table(n: int, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=f"pool of {n:,} x {N_FEATURES} features x {N_CLASSES} classes, k={K}")
    for name in ("step", "library", "strategy"):
        table.add_column(name)
    for name in ("median ms", "min ms", "runs", "peak extra MB", "vs modAL", "same picks"):
        table.add_column(name, justify="right")
    previous = None
    for r in rows:
        if previous is not None and r["step"] != previous:
            table.add_section()
        previous = r["step"]
        speedup = r["speedup_vs_modal"]
        same = r["same_picks_as_modal"]
        table.add_row(
            r["step"],
            r["library"],
            r["strategy"],
            f"{r['median_ms']:.2f}",
            f"{r['min_ms']:.2f}",
            str(r["runs"]),
            f"{r['peak_extra_mb']:.1f}",
            "" if speedup is None else f"{speedup:.2f}x",
            "" if same is None else f"{same}/{K}",
        )
    return table


def verdict_table(targets: dict[str, Any]) -> Table:
    title = f"targets at {targets['size']:,} samples, one core"
    if not targets["official"]:
        title += f" (the targets are for {TARGET_SIZE:,}: indicative only)"
    table = Table(title=title)
    for name in ("strategy", "target", "measured", "verdict"):
        table.add_column(name)
    for c in targets["checks"]:
        verdict = "[bold green]PASS[/]" if c["passed"] else "[bold red]FAIL[/]"
        table.add_row(c["strategy"], c["target"], c["measured"], verdict)
    return table


def machine_info(threadpools: list[dict[str, Any]], cpu: int, load: dict) -> dict[str, Any]:
    return {
        **machine(),
        "measuring_cpu": cpu,
        "versions": {
            name: version(name)
            for name in ("numpy", "scipy", "scikit-learn", "modAL-python", "scikit-activeml")
        },
        "environment": {var: os.environ.get(var) for var in (*ONE_THREAD_VARS, "OPENBLAS_CORETYPE")},
        "threadpools_in_cases": threadpools,
        "load_average": load,
    }


def parse_sizes(text: str) -> list[int]:
    return [int(float(part)) for part in text.split(",") if part.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=list(DEFAULT_SIZES),
        help="pool sizes, comma separated (default 10000,100000,1000000)",
    )
    parser.add_argument(
        "--strategies",
        type=lambda text: [s.strip() for s in text.split(",") if s.strip()],
        default=list(DEFAULT_STRATEGIES),
        help="comma separated (default least_confident,margin,entropy)",
    )
    parser.add_argument(
        "--budget", type=float, default=1.0, help="seconds of timed calls per case, all rounds"
    )
    parser.add_argument("--min-runs", type=int, default=3, help="timed calls per case, at least")
    parser.add_argument("--max-runs", type=int, default=45, help="timed calls per case, at most")
    parser.add_argument(
        "--rounds", type=int, default=3, help="passes over the cases, each in fresh processes"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "query.json")
    args = parser.parse_args()
    unknown = set(args.strategies) - set(MODAL_FUNCTIONS)
    if unknown:
        parser.error(f"unknown strategies {sorted(unknown)}: choose from {list(MODAL_FUNCTIONS)}")

    for var in ONE_THREAD_VARS:  # inherited by every case process, before it imports numpy
        os.environ[var] = "1"
    cpu = max(os.sched_getaffinity(0))
    console = Console(width=None if sys.stdout.isatty() else 140)
    rows: list[dict[str, Any]] = []
    source = source_info()  # the forkserver imports alstream once, at the first case
    started = time.perf_counter()
    load_start = os.getloadavg()
    if load_start[0] > 0.5:
        console.print(
            f"[yellow]note: load average {load_start[0]:.2f} before the run; other processes on"
            " this machine make timings noisy (the rounds spread it over all cases)"
        )
    # A fresh process for every case, so that each one's peak memory is its own. They fork from
    # a server that has done the imports once (2 s each otherwise) and never touches the data.
    fresh = get_context("forkserver")
    fresh.set_forkserver_preload(PRELOAD)
    with (
        tempfile.TemporaryDirectory(prefix="alstream-query-bench-") as tmp,
        ProcessPoolExecutor(max_workers=1, mp_context=fresh, max_tasks_per_child=1) as pool,
    ):
        for n in sorted(args.sizes):
            data_dir = Path(tmp) / str(n)
            data_dir.mkdir()
            with console.status(f"making a pool of {n:,} and fitting the model"):
                make_pool(n, data_dir)
            console.print(f"pool of {n:,}: measuring", highlight=False)
            cases = cases_for(args.strategies)
            runs: dict[tuple[str, str, str], list[dict[str, Any]]] = {c: [] for c in cases}
            # Rounds interleave the cases, so that a passing load on the machine hits all alike.
            for round_ in range(args.rounds):
                for step, library, strategy in cases:
                    case = {
                        "step": step,
                        "library": library,
                        "strategy": strategy,
                        "data_dir": str(data_dir),
                        "cpu": cpu,
                        "measure_memory": round_ == 0,
                        "budget_s": args.budget / args.rounds,
                        "min_runs": -(-args.min_runs // args.rounds),
                        "max_runs": -(-args.max_runs // args.rounds),
                    }
                    with console.status(f"{n:,} round {round_ + 1}: {step}, {library}, {strategy}"):
                        runs[(step, library, strategy)].append(pool.submit(run_case, case).result())
            size_rows = [summarize(n, *key, parts) for key, parts in runs.items()]
            add_comparisons(size_rows)
            rows += size_rows
            console.print(size_table(n, size_rows))
            for path in data_dir.iterdir():
                path.unlink()

    targets = check_targets(rows, args.strategies)
    console.print(verdict_table(targets))
    print_verdict(console, targets["checks"])

    report = {
        "benchmark": "query",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.perf_counter() - started, 1),
        "config": {
            "sizes": sorted(args.sizes),
            "n_features": N_FEATURES,
            "n_classes": N_CLASSES,
            "n_labeled": N_LABELED,
            "k": K,
            "strategies": args.strategies,
            "data": "make_classification(n_informative=30, random_state=0)",
            "model": "LogisticRegression(max_iter=200) fitted on the first 2,000 rows",
            "timing": {
                "budget_s": args.budget,
                "min_runs": args.min_runs,
                "max_runs": args.max_runs,
                "rounds": args.rounds,
                "statistic": "median and min of all timed calls of all rounds, ms",
            },
            "memory": "peak RSS above the baseline with the inputs loaded, MB = 10^6 bytes",
            "process": "a fresh process per case (forkserver), pinned to one CPU, 1 BLAS thread",
        },
        "alstream": source,
        "machine": machine_info(
            rows[0]["threadpools"] if rows else [],
            cpu,
            {"start": load_start, "end": os.getloadavg()},
        ),
        "results": [
            {key: value for key, value in r.items() if key not in ("picks", "threadpools")} for r in rows
        ],
        "targets": targets,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    (args.out.parent / ".gitkeep").touch()
    partial = args.out.with_name(args.out.name + ".tmp")
    partial.write_text(json.dumps(report, indent=2) + "\n")
    partial.replace(args.out)
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
