"""The comparison report: a learning-curve figure and a Markdown page around it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from alstream.experiment.config import BASELINE, PREFIX, ExperimentConfig, StreamConfig
from alstream.experiment.paired import ALPHA, PairedTest, aulc_by_seed, paired_test
from alstream.experiment.protocol import ExperimentResult
from alstream.experiment.stops import STOP_ACCURACY, STOP_LABELS, summarize_stops
from alstream.experiment.stream import ALL_LABELS, summarize_stream
from alstream.learning.curves import TARGETS, mean_curves, summarize

# Okabe-Ito, a colour-blind-safe palette; the baseline gets its own dark grey dashes.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
BASELINE_COLOR = "#4D4D4D"
MODEL_NAMES = {
    "logreg": "logistic regression",
    "sgd": "SGD classifier (log loss)",
    "random_forest": "random forest",
    "gradient_boosting": "gradient boosting",
}
METRIC_NAMES = {"accuracy": "test accuracy", "macro_f1": "test macro-F1", "log_loss": "test log loss"}
LOWER_IS_BETTER = frozenset({"log_loss"})
NOT_REACHED = "not reached"
DASH = "—"
STOP_MARKERS = ("v", "s", "D", "^")  # one shape per stopping rule, in the strategy's colour
REFERENCES = ("margin", BASELINE)  # every strategy is tested against these, paired by seed
UNCERTAINTY = ("least_confident", "margin", "entropy")  # the same ranking with two classes
INITIAL_REACHES = "the initial set reaches it"


def plot_learning_curves(result: ExperimentResult, path: Path, metric: str = "accuracy") -> Path:
    """Save a PNG of ``metric`` against labels: one line per strategy, mean over seeds ± 1 std."""
    if isinstance(result.config, StreamConfig):
        return plot_stream(result, path)
    config, curves = result.config, result.curves
    full = float(result.reference[metric].mean())
    lines = [(full, f"full pool {full:.3f}", "#222222", "-", 1.1)]
    if metric not in LOWER_IS_BETTER:
        lines.append((0.99 * full, f"99% of full pool {0.99 * full:.3f}", "#9A9A9A", ":", 1.3))
    texts = (_title(config), _subtitle(config, curves), METRIC_NAMES.get(metric, metric), "AULC")
    marks = _stop_marks(result) if metric == "accuracy" else []
    return _plot(curves, path, metric, _rank_by_aulc(curves, metric), lines, texts, marks)


def plot_stream(result: ExperimentResult, path: Path) -> Path:
    """Save a PNG of prequential accuracy against labels used, scikit-activeml's runs dotted."""
    config, curves = result.config, result.curves
    full = float(result.reference["accuracy"].mean())
    lines = [(full, f"{ALL_LABELS} {full:.3f}", "#222222", "-", 1.1)]
    scores = summarize_stream(result).set_index("strategy")["accuracy"].sort_values(ascending=False)
    seeds = curves["seed"].nunique()
    subtitle = (
        f"{seeds} seed{'s' if seeds != 1 else ''} · budget {config.budget:g} of the arrivals · "  # type: ignore[attr-defined]
        f"prequential accuracy over each {_point_size(result)} arrivals · "
        "lines: mean over seeds, bands: ± 1 std"
    )
    texts = (
        f"Stream active learning on {_dataset(config)} · {_model(config)}",
        subtitle,
        "prequential accuracy",
        "overall",
    )
    return _plot(curves, path, "accuracy", cast(dict[str, float], scores.to_dict()), lines, texts)


