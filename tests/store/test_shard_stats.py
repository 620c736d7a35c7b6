"""What the shards report (store.shard_stats) on SQLite and PostgreSQL: one row per shard, replaced at
each report; and a replica's merge of them (service.shard_totals): sums, versions, stale shards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alstream.service.shard_totals import deleted_before, merge, shard_report
from alstream.store import Store

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def pool_stats(pool: int, arrivals: int, version: int | None, deleted: int) -> dict:
    """An engine's /stats numbers, as a shard's engine publishes them."""
    return {
        "pool": pool,
        "max_pool": 1_000,
        "reservoir": pool // 10,
        "arrivals": arrivals,
        "evicted": arrivals - pool,
        "rejected": 0,
        "aged_out": 0,
        "removed": 0,
        "passed": 0,
        "model_version": version,
        "learning_curve": [{"version": 1}] * 100,  # not reported: a worker trains nothing
        "retention": {
            "deleted": deleted,
            "waiting_to_leave_pool": 1,
            "left_pool": 3,
            "overdue": 0,
            "not_looked_at": 2,
            "behind": False,
        },
        "drift": {"detected": 1, "events": [{"at": 1}, {"at": 2}], "audit_accuracy": None},
        "stopping": {"stable": False, "kappa": None, "since_version": None, "kappas": [0.1] * 50},
    }


def test_each_shard_keeps_its_last_report_and_a_replica_sums_them(store: Store) -> None:
    reports = store.shard_stats
    reports.report(0, "w0", shard_report(pool_stats(100, 900, 2, 50)), now=T0)
    reports.report(1, "w1", shard_report(pool_stats(300, 1_100, 1, 7)), now=T0)
    reports.report(0, "w0", shard_report(pool_stats(120, 1_000, 2, 60)), now=T0 + timedelta(seconds=5))

    got = reports.reports()
    assert [(r.shard, r.worker, r.reported_at) for r in got] == [
        (0, "w0", T0 + timedelta(seconds=5)),
        (1, "w1", T0),
    ]
    assert got[0].stats["pool"] == 120 and "learning_curve" not in got[0].stats
    merged = merge(got, now=T0 + timedelta(seconds=12))
    totals = merged["totals"]
    assert (totals["pool"], totals["arrivals"], totals["reservoir"], totals["evicted"]) == (
        420,
        2_100,
        42,
        1_680,
    )
    assert totals["max_pool"] == 2_000 and totals["shards"] == 2
    assert totals["model_versions"] == [1, 2]
    assert totals["retention"] == {
        "deleted": 67,
        "waiting_to_leave_pool": 2,
        "left_pool": 6,
        "overdue": 0,
        "not_looked_at": 4,
        "behind": False,
    }
    assert totals["drift"] == {"detected": 2} and totals["stopping"] == {"stable": False}
    assert merged["shards"]["0"]["age_s"] == 7.0 and not merged["shards"]["0"]["stale"]
    assert merged["shards"]["1"]["stale"] and merged["stale"] == [1]  # 12 s since shard 1 reported
    assert merged["shards"]["1"]["drift"] == {"detected": 1, "last": {"at": 2}}

    reports.report(1, "w0", shard_report(pool_stats(5, 5, 2, 0)), now=T0 + timedelta(seconds=12))  # moved
    assert [r.worker for r in reports.reports()] == ["w0", "w0"]
    reports.drop(1)
    assert [r.shard for r in reports.reports()] == [0]
    assert merge([], now=T0)["totals"]["pool"] == 0


def test_a_shards_new_owner_counts_retentions_deletes_on_from_the_last_report(store: Store) -> None:
    reports = store.shard_stats
    assert reports.last(3) is None and deleted_before(None) == 0
    reports.report(3, "w0", shard_report(pool_stats(100, 900, 2, 50)), now=T0)
    reports.report(3, "w0", shard_report(pool_stats(100, 950, 2, 80)), now=T0 + timedelta(seconds=1))
    reports.report(4, "w1", shard_report(pool_stats(10, 10, None, 0) | {"retention": None}), now=T0)
    last = reports.last(3)
    assert last is not None and (last.worker, last.reported_at) == ("w0", T0 + timedelta(seconds=1))
    assert deleted_before(last) == 80 and deleted_before(reports.last(4)) == 0
