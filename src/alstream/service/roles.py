"""The service's roles when it runs on several machines: ``alstream trainer`` trains
(:mod:`alstream.service.trainer_role`), each ``alstream worker`` keeps the pools of the Kafka
partitions it owns.

A worker is a member of the Kafka consumer group ``consumer_group`` on the samples topic: it
stores what its partitions bring (as ``alstream consume`` does, each sample with its partition: its
shard), and labels from its share of the labels topic (group ``<consumer_group>.labels``). It keeps
one engine per samples partition it owns, without HTTP and without training: each follows its
shard's samples and every label in the store, scores with the newest version the store records
(its file from the shared ``data_dir/models``), and publishes its best ``candidates_per_shard``
samples to the shared queue (:class:`alstream.store.candidates.Candidates`), with as many of its
reservoir as random picks (weighted by the shard's stream; none when ``random_share`` is 0: set it
alike on workers and replicas; more while the trainer reports a drift's raised share), samples
leased there pinned in its pool. Each shard reports its
numbers to ``shard_stats`` (a stateless replica's ``/stats`` merges them), and deletes its own
departed samples from the store (retention, by ``samples.shard``: never another shard's). When
Kafka moves a partition away (a rebalance: cooperative, only the partitions that move), its engine
goes and its unleased candidates are dropped; a partition gained gets an engine rebuilt from the
store.

A partition changes hands without two owners at once: the consumer's revoke waits (in Kafka's
rebalance callback, at most ``HANDOFF_S``) until the worker has let go of the shard (stopped
publishing it and dropped its candidates), and cooperative rebalancing gives it to its next owner
only after that. Otherwise the old owner, still in a long step, could drop or overwrite the
candidates the new owner had just published, which it publishes again only when its shard changes.
A partition *lost* (the group gave it away, taking this member for dead) has a new owner already:
its candidates are left for that one's publish to replace.

A member taken for dead may not know it yet (a stall past the session timeout: its consumer hears
of the loss only at its next poll). So each gain claims the shard in the store
(:meth:`~alstream.store.candidates.Candidates.claim`: its generation, bumped in ``shard_owners``),
and the shard's publishes, drop and reports carry that claim: once another worker has claimed the
shard they change nothing and raise :class:`~alstream.errors.ShardFenced`, and this worker lets
the shard go without touching its rows, and gains it again only once the group has taken it away
and given it back (a new claim). Why a generation of our own rather than Kafka's: see
:mod:`alstream.store.candidates`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from alstream.errors import ConfigError, ShardFenced
from alstream.service.engine import SYNC_BUDGET_S, Engine
from alstream.service.featurize import featurizer
from alstream.service.ingest import RUN_ENDS_WITHIN_S
from alstream.service.model_files import ModelFiles
from alstream.service.runtime import open_engine, open_ingestor, open_parts
from alstream.service.shard_totals import deleted_before, shard_report
from alstream.service.shared_audit import Reported, picks_per_shard, random_share
from alstream.service.snapshot import Snapshot
from alstream.service.trainer_role import TrainerRole
from alstream.settings import Settings
from alstream.store import Store
from alstream.store.candidates import Claim
from alstream.stream.kafka import KafkaConsumer

log = logging.getLogger(__name__)
PUBLISH_EVERY_S = 1.0  # a shard's candidates are published at most this often (at once on a new version)
REPORT_EVERY_S = 0.5  # a shard reports its numbers this often (its /stats row's age says it is alive)
IDLE_S = 0.1  # a worker with nothing new looks again after this long (or when its consumer stored some)
HANDOFF_S = 60.0  # a revoke waits at most this long for the worker to let go (max.poll.interval: 300 s)


def labels_group(settings: Settings) -> str:
    """The consumer group of the workers' labels consumers (their samples ones: ``consumer_group``)."""
    return f"{settings.consumer_group}.labels"


