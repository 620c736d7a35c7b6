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


def test_an_annotator_and_a_token_lease_at_most_their_caps():
    pool, _ = _pool()
    caps = {"lease_s": 60, "now": 0.0, "max_per_annotator": 10, "max_per_holder": 25}
    assert len(pool.take(8, "ann", holder="t1", **caps)) == 8
    assert len(pool.take(8, "ann", holder="t1", fresh=True, **caps)) == 2  # she holds 10: her cap
    assert len(pool.take(100, "ann", holder="t1", **caps)) == 10  # what she holds, nothing more
    names = [f"fake-{i}" for i in range(64)]
    served = sum(len(pool.take(100, name, holder="t1", **caps)) for name in names)
    assert served == 15  # the token's cap: 25 in all, whatever names it asks in
    assert len(pool.take(100, "bob", holder="t2", **caps)) == 10  # others still get theirs
    assert pool.lease_state()["leases"] == 35


def test_leases_of_annotators_who_went_away_are_forgotten():
    pool, _ = _pool(n=20_000)
    pool.rank()
    empty = pool.lease_state()
    for i in range(10_000):
        pool.take(1, f"ann-{i}", lease_s=60, now=i / 1000, holder=f"token-{i % 100}")
    assert pool.lease_state()["annotators"] == 10_000
    renewed = {t.id for t in pool.take(5, "ann-0", lease_s=60, now=30.0, holder="token-0")}  # she stays
    pool.take(1, "late", lease_s=60, now=75.0)  # all but ann-0's renewed leases (to 90) have ended
    assert pool.lease_state() == {"leases": 6, "annotators": 2, "holders": 1, "lease_ends": 6}
    assert len(renewed) == 5
    assert {t.id for t in pool.take(5, "ann-0", lease_s=60, now=80.0)} == renewed
    pool.release(list(renewed), "ann-0")
    assert pool.lease_state()["annotators"] == 1  # "late"
    pool.take(0, "nobody", lease_s=60, now=200.0)
    assert pool.lease_state() == empty
