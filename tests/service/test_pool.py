import numpy as np
import pytest

from alstream.service import pool as pool_module
from alstream.service.leases import Leases
from alstream.service.pool import Pool
from alstream.service.snapshot import Snapshot


def _pool(n=1000, seed=0):
    pool = Pool(n_features=2, capacity=8)
    pool.add([f"s{i}" for i in range(n)], np.zeros((n, 2), dtype=np.float32))
    scores = np.random.default_rng(seed).random(n)
    pool.set_scores(scores, version=1)
    return pool, scores


def test_a_view_ranks_the_highest_scores_first_and_follows_later_arrivals():
    pool, scores = _pool()
    assert list(pool.view(10).ranked) == [f"s{i}" for i in np.argsort(-scores)[:10]]
    pool.add(["late"], np.zeros((1, 2), dtype=np.float32), scores=np.array([2.0]))
    assert pool.view(10).ranked[:2] == ("late", f"s{np.argmax(scores)}")


def test_a_view_never_changes_and_a_new_version_reorders_the_next():
    pool, scores = _pool()
    before = pool.view(5)
    pool.set_scores(1 - scores, version=2)
    after = pool.view(5)
    assert list(before.ranked) == [f"s{i}" for i in np.argsort(-scores)[:5]] and before.version == 1
    assert list(after.ranked) == [f"s{i}" for i in np.argsort(scores)[:5]] and after.version == 2


def test_labeled_and_skipped_samples_leave_and_are_never_in_a_view():
    pool, scores = _pool()
    pool.view(50)
    best = [f"s{i}" for i in np.argsort(-scores)[:20]]
    found, features = pool.remove([*best, "never-seen"])
    assert found == best and features.shape == (20, 2) and len(pool) == 980
    assert pool.drain_left() == best and pool.drain_left() == []
    assert not set(pool.view(50).ranked) & set(best)
    assert list(pool.view(50).ranked) == [f"s{i}" for i in np.argsort(-scores)[20:70]]


def test_the_reservoir_in_a_view_is_in_arrival_order_whatever_the_places():
    pool = Pool(n_features=2, max_size=100, reservoir_share=0.2, seed=1)
    _stream(pool, np.zeros(5_000), batch=333)
    view = pool.view(30)
    arrivals = [int(i[1:]) for i in view.reservoir]
    assert len(arrivals) == 20 and arrivals == sorted(arrivals)
    assert set(view.reservoir) == {pool.ids[p] for p in pool.reservoir()}
    assert set(pool.view(10).reservoir) < set(view.reservoir)  # a part of it: the largest tie keys


def _stream(pool: Pool, scores: np.ndarray, batch: int = 1000, start: int = 0) -> None:
    """Offer ``scores`` to ``pool`` as arrivals ``start..``, in batches."""
    for i in range(0, len(scores), batch):
        ids = [f"s{start + j}" for j in range(i, min(i + batch, len(scores)))]
        pool.add(
            ids,
            np.zeros((len(ids), 2), dtype=np.float32),
            scores[i : i + batch],
            seqs=np.arange(start + i, start + i + len(ids)),
        )


def _arrival(pool: Pool, positions: np.ndarray) -> np.ndarray:
    return np.array([int(str(pool.ids[p])[1:]) for p in positions.tolist()])


