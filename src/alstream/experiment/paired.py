"""Paired tests over seeds: is one strategy's AULC above another's on the same splits, or is it luck?

Each seed gives both strategies the same split and initial set, so their AULCs pair up by seed; the
Wilcoxon signed-rank test (two-sided, exact for few seeds) asks whether the differences centre on 0.
With 5 seeds its smallest p-value is 0.0625: it takes 6 seeds or more to show a difference at 5%.

>>> import pandas as pd
>>> rows = [{"strategy": s, "seed": seed, "iteration": i, "n_labeled": 10 * (i + 1),
...          "accuracy": a + seed / 100}
...         for s, a in (("margin", 0.8), ("random", 0.7)) for seed in range(6) for i in range(2)]
>>> test = paired_test(pd.DataFrame(rows), "margin", "random")
>>> test.wins, test.seeds, round(test.gain, 3), round(test.p_value, 4), test.significant
(6, 6, 0.1, 0.0312, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

from alstream.learning.curves import aulc

ALPHA = 0.05


@dataclass(frozen=True)
class PairedTest:
    """``strategy`` against ``other`` over the seeds both ran: wins, mean AULC gain and p-value."""

    strategy: str
    other: str
    seeds: int
    wins: int
    losses: int
    gain: float  # mean of strategy's AULC less other's, same seed
    p_value: float

    @property
    def significant(self) -> bool:
        return self.p_value < ALPHA


def aulc_by_seed(curves: pd.DataFrame, strategy: str, metric: str = "accuracy") -> pd.Series:
    """One AULC per seed of ``strategy``'s runs, indexed by seed."""
    runs = curves[curves["strategy"] == strategy]
    return pd.Series({seed: aulc(run.sort_values("iteration"), metric) for seed, run in runs.groupby("seed")})


def paired_test(curves: pd.DataFrame, strategy: str, other: str, metric: str = "accuracy") -> PairedTest:
    """The Wilcoxon signed-rank test of ``strategy``'s AULC against ``other``'s, paired by seed."""
    mine, theirs = aulc_by_seed(curves, strategy, metric), aulc_by_seed(curves, other, metric)
    both = mine.index.intersection(theirs.index)
    diff = (mine[both] - theirs[both]).to_numpy(dtype=float)
    p_value = 1.0 if not np.any(diff) else float(wilcoxon(diff).pvalue)
    return PairedTest(
        strategy, other, len(diff), int((diff > 0).sum()), int((diff < 0).sum()), float(diff.mean()), p_value
    )
