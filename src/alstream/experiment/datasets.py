"""Labeled data for experiments: scikit-learn's bundled sets, generated data or a user's file.

Nothing is downloaded: every source is on disk or made on the spot.

>>> data = load_dataset("iris")
>>> data.X.shape, data.classes.tolist()
((150, 4), [0, 1, 2])
>>> load_dataset("generated", n_samples=500, n_features=8, n_classes=3).X.shape
(500, 8)
>>> load_dataset("drift", n_samples=1000, drifts=3).name  # a stream whose classes move 3 times
'drift-1000x20-2c-3drifts'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn import datasets as sk_datasets

from alstream.errors import InvalidInput

BUNDLED: dict[str, Callable[..., Any]] = {  # scikit-learn's loaders: a Bunch each
    "digits": sk_datasets.load_digits,
    "breast_cancer": sk_datasets.load_breast_cancer,
    "wine": sk_datasets.load_wine,
    "iris": sk_datasets.load_iris,
}
GENERATED = "generated"
DRIFT = "drift"
FILE_SUFFIXES = (".csv", ".parquet", ".pq")


@dataclass(frozen=True)
class Dataset:
    """Features ``X`` (float64), labels ``y`` and the names that go with them."""

    name: str
    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]

    @property
    def classes(self) -> np.ndarray:
        return np.unique(self.y)


def dataset_names() -> list[str]:
    """The names ``load_dataset`` knows, besides file paths."""
    return [*BUNDLED, GENERATED, DRIFT]


def load_dataset(
    source: str,
    *,
    label_column: str = "label",
    n_samples: int = 10_000,
    n_features: int = 20,
    n_classes: int = 2,
    drifts: int = 1,
    seed: int = 0,
) -> Dataset:
    """Load a bundled set by name, ``"generated"`` data, a ``"drift"`` stream, or a CSV/Parquet file.

    A file needs a ``label_column``; every other column must be numeric. Sizes that cannot be
    generated and files that cannot be read raise :class:`~alstream.errors.InvalidInput`.
    """
    check_source(source)
    key = _key(source)
    if key in BUNDLED:
        bunch = BUNDLED[key]()
        return Dataset(key, bunch.data.astype(np.float64), bunch.target, tuple(bunch.feature_names))
    if key not in (GENERATED, DRIFT):
        return _from_file(Path(source), label_column)
    try:
        if key == GENERATED:
            return _generated(n_samples, n_features, n_classes, seed)
        return drifting_stream(n_samples, n_features, n_classes, drifts=drifts, seed=seed)
    except InvalidInput:
        raise
    except ValueError as error:  # scikit-learn's: e.g. more classes than the features can tell apart
        raise InvalidInput(f"{key} data: {error}") from error


def check_source(source: str) -> None:
    """Raise a clear error unless ``source`` names a known dataset or an existing data file."""
    if _key(source) in dataset_names():
        return
    path = Path(source)
    if path.suffix.lower() not in FILE_SUFFIXES:
        raise InvalidInput(
            f"unknown dataset {source!r}: use one of {', '.join(dataset_names())} "
            f"or a path to a {'/'.join(FILE_SUFFIXES)} file"
        )
    if not path.is_file():
        raise FileNotFoundError(f"no such data file: {path}")


def _key(source: str) -> str:
    return source.strip().lower().replace("-", "_")


def _generated(n_samples: int, n_features: int, n_classes: int, seed: int) -> Dataset:
    X, y = _classification(n_samples, n_features, n_classes, seed)
    names = tuple(f"x{i}" for i in range(n_features))
    return Dataset(f"generated-{n_samples}x{n_features}-{n_classes}c", X, y, names)


def drifting_stream(
    n_samples: int = 10_000, n_features: int = 20, n_classes: int = 2, *, drifts: int = 1, seed: int = 0
) -> Dataset:
    """A stream in ``drifts + 1`` equal blocks, each from its own ``make_classification`` draw (one
    cluster per class): at each drift the class centres, and the features that tell them apart,
    change at once. ``drifts=0`` is a stream that does not change.

    >>> from sklearn.linear_model import LogisticRegression
    >>> stream = drifting_stream(600, 5, 2, drifts=1, seed=1)
    >>> before = LogisticRegression().fit(stream.X[:200], stream.y[:200])
    >>> X, y = stream.X, stream.y
    >>> round(before.score(X[200:300], y[200:300]), 2), round(before.score(X[300:], y[300:]), 2)
    (0.97, 0.55)
    """
    if drifts < 0 or n_samples < 2 * (drifts + 1):
        raise InvalidInput(f"{n_samples} samples cannot make {drifts + 1} blocks of 2 or more: fewer drifts")
    sizes = np.diff(np.linspace(0, n_samples, drifts + 2).round().astype(int))
    seeds = np.random.SeedSequence(seed).generate_state(len(sizes))
    blocks = [
        sk_datasets.make_classification(  # one cluster per class: each class has one centre, that moves
            n_samples=int(size),
            n_features=n_features,
            n_informative=max(2, n_features * 2 // 5),
            n_redundant=0,
            n_classes=n_classes,
            n_clusters_per_class=1,
            flip_y=0.0,
            random_state=int(block_seed),
        )
        for size, block_seed in zip(sizes, seeds, strict=True)
    ]
    X = np.vstack([X for X, _ in blocks])
    y = np.concatenate([y for _, y in blocks])
    names = tuple(f"x{i}" for i in range(n_features))
    return Dataset(f"drift-{n_samples}x{n_features}-{n_classes}c-{drifts}drifts", X, y, names)


def _classification(
    n_samples: int, n_features: int, n_classes: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    informative = max(2, min(n_features, n_features * 3 // 5))
    return sk_datasets.make_classification(
        n_samples=n_samples,
        n_features=n_features,
        n_informative=informative,
        n_redundant=min(n_features - informative, 2),
        n_classes=n_classes,
        n_clusters_per_class=1 if n_classes * 2 > 2**informative else 2,
        random_state=seed,
    )


def _from_file(path: Path, label_column: str) -> Dataset:
    try:
        frame = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except ValueError as error:  # pandas' and pyarrow's parse errors, bytes that are not text
        raise InvalidInput(f"{path.name} cannot be read: {error}") from error
    if label_column not in frame.columns:
        raise InvalidInput(
            f"{path.name} has no label column {label_column!r} "
            f"(columns: {', '.join(map(str, frame.columns))}); pass --label-column"
        )
    frame = frame.dropna(subset=[label_column])
    features = frame.drop(columns=[label_column])
    non_numeric = [str(c) for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if non_numeric:
        raise InvalidInput(f"{path.name}: feature columns must be numeric, not {', '.join(non_numeric)}")
    X = features.to_numpy(dtype=np.float64)
    if not np.isfinite(X).all():
        raise InvalidInput(f"{path.name}: features contain missing or infinite values")
    return Dataset(path.stem, X, frame[label_column].to_numpy(), tuple(map(str, features.columns)))
