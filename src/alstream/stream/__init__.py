"""Message streams: Kafka in production, an embedded durable log on a laptop, one interface."""

from __future__ import annotations

from pathlib import Path

from alstream.errors import StreamUnavailable
from alstream.stream.base import Consumer, Message, Record, RevokeHook, Stream
from alstream.stream.log_retention import LogLimits


def open_stream(
    kafka_bootstrap: str | None,
    data_dir: Path,
    *,
    instance_id: str | None = None,
    log_limits: LogLimits | None = None,
    cooperative: bool = False,
) -> Stream:
    """A KafkaStream when a bootstrap address is given, else an EmbeddedLog in `data_dir / "log"`
    with `log_limits` (segment size, retention; default: LogLimits()).

    Kafka consumers are static group members, their ids (prefixed ``instance_id``, default the host
    name) held by lock files in `data_dir / "kafka-members"`; ``cooperative``: they rebalance
    incrementally (see :class:`~alstream.stream.kafka.KafkaConsumer`)."""
    if kafka_bootstrap:
        from alstream.stream.kafka import KafkaStream

        members = Path(data_dir) / "kafka-members"
        return KafkaStream(
            kafka_bootstrap, member_dir=members, instance_id=instance_id, cooperative=cooperative
        )
    from alstream.stream.log import EmbeddedLog

    return EmbeddedLog(Path(data_dir) / "log", log_limits)


__all__ = [
    "Consumer",
    "LogLimits",
    "Message",
    "Record",
    "RevokeHook",
    "Stream",
    "StreamUnavailable",
    "open_stream",
]
