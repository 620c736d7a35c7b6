"""KafkaStream: the Stream interface on Apache Kafka through confluent-kafka."""

from __future__ import annotations

import fcntl
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from confluent_kafka import Consumer as _KafkaConsumer
from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from alstream.errors import StreamUnavailable
from alstream.stream.base import Message, Record, RevokeHook, next_positions
from alstream.stream.frames import check_topic

log = logging.getLogger(__name__)

DELIVERY_TIMEOUT_MS = 30_000
SOCKET_TIMEOUT_MS = 10_000
# A member that stops heartbeating (a killed process) leaves its group after this long, instead of
# librdkafka's default 45 s; heartbeats come from librdkafka's own thread, so slow batches don't count.
SESSION_TIMEOUT_MS = 10_000
HEARTBEAT_INTERVAL_MS = 2_000
# A commit refused with these: the group rebalanced (or is rebalancing) under it; see KafkaConsumer.commit
REBALANCING = frozenset(
    {KafkaError.ILLEGAL_GENERATION, KafkaError.REBALANCE_IN_PROGRESS, KafkaError.UNKNOWN_MEMBER_ID}
)
ERROR_LOG_EVERY_S = 60.0  # a consumer's non-fatal error: one warning per error code this often at most


def client_config(bootstrap: str, client_id: str) -> dict[str, Any]:
    """Settings every client shares: fail fast and retry soon when the broker is away."""
    return {
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "socket.timeout.ms": SOCKET_TIMEOUT_MS,
        "reconnect.backoff.ms": 100,
        "reconnect.backoff.max.ms": 2_000,
        "logger": log,  # librdkafka's log lines go to Python logging, not stderr
    }


def producer_config(bootstrap: str, client_id: str) -> dict[str, Any]:
    """Idempotent, acknowledged by all in-sync replicas, lightly batched and compressed."""
    return {
        **client_config(bootstrap, client_id),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        "message.timeout.ms": DELIVERY_TIMEOUT_MS,
    }


class TopicCreator:
    """Creates topics on first use (once per process and topic), leaving existing ones alone."""

    def __init__(self, admin: AdminClient, partitions: int) -> None:
        self._admin = admin
        self._partitions = partitions
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def ensure(self, topics: Sequence[str], timeout: float) -> None:
        with self._lock:
            missing = [check_topic(t) for t in topics if t not in self._known]
            if not missing:
                return
            new = [NewTopic(t, num_partitions=self._partitions) for t in missing]
            futures = self._admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout)
            for topic, future in futures.items():
                self._wait(topic, future, timeout)
                self._known.add(topic)

    @staticmethod
    def _wait(topic: str, future, timeout: float) -> None:
        try:
            future.result(timeout=max(timeout, 0.1))
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise StreamUnavailable(f"cannot create topic {topic!r}: {exc}") from exc
        except Exception as exc:  # concurrent.futures.TimeoutError and friends
            raise StreamUnavailable(f"cannot create topic {topic!r}: {exc!r}") from exc


