"""Stopping rules in the experiment: what each round records, and where the report says each rule stops."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread
from threadpoolctl import threadpool_limits

from alstream.experiment.config import ExperimentConfig
from alstream.experiment.datasets import load_dataset
from alstream.experiment.protocol import ExperimentResult, run_experiment, split_data
from alstream.experiment.report import _stop_marks, plot_learning_curves, render_markdown
from alstream.experiment.stops import STOP_RULES, stop_points, summarize_stops
from alstream.learning.stopping import (
    STOP_SET_SIZE,
    OverallUncertainty,
    StabilizingPredictions,
    draw_stop_set,
    uncertainty,
)

KAPPA, CHANGE_OF_F, UNCERTAINTY = (rule.label for rule in STOP_RULES)


@pytest.fixture(scope="module")
def recorded() -> tuple[ExperimentResult, dict[tuple[str, int], list]]:
    config = ExperimentConfig(
        dataset="iris", strategies=("margin", "random"), seeds=2, iterations=10, batch_size=5
    )
    models: dict[tuple[str, int], list] = {}
    with threadpool_limits(1):  # tiny fits: threads only add overhead
        result = run_experiment(
            config, on_round=lambda s, seed, rnd: models.setdefault((s, seed), []).append(rnd)
        )
    return result, models


def stopping_table(markdown: str) -> pd.DataFrame:
    """The stopping section's table as strings."""
    section = markdown.split("## Stopping rules", 1)[1]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header, _, *rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return pd.DataFrame(rows, columns=header).set_index(["Strategy", "Rule"])


def test_every_round_records_the_models_predictions_on_one_stop_set_per_seed(recorded):
    result, models = recorded
    data = load_dataset("iris")
    for (strategy, seed), rounds in models.items():
        split = split_data(data.X, data.y, result.config, seed)
        stop_set = draw_stop_set(np.setdiff1d(np.arange(len(split.y_pool)), split.initial), seed=seed)
        expected = np.stack([rnd.model.predict(split.X_pool[stop_set]) for rnd in rounds])
        np.testing.assert_array_equal(result.stop_predictions[(strategy, seed)], expected)
    assert set(result.stop_predictions) == {(s, seed) for s in ("margin", "random") for seed in (0, 1)}


def test_the_stop_set_is_a_fixed_sample_of_the_initially_unlabeled_pool_shared_by_strategies():
    config = ExperimentConfig(dataset="digits", strategies=("margin", "random"), seeds=1, iterations=2)
    models: dict[str, list] = {}
    with threadpool_limits(1):
        result = run_experiment(
            config, on_round=lambda s, seed, rnd: models.setdefault(s, []).append(rnd.model)
        )
    data = load_dataset("digits")
    split = split_data(data.X, data.y, config, 0)
    unlabeled = np.setdiff1d(np.arange(len(split.y_pool)), split.initial)
    assert len(unlabeled) > STOP_SET_SIZE  # so the stop set is a sample, not the whole pool
    stop_set = draw_stop_set(unlabeled, seed=0)
    for strategy, rounds in models.items():
        expected = np.stack([model.predict(split.X_pool[stop_set]) for model in rounds])
        np.testing.assert_array_equal(result.stop_predictions[(strategy, 0)], expected)
        assert expected.shape == (3, STOP_SET_SIZE)


def test_every_round_records_the_mean_uncertainty_of_the_rows_still_unlabeled(recorded):
    result, models = recorded
    data = load_dataset("iris")
    for (strategy, seed), rounds in models.items():
        split = split_data(data.X, data.y, result.config, seed)
        labeled = np.zeros(len(split.y_pool), dtype=bool)
        curve = result.curves[(result.curves["strategy"] == strategy) & (result.curves["seed"] == seed)]
        for rnd, (_, row) in zip(rounds, curve.sort_values("iteration").iterrows(), strict=True):
            labeled[rnd.queried] = True
            proba = rnd.model.predict_proba(split.X_pool[~labeled])
            for measure in ("entropy", "least_confident"):
                assert row[f"uncertainty_{measure}"] == pytest.approx(uncertainty(proba, measure).mean())


def test_stop_points_apply_the_rules_to_what_was_recorded(recorded):
    result, _ = recorded
    points = stop_points(result).set_index(["strategy", "rule", "seed"])
    assert len(points) == 2 * 2 * len(STOP_RULES)
    for (strategy, seed), predictions in result.stop_predictions.items():
        curve = result.curves[(result.curves["strategy"] == strategy) & (result.curves["seed"] == seed)]
        curve = curve.sort_values("iteration").reset_index(drop=True)
        stops = {
            KAPPA: StabilizingPredictions().stop_round(list(predictions)),
            UNCERTAINTY: OverallUncertainty().stop_round(curve["uncertainty_entropy"]),
        }
        for rule, stop in stops.items():
            point = points.loc[(strategy, rule, seed)]
            if stop is None:
                assert np.isnan(point["n_labeled"])
            else:
                assert point["n_labeled"] == curve.loc[stop, "n_labeled"]
                assert point["accuracy"] == curve.loc[stop, "accuracy"]
    assert points["n_labeled"].notna().any(), "no rule stopped at all: the fixture shows nothing"


