"""The service's loop: follow the store, score what arrives, train as labels come, publish.

The store is the source of truth (the consumer writes it); the engine's thread follows it into
the in-memory pool, trains model versions (made on a thread of its own, trained and scored, then
numbered and swapped in here), re-scores the pool with each (the previous scores keep serving
until the new ones are complete), and publishes an immutable snapshot after each change
(:mod:`alstream.service.snapshot`). HTTP handlers read that snapshot and write only the leases
(:mod:`alstream.service.serving`): one thread owns the pool, the labels and the model versions.
Each finished version is saved as a file; a restarted engine serves the newest one that loads,
at once, before it trains again.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from alstream.errors import ShardFenced
from alstream.learning.evaluation import evaluate
from alstream.learning.strategies import get_strategy
from alstream.service.admission import Admission
from alstream.service.clusters import CLUSTER_MARGIN, PoolClusters, scored_by
from alstream.service.drift import DriftWatch
from alstream.service.featurize import Featurizer, StoredFeatures
from alstream.service.fitting import Fitting
from alstream.service.labels import LabelBook
from alstream.service.leases import Leases
from alstream.service.model_files import ModelFiles
from alstream.service.pool import Pool
from alstream.service.quality import StreamAccuracy
from alstream.service.retainer import PoolSeqs, Retainer
from alstream.service.retention import Retention
from alstream.service.serving import QueueItem, Serving, ServingConfig
from alstream.service.snapshot import Snapshot
from alstream.service.stability import STATE_FILE, Stability
from alstream.service.tally import StoreTally
from alstream.service.trainer import ModelVersion, RetrainPolicy, Trainer
from alstream.service.training_set import TrainingSet
from alstream.service.versions import Orchestrator, VersionRecords
from alstream.store.audits import Audits, Guess, Outcome
from alstream.store.label_events import LabelEvent

log = logging.getLogger(__name__)
RESUMED_AUDITS = 1_000  # scored guesses a resumed drift watch reads back (the newest)
CURVE_POINTS = 1_000  # the learning curve /stats shows: the newest versions (the store keeps every one)
# How long a step of the loop reads new samples at most: a backlog of a million (a consumer apart
# ahead of the engine) is read a step at a time, and retention, labels and the queue go on between.
SYNC_BUDGET_S = 0.5
# After a full retrain that took t seconds, the next waits FULL_FIT_REST * t (online updates go on):
# full retrains, whose time grows with the labels, take half a core at most.
FULL_FIT_REST = 1.0
VIEW_DEPTH = 1_024  # the best samples a snapshot ranks beyond those leased (more when requests ran short)


@dataclass(frozen=True)
class Handed:
    """What the engine knew as it handed a version to make to the fitting thread."""

    kind: str  # "full" or "online"
    pending: dict[str, float]  # the labels it has that no version had -> when each was stored
    last_label_id: int  # the newest label event it has
    new_labels: int  # labels it has since the last full retrain (online: 0)
    n_labels: int  # the labels it fits
    placements: int  # the pool's placements then: the places filled later are scored again


Made = tuple[ModelVersion, np.ndarray]  # a version (not numbered yet) and its scores of the pool's places


@dataclass
class EngineConfig:
    """What the engine needs from the settings."""

    classes: list[str]
    n_features: int
    strategy: str = "margin"  # or cluster_margin: by margin, leases spread over clusters of the pool
    model: str = "sgd"
    policy: RetrainPolicy = field(default_factory=RetrainPolicy)
    lease_s: float = 300.0
    random_share: float = 0.1
    project: str = "alstream"
    track: bool = True  # log each version to MLflow (the mlflow setting)
    standardize: bool = True  # off for hashed texts: already normalized, and scaling inflates rare columns
    seed: int = 0  # of the model, the random share, and the ties in the queue's order
    max_leases_per_annotator: int | None = None  # None: no cap
    max_leases_per_token: int | None = None
    max_waiting_labels: int = 100_000  # labels kept for samples not arrived yet (the newest)
    max_pool: int | None = None  # unlabeled samples held at most (None: no bound)
    reservoir_share: float = 0.1  # of the pool: a uniform sample of the stream
    max_age_s: float | None = None  # unlabeled samples older than this leave the pool
    retention_s: float | None = None  # unlabeled samples out of the pool and older: deleted (None: kept)
    retention_every_s: float = 0.5  # a step deletes for at most 0.25 s; while behind, one every step
    retention_max_overdue: int = 100_000  # samples due but not deleted yet, at most: then the consumer waits
    drift_delta: float = 0.05  # ADWIN's on the audit stream: smaller, fewer false alarms, slower to see
    drift_reaction: bool = True  # on a drift: retrain at once favouring new labels, audit more for a while
    drift_boost_s: float = 600.0  # how long the random share stays raised after a drift
    drift_random_share: float = 0.3  # the random share meanwhile (at least random_share)
    drift_old_weight: float = 0.05  # in retrains after a drift, the weight of labels given before it
    selector: str | None = None  # a selective strategy decides which arrivals may enter the queue
    labels_per_hour: float | None = None  # its label budget (None: auto, what people label)
    pause_when_stable: bool = False  # once the model has stabilised, the queue serves nothing
    keep_stopping_state: bool = True  # the stopping rule's state in a file beside the model files


class Engine:
    """Owns the pool, the labels, the trainer and the honest accuracy estimate.

    One thread (the engine's loop: :meth:`run`) calls everything but the read side, which
    :attr:`serve` answers from the published snapshot (:meth:`queue`, :meth:`release`,
    :meth:`predict`, :meth:`stats`: any thread).
    """

    def __init__(
        self,
        config: EngineConfig,
        store: Any,
        holdout: tuple[np.ndarray, np.ndarray] | None = None,
        orchestrator: Orchestrator | None = None,
        featurizer: Featurizer | None = None,
        model_files: ModelFiles | None = None,
        audits: Audits | None = None,
    ) -> None:
        """``audits``: the random items' guesses of the replicas (the shared queue), scored here as
        their labels come (None: this engine's own queue's, in memory)."""
        self.config, self.store, self.holdout = config, store, holdout
        self.audits = audits
        self.featurizer = featurizer or StoredFeatures(config.n_features)  # stored samples -> pool rows
        self.pool = Pool(
            config.n_features,
            seed=config.seed,
            max_size=config.max_pool,
            reservoir_share=config.reservoir_share,
        )
        self.book = LabelBook(store, self.featurizer, config.n_features, config.max_waiting_labels)
        self.train_set: TrainingSet = self.book.train_set  # labeled samples: they left the pool
        self.labels = self.book.labels  # latest non-skipped label per sample (arrived or waiting)
        self.admission = Admission(
            get_strategy(scored_by(config.strategy)), config.selector, config.labels_per_hour, config.seed
        )
        spread = config.strategy == CLUSTER_MARGIN  # leases spread over clusters of the pool
        self.clusters = PoolClusters(config.seed, config.standardize) if spread else None
        params = {"model": config.model, "strategy": config.strategy}
        self.records = VersionRecords(
            store,
            model_files,
            track=config.track,
            project=config.project,
            params=params,
            orchestrator=orchestrator,
        )
        self.trainer = Trainer(
            config.model, config.classes, config.policy, standardize=config.standardize, seed=config.seed
        )
        self.quality = StreamAccuracy()
        self.tally = StoreTally()  # the store's counts, as followed
        self._aged_at = 0.0  # when samples past max_age_s last left the pool
        self.retention = None if config.retention_s is None else Retention(config.retention_s)
        self.drift = DriftWatch(config.drift_delta)
        kept = None if model_files is None or not config.keep_stopping_state else model_files.folder.parent
        self.stability = Stability(
            config.n_features,
            step=config.policy.after_labels,
            seed=config.seed,
            path=None if kept is None else kept / STATE_FILE,  # a restart resumes the rule
        )
        self.drift_label_id: int | None = None  # the store's newest label id at the last drift
        self._boost_until = 0.0  # monotonic time until which the random share stays raised
        self._boost_ends_at = 0.0  # the same moment in Unix time, fixed when set: what others are told
        self._force_full = False  # a drift asks for a full retrain now
        self._drift_since_version = False
        self._retained_at = 0.0
        self.curve: deque[dict[str, Any]] = deque(maxlen=CURVE_POINTS)  # the newest versions' points
        self.serving: ModelVersion | None = None  # the version whose scores order the queue
        self.training: int | None = None  # the number of the version being trained now
        self.latencies: deque[float] = deque(maxlen=500)  # label stored -> model that includes it
        self._pending: dict[str, float] = {}  # labeled since the last version -> when stored
        self._new_since_full = 0
        self._last_full = time.monotonic()
        self._last_seq = 0
        self._stored_before = store.last_seq()  # these rebuild the pool: not new arrivals to the drift watch
        self._last_label_id = 0
        self._scores: list[Outcome] = []  # the guesses scored since the last read: written with the next
        self._failed_at: int | None = None  # the last label seen when training last failed
        self._restored_label_id = 0  # labels up to this one are in the version restored at start
        self._train_lock = threading.Lock()
        self._fitting: Fitting[Made] | None = None  # versions made on a thread (in run): else here
        self._wake = threading.Event()
        self.leases = Leases(Snapshot(), seed=config.seed)
        self.serve = Serving(
            ServingConfig(
                config.classes,
                config.strategy,
                config.lease_s,
                config.max_leases_per_annotator,
                config.max_leases_per_token,
            ),
            store,
            self.featurizer,
            self.leases,
        )
        latest = store.latest_model(status=None)
        if latest is not None:
            self.trainer.start_at(int(latest["version"]))
        self.stability.resume(None if latest is None else int(latest["version"]))
        self._restore()
        self._publish()

    # --- following the store --------------------------------------------------------------
    def sync(
        self, held: Iterable[str] = (), budget_s: float | None = None, retain: bool = True
    ) -> tuple[int, int]:
        """Bring new samples and labels from the store into the pool and the training set; returns how
        many of each. ``held``: samples leased elsewhere (the shared queue), kept like this one's.
        ``budget_s``: read samples for about that long at most (a batch at least), so that labels,
        retention and the queue's snapshot keep up while a backlog is read (None: read them all).
        ``retain``: run retention's step here (False: a :class:`Retainer` thread runs it)."""
        new_samples, began = 0, time.monotonic()
        self._read_guesses()
        self.pool.pin([*self.leases.held(), *held])  # what people hold stays
        while True:
            seqs, ids, features = self.featurizer.after(self.store, self._last_seq, 50_000)
            if not len(seqs):
                break
            self._last_seq = int(seqs[-1])
            self.tally.add_samples(len(seqs))
            self.stability.offer(seqs, features)
            new_samples += len(seqs)
            ids = list(ids)
            rest = np.flatnonzero(~self.book.arrived(ids, features))  # labeled ones went to training
            if len(rest):
                unlabeled = [ids[i] for i in rest.tolist()]
                model = None if self.serving is None else self.serving.model
                scores = self.admission.offer(self.pool, unlabeled, features[rest], seqs[rest], model)
                arrived = seqs[rest] > self._stored_before
                if model is not None and arrived.any() and self.drift.arrivals(scores[arrived]):
                    self._drifted("scores")
                for sample_id, event in self.book.forgotten_labels(unlabeled).items():
                    label_id, label, _annotator, skipped = event
                    self._set_label(sample_id, None if skipped else label, label_id, new=True)
            if budget_s is not None and time.monotonic() - began >= budget_s:
                break
        rows, guesses = self._labels_after()
        for guess in guesses:  # stored before the labels that name them
            self.quality.served(*guess)
        for row_id, sample_id, label, annotator, skipped, _created in rows:
            self._last_label_id = max(self._last_label_id, int(row_id))
            self.tally.add_label(sample_id, label, annotator, skipped)
            correct = self._set_label(
                sample_id, None if skipped else label, int(row_id), new=row_id > self._restored_label_id
            )
            if correct is not None and self.audits is not None:
                self._scores.append((sample_id, int(row_id), correct))
        for sample_id in self.book.resolve():  # forgotten while waiting: no model will have them soon
            self._pending.pop(sample_id, None)
        self._age_out()
        if retain:
            self._retain()
        if new_samples or rows or self.leases.short:
            self._publish()
        return new_samples, len(rows)

    def _labels_after(self) -> tuple[list[LabelEvent], list[Guess]]:
        """The label events since the last one read and, with ``audits``, the open guesses of the
        samples they name (one query for both), the scores of the last ones written with it
        (:meth:`Audits.labels_after`)."""
        if self.audits is None:
            return self.store.labels_after(self._last_label_id), []
        read = self.audits.labels_after(self._last_label_id, scores=self._scores)
        self._scores = []
        return read

    def _write_scores(self) -> None:
        """The scores not written yet, in a transaction of their own (this engine stops); a store
        that fails here loses none: their guesses stay open, and the next trainer scores them from
        the labels it reads (all, from the first)."""
        try:
            if self.audits is not None and self._scores:
                self.audits.scored(self._scores)
                self._scores = []
        except Exception:
            log.exception(
                "cannot write the scores of %d guesses; the next trainer scores them", len(self._scores)
            )

    def _read_guesses(self) -> None:
        """The model's guesses for the random items served since the last step."""
        guesses = self.serve.guesses
        while guesses:
            sample_id, version, predicted = guesses.popleft()
            self.quality.served(sample_id, version, predicted)

    def _age_out(self) -> None:
        """Once a second at most, let the unlabeled samples older than ``max_age_s`` leave the pool."""
        max_age, now = self.config.max_age_s, time.time()
        if max_age is not None and now - self._aged_at >= min(1.0, max_age / 4):
            self._aged_at = now
            self.pool.expire(max_age, now)

    def _retain(self) -> None:
        """Every ``retention_every_s`` (every step while it is behind), delete from the store what
        retention says is due."""
        now = time.monotonic()
        if self.retention is None:
            return
        if now - self._retained_at < self.config.retention_every_s and not self.retention.hurried:
            return
        self._retained_at = now
        try:
            self.retention.step(self.store, self._last_seq, lambda: self.pool.seq[self.pool.held()])
        except ShardFenced as error:  # a worker's shard another has claimed: its publish lets it go
            log.warning("%s: retention deleted nothing", error)
        except Exception:  # the store is down or busy: the next step goes on from where this one was
            log.exception("retention could not delete old samples; it tries again")

    def store_behind(self) -> bool:
        """Whether retention is over ``retention_max_overdue`` behind: the consumer waits (any thread:
        it reads one number retention's thread writes)."""
        retention = self.retention
        return retention is not None and retention.overdue > self.config.retention_max_overdue

    def _set_label(self, sample_id: str, label: str | None, label_id: int, new: bool) -> bool | None:
        """A sample's latest label (None: skipped), the store's label ``label_id``; ``new``: not in the
        version restored at start. Returns whether the model's guess was right, when it was a random
        item's (else None)."""
        self.book.set(sample_id, label, label_id, self.pool)
        if label is None:
            self._pending.pop(sample_id, None)
            return None
        if new:
            self._pending.setdefault(sample_id, time.time())
            self._new_since_full += 1
            self.admission.labeled(1)
        correct = self.quality.labeled(sample_id, label, len(self.labels))
        if correct is not None and self.drift.audit(correct):
            self._drifted("accuracy")
        return correct

    def resume_audits(self, drift: dict[str, Any], boost_left_s: float) -> None:
        """Before this engine's loop runs: go on with the stream's accuracy and its drift watch from
        the audits scored before (a new trainer), the drifts found (``drift``: the last trainer's
        ``/stats`` of them) and the random share raised for ``boost_left_s`` more."""
        assert self.audits is not None
        recent = self.audits.recent(max(self.quality.window, RESUMED_AUDITS))
        self.quality.restore(self.audits.tallies(), [ok for _, ok in recent[-self.quality.window :]])
        self.drift.resume(drift, [ok for _, ok in recent])
        if boost_left_s > 0:
            self._boost_until = time.monotonic() + boost_left_s
            self._boost_ends_at = time.time() + boost_left_s
        self._publish()

    def _drifted(self, signal: str) -> None:
        """A drift: say so; unless told not to, retrain now favouring the labels to come, and audit
        more for a while (more random items: the accuracy estimate recovers sooner)."""
        self._drift_since_version = True
        self.stability.reset()  # the model has yet to settle on what the stream is now
        log.warning(
            "drift detected in the %s (model version %s, %d labels)%s",
            signal,
            self.serving.version if self.serving else None,
            len(self.train_set),
            "" if self.config.drift_reaction else "; drift_reaction is off",
        )
        if self.config.drift_reaction:
            self.drift_label_id = self._last_label_id
            self._boost_until = time.monotonic() + self.config.drift_boost_s
            self._boost_ends_at = time.time() + self.config.drift_boost_s
            self._force_full = True

    def drifted_at(self, label_id: int) -> None:
        """A drift was found elsewhere (the active trainer) when the store's newest label was
        ``label_id``: full retrains weigh the labels up to it less, as this engine's own drift would
        (:meth:`training_weights`)."""
        self.drift_label_id = label_id

    # --- scoring --------------------------------------------------------------------------
    def rescore(self, version: ModelVersion, scored: tuple[np.ndarray, int] | None = None) -> None:
        """Score the whole pool with ``version`` in chunks, then swap the scores in at once (this thread
        alone adds to the pool: no sample arrives meanwhile). ``scored``: the pool's scores taken on
        another thread when the pool had made that many placements: swapped in, and the places
        filled since (or beyond them) scored here."""
        pool = self.pool
        if scored is None:
            places = len(pool.scores)  # empty places too: cheaper than gathering the held ones
            pool.set_scores(self.admission.score(version.model, pool.features[:places]), version.version)
            return
        scores, placements = scored
        again = np.union1d(pool.placed_after(placements), np.arange(len(scores), len(pool.scores)))
        pool.set_scores(scores, version.version)
        if len(again):
            pool.set_scores(self.admission.score(version.model, pool.features[again]), version.version, again)

    def adopt(self, version: ModelVersion) -> None:
        """Serve ``version``, trained elsewhere (by ``alstream trainer``): the pool is re-scored with it
        and numbering goes on after it; nothing is recorded, and nothing waits to be trained here."""
        self._pending.clear()
        self.trainer.restore(version)
        self.rescore(version)
        self.serving = version
        self._publish()

    # --- training -------------------------------------------------------------------------
    def training_data(self) -> tuple[np.ndarray, np.ndarray]:
        """Features and latest labels of every labeled sample that arrived."""
        return self.train_set.data()

    def training_weights(self) -> np.ndarray | None:
        """Per row of :meth:`training_data`: labels up to the last drift's store label id
        (:attr:`drift_label_id`) weigh ``drift_old_weight``, later ones 1, whenever their samples'
        features came (None: no drift yet, every label weighs the same)."""
        if self.drift_label_id is None:
            return None
        return np.where(self.train_set.labeled_after(self.drift_label_id), 1.0, self.config.drift_old_weight)

    def _labeled(self, ids: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        """Features and latest labels of those ``ids`` in the training set."""
        return self.train_set.data(ids)

    def label_counts(self) -> dict[str, int]:
        """Current labels per class, of the samples that arrived."""
        return self.book.class_counts(self.config.classes)

    def train_step(self) -> ModelVersion | None:
        """Train the next version if the policy says so: online update or full retrain (in
        :meth:`run`, made on the fitting thread and published at the step that finds it done; one at
        a time). After a failure, training waits for a new label (no retrying the same failure in a
        loop)."""
        policy, trainer, fitting = self.config.policy, self.trainer, self._fitting
        if fitting is not None and fitting.busy:
            done = fitting.done()
            return None if done is None else self._finish(*done)
        if (
            not (self._pending or self._force_full)
            or self._failed_at == self._last_label_id
            or policy.cold(self.label_counts(), self.config.classes)
        ):
            return None
        with self._train_lock:
            since = time.monotonic() - self._last_full
            forced, self._force_full = self._force_full, False
            full = (
                trainer.current is None
                or forced
                or policy.wants_full(self._new_since_full, since, trainer.online_since_full)
            )
            if not policy.full_here:  # full retrains run elsewhere: online updates only, on a version
                if trainer.current is None:
                    return None
                full = False
            if full and fitting is not None and not (forced or trainer.current is None or fitting.rested()):
                full = False  # the last full retrain's rest: online updates meanwhile
            if not full and not trainer.online:
                return None
            if fitting is not None:
                self._hand(fitting, full)
                return None
            self.training = trainer.next_version
            if full:  # /stats shows it is training
                self._publish()
            try:
                return self.train_full() if full else self._online()
            finally:
                self.training = None
                self._publish()

    def _hand(self, fitting: Fitting[Made], full: bool) -> None:
        """Start making the next version on the fitting thread: a full retrain on every current label
        or an online update on the pending ones (copies), then its scores of the pool's places."""
        pending, trainer = dict(self._pending), self.trainer
        if full:
            X, y = self.training_data()
            fit = trainer.full_fit(X, y, self.training_weights())
            self._last_full = time.monotonic()
            log.info("training version %d in full on %d labels", trainer.next_version, len(y))
        else:
            X, y = self._labeled(pending)
            if not len(y):
                return
            fit = trainer.online_fit(X, y, n_labels=sum(self.label_counts().values()))
            log.info("updating to version %d online with %d labels", trainer.next_version, len(y))
        features, score = self.pool.features[: len(self.pool.scores)], self.admission.score

        def make() -> Made:
            version = fit()
            return version, score(version.model, features)  # places refilled meanwhile: scored again

        new, kind = (self._new_since_full, "full") if full else (0, "online")
        handed = Handed(kind, pending, self._last_label_id, new, len(y), self.pool.placements)
        fitting.start(make, handed, rests=full)
        self.training = trainer.next_version
        if full:  # /stats shows it is training
            self._publish()

    def _finish(self, result: Callable[[], Made], handed: Handed) -> ModelVersion | None:
        """Publish the version the fitting thread made (it has the labels ``handed`` names)."""
        self.training, scores = None, []

        def fitted() -> ModelVersion:
            version, pool_scores = result()  # raises the job's error
            scores.append(pool_scores)
            return version

        try:
            version = self.trainer.finish(fitted, handed.kind)
        except Exception:
            what = "online update" if handed.kind == "online" else "full training"
            log.exception("%s failed; the previous model keeps serving", what)
            self._record_failure(handed.kind, handed.n_labels, handed.last_label_id)
            return None
        self._new_since_full = max(0, self._new_since_full - handed.new_labels)
        return self.publish(version, handed.pending, handed.last_label_id, (scores[0], handed.placements))

    def train_full(self) -> ModelVersion | None:
        """Refit on every current label and publish it; the orchestrator records it afterwards."""
        pending = dict(self._pending)
        X, y = self.training_data()
        version = self.fit_full(X, y, self.training_weights())
        return None if version is None else self.publish(version, pending)

    def fit_full(
        self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None
    ) -> ModelVersion | None:
        """A version refit on ``X``, ``y`` (rows weighted by ``sample_weight``); on failure, None (the
        previous version keeps serving)."""
        self._last_full = time.monotonic()
        log.info("training version %d in full on %d labels", self.trainer.next_version, len(y))
        try:
            version = self.trainer.train_full(X, y, sample_weight=sample_weight)
        except Exception:
            log.exception("full training failed; the previous model keeps serving")
            self._record_failure("full", len(y))
            return None
        self._new_since_full = 0
        return version

    def pending(self) -> dict[str, float]:
        """Labels not yet in a model version, with when they were seen."""
        return dict(self._pending)

    def _online(self) -> ModelVersion | None:
        pending = dict(self._pending)
        X, y = self._labeled(pending)
        if not len(y):
            return None
        log.info("updating to version %d online with %d labels", self.trainer.next_version, len(y))
        try:
            version = self.trainer.update_online(X, y, n_labels=sum(self.label_counts().values()))
        except Exception:
            log.exception("online update failed; the previous model keeps serving")
            self._record_failure("online", len(self.labels))
            return None
        return self.publish(version, pending)

    def publish(
        self,
        version: ModelVersion,
        pending: dict[str, float],
        last_label_id: int | None = None,
        scored: tuple[np.ndarray, int] | None = None,
    ) -> ModelVersion:
        """Re-score the pool with ``version``, then record it (store and MLflow, in the background);
        it has the labels up to the store's ``last_label_id`` (None: the newest read). ``scored``:
        its scores of the pool's places, taken when the pool had made that many placements."""
        newest = self._last_label_id if last_label_id is None else last_label_id  # read in this thread
        version = dataclasses.replace(version, last_label_id=newest)
        self.rescore(version, scored)
        if self.clusters is not None:
            self.clusters.refresh(self.pool)  # again if the pool changed much
        now = time.time()
        metrics = self._evaluate(version)
        self.curve.append(
            {
                "version": version.version,
                "kind": version.kind,
                "n_labels": version.n_labels,
                "drift": self._drift_since_version,
                **metrics,
            }
        )
        self._drift_since_version = False
        self.drift.new_model()
        self.drift.context = {"model_version": version.version, "n_labels": version.n_labels}
        for sample_id, stored_at in pending.items():  # these labels now shape the queue
            self.latencies.append(now - stored_at)
            self._pending.pop(sample_id, None)
        self.serving = version
        self._check_stable(version)
        self._publish()
        self.records.record(version, metrics)
        return version

    def _check_stable(self, version: ModelVersion) -> None:
        """Let the stopping rule read ``version`` (a failure there never stops it serving)."""
        try:
            self.stability.checkpoint(version)
        except Exception:
            log.exception("the stopping rule could not read model version %d", version.version)

    def _evaluate(self, version: ModelVersion) -> dict[str, float]:
        metrics: dict[str, float] = {}
        estimate, n = self.quality.estimate()
        if estimate is not None:
            metrics.update({"stream_accuracy": estimate, "stream_samples": float(n)})
        if self.holdout is not None:
            X, y = self.holdout
            held = evaluate(version.model, X, y, np.unique(np.asarray(self.config.classes)))
            metrics.update({f"holdout_{k}": v for k, v in held.items()})
        return metrics

    def _record_failure(self, kind: str, n_labels: int, last_label_id: int | None = None) -> None:
        """A failed version, trained on labels up to ``last_label_id`` (None: the newest read): the
        next waits for a label after it."""
        self._failed_at = self._last_label_id if last_label_id is None else last_label_id
        self.records.failed(kind, n_labels, self.trainer.last_error, self.trainer.failed_version)
        self._publish()  # /stats says why

    # --- restarting -----------------------------------------------------------------------
    def _restore(self) -> None:
        """Serve the newest saved version whose file loads and fits the project."""
        version = self.records.newest_restorable(self._check_restorable)
        if version is None:
            return
        self.trainer.restore(version)
        self._restored_label_id = version.last_label_id
        self.pool.set_scores(np.empty(0), version.version)  # the pool is scored by it as it fills
        self.serving = version

    def _check_restorable(self, version: ModelVersion, number: int) -> None:
        """Raise unless ``version`` is the one recorded as ``number`` and fits today's settings."""
        model, expected = version.model, type(self.trainer.prototype[-1])
        if version.version != number:
            raise ValueError(f"the file holds version {version.version}, not {number}")
        if type(model[-1]) is not expected:
            raise ValueError(f"it is a {type(model[-1]).__name__}; the settings ask for {expected.__name__}")
        if model.n_features_in_ != self.config.n_features:
            raise ValueError(f"it takes {model.n_features_in_} features, not {self.config.n_features}")
        unknown = {str(c) for c in model.classes_} - set(self.config.classes)
        if unknown:
            raise ValueError(f"it knows classes the project does not: {sorted(unknown)}")

    # --- publishing -----------------------------------------------------------------------
    def _publish(self) -> None:
        """Make the snapshot readers see from now on: the queue's order, the version that serves and
        what ``/stats`` shows; the leases of samples that left the pool end with it."""
        config, pool = self.config, self.pool
        latencies = np.array(self.latencies) if self.latencies else None
        estimate, n = self.quality.estimate()
        counts, store = pool.counts(), self.tally.counts()
        current = self.serving
        paused = self._paused()
        stats = {
            **counts,
            "unlabeled": counts["pool"],
            "labeled": len(self.train_set),
            "skipped": store["skipped"],
            "store": store,
            "conflicts": self.tally.conflicts(),
            "labels_per_class": self.book.class_counts(config.classes),
            "cold_start": current is None,
            "strategy": config.strategy,
            "model_version": current.version if current else None,
            "training_version": self.training,
            "last_training_error": self.trainer.last_error,
            "training_failures": self.trainer.failures,
            "stream_accuracy": estimate,
            "stream_accuracy_samples": n,
            "learning_curve": list(self.curve),
            "label_to_model_s": None
            if latencies is None
            else {"p50": float(np.median(latencies)), "p90": float(np.quantile(latencies, 0.9))},
            "waiting_labels": self.book.waiting(),
            "retention": None if self.retention is None else self.retention.state(),
            "drift": self.drift.state(),
            "selective": self.admission.state(),
            "stopping": {**self.stability.state(), "paused": paused is not None},
            "clusters": None if self.clusters is None else self.clusters.state(),
        }
        depth = self.leases.state()["leases"] + VIEW_DEPTH
        view = pool.view(depth)
        if self.clusters is not None and current is not None:
            if self.clusters.model is None:  # a version restored at start: cluster once the pool fills
                self.clusters.refresh(pool)
            view = self.clusters.spread(view, pool, {*self.leases.held(), *self._pending})
        snapshot = Snapshot(
            queue=view,
            serving=current,
            random_share=config.random_share,
            boost_share=config.drift_random_share,
            boost_until=self._boost_until,
            boost_ends_at=self._boost_ends_at,
            stats=MappingProxyType(stats),
            accuracy_by_version=MappingProxyType(self.quality.by_version()),
            paused=paused,
        )
        self.leases.publish(snapshot, pool.drain_left())

    def _paused(self) -> str | None:
        """Why the queue serves nothing now (None: it serves)."""
        stability = self.stability
        if not (self.config.pause_when_stable and stability.stable):
            return None
        return (
            f"the model has stabilised: more labels are unlikely to change it (mean kappa "
            f"{stability.kappa:.3f} between the last {stability.rule.window + 1} versions compared, "
            f"{stability.step} labels apart, since version {stability.since_version}); the queue is "
            "paused (pause_when_stable)"
        )

    @property
    def snapshot(self) -> Snapshot:
        """The snapshot published last."""
        return self.leases.snapshot

    # --- the read side (any thread) -------------------------------------------------------
    def queue(
        self, n: int, annotator: str, fresh: bool = False, token: str | None = None, token_capped: bool = True
    ) -> list[QueueItem]:
        """See :meth:`Serving.queue`."""
        return self.serve.queue(n, annotator, fresh, token, token_capped)

    def lease(
        self, n: int, annotator: str, fresh: bool = False, token: str | None = None, token_capped: bool = True
    ) -> tuple[list[QueueItem], str | None]:
        """See :meth:`Serving.lease`."""
        return self.serve.lease(n, annotator, fresh, token, token_capped)

    def release(self, ids: list[str], annotator: str) -> int:
        return self.serve.release(ids, annotator)

    def predict(self, features: np.ndarray) -> tuple[int, list[str], np.ndarray]:
        return self.serve.predict(features)

    def stats(self) -> dict[str, Any]:
        return self.serve.stats()

    def close(self) -> None:
        self._write_scores()
        self.records.close()

    # --- the background loop --------------------------------------------------------------
    def wake(self) -> None:
        """Something new is in the store (the consumer in this process says so): look now."""
        self._wake.set()

    def run(self, stop: threading.Event, idle_s: float = 0.05) -> None:
        """Follow the store and train until ``stop`` is set; errors are logged, never fatal. When idle,
        look again after ``idle_s`` (a consumer in another process), or at once when woken.
        Retention runs on a thread of its own meanwhile, handed the pool's seqs between steps, and the
        versions are made on another (:mod:`alstream.service.fitting`), handed copies of the labels."""
        seqs, retainer = PoolSeqs(), None
        self._fitting = Fitting(FULL_FIT_REST, finished=self._wake.set)
        if self.retention is not None:
            work = Retainer(
                self.retention, self.store, lambda: self._last_seq, seqs, self.config.retention_every_s
            )
            retainer = threading.Thread(target=work.run, args=(stop,), name="alstream-retention", daemon=True)
            retainer.start()
        while not stop.is_set():
            self._wake.clear()
            try:
                samples, labels = self.sync(budget_s=SYNC_BUDGET_S, retain=retainer is None)
                seqs.hand(lambda: self.pool.seq[self.pool.held()])
                trained = self.train_step()
            except Exception:
                log.exception("engine step failed; retrying")
                samples = labels = 0
                trained = None
            if not (samples or labels or trained):
                self._wake.wait(idle_s)
        self._fitting.close()
        self._fitting = None
        if retainer is not None:
            retainer.join(timeout=10)


__all__ = ["Engine", "EngineConfig", "QueueItem"]
