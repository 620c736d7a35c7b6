"""The learning curve of a stateless replica's ``/stats``, from the model versions the store records.

The single process draws its curve from the versions it trained (``Engine.curve``). A replica
trains none: the active trainer records each version (``models``, with the metrics the single
process puts on its point: the stream's accuracy on the random items, held-out ones in the demo),
and reports the drifts it found (``trainer_stats``). So a replica's curve is the newest recorded
versions (as many as the single process keeps), each as the single process's point, its ``drift``
whether the trainer found a drift after the version before was recorded and before this one was.
A drift's marker is on the first version recorded after it; the report keeps the newest drifts
only (``DriftWatch``'s ``keep``), so a version older than those loses its marker.

>>> from datetime import UTC, datetime
>>> rows = [
...     {"version": v, "kind": "full", "n_labels": 10 * v, "metrics": {"stream_accuracy": 0.9},
...      "created_at": datetime.fromtimestamp(100.0 * v, UTC)} for v in (1, 2, 3)
... ]
>>> [(p["version"], p["drift"]) for p in curve_points(rows, drifts=[150.0])]
[(1, False), (2, True), (3, False)]
>>> curve_points(rows[1:], drifts=[150.0], since=100.0)[0]
{'version': 2, 'kind': 'full', 'n_labels': 20, 'drift': True, 'stream_accuracy': 0.9}
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def curve_points(
    versions: Sequence[Mapping[str, Any]], drifts: Iterable[float], since: float | None = None
) -> list[dict[str, Any]]:
    """The points of ``versions`` (the store's rows, oldest first); ``drifts``: when drifts were found
    (Unix time); ``since``: when the version before the first was recorded (None: there was none)."""
    found = sorted(drifts)
    points, before = [], -float("inf") if since is None else since
    for row in versions:
        at = row["created_at"].timestamp()
        drift = bisect.bisect_right(found, at) > bisect.bisect_right(found, before)  # in (before, at]
        point = {"version": int(row["version"]), "kind": row["kind"], "n_labels": int(row["n_labels"])}
        points.append({**point, "drift": drift, **row["metrics"]})
        before = at
    return points


class RecordedCurve:
    """The curve of the newest ``points`` versions ``store`` records, read again only when the newest
    recorded version changes (thread-safe: a read swaps one reference)."""

    def __init__(self, store: Any, points: int) -> None:
        if points < 1:
            raise ValueError(f"a curve of {points} points")
        self.store, self.points = store, points
        # The newest version when read, and the newest points + 1 rows: the first says when the one
        # before the curve's first was recorded.
        self._read: tuple[int | None, list[dict[str, Any]]] = (None, [])
        self._lock = threading.Lock()

    def get(self, newest: int | None, drift_events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The points, ``newest`` the newest recorded version (as the caller last looked it up), their
        drift markers from ``drift_events`` (the trainer's report's), oldest first."""
        seen, rows = self._read
        if newest != seen:
            with self._lock:  # one thread reads; the others wait for its rows
                seen, rows = self._read
                if newest != seen:
                    rows = self.store.newest_models(self.points + 1)
                    self._read = (newest, rows)
        since = rows[0]["created_at"].timestamp() if len(rows) > self.points else None
        drifts = [float(event["at"]) for event in drift_events]
        return curve_points(rows[-self.points :], drifts, since)