def _plot(
    curves: pd.DataFrame,
    path: Path,
    metric: str,
    ranked: dict[str, float],
    lines: list[tuple[float, str, str, str, float]],
    texts: tuple[str, str, str, str],
    marks: list[tuple[str, str, float, float]] | None = None,
) -> Path:
    """The figure: mean curves with ± 1 std bands, reference ``lines`` and the gain over the baseline
    below; ``texts`` are the title, subtitle, y label and the name of the score in the legend;
    ``marks`` are ``(strategy, rule, labels, accuracy)``: where a stopping rule stops, one shape a rule."""
    title, subtitle, ylabel, score_name = texts
    higher = metric not in LOWER_IS_BETTER
    means = mean_curves(curves, metric)
    colors = _colors(ranked)
    show_gain = BASELINE in ranked and len(ranked) > 1

    fig = Figure(figsize=(9, 6.2 if show_gain else 5.5), dpi=150, layout="constrained")
    if show_gain:
        top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3.2, 1)})
    else:
        top, bottom = fig.subplots(1, 1), None

    for strategy, score in ranked.items():
        curve = means[means["strategy"] == strategy]
        x, mean = curve["n_labeled"].to_numpy(), curve["mean"].to_numpy()
        std = curve["std"].to_numpy()
        is_base, theirs = strategy.removeprefix(PREFIX) == BASELINE, strategy.startswith(PREFIX)
        label = f"{strategy}{' (baseline)' if strategy == BASELINE else ''} · {score_name} {score:.3f}"
        if not theirs:
            top.fill_between(x, mean - std, mean + std, color=colors[strategy], alpha=0.10, lw=0, zorder=2)
        top.plot(
            x,
            mean,
            color=colors[strategy],
            lw=1.4 if theirs else 2.2 if is_base else 2.0,
            ls=(0, (1, 1.5)) if theirs else (0, (5, 2.5)) if is_base else "-",
            marker="o" if len(x) == 1 else None,
            label=label,
            zorder=5 if theirs else 4 if is_base else 3,
        )

    shapes = {
        rule: STOP_MARKERS[i % len(STOP_MARKERS)]
        for i, rule in enumerate(dict.fromkeys(r for _, r, *_ in marks or []))
    }
    for rule, shape in shapes.items():  # the legend's key to the shapes, in neutral colours
        top.scatter(
            [], [], marker=shape, s=46, facecolor="white", edgecolor="#333333", label=f"stops: {rule}"
        )
    for strategy, rule, x_stop, y_stop in marks or []:
        color = colors[strategy]
        top.scatter(
            x_stop, y_stop, marker=shapes[rule], s=46, facecolor=color, edgecolor="#111111", lw=0.8, zorder=6
        )

    for level, _, color, style, width in lines:
        top.axhline(level, color=color, ls=style, lw=width, zorder=1)
    x_min, x_max = float(means["n_labeled"].min()), float(means["n_labeled"].max())
    pad = 0.01 * (x_max - x_min or 1.0)
    top.set_xlim(x_min - pad, x_max + pad)
    top.set_ylim(*_zoom(means, [level for level, *_ in lines], metric))
    for i, (level, text, color, *_) in enumerate(lines):
        top.annotate(
            text,
            (0.008, level),
            xycoords=("axes fraction", "data"),
            xytext=(0, 3 if i == 0 else -3),
            textcoords="offset points",
            va="bottom" if i == 0 else "top",
            fontsize=8.5,
            color=color if i == 0 else "#6E6E6E",
        )

    top.set_ylabel(ylabel)
    top.legend(
        loc="lower right" if higher else "upper right",
        title=f"sorted by {score_name}, best first"
        if higher
        else f"sorted by {score_name}, best (lowest) first",
        title_fontsize=8.5,
        fontsize=9,
        frameon=True,
        framealpha=0.92,
        edgecolor="#DDDDDD",
    )
    top.set_title(subtitle, loc="left", fontsize=9.5, color="#555555", pad=8)
    fig.suptitle(title, x=0.01, ha="left", fontsize=13, fontweight="bold")
    _tidy(top)

    if bottom is not None:
        _plot_gain(bottom, curves, ranked, colors, metric)
        _tidy(bottom)
    (bottom or top).set_xlabel("labels (initial set + queried)")

    path = Path(path)
    fig.savefig(path, dpi=150, facecolor="white")
    return path


