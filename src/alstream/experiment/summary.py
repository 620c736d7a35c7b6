"""Learning-curve figures: area under the curve, accuracy at budgets, labels to reach a target, and
where each stopping rule would have stopped a run (``stop_points``, ``summarize_stops``).

>>> curve = pd.DataFrame({"n_labeled": [10, 20, 30], "accuracy": [0.5, 0.7, 0.9]})
>>> round(aulc(curve), 3)
0.7
>>> labels_to_reach(curve, 0.7)
20
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from alstream.experiment.protocol import ExperimentResult, uncertainty_column
from alstream.stopping import OverallUncertainty, StabilizingPredictions

TARGETS = (0.95, 0.99)


def aulc(curve: pd.DataFrame, metric: str = "accuracy") -> float:
    """Area under ``metric`` against labels, divided by the label range (so it is a mean level)."""
    x = curve["n_labeled"].to_numpy(dtype=float)
    y = curve[metric].to_numpy(dtype=float)
    if len(x) < 2 or x[-1] == x[0]:
        return float(y.mean())
    return float(np.trapezoid(y, x) / (x[-1] - x[0]))


def labels_to_reach(curve: pd.DataFrame, level: float, metric: str = "accuracy") -> int | None:
    """The fewest labels at which ``metric`` is at least ``level``; None if never."""
    reached = curve.loc[curve[metric] >= level, "n_labeled"]
    return int(reached.min()) if len(reached) else None


def mean_curves(curves: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """Per strategy and round: mean, std, min and max of ``metric`` over seeds."""
    grouped = curves.groupby(["strategy", "iteration"], sort=False)
    table = grouped.agg(
        n_labeled=("n_labeled", "mean"),
        mean=(metric, "mean"),
        std=(metric, "std"),
        low=(metric, "min"),
        high=(metric, "max"),
    ).reset_index()
    return table.fillna({"std": 0.0})


def budgets(curves: pd.DataFrame, count: int = 4) -> list[int]:
    """A few label budgets spread over the run, the first and last included."""
    labels = np.sort(curves["n_labeled"].unique())
    picks = np.linspace(0, len(labels) - 1, num=min(count, len(labels))).round().astype(int)
    return [int(labels[i]) for i in dict.fromkeys(picks)]


def summarize(curves: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """One row per strategy: AULC (mean and std over seeds), accuracy at budgets, labels to targets.

    Targets are fractions of the mean accuracy of a model trained on the whole pool, read off the
    mean curve over seeds.
    """
    full = float(reference["accuracy"].mean())
    means = mean_curves(curves)
    points = budgets(curves)
    rows = []
    for strategy, runs in curves.groupby("strategy", sort=False):
        per_seed = [aulc(run.sort_values("iteration")) for _, run in runs.groupby("seed")]
        curve = means[means["strategy"] == strategy].rename(columns={"mean": "accuracy"})
        row: dict[str, object] = {
            "strategy": strategy,
            "aulc": float(np.mean(per_seed)),
            "aulc_std": float(np.std(per_seed)),
            "final_accuracy": float(curve["accuracy"].iloc[-1]),
        }
        for budget in points:
            at = curve.loc[curve["n_labeled"].round() == budget, "accuracy"]
            row[f"accuracy@{budget}"] = float(at.iloc[0]) if len(at) else np.nan
        for target in TARGETS:
            row[f"labels_to_{round(target * 100)}%"] = labels_to_reach(curve, target * full)
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Stopping rules: where each would have stopped each run, against the labels needed to reach 99%

STOP_ACCURACY = 0.98  # the target: a rule stops at no less than 98% of full-pool accuracy...
STOP_LABELS = 1.2  # ...and with at most 1.2 x the labels the strategy needs to reach 99% of it
StopRule = StabilizingPredictions | OverallUncertainty
STOP_RULES: tuple[StopRule, ...] = (StabilizingPredictions(), OverallUncertainty())


def stop_points(result: ExperimentResult, rules: Sequence[StopRule] = STOP_RULES) -> pd.DataFrame:
    """One row per strategy, rule and seed: the round the rule stops at, with the labels and test
    accuracy then (NaN when it never stops within the run). A rule whose signal the result lacks
    (no stop-set predictions, no uncertainty column) is left out."""
    rows = []
    for (strategy, seed), run in result.curves.groupby(["strategy", "seed"], sort=False):
        run = run.sort_values("iteration")
        for rule in rules:
            if isinstance(rule, StabilizingPredictions):
                predictions = result.stop_predictions.get((str(strategy), int(seed)))
                if predictions is None:
                    continue
                stop = rule.stop_round(list(predictions))
            else:
                column = uncertainty_column(rule.measure)
                if column not in run:
                    continue
                stop = rule.stop_round(run[column].to_numpy())
            at = run.iloc[stop] if stop is not None else None
            rows.append(
                {
                    "strategy": strategy,
                    "rule": rule.label,
                    "seed": seed,
                    "iteration": np.nan if at is None else int(at["iteration"]),
                    "n_labeled": np.nan if at is None else int(at["n_labeled"]),
                    "accuracy": np.nan if at is None else float(at["accuracy"]),
                }
            )
    return pd.DataFrame(rows, columns=["strategy", "rule", "seed", "iteration", "n_labeled", "accuracy"])


def summarize_stops(result: ExperimentResult, rules: Sequence[StopRule] = STOP_RULES) -> pd.DataFrame:
    """One row per strategy and rule: seeds stopped, labels at the stop (mean, min, max over the seeds
    that stopped), test accuracy then (mean), the labels the strategy needs to reach 99% of full-pool
    accuracy (off the mean curve, as ``summarize``), and whether the target is met: every seed stopped,
    mean accuracy at the stop >= 98% of full-pool accuracy, mean labels <= 1.2 x the labels to 99%."""
    points = stop_points(result, rules)
    full = float(result.reference["accuracy"].mean())
    means = mean_curves(result.curves).rename(columns={"mean": "accuracy"})
    rows = []
    for (strategy, rule), runs in points.groupby(["strategy", "rule"], sort=False):
        stopped = runs.dropna(subset=["n_labeled"])
        to_99 = labels_to_reach(means[means["strategy"] == strategy], TARGETS[-1] * full)
        labels = float(stopped["n_labeled"].mean()) if len(stopped) else np.nan
        accuracy = float(stopped["accuracy"].mean()) if len(stopped) else np.nan
        early_enough = bool(accuracy >= STOP_ACCURACY * full)  # NaN compares False
        few_enough = to_99 is not None and bool(labels <= STOP_LABELS * to_99)
        rows.append(
            {
                "strategy": strategy,
                "rule": rule,
                "seeds": len(runs),
                "stopped": len(stopped),
                "labels_at_stop": labels,
                "labels_min": float(stopped["n_labeled"].min()) if len(stopped) else np.nan,
                "labels_max": float(stopped["n_labeled"].max()) if len(stopped) else np.nan,
                "accuracy_at_stop": accuracy,
                "full_accuracy": full,
                "labels_to_99%": to_99,
                "accuracy_ok": early_enough,
                "labels_ok": few_enough,
                "target_met": len(stopped) == len(runs) and early_enough and few_enough,
            }
        )
    return pd.DataFrame(rows)
