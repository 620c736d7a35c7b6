import math

import pandas as pd

from alstream.learning.curves import aulc, budgets, labels_to_reach, summarize


def _curves():
    rows = []
    for seed, shift in ((0, 0.0), (1, 0.02)):
        for k, (good, base) in enumerate([(0.80, 0.80), (0.90, 0.84), (0.96, 0.88)]):
            rows.append(
                {
                    "strategy": "margin",
                    "seed": seed,
                    "iteration": k,
                    "n_labeled": 10 + 10 * k,
                    "accuracy": good + shift,
                }
            )
            rows.append(
                {
                    "strategy": "random",
                    "seed": seed,
                    "iteration": k,
                    "n_labeled": 10 + 10 * k,
                    "accuracy": base + shift,
                }
            )
    return pd.DataFrame(rows)


def test_aulc_is_the_mean_level_of_the_curve():
    curve = pd.DataFrame({"n_labeled": [0, 10, 20], "accuracy": [0.0, 1.0, 1.0]})
    assert aulc(curve) == 0.75
    flat = pd.DataFrame({"n_labeled": [5], "accuracy": [0.6]})
    assert aulc(flat) == 0.6


def test_labels_to_reach_is_none_when_never_reached():
    curve = pd.DataFrame({"n_labeled": [10, 20], "accuracy": [0.5, 0.6]})
    assert labels_to_reach(curve, 0.55) == 20
    assert labels_to_reach(curve, 0.9) is None


def test_summary_uses_the_mean_curve_and_the_full_pool_reference():
    reference = pd.DataFrame({"seed": [0, 1], "accuracy": [0.97, 0.97]})
    summary = summarize(_curves(), reference).set_index("strategy")
    assert math.isclose(summary.loc["margin", "aulc"], (0.8 + 0.9 * 2 + 0.96) / 4 + 0.01)
    assert math.isclose(summary.loc["margin", "aulc_std"], 0.01)
    assert summary.loc["margin", "labels_to_95%"] == 30  # 0.97 >= 0.95 * 0.97
    assert math.isnan(summary.loc["random", "labels_to_99%"])
    assert math.isclose(summary.loc["random", "accuracy@20"], 0.85)
    assert budgets(_curves()) == [10, 20, 30]
