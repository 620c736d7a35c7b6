"""Stopping rules against the target: where each would have stopped, on digits and two generated sets.

Runs the pool protocol through the experiment's Python API (``run_experiment``) with margin and
entropy sampling and the random baseline, and applies the stopping rules of
``alstream.learning.stopping`` with their published defaults (stabilizing predictions: mean kappa of
the last 3 pairs >= 0.99, Bloodgood and Vijay-Shanker 2009; predicted change of F: each of the last 3
< 0.05, Altschuler and Bloodgood 2019, small-text's ``DeltaFScore``; overall uncertainty: mean
normalized entropy of the unlabeled pool < 0.05, small-text's default for Zhu et al. 2008), on:

* ``digits``: the README's protocol (10% of the pool labeled at the start, batch 20, 20 rounds);
* ``generated`` 2 classes: 3,000 samples, 10 features, 2% at the start, batch 20, 30 rounds;
* ``generated`` 3 classes: 3,000 samples, 20 features, 2% at the start, batch 20, 40 rounds;
* the strategy comparison's datasets (``strategy_comparison.py``: digits, and ``make_classification``
  with three clusters per class), 10% at the start, batches of 1% of the pool (40 rounds) and 5% (15).

Seeds ``0..--seeds-1``; the verdicts are given for the first half (where the defaults were looked
at) and for the second half apart (held out).

The target (issue 12): a rule stops no earlier than 98% of full-pool accuracy and uses at most 1.2x
the labels the strategy needs to reach 99% of it, on every dataset. Writes each dataset's report
(``--output-dir``, default ``reports/stopping``: Markdown and the figure with the stops marked), prints
the stopping table and writes it to ``bench/results/stopping.json``. Then the same runs under other
settings of the rules (``SWEEP``: kappa thresholds and windows, uncertainty thresholds), to see whether
tuning would meet the target on every dataset. About 15 minutes on one core.

    .venv/bin/python bench/stopping_bench.py
    .venv/bin/python bench/stopping_bench.py --seeds 3
"""

from __future__ import annotations

import argparse
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

import common
import strategy_comparison
from alstream.experiment.config import ExperimentConfig
from alstream.experiment.protocol import ExperimentResult, run_experiment
from alstream.experiment.report import write_report
from alstream.experiment.stops import STOP_ACCURACY, STOP_LABELS, StopRule, summarize_stops
from alstream.learning.curves import TARGETS, labels_to_reach, mean_curves
from alstream.learning.stopping import OverallUncertainty, PredictedChangeOfF, StabilizingPredictions
from common import RESULTS, console
from provenance import machine, source_info

STRATEGIES = ("margin", "entropy", "random")
SWEEP: tuple[StopRule, ...] = (
    *(StabilizingPredictions(threshold=t) for t in (0.95, 0.96, 0.97, 0.98, 0.985, 0.99, 0.995)),
    *(StabilizingPredictions(window=w) for w in (1, 2, 5)),
    *(PredictedChangeOfF(threshold=t) for t in (0.005, 0.01, 0.02, 0.03, 0.1)),
    *(PredictedChangeOfF(window=w) for w in (1, 2, 5)),
    *(OverallUncertainty(threshold=t) for t in (0.05, 0.1, 0.2, 0.3)),
    *(OverallUncertainty(threshold=t, measure="least_confident") for t in (0.02, 0.05, 0.1)),
)  # other settings, to see whether tuning would meet the target (it does not: the defaults stay)
DATASETS: dict[str, dict[str, Any]] = {
    "digits": {"dataset": "digits", "initial_fraction": 0.1, "batch_size": 20, "iterations": 20},
    "generated-2c": {
        "dataset": "generated",
        "n_samples": 3000,
        "n_features": 10,
        "n_classes": 2,
        "initial_fraction": 0.02,
        "batch_size": 20,
        "iterations": 30,
    },
    "generated-3c": {
        "dataset": "generated",
        "n_samples": 3000,
        "n_features": 20,
        "n_classes": 3,
        "initial_fraction": 0.02,
        "batch_size": 20,
        "iterations": 40,
    },
}
COMPARISON = [
    (name, share, rounds)
    for name in ("digits", "make_classification")
    for share, rounds in ((0.01, 40), (0.05, 15))
]


