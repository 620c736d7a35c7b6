"""Cold start by typicality: TypiClust (Hacohen et al. 2022, "Active Learning on a Budget").

Before any model exists, the first labels should cover the data's dense regions, not whatever a
uniform draw lands on. The pool is clustered into ``labeled + k`` clusters (at most
``max_clusters``); each pick is the most typical unlabeled row, the one with the highest
``typicality`` (the inverse of its mean distance to its ``n_neighbors`` nearest neighbours in its
cluster), of the largest cluster that holds the fewest labels: first every uncovered cluster,
largest first. No model is needed, so it picks an initial labeled set (``typical_sample``) as well
as later batches.

>>> X = np.array([[0.0], [0.1], [0.3], [10.0], [10.1], [10.3]])
>>> typicality(X[:3], n_neighbors=2).round(2).tolist()  # 0.1 is closest to the others
[5.0, 6.67, 4.0]
>>> sorted(typical_sample(X, 2, n_neighbors=2).tolist())  # the most typical of each group
[1, 4]
"""

from __future__ import annotations

import numpy as np
from sklearn.base import ClusterMixin, clone
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.neighbors import NearestNeighbors

from alstream.learning.estimators import Classifier
from alstream.learning.pool_strategies import in_id_order
from alstream.learning.strategies import Selection, tie_keys

SMALL = 50  # up to this many clusters, KMeans; beyond, MiniBatchKMeans (as TypiClust's code does)


def typicality(X: np.ndarray, n_neighbors: int = 20) -> np.ndarray:
    """The inverse of each row's mean distance to its ``n_neighbors`` nearest other rows of ``X``
    (fewer if ``X`` has fewer; a row alone has typicality 1, duplicates infinite)."""
    X = np.asarray(X)
    if len(X) == 1:
        return np.ones(1)
    k = min(n_neighbors, len(X) - 1)
    distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X)  # itself among them, at 0
    with np.errstate(divide="ignore"):
        return k / distances.sum(axis=1)


class Typical:
    """TypiClust: the most typical row of each of the largest clusters that hold no label yet.

    ``n_neighbors``: the neighbours typicality is measured on (20 in the paper); ``max_clusters``:
    the most clusters (500 in the paper's code); ``clusterer``: a scikit-learn clusterer with an
    ``n_clusters`` parameter, cloned for each query (default: ``KMeans`` up to 50 clusters, else
    ``MiniBatchKMeans``). The model and labels are not used. ``clusters_`` holds the last clustering,
    of the rows in id order.
    """

    def __init__(
        self, n_neighbors: int = 20, max_clusters: int = 500, clusterer: ClusterMixin | None = None
    ) -> None:
        self.n_neighbors = n_neighbors
        self.max_clusters = max_clusters
        self.clusterer = clusterer

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
        """``k`` rows of ``unlabeled``, one cluster at a time, with their typicality."""
        rows, ids = in_id_order(unlabeled, ids=ids, k=k, n=len(X))
        order = np.argsort(ids, kind="stable")  # every row, in id order
        n_clusters = min(len(X) - len(rows) + k, self.max_clusters, len(X))
        self.clusters_ = self._clusterer(n_clusters, seed).fit_predict(X[order])
        cluster = np.empty(len(X), dtype=np.int64)
        cluster[order] = self.clusters_
        size = np.bincount(cluster, minlength=n_clusters)
        free_left = np.bincount(cluster[rows], minlength=n_clusters)
        covered = size - free_left  # labels in each cluster, picks included
        free = np.zeros(len(X), dtype=bool)
        free[rows] = True
        picked, scores, ranked = [], [], {}
        for _ in range(k):
            open_ = np.flatnonzero(free_left)
            best = open_[np.lexsort((open_, -size[open_], covered[open_]))[0]]
            if best not in ranked:  # the cluster's rows, most typical first (ties by seeded key)
                members = order[self.clusters_ == best]
                values = typicality(X[members], self.n_neighbors)
                by_rank = np.lexsort((tie_keys(ids[members], seed), -values))
                ranked[best] = (members[by_rank], values[by_rank])
            members, values = ranked[best]
            chosen = np.flatnonzero(free[members])[0]
            picked.append(members[chosen])
            scores.append(values[chosen])
            free[members[chosen]] = False
            free_left[best] -= 1
            covered[best] += 1
        return Selection(indices=np.array(picked, dtype=np.int64), scores=np.array(scores))

    def _clusterer(self, n_clusters: int, seed: int) -> ClusterMixin:
        if self.clusterer is not None:
            return clone(self.clusterer).set_params(n_clusters=n_clusters, random_state=seed)
        if n_clusters <= SMALL:
            return KMeans(n_clusters=n_clusters, n_init="auto", random_state=seed)
        return MiniBatchKMeans(n_clusters=n_clusters, n_init=3, batch_size=2048, random_state=seed)


def typical_sample(
    X: np.ndarray, k: int, *, seed: int = 0, ids: np.ndarray | None = None, n_neighbors: int = 20
) -> np.ndarray:
    """The rows of ``X`` TypiClust would label first, before any model: ``k`` clusters, the most
    typical row of each."""
    return Typical(n_neighbors=n_neighbors).query(X, np.arange(len(X)), k, seed=seed, ids=ids).indices