class KafkaStream:
    """Publishes with an idempotent producer; consumers commit explicitly and synchronously.

    With ``member_dir``, consumers are static group members (``group.instance.id``, see
    :class:`MemberSlot`): a consumer restarted after a crash gets its partitions back at once
    instead of after the session timeout. ``instance_id`` prefixes their ids (default: host name).
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        client_id: str = "alstream",
        partitions: int = 1,
        member_dir: Path | None = None,
        instance_id: str | None = None,
        cooperative: bool = False,
    ) -> None:
        self.bootstrap = bootstrap
        self.cooperative = cooperative  # consumers rebalance incrementally (a worker's shards)
        self._client_id = client_id
        self._member_dir = member_dir
        self._instance_id = instance_id or os.uname().nodename
        self._producer = Producer(producer_config(bootstrap, client_id))
        self._topics = TopicCreator(AdminClient(client_config(bootstrap, client_id)), partitions)

    def publish(self, topic: str, messages: Sequence[Message], timeout: float = 10.0) -> None:
        """Wait (up to ``timeout``) for the broker to acknowledge each of these messages, not the
        other threads' ones. When it does not, the producer's queue is purged: a message not sent yet
        never will be, so it cannot land behind the caller's back; one already sent may have landed."""
        deadline = time.monotonic() + timeout
        self._topics.ensure([topic], timeout)
        if not messages:
            return
        reports: list[KafkaError | None] = []  # one per message; appended by whichever thread polls

        def on_delivery(err: KafkaError | None, _msg: object) -> None:
            reports.append(err)

        try:
            for key, value in messages:
                self._produce(topic, key, value, on_delivery, deadline)
            while len(reports) < len(messages) and (left := deadline - time.monotonic()) > 0:
                self._producer.flush(min(left, 0.01))  # sends at once (ignores linger.ms), serves reports
        except (KafkaException, StreamUnavailable) as exc:
            self._give_up()
            raise StreamUnavailable(f"cannot publish to {topic!r}: {exc}") from exc
        if len(reports) < len(messages):
            self._give_up()
            left = len(messages) - len(reports)
            raise StreamUnavailable(f"{left} messages to {topic!r} not acknowledged within {timeout}s")
        errors = [err for err in reports if err is not None]
        if errors:
            raise StreamUnavailable(f"{len(errors)} messages to {topic!r} failed: {errors[0]}")

    def _give_up(self) -> None:
        """Drop every queued and in-flight message (their publishers fail too: the broker is away)."""
        self._producer.purge()
        self._producer.poll(0)  # serve the purged messages' delivery reports

    def _produce(self, topic: str, key: bytes | None, value: bytes, on_delivery, deadline: float) -> None:
        """Queue one message, serving delivery reports while the local queue is full."""
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
                self._producer.poll(0)
                return
            except BufferError:
                if time.monotonic() >= deadline:
                    raise StreamUnavailable("producer queue full: the broker is not keeping up") from None
                self._producer.poll(0.05)

    def consumer(
        self, group: str, topics: Sequence[str], *, on_revoke: RevokeHook | None = None
    ) -> KafkaConsumer:
        self._topics.ensure(topics, 10.0)
        slot = None if self._member_dir is None else MemberSlot(self._member_dir, group, self._instance_id)
        return KafkaConsumer(
            self.bootstrap,
            group,
            topics,
            client_id=self._client_id,
            slot=slot,
            cooperative=self.cooperative,
            on_revoke=on_revoke,
        )

    def close(self) -> None:
        self._producer.flush(5.0)