def seeds_of(result: ExperimentResult, seeds: range) -> ExperimentResult:
    """The part of ``result`` that ``seeds`` ran."""
    curves, reference = result.curves, result.reference
    return ExperimentResult(
        result.config,
        curves[curves["seed"].isin(seeds)],
        reference[reference["seed"].isin(seeds)],
        result.classes,
        {key: value for key, value in result.stop_predictions.items() if key[1] in seeds},
    )


def what_it_asks(result: ExperimentResult, strategy: str = "margin") -> dict[str, Any]:
    """What the target asks of a rule that stops every seed at one round: the rounds where the mean
    accuracy is at least 98% of full-pool accuracy and the labels at most 1.2x the labels to 99%
    (None: no round), and the share of the stop set that successive models still change then (the
    mean over seeds, of the pair ending at each round): the signal a rule of model change reads."""
    full = float(result.reference["accuracy"].mean())
    curve = mean_curves(result.curves).rename(columns={"mean": "accuracy"})
    curve = curve[curve["strategy"] == strategy].sort_values("iteration")
    to_99 = labels_to_reach(curve, TARGETS[-1] * full)
    ok = curve[
        (curve["accuracy"] >= STOP_ACCURACY * full) & (curve["n_labeled"] <= STOP_LABELS * (to_99 or 0))
    ]
    runs = [p for (s, _), p in result.stop_predictions.items() if s == strategy]
    rounds = min(len(p) for p in runs)
    changing = np.mean([np.mean(p[1:rounds] != p[: rounds - 1], axis=1) for p in runs], axis=0)
    allowed = ok["iteration"].astype(int).tolist()
    return {
        "labels_to_99%": to_99,
        "rounds": [allowed[0], allowed[-1]] if allowed else None,
        "labels": [int(ok["n_labeled"].iloc[0]), int(ok["n_labeled"].iloc[-1])] if allowed else None,
        "changing_by_round": [None, *(round(float(c), 4) for c in changing)],  # round 0: no pair yet
    }


