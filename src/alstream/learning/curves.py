"""Learning-curve figures: area under the curve, accuracy at budgets, labels to reach a target.

>>> curve = pd.DataFrame({"n_labeled": [10, 20, 30], "accuracy": [0.5, 0.7, 0.9]})
>>> round(aulc(curve), 3)
0.7
>>> labels_to_reach(curve, 0.7)
20
"""

from __future__ import annotations

import numpy as np
import pandas as pd

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
