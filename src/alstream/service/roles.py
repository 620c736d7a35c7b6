"""The service's roles when it runs on several machines: ``alstream trainer`` (here) trains.

Exactly one trainer is active: it holds the store's trainer lock (:class:`alstream.store.election.
Election`); any other waits as a standby, asking again every ``trainer_poll_s``, and takes over
when the active one dies. The active trainer is the engine without a queue to serve: it follows the
labels in the store, trains by the retrain rule (after ``retrain_after_labels`` new labels or every
``retrain_interval_s``, online updates between), and records each version (file, store row,
MLflow, the orchestrator). A new leader starts as a restarted service does: it numbers versions
after the last one the store recorded and serves the newest saved file, so no number is used twice
(the store's key refuses a second row of one number) and none is skipped.
"""

from __future__ import annotations

import logging
import threading

from alstream.featurize import featurizer
from alstream.service.demo import digits_demo
from alstream.service.private import create_private
from alstream.service.runtime import open_engine
from alstream.service.versions import Orchestrator
from alstream.settings import Settings
from alstream.store import Store
from alstream.store.election import Election

log = logging.getLogger(__name__)
# The trainer serves no queue: its pool only feeds the drift watch with the arrivals' scores (a
# label's features come from the store when its sample is not in the pool).
TRAINER_POOL = 1_000


class TrainerRole:
    """A candidate trainer: standby until it holds the trainer lock, then the active trainer until
    it stops or loses the lock (then standby again)."""

    def __init__(
        self, settings: Settings, *, orchestrator: Orchestrator | None = None, track: bool | None = None
    ) -> None:
        create_private(settings)
        self.settings, self.orchestrator, self.track = settings, orchestrator, track
        self.store = Store(settings.database_url)
        self.store.create()
        self.election = Election(self.store.engine)
        self.terms = 0  # how many times this process became the active trainer

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
        settings = self.settings
        holdout = digits_demo(settings.seed)[1] if settings.demo else None
        features = featurizer(settings.project, settings.text_features)
        # No retention: the workers' pools hold samples this trainer does not know about.
        engine = open_engine(settings, self.store, features, holdout=holdout, orchestrator=self.orchestrator,
                             track=self.track, max_pool=TRAINER_POOL, retention_s=None)  # fmt: skip
        latest = self.store.latest_model(status=None)
        log.info("active trainer: the next model version is %d (the store's last: %s)",
                 engine.trainer.next_version, latest and latest["version"])  # fmt: skip
        halt = threading.Event()
        thread = threading.Thread(target=engine.run, args=(halt,), name="alstream-trainer", daemon=True)
        thread.start()
        try:
            while not stop.wait(settings.trainer_poll_s):
                if not self.election.alive():
                    log.error("lost the trainer lock (its connection to the store ended): training stops")
                    break
        finally:
            halt.set()
            thread.join()
            engine.close()

    def close(self) -> None:
        self.election.close()
        if self.orchestrator is not None:
            self.orchestrator.close()
        self.store.close()