class MemberSlot:
    """A static member id of ``group`` that only this consumer holds: ``{prefix}-{n}`` for the lowest
    ``n`` whose lock file under ``directory`` is free. The flock dies with the process (SIGKILL too),
    so a restarted consumer takes the same id back, and two on one host never share one."""

    def __init__(self, directory: Path, group: str, prefix: str) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for n in itertools.count():
            fd = os.open(directory / f"{quote(group, safe='')}.{n}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.id, self._fd = f"{prefix}-{n}", fd
            return

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class ErrorLog:
    """Warns of a consumer's non-fatal errors, at most once per error code every ``every_s`` seconds
    (a broker that is away repeats one in a tight loop); the next warning counts those held back."""

    def __init__(self, every_s: float = ERROR_LOG_EVERY_S, clock: Callable[[], float] = time.monotonic):
        self.every_s = every_s
        self._clock = clock
        self._last: dict[int, float] = {}  # error code -> when it was last logged
        self._held: dict[int, int] = {}  # error code -> how many since, not logged

    def warn(self, err: KafkaError) -> bool:
        """Log ``err`` unless its code was logged less than ``every_s`` ago; True if it was logged."""
        code, now = err.code(), self._clock()
        last = self._last.get(code)
        if last is not None and now - last < self.every_s:
            self._held[code] = self._held.get(code, 0) + 1
            return False
        self._last[code] = now
        held = self._held.pop(code, 0)
        more = f"; {held} more like it since the last warning" if held else ""
        log.warning("Kafka consumer error %s (not fatal): %s%s", err.name(), err.str(), more)
        return True


class KafkaConsumer:
    """A group member reading from the committed offsets (earliest when there are none).

    With a ``slot`` it is a static member: closing (or dying) does not leave the group, and the
    next consumer with the same id resumes its partitions without waiting for a rebalance.
    ``cooperative``: rebalances move only the partitions that change owner (Kafka's cooperative-sticky
    assignor), instead of revoking every partition of every member first; a group's members must
    all agree on it. ``on_revoke`` (see :data:`~alstream.stream.base.RevokeHook`): with cooperative
    rebalancing, a revoked partition goes to its next owner only once this member rejoins, after the
    hook returned, so a caller that lets go of a partition in the hook never shares it with the next.
    """

    def __init__(
        self,
        bootstrap: str,
        group: str,
        topics: Sequence[str],
        *,
        client_id: str,
        slot: MemberSlot | None,
        cooperative: bool = False,
        on_revoke: RevokeHook | None = None,
    ) -> None:
        config = {
            **client_config(bootstrap, client_id),
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS,
        }
        if slot is not None:
            config["group.instance.id"] = slot.id
        if cooperative:
            config["partition.assignment.strategy"] = "cooperative-sticky"
        self._slot = slot
        self._on_revoked = on_revoke
        self._errors = ErrorLog()
        self._assigned: frozenset[tuple[str, int]] = frozenset()  # replaced whole: any thread may read it
        self._consumer = _KafkaConsumer(config)
        self._consumer.subscribe(
            list(topics), on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )

    def assigned(self, topic: str) -> frozenset[int]:
        """The partitions of ``topic`` this member owns, as of its last poll (any thread)."""
        return frozenset(partition for t, partition in self._assigned if t == topic)

    def _on_assign(self, _consumer: object, partitions: list[TopicPartition]) -> None:
        # confluent-kafka then assigns them (incrementally when cooperative), as without a callback
        self._assigned = self._assigned | {(p.topic, p.partition) for p in partitions}

    def _on_revoke(self, _consumer: object, partitions: list[TopicPartition]) -> None:
        self._taken(partitions, lost=False)

    def _on_lost(self, _consumer: object, partitions: list[TopicPartition]) -> None:
        self._taken(partitions, lost=True)

    def _taken(self, partitions: list[TopicPartition], lost: bool) -> None:
        gone = frozenset((p.topic, p.partition) for p in partitions)
        self._assigned = self._assigned - gone  # first: the hook's caller sees them gone
        if self._on_revoked is None or not gone:
            return
        try:
            self._on_revoked(gone, lost)
        except Exception:  # raised in a callback, it would come out of consume(), the rebalance half done
            log.exception("the revoke hook failed; the partitions go all the same")

    def poll(self, max_records: int = 1000, timeout: float = 1.0) -> list[Record]:
        """The next records; raises StreamUnavailable once the consumer has failed for good (reopen it)."""
        records: list[Record] = []
        for msg in self._consumer.consume(num_messages=max_records, timeout=timeout):
            err = msg.error()
            if err is not None:
                # A fatal error (e.g. fenced by another member with this static id) comes as a _FATAL
                # event whose fatal() is False: either way this consumer is done and must be reopened.
                if err.fatal() or err.code() == KafkaError._FATAL:
                    raise StreamUnavailable(f"consumer failed: {err}")
                self._errors.warn(err)  # e.g. an unknown topic or partition: librdkafka retries
                continue
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            assert topic is not None and partition is not None and offset is not None  # not an error
            records.append(Record(topic, partition, offset, msg.key(), msg.value()))
        return records

    def commit(self, records: Sequence[Record]) -> None:
        """Commit the records' positions. One the group refuses because it is rebalancing (or has
        rebalanced without this member: the generation is over) is skipped with a warning, not
        raised: the records are handled, a later commit of this member covers them, else the
        partition's next owner reads them again (from the last committed position). Reopening the
        consumer for it would only rebalance the group again, and a static member that rejoins as a
        new consumer in the middle of a cooperative rebalance can leave a partition without an owner
        (the follow-up rebalance that hands it over never comes)."""
        offsets = [TopicPartition(t, p, o) for (t, p), o in next_positions(records).items()]
        if not offsets:
            return
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            if err is not None and err.code() in REBALANCING:
                log.warning("offset commit skipped, the group is rebalancing: %s", err.str())
                return
            raise StreamUnavailable(f"commit failed: {exc}") from exc

    def close(self) -> None:
        try:
            self._consumer.close()
        finally:
            if self._slot is not None:  # only now may another consumer take this member id
                self._slot.release()
