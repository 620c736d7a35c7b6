"""The service's read side: what HTTP handlers ask of the engine, answered from its snapshot.

A handler reads the snapshot current when it is served (one reference) and writes only the
leases and, for each random item it serves, the model's guess (a bounded channel the engine's
thread drains: the honest accuracy estimate is the engine's). The items' data and features come
from the store, so nothing the engine's thread writes is read here.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from alstream.errors import NoModelYet
from alstream.messages import InvalidBatch, ItemError
from alstream.service.featurize import Featurizer
from alstream.service.leases import Leases
from alstream.service.snapshot import Snapshot
from alstream.service.trainer import ModelVersion

GUESSES = 100_000  # random items served and not yet read by the engine: the newest are kept


class QueueItem(BaseModel):
    """A sample to label, with the model's view of it and why it was chosen."""

    model_config = ConfigDict(frozen=True)

    id: str
    score: float = Field(description="The strategy's uncertainty score (higher: less sure).")
    reason: str = Field(description="'uncertainty', 'random' (unbiased accuracy estimate) or 'cold start'.")
    strategy: str
    model_version: int = Field(description="The model version whose scores chose this item (0: none yet).")
    probabilities: dict[str, float]
    predicted: str | None
    features: list[float] | None = Field(description="The sample's features as stored (None: a text).")
    text: str | None
    meta: dict[str, Any] | None
    cluster: int | None = Field(
        None,
        description="Its cluster of the pool, when the strategy spreads the queue over them (cluster_margin)",
    )


@dataclass(frozen=True)
class ServingConfig:
    """What serving needs from the settings."""

    classes: list[str]
    strategy: str
    lease_s: float
    max_leases_per_annotator: int | None = None
    max_leases_per_token: int | None = None


class Serving:
    """Queue, release, predict and stats, from the engine's latest snapshot; thread-safe."""

    def __init__(self, config: ServingConfig, store: Any, featurizer: Featurizer, leases: Leases) -> None:
        self.config, self.store, self.featurizer, self.leases = config, store, featurizer, leases
        self.guesses: deque[tuple[str, int, str]] = deque(maxlen=GUESSES)  # (id, version, predicted)

    @property
    def snapshot(self) -> Snapshot:
        return self.leases.snapshot

    @property
    def serving(self) -> ModelVersion | None:
        """The version that serves: the one ``/queue``, ``/predict`` and ``/health`` name."""
        return self.leases.snapshot.serving

    def queue(
        self, n: int, annotator: str, fresh: bool = False, token: str | None = None, token_capped: bool = True
    ) -> list[QueueItem]:
        """Lease up to ``n`` samples to ``annotator`` through ``token``: the most uncertain, and a
        random share (``fresh``: none she already holds); within the caps per annotator and, when
        ``token_capped``, per token."""
        return self.lease(n, annotator, fresh, token, token_capped)[0]

    def lease(
        self, n: int, annotator: str, fresh: bool = False, token: str | None = None, token_capped: bool = True
    ) -> tuple[list[QueueItem], str | None]:
        """:meth:`queue`'s items, and why there are none when the queue is paused (None: it is not),
        as the snapshot they were leased from says."""
        config, snapshot = self.config, self.leases.snapshot
        cold = snapshot.serving is None
        taken, snapshot = self.leases.take(
            n,
            annotator,
            config.lease_s,
            0.0 if cold else snapshot.share(time.monotonic()),
            fresh=fresh,
            holder=token,
            max_per_annotator=config.max_leases_per_annotator,
            max_per_holder=config.max_leases_per_token if token_capped else None,
        )
        if not taken:
            return [], snapshot.paused
        items, gone = queue_items(self.store, self.featurizer, config, taken, snapshot.serving)
        if gone:  # deleted from the store since the snapshot: nothing to show
            self.leases.end(gone)
        for item in items:
            if item.reason == "random" and item.predicted is not None:
                self.guesses.append((item.id, item.model_version, item.predicted))
        return items, None

    def release(self, ids: list[str], annotator: str) -> int:
        """Give ``annotator``'s leased items back to the queue (the page does, after a new model);
        returns how many she held."""
        return self.leases.release(ids, annotator)

    def predict(self, features: np.ndarray) -> tuple[int, list[str], np.ndarray]:
        """(version, classes, probabilities) of the serving model; :class:`NoModelYet` if there is none."""
        return predict_with(self.serving, features)

    def stats(self) -> dict[str, Any]:
        """What ``/stats`` shows: the snapshot's numbers, the leases now."""
        snapshot = self.leases.snapshot
        leases = self.leases.state()
        drift = {**snapshot.stats["drift"], "random_share": snapshot.share(time.monotonic())}
        return {**snapshot.stats, "leased": leases["leases"], "leases": leases, "drift": drift}


