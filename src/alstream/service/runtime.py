"""Everything the service runs, wired from the settings: store, stream, consumer, engine.

The orchestrator that records full retrains is given, never chosen here: ``alstream serve``
(:mod:`alstream.cli`) picks it from the ``orchestrator`` setting.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from alstream.messages import InvalidBatch, ItemError, Label, Sample, encode_label, encode_sample
from alstream.service.backlog import Backlog
from alstream.service.demo import digits_demo
from alstream.service.engine import Engine, EngineConfig
from alstream.service.featurize import Featurizer, featurizer
from alstream.service.ingest import RUN_ENDS_WITHIN_S, Ingestor, Topics
from alstream.service.limits import RateLimiter
from alstream.service.model_files import ModelFiles
from alstream.service.pool import bytes_per_sample, size_for
from alstream.service.private import create_private
from alstream.service.security import Gatekeeper
from alstream.service.shared_queue import SharedQueue
from alstream.service.trainer import RetrainPolicy
from alstream.service.versions import Orchestrator
from alstream.settings import Settings
from alstream.store import Store
from alstream.store.audits import Audits
from alstream.stream import LogLimits, RevokeHook, Stream, open_stream

log = logging.getLogger(__name__)
PUBLISH_CHUNK = 5000


def open_parts(settings: Settings, *, cooperative: bool = False) -> tuple[Store, Stream, Topics]:
    """The store (tables created) and the stream the settings name, with the topic names
    (``cooperative``: Kafka consumers that rebalance incrementally, as workers do)."""
    create_private(settings)
    store = Store(settings.database_url)
    store.create()
    limits = LogLimits(settings.log_segment_bytes, settings.log_retention_s, settings.log_retention_bytes)
    stream = open_stream(
        settings.kafka_bootstrap,
        settings.data_dir,
        instance_id=settings.consumer_instance_id,
        log_limits=limits,
        cooperative=cooperative,
    )
    return store, stream, Topics(settings.samples_topic, settings.labels_topic, settings.dead_letter_topic)


def open_ingestor(
    settings: Settings,
    stream: Stream,
    store: Store,
    topics: Topics,
    on_stored: Callable[[], None] | None = None,
    *,
    hold: Callable[[], bool] | None = None,
    only: str | None = None,
    group: str | None = None,
    on_revoke: RevokeHook | None = None,
) -> Ingestor:
    """The consumer of the settings' topics (``only``: of that one), as the settings' consumer group
    (or ``group``); ``on_revoke``: see :class:`Ingestor`."""
    return Ingestor(
        stream,
        store,
        settings.project,
        topics,
        group or settings.consumer_group,
        max_message_bytes=settings.max_message_bytes,
        on_stored=on_stored,
        hold=hold,
        only=only,
        on_revoke=on_revoke,
    )


def pool_size(settings: Settings, width: int) -> int:
    """The most unlabeled samples of ``width`` features the pool holds: ``max_pool``, else what fits
    in ``max_pool_mb``."""
    return settings.max_pool or size_for(settings.max_pool_mb, width)


def backlog(settings: Settings, store: Store) -> Backlog | None:
    """What holds a consumer apart (``alstream consume``) while retention is behind; None without
    retention."""
    if settings.retention_s is None:
        return None
    width = featurizer(settings.project, settings.text_features).width
    return Backlog(
        store,
        retention_s=settings.retention_s,
        max_pool=pool_size(settings, width),
        max_overdue=settings.retention_max_overdue,
    )


def retrain_policy(settings: Settings) -> RetrainPolicy:
    """When the settings say to train the next version."""
    return RetrainPolicy(
        after_labels=settings.retrain_after_labels,
        interval_s=settings.retrain_interval_s,
        online=settings.online_updates,
        full_every=settings.full_retrain_every,
        min_per_class=settings.min_labels_per_class,
    )


def engine_config(
    settings: Settings, width: int, *, track: bool | None = None, **changes: Any
) -> EngineConfig:
    """The engine's settings for samples of ``width`` features (``track`` None: the ``mlflow``
    setting); ``changes`` replace fields (a role's own)."""
    config = EngineConfig(
        classes=list(settings.project.classes),
        n_features=width,
        strategy=settings.strategy,
        model=settings.model,
        policy=retrain_policy(settings),
        lease_s=settings.lease_s,
        random_share=settings.random_share,
        project="demo-digits" if settings.demo else "project",
        track=settings.mlflow if track is None else track,
        standardize=settings.project.data != "text",
        seed=settings.seed,
        max_leases_per_annotator=settings.max_leases_per_annotator,
        max_leases_per_token=settings.max_leases_per_token,
        max_waiting_labels=settings.max_waiting_labels,
        max_pool=pool_size(settings, width),
        reservoir_share=settings.reservoir_share,
        max_age_s=settings.max_age_s,
        retention_s=settings.retention_s,
        retention_max_overdue=settings.retention_max_overdue,
        drift_reaction=settings.drift_reaction,
        drift_delta=settings.drift_delta,
        drift_boost_s=settings.drift_boost_s,
        drift_random_share=settings.drift_random_share,
        drift_old_weight=settings.drift_old_weight,
        selector=settings.selector,
        labels_per_hour=None if settings.label_budget == "auto" else float(settings.label_budget),
        pause_when_stable=settings.pause_when_stable,
    )
    return dataclasses.replace(config, **changes)


def open_engine(
    settings: Settings,
    store: Any,
    featurizer: Featurizer,
    *,
    holdout: tuple[np.ndarray, np.ndarray] | None = None,
    orchestrator: Orchestrator | None = None,
    track: bool | None = None,
    audits: Audits | None = None,
    **changes: Any,
) -> Engine:
    """An engine on ``store`` as the settings say (``changes``: fields of its config replaced), its
    model files under ``data_dir/models``; ``audits``: see :class:`Engine`."""
    config = engine_config(settings, featurizer.width, track=track, **changes)
    assert config.max_pool is not None
    mib = config.max_pool * bytes_per_sample(config.n_features) / 2**20
    share = round(100 * config.reservoir_share)
    log.info(
        "the pool holds at most %d unlabeled samples (about %.0f MiB), %d%% of them a uniform "
        "sample of the stream",
        config.max_pool,
        mib,
        share,
    )
    models = ModelFiles(settings.data_dir / "models", keep=settings.keep_model_files)
    return Engine(
        config,
        store,
        holdout=holdout,
        orchestrator=orchestrator,
        featurizer=featurizer,
        model_files=models,
        audits=audits,
    )


class Runtime:
    """Opens the parts, runs the consumer and the engine in background threads, closes them."""

    def __init__(
        self,
        settings: Settings,
        *,
        consume: bool = True,
        track: bool | None = None,
        orchestrator: Orchestrator | None = None,
        stateless: bool = False,
    ) -> None:
        """``track``: log versions to MLflow (None: the ``mlflow`` setting); ``orchestrator``: where full
        retrains are recorded after they serve (None: nowhere but the store), closed with the runtime;
        ``stateless``: an API replica of several (no consumer, no pool, no training, no demo seeded:
        the queue is the store's :class:`~alstream.service.shared_queue.SharedQueue`)."""
        self.settings = settings
        schema = settings.project
        self.store, self.stream, self.topics = open_parts(settings)
        admin = settings.admin_token.get_secret_value() if settings.admin_token else None
        self.gatekeeper = Gatekeeper(self.store.tokens, admin)
        self.first_token = self.gatekeeper.first_start()  # shown once, never logged
        self.send_limiter = RateLimiter(settings.send_rate_per_s, settings.send_burst)
        self.queue_limiter = RateLimiter(settings.queue_rate_per_s, settings.queue_burst)
        self.labels_limiter = RateLimiter(settings.labels_rate_per_s, settings.labels_burst)
        holdout = None
        if settings.demo and not stateless:
            samples, holdout = digits_demo(settings.seed)
            if not self.store.counts()["samples"]:
                self.publish_samples(samples)
        self.featurizer = featurizer(schema, settings.text_features)  # texts: hashed on arrival
        self.orchestrator = orchestrator
        self.engine: Engine | SharedQueue
        self.ingestor: Ingestor | None = None
        if stateless:
            config = engine_config(settings, self.featurizer.width, track=False)
            models = ModelFiles(settings.data_dir / "models", keep=settings.keep_model_files)
            self.engine = SharedQueue(config, self.store, self.featurizer, models)
        else:
            engine = open_engine(
                settings, self.store, self.featurizer, holdout=holdout, orchestrator=orchestrator, track=track
            )
            self.engine = engine
            if consume:
                self.ingestor = open_ingestor(
                    settings,
                    self.stream,
                    self.store,
                    self.topics,
                    on_stored=engine.wake,
                    hold=engine.store_behind,
                )
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def publish(self, samples: list[Sample], labels: list[Label]) -> None:
        """Samples, then labels, into the stream, durably; StreamUnavailable when it does not take them
        in time. InvalidBatch, and nothing published, when a message would be over
        ``max_message_bytes`` (the consumer would dead-letter it)."""
        sample_messages = [(s.id.encode(), encode_sample(s)) for s in samples]
        label_messages = [(label.id.encode(), encode_label(label)) for label in labels]
        self._sized(sample_messages + label_messages)  # both checked before either is published
        for start in range(0, len(sample_messages), PUBLISH_CHUNK):
            chunk = sample_messages[start : start + PUBLISH_CHUNK]
            self.stream.publish(self.topics.samples, chunk, timeout=self.settings.publish_timeout_s)
        if label_messages:
            self.stream.publish(self.topics.labels, label_messages, timeout=self.settings.publish_timeout_s)

    def publish_samples(self, samples: list[Sample]) -> None:
        self.publish(samples, [])

    def publish_labels(self, labels: list[Label]) -> None:
        self.publish([], labels)

    def _sized(self, messages: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        limit = self.settings.max_message_bytes
        errors = [
            ItemError(i, key.decode(), "", f"{len(value)} bytes encoded, over max_message_bytes ({limit})")
            for i, (key, value) in enumerate(messages)
            if len(value) > limit
        ]
        if errors:
            raise InvalidBatch(errors)
        return messages

    def start(self) -> None:
        workers: list[tuple[str, Callable[[threading.Event], None]]] = []
        if isinstance(self.engine, Engine):
            workers.append(("alstream-engine", self.engine.run))
        if self.ingestor is not None:
            workers.append(("alstream-consumer", self.ingestor.run))
        for name, target in workers:
            thread = threading.Thread(target=target, args=(self._stop,), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=RUN_ENDS_WITHIN_S)
        if self.ingestor is not None:
            self.ingestor.close()
        self.engine.close()
        if self.orchestrator is not None:
            self.orchestrator.close()
        self.stream.close()
        self.store.close()