def render_markdown(result: ExperimentResult, image_name: str) -> str:
    """The Markdown report: protocol, the figure (``image_name``, relative) and the comparison table."""
    config = result.config
    summary = summarize(result.curves, result.reference)
    summary = summary.sort_values("aulc", ascending=False, kind="stable").reset_index(drop=True)
    full = result.reference["accuracy"]
    full_mean = float(full.mean())
    budget_columns = [c for c in summary.columns if c.startswith("accuracy@")]
    target_columns = [f"labels_to_{round(t * 100)}%" for t in TARGETS]
    saved_column = target_columns[-1]
    base = summary[summary["strategy"] == BASELINE]
    base_labels = _count(base[saved_column].iloc[0]) if len(base) else None

    header = ["Strategy", "AULC (mean ± std)"]
    header += [f"acc @ {c.split('@', 1)[1]} labels" for c in budget_columns]
    header += [f"labels to {round(t * 100)}% ({t * full_mean:.3f})" for t in TARGETS]
    header += [f"labels saved vs {BASELINE} ({round(TARGETS[-1] * 100)}%)"]
    final = int(result.curves["n_labeled"].max())
    initial = int(result.curves.loc[result.curves["iteration"] == 0, "n_labeled"].iloc[0])
    rows = []
    for record in summary.to_dict("records"):
        strategy = str(record["strategy"])
        is_base = strategy == BASELINE
        cells = [f"**{strategy}** (baseline)" if is_base else strategy]
        cells.append(f"{record['aulc']:.3f} ± {record['aulc_std']:.3f}")
        cells += [_fmt(record[c]) for c in budget_columns]
        cells += [_labels(record[c]) for c in target_columns]
        saved = _saved(_count(record[saved_column]), base_labels, final, initial)
        cells.append(DASH if is_base and saved != INITIAL_REACHES else saved)
        rows.append(cells)
    table = [_row(header), _row(["---"] + ["--:"] * (len(header) - 1)), *map(_row, rows)]

    update = (
        "updated online (`partial_fit`) after each batch"
        + (f" and refit every {config.refit_every} rounds" if config.refit_every else "")
        if config.online
        else "retrained from scratch after each batch"
    )
    protocol = (
        f"Each strategy labels the same data under the same protocol. For every seed, a stratified "
        f"{config.test_size:.0%} of **{_dataset(config)}** ({len(result.classes)} classes) is held out "
        f"as the test set; the rest is the pool. A stratified {config.initial_fraction:.0%} of the pool "
        f"({initial} labels) is labeled at the start, then the strategy queries {_batch(config, result)} "
        f"per round for {config.iterations} rounds (up to {final} labels), and the "
        f"{_model(config)} is {update}. The run is repeated over {config.seeds} "
        f"seed{'s' if config.seeds != 1 else ''}. A {_model(config)} trained on the whole pool reaches "
        f"**{full_mean:.3f} ± {float(np.std(full)):.3f}** test accuracy (mean ± std over seeds); the "
        f"targets below are 95% and 99% of it. `{BASELINE}` picks labels uniformly at random, i.e. "
        f"plain continuous training, and is the baseline every strategy is compared to."
    )
    notes = (
        "AULC: area under the accuracy-vs-labels curve divided by the label range (a mean accuracy), "
        "per seed, then mean ± std over seeds; higher is better, rows are sorted by it. "
        "Accuracies and labels-to-target are read off the mean curve over seeds. "
        f"Labels saved: labels {BASELINE} needs minus labels the strategy needs to reach "
        f"{round(TARGETS[-1] * 100)}% of full-pool accuracy (share of {BASELINE}'s labels in brackets); "
        f'"> n" when only {BASELINE} misses the target within the run\'s {final} labels (a lower bound), '
        f"{DASH} when the strategy misses it."
    )
    tests = _paired_tests(result)
    parts = [
        f"# Active learning report: {_dataset(config)} · {_model(config)}",
        protocol,
        _headline(summary, base_labels, saved_column, tests, initial),
        _two_classes(result),
        f"![Learning curves of every strategy, mean over seeds]({image_name})",
        "## Comparison",
        "\n".join(table),
        notes,
        *_paired_section(tests, summary["strategy"].tolist(), result.curves["seed"].nunique()),
        *_stopping_section(result, summary["strategy"].tolist()),
    ]
    return "\n\n".join(p for p in parts if p) + "\n"


