import threading

import numpy as np

from alstream.service.leases import Leases
from alstream.service.pool import Pool
from alstream.service.snapshot import Snapshot


def _leases(n=1000, seed=0, reservoir_share=0.1):
    """Leases served from a pool of ``n`` randomly scored samples."""
    pool = Pool(n_features=2, max_size=n, reservoir_share=reservoir_share, seed=seed)
    scores = np.random.default_rng(seed).random(n)
    pool.add([f"s{i}" for i in range(n)], np.zeros((n, 2), dtype=np.float32), scores=scores)
    pool.set_scores(pool.scores.copy(), version=1)  # as a model version scores them
    return Leases(Snapshot(queue=pool.view(n)), seed=seed), pool, scores


def _ids(taken):
    return [t.id for t in taken[0]]


def test_serves_the_highest_scores_first():
    leases, _, scores = _leases()
    assert _ids(leases.take(10, "ann", lease_s=60, now=0.0)) == [f"s{i}" for i in np.argsort(-scores)[:10]]


def test_a_lease_keeps_an_item_from_others_until_it_expires():
    leases, _, _ = _leases()
    mine = set(_ids(leases.take(5, "ann", lease_s=10, now=0.0)))
    theirs = set(_ids(leases.take(5, "bob", lease_s=10, now=1.0)))
    assert not mine & theirs
    assert set(_ids(leases.take(5, "ann", lease_s=10, now=2.0))) == mine  # hers again
    later = set(_ids(leases.take(5, "cid", lease_s=10, now=13.0)))  # her renewed lease ended at 12
    assert later == mine  # expired: back at the top of the queue


def test_samples_that_left_the_pool_are_leased_no_more_from_the_next_snapshot():
    leases, pool, _ = _leases()
    mine = _ids(leases.take(5, "ann", lease_s=60, now=0.0))
    pool.remove(mine[:2])  # labeled
    leases.publish(Snapshot(queue=pool.view(1000)), pool.drain_left())
    again = _ids(leases.take(5, "ann", lease_s=60, now=1.0))
    assert set(mine[2:]) <= set(again) and not set(mine[:2]) & set(again)
    assert leases.state()["leases"] == 5
    assert not set(mine[:2]) & set(_ids(leases.take(100, "bob", lease_s=60, now=2.0)))


def test_a_share_of_random_items_is_drawn_uniformly_from_the_reservoir():
    leases, pool, scores = _leases(n=10_000)
    reservoir = set(leases.snapshot.queue.reservoir)
    assert len(reservoir) == 1_000 == len(pool.reservoir())
    taken = [
        t for i in range(200) for t in leases.take(10, f"a{i}", lease_s=1e9, random_share=0.3, now=0.0)[0]
    ]
    random = [t for t in taken if t.reason == "random"]
    assert 0.2 < len(random) / len(taken) < 0.4
    assert {t.id for t in random} <= reservoir
    assert 0.35 < np.mean([scores[int(t.id[1:])] for t in random]) < 0.65  # not biased to the top


def test_an_annotator_and_a_token_lease_at_most_their_caps():
    leases, _, _ = _leases()
    caps = {"lease_s": 60, "now": 0.0, "max_per_annotator": 10, "max_per_holder": 25}
    assert len(leases.take(8, "ann", holder="t1", **caps)[0]) == 8
    assert len(leases.take(8, "ann", holder="t1", fresh=True, **caps)[0]) == 2  # she holds 10: her cap
    assert len(leases.take(100, "ann", holder="t1", **caps)[0]) == 10  # what she holds, nothing more
    names = [f"fake-{i}" for i in range(64)]
    served = sum(len(leases.take(100, name, holder="t1", **caps)[0]) for name in names)
    assert served == 15  # the token's cap: 25 in all, whatever names it asks in
    assert len(leases.take(100, "bob", holder="t2", **caps)[0]) == 10  # others still get theirs
    assert leases.state()["leases"] == 35 and len(leases.held(now=1.0)) == 35


def test_leases_of_annotators_who_went_away_are_forgotten():
    leases, _, _ = _leases(n=20_000)
    empty = leases.state()
    for i in range(10_000):
        leases.take(1, f"ann-{i}", lease_s=60, now=i / 1000, holder=f"token-{i % 100}")
    assert leases.state()["annotators"] == 10_000
    renewed = set(_ids(leases.take(5, "ann-0", lease_s=60, now=30.0, holder="token-0")))  # she stays
    leases.take(1, "late", lease_s=60, now=75.0)  # all but ann-0's renewed leases (to 90) have ended
    assert leases.state() == {"leases": 6, "annotators": 2, "holders": 1, "lease_ends": 6}
    assert len(renewed) == 5
    assert set(_ids(leases.take(5, "ann-0", lease_s=60, now=80.0))) == renewed
    assert leases.release(list(renewed), "ann-0") == 5 and leases.release(list(renewed), "ann-0") == 0
    leases.take(0, "nobody", lease_s=60, now=200.0)
    assert leases.state() == empty


def test_no_sample_is_leased_twice_when_many_threads_take_at_once():
    leases, _, _ = _leases(n=5_000)
    got: list[list[str]] = []

    def annotator(i: int) -> None:
        mine = []
        for _ in range(20):
            mine += _ids(leases.take(10, f"a{i}", lease_s=600, random_share=0.2, fresh=True))
        got.append(mine)

    threads = [threading.Thread(target=annotator, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    served = [i for mine in got for i in mine]
    assert len(served) == 8 * 20 * 10 and len(set(served)) == len(served)