def runs(seeds: int) -> list[tuple[str, ExperimentResult]]:
    """Every dataset's result, in order."""
    done = []
    for name, knobs in DATASETS.items():
        config = ExperimentConfig(strategies=STRATEGIES, seeds=seeds, name=f"stopping-{name}", **knobs)
        done.append((name, run_experiment(config)))
    data = strategy_comparison.datasets()
    for name, share, rounds in COMPARISON:
        pool = len(data[name].y) - math.ceil(strategy_comparison.TEST_SIZE * len(data[name].y))
        config = ExperimentConfig(
            dataset="digits",  # the name only: the data come from ``data``
            name=f"stopping-{name}-{share:.0%}",
            strategies=STRATEGIES,
            initial_fraction=strategy_comparison.INITIAL,
            batch_size=max(1, round(share * pool)),
            iterations=rounds,
            seeds=seeds,
            test_size=strategy_comparison.TEST_SIZE,
        )
        done.append((f"{name}-{share:.0%}", run_experiment(config, data=data[name])))
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--output-dir", type=Path, default=Path("reports/stopping"))
    parser.add_argument("--out", type=Path, default=RESULTS / "stopping.json")
    args = parser.parse_args()
    out = console(200)
    rows: list[dict[str, Any]] = []
    sweep: dict[str, dict[str, list[str]]] = {}  # rule -> strategy -> datasets where it meets the target
    asks: list[dict[str, Any]] = []  # what the target asks of a rule, dataset by dataset (margin)
    started = time.perf_counter()
    with threadpool_limits(1), out.status(f"{len(DATASETS) + len(COMPARISON)} datasets, {args.seeds} seeds"):
        results = runs(args.seeds)
    half = args.seeds // 2
    for name, whole in results:
        markdown, _ = write_report(whole, args.output_dir)
        for seeds in (range(half), range(half, args.seeds)):
            result = seeds_of(whole, seeds)
            full = float(result.reference["accuracy"].mean())
            part = f"{seeds.start}-{seeds.stop - 1}"
            for record in summarize_stops(result).to_dict("records"):
                record = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in record.items()}
                to_99 = record["labels_to_99%"]
                record["labels_to_99%"] = None if to_99 is None else int(to_99)
                rows.append(
                    {
                        "dataset": name,
                        "seeds_run": part,
                        "report": str(markdown),
                        **record,
                        "full_accuracy": full,
                    }
                )
            asks.append({"dataset": name, "seeds_run": part, **what_it_asks(result)})
            for record in summarize_stops(result, SWEEP).to_dict("records"):
                met = sweep.setdefault(record["rule"], {}).setdefault(record["strategy"], [])
                met += [f"{name} ({part})"] if record["target_met"] else []
    seconds = time.perf_counter() - started

    from rich.table import Table

    target = f">= {STOP_ACCURACY:.0%} of full-pool accuracy, <= {STOP_LABELS:g}x the labels to 99%"
    table = Table(title=f"stopping rules, {args.seeds} seeds, mean over seeds (target: {target})")
    for column in (
        "dataset",
        "seeds",
        "strategy",
        "rule",
        "stopped",
        "labels at stop",
        "accuracy at stop",
        "of full pool",
        "labels to 99%",
        "ratio",
        "target met",
    ):
        table.add_column(
            column, justify="left" if column in ("dataset", "seeds", "strategy", "rule") else "right"
        )
    for r in rows:
        stopped, to_99 = r["stopped"] > 0, r["labels_to_99%"]
        table.add_row(
            r["dataset"],
            r["seeds_run"],
            r["strategy"],
            r["rule"],
            f"{r['stopped']}/{r['seeds']}",
            f"{r['labels_at_stop']:.0f}" if stopped else "-",
            f"{r['accuracy_at_stop']:.3f}" if stopped else "-",
            f"{r['accuracy_at_stop'] / r['full_accuracy']:.1%}" if stopped else "-",
            "-" if to_99 is None else str(to_99),
            f"{r['labels_at_stop'] / to_99:.2f}x" if stopped and to_99 else "-",
            "yes" if r["target_met"] else "no",
        )
    out.print(table)
    for part in dict.fromkeys(r["seeds_run"] for r in rows):
        for rule in dict.fromkeys(r["rule"] for r in rows):
            for strategy in ("margin", "entropy"):
                met = [
                    r["target_met"]
                    for r in rows
                    if (r["rule"], r["strategy"], r["seeds_run"]) == (rule, strategy, part)
                ]
                out.print(
                    f"seeds {part}, {strategy} + {rule}: target met on {sum(met)} of {len(met)} datasets"
                )
    asked = Table(title="what the target asks of a rule (margin; every seed stopped at one round)")
    for column in ("dataset", "seeds", "labels to 99%", "rounds allowed", "labels then", "stop set changing"):
        asked.add_column(column, justify="left" if column in ("dataset", "seeds") else "right")
    for a in asks:
        first, last = a["rounds"] or (None, None)
        asked.add_row(
            a["dataset"],
            a["seeds_run"],
            str(a["labels_to_99%"]),
            "none" if first is None else f"{first}-{last}",
            "-" if first is None else "{}-{}".format(*a["labels"]),
            "-" if last is None or not last else f"{a['changing_by_round'][last]:.1%} at round {last}",
        )
    out.print(asked)
    out.print(f"other settings, datasets (and seeds) where the target is met (of {2 * len(results)}):")
    for rule, strategies in sweep.items():
        out.print(f"  {rule}: " + ", ".join(f"{s} {len(m)}" for s, m in strategies.items() if s != "random"))
    common.write_report(
        args.out,
        {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "source": source_info(),
            "machine": machine(),
            "seconds": seconds,
            "seeds": args.seeds,
            "strategies": list(STRATEGIES),
            "datasets": DATASETS,
            "comparison_datasets": [
                {"dataset": name, "batch_share": share, "iterations": rounds}
                for name, share, rounds in COMPARISON
            ],
            "target": {
                "accuracy_share_at_least": STOP_ACCURACY,
                "labels_over_labels_to_99_at_most": STOP_LABELS,
            },
            "rows": rows,
            "sweep_target_met_on": sweep,
            "what_the_target_asks": asks,
        },
    )
    out.print(f"{seconds:.0f} s; reports in {args.output_dir}, results in {args.out}")


if __name__ == "__main__":
    main()
