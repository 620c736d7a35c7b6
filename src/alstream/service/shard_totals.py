"""``/stats`` over shards: what each worker reports of its shards, and a replica's merge of them.

A worker reports, for each shard it owns, the numbers the single process shows for its pool
(:func:`shard_report`: a few times a second at most, to :class:`alstream.store.shard_stats.
ShardStats`). A stateless replica shows every shard's report with its age, and the totals over
them (:func:`merge`); a shard that has not reported for ``stale_s`` is marked stale (its worker
died, or lost it and the new owner has not reported yet): its last numbers are still counted.

>>> from datetime import UTC, datetime
>>> from alstream.store.shard_stats import ShardReport
>>> now = datetime(2026, 1, 1, tzinfo=UTC)
>>> a = ShardReport(0, "w0", {"pool": 3, "arrivals": 5, "model_version": 2}, now)
>>> b = ShardReport(1, "w1", {"pool": 4, "arrivals": 9, "model_version": 1}, now)
>>> merged = merge([a, b], now)
>>> merged["totals"]["pool"], merged["totals"]["arrivals"], merged["totals"]["model_versions"]
(7, 14, [1, 2])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from alstream.store.shard_stats import ShardReport

STALE_S = 10.0  # a shard whose last report is older than this is marked stale
# The pool's numbers that add up over shards (Pool.counts), and retention's (Retention.state).
POOL_SUMS = ("pool", "reservoir", "arrivals", "evicted", "rejected", "aged_out", "removed", "passed")
RETENTION_SUMS = ("deleted", "waiting_to_leave_pool", "left_pool", "overdue", "not_looked_at")
STOPPING = ("stable", "kappa", "since_version")


def shard_report(stats: Mapping[str, Any]) -> dict[str, Any]:
    """What a shard reports, from its engine's ``/stats`` numbers (bounded: no curve, no lists)."""
    retention = stats.get("retention")
    drift = stats.get("drift") or {}
    stopping = stats.get("stopping") or {}
    return {
        **{name: stats.get(name) for name in (*POOL_SUMS, "max_pool")},
        "model_version": stats.get("model_version"),
        "retention": None
        if retention is None
        else {**{k: retention.get(k) or 0 for k in RETENTION_SUMS}, "behind": bool(retention.get("behind"))},
        "drift": {"detected": drift.get("detected", 0), "last": (drift.get("events") or [None])[-1]},
        "stopping": {name: stopping.get(name) for name in STOPPING},
    }


def deleted_before(report: ShardReport | None) -> int:
    """How many samples retention deleted from a shard, as its last report says: a new owner's
    count goes on from there (the deletes of the old owner's last half second may be missed)."""
    retention = None if report is None else report.stats.get("retention")
    return int((retention or {}).get("deleted") or 0)


def merge(
    reports: Sequence[ShardReport], now: datetime | None = None, stale_s: float = STALE_S
) -> dict[str, Any]:
    """Every shard's report with its age, and the totals over all of them."""
    now = datetime.now(UTC) if now is None else now
    shards = {}
    for report in reports:
        age = max(0.0, (now - report.reported_at).total_seconds())
        shards[str(report.shard)] = {
            **report.stats,
            "worker": report.worker,
            "age_s": round(age, 3),
            "stale": age > stale_s,
        }
    return {"shards": shards, "totals": _totals([r.stats for r in reports]), "stale": _stale(shards)}


def _stale(shards: Mapping[str, Mapping[str, Any]]) -> list[int]:
    return sorted(int(shard) for shard, report in shards.items() if report["stale"])


def _totals(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Sums of the counts; the model versions the shards score with; drift and stopping over all."""
    retained = [r["retention"] for r in reports if r.get("retention") is not None]
    bounds = [r.get("max_pool") for r in reports]
    versions = {r.get("model_version") for r in reports} - {None}
    stopping = [r.get("stopping") or {} for r in reports]
    return {
        **{name: sum(int(r.get(name) or 0) for r in reports) for name in POOL_SUMS},
        "max_pool": None if None in bounds else sum(bounds),
        "shards": len(reports),
        "model_versions": sorted(versions),  # more than one: a new version is reaching the shards
        "retention": None
        if not retained
        else {
            **{name: sum(int(r.get(name) or 0) for r in retained) for name in RETENTION_SUMS},
            "behind": any(r.get("behind") for r in retained),
        },
        "drift": {"detected": sum(int((r.get("drift") or {}).get("detected") or 0) for r in reports)},
        "stopping": {"stable": bool(stopping) and all(s.get("stable") for s in stopping)},
    }
