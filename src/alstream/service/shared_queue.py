"""The queue of ``alstream serve --stateless``: any number of API replicas lease from the shards'
candidates in the store (:class:`alstream.store.candidates.Candidates`: ``FOR UPDATE SKIP LOCKED``,
so two replicas never lease one item; the caps per annotator and per token, and the expiries, in
the store), a ``random_share`` of them random picks from the shards' reservoirs (drawn over all
shards by their stream's size: the accuracy measured on them stays unbiased), and show each item
with the newest model version the store records (its file from the shared ``data_dir/models``).
``/stats`` merges what the shards report (:mod:`alstream.service.shard_totals`) and shows the
stream's accuracy on the random items and the drifts found in it, as the trainer reports them: the
replica records the model's guess for each random item it leases, in the lease's transaction (the
items' samples are read, and the guesses made, before it commits), the trainer scores it once
labeled (:mod:`alstream.service.shared_audit`); while a drift's boost lasts, the random share is
raised.
Its learning curve is the single process's, drawn from the versions the store records
(:mod:`alstream.service.shared_curve`).

A replica keeps nothing but that model: the workers keep the pools (``alstream worker``), the
trainer trains (``alstream trainer``); ``/send`` and ``/labels`` publish to the stream as always.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy import Connection

from alstream.service.engine import CURVE_POINTS, EngineConfig
from alstream.service.featurize import Featurizer
from alstream.service.model_files import ModelFiles
from alstream.service.serving import QueueItem, ServingConfig, items_of, predict_with
from alstream.service.shard_totals import merge
from alstream.service.shared_audit import Reported, random_share, replica_stats
from alstream.service.shared_curve import RecordedCurve
from alstream.service.snapshot import Snapshot
from alstream.service.trainer import ModelVersion
from alstream.store.audits import NotRecorded
from alstream.store.candidates import Candidate

log = logging.getLogger(__name__)
MODEL_CHECK_S = 1.0  # how often the store is asked for a newer model version, at most


class SharedQueue:
    """What the routes ask of the engine, answered from the store; thread-safe."""

    def __init__(
        self, config: EngineConfig, store: Any, featurizer: Featurizer, model_files: ModelFiles
    ) -> None:
        self.config, self.store, self.featurizer, self.model_files = config, store, featurizer, model_files
        self.serving_config = ServingConfig(
            config.classes,
            config.strategy,
            config.lease_s,
            config.max_leases_per_annotator,
            config.max_leases_per_token,
        )
        self._serving: ModelVersion | None = None
        self._checked = -np.inf
        self._looked_at = 0  # the newest recorded version tried
        self._recorded: int | None = None  # the newest recorded version, its file loading or not
        self._looked = False  # a first look for a version is over
        self._lock = threading.Lock()
        self.reported = Reported(store.trainer_stats)  # the trainer's: the stream's accuracy, drift
        self.curve = RecordedCurve(store, CURVE_POINTS)  # the recorded versions (as ``serving`` sees them)

    @property
    def snapshot(self) -> Snapshot:
        """The version that serves (the only part of an engine's snapshot a replica has)."""
        return Snapshot(serving=self.serving)

    @property
    def serving(self) -> ModelVersion | None:
        """The newest recorded version whose file loads (looked for at most every ``MODEL_CHECK_S``;
        while one thread looks, and loads it, the others go on with the version they had)."""
        if time.monotonic() - self._checked < MODEL_CHECK_S:
            return self._serving
        if not self._lock.acquire(blocking=not self._looked):  # the first look: all wait for it
            return self._serving
        try:
            now = time.monotonic()
            if now - self._checked < MODEL_CHECK_S:
                return self._serving
            self._checked = now
            row = self.store.latest_model()
            self._recorded = None if row is None else int(row["version"])
            if row is not None and row["path"] and int(row["version"]) > self._looked_at:
                self._looked_at = int(row["version"])  # a file that fails to load: not tried again
                try:
                    self._serving = self.model_files.load(row["path"])
                except Exception as error:
                    why = f"{type(error).__name__}: {error}"
                    log.warning("model version %s is not served: %s", row["version"], why)
            return self._serving
        finally:
            self._looked = True
            self._lock.release()

    def queue(
        self, n: int, annotator: str, fresh: bool = False, token: str | None = None, token_capped: bool = True
    ) -> list[QueueItem]:
        """Lease to ``annotator`` through ``token`` the ``n`` best free candidates of every shard, a
        ``random_share`` of them random picks (none before a model serves); at most
        ``max_leases_per_annotator`` held by her at once and, when ``token_capped``,
        ``max_leases_per_token`` through the token. Each call leases new items (``fresh`` always):
        what she holds stays hers until labeled, released or expired. The random items' guesses
        commit with the lease (the trainer scores them once labeled): a store that cannot record
        them costs the estimate these few, never the annotator her items (leased again without)."""
        config, serving = self.serving_config, self.serving
        lease = functools.partial(
            self.store.candidates.lease,
            annotator,
            token,
            n,
            config.lease_s,
            cap=config.max_leases_per_annotator,
            token_cap=config.max_leases_per_token if token_capped else None,
            random_share=0.0 if serving is None else self.random_share(),
        )
        try:
            return self._leased(lease, serving, audited=True)
        except NotRecorded:
            log.exception("cannot record the guesses of a lease's random items; it is leased again without")
            return self._leased(lease, serving, audited=False)

    def _leased(
        self, lease: Callable[..., list[Candidate]], serving: ModelVersion | None, audited: bool
    ) -> list[QueueItem]:
        """The items ``lease`` takes, made in its transaction: their samples read, those the store no
        longer has ended, and (``audited``) the random ones' guesses recorded."""
        items: list[QueueItem] = []

        def made(conn: Connection, taken: list[Candidate]) -> None:  # each attempt's: the last one's stay
            nonlocal items
            samples = self.store.get_samples([c.id for c in taken], conn) if taken else []
            items, gone = items_of(samples, self.featurizer, self.serving_config, taken, serving)
            if gone:
                self.store.candidates.end(sorted(gone), conn)
            if audited and serving is not None:
                self._audit(conn, serving.version, items)

        lease(then=made)
        return items

    def _audit(self, conn: Connection, version: int, items: list[QueueItem]) -> None:
        """Record the guesses of the random ``items`` in the lease's transaction ``conn``."""
        guesses = [(i.id, version, i.predicted) for i in items if i.reason == "random" and i.predicted]
        self.store.audits.served(guesses, conn=conn)

    def random_share(self) -> float:
        """The share of random items now: ``random_share``, raised while a drift's boost lasts."""
        config = self.config
        return random_share(self.reported.get(), config.random_share, config.drift_random_share)

    def lease(
        self, n: int, annotator: str, fresh: bool = False, token: str | None = None, token_capped: bool = True
    ) -> tuple[list[QueueItem], str | None]:
        """:meth:`queue`'s items, and None: the shared queue never pauses (its shards do not say)."""
        return self.queue(n, annotator, fresh, token, token_capped), None

    def release(self, ids: list[str], annotator: str) -> int:
        return self.store.candidates.release(annotator, ids)

    def predict(self, features: np.ndarray) -> tuple[int, list[str], np.ndarray]:
        return predict_with(self.serving, features)

    def stats(self) -> dict[str, Any]:
        """The store's counts, the shared queue's, the version that serves, the learning curve of the
        recorded versions, and what the shards report: each shard's numbers with their age, and the
        totals."""
        serving, report = self.serving, self.reported.get()
        return {
            "stateless": True,
            "store": self.store.counts(),
            "queue": self.store.candidates.counts(),
            "model_version": serving.version if serving else None,
            "strategy": self.config.strategy,
            "random_share": self.config.random_share,
            **replica_stats(report, self.random_share()),
            "learning_curve": self.curve.get(self._recorded, (report.get("drift") or {}).get("events") or []),
            **merge(self.store.shard_stats.reports()),
        }

    def close(self) -> None:
        """Nothing to let go of: the store is the runtime's."""
