"""Stored samples as the model's feature matrix: features as stored, texts hashed on arrival.

A text is hashed (word unigrams and bigrams, l2-normalized) into a fixed number of float32
columns. Hashing learns nothing, so each sample is featurized once, when it arrives, the same
text always gives the same row, and the pool never needs a refit.

>>> hash_texts = HashedText(width=16)
>>> rows = hash_texts(["the parcel arrived broken", "great service, thanks"])
>>> rows.shape, rows.dtype
((2, 16), dtype('float32'))
>>> bool(np.allclose(np.linalg.norm(rows, axis=1), 1.0))
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer

from alstream.messages import ProjectSchema

Rows = tuple[np.ndarray, list[str], np.ndarray]  # (seqs int64, ids, features float32 (n, width))


class Featurizer(Protocol):
    """Reads the samples stored after a seq as rows of ``width`` features."""

    @property
    def width(self) -> int: ...

    def after(self, store: Any, seq: int, limit: int) -> Rows: ...

    def of(self, store: Any, ids: Sequence[str]) -> tuple[list[str], np.ndarray]:
        """The stored samples among ``ids`` (those found, in the order asked) and their rows."""
        ...

    def rows(self, samples: Sequence[dict]) -> tuple[list[str], np.ndarray]:
        """Of samples read with ``store.get_samples``: the ids of those it can use, and their rows."""
        ...


@dataclass(frozen=True)
class StoredFeatures:
    """Projects of features: the stored float32 vectors are the model's features."""

    width: int

    def after(self, store: Any, seq: int, limit: int) -> Rows:
        """Up to ``limit`` samples with ``seq`` above the given one, in seq order."""
        return store.samples_after(seq, limit)

    def of(self, store: Any, ids: Sequence[str]) -> tuple[list[str], np.ndarray]:
        """The stored samples among ``ids`` (those found, in the order asked) and their features."""
        return self.rows(store.get_samples(ids))

    def rows(self, samples: Sequence[dict]) -> tuple[list[str], np.ndarray]:
        """The samples with features, and those features."""
        found = [s for s in samples if s["features"] is not None]
        rows = np.array([s["features"] for s in found], dtype=np.float32).reshape(len(found), self.width)
        return [s["id"] for s in found], rows


class HashedText:
    """Projects of texts: each text hashed into ``width`` float32 columns; stateless (no fit)."""

    def __init__(self, width: int) -> None:
        self.width = width
        self._vectorizer = HashingVectorizer(
            n_features=width, ngram_range=(1, 2), alternate_sign=False, norm="l2", dtype=np.float32
        )

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Dense float32 rows, one per text."""
        if not len(texts):
            return np.empty((0, self.width), dtype=np.float32)
        return self._vectorizer.transform(texts).toarray()

    def after(self, store: Any, seq: int, limit: int) -> Rows:
        """Up to ``limit`` text samples with ``seq`` above the given one, in seq order, hashed."""
        seqs, ids, texts = store.texts_after(seq, limit)
        return seqs, ids, self(texts)

    def of(self, store: Any, ids: Sequence[str]) -> tuple[list[str], np.ndarray]:
        """The stored texts among ``ids`` (those found, in the order asked), hashed."""
        return self.rows(store.get_samples(ids))

    def rows(self, samples: Sequence[dict]) -> tuple[list[str], np.ndarray]:
        """The samples with a text, and those texts hashed."""
        found = [s for s in samples if s["text"] is not None]
        return [s["id"] for s in found], self([s["text"] for s in found])


def featurizer(project: ProjectSchema, text_features: int) -> StoredFeatures | HashedText:
    """The featurizer of ``project``'s samples; texts get ``text_features`` columns."""
    if project.data == "text":
        return HashedText(text_features)
    return StoredFeatures(project.n_features or len(project.feature_names or []))
