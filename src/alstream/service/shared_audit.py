"""The stream's accuracy and its drifts when alstream runs on several machines.

Replicas record the model's guess for each random item they lease (the ``audits`` table); the one
active trainer scores them as the labels come, with the engine's own
:class:`~alstream.service.quality.StreamAccuracy` and :class:`~alstream.service.drift.DriftWatch`
(so a drift is found once, on the whole audit stream), and reports what they say
(:func:`trainer_report`, to ``trainer_stats``). A new trainer resumes from the scored audits and
that report. Replicas show it in ``/stats`` (:func:`replica_stats`); replicas and workers raise the
random share while the drift's boost lasts (:func:`random_share`, :func:`picks_per_shard`).

>>> random_share({"boost_until": 200.0}, 0.1, 0.3, now=100.0), random_share({}, 0.1, 0.3, now=100.0)
(0.3, 0.1)
>>> picks_per_shard(50, 0.1, share=0.3), picks_per_shard(50, 0.0, 0.3), picks_per_shard(50, 0.0, 0.0)
(150, 50, 0)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from alstream.service.snapshot import Snapshot
from alstream.store.candidates import MAX_PER_SHARD
from alstream.store.trainer_stats import TrainerReport, TrainerStats

READ_EVERY_S = 1.0  # how often a replica or a worker reads the trainer's report, at most
NO_DRIFT = {"detected": 0, "events": [], "audit_accuracy": None, "audit_window": 0}


def trainer_report(snapshot: Snapshot, monotonic: float | None = None) -> dict[str, Any]:
    """What the trainer reports, from its engine's ``snapshot``: the stream's accuracy (running and
    per version), the drifts found, and until when (Unix time) the random share stays raised (the
    same moment in every report, so every replica shows the same)."""
    left = snapshot.boost_until - (time.monotonic() if monotonic is None else monotonic)
    stats = snapshot.stats
    return {
        "stream_accuracy": stats.get("stream_accuracy"),
        "stream_accuracy_samples": stats.get("stream_accuracy_samples", 0),
        "stream_accuracy_by_version": {
            str(version): {"accuracy": accuracy, "samples": n}
            for version, (accuracy, n) in sorted(snapshot.accuracy_by_version.items())
        },
        "drift": dict(stats.get("drift") or NO_DRIFT),
        "boost_until": snapshot.boost_ends_at if left > 0 else None,
    }


def boost_left_s(report: Mapping[str, Any], now: float | None = None) -> float:
    """Seconds the random share stays raised, as the trainer reported (0: not raised)."""
    until = report.get("boost_until")
    return 0.0 if until is None else max(0.0, float(until) - (time.time() if now is None else now))


def random_share(
    report: Mapping[str, Any], share: float, boost_share: float, now: float | None = None
) -> float:
    """The random share now: ``share``, or ``boost_share`` if larger while a drift's boost lasts."""
    return max(share, boost_share) if boost_left_s(report, now) > 0 else share


def picks_per_shard(per_shard: int, random_share: float, share: float) -> int:
    """The random picks a shard publishes: as many as its best at ``random_share``, and more in
    proportion while the share is raised to ``share`` (none when it is 0)."""
    if share <= 0:
        return 0
    if random_share <= 0:
        return per_shard
    return min(MAX_PER_SHARD, round(per_shard * max(share, random_share) / random_share))


def replica_stats(report: Mapping[str, Any], share: float) -> dict[str, Any]:
    """What a replica's ``/stats`` shows of the trainer's report (``share``: the random share now)."""
    until = report.get("boost_until")
    return {
        "stream_accuracy": report.get("stream_accuracy"),
        "stream_accuracy_samples": int(report.get("stream_accuracy_samples") or 0),
        "stream_accuracy_by_version": dict(report.get("stream_accuracy_by_version") or {}),
        "drift": {**NO_DRIFT, **(report.get("drift") or {}), "random_share": share, "boost_until": until},
    }


class Reported:
    """The trainer's last report, read from the store at most every ``every_s`` (thread-safe: the
    thread that reads it swaps one reference; the others use the last one)."""

    def __init__(self, table: TrainerStats, every_s: float = READ_EVERY_S) -> None:
        self.table, self.every_s = table, every_s
        self._report: dict[str, Any] = {}
        self._read_at = -float("inf")
        self._lock = threading.Lock()

    def get(self) -> dict[str, Any]:
        """The report's numbers ({} before a trainer reports)."""
        if time.monotonic() - self._read_at < self.every_s:
            return self._report
        if not self._lock.acquire(blocking=self._read_at == -float("inf")):  # the first read: all wait
            return self._report
        try:
            if time.monotonic() - self._read_at >= self.every_s:  # no other thread read it meanwhile
                last: TrainerReport | None = self.table.last()
                self._report = {} if last is None else last.stats
                self._read_at = time.monotonic()
            return self._report
        finally:
            self._lock.release()