def _paired_tests(result: ExperimentResult) -> dict[tuple[str, str], PairedTest]:
    """Each strategy against margin and against random (those that ran), paired by seed."""
    names = list(dict.fromkeys(result.curves["strategy"]))
    return {
        (strategy, other): paired_test(result.curves, strategy, other)
        for other in REFERENCES
        if other in names
        for strategy in names
        if strategy != other
    }


def _paired_section(tests: dict[tuple[str, str], PairedTest], order: list[str], seeds: int) -> list[str]:
    """The table of paired tests: wins out of seeds, mean AULC gain and p-value against each reference."""
    others = [o for o in REFERENCES if any(key[1] == o for key in tests)]
    if not others:
        return []
    header = ["Strategy", *(f"vs {o}: wins, AULC gain (points), p" for o in others)]
    rows = []
    for strategy in order:
        cells = [strategy]
        for other in others:
            test = tests.get((strategy, other))
            cells.append(DASH if test is None else _test_cell(test))
        rows.append(cells)
    table = [_row(header), _row(["---"] + ["--:"] * len(others)), *map(_row, rows)]
    text = (
        f"Each strategy against {' and '.join(f'`{o}`' for o in others)}, paired by seed (the same split "
        "and initial set): the seeds it has the higher AULC in, the mean AULC difference, and the p-value "
        f"of a two-sided Wilcoxon signed-rank test; **bold** where p < {ALPHA:g}."
    )
    if seeds < 6:
        text += (
            f" With {seeds} seed{'s' if seeds != 1 else ''} the test cannot reach p < {ALPHA:g} (at 5 seeds "
            "its smallest p-value is 0.0625): run 6 seeds or more to tell a real difference from luck."
        )
    return ["## Paired tests over seeds", text, "\n".join(table)]


def _test_cell(test: PairedTest) -> str:
    cell = f"{test.wins} of {test.seeds}, {100 * test.gain:+.2f}, p = {test.p_value:.3g}"
    return f"**{cell}**" if test.significant else cell


def _two_classes(result: ExperimentResult) -> str:
    """On two classes, the uncertainty strategies that ran rank alike: say so."""
    ran = [s for s in UNCERTAINTY if s in set(result.curves["strategy"])]
    if len(result.classes) != 2 or len(ran) < 2:
        return ""
    return (
        f"With two classes, {', '.join(f'`{s}`' for s in ran)} rank samples identically (each is a "
        "decreasing function of the larger probability), so they pick the same labels: their rows differ "
        "only where floating-point ties break differently."
    )


