import numpy as np

from alstream.service.pool import Pool


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


def test_labeled_and_skipped_samples_leave_and_are_never_served():
    pool, scores = _pool()
    pool.rank()
    best = [f"s{i}" for i in np.argsort(-scores)[:20]]
    found, features = pool.remove([*best, "never-seen"])
    assert found == best and features.shape == (20, 2) and len(pool) == 980
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


def _stream(pool: Pool, scores: np.ndarray, batch: int = 1000, start: int = 0) -> None:
    """Offer ``scores`` to ``pool`` as arrivals ``start..``, in batches."""
    for i in range(0, len(scores), batch):
        ids = [f"s{start + j}" for j in range(i, min(i + batch, len(scores)))]
        pool.add(ids, np.zeros((len(ids), 2), dtype=np.float32), scores[i : i + batch],
                 seqs=np.arange(start + i, start + i + len(ids)))  # fmt: skip


def _arrival(pool: Pool, positions: np.ndarray) -> np.ndarray:
    return np.array([int(str(pool.ids[p])[1:]) for p in positions.tolist()])


def test_a_bounded_pool_keeps_the_most_informative_and_a_uniform_reservoir():
    """10^5 arrivals, a pool of 10^4: it never grows past its bound; the candidates are exactly the
    best-scored of all that competed; the reservoir is a uniform sample of the whole stream."""
    scores = np.random.default_rng(3).random(100_000)
    pool = Pool(n_features=2, max_size=10_000, reservoir_share=0.1, seed=3)
    _stream(pool, scores)
    counts = pool.counts()
    assert len(pool) == counts["pool"] == 10_000 and counts["reservoir"] == 1_000
    assert len(pool.scores) == 10_000 and len(pool.index) == 10_000  # memory: never more places
    assert counts["arrivals"] == 100_000 == counts["pool"] + counts["evicted"] + counts["rejected"]
    reservoir = set(_arrival(pool, pool.reservoir()).tolist())
    candidates = set(_arrival(pool, pool.held()).tolist()) - reservoir
    competed = np.setdiff1d(np.arange(100_000), list(reservoir))
    best = competed[np.argsort(-scores[competed])[:9_000]]
    assert candidates == set(best.tolist())
    deciles = np.bincount(np.array(sorted(reservoir)) // 10_000, minlength=10)
    assert deciles.min() > 65 and deciles.max() < 135, deciles  # 100 each expected; sd about 9.5


def test_before_any_model_the_pool_is_a_uniform_sample():
    """Cold start: every score is 0, so the seeded keys alone choose; old and new arrivals alike."""
    pool = Pool(n_features=2, max_size=2_000, reservoir_share=0.1, seed=5)
    _stream(pool, np.zeros(50_000))
    held = _arrival(pool, pool.held())
    assert len(held) == 2_000
    deciles = np.bincount(held // 5_000, minlength=10)
    assert deciles.min() > 140 and deciles.max() < 260, deciles  # 200 each expected


def test_the_random_share_estimates_the_stream_accuracy_without_bias():
    """Uncertain arrivals are often misclassified and crowd the candidates; random items come from the
    reservoir, so the accuracy measured on them matches the stream's, over many seeds."""
    estimates, stream, pool_wide = [], [], []
    for seed in range(40):
        rng = np.random.default_rng(seed)
        scores = rng.random(20_000)
        correct = rng.random(20_000) > scores  # the less sure the model, the more often it is wrong
        pool = Pool(n_features=2, max_size=2_000, reservoir_share=0.1, seed=seed)
        _stream(pool, scores)
        taken = pool.take(100, "auditor", lease_s=60, random_share=1.0, rng=rng)
        assert {t.reason for t in taken} == {"random"} and len(taken) == 100
        estimates.append(correct[[int(t.id[1:]) for t in taken]].mean())
        stream.append(correct.mean())
        pool_wide.append(correct[_arrival(pool, pool.held())].mean())
    assert abs(np.mean(estimates) - np.mean(stream)) < 0.02  # sd of the mean: 0.05 / sqrt(40) ~ 0.008
    assert np.mean(stream) - np.mean(pool_wide) > 0.2  # the pool as a whole would be far off


def test_leased_samples_are_never_evicted_nor_aged_out():
    pool = Pool(n_features=2, max_size=100, reservoir_share=0.1, seed=0)
    _stream(pool, np.linspace(0.0, 0.5, 100), batch=100)
    pool.rank()
    leased = {t.id for t in pool.take(10, "ann", lease_s=600)}
    _stream(pool, np.ones(1_000), start=100)  # everything after is more informative
    assert len(pool) == 100 and leased <= set(pool.index)
    assert pool.expire(max_age_s=0.0) == 90 and set(pool.index) == leased  # aged out, but for hers
    assert pool.counts()["aged_out"] == 90


def test_samples_leave_the_pool_when_too_old():
    pool = Pool(n_features=2, max_size=1_000)
    pool.add(["old"], np.zeros((1, 2), dtype=np.float32), now=1_000.0)
    pool.add(["new"], np.zeros((1, 2), dtype=np.float32), now=1_050.0)
    assert pool.expire(max_age_s=30.0, now=1_060.0) == 1 and list(pool.index) == ["new"]
    pool.add(["newer"], np.zeros((1, 2), dtype=np.float32), now=1_060.0)
    assert sorted(pool.index) == ["new", "newer"] and len(pool) == 2  # the place is reused


def test_the_same_stream_keeps_the_same_pool_whatever_its_batches():
    scores = np.random.default_rng(8).random(30_000)
    pools = [Pool(n_features=2, max_size=3_000, reservoir_share=0.2, seed=8) for _ in range(2)]
    _stream(pools[0], scores, batch=1000)
    _stream(pools[1], scores, batch=777)
    assert set(pools[0].index) == set(pools[1].index)
    assert set(_arrival(pools[0], pools[0].reservoir())) == set(_arrival(pools[1], pools[1].reservoir()))
