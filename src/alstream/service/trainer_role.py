"""``alstream trainer``: exactly one active trainer among all those sharing a store.

The active one holds the store's trainer lock (:class:`alstream.store.election.Election`); any
other waits as a standby, asking again every ``trainer_poll_s``, and takes over when the active one
dies. The active trainer is the engine without a queue to serve: it follows the labels in the store
and records each version (file, store row, MLflow). A new leader starts as a restarted service
does: it numbers versions after the last one the store recorded and serves the newest saved file,
so no number is used twice (the store's key refuses a second row of one number) and none is
skipped.

Without a deployment it trains by the retrain rule in its own loop (after ``retrain_after_labels``
new labels or every ``retrain_interval_s``, online updates between). With one (Prefect:
:mod:`alstream.flows.trainer_deployment`), the active trainer serves it: each full retrain is a
flow run of its own (:func:`full_retrain`: the store's labels in, the next version recorded out),
started by the deployment's schedule (every ``retrain_interval_s``) or by its trigger, which the
trainer fires each time ``retrain_after_labels`` new labels have come. Online updates stay here.
Every version, a flow run's or an online one, is numbered and recorded holding the store's version
lock, so the two never take one number.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Protocol

from alstream.errors import AlstreamError
from alstream.service.demo import digits_demo
from alstream.service.engine import Engine
from alstream.service.featurize import featurizer
from alstream.service.private import create_private
from alstream.service.runtime import open_engine, retrain_policy
from alstream.service.shared_audit import boost_left_s, trainer_report
from alstream.service.versions import Orchestrator
from alstream.settings import Settings
from alstream.store import Store
from alstream.store.election import Election

log = logging.getLogger(__name__)
# The trainer serves no queue: its pool only feeds the drift watch with the arrivals' scores (a
# label's features come from the store when its sample is not in the pool).
TRAINER_POOL = 1_000
VERSIONS_LOCK = 0x616C7673  # held while a version is numbered, trained and recorded ("alvs")
IDLE_S = 0.1  # a trainer with nothing new looks again after this long
REPORT_EVERY_S = 0.5  # the active trainer reports the stream's accuracy and drift this often
PRUNE_EVERY_S = 60.0  # and forgets the oldest guesses never labeled (folds the oldest scored) this often


class Deployment(Protocol):
    """Where full retrains run when they are not the trainer's own (Prefect: a deployment served by
    the active trainer, its schedule the retrain timer, its trigger the new labels)."""

    def serve(
        self,
        retrain: Callable[[int | None], int | None],
        *,
        interval_s: float,
        drift_label_id: int | None = None,
    ) -> None:
        """Serve ``retrain`` (picklable: it runs in a process of its own) in the background, every
        ``interval_s``, on each :meth:`labels_came` and on each :meth:`drifted`; its argument is
        the label id of the last drift (``drift_label_id`` at first: a trainer before this one's)."""

    def labels_came(self, n: int) -> None:
        """``n`` new labels came (``retrain_after_labels`` or more): fire the trigger."""

    def drifted(self, label_id: int) -> None:
        """A drift, found when the store's newest label was ``label_id``: run a retrain now, it and
        the later ones weighing the labels up to ``label_id`` less (without holding up the caller:
        until it starts, or a newer drift's does, or :meth:`stop`)."""

    def stop(self) -> None:
        """Stop serving."""

    def close(self) -> None:
        """Stop serving, and let go of what it started."""


class VersionLock:
    """The store's version lock, taken for one version at a time (by any process)."""

    def __init__(self, store: Store, poll_s: float) -> None:
        self.election, self.poll_s = Election(store.engine, key=VERSIONS_LOCK, name="versions"), poll_s

    def take(self, stop: threading.Event | None = None) -> bool:
        """Wait for the lock (no limit; until ``stop`` is set); whether it is held."""
        while not self.election.try_lead():
            if stop is None:
                threading.Event().wait(self.poll_s)
            elif stop.wait(self.poll_s):
                return False
        return True

    def release(self) -> None:
        self.election.close()


def full_retrain(
    settings: Settings, track: bool | None = None, drift_label_id: int | None = None
) -> int | None:
    """One full retrain, as a deployment's flow run does it: every label in the store in, the next
    model version (file, store row, MLflow) out; its number, or None when no label came since the
    newest version (or too few per class). After a drift (``drift_label_id``: the store's newest
    label then) the labels up to it weigh ``drift_old_weight``, as in the single process. Raises
    :class:`~alstream.errors.AlstreamError` saying why when training failed (recorded as failed)."""
    store = Store(settings.database_url)
    lock = VersionLock(store, settings.trainer_poll_s)
    lock.take()
    try:
        engine = _trainer_engine(settings, store, track=track, orchestrator=None)
        try:
            if drift_label_id is not None:
                log.info(
                    "labels up to id %d (before the drift) weigh %g",
                    drift_label_id,
                    settings.drift_old_weight,
                )
                engine.drifted_at(drift_label_id)
            while any(engine.sync()):
                pass
            policy = engine.config.policy
            if not engine.pending() or policy.cold(engine.label_counts(), engine.config.classes):
                log.info("no new labels since the newest version (or too few per class): nothing to train")
                return None
            version = engine.train_full()
            if version is None:
                raise AlstreamError(engine.trainer.last_error or "full training failed")
            return version.version
        finally:
            engine.close()  # the version's file and store row written
    finally:
        lock.release()
        store.close()


def _trainer_engine(
    settings: Settings,
    store: Store,
    *,
    track: bool | None,
    orchestrator: Orchestrator | None,
    audits: bool = False,
    **changes: object,
) -> Engine:
    holdout = digits_demo(settings.seed)[1] if settings.demo else None
    features = featurizer(settings.project, settings.text_features)
    # No retention: the workers' pools hold samples this trainer does not know about.
    return open_engine(
        settings,
        store,
        features,
        holdout=holdout,
        orchestrator=orchestrator,
        track=track,
        max_pool=TRAINER_POOL,
        retention_s=None,
        audits=store.audits if audits else None,
        **changes,
    )


class TrainerRole:
    """A candidate trainer: standby until it holds the trainer lock, then the active trainer until
    it stops or loses the lock (then standby again)."""

    def __init__(
        self,
        settings: Settings,
        *,
        orchestrator: Orchestrator | None = None,
        deployment: Deployment | None = None,
        track: bool | None = None,
    ) -> None:
        create_private(settings)
        self.settings, self.orchestrator, self.track = settings, orchestrator, track
        self.deployment = deployment
        self.store = Store(settings.database_url)
        self.store.create()
        self.election = Election(self.store.engine)
        self.terms = 0  # how many times this process became the active trainer
        self.name = f"{os.uname().nodename}:{os.getpid()}"  # as its reports name it

    def run(self, stop: threading.Event) -> None:
        """Stand by, lead, and stand by again after a lost lock, until ``stop`` is set."""
        poll_s, waiting = self.settings.trainer_poll_s, False
        while not stop.is_set():
            try:
                leads = self.election.try_lead()
            except Exception:  # the store is away: ask again
                log.exception("cannot ask the store for the trainer lock; asking again in %g s", poll_s)
                leads = False
            if not leads:
                if not waiting:
                    log.info("standby trainer: another one is active; asking again every %g s", poll_s)
                waiting = True
                stop.wait(poll_s)
                continue
            waiting = False
            self.terms += 1
            self._lead(stop)

    def _lead(self, stop: threading.Event) -> None:
        """Train until ``stop`` is set or the lock is lost (the engine then stops, its records done)."""
        settings, deployed = self.settings, self.deployment is not None
        changes = (
            {"policy": dataclasses.replace(retrain_policy(settings), full_here=False)} if deployed else {}
        )
        # The replicas' random items are scored here, once: the stream's accuracy and its drift watch.
        engine = _trainer_engine(
            settings, self.store, track=self.track, orchestrator=self.orchestrator, audits=True, **changes
        )
        last = self.store.trainer_stats.last()  # a trainer before this one: go on from it
        report = {} if last is None else last.stats
        engine.resume_audits(report.get("drift") or {}, boost_left_s(report))
        engine.drift_label_id = report.get("drift_label_id")  # the runs go on weighing as before
        latest = self.store.latest_model(status=None)
        log.info(
            "active trainer: the next model version is %d (the store's last: %s)",
            engine.trainer.next_version,
            latest and latest["version"],
        )
        halt = threading.Event()
        train = engine.run if self.deployment is None else partial(self._train_online, engine)
        thread = threading.Thread(target=train, args=(halt,), name="alstream-trainer", daemon=True)
        thread.start()
        if self.deployment is not None:
            self.deployment.serve(
                partial(full_retrain, settings, self.track),
                interval_s=settings.retrain_interval_s,
                drift_label_id=engine.drift_label_id,
            )
            log.info(
                "serving the full retrains as a deployment, every %g s and after %d new labels",
                settings.retrain_interval_s,
                settings.retrain_after_labels,
            )
        try:
            checked = pruned = time.monotonic()
            while not stop.wait(REPORT_EVERY_S):
                self._report(engine)
                now = time.monotonic()
                if now - pruned >= PRUNE_EVERY_S:
                    pruned = now
                    self._prune()
                if now - checked < settings.trainer_poll_s:
                    continue
                checked = now
                if not self.election.alive():
                    log.error("lost the trainer lock (its connection to the store ended): training stops")
                    break
        finally:
            if self.deployment is not None:
                self.deployment.stop()
            halt.set()
            thread.join()
            engine.close()

    def _report(self, engine: Engine) -> None:
        """The stream's accuracy and drift, from the engine's snapshot, for replicas and workers."""
        try:
            report = {**trainer_report(engine.snapshot), "drift_label_id": engine.drift_label_id}
            self.store.trainer_stats.report(self.name, report)
        except Exception:
            log.exception("cannot report the stream's accuracy to the store; reporting again soon")

    def _prune(self) -> None:
        """The audits' open guesses pruned and their older scored ones folded into the tallies."""
        try:
            self.store.audits.prune()
            self.store.audits.fold()
        except Exception:
            log.exception("cannot prune the audits; trying again later")

    def _train_online(self, engine: Engine, stop: threading.Event) -> None:
        """The engine's loop when full retrains are a deployment's: follow the store, fire the trigger
        every ``retrain_after_labels`` new labels, start a run on each drift, serve the newest full
        version, update online."""
        assert self.deployment is not None
        lock, after, new = (
            VersionLock(self.store, self.settings.trainer_poll_s),
            self.settings.retrain_after_labels,
            0,
        )
        drift = engine.drift_label_id
        while not stop.is_set():
            try:
                _, labels = engine.sync()
                if engine.drift_label_id != drift and engine.drift_label_id is not None:
                    drift = engine.drift_label_id
                    self.deployment.drifted(drift)  # first: the trigger's runs weigh as its own
                new += labels
                if new >= after:
                    self.deployment.labels_came(new)
                    new = 0
                trained = self._follow(engine) or (engine.pending() and self._online(engine, lock, stop))
            except Exception:
                log.exception("trainer step failed; retrying")
                labels, trained = 0, False
            if not (labels or trained):
                stop.wait(IDLE_S)

    def _follow(self, engine: Engine) -> bool:
        """Serve the newest version the store recorded (a flow run's), once its file loads; whether it
        is new."""
        row = self.store.latest_model(status=None)
        if row is None:
            return False
        number, serving = int(row["version"]), engine.serving
        engine.trainer.start_at(number)
        if (serving is not None and serving.version >= number) or row["status"] != "ok" or not row["path"]:
            return False
        files = engine.records.model_files
        assert files is not None
        try:
            version = files.load(row["path"])
        except Exception as error:
            log.warning("model version %d is not served: %s: %s", number, type(error).__name__, error)
            return False
        engine.adopt(version)
        log.info("serving model version %d (%s, %d labels)", number, version.kind, version.n_labels)
        return True

    def _online(self, engine: Engine, lock: VersionLock, stop: threading.Event) -> bool:
        """One online update, numbered and recorded holding the version lock; whether one was made."""
        if engine.serving is None or not lock.election.try_lead():
            return False  # no full version yet, or a flow run is training one: later
        try:
            self._follow(engine)  # what a flow run recorded meanwhile comes first
            before = engine.trainer.next_version
            engine.train_step()
            number = engine.trainer.next_version - 1
            while number >= before and not stop.is_set():  # its row written before the lock goes
                latest = self.store.latest_model(status=None)
                if latest is not None and int(latest["version"]) >= number:
                    break
                stop.wait(IDLE_S)
            return number >= before
        finally:
            lock.release()

    def close(self) -> None:
        self.election.close()
        for part in (self.orchestrator, self.deployment):
            if part is not None:
                part.close()
        self.store.close()
