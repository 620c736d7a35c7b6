"""The training set: every labeled sample's features, latest label and that label's id in the
store. Samples never leave it (a skip, the latest word on a sample, takes it out); it grows with
people's work, not the stream.

>>> train = TrainingSet(n_features=2)
>>> train.put("a", np.array([0.0, 1.0], dtype=np.float32), "cat", label_id=1)
>>> train.put("b", np.array([1.0, 0.0], dtype=np.float32), "dog", label_id=2)
>>> train.put("a", np.array([0.0, 1.0], dtype=np.float32), "dog", label_id=3)  # a later label wins
>>> X, y = train.data(); y.tolist(), train.class_counts(), train.labeled_after(2).tolist()
(['dog', 'dog'], {'dog': 2}, [True, False])
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


class TrainingSet:
    """Rows by sample id; grows by doubling; one writer (the engine's thread)."""

    def __init__(self, n_features: int, capacity: int = 256) -> None:
        self.features = np.zeros((capacity, n_features), dtype=np.float32)
        self.labels: list[str] = []
        self.ids: list[str] = []
        self.row: dict[str, int] = {}
        self.label_ids = np.zeros(capacity, dtype=np.int64)  # the store's id of each row's label
        self._counts: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, sample_id: object) -> bool:
        return sample_id in self.row

    def put(self, sample_id: str, features: np.ndarray, label: str, label_id: int) -> None:
        """Add a labeled sample, or give one already here its new label (``label_id``: its id in the
        store)."""
        row = self.row.get(sample_id)
        if row is None:
            row = len(self.ids)
            if row == len(self.features):
                grown = np.zeros((2 * len(self.features), self.features.shape[1]), dtype=np.float32)
                grown[:row] = self.features
                self.features = grown
                self.label_ids = np.concatenate([self.label_ids, np.zeros(row, dtype=np.int64)])
            self.features[row] = features
            self.ids.append(sample_id)
            self.labels.append(label)
            self.row[sample_id] = row
        else:
            self._count(self.labels[row], -1)
            self.labels[row] = label
        self._count(label, +1)
        self.label_ids[row] = label_id

    def relabel(self, sample_id: str, label: str, label_id: int) -> bool:
        """Give a sample already here its new label; False when it is not here."""
        if sample_id not in self.row:
            return False
        self.put(sample_id, self.features[self.row[sample_id]], label, label_id)
        return True

    def drop(self, sample_id: str) -> None:
        """Take a sample out (it was skipped); the last row moves into its place."""
        row = self.row.pop(sample_id, None)
        if row is None:
            return
        self._count(self.labels[row], -1)
        last = len(self.ids) - 1
        if row != last:
            self.features[row] = self.features[last]
            self.label_ids[row] = self.label_ids[last]
            self.ids[row], self.labels[row] = self.ids[last], self.labels[last]
            self.row[self.ids[row]] = row
        self.ids.pop()
        self.labels.pop()

    def data(self, ids: Iterable[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Features and labels of every sample (or of those ``ids`` that are here), as a copy."""
        rows = self._rows(ids)
        y = np.array([self.labels[r] for r in rows.tolist()], dtype=object).astype(str)
        return self.features[rows], y

    def labeled_after(self, label_id: int) -> np.ndarray:
        """For each row of :meth:`data` (all samples): is its label's store id above ``label_id``
        (whenever its features came)."""
        return self.label_ids[: len(self.ids)] > label_id

    def _rows(self, ids: Iterable[str] | None) -> np.ndarray:
        if ids is None:
            return np.arange(len(self.ids))
        return np.array([self.row[i] for i in ids if i in self.row], dtype=np.int64)

    def class_counts(self) -> dict[str, int]:
        """Samples per label (labels no sample has any more are left out)."""
        return {label: n for label, n in self._counts.items() if n}

    def _count(self, label: str, delta: int) -> None:
        self._counts[label] = self._counts.get(label, 0) + delta
