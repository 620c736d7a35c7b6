"""Whether more labels would still change the model: stabilizing predictions on a fixed stop set.

The engine's thread keeps a *stop set*: a seeded uniform sample of the stream (a reservoir that
keeps the arrivals with the largest seeded keys, at most ``STOP_SET_SIZE`` rows, fewer when rows
are wide), held apart from the pool, so labeling or evicting a sample does not change it. Each full
version trained on at least ``step`` more labels than the last one compared (the service's batch:
``retrain_after_labels``) predicts the stop set, and so does that last one: Cohen's kappa between
the two is one pair of :class:`alstream.learning.stopping.StabilizingPredictions`, and the model is stable
once the mean of the last ``window`` kappas reaches ``threshold`` (Bloodgood and Vijay-Shanker,
2009). Online updates are not compared: they come a few labels apart, and their noise is not what
the rule asks about. A drift starts the rule over.

A restart resumes where the rule was: with a ``path`` (the engine's is ``stopping.joblib`` in the
data folder, beside ``models/``), each comparison and each drift writes the stop set, the kappas
and the version compared last to that file atomically, and :meth:`Stability.resume` reads it back.
Arrivals up to the last one offered before the file was written are not offered again (retention
may have deleted them from the store since, and the stop set already holds those it drew).

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

import logging
from collections import deque
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from alstream.learning.stopping import STOP_SET_SIZE, OverallUncertainty, StabilizingPredictions, cohen_kappa
from alstream.learning.strategies import tie_keys
from alstream.service.model_files import dump_atomically
from alstream.service.pool import top_k
from alstream.service.trainer import ModelVersion

STOP_SET_BYTES = 64 * 2**20  # the stop set's features at most (wide rows: fewer than STOP_SET_SIZE)
MIN_STOP_SET = 100
STOP_SALT = 0x5709  # keeps the stop set's keys apart from the pool's
STATE_FILE = "stopping.joblib"  # the engine's, in the data folder (beside its model files' folder)
STATE_FORMAT = 1

log = logging.getLogger(__name__)


class Stability:
    """The stop set and the rule's reading of the versions compared so far; one writer thread."""

    def __init__(
        self,
        n_features: int,
        step: int,
        seed: int = 0,
        rule: StabilizingPredictions | None = None,
        size: int | None = None,
        path: Path | None = None,
    ) -> None:
        self.rule = rule or StabilizingPredictions()
        self.step, self.seed, self.path = step, seed, path
        self.size = size or max(MIN_STOP_SET, min(STOP_SET_SIZE, STOP_SET_BYTES // (4 * max(n_features, 1))))
        self.keys = np.empty(0, dtype=np.uint64)
        self.X = np.empty((0, n_features), dtype=np.float32)
        self.offered = -1  # the last arrival number offered
        self._clear()

    def _clear(self) -> None:
        self.kappas: deque[float] = deque(maxlen=self.rule.window)
        self.last: ModelVersion | None = None  # the version compared last
        self.since_version: int | None = None  # the first version of the current stable run
        self.uncertainty: float | None = None  # mean normalized entropy on the stop set, of ``last``

    def reset(self) -> None:
        """Start over: no version compared yet (after a drift, the model has yet to settle again)."""
        self._clear()
        self._save()

    def offer(self, seqs: np.ndarray, X: np.ndarray) -> None:
        """Arrivals (their arrival numbers, increasing, and pool rows) compete for the stop set by
        seeded key; those offered before (a restart reads the store again) are passed over."""
        seqs = np.asarray(seqs, dtype=np.int64)
        if len(seqs) and seqs[0] <= self.offered:
            fresh = seqs > self.offered
            seqs, X = seqs[fresh], np.asarray(X)[fresh]
        if not len(seqs):
            return
        self.offered = int(seqs[-1])
        keys = tie_keys(seqs, self.seed ^ STOP_SALT)
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
        self._save()

    def _save(self) -> None:
        """Write what a restart resumes from (nothing without a ``path``)."""
        if self.path is None:
            return
        state = {
            "format": STATE_FORMAT,
            "seed": self.seed,
            "size": self.size,
            "keys": self.keys,
            "X": self.X,
            "offered": self.offered,
            "kappas": list(self.kappas),
            "last": self.last,
            "since_version": self.since_version,
            "uncertainty": self.uncertainty,
        }
        dump_atomically(state, self.path)

    def resume(self, newest_version: int | None) -> bool:
        """Take up the state the ``path`` holds, if it fits this stop set and the store's versions
        (``newest_version``: the newest the store recorded; a state that compared a later one belongs
        to another store); whether it did. A state that does not fit is logged and left unread."""
        if self.path is None or not self.path.exists():
            return False
        try:
            state = joblib.load(self.path)  # a pickle: read only from the engine's own data folder
            last = state["last"]
            fits = (
                state["format"] == STATE_FORMAT
                and (state["seed"], state["size"]) == (self.seed, self.size)
                and state["X"].shape[1:] == self.X.shape[1:]
            )
            if not fits:
                raise ValueError("it was drawn with other settings (seed, size or features)")
            if last is not None and (newest_version is None or last.version > newest_version):
                raise ValueError(f"it compared version {last.version}, which the store does not have")
        except Exception as error:
            log.warning("the stopping rule starts over: %s is not resumed: %s", self.path, error)
            return False
        self.keys, self.X, self.offered = state["keys"], state["X"], int(state["offered"])
        self.kappas.extend(state["kappas"])  # the last ``window`` of them, if the window changed
        self.last, self.since_version, self.uncertainty = last, state["since_version"], state["uncertainty"]
        if not self.stable:
            self.since_version = None
        log.info(
            "the stopping rule resumes: %d kappas, version %s compared last, stable=%s",
            len(self.kappas),
            None if last is None else last.version,
            self.stable,
        )
        return True

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
