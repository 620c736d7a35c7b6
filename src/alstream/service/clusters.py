"""Cluster-margin in the service: what people lease between two model versions, spread over clusters.

With ``strategy = "cluster_margin"`` the pool is scored by margin, and the candidates a snapshot
ranks (the best-scored samples) are ordered round-robin over clusters of the pool: the first pass
takes the most uncertain candidate of each cluster, most uncertain first, the second pass the next
of each, and so on (Citovsky et al. 2021; :mod:`alstream.learning.diversity` for the pool protocol). A
cluster already served since the version whose scores order the queue (a member leased now, or
labeled and not in a model yet) waits that many passes: ten people labeling at once get ten
samples of ten clusters, not ten near-copies of the most uncertain one.

The clustering is ``MiniBatchKMeans`` (about ten rows a cluster, at most ``MAX_CLUSTERS``) on a
seeded sample of the pool (at most ``CLUSTER_SAMPLE`` rows, fewer when rows are wide), standardized
unless the rows are hashed texts; it is made on the engine's thread when a model version is
published and the pool changed by more than ``recluster`` of its size since the last one. Other rows
go to their nearest centre when they become candidates.

>>> spread_order(np.array([3, 3, 3, 7, 7, 9]), used={7: 1})  # candidates' clusters, best first
array([0, 5, 1, 3, 2, 4])
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np
from sklearn.cluster import MiniBatchKMeans
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from alstream.learning.diversity import cluster_turns
from alstream.service.pool import Pool, PoolView

CLUSTER_MARGIN = "cluster_margin"
MAX_CLUSTERS = 100  # a clustering costs rows x clusters x features on the engine's thread
CLUSTER_SAMPLE = 4_000  # pool rows clustered at most
CLUSTER_WORK = 256_000  # rows x features clustered at most (wide rows: fewer rows, MIN_SAMPLE at least)
MIN_SAMPLE = 1_000


def scored_by(strategy: str) -> str:
    """The probability strategy that scores the pool for ``strategy`` (cluster-margin: margin)."""
    return "margin" if strategy == CLUSTER_MARGIN else strategy


def spread_order(clusters: np.ndarray, used: Mapping[int, int]) -> np.ndarray:
    """The order of candidates (given best first, with their ``clusters``) that takes one of each
    cluster a pass, best first within a pass; a cluster ``used`` ``n`` times starts ``n`` passes on."""
    turns = cluster_turns(clusters)
    if used:
        turns = turns + np.array([used.get(int(c), 0) for c in clusters], dtype=np.int64)
    return np.argsort(turns, kind="stable")


class PoolClusters:
    """The pool's clustering and the cluster of each recent candidate; one writer (the engine's thread)."""

    def __init__(self, seed: int = 0, standardize: bool = True, recluster: float = 0.2) -> None:
        self.seed, self.standardize, self.recluster = seed, standardize, recluster
        self.model: Pipeline | None = None
        self.of: dict[str, int] = {}  # sample id -> cluster, for the candidates, leased and labeled
        self.fitted_on = 0  # pool rows the clustering was made from
        self.fits, self.fit_s = 0, 0.0
        self._changes_at_fit = 0
        self._size_at_fit = 0

    def refresh(self, pool: Pool) -> None:
        """Cluster the pool again if it changed by more than ``recluster`` since the last time (or was
        never clustered); a new model version calls this."""
        changes = _changes(pool)
        if self.model is not None and changes - self._changes_at_fit <= self.recluster * self._size_at_fit:
            return
        held = pool.held()
        if len(held) < 2:
            return
        rows = max(MIN_SAMPLE, CLUSTER_WORK // max(pool.n_features, 1))
        sample = np.sort(
            np.random.default_rng([self.seed, self.fits]).permutation(held)[: min(rows, CLUSTER_SAMPLE)]
        )
        n_clusters = min(MAX_CLUSTERS, max(2, len(sample) // 10))
        kmeans = MiniBatchKMeans(n_clusters=n_clusters, batch_size=1024, n_init=1, random_state=self.seed)
        started = time.perf_counter()
        self.model = make_pipeline(StandardScaler(), kmeans) if self.standardize else make_pipeline(kmeans)
        self.model.fit(pool.features[sample])
        self.fit_s = time.perf_counter() - started
        self.of.clear()
        self.fits += 1
        self.fitted_on = len(sample)
        self._changes_at_fit, self._size_at_fit = changes, len(pool)

    def spread(self, view: PoolView, pool: Pool, served: Collection[str]) -> PoolView:
        """``view`` with its ranked samples in round-robin order over clusters and their clusters
        alongside; ``served``: ids leased now or labeled since the serving version."""
        if self.model is None or not view.ranked:
            return view
        new = [i for i in view.ranked if i not in self.of]
        if new:
            found = self.model.predict(pool.features[[pool.index[i] for i in new]])
            self.of.update(zip(new, found.tolist(), strict=True))
        keep = set(view.ranked) | set(served)
        self.of = {i: c for i, c in self.of.items() if i in keep}  # bounded: the view and what is out
        used: dict[int, int] = {}
        for sample_id in served:
            cluster = self.of.get(sample_id)
            if cluster is not None:
                used[cluster] = used.get(cluster, 0) + 1
        free = np.array([i not in served for i in view.ranked], dtype=bool)  # those out are skipped anyway
        clusters = np.array([self.of[i] for i in view.ranked], dtype=np.int64)
        positions = np.flatnonzero(free)[spread_order(clusters[free], used)]
        order = np.concatenate([positions, np.flatnonzero(~free)])
        ranked = tuple(np.array(view.ranked, dtype=object)[order].tolist())
        return dataclasses.replace(
            view, ranked=ranked, ranked_scores=view.ranked_scores[order], ranked_clusters=clusters[order]
        )

    def state(self) -> dict[str, Any]:
        """What ``/stats`` shows under ``clusters``."""
        n_clusters = None if self.model is None else int(self.model[-1].n_clusters)
        return {"n_clusters": n_clusters, "fitted_on": self.fitted_on, "fits": self.fits, "fit_s": self.fit_s}


def _changes(pool: Pool) -> int:
    """Samples that entered or left the pool, ever (a count that only grows)."""
    entered = pool.arrivals - pool.rejected - pool.passed
    return entered + pool.evicted + pool.aged_out + pool.removed
