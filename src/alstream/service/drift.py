"""Drift: has the stream changed under the model?

Two signals, each watched by river's ADWIN (an adaptive window that flags a change in a stream's
mean, with a bound on false alarms set by ``delta``):

- **accuracy**: whether the model was right on each randomly drawn sample people labeled (the
  audit stream). A concept change (the same inputs now mean other labels) shows here. People
  label slowly, so this detector looks for a change at every audit, with ``delta``.
- **scores**: the uncertainty of each arrival under the serving model. New kinds of inputs show
  here before anyone labels them. A new model version scores differently by design, so this
  detector starts afresh with each version. Arrivals are many: it looks every 32 of them, with
  the stricter ``scores_delta``. The samples already stored when an engine starts (a restart,
  a new trainer or worker rebuilding its pool) are not arrivals: the one before saw them arrive.

>>> watch = DriftWatch(delta=0.05)
>>> [watch.audit(True) for _ in range(300)][-1], watch.audit(False)
(False, False)
>>> any(watch.audit(False) for _ in range(100))  # the model is now mostly wrong
True
>>> watch.events[-1]["signal"]
'accuracy'
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import numpy as np
from river.drift import ADWIN


class DriftWatch:
    """Both detectors and the drifts found; one writer (the engine's thread)."""

    def __init__(self, delta: float = 0.05, scores_delta: float = 0.002, keep: int = 50) -> None:
        self.delta, self.scores_delta = delta, scores_delta
        self._accuracy = ADWIN(delta=delta, clock=1)
        self._scores = ADWIN(delta=scores_delta)
        self.events: deque[dict[str, Any]] = deque(maxlen=keep)  # the newest drifts
        self.detected = 0
        self.context: dict[str, Any] = {}  # what the engine adds to each event (model version, labels)

    def audit(self, correct: bool) -> bool:
        """One audited guess; True when it reveals a drift."""
        self._accuracy.update(float(correct))
        return self._found("accuracy", self._accuracy)

    def resume(self, state: dict[str, Any], audited: list[bool]) -> None:
        """Go on from another watch's ``state`` (its :meth:`state`: the drifts it found) and the
        audited guesses since, oldest first (a drift among them is not found again)."""
        self.detected = int(state.get("detected") or 0)
        self.events.clear()
        self.events.extend(state.get("events") or [])
        for correct in audited:
            self._accuracy.update(float(correct))

    def arrivals(self, scores: np.ndarray) -> bool:
        """The serving model's scores of new arrivals; True when they reveal a drift."""
        found = False
        for score in np.asarray(scores, dtype=np.float64).tolist():
            self._scores.update(score)
            found = self._found("scores", self._scores) or found
        return found

    def new_model(self) -> None:
        """A new model version serves: its scores are not comparable with the last one's."""
        self._scores = ADWIN(delta=self.scores_delta)

    def _found(self, signal: str, detector: ADWIN) -> bool:
        if not detector.drift_detected:
            return False
        self.detected += 1
        self.events.append(
            {"signal": signal, "at": time.time(), "estimate": round(detector.estimation, 4), **self.context}
        )
        return True

    def state(self) -> dict[str, Any]:
        """What ``/stats`` shows: how many drifts, the newest ones, and the current estimates."""
        return {
            "detected": self.detected,
            "events": list(self.events),
            "audit_accuracy": None if not self._accuracy.width else round(self._accuracy.estimation, 4),
            "audit_window": int(self._accuracy.width),
        }
