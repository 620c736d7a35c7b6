"""Whether more labels would still change the model: stabilizing predictions on a fixed stop set.

The engine's thread keeps a *stop set*: a seeded uniform sample of the stream (a reservoir that
keeps the arrivals with the largest seeded keys, at most ``STOP_SET_SIZE`` rows, fewer when rows
are wide), held apart from the pool, so labeling or evicting a sample does not change it. Each full
version trained on at least ``step`` more labels than the last one compared (the service's batch:
``retrain_after_labels``) predicts the stop set, and so does that last one: Cohen's kappa between
the two is one pair of :class:`alstream.learning.stopping.StabilizingPredictions`, and the model is stable
once the mean of the last ``window`` kappas reaches ``threshold`` (Bloodgood and Vijay-Shanker,
2009). Online updates are not compared: they come a few labels apart, and their noise is not what
the rule asks about. A drift starts the rule over; so does a restart (the stop set is in memory).

>>> from sklearn.linear_model import LogisticRegression
>>> from alstream.service.trainer import ModelVersion
>>> X = np.array([[0.0], [1.0], [2.0], [3.0]], dtype=np.float32)
>>> stability = Stability(n_features=1, step=1, rule=StabilizingPredictions(window=1, threshold=0.9))
>>> stability.offer(np.arange(4), X)
>>> for n in (2, 3):
...     model = LogisticRegression().fit(X[:, :1], ["a", "a", "b", "b"])
...     stability.checkpoint(ModelVersion(n, model, "full", n_labels=n, created_at=0.0))
>>> stability.stable, stability.state()["kappa"], stability.since_version
(True, 1.0, 3)
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from alstream.learning.stopping import STOP_SET_SIZE, OverallUncertainty, StabilizingPredictions, cohen_kappa
from alstream.learning.strategies import tie_keys
from alstream.service.pool import top_k
from alstream.service.trainer import ModelVersion

STOP_SET_BYTES = 64 * 2**20  # the stop set's features at most (wide rows: fewer than STOP_SET_SIZE)
MIN_STOP_SET = 100
STOP_SALT = 0x5709  # keeps the stop set's keys apart from the pool's


class Stability:
    """The stop set and the rule's reading of the versions compared so far; one writer thread."""

    def __init__(
        self,
        n_features: int,
        step: int,
        seed: int = 0,
        rule: StabilizingPredictions | None = None,
        size: int | None = None,
    ) -> None:
        self.rule = rule or StabilizingPredictions()
        self.step, self.seed = step, seed
        self.size = size or max(MIN_STOP_SET, min(STOP_SET_SIZE, STOP_SET_BYTES // (4 * max(n_features, 1))))
        self.keys = np.empty(0, dtype=np.uint64)
        self.X = np.empty((0, n_features), dtype=np.float32)
        self.reset()

    def reset(self) -> None:
        """Start over: no version compared yet (after a drift, the model has yet to settle again)."""
        self.kappas: deque[float] = deque(maxlen=self.rule.window)
        self.last: ModelVersion | None = None  # the version compared last
        self.since_version: int | None = None  # the first version of the current stable run
        self.uncertainty: float | None = None  # mean normalized entropy on the stop set, of ``last``

    def offer(self, seqs: np.ndarray, X: np.ndarray) -> None:
        """Arrivals (their arrival numbers and pool rows) compete for the stop set by seeded key."""
        keys = tie_keys(np.asarray(seqs, dtype=np.int64), self.seed ^ STOP_SALT)
        if not len(keys) or (len(self.keys) >= self.size and keys.max() <= self.keys.min()):
            return  # a long stream: most batches hold no key larger than the stop set's least
        both = np.concatenate([self.keys, keys])
        keep = np.sort(top_k(np.zeros(len(both)), both, self.size))
        old, new = keep[keep < len(self.keys)], keep[keep >= len(self.keys)] - len(self.keys)
        self.X = np.concatenate([self.X[old], np.asarray(X, dtype=np.float32)[new]])
        self.keys = np.concatenate([self.keys[old], keys[new]])

    def checkpoint(self, version: ModelVersion) -> None:
        """Compare ``version`` with the last one compared, if it is a full version ``step`` labels on."""
        last = self.last
        if version.kind != "full" or not len(self.keys):
            return
        if last is not None and version.n_labels < last.n_labels + self.step:
            return
        predicted = version.model.predict(self.X)
        if last is not None:
            self.kappas.append(cohen_kappa(last.model.predict(self.X), predicted))
        self.last = version
        self.uncertainty = OverallUncertainty().uncertainty(version.model.predict_proba(self.X))
        if not self.stable:
            self.since_version = None
        elif self.since_version is None:
            self.since_version = version.version

    @property
    def kappa(self) -> float | None:
        """The mean kappa of the last ``window`` pairs (of those so far, while fewer)."""
        return float(np.mean(self.kappas)) if self.kappas else None

    @property
    def stable(self) -> bool:
        """Whether the rule says stop: ``window`` pairs compared, their mean kappa at least ``threshold``."""
        kappa = self.kappa
        return len(self.kappas) == self.rule.window and kappa is not None and kappa >= self.rule.threshold

    def state(self) -> dict[str, Any]:
        """What ``/stats`` shows under ``stopping``."""
        last = self.last
        return {
            "rule": self.rule.label,
            "kappa": self.kappa,
            "kappas": list(self.kappas),
            "stable": self.stable,
            "since_version": self.since_version,
            "compared_version": None if last is None else last.version,
            "compared_labels": None if last is None else last.n_labels,
            "step_labels": self.step,
            "stop_set": len(self.keys),
            "uncertainty": self.uncertainty,
        }
