"""The label budget: how many labels an hour people give, as a share of the arrivals.

A selective strategy (:mod:`alstream.learning.selective`) asks about a share of the arrivals; in the service
that share is the label budget over the arrival rate, both measured over the last ``window_s``. The
budget is a number of labels an hour, or ``auto``: what the annotators actually labeled over the
window (before any label, every arrival may be asked about).

>>> budget = LabelBudget(labels_per_hour=360, window_s=600)
>>> budget.arrived(36_000, now=0.0)  # 36,000 arrivals in the first minute: 2,160,000 an hour
>>> round(budget.share(now=60.0), 6)  # 360 of 2,160,000
0.000167
"""

from __future__ import annotations

import math
from collections import deque

MIN_SHARE = 1e-6  # a selector's budget must be positive


class LabelBudget:
    """Arrivals and labels per minute over a sliding window; one writer (the engine's thread)."""

    def __init__(self, labels_per_hour: float | None = None, window_s: float = 900.0) -> None:
        self.labels_per_hour, self.window_s = labels_per_hour, window_s
        self._minutes: deque[list[float]] = deque()  # [minute, arrivals, labels], oldest first
        self._started: float | None = None

    def arrived(self, n: int, now: float) -> None:
        self._bucket(now)[1] += n

    def labeled(self, n: int, now: float) -> None:
        self._bucket(now)[2] += n

    def _bucket(self, now: float) -> list[float]:
        if self._started is None:
            self._started = now
        minute = math.floor(now / 60)
        if not self._minutes or self._minutes[-1][0] != minute:
            self._minutes.append([minute, 0.0, 0.0])
        while self._minutes and self._minutes[0][0] * 60 < now - self.window_s:
            self._minutes.popleft()
        return self._minutes[-1]

    def rates(self, now: float) -> tuple[float, float]:
        """(arrivals, labels) an hour, over the window (or since the start, if shorter)."""
        if self._started is None:
            return 0.0, 0.0
        span = max(60.0, min(self.window_s, now - self._started))
        kept = [b for b in self._minutes if b[0] * 60 >= now - self.window_s]
        arrivals, labels = sum(b[1] for b in kept), sum(b[2] for b in kept)
        return arrivals * 3600 / span, labels * 3600 / span

    def share(self, now: float) -> float:
        """The share of arrivals to ask about: the budget over the arrival rate, within (0, 1]."""
        arrivals, labels = self.rates(now)
        wanted = labels if self.labels_per_hour is None else self.labels_per_hour
        if arrivals <= 0 or (self.labels_per_hour is None and labels <= 0):
            return 1.0  # nothing measured yet: let every arrival compete
        return min(1.0, max(MIN_SHARE, wanted / arrivals))

    def state(self, now: float) -> dict[str, float | str]:
        arrivals, labels = self.rates(now)
        return {
            "labels_per_hour": "auto" if self.labels_per_hour is None else self.labels_per_hour,
            "measured_labels_per_hour": round(labels, 1),
            "arrivals_per_hour": round(arrivals, 1),
            "share": self.share(now),
        }
