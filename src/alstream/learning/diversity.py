"""Diverse batches: cluster-margin (Citovsky et al. 2021, "Batch Active Learning at Scale").

The pool is clustered once (``MiniBatchKMeans``; clustered again when much of it has changed). Each
query takes the ``candidates`` x ``k`` rows of smallest margin, then fills the batch round-robin over
their clusters, the clusters with fewest candidates first, the most uncertain candidate of each at a
time (``shuffle=True``: a random one, as the paper draws them): a batch of uncertain samples that are
not all alike.

``round_robin`` is the interleaving alone: given ids in the order wanted within each cluster (by
score, say) and their clusters, it returns the ids one cluster at a time.

>>> round_robin(np.array([10, 11, 12, 13, 14]), clusters=np.array([0, 0, 0, 1, 2]))
array([13, 14, 10, 11, 12])

>>> from sklearn.datasets import make_blobs
>>> from sklearn.linear_model import LogisticRegression
>>> X, y = make_blobs(300, centers=3, random_state=0)
>>> model = LogisticRegression().fit(X[:30], y[:30])
>>> picked = ClusterMargin(n_clusters=10).query(X, np.arange(30, 300), 5, model=model, seed=0)
>>> len(set(picked.indices.tolist())), bool(picked.indices.min() >= 30)
(5, True)
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.cluster import MiniBatchKMeans

from alstream.learning.estimators import Classifier
from alstream.learning.inference import query_model
from alstream.learning.pool_strategies import in_id_order, needs_model
from alstream.learning.strategies import Selection, tie_keys

MAX_CLUSTERS = 1000  # the default's cap: MiniBatchKMeans's cost grows with clusters x rows
SHUFFLE_SALT = 0x5EED  # keeps the random order within a cluster apart from the top-k tie-break


def round_robin(ids: np.ndarray, clusters: np.ndarray, *, smallest_first: bool = True) -> np.ndarray:
    """``ids`` interleaved over their ``clusters``: the first of each cluster, then the second, ...

    Within a cluster the ids keep their given order (rank them by score to lease the best of each
    cluster first). Each pass visits the clusters smallest first (``smallest_first=False``: largest
    first), a tie going to the cluster whose first id comes earlier.

    >>> round_robin(np.array([5, 6, 7, 8]), np.array([1, 1, 2, 2])).tolist()
    [5, 7, 6, 8]
    >>> round_robin(np.array([5, 6, 7]), np.array([1, 1, 2]), smallest_first=False).tolist()
    [5, 7, 6]
    """
    ids, clusters = np.asarray(ids), np.asarray(clusters)
    if ids.shape != clusters.shape or ids.ndim != 1:
        raise ValueError(f"one cluster per id: got {ids.shape} ids and {clusters.shape} clusters")
    if len(ids) == 0:
        return ids.copy()
    _, first, which, counts = np.unique(clusters, return_index=True, return_inverse=True, return_counts=True)
    visit = np.empty(len(counts), dtype=np.int64)  # the place of each cluster in a pass
    visit[np.lexsort((first, counts if smallest_first else -counts))] = np.arange(len(counts))
    return ids[np.lexsort((visit[which], cluster_turns(clusters)))]


def cluster_turns(clusters: np.ndarray) -> np.ndarray:
    """Each element's pass in a round-robin over ``clusters``: 0 for the first of its cluster, 1 for
    the second, ...

    >>> cluster_turns(np.array([4, 4, 2, 4, 2])).tolist()
    [0, 1, 0, 2, 1]
    """
    _, which, counts = np.unique(np.asarray(clusters), return_inverse=True, return_counts=True)
    turn = np.empty(len(which), dtype=np.int64)
    turn[np.argsort(which, kind="stable")] = np.arange(len(which)) - np.repeat(
        np.cumsum(counts) - counts, counts
    )
    return turn


class ClusterMargin:
    """Cluster-margin sampling: the most uncertain rows by margin, spread round-robin over clusters.

    ``n_clusters``: clusters of the pool (default: about ten rows a cluster, ``n // 10`` for a pool of
    ``n``, between 2 and ``MAX_CLUSTERS``); ``candidates``: how many times the batch the margin keeps
    for the round-robin (the paper's ``k_m / k``); ``recluster``: the share of the pool that may be
    new or gone since the clustering before it is clustered again (new rows meanwhile go to their
    nearest centre); ``shuffle``: take a cluster's candidates in random order (the paper's way), not
    most uncertain first.

    After a query, ``labels_`` holds the cluster of each id in ``ids_`` (sorted).
    """

    def __init__(
        self,
        n_clusters: int | None = None,
        candidates: float = 2.0,
        recluster: float = 0.2,
        shuffle: bool = False,
    ) -> None:
        self.n_clusters = n_clusters
        self.candidates = candidates
        self.recluster = recluster
        self.shuffle = shuffle

    def query(
        self,
        X: np.ndarray,
        unlabeled: np.ndarray,
        k: int,
        *,
        model: Classifier | None = None,
        labels: np.ndarray | None = None,
        seed: int = 0,
        ids: np.ndarray | None = None,
    ) -> Selection:
        """``k`` rows of ``unlabeled``, in round-robin order, with their margin scores."""
        model = needs_model(model, "cluster-margin")
        if self.candidates < 1:
            raise ValueError(f"candidates must be at least 1 (times the batch), got {self.candidates}")
        rows, ids = in_id_order(unlabeled, ids=ids, k=k, n=len(X))
        wanted = min(len(rows), max(k, math.ceil(self.candidates * k)))
        top = query_model(model, X[rows], wanted, "margin", seed=seed, ids=ids[rows])
        found = rows[top.indices]  # most uncertain first
        ranked = np.arange(len(found))
        if self.shuffle:
            ranked = np.argsort(tie_keys(ids[found], seed ^ SHUFFLE_SALT), kind="stable")
        order = round_robin(ranked, self.clusters_of(X, ids, found, seed)[ranked])[:k]
        return Selection(indices=found[order], scores=top.scores[order])

    def clusters_of(self, X: np.ndarray, ids: np.ndarray, rows: np.ndarray, seed: int) -> np.ndarray:
        """The cluster of each of ``rows``: the pool is clustered on the first call and when it has
        changed by more than ``recluster``; rows that came since go to their nearest centre."""
        if self._stale(ids, seed):
            order = np.argsort(ids, kind="stable")
            n_clusters = self.n_clusters or min(max(2, len(X) // 10), MAX_CLUSTERS)
            clusterer = MiniBatchKMeans(
                n_clusters=min(n_clusters, len(X)), batch_size=2048, n_init=3, random_state=seed
            )
            self.ids_, self.labels_ = ids[order], clusterer.fit_predict(X[order])
            self.clusterer_, self.seed_ = clusterer, seed
        where = np.minimum(np.searchsorted(self.ids_, ids[rows]), len(self.ids_) - 1)
        known = self.ids_[where] == ids[rows]
        found = np.where(known, self.labels_[where], -1)
        if not known.all():
            found[~known] = self.clusterer_.predict(X[rows[~known]])
        return found

    def _stale(self, ids: np.ndarray, seed: int) -> bool:
        if getattr(self, "ids_", None) is None or self.seed_ != seed:
            return True
        kept = np.isin(ids, self.ids_).sum()
        changed = (len(ids) - kept) + (len(self.ids_) - kept)
        return changed > self.recluster * len(self.ids_)
