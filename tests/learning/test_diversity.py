"""Tests for cluster-margin sampling and the round-robin over clusters."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from modAL.uncertainty import margin_sampling
from sklearn.datasets import make_blobs
from sklearn.linear_model import LogisticRegression

from alstream.learning import diversity
from alstream.learning.diversity import ClusterMargin, round_robin
from alstream.learning.strategies import margin

FAST = settings(max_examples=80, deadline=None)


# --- round_robin -----------------------------------------------------------------------------


def test_round_robin_by_hand():
    ids = np.array([10, 11, 12, 13, 14, 15])
    clusters = np.array([7, 7, 7, 3, 3, 9])
    # sizes: 9 -> 1, 3 -> 2, 7 -> 3; each pass visits the smallest first
    assert round_robin(ids, clusters).tolist() == [15, 13, 10, 14, 11, 12]
    assert round_robin(ids, clusters, smallest_first=False).tolist() == [10, 13, 15, 11, 14, 12]
    assert round_robin(ids[:0], clusters[:0]).tolist() == []
    with pytest.raises(ValueError, match="one cluster per id"):
        round_robin(ids, clusters[:-1])


def test_round_robin_ties_go_to_the_cluster_ranked_first():
    # two clusters of two: the one holding the best-ranked id leads every pass
    assert round_robin(np.array([1, 2, 3, 4]), np.array([5, 6, 6, 5])).tolist() == [1, 2, 4, 3]
    assert round_robin(np.array([1, 2, 3, 4]), np.array([6, 5, 5, 6])).tolist() == [1, 2, 4, 3]


@FAST
@given(st.lists(st.integers(0, 5), min_size=0, max_size=40), st.booleans())
def test_round_robin_is_a_permutation_in_passes(labels, smallest_first):
    clusters = np.array(labels, dtype=np.int64)
    ids = np.arange(100, 100 + len(clusters))
    out = round_robin(ids, clusters, smallest_first=smallest_first)
    assert sorted(out.tolist()) == ids.tolist()
    position = {int(i): p for p, i in enumerate(ids)}
    cluster_of = dict(zip(ids.tolist(), clusters.tolist(), strict=True))
    sizes = {c: labels.count(c) for c in labels}
    turns, seen = [], {}
    for i in out.tolist():
        c = cluster_of[i]
        turns.append(seen.get(c, 0))
        seen[c] = turns[-1] + 1
    assert turns == sorted(turns)  # every cluster's first, then every second, ...
    for c in set(labels):  # each cluster keeps the given order
        mine = [position[i] for i in out.tolist() if cluster_of[i] == c]
        assert mine == sorted(mine)
    for turn in set(turns):  # within a pass, smallest (or largest) clusters first
        order = [sizes[cluster_of[i]] for i, t in zip(out.tolist(), turns, strict=True) if t == turn]
        assert order == sorted(order, reverse=not smallest_first)


# --- ClusterMargin -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(600, centers=4, n_features=5, cluster_std=2.5, random_state=0)
    labeled = np.arange(0, 600, 12)
    model = LogisticRegression(max_iter=1000).fit(X[labeled], y[labeled])
    return X, y, np.setdiff1d(np.arange(600), labeled), model


def test_with_one_candidate_per_pick_it_picks_what_modal_margin_picks(blobs):
    X, _, unlabeled, model = blobs
    for k in (1, 7, 30):
        ours = ClusterMargin(candidates=1).query(X, unlabeled, k, model=model).indices
        theirs, _ = margin_sampling(model, X[unlabeled], n_instances=k)
        assert set(ours.tolist()) == set(unlabeled[theirs].tolist())


def test_picks_are_uncertain_candidates_spread_over_clusters(blobs):
    X, _, unlabeled, model = blobs
    k, candidates = 10, 4
    strategy = ClusterMargin(n_clusters=25, candidates=candidates)
    picked = strategy.query(X, unlabeled, k, model=model, seed=3)
    scores = margin(model.predict_proba(X[unlabeled]))
    cut = np.sort(scores)[::-1][k * candidates - 1]
    assert np.all(margin(model.predict_proba(X[picked.indices])) >= cut)  # among the 40 least sure
    np.testing.assert_allclose(picked.scores, margin(model.predict_proba(X[picked.indices])))
    top = unlabeled[np.argsort(-scores, kind="stable")[: k * candidates]]
    clusters = strategy.clusters_of(X, np.arange(len(X)), top, seed=3)
    picked_clusters = strategy.clusters_of(X, np.arange(len(X)), picked.indices, seed=3)
    # one per cluster before any cluster gets a second
    assert len(set(picked_clusters.tolist())) == min(k, len(set(clusters.tolist())))
    # the first picks come from the clusters with the fewest candidates
    counts = {c: int((clusters == c).sum()) for c in clusters.tolist()}
    first_pass = [counts[c] for c in picked_clusters[: len(set(picked_clusters.tolist()))]]
    assert first_pass == sorted(counts.values())[: len(first_pass)]


def test_a_cluster_gives_its_most_uncertain_candidate_first_or_with_shuffle_a_random_one(blobs):
    X, _, unlabeled, model = blobs
    ids = np.arange(len(X))
    scores = margin(model.predict_proba(X[unlabeled]))
    top = unlabeled[np.argsort(-scores, kind="stable")[:40]]  # the candidates, most uncertain first
    strategy = ClusterMargin(n_clusters=25, candidates=4)
    picked = strategy.query(X, unlabeled, 10, model=model, seed=3).indices
    clusters = strategy.clusters_of(X, ids, top, seed=3)
    for row, cluster in zip(picked, strategy.clusters_of(X, ids, picked, seed=3), strict=True):
        assert row == top[clusters == cluster][0]  # 10 picks from 10 clusters: each its best
    draws = set()
    for seed in range(4):
        shuffled = ClusterMargin(n_clusters=25, candidates=4, shuffle=True)
        again = shuffled.query(X, unlabeled, 10, model=model, seed=seed).indices
        clusters = shuffled.clusters_of(X, ids, top, seed=seed)
        chosen = shuffled.clusters_of(X, ids, again, seed=seed)
        assert len(set(chosen.tolist())) == 10
        draws.add(bool(np.any(again != [top[clusters == c][0] for c in chosen])))
    assert draws == {True}  # not the most uncertain of each cluster, every seed


def test_plain_margin_batches_bunch_up_and_cluster_margin_spreads_them():
    X, y = make_blobs(2000, centers=[[0, 0], [0, 0.5], [8, 8], [16, 0]], cluster_std=1.0, random_state=1)
    y = (y >= 1).astype(int)  # the boundary runs through the first two blobs
    model = LogisticRegression(max_iter=1000).fit(X[::20], y[::20])
    unlabeled = np.setdiff1d(np.arange(len(X)), np.arange(0, len(X), 20))
    strategy = ClusterMargin(n_clusters=100, candidates=10)
    picked = strategy.query(X, unlabeled, 20, model=model).indices
    theirs, _ = margin_sampling(model, X[unlabeled], n_instances=20)
    candidates = unlabeled[np.argsort(-margin(model.predict_proba(X[unlabeled])))[:200]]

    def clusters(rows):
        return len(set(strategy.clusters_of(X, np.arange(len(X)), rows, 0).tolist()))

    assert clusters(picked) == clusters(candidates) == 14  # every cluster the candidates reach
    assert clusters(unlabeled[theirs]) == 7


def test_the_pool_is_clustered_once_and_again_when_it_changed_much(blobs, monkeypatch):
    X, _, unlabeled, model = blobs
    fits = []
    real = diversity.MiniBatchKMeans.fit_predict
    monkeypatch.setattr(
        diversity.MiniBatchKMeans, "fit_predict", lambda self, X: fits.append(1) or real(self, X)
    )
    strategy = ClusterMargin(n_clusters=10, recluster=0.2)
    ids = np.arange(len(X))
    for rows in (unlabeled, unlabeled[20:], unlabeled[40:]):  # the labeled rows stay in the pool
        strategy.query(X, rows, 5, model=model, ids=ids)
    assert len(fits) == 1
    # a few new rows (10% of the pool): assigned to their nearest centre, no new clustering
    grown = np.vstack([X, X[:60] + 0.01])
    new_ids = np.arange(len(grown))
    strategy.query(grown, np.arange(len(X), len(grown)), 5, model=model, ids=new_ids)
    assert len(fits) == 1
    labels = strategy.clusters_of(grown, new_ids, np.arange(len(X), len(grown)), seed=0)
    np.testing.assert_array_equal(labels, strategy.labels_[:60])  # next to the rows they copy
    # a third of the pool replaced: clustered again
    moved = np.vstack([X[200:], X[:200] + 50.0])
    strategy.query(moved, np.arange(400), 5, model=model, ids=np.arange(200, 800))
    assert len(fits) == 2
    strategy.query(moved, np.arange(400), 5, model=model, ids=np.arange(200, 800), seed=1)
    assert len(fits) == 3  # another seed, another clustering


def test_bad_arguments_raise(blobs):
    X, _, unlabeled, model = blobs
    with pytest.raises(ValueError, match="needs a fitted model"):
        ClusterMargin().query(X, unlabeled, 3)
    with pytest.raises(ValueError, match="candidates"):
        ClusterMargin(candidates=0.5).query(X, unlabeled, 3, model=model)
    with pytest.raises(ValueError, match="pool has only"):
        ClusterMargin().query(X, unlabeled[:2], 3, model=model)
    with pytest.raises(ValueError, match="k must be at least 1"):
        ClusterMargin().query(X, unlabeled, 0, model=model)
