"""Where each stopping rule would have stopped an experiment's runs (``stop_points``,
``summarize_stops``), against the labels a strategy needs to reach 99% of full-pool accuracy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np
import pandas as pd

from alstream.experiment.protocol import ExperimentResult, uncertainty_column
from alstream.learning.curves import TARGETS, labels_to_reach, mean_curves
from alstream.learning.stopping import OverallUncertainty, PredictedChangeOfF, StabilizingPredictions

# --------------------------------------------------------------------------------------------
# Stopping rules: where each would have stopped each run, against the labels needed to reach 99%

STOP_ACCURACY = 0.98  # the target: a rule stops at no less than 98% of full-pool accuracy...
STOP_LABELS = 1.2  # ...and with at most 1.2 x the labels the strategy needs to reach 99% of it
StopRule = StabilizingPredictions | PredictedChangeOfF | OverallUncertainty
STOP_RULES: tuple[StopRule, ...] = (StabilizingPredictions(), PredictedChangeOfF(), OverallUncertainty())


def stop_points(result: ExperimentResult, rules: Sequence[StopRule] = STOP_RULES) -> pd.DataFrame:
    """One row per strategy, rule and seed: the round the rule stops at, with the labels and test
    accuracy then (NaN when it never stops within the run). A rule whose signal the result lacks
    (no stop-set predictions, no uncertainty column) is left out."""
    rows = []
    for (strategy, seed), run in result.curves.groupby(["strategy", "seed"], sort=False):
        run = run.sort_values("iteration")
        for rule in rules:
            if isinstance(rule, StabilizingPredictions | PredictedChangeOfF):  # read the stop set
                predictions = result.stop_predictions.get((str(strategy), int(cast(int, seed))))
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
