"""Every sample's latest label, and where its features are for training.

A label may name a sample in the pool (the sample moves to the training set), one the pool let go
(its features come from the store), or one that has not arrived yet: that label waits, and the
newest ``max_waiting`` of those are kept in memory (the store keeps them all; one forgotten here is
found again there when its sample arrives). A skip, the latest word on a sample, takes it out of
the training set and the pool; one read before its sample keeps the sample out when it arrives
(the newest ``max_waiting`` too, the older found again in the store). Each label keeps its id in
the store, wherever its features come from (after a drift, the labels up to the drift's id weigh
less). One writer: the engine's thread.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

import numpy as np

from alstream.service.featurize import Featurizer
from alstream.service.pool import Pool
from alstream.service.training_set import TrainingSet

log = logging.getLogger(__name__)


class LabelBook:
    """The labels followed from the store, the training set they make, and the labels still waiting."""

    def __init__(self, store: Any, featurizer: Featurizer, n_features: int, max_waiting: int) -> None:
        self.store, self.featurizer, self.max_waiting = store, featurizer, max_waiting
        self.labels: dict[str, str] = {}  # latest non-skipped label per sample (arrived or waiting)
        self.label_ids: dict[str, int] = {}  # the store's id of each of those labels
        self.train_set = TrainingSet(n_features)
        self._waiting: OrderedDict[str, None] = OrderedDict()  # labeled, sample not arrived: oldest first
        self._missing: list[str] = []  # labeled, in neither the pool nor the training set: ask the store
        # skipped while in neither the pool nor the training set (not arrived, or evicted): oldest first,
        # ``max_waiting`` at most; such a sample, when it arrives, stays out of the pool
        self._skipped: OrderedDict[str, None] = OrderedDict()
        self.dropped = 0  # waiting labels and skips forgotten (the store keeps them)

    def __len__(self) -> int:
        return len(self.labels)

    def arrived(self, ids: list[str], features: np.ndarray) -> np.ndarray:
        """New samples: those labeled already go to the training set, those skipped already nowhere;
        returns which (the others are the pool's).

        A label may be read before its sample (both stored after the engine last read samples): it
        waits, or its features were found in the store and it is in the training set already; a
        skipped sample is neither trained on nor queued."""
        known = np.array(
            [i in self._waiting or i in self.train_set or i in self._skipped for i in ids], dtype=bool
        )
        for i in np.flatnonzero(known).tolist():
            sample_id = ids[i]
            if sample_id in self._skipped:  # nowhere
                del self._skipped[sample_id]
            elif sample_id in self._waiting:  # else in the training set already
                del self._waiting[sample_id]
                self.train_set.put(sample_id, features[i], self.labels[sample_id], self.label_ids[sample_id])
        return known

    def forgotten_labels(self, ids: list[str]) -> dict[str, tuple[int, str | None, str | None, bool]]:
        """For new samples, once waiting labels were forgotten: their current label events in the
        store, ``(id, label, annotator, skipped)``."""
        if not self.dropped:
            return {}
        return self.store.current_label_events([i for i in ids if i not in self.labels])

    def set(self, sample_id: str, label: str | None, label_id: int, pool: Pool) -> None:
        """A sample's latest label (None: skipped), the store's label event ``label_id``."""
        if label is None:
            self.labels.pop(sample_id, None)
            self.label_ids.pop(sample_id, None)
            trained = sample_id in self.train_set
            self.train_set.drop(sample_id)
            found, _ = pool.remove([sample_id])
            self._waiting.pop(sample_id, None)
            if not (found or trained):  # it may not have arrived yet: it must not join the pool then
                self.dropped += len(_keep_newest(self._skipped, sample_id, self.max_waiting))
            return
        self._skipped.pop(sample_id, None)
        self.labels[sample_id], self.label_ids[sample_id] = label, label_id
        if self.train_set.relabel(sample_id, label, label_id) or sample_id in self._waiting:
            return
        found, X = pool.remove([sample_id])
        if found:
            self.train_set.put(sample_id, X[0], label, label_id)
        else:  # evicted from the pool, or not arrived yet
            self._missing.append(sample_id)

    def resolve(self) -> list[str]:
        """Labeled samples the pool no longer (or never) held: their features from the store, else they
        wait. Returns the samples whose waiting labels were forgotten to keep within ``max_waiting``."""
        if not self._missing:
            return []
        missing = [i for i in dict.fromkeys(self._missing) if i in self.labels and i not in self.train_set]
        self._missing = []
        found: list[str] = []
        if missing:
            found, X = self.featurizer.of(self.store, missing)
            for row, sample_id in enumerate(found):
                self.train_set.put(sample_id, X[row], self.labels[sample_id], self.label_ids[sample_id])
        stored = set(found)
        forgotten: list[str] = []
        for sample_id in missing:
            if sample_id not in stored:
                forgotten += self._wait_for(sample_id)
        if forgotten:
            log.warning(
                "%d labels for samples that have not arrived were forgotten (the newest %d are "
                "kept; max_waiting_labels): they stay in the store",
                len(forgotten),
                self.max_waiting,
            )
        return forgotten

    def _wait_for(self, sample_id: str) -> list[str]:
        forgotten = _keep_newest(self._waiting, sample_id, self.max_waiting)
        for oldest in forgotten:
            self.labels.pop(oldest, None)
            self.label_ids.pop(oldest, None)
        self.dropped += len(forgotten)
        return forgotten

    def class_counts(self, classes: list[str]) -> dict[str, int]:
        """Labeled samples per class, of those that arrived (every class named, 0 if none)."""
        return {**dict.fromkeys(classes, 0), **self.train_set.class_counts()}

    def waiting(self) -> dict[str, int]:
        return {"held": len(self._waiting), "dropped": self.dropped}


def _keep_newest(kept: OrderedDict[str, None], sample_id: str, bound: int) -> list[str]:
    """``sample_id`` the newest of ``kept``; returns the oldest let go to keep ``bound`` at most.

    >>> kept = OrderedDict.fromkeys(["a", "b"])
    >>> _keep_newest(kept, "a", 2), _keep_newest(kept, "c", 2), list(kept)
    ([], ['b'], ['a', 'c'])
    """
    kept[sample_id] = None
    kept.move_to_end(sample_id)
    return [kept.popitem(last=False)[0] for _ in range(len(kept) - bound)]