@pytest.mark.parametrize("low_end", [pool_module.LOW_END, 300])
def test_a_bounded_pool_keeps_the_most_informative_and_a_uniform_reservoir(monkeypatch, low_end):
    """10^5 arrivals, a pool of 10^4: it never grows past its bound; the candidates are exactly the
    best-scored of all that competed; the reservoir is a uniform sample of the whole stream. Also when
    evictions look at a weak end of 300 candidates only, found again over the pool as it runs out."""
    monkeypatch.setattr(pool_module, "LOW_END", low_end)
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
        leases = Leases(Snapshot(queue=pool.view(100)), seed=seed)
        taken, _ = leases.take(100, "auditor", lease_s=60, random_share=1.0)
        assert {t.reason for t in taken} == {"random"} and len(taken) == 100
        estimates.append(correct[[int(t.id[1:]) for t in taken]].mean())
        stream.append(correct.mean())
        pool_wide.append(correct[_arrival(pool, pool.held())].mean())
    assert abs(np.mean(estimates) - np.mean(stream)) < 0.02  # sd of the mean: 0.05 / sqrt(40) ~ 0.008
    assert np.mean(stream) - np.mean(pool_wide) > 0.2  # the pool as a whole would be far off


def test_pinned_samples_are_never_evicted_nor_aged_out():
    pool = Pool(n_features=2, max_size=100, reservoir_share=0.1, seed=0)
    _stream(pool, np.linspace(0.0, 0.5, 100), batch=100)
    leased = set(pool.view(10).ranked)
    pool.pin([*leased, "unknown"])
    _stream(pool, np.ones(1_000), start=100)  # everything after is more informative
    assert len(pool) == 100 and leased <= set(pool.index)
    assert pool.expire(max_age_s=0.0) == 90 and set(pool.index) == leased  # aged out, but for those
    assert pool.counts()["aged_out"] == 90
    pool.pin([])  # their leases ended
    assert pool.expire(max_age_s=0.0) == 10 and len(pool) == 0


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


def test_evictions_from_the_weak_end_match_a_competition_over_the_whole_pool(monkeypatch):
    """With a weak end of 50 candidates, new model versions re-scoring the pool, samples labeled and
    others pinned along the way, the pool holds exactly what comparing every candidate every time
    (a weak end larger than the pool) keeps."""
    rng = np.random.default_rng(11)
    pools = {
        50: Pool(n_features=2, max_size=2_000, reservoir_share=0.1, seed=11),
        10**9: Pool(n_features=2, max_size=2_000, reservoir_share=0.1, seed=11),
    }
    truth = rng.random(60_000)  # each arrival's score under the latest model
    for step, start in enumerate(range(0, 60_000, 1_500)):
        rescored = rng.random(60_000)
        for low_end, pool in pools.items():
            monkeypatch.setattr(pool_module, "LOW_END", low_end)
            _stream(pool, truth[start : start + 1_500], batch=500, start=start)
            held = pool.held()
            if step % 7 == 3:  # a new version: everything held is scored again
                pool.set_scores(rescored[_arrival(pool, held)], version=step, positions=held)
            if step % 5 == 2:  # some labeled, some leased: among the weakest, so that pins matter
                weakest = sorted(_arrival(pool, held), key=lambda a: (pool.scores[pool.index[f"s{a}"]], a))
                pool.remove([f"s{a}" for a in weakest[:10]])
                pool.pin([f"s{a}" for a in weakest[10:30]])
        small, whole = pools.values()
        assert set(small.index) == set(whole.index) and len(small) <= 2_000
        assert small.counts() == whole.counts()


def test_placed_after_names_the_places_filled_since_a_count_of_placements():
    """What a re-score taken on another thread misses: places filled later, a freed one refilled too."""
    pool = Pool(2, capacity=4)
    pool.add(["a", "b", "c"], np.zeros((3, 2), dtype=np.float32))
    mark = pool.placements
    assert pool.placed_after(mark).tolist() == []
    pool.remove(["b"])
    pool.add(["d", "e"], np.ones((2, 2), dtype=np.float32))  # b's place again, and the last one free
    assert sorted(pool.placed_after(mark).tolist()) == sorted(pool.index[i] for i in ("d", "e"))
    pool.add([f"x{i}" for i in range(4)], np.ones((4, 2), dtype=np.float32))  # the pool grows
    assert {pool.ids[p] for p in pool.placed_after(mark)} == {"d", "e", "x0", "x1", "x2", "x3"}
