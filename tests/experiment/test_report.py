"""The comparison report: the figure people look at and the Markdown page around it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread
from threadpoolctl import threadpool_limits

from alstream.experiment.config import ExperimentConfig
from alstream.experiment.protocol import ExperimentResult, run_experiment
from alstream.experiment.report import plot_learning_curves, render_markdown, write_report
from alstream.learning.curves import summarize

DPI = 150


@pytest.fixture(scope="module")
def result() -> ExperimentResult:
    config = ExperimentConfig(
        dataset="iris", strategies=("entropy", "margin", "random"), seeds=2, iterations=5, batch_size=5
    )
    with threadpool_limits(1):  # tiny fits: threads only add overhead
        return run_experiment(config)


@pytest.fixture(scope="module")
def written(result: ExperimentResult, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_report(result, tmp_path_factory.mktemp("report") / "nested")


def toy_result(levels: dict[str, list[float]], full: float = 0.9, name: str = "toy") -> ExperimentResult:
    """A hand-made result: the same accuracy for both seeds, labels 10, 20, 30, ..."""
    rows = [
        {
            "strategy": strategy,
            "seed": seed,
            "iteration": i,
            "n_labeled": 10 * (i + 1),
            "accuracy": accuracy,
            "macro_f1": accuracy,
            "log_loss": 1 - accuracy,
        }
        for strategy, accuracies in levels.items()
        for seed in (0, 1)
        for i, accuracy in enumerate(accuracies)
    ]
    reference = pd.DataFrame({"seed": [0, 1], "accuracy": [full, full], "macro_f1": full, "log_loss": 0.1})
    rounds = len(next(iter(levels.values()))) - 1
    config = ExperimentConfig(dataset="generated", strategies=tuple(levels), iterations=rounds, name=name)
    return ExperimentResult(config, pd.DataFrame(rows), reference, ("a", "b"))


def table(markdown: str) -> pd.DataFrame:
    """The comparison table as strings, one row per strategy (the stopping rules' table comes later)."""
    section = markdown.split("## Comparison", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    header, _, *rows = cells
    return pd.DataFrame(rows, columns=header)


def strategy_names(frame: pd.DataFrame) -> list[str]:
    return [cell.replace("*", "").replace("(baseline)", "").strip() for cell in frame["Strategy"]]


def test_write_report_creates_folder_and_names_files_after_config(written, result):
    markdown, png = written
    assert markdown == png.parent / f"{result.config.name}.md"
    assert png.name == f"{result.config.name}.png"
    assert markdown.is_file() and png.is_file()


def test_png_is_a_readable_non_blank_figure_of_the_expected_size(written):
    _, png = written
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = imread(png)
    height, width = image.shape[:2]
    assert width == pytest.approx(9 * DPI, rel=0.05)
    assert 5 * DPI <= height <= 7 * DPI
    rgb = image[..., :3]
    assert rgb.std() > 0.05  # not a blank canvas
    assert (rgb.min(axis=-1) < 0.9).mean() > 0.02  # a fair amount of ink


def test_markdown_embeds_the_image_by_relative_name(written):
    markdown, png = written
    text = markdown.read_text(encoding="utf-8")
    assert f"]({png.name})" in text
    assert str(png.parent) not in text


def test_markdown_describes_the_protocol(result):
    text = render_markdown(result, "curves.png")
    config = result.config
    full = result.reference["accuracy"]
    assert text.startswith("# ")
    assert "iris" in text and "logistic regression" in text
    assert f"{config.batch_size} labels per round for {config.iterations} rounds" in text
    assert f"{config.seeds} seeds" in text
    assert f"{full.mean():.3f} ± {np.std(full):.3f}" in text


def test_one_row_per_strategy_sorted_by_aulc_with_the_baseline_marked(result):
    rows = table(render_markdown(result, "curves.png"))
    expected = summarize(result.curves, result.reference).sort_values("aulc", ascending=False)
    assert strategy_names(rows) == list(expected["strategy"])
    aulcs = [float(cell.split("±")[0]) for cell in rows["AULC (mean ± std)"]]
    assert aulcs == sorted(aulcs, reverse=True)
    marked = rows[rows["Strategy"].str.contains("baseline")]
    assert strategy_names(marked) == ["random"]


def test_table_numbers_match_summarize(result):
    rows = table(render_markdown(result, "curves.png")).set_index("Strategy")
    rows.index = strategy_names(rows.reset_index())
    summary = summarize(result.curves, result.reference).set_index("strategy")
    for strategy, expected in summary.iterrows():
        row = rows.loc[strategy]
        assert row["AULC (mean ± std)"] == f"{expected['aulc']:.3f} ± {expected['aulc_std']:.3f}"
        for column in (c for c in summary.columns if c.startswith("accuracy@")):
            budget = column.split("@")[1]
            assert float(row[f"acc @ {budget} labels"]) == pytest.approx(expected[column], abs=5e-4)
        to_95 = expected["labels_to_95%"]
        cell = next(v for k, v in row.items() if k.startswith("labels to 95%"))
        assert cell == ("not reached" if pd.isna(to_95) else str(int(to_95)))


def test_targets_not_reached_and_labels_saved():
    # full pool 0.9: 95% target 0.855, 99% target 0.891
    result = toy_result(
        {
            "margin": [0.60, 0.86, 0.90, 0.92],  # 95% at 20 labels, 99% at 30
            "entropy": [0.60, 0.70, 0.80, 0.85],  # reaches neither
            "random": [0.60, 0.70, 0.86, 0.88],  # 95% at 30, 99% never within 40 labels
        }
    )
    rows = table(render_markdown(result, "toy.png"))
    rows.index = strategy_names(rows)
    to_95 = next(c for c in rows.columns if c.startswith("labels to 95%"))
    to_99 = next(c for c in rows.columns if c.startswith("labels to 99%"))
    saved = next(c for c in rows.columns if c.startswith("labels saved"))
    assert "0.891" in to_99
    assert rows.loc["random", to_95] == "30"
    assert rows.loc["random", to_99] == "not reached"
    assert rows.loc["entropy", to_95] == rows.loc["entropy", to_99] == "not reached"
    assert rows.loc["margin", to_99] == "30"
    # random needs more than the 40 labels of the run: margin saves more than 10
    assert rows.loc["margin", saved] == "> 10"
    assert rows.loc["entropy", saved] == rows.loc["random", saved] == "—"


def test_labels_saved_when_both_reach_the_target():
    result = toy_result({"margin": [0.80, 0.90, 0.92, 0.93], "random": [0.80, 0.85, 0.88, 0.90]})
    rows = table(render_markdown(result, "toy.png"))
    rows.index = strategy_names(rows)
    saved = next(c for c in rows.columns if c.startswith("labels saved"))
    assert rows.loc["margin", saved] == "+20 (+50%)"  # 20 labels against 40
    assert rows.loc["random", saved] == "—"


@pytest.mark.parametrize(
    ("levels", "metric"),
    [
        ({"margin": [0.7, 0.8, 0.9], "entropy": [0.7, 0.75, 0.85]}, "accuracy"),  # no baseline
        ({"margin": [0.7, 0.8, 0.9], "random": [0.7, 0.75, 0.85]}, "log_loss"),
        ({"margin": [0.8], "random": [0.8]}, "accuracy"),  # a single round
    ],
)
def test_plot_handles_other_shapes_of_result(tmp_path, levels, metric):
    png = plot_learning_curves(toy_result(levels), tmp_path / "curves.png", metric=metric)
    assert imread(png)[..., :3].std() > 0.05


def paired_result(
    gains: dict[str, list[float]], classes: tuple[str, ...] = ("a", "b", "c")
) -> ExperimentResult:
    """Every strategy on as many seeds as it has gains: random's curve, raised by the seed's gain after
    round 0 (the same initial set); full-pool accuracy 0.95, out of every curve's reach."""
    seeds = len(next(iter(gains.values())))
    base = [0.60, 0.70, 0.75, 0.80]
    rows = [
        {
            "strategy": strategy,
            "seed": seed,
            "iteration": i,
            "n_labeled": 10 * (i + 1),
            "accuracy": level + seed / 100 + (per_seed[seed] if i else 0.0),
        }
        for strategy, per_seed in {**gains, "random": [0.0] * seeds}.items()
        for seed in range(seeds)
        for i, level in enumerate(base)
    ]
    reference = pd.DataFrame({"seed": range(seeds), "accuracy": 0.95, "macro_f1": 0.95, "log_loss": 0.1})
    names = (*gains, "random")
    config = ExperimentConfig(dataset="generated", strategies=names, iterations=3, seeds=seeds, name="paired")
    return ExperimentResult(config, pd.DataFrame(rows), reference, classes)


def paired_table(markdown: str) -> pd.DataFrame:
    section = markdown.split("## Paired tests over seeds", 1)[1].split("\n## ", 1)[0]
    cells = [
        [c.strip() for c in line.strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("|")
    ]
    header, _, *rows = cells
    return pd.DataFrame(rows, columns=header).set_index("Strategy")


def headline(markdown: str) -> str:
    return markdown.split("\n\n")[2]


def test_each_strategy_is_tested_against_margin_and_random_paired_by_seed():
    steady = [0.03, 0.04, 0.05, 0.06, 0.07, 0.08]  # above random in every seed, by different amounts
    result = paired_result(
        {
            "margin": steady,
            "entropy": [g + d for g, d in zip(steady, [0.01, -0.02, 0.03, -0.01, 0.02, -0.03], strict=True)],
        }
    )
    rows = paired_table(render_markdown(result, "p.png"))
    vs_random, vs_margin = "vs random: wins, AULC gain (points), p", "vs margin: wins, AULC gain (points), p"
    # 6 of 6 higher: the exact two-sided p is 2 / 2^6
    assert (
        rows.loc["margin", vs_random].startswith("**6 of 6, +")
        and "p = 0.0312" in rows.loc["margin", vs_random]
    )
    assert rows.loc["entropy", vs_margin].startswith("3 of 6, ")  # 3 higher, 3 lower: not bold
    assert rows.loc["margin", vs_margin] == "—" and rows.loc["random", vs_random] == "—"
    assert rows.loc["random", vs_margin].startswith("**0 of 6, -")


def test_the_headline_names_a_winner_only_when_the_paired_test_says_so():
    steady = [0.03, 0.04, 0.05, 0.06, 0.07, 0.08]
    clear = render_markdown(paired_result({"margin": steady, "entropy": [g / 3 for g in steady]}), "p.png")
    assert headline(clear).startswith("**Best strategy: `margin`**")
    five = render_markdown(
        paired_result({"margin": steady[:5], "entropy": [g / 3 for g in steady[:5]]}), "p.png"
    )
    assert headline(five).startswith("**No strategy is shown to beat `random`**: the best, `margin`")
    assert "higher in 5 of 5 seeds, Wilcoxon p = 0.062, not significant" in headline(five)
    assert "can save" not in five and "6 seeds or more" in five
    close = [g + d for g, d in zip(steady, [0.001, -0.002, 0.003, -0.001, 0.002, -0.003], strict=True)]
    tied = render_markdown(paired_result({"margin": steady, "entropy": close}), "p.png")
    assert headline(tied).startswith(
        "**`entropy`, `margin` beat `random`**, none shown better than the others"
    )
    worse = render_markdown(paired_result({"margin": [-g for g in steady]}), "p.png")
    assert headline(worse).startswith("**No strategy beats `random`**")


def test_on_two_classes_the_report_says_the_uncertainty_strategies_rank_alike():
    gains = {"margin": [0.01, 0.02], "entropy": [0.01, 0.02], "least_confident": [0.01, 0.02]}
    two = render_markdown(paired_result(gains, classes=("no", "yes")), "p.png")
    assert "With two classes, `least_confident`, `margin`, `entropy` rank samples identically" in two
    three = render_markdown(paired_result(gains), "p.png")
    assert "rank samples identically" not in three
    alone = render_markdown(paired_result({"margin": [0.01, 0.02]}, classes=("no", "yes")), "p.png")
    assert "rank samples identically" not in alone  # nothing to compare it with


def test_when_the_initial_set_reaches_the_target_the_report_says_so_instead_of_zero_saved():
    result = toy_result({"margin": [0.90, 0.91, 0.92], "random": [0.90, 0.90, 0.91]})  # 99% of 0.9 at once
    markdown = render_markdown(result, "toy.png")
    assert headline(markdown).startswith(
        "**The initial labeled set (10 labels) already reaches 99% of full-pool"
    )
    rows = table(markdown)
    rows.index = strategy_names(rows)
    saved = next(c for c in rows.columns if c.startswith("labels saved"))
    assert rows.loc["margin", saved] == rows.loc["random", saved] == "the initial set reaches it"
