import numpy as np

from alstream.service.pool import LABELED, Pool


def _pool(n=1000, seed=0):
    pool = Pool(n_features=2, capacity=8)
    pool.add([f"s{i}" for i in range(n)], np.zeros((n, 2), dtype=np.float32))
    scores = np.random.default_rng(seed).random(n)
    pool.set_scores(scores, version=1)
    return pool, scores


def test_serves_the_highest_scores_first_before_and_after_ranking():
    for rank in (False, True):
        pool, scores = _pool()
        if rank:
            pool.rank()
        taken = pool.take(10, "ann", lease_s=60, now=0.0)
        assert [t.position for t in taken] == list(np.argsort(-scores)[:10])


def test_samples_added_after_the_ranking_compete_by_score():
    pool, _ = _pool()
    pool.rank()
    pool.add(["late"], np.zeros((1, 2), dtype=np.float32), scores=np.array([2.0]))
    assert pool.take(1, "ann", lease_s=60, now=0.0)[0].id == "late"


def test_a_lease_keeps_an_item_from_others_until_it_expires():
    pool, _ = _pool()
    pool.rank()
    mine = {t.id for t in pool.take(5, "ann", lease_s=10, now=0.0)}
    theirs = {t.id for t in pool.take(5, "bob", lease_s=10, now=1.0)}
    assert not mine & theirs
    assert {t.id for t in pool.take(5, "ann", lease_s=10, now=2.0)} == mine  # hers again
    later = {t.id for t in pool.take(5, "cid", lease_s=10, now=13.0)}  # her renewed lease ended at 12
    assert later == mine  # expired: back at the top of the queue


def test_labeled_and_skipped_samples_are_never_served():
    pool, scores = _pool()
    pool.rank()
    best = [f"s{i}" for i in np.argsort(-scores)[:20]]
    pool.mark(best, LABELED)
    served = {t.id for t in pool.take(50, "ann", lease_s=10, now=0.0)}
    assert not served & set(best)


def test_a_share_of_random_items_is_drawn_uniformly():
    pool, scores = _pool(n=10_000)
    pool.rank()
    rng = np.random.default_rng(1)
    taken = [
        t for i in range(200) for t in pool.take(10, f"a{i}", lease_s=1e9, random_share=0.3, rng=rng, now=0.0)
    ]
    random = [t for t in taken if t.reason == "random"]
    assert 0.2 < len(random) / len(taken) < 0.4
    assert 0.35 < np.mean([scores[t.position] for t in random]) < 0.65  # not biased to the top