def _stopping_section(result: ExperimentResult, order: list[str]) -> list[str]:
    """The stopping rules' section: the target, then where each rule stops each strategy's runs."""
    stops = summarize_stops(result)
    if stops.empty:
        return []
    stops = stops.set_index("strategy").loc[[s for s in order if s in set(stops["strategy"])]].reset_index()
    full = float(result.reference["accuracy"].mean())
    header = [
        "Strategy",
        "Rule",
        "seeds stopped",
        "labels at stop (min-max)",
        "accuracy at stop (of full pool)",
        f"labels to {round(TARGETS[-1] * 100)}%",
        f"labels / labels to {round(TARGETS[-1] * 100)}%",
        "target met",
    ]
    rows = []
    for record in stops.to_dict("records"):
        stopped, to_99 = int(record["stopped"]), _count(record["labels_to_99%"])
        labels = (
            f"{record['labels_at_stop']:.0f} ({record['labels_min']:.0f}-{record['labels_max']:.0f})"
            if stopped
            else "never within the run"
        )
        accuracy = (
            f"{record['accuracy_at_stop']:.3f} ({record['accuracy_at_stop'] / full:.1%})" if stopped else DASH
        )
        ratio = f"{record['labels_at_stop'] / to_99:.2f}x" if stopped and to_99 else DASH
        cells = [str(record["strategy"]), str(record["rule"]), f"{stopped} of {record['seeds']}", labels]
        rows.append([*cells, accuracy, _labels(to_99), ratio, _verdict(record)])
    table = [_row(header), _row(["---", "---"] + ["--:"] * (len(header) - 3) + ["---"]), *map(_row, rows)]
    size = len(next(iter(result.stop_predictions.values()))[0]) if result.stop_predictions else 0
    met = int(stops["target_met"].sum())
    text = (
        "Where each stopping rule would have ended each run, had it been used: the rules read no label "
        f"beyond those bought (stabilizing predictions and predicted change of F: the models' predictions "
        f"on a stop set of {size:,} unlabeled pool rows drawn once per seed; overall uncertainty: the "
        "model's mean uncertainty over "
        "the rows still unlabeled). Labels and test accuracy at the round a rule stops, mean over the seeds "
        "it stopped in; the figure marks these points. "
        f"**Target**: a rule stops no earlier than {STOP_ACCURACY:.0%} of full-pool accuracy "
        f"(≥ {STOP_ACCURACY * full:.3f}) and uses at most {STOP_LABELS:g}x the labels the strategy needs to "
        f"reach {round(TARGETS[-1] * 100)}% of it (both means over seeds; a rule that does not stop in every "
        f"seed misses it), on every dataset of a comparison. "
        f"Met here by {met} of {len(stops)} strategy and rule pairs."
    )
    return ["## Stopping rules", text, "\n".join(table)]


def _verdict(record: Mapping[Any, object]) -> str:
    """yes, or why not: not stopped in every seed, stopped too early, too late, target never reached."""
    if record["target_met"]:
        return "yes"
    why = []
    if record["stopped"] != record["seeds"]:
        missed = int(record["seeds"]) - int(record["stopped"])  # type: ignore[call-overload]
        why.append(f"no stop in {missed} seed{'s' if missed != 1 else ''}")
    if _count(record["labels_to_99%"]) is None:
        why.append(f"{round(TARGETS[-1] * 100)}% never reached")
    elif record["stopped"] and not record["labels_ok"]:
        why.append("too late")
    if record["stopped"] and not record["accuracy_ok"]:
        why.append("too early")
    return "no (" + ", ".join(why) + ")" if why else "no"


def _stop_marks(result: ExperimentResult) -> list[tuple[str, str, float, float]]:
    """``(strategy, rule, labels, accuracy)`` at each rule's mean stop, for rules that stopped."""
    stops = summarize_stops(result)
    if stops.empty:
        return []
    stopped = stops[stops["stopped"] > 0]
    return [
        (str(r["strategy"]), str(r["rule"]), float(r["labels_at_stop"]), float(r["accuracy_at_stop"]))
        for r in stopped.to_dict("records")
    ]