class Leased(Protocol):
    """A leased item: an in-process lease, or a candidate of the shared queue."""

    @property
    def id(self) -> str: ...
    @property
    def score(self) -> float: ...
    @property
    def version(self) -> int: ...
    @property
    def reason(self) -> str: ...
    @property
    def cluster(self) -> int | None: ...


def queue_items(
    store: Any,
    featurizer: Featurizer,
    config: ServingConfig,
    taken: Sequence[Leased],
    version: ModelVersion | None,
) -> tuple[list[QueueItem], set[str]]:
    """The queue items of ``taken`` (their data and features from the store, one read; ``version``:
    the model whose guesses they show, None: a cold start), and the ids the store no longer has."""
    samples = store.get_samples([t.id for t in taken]) if taken else []
    return items_of(samples, featurizer, config, taken, version)


def items_of(
    samples: Sequence[dict],
    featurizer: Featurizer,
    config: ServingConfig,
    taken: Sequence[Leased],
    version: ModelVersion | None,
) -> tuple[list[QueueItem], set[str]]:
    """:func:`queue_items` of the samples read (``samples``: as ``store.get_samples`` gives them)."""
    if not taken:
        return [], set()
    ids = [t.id for t in taken]
    stored = {s["id"]: s for s in samples}
    found, features = featurizer.rows(list(stored.values()))
    gone = set(ids) - set(found)
    taken = [t for t in taken if t.id not in gone]
    row = {sample_id: i for i, sample_id in enumerate(found)}
    features = features[[row[t.id] for t in taken]] if taken else features[:0]
    cold = version is None
    if version is None:
        proba = np.full((len(taken), len(config.classes)), 1 / len(config.classes))
        classes = list(config.classes)
    else:
        proba = version.model.predict_proba(features)
        classes = [str(c) for c in version.model.classes_]
    items = []
    for t, p in zip(taken, proba, strict=True):
        sample = stored.get(t.id, {})
        items.append(
            QueueItem(
                id=t.id,
                score=t.score,
                reason="cold start" if cold else t.reason,
                strategy="random" if cold or t.reason == "random" else config.strategy,
                model_version=t.version,
                probabilities=dict(zip(classes, map(float, p), strict=True)),
                predicted=None if cold else classes[int(np.argmax(p))],
                features=sample.get("features"),
                text=sample.get("text"),
                meta=sample.get("meta"),
                cluster=t.cluster,
            )
        )
    return items, gone


def predict_with(version: ModelVersion | None, features: np.ndarray) -> tuple[int, list[str], np.ndarray]:
    """(version, classes, probabilities) of ``version``; :class:`NoModelYet` if there is none."""
    if version is None:
        raise NoModelYet("no model yet: label a few samples of every class first")
    proba = version.model.predict_proba(features)
    unscored = np.flatnonzero(~np.isfinite(proba).all(axis=1)).tolist()
    if unscored:  # a custom model may overflow: say which rows, never answer NaN
        why = "the model gives no finite probabilities for this row (far outside what it learned from)"
        raise InvalidBatch([ItemError(i, None, "features", why) for i in unscored])
    return version.version, [str(c) for c in version.model.classes_], proba
