"""The demo project: scikit-learn's digits, a few labels per class, the rest to label.

A new user sees the queue fill and the model learn at once. A stratified fifth of digits is
held out (never streamed) to draw a true learning curve beside the stream estimate.
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from alstream.messages import Sample

LABELS_PER_CLASS = 3


def digits_demo(seed: int = 0) -> tuple[list[Sample], tuple[np.ndarray, np.ndarray]]:
    """(samples to stream, a few of them labeled; held-out features and labels)."""
    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float32)
    pool, held = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y, random_state=seed)
    labeled: set[int] = set()
    for c in range(10):
        labeled.update(pool[y[pool] == c][:LABELS_PER_CLASS].tolist())
    samples = [
        Sample(
            id=f"digit-{i}",
            features=X[i],
            meta={"source": "sklearn digits", "row": int(i)},
            label=str(y[i]) if i in labeled else None,
            annotator="demo" if i in labeled else None,
        )
        for i in pool
    ]
    return samples, (X[held], y[held].astype(str))