def render_stream_markdown(result: ExperimentResult, image_name: str) -> str:
    """The stream protocol's Markdown report: protocol, figure, and alstream's strategies side by side
    with scikit-activeml's."""
    config = result.config
    assert isinstance(config, StreamConfig)
    summary = summarize_stream(result).set_index("strategy")
    ours = summary.loc[list(config.strategies)].sort_values("accuracy", ascending=False, kind="stable")
    full = result.reference["accuracy"]
    arrivals = int(result.curves["n_seen"].max()) + config.initial
    header = [
        "Strategy",
        "labels used (share)",
        "prequential accuracy (mean ± std)",
        f"vs {BASELINE} (points)",
    ]
    if config.skactiveml:
        header += ["scikit-activeml: labels used", "scikit-activeml: prequential accuracy"]
    rows = []
    for strategy, record in ours.iterrows():
        is_base = strategy == BASELINE
        cells = [f"**{strategy}** (baseline)" if is_base else str(strategy)]
        cells += [_used(record), f"{record['accuracy']:.3f} ± {record['accuracy_std']:.3f}"]
        cells.append(DASH if is_base or pd.isna(record["gain"]) else f"{record['gain']:+.1f}")
        if config.skactiveml:
            theirs = cast(pd.Series, summary.loc[f"{PREFIX}{strategy}"])  # one row
            cells += [_used(theirs), f"{theirs['accuracy']:.3f} ± {theirs['accuracy_std']:.3f}"]
        rows.append(cells)
    table = [_row(header), _row(["---"] + ["--:"] * (len(header) - 1)), *map(_row, rows)]
    seeds = len(config.seed_list)
    protocol = (
        f"Every strategy sees the same stream of {arrivals} arrivals of **{_dataset(config)}** "
        f"({len(result.classes)} classes), in order, for each of {seeds} seed{'s' if seeds != 1 else ''}"
        f" (generated streams differ by seed). The first {config.initial} arrivals are labeled; then, "
        f"{config.update_every} arrivals at a time, the {_model(config)} predicts each arrival before its "
        f"label may be asked for (prequential, test-then-train), the strategy decides which to ask about "
        f"within a budget of {config.budget:g} of the arrivals, and the model learns those labels online "
        f"(`partial_fit`). `{BASELINE}` asks about each arrival with probability {config.budget:g}. The same "
        f"model learning every arrival's label reaches "
        f"**{float(full.mean()):.3f} ± {float(np.std(full)):.3f}** prequential accuracy."
    )
    notes = (
        "Prequential accuracy: the share of arrivals (after the initial set) the model predicted right "
        "before learning anything about them; mean ± std over seeds, rows sorted by it. Labels used include "
        "the initial set; the share is of the arrivals after it asked about. "
        f"vs {BASELINE}: mean paired difference (same seed). "
        "The uncertainty strategies share one budget manager (Žliobaitė et al., 2014), which lets through a "
        "little more than the budget (at most 1/window more per arrival)."
    )
    if config.skactiveml:
        notes += (
            " scikit-activeml's implementation of each strategy runs on the same stream with the same budget "
            "and seed (its random numbers from the same PCG64 stream); given the same probabilities it asks "
            "about the very same arrivals as alstream's except randomized variable uncertainty, whose noise "
            "it draws differently, so its columns match but for that row. Its runs are dotted in the figure."
        )
    parts = [
        f"# Stream active learning report: {_dataset(config)} · {_model(config)}",
        protocol,
        f"![Prequential accuracy against labels used, mean over seeds]({image_name})",
        "## Comparison",
        "\n".join(table),
        notes,
    ]
    return "\n\n".join(parts) + "\n"