class ShardStore:
    """The store as one shard's engine sees it: the samples of ``shard`` only; labels, models and the
    rest shared."""

    def __init__(self, store: Store, shard: int, claim: Claim | None = None) -> None:
        self.store, self.shard, self.claim = store, shard, claim

    def samples_after(self, seq: int, limit: int) -> Any:
        return self.store.samples_after(seq, limit, shard=self.shard)

    def texts_after(self, seq: int, limit: int) -> Any:
        return self.store.texts_after(seq, limit, shard=self.shard)

    def first_not_due(self, seq: int, upto: int, before: datetime) -> int | None:
        return self.store.first_not_due(seq, upto, before, shard=self.shard)

    def delete_unlabeled_between(
        self, first: int, last: int, before: datetime, keep: Sequence[int] = ()
    ) -> int:
        """Retention's deletes, of this shard's samples only, fenced by the shard's claim."""
        return self.store.delete_unlabeled_between(
            first, last, before, keep, shard=self.shard, claim=self.claim
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


class WorkerRole:
    """A consumer-group member that keeps, scores and publishes the shards Kafka assigns it."""

    def __init__(self, settings: Settings) -> None:
        if not settings.kafka_bootstrap:
            raise ConfigError(
                "alstream worker is a member of a Kafka consumer group: set kafka_bootstrap "
                "(on one machine, alstream serve does everything)"
            )
        self.settings = settings
        self.store, self.stream, self.topics = open_parts(settings, cooperative=True)
        self._wake = threading.Event()
        # Two groups: Kafka's assignors balance a member's partitions over all its topics together, so
        # one group of both topics could give a worker every labels partition and no samples one.
        wake = self._wake.set
        self._stop = threading.Event()  # run's
        self._handoff = threading.Condition()  # guards _held and _lost, between the consumer and the loop
        self._held: frozenset[int] = frozenset()  # the shards this worker keeps an engine of
        self._lost: set[int] = set()  # shards the group gave away without a revoke, not let go of yet
        # shards another worker claimed while the group still gives them to this one -> the consumer
        # that gives them: not gained again until the group takes them away (or the consumer is new)
        self._fenced: dict[int, object] = {}
        self.ingestor = open_ingestor(
            settings,
            self.stream,
            self.store,
            self.topics,
            on_stored=wake,
            only=self.topics.samples,
            on_revoke=self._let_go,
        )
        self.labels = open_ingestor(
            settings,
            self.stream,
            self.store,
            self.topics,
            on_stored=wake,
            only=self.topics.labels,
            group=labels_group(settings),
        )
        self.features = featurizer(settings.project, settings.text_features)
        self.models = ModelFiles(settings.data_dir / "models", keep=settings.keep_model_files)
        self.shards: dict[int, Engine] = {}
        self.version = 0  # the newest model version the store recorded that this worker looked at
        self._claims: dict[int, Claim] = {}  # shard -> this worker's claim of it (its fencing token)
        # shard -> what it published last, when, and how many random picks
        self._published: dict[int, tuple[Snapshot, float, int]] = {}
        self.reported = Reported(self.store.trainer_stats)  # the trainer's: has a drift raised the share?
        self._reported: dict[int, float] = {}  # shard -> when it reported its numbers last
        self.name = f"{os.uname().nodename}:{os.getpid()}"  # as its shards' reports name it

    def run(self, stop: threading.Event) -> None:
        """Consume (on a thread of its own) and keep the shards, until ``stop`` is set."""
        self._stop = stop
        consumers = [
            threading.Thread(target=ingestor.run, args=(stop,), name=f"alstream-{name}", daemon=True)
            for name, ingestor in (("samples", self.ingestor), ("labels", self.labels))
        ]
        for consumer in consumers:
            consumer.start()
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    busy = self.step()
                except Exception:
                    log.exception("worker step failed; retrying")
                    busy = False
                if not busy:
                    self._wake.wait(IDLE_S)
        finally:
            stop.set()
            with self._handoff:
                self._handoff.notify_all()  # a revoke waiting for this loop goes on
            for consumer in consumers:
                consumer.join(timeout=RUN_ENDS_WITHIN_S)

    def step(self) -> bool:
        """Follow the assignment, the model versions and the shards' samples and labels, and publish
        the shards' candidates; whether anything new came from the store."""
        self._let_go_revoked()
        for shard in self._to_gain():
            self._let_go_revoked()  # a revoke waits for this loop: between shards, not after them all
            self._gain(shard)
        self._follow_versions()
        busy = False
        for shard in list(self.shards):
            self._let_go_revoked()
            engine = self.shards.get(shard)
            if engine is None:
                continue
            samples, labels = engine.sync(
                held=self.store.candidates.held(shard=shard), budget_s=SYNC_BUDGET_S
            )
            busy = busy or bool(samples or labels)
            self._publish(shard, engine)
            if shard in self.shards:  # not fenced off by the publish
                self._report(shard, engine)
        return busy

    def _assigned(self) -> frozenset[int]:
        consumer = self.ingestor.consumer
        assert isinstance(consumer, KafkaConsumer)  # a worker needs Kafka (checked at start)
        return consumer.assigned(self.topics.samples)

    def _to_gain(self) -> list[int]:
        """The shards assigned to this worker that it keeps no engine of, but those fenced off."""
        consumer = self.ingestor.consumer
        with self._handoff:
            fenced = {shard for shard, by in self._fenced.items() if by is consumer}
        return sorted(self._assigned() - self.shards.keys() - fenced)

    def _let_go_revoked(self) -> None:
        """Lose the shards Kafka no longer assigns this worker."""
        for shard in sorted(self.shards.keys() - self._assigned()):
            self._lose(shard)

    def _let_go(self, partitions: frozenset[tuple[str, int]], lost: bool) -> None:
        """The samples consumer's revoke (on its thread): wait until the loop let go of those shards."""
        shards = {partition for topic, partition in partitions if topic == self.topics.samples}
        if not shards:
            return
        with self._handoff:
            for shard in shards:  # the group took it: gained again only if it gives it back
                self._fenced.pop(shard, None)
            if lost:
                self._lost |= shards & self._held
            self._wake.set()
            if not self._handoff.wait_for(
                lambda: self._stop.is_set() or not shards & self._held, timeout=HANDOFF_S
            ):
                held = sorted(shards & self._held)
                log.warning("shards %s revoked, still kept after %g s: they go all the same", held, HANDOFF_S)

    def _gain(self, shard: int) -> None:
        with self._handoff:  # held before the assignment is read again: a revoke from now on waits
            self._held |= {shard}
        if shard not in self._assigned():  # revoked meanwhile
            self._let_go_of(shard)
            return
        log.info("shard %d: assigned to this worker; its pool is rebuilt from the store", shard)
        try:
            claim = self.store.candidates.claim(shard, self.name)  # a stale owner's writes: no more
            # Retention deletes this shard's departed samples only (ShardStore); the stopping rule's
            # file is the trainer's.
            engine = open_engine(
                self.settings,
                ShardStore(self.store, shard, claim),
                self.features,
                track=False,
                keep_stopping_state=False,
            )
            if engine.retention is not None:  # the count goes on from the last owner's last report
                engine.retention.deleted = deleted_before(self.store.shard_stats.last(shard))
        except BaseException:
            self._let_go_of(shard)  # gained again at the next step, if still assigned
            raise
        self.shards[shard] = engine
        self._claims[shard] = claim
        log.info("shard %d: claimed by %s, generation %d", shard, self.name, claim.generation)

    def _fenced_off(self, shard: int, error: ShardFenced) -> None:
        """Another worker claimed ``shard`` since this one did: the group took this one for dead and
        it has not heard yet. Let the shard go, its rows left to their owner."""
        log.warning("%s: this worker lets the shard go", error)
        with self._handoff:
            if shard in self._assigned():  # the revoke is still to come: it lifts the fence
                self._fenced[shard] = self.ingestor.consumer
            self._lost.add(shard)
        self._lose(shard)

    def _lose(self, shard: int) -> None:
        engine = self.shards.pop(shard)
        claim = self._claims.pop(shard)
        self._published.pop(shard, None)
        self._reported.pop(shard, None)  # its row stays until the new owner reports (stale meanwhile)
        try:
            engine.close()
            with self._handoff:
                lost = shard in self._lost
            if lost:  # its new owner may have published already: its publish replaces these
                log.info("shard %d: moved to another worker (lost: the group took this one for dead)", shard)
            else:
                try:
                    dropped = self.store.candidates.drop_shard(shard, claim=claim)
                except ShardFenced as error:
                    log.info("shard %d: moved to another worker; nothing dropped: %s", shard, error)
                else:
                    log.info(
                        "shard %d: moved to another worker; %d of its unleased candidates dropped",
                        shard,
                        dropped,
                    )
        finally:
            self._let_go_of(shard)

    def _let_go_of(self, shard: int) -> None:
        """This worker keeps nothing of ``shard`` any more: a revoke waiting for it goes on."""
        with self._handoff:
            self._held -= {shard}
            self._lost.discard(shard)
            self._handoff.notify_all()

    def _follow_versions(self) -> None:
        """Serve the newest version the store recorded, once its file loads."""
        row = self.store.latest_model()
        if row is None or int(row["version"]) <= self.version or not row["path"]:
            return
        number, self.version = int(row["version"]), int(row["version"])  # a file that fails: not again
        try:
            version = self.models.load(row["path"])
            if version.version != number:
                raise ValueError(f"the file holds version {version.version}")
        except Exception as error:
            log.warning("model version %d is not served: %s: %s", number, type(error).__name__, error)
            return
        for engine in self.shards.values():
            if engine.serving is None or engine.serving.version < number:
                engine.adopt(version)
        log.info("serving model version %d on shards %s", number, sorted(self.shards))

    def _publish(self, shard: int, engine: Engine) -> None:
        """The shard's best samples to the shared queue, when they changed (at most every
        ``PUBLISH_EVERY_S``, but at once with a new version or a drift's raised random share)."""
        snapshot, now, settings = engine.snapshot, time.monotonic(), self.settings
        best = settings.candidates_per_shard
        # No random share, no picks: an id among both the best and the picks is a pick, which a lease
        # takes only at random, so the queue would not serve the best first. A drift raises the share
        # (the trainer reports it): more picks meanwhile.
        share = random_share(self.reported.get(), settings.random_share, settings.drift_random_share)
        n_picks = picks_per_shard(best, settings.random_share, share)
        last = self._published.get(shard)
        if last is not None:
            published, when, picked = last
            if published is snapshot and picked == n_picks:
                return
            same = published.queue.version == snapshot.queue.version and picked == n_picks
            if same and now - when < PUBLISH_EVERY_S:
                return
        view = engine.pool.view(max(best, n_picks))  # its reservoir: a uniform sample of the shard's stream
        reason = "uncertainty" if view.version else "cold start"
        try:
            self.store.candidates.publish(
                shard,
                view.version,
                view.ranked[:best],
                view.ranked_scores[:best].tolist(),
                reason,
                picks=view.reservoir[:n_picks],
                pick_scores=view.reservoir_scores[:n_picks].tolist(),
                stream=engine.pool.arrivals,
                claim=self._claims[shard],  # fenced: changes nothing once another worker claimed it
            )
        except ShardFenced as error:
            self._fenced_off(shard, error)
            return
        self._published[shard] = (snapshot, now, n_picks)

    def _report(self, shard: int, engine: Engine) -> None:
        """The shard's numbers to ``shard_stats``, every ``REPORT_EVERY_S``."""
        now = time.monotonic()
        if now - self._reported.get(shard, -REPORT_EVERY_S) < REPORT_EVERY_S:
            return
        # The pool's and retention's numbers as they are now: the snapshot's are those of its last change.
        retention = None if engine.retention is None else engine.retention.state()
        stats = {**engine.snapshot.stats, **engine.pool.counts(), "retention": retention}
        try:
            self.store.shard_stats.report(shard, self.name, shard_report(stats), claim=self._claims[shard])
        except ShardFenced as error:  # also how a stalled worker with nothing to publish learns it
            self._fenced_off(shard, error)
            return
        self._reported[shard] = now

    def close(self) -> None:
        for engine in self.shards.values():
            engine.close()
        self.ingestor.close()
        self.labels.close()
        self.stream.close()
        self.store.close()


__all__ = ["ShardStore", "TrainerRole", "WorkerRole", "labels_group"]