def test_the_report_says_where_each_rule_stops_and_states_the_target(recorded):
    result, _ = recorded
    text = render_markdown(result, "curves.png")
    assert "## Stopping rules" in text
    full = result.reference["accuracy"].mean()
    assert "no earlier than 98% of full-pool accuracy" in text and f"≥ {0.98 * full:.3f}" in text
    assert "at most 1.2x the labels" in text
    rows = stopping_table(text)
    stops = summarize_stops(result).set_index(["strategy", "rule"])
    assert sorted(rows.index) == sorted(stops.index)
    for key, expected in stops.iterrows():
        row = rows.loc[key]
        assert row["seeds stopped"] == f"{expected['stopped']} of 2"
        if expected["stopped"]:
            assert row["labels at stop (min-max)"].startswith(f"{expected['labels_at_stop']:.0f} (")
            assert row["accuracy at stop (of full pool)"].startswith(f"{expected['accuracy_at_stop']:.3f}")
        else:
            assert row["labels at stop (min-max)"] == "never within the run"
        assert row["labels to 99%"] == str(int(expected["labels_to_99%"]))
        assert row["target met"].startswith("yes" if expected["target_met"] else "no")


def hand_made(stop_at: dict[str, int | None], accuracies: list[float], full: float = 0.9) -> ExperimentResult:
    """One strategy ``margin``, two seeds, labels 10, 20, ...: predictions that settle (kappa 1) from
    round ``stop_at['kappa'] - 3`` and uncertainty that falls below 0.05 at ``stop_at['uncertainty']``."""
    rounds = len(accuracies)
    rng = np.random.default_rng(0)
    rows, predictions = [], {}
    for seed in (0, 1):
        settled = rng.integers(0, 2, size=50)
        kappa_stop = stop_at["kappa"]
        first_settled = rounds if kappa_stop is None else kappa_stop - 3
        predictions[("margin", seed)] = np.stack(
            [settled if r >= first_settled else rng.integers(0, 2, size=50) for r in range(rounds)]
        )
        below = stop_at["uncertainty"]
        for i, accuracy in enumerate(accuracies):
            level = 0.01 if below is not None and i >= below else 0.5
            rows.append(
                {
                    "strategy": "margin",
                    "seed": seed,
                    "iteration": i,
                    "n_labeled": 10 * (i + 1),
                    "accuracy": accuracy,
                    "macro_f1": accuracy,
                    "log_loss": 1 - accuracy,
                    "uncertainty_entropy": level,
                    "uncertainty_least_confident": level,
                }
            )
    reference = pd.DataFrame({"seed": [0, 1], "accuracy": full, "macro_f1": full, "log_loss": 0.1})
    config = ExperimentConfig(dataset="generated", strategies=("margin",), iterations=rounds - 1, name="toy")
    return ExperimentResult(config, pd.DataFrame(rows), reference, ("a", "b"), predictions)


# full pool 0.9: 98% is 0.882, 99% is 0.891, reached at 50 labels (round 4); 1.2 x 50 = 60 labels
CURVE = [0.70, 0.80, 0.85, 0.88, 0.90, 0.91, 0.91, 0.92, 0.92, 0.92]


@pytest.mark.parametrize(
    ("kappa_at", "uncertainty_at", "kappa_verdict", "uncertainty_verdict"),
    [
        (5, 4, "yes", "yes"),  # 60 and 50 labels, accuracy 0.91 and 0.90
        (3, 3, "no (too early)", "no (too early)"),  # 40 labels at 0.88 < 0.882
        (6, 9, "no (too late)", "no (too late)"),  # 70 and 100 labels > 60
        (None, None, "no (no stop in 2 seeds)", "no (no stop in 2 seeds)"),
    ],
)
def test_the_target_verdicts_on_hand_made_runs(kappa_at, uncertainty_at, kappa_verdict, uncertainty_verdict):
    result = hand_made({"kappa": kappa_at, "uncertainty": uncertainty_at}, CURVE)
    rows = stopping_table(render_markdown(result, "toy.png"))
    assert rows.loc[("margin", KAPPA), "target met"] == kappa_verdict
    assert rows.loc[("margin", CHANGE_OF_F), "target met"] == kappa_verdict  # it reads the same stop set
    assert rows.loc[("margin", UNCERTAINTY), "target met"] == uncertainty_verdict
    assert rows.loc[("margin", KAPPA), "labels to 99%"] == "50"
    if kappa_at is not None:
        assert (
            rows.loc[("margin", KAPPA), "labels at stop (min-max)"]
            == f"{10 * (kappa_at + 1)} ({10 * (kappa_at + 1)}-{10 * (kappa_at + 1)})"
        )
        assert rows.loc[("margin", KAPPA), "labels / labels to 99%"] == f"{(kappa_at + 1) / 5:.2f}x"


def test_a_target_never_reached_is_said_so():
    result = hand_made({"kappa": 5, "uncertainty": 5}, [0.5] * 10)
    rows = stopping_table(render_markdown(result, "toy.png"))
    assert rows.loc[("margin", KAPPA), "target met"] == "no (99% never reached, too early)"
    assert rows.loc[("margin", KAPPA), "labels to 99%"] == "not reached"


def test_the_figure_marks_each_rules_stop(recorded, tmp_path):
    result, _ = recorded
    stops = summarize_stops(result)
    marks = _stop_marks(result)
    assert len(marks) == int((stops["stopped"] > 0).sum()) > 0
    for strategy, rule, labels, accuracy in marks:
        row = stops[(stops["strategy"] == strategy) & (stops["rule"] == rule)].iloc[0]
        assert (labels, accuracy) == (row["labels_at_stop"], row["accuracy_at_stop"])
    png = plot_learning_curves(result, tmp_path / "curves.png")
    assert imread(png)[..., :3].std() > 0.05


def test_a_result_without_what_the_rules_read_has_no_stopping_section():
    result = hand_made({"kappa": 5, "uncertainty": 4}, CURVE)
    bare = ExperimentResult(
        result.config,
        result.curves.drop(columns=["uncertainty_entropy", "uncertainty_least_confident"]),
        result.reference,
        result.classes,
    )
    assert "## Stopping rules" not in render_markdown(bare, "toy.png")
    assert stop_points(bare).empty