def write_report(result: ExperimentResult, directory: Path) -> tuple[Path, Path]:
    """Write ``<name>.md`` and ``<name>.png`` into ``directory`` (created); return both paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    name = result.config.name
    png = plot_learning_curves(result, directory / f"{name}.png")
    markdown = directory / f"{name}.md"
    render = render_stream_markdown if isinstance(result.config, StreamConfig) else render_markdown
    markdown.write_text(render(result, png.name), encoding="utf-8")
    return markdown, png


def _used(record: pd.Series) -> str:
    return f"{record['labels']:.0f} ({record['share']:.1%})"


def _point_size(result: ExperimentResult) -> int:
    seen = np.sort(result.curves["n_seen"].unique())
    return int(seen[0])


def _rank_by_aulc(curves: pd.DataFrame, metric: str) -> dict[str, float]:
    """Mean AULC per strategy over seeds, best first."""
    names = dict.fromkeys(map(str, curves["strategy"]))
    scores = {strategy: float(aulc_by_seed(curves, strategy, metric).mean()) for strategy in names}
    reverse = metric not in LOWER_IS_BETTER
    return dict(sorted(scores.items(), key=lambda item: item[1], reverse=reverse))


def _colors(ranked: dict[str, float]) -> dict[str, str]:
    """A colour per strategy; scikit-activeml's run of a strategy gets the colour of alstream's."""
    names = list(dict.fromkeys(s.removeprefix(PREFIX) for s in ranked))
    others = [s for s in names if s != BASELINE]
    colors = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(others)}
    colors[BASELINE] = BASELINE_COLOR
    return {s: colors[s.removeprefix(PREFIX)] for s in ranked}


def _zoom(means: pd.DataFrame, levels: list[float], metric: str) -> tuple[float, float]:
    """Y-limits that hold every band and reference line, with a little air."""
    low = min(float((means["mean"] - means["std"]).min()), *levels)
    high = max(float((means["mean"] + means["std"]).max()), *levels)
    span = max(high - low, 0.02)
    low, high = low - 0.06 * span, high + 0.08 * span
    if metric not in LOWER_IS_BETTER:
        low, high = max(low, 0.0), min(high, 1.0 + 0.02 * span)
    return low, high


def _plot_gain(
    ax: Axes, curves: pd.DataFrame, ranked: dict[str, float], colors: dict[str, str], metric: str
) -> None:
    """Mean paired difference to the baseline (same seed, same round), in points for rates."""
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    scale = 1.0 if metric in LOWER_IS_BETTER else 100.0
    base = curves.loc[curves["strategy"] == BASELINE, ["seed", "iteration", metric]]
    ax.axhline(0, color=BASELINE_COLOR, ls=(0, (5, 2.5)), lw=1.4)
    for strategy in ranked:
        if strategy == BASELINE or strategy.startswith(PREFIX):
            continue
        runs = curves.loc[curves["strategy"] == strategy, ["seed", "iteration", "n_labeled", metric]]
        paired = runs.merge(base, on=["seed", "iteration"], suffixes=("", "_base"))
        paired["gain"] = sign * scale * (paired[metric] - paired[f"{metric}_base"])
        gain = paired.groupby("iteration").agg(n_labeled=("n_labeled", "mean"), gain=("gain", "mean"))
        ax.plot(gain["n_labeled"], gain["gain"], color=colors[strategy], lw=1.6)
    text = f"gain over {BASELINE}\n(points)" if scale == 100.0 else f"reduction vs\n{BASELINE}"
    ax.set_ylabel(text, fontsize=9)


def _tidy(ax: Axes) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color("#888888")
    ax.tick_params(colors="#444444", labelsize=9)
    ax.grid(True, color="#E6E6E6", lw=0.8)
    ax.set_axisbelow(True)


def _title(config: ExperimentConfig) -> str:
    return f"Active learning on {_dataset(config)} · {_model(config)}"


def _subtitle(config: ExperimentConfig, curves: pd.DataFrame) -> str:
    seeds = curves["seed"].nunique()
    return (
        f"{seeds} seed{'s' if seeds != 1 else ''} · batch of {_batch(config, curves)} · "
        f"{config.iterations} rounds · initial set {config.initial_fraction:.0%} of the pool · "
        f"test {config.test_size:.0%} · lines: mean over seeds, bands: ± 1 std"
    )


def _batch(config: ExperimentConfig, curves: pd.DataFrame | ExperimentResult) -> str:
    """The batch as asked: ``20 labels``, or ``5% of the pool (67 labels)``."""
    if config.batch_size >= 1:
        return f"{config.batch_size} labels"
    curves = curves.curves if isinstance(curves, ExperimentResult) else curves
    first = curves[curves["iteration"] <= 1].groupby("iteration")["n_labeled"].max()
    size = f" ({int(first.diff().iloc[-1])} labels)" if len(first) > 1 else ""
    return f"{config.batch_size:.0%} of the pool{size}"


def _dataset(config: ExperimentConfig) -> str:
    return config.dataset.replace("\\", "/").rsplit("/", 1)[-1]


def _model(config: ExperimentConfig) -> str:
    return MODEL_NAMES.get(config.model.replace("-", "_"), config.model)


def _headline(
    summary: pd.DataFrame,
    base_labels: int | None,
    column: str,
    tests: dict[tuple[str, str], PairedTest],
    initial: int,
) -> str:
    """One sentence on the best strategy against the baseline: a winner only when the paired test over
    seeds says the difference is no luck, against the baseline and against the runner-up."""
    if BASELINE not in set(summary["strategy"]) or len(summary) < 2:
        return ""
    target = column.removeprefix("labels_to_")
    if base_labels is not None and base_labels <= initial:
        return (
            f"**The initial labeled set ({initial} labels) already reaches {target} of full-pool accuracy**: "
            "no strategy can save labels toward that target here; compare them on AULC, or start from "
            "fewer labels (`--initial-fraction`)."
        )
    others = summary[summary["strategy"] != BASELINE]
    best, base = others.iloc[0], summary[summary["strategy"] == BASELINE].iloc[0]
    name, vs_base = f"`{best['strategy']}`", tests[(str(best["strategy"]), BASELINE)]
    against = f"AULC {best['aulc']:.3f} against {base['aulc']:.3f} for `{BASELINE}` ({_odds(vs_base)})"
    if not (vs_base.significant and vs_base.gain > 0):
        lead = "No strategy beats" if vs_base.gain <= 0 else "No strategy is shown to beat"
        return f"**{lead} `{BASELINE}`**: the best, {name}, has {against}."
    text = f"**Best strategy: {name}**, {against}"
    if len(others) > 1:
        runner = str(others.iloc[1]["strategy"])
        ahead = _between(tests, str(best["strategy"]), runner)
        if ahead is None or not ahead.significant:
            beaten = [str(s) for s in others["strategy"] if tests[(str(s), BASELINE)].significant]
            text = (
                f"**{', '.join(f'`{s}`' for s in beaten)} beat `{BASELINE}`**, none shown better than the "
                f"others: the best, {name}, has {against}"
            )
            if ahead is not None:
                text += f"; against `{runner}`, the next: {_odds(ahead)}"
    best_labels = _count(best[column])
    if best_labels is not None:
        text += f"; it reaches {target} of full-pool accuracy with {best_labels} labels"
        if base_labels is not None:
            text += f", against {base_labels} for `{BASELINE}`"
        else:
            text += f", which `{BASELINE}` does not reach within the run"
    return text + "."


def _between(tests: dict[tuple[str, str], PairedTest], a: str, b: str) -> PairedTest | None:
    """The test of ``a`` against ``b`` among ``tests``, turned around when only ``b``'s against ``a`` ran."""
    if (a, b) in tests:
        return tests[(a, b)]
    if (b, a) in tests:
        t = tests[(b, a)]
        return PairedTest(a, b, t.seeds, t.losses, t.wins, -t.gain, t.p_value)
    return None


def _odds(test: PairedTest) -> str:
    significance = "" if test.significant else ", not significant"
    return (
        f"{100 * test.gain:+.1f} points, higher in {test.wins} of {test.seeds} seeds, Wilcoxon p = "
        f"{test.p_value:.2g}{significance}"
    )


def _count(value: object) -> int | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return int(value)  # type: ignore[call-overload]


def _labels(value: object) -> str:
    count = _count(value)
    return NOT_REACHED if count is None else str(count)


def _saved(labels: int | None, base_labels: int | None, final: int, initial: int = 0) -> str:
    """Labels the baseline needs minus the strategy's; a lower bound if the baseline never gets there;
    none to save when the initial set reaches the target already."""
    if labels is None:
        return DASH
    if labels <= initial and (base_labels is None or base_labels <= initial):
        return INITIAL_REACHES
    if base_labels is None:
        return f"> {final - labels}"
    saved = base_labels - labels
    return f"{saved:+d} ({saved / base_labels:+.0%})" if saved else "0"


def _fmt(value: Any) -> str:
    return DASH if value is None or pd.isna(value) else f"{float(value):.3f}"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"
