"""The shared queue (store.candidates) on SQLite and PostgreSQL: best first across shards, publishes
that replace only the unleased, caps, expiry, release, labeled samples, and leases at once."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from alstream.errors import ShardFenced
from alstream.store import LabelRow, Store
from alstream.store.candidates import MAX_LEASE, Claim
from alstream.store.tables import candidates

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ids(leased) -> list[str]:
    return [c.id for c in leased]


def test_a_lease_takes_the_best_free_candidates_across_shards(store: Store) -> None:
    queue = store.candidates
    queue.publish(0, 3, ["a", "b", "c"], [0.9, 0.5, 0.1], now=T0)
    queue.publish(1, 4, ["d", "e"], [0.7, 0.6], reason="random", now=T0)

    first = queue.lease("ann", "k1", 3, ttl_s=60, now=T0)
    assert ids(first) == ["a", "d", "e"]
    assert [(c.shard, c.score, c.version, c.reason) for c in first] == [
        (0, 0.9, 3, "uncertainty"),
        (1, 0.7, 4, "random"),
        (1, 0.6, 4, "random"),
    ]
    assert ids(queue.lease("bob", "k2", 5, ttl_s=60, now=T0)) == ["b", "c"]  # not hers, what is left
    assert queue.lease("cy", None, 5, ttl_s=60, now=T0) == []
    assert sorted(queue.held(T0)) == ["a", "b", "c", "d", "e"]
    assert sorted(queue.held(T0, shard=1)) == ["d", "e"]
    assert queue.counts(T0) == {"candidates": 5, "leased": 5}


def test_a_publish_replaces_only_the_shards_unleased_candidates(store: Store) -> None:
    queue = store.candidates
    queue.publish(0, 1, ["a", "b", "c"], [0.9, 0.8, 0.7], now=T0)
    queue.publish(1, 1, ["x"], [0.1], now=T0)
    assert ids(queue.lease("ann", "k", 1, ttl_s=60, now=T0)) == ["a"]

    queue.publish(0, 2, ["a", "d"], [0.05, 0.5], now=at(1))  # a is leased: it keeps its lease

    assert sorted(queue.held(at(1))) == ["a"]
    assert queue.counts(at(1)) == {"candidates": 3, "leased": 1}  # b, c went; a, d, and shard 1's x
    assert [(c.id, c.version) for c in queue.lease("bob", "k", 5, ttl_s=60, now=at(1))] == [
        ("d", 2),
        ("x", 1),
    ]


def test_a_cap_bounds_an_annotators_live_leases(store: Store) -> None:
    queue = store.candidates
    queue.publish(0, 1, [f"s{i}" for i in range(10)], [i / 10 for i in range(10)], now=T0)

    assert len(queue.lease("ann", "k", 3, ttl_s=60, cap=4, now=T0)) == 3
    assert ids(queue.lease("ann", "k", 3, ttl_s=60, cap=4, now=T0)) == ["s6"]  # one more: four
    assert queue.lease("ann", "k", 3, ttl_s=60, cap=4, now=T0) == []
    assert len(queue.lease("bob", "k", 3, ttl_s=60, cap=4, now=T0)) == 3  # a cap of her own
    assert queue.release("ann", ["s9"]) == 1
    assert ids(queue.lease("ann", "k", 3, ttl_s=60, cap=4, now=T0)) == ["s9"]
    assert len(queue.lease("ann", "k", 3, ttl_s=60, cap=4, now=at(60))) == 3  # hers ended: a new four


def test_what_she_labeled_leaves_her_cap(store: Store) -> None:
    queue = store.candidates
    queue.publish(0, 1, [f"s{i}" for i in range(10)], [i / 10 for i in range(10)], now=T0)
    assert ids(queue.lease("ann", "k", 4, ttl_s=60, cap=4, now=T0)) == ["s9", "s8", "s7", "s6"]
    store.add_labels([LabelRow(i, "x", "ann", False, "labels:0", n) for n, i in enumerate(["s9", "s8"])])

    assert ids(queue.lease("ann", "k", 4, ttl_s=60, cap=4, now=at(1))) == [
        "s5",
        "s4",
    ]  # two labeled: two more
    assert sorted(queue.held(at(1))) == ["s4", "s5", "s6", "s7"]  # the labeled ones' leases ended


def test_an_expired_lease_returns_its_item(store: Store) -> None:
    queue = store.candidates
    queue.publish(0, 1, ["a", "b"], [0.9, 0.1], now=T0)
    assert ids(queue.lease("ann", "k", 1, ttl_s=30, now=T0)) == ["a"]

    assert ids(queue.lease("bob", "k", 1, ttl_s=30, now=at(29))) == ["b"]
    assert sorted(queue.held(at(29))) == ["a", "b"]
    assert queue.held(at(30)) == ["b"]  # a's lease ended at 30 s
    assert ids(queue.lease("cy", "k", 5, ttl_s=30, now=at(30))) == ["a"]
    assert queue.expire(at(59)) == 1  # b's (a is cy's now, until 60 s)
    assert queue.held(at(59)) == ["a"]
    assert queue.expire(at(59)) == 0


def test_release_gives_back_only_her_leases(store: Store) -> None:
    queue = store.candidates
    queue.publish(0, 1, ["a", "b", "c"], [0.9, 0.8, 0.7], now=T0)
    queue.lease("ann", "k", 2, ttl_s=60, now=T0)
    queue.lease("bob", "k", 1, ttl_s=60, now=T0)

    assert queue.release("bob", ["a", "b", "c", "nope"]) == 1  # c only: a, b are ann's
    assert queue.release("ann", ["a"]) == 1
    assert sorted(queue.held(T0)) == ["b"]
    assert ids(queue.lease("cy", "k", 5, ttl_s=60, now=T0)) == ["a", "c"]


def test_a_labeled_sample_is_never_leased(store: Store) -> None:
    store.add_labels([LabelRow("a", "x", "ann", False, "labels:0", 1)])
    queue = store.candidates
    queue.publish(0, 1, ["a", "b", "c", "d"], [0.9, 0.8, 0.7, 0.6], now=T0)
    assert queue.counts(T0)["candidates"] == 3  # a: labeled, never published

    store.add_labels([LabelRow("b", None, "bob", True, "labels:0", 2)])  # a skip counts too
    assert ids(queue.lease("ann", "k", 1, ttl_s=60, now=T0)) == ["c"]  # b: labeled since it was published
    assert queue.end(["c", "zzz"]) == 1  # c labeled: gone for good, lease and all
    assert queue.held(T0) == []
    assert ids(queue.lease("ann", "k", 5, ttl_s=60, now=T0)) == ["d"]
    queue.publish(0, 2, ["a", "b", "e"], [1.0, 1.0, 0.0], now=at(1))
    assert ids(queue.lease("bob", "k", 5, ttl_s=60, now=at(1))) == ["e"]


def test_dropping_a_shard_removes_its_unleased_candidates(store: Store) -> None:
    queue = store.candidates
    queue.publish(0, 1, ["a", "b"], [0.9, 0.8], now=T0)
    queue.publish(1, 1, ["c"], [0.7], now=T0)
    queue.lease("ann", "k", 1, ttl_s=60, now=T0)

    assert queue.drop_shard(0, now=T0) == 1  # b; a stays, leased
    assert sorted(queue.held(T0)) == ["a"]
    assert ids(queue.lease("bob", "k", 5, ttl_s=60, now=T0)) == ["c"]
    queue.publish(2, 2, ["a", "b"], [0.5, 0.4], now=at(1))  # the partition's new owner: a is still leased
    assert ids(queue.lease("cy", "k", 5, ttl_s=60, now=at(1))) == ["b"]


def test_the_table_holds_what_the_shards_published_last_and_the_leases(store: Store) -> None:
    queue = store.candidates
    for round_ in range(30):
        now = at(round_)
        for shard in range(3):
            names = [f"r{round_}-s{shard}-{i}" for i in range(40)]
            queue.publish(shard, round_, names, [float(i) for i in range(40)], now=now)
        queue.lease(f"ann{round_ % 4}", "k", 5, ttl_s=10, cap=5, now=now)
        counts = queue.counts(now)
        assert counts["candidates"] <= 3 * 40 + counts["leased"]
        assert counts["leased"] <= 4 * 5
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT count(*) FROM candidates").scalar_one()
    assert rows <= 3 * 40 + 4 * 5  # bounded: never the 3,600 published over the rounds

    small = type(queue)(store.engine, max_per_shard=10)
    with pytest.raises(ValueError, match="max_per_shard"):
        small.publish(0, 1, [str(i) for i in range(11)], [0.0] * 11)
    with pytest.raises(ValueError, match="scores"):
        queue.publish(0, 1, ["a", "b"], [0.0])
    with pytest.raises(ValueError, match="a lease takes"):
        queue.lease("ann", "k", MAX_LEASE + 1, ttl_s=60)
    assert queue.end([f"r29-s0-{i}" for i in range(40)] * 30) == 40  # a long list, in chunks
    assert queue.release("ann0", [f"x{i}" for i in range(2500)]) == 0


def rows(store: Store) -> list[tuple]:
    """Every candidate as (id, shard, version, owner, generation)."""
    c = candidates.c
    query = candidates.select().with_only_columns(c.sample_id, c.shard, c.version, c.owner, c.generation)
    with store.engine.connect() as conn:
        return sorted(tuple(row) for row in conn.execute(query))


def test_a_stale_owners_publish_and_drop_change_nothing_once_a_newer_owner_claimed_the_shard(
    store: Store,
) -> None:
    queue = store.candidates
    old = queue.claim(0, "w1", now=T0)
    queue.publish(0, 1, ["a", "b"], [0.9, 0.8], now=T0, claim=old)
    # w1 stalls past its session timeout; the group gives partition 0 to w2, which claims it
    new = queue.claim(0, "w2", now=at(1))
    assert (old, new) == (Claim(0, "w1", 1), Claim(0, "w2", 2))
    queue.publish(0, 2, ["c", "d"], [0.7, 0.6], now=at(1), claim=new)
    kept = [("c", 0, 2, "w2", 2), ("d", 0, 2, "w2", 2)]
    assert rows(store) == kept

    # w1 wakes up: what it publishes or drops of shard 0 changes nothing, and it learns it lost it
    with pytest.raises(ShardFenced, match="shard 0: w1 holds generation 1; it is w2's, generation 2"):
        queue.publish(0, 1, ["a", "b", "e"], [0.95, 0.9, 0.85], now=at(2), claim=old)
    with pytest.raises(ShardFenced):
        queue.drop_shard(0, now=at(2), claim=old)
    with pytest.raises(ShardFenced):
        store.shard_stats.report(0, "w1", {"pool": 1}, now=at(2), claim=old)
    assert rows(store) == kept
    assert store.shard_stats.last(0) is None
    assert queue.owner(0) == new
    with pytest.raises(ValueError, match="a claim of shard 0 does not write shard 1"):
        queue.publish(1, 1, ["x"], [0.5], claim=new)
    assert ids(queue.lease("ann", "k", 5, ttl_s=60, now=at(2))) == ["c", "d"]


def test_a_handover_moves_the_shard_and_its_candidates_to_the_new_owner(store: Store) -> None:
    queue = store.candidates
    first = queue.claim(0, "w1", now=T0)
    queue.publish(0, 1, ["a", "b", "c"], [0.9, 0.8, 0.7], now=T0, claim=first)
    store.shard_stats.report(0, "w1", {"pool": 3}, now=T0, claim=first)
    assert ids(queue.lease("ann", "k", 1, ttl_s=60, now=T0)) == ["a"]

    assert queue.drop_shard(0, now=at(1), claim=first) == 2  # revoked: w1 lets go, a stays leased
    second = queue.claim(0, "w2", now=at(1))
    queue.publish(0, 2, ["a", "b", "d"], [0.5, 0.4, 0.3], now=at(1), claim=second)
    store.shard_stats.report(0, "w2", {"pool": 3}, now=at(1), claim=second)

    assert rows(store) == [("a", 0, 1, "w1", 1), ("b", 0, 2, "w2", 2), ("d", 0, 2, "w2", 2)]
    report = store.shard_stats.last(0)
    assert report is not None and report.worker == "w2"
    assert ids(queue.lease("bob", "k", 5, ttl_s=60, now=at(1))) == ["b", "d"]
    third = queue.claim(0, "w1", now=at(2))  # given back to w1 later: a claim of its own again
    assert third.generation == 3
    queue.publish(0, 3, ["e"], [0.2], now=at(2), claim=third)
    with pytest.raises(ShardFenced):
        queue.publish(0, 2, ["f"], [0.1], now=at(2), claim=second)
    assert queue.claim(1, "w2").generation == 1  # each shard counts its own
    queue.publish(1, 1, ["x"], [0.1], now=at(2))  # no claim: not fenced (one writer)
    assert ("x", 1, 1, None, None) in rows(store)


def test_a_stale_owners_retention_deletes_nothing_once_a_newer_owner_claimed_the_shard(
    store: Store,
) -> None:
    import numpy as np

    from alstream.store import SampleRow

    store.add_samples([SampleRow(f"s{i}", np.zeros(2, dtype=np.float32), shard=0) for i in range(6)])
    old = store.candidates.claim(0, "w1", now=T0)
    later = datetime.now(UTC) + timedelta(seconds=5)  # every sample is past retention
    assert store.delete_unlabeled_between(0, 2, later, shard=0, claim=old) == 2  # seqs 1 and 2
    new = store.candidates.claim(0, "w2", now=at(1))
    with pytest.raises(ShardFenced, match="w1 holds generation 1; it is w2's, generation 2"):
        store.delete_unlabeled_between(0, 10**9, later, shard=0, claim=old)
    assert len(store.get_samples([f"s{i}" for i in range(6)])) == 4  # the new owner's pool rebuilt
    assert store.delete_unlabeled_between(0, 10**9, later, shard=0, claim=new) == 4


def test_claims_at_once_each_get_a_generation_of_their_own(store: Store) -> None:
    replicas = [Store(store.engine.url) for _ in range(4)]
    try:
        claims = run_at_once(8, lambda i: replicas[i % 4].candidates.claim(0, f"w{i}"))
    finally:
        for replica in replicas:
            replica.close()
    assert sorted(c.generation for c in claims) == list(range(1, 9))
    newest = max(claims, key=lambda c: c.generation)
    assert store.candidates.owner(0) == newest


def run_at_once(workers: int, work) -> list:
    """``work(i)`` on ``workers`` threads started together; their results, or the first error."""
    start, results, errors = threading.Barrier(workers), [None] * workers, []

    def run(i: int) -> None:
        try:
            start.wait()
            results[i] = work(i)
        except BaseException as error:  # re-raised below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def test_annotators_leasing_at_once_through_two_replicas_never_share_an_item(store: Store) -> None:
    names = [f"s{shard}-{i}" for shard in range(6) for i in range(150)]
    for shard in range(6):
        mine = names[shard * 150 : (shard + 1) * 150]
        store.candidates.publish(shard, 1, mine, [(i * 37) % 150 / 150 for i in range(150)])
    replicas = [Store(store.engine.url), Store(store.engine.url)]  # each thread: a connection of its own

    def annotate(i: int) -> list[str]:
        queue, got = replicas[i % 2].candidates, []
        while leased := queue.lease(f"ann{i}", f"key{i}", 5, ttl_s=600, cap=5):
            got += ids(leased)
            queue.end(ids(leased))  # labeled
        return got

    try:
        leased = run_at_once(20, annotate)
    finally:
        for replica in replicas:
            replica.close()
    times = Counter(item for got in leased for item in got)
    assert [item for item, n in times.items() if n > 1] == []
    assert sorted(times) == sorted(names)
    assert sum(1 for got in leased if got) > 1  # they did lease side by side
    assert store.candidates.counts() == {"candidates": 0, "leased": 0}


def test_an_annotators_cap_holds_when_replicas_lease_for_her_at_once(store: Store) -> None:
    store.candidates.publish(0, 1, [f"s{i}" for i in range(100)], [i / 100 for i in range(100)])
    replicas = [Store(store.engine.url), Store(store.engine.url)]
    try:
        leased = run_at_once(10, lambda i: ids(replicas[i % 2].candidates.lease("ann", "k", 3, 600, cap=5)))
    finally:
        for replica in replicas:
            replica.close()
    assert sum(map(len, leased)) == 5
    assert store.candidates.counts()["leased"] == 5


def test_on_postgresql_a_lease_skips_the_items_another_replica_is_taking_without_waiting(
    postgres_url: str,
) -> None:
    with Store(postgres_url) as store, Store(postgres_url) as replica:
        store.create()
        store.candidates.publish(0, 1, ["a", "b", "c"], [0.9, 0.8, 0.7])
        leased: list[str] = []

        def lease() -> None:
            leased.extend(ids(replica.candidates.lease("bob", "k", 3, ttl_s=60)))

        other = threading.Thread(target=lease)
        with store.engine.connect() as taking, taking.begin():  # a lease in progress holds a and b
            taking.exec_driver_sql("SELECT sample_id FROM candidates WHERE score > 0.75 FOR UPDATE")
            other.start()
            waited = False  # the replica's lease ends, or PostgreSQL shows it waiting on our locks
            while other.is_alive() and not waited:
                other.join(timeout=0.05)
                with store.engine.connect() as watching:
                    waited = bool(
                        watching.exec_driver_sql(
                            "SELECT count(*) FROM pg_locks WHERE NOT granted AND pid <> pg_backend_pid()"
                        ).scalar()
                    )
        other.join()
        assert (waited, leased) == (False, ["c"])


def test_a_cap_bounds_a_tokens_live_leases_whatever_the_names(store: Store) -> None:
    queue = store.candidates
    queue.publish(0, 1, [f"s{i}" for i in range(10)], [i / 10 for i in range(10)], now=T0)

    assert len(queue.lease("ann", "k", 3, ttl_s=60, token_cap=4, now=T0)) == 3
    assert ids(queue.lease("bob", "k", 3, ttl_s=60, token_cap=4, now=T0)) == ["s6"]  # the token's fourth
    assert queue.lease("cy", "k", 3, ttl_s=60, token_cap=4, now=T0) == []
    assert len(queue.lease("cy", "k2", 3, ttl_s=60, token_cap=4, now=T0)) == 3  # another token
    assert len(queue.lease("cy", None, 2, ttl_s=60, token_cap=1, now=T0)) == 2  # no token: no token cap
    assert queue.release("ann", ["s9"]) == 1
    assert ids(queue.lease("dee", "k", 3, ttl_s=60, token_cap=4, now=T0)) == ["s9"]
    assert len(queue.lease("dee", "k", 3, ttl_s=60, token_cap=4, now=at(60))) == 3  # they ended: a new four


def test_a_tokens_cap_holds_when_replicas_lease_through_it_at_once(store: Store) -> None:
    store.candidates.publish(0, 1, [f"s{i}" for i in range(100)], [i / 100 for i in range(100)])
    replicas = [Store(store.engine.url), Store(store.engine.url)]
    try:
        leased = run_at_once(
            10, lambda i: ids(replicas[i % 2].candidates.lease(f"ann{i}", "k", 3, 600, cap=3, token_cap=7))
        )
    finally:
        for replica in replicas:
            replica.close()
    assert sum(map(len, leased)) == 7  # ten annotators, one token: seven at most
    assert store.candidates.counts()["leased"] == 7


def test_random_picks_are_leased_as_the_share_says_and_never_as_the_best(store: Store) -> None:
    queue = store.candidates
    best = [f"b{i}" for i in range(200)]
    picks = [f"r{i}" for i in range(200)]
    queue.publish(0, 2, best, [1.0] * 200, picks=["b0", *picks], pick_scores=[0.0] * 201, stream=2010)

    with store.engine.connect() as conn:
        rows = dict(conn.exec_driver_sql("SELECT reason, count(*) FROM candidates GROUP BY reason").all())
        weights = set(conn.exec_driver_sql("SELECT weight FROM candidates WHERE reason = 'random'").scalars())
    assert rows == {"uncertainty": 199, "random": 201}  # b0: a pick (unbiased), not a best candidate
    assert weights == {10.0}  # each pick stands for 2010 / 201 samples of the stream
    assert {c.reason for c in queue.lease("ann", "k", 50, ttl_s=60, now=T0)} == {"uncertainty"}
    assert {c.reason for c in queue.lease("ann", "k", 50, ttl_s=60, random_share=1.0, now=T0)} == {"random"}
    half = queue.lease("bob", "k", 200, ttl_s=60, random_share=0.5, now=T0)
    n_random = sum(c.reason == "random" for c in half)
    assert 60 <= n_random <= 140  # binomial(200, 0.5): 100 +- 40 is over 5 sigma
    assert all(c.id.startswith("r") or c.id == "b0" for c in half if c.reason == "random")
    rest = queue.lease("cy", "k", 300, ttl_s=60, random_share=1.0, now=T0)  # picks run out: the best fill in
    assert len(rest) == 400 - 100 - 200


def test_random_picks_come_from_the_shards_as_their_streams_weigh(store: Store) -> None:
    """Shard 0 saw 9 times the stream shard 1 saw, and published as many picks: 90% of the random
    items come from it, so an accuracy measured on them weighs every sample of the stream alike."""
    queue = store.candidates
    for shard, stream in ((0, 9_000), (1, 1_000)):
        names = [f"s{shard}-{i}" for i in range(50)]
        queue.publish(shard, 1, [], [], picks=names, pick_scores=[0.5] * 50, stream=stream)
    shards = Counter()
    for _ in range(400):
        (pick,) = queue.lease("ann", "k", 1, ttl_s=60, random_share=1.0)
        shards[pick.shard] += 1
        queue.release("ann", [pick.id])  # drawn with replacement
    assert 0.84 <= shards[0] / 400 <= 0.96, shards  # 0.9 +- 0.06: 4 sigma of binomial(400, 0.9)
