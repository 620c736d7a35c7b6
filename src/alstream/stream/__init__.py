"""Message streams: Kafka in production, an embedded durable log on a laptop, one interface."""

from __future__ import annotations

from pathlib import Path

from alstream.stream.base import Consumer, Message, Record, Stream, StreamUnavailable


def open_stream(kafka_bootstrap: str | None, data_dir: Path) -> Stream:
    """A KafkaStream when a bootstrap address is given, else an EmbeddedLog in `data_dir / "log"`."""
    if kafka_bootstrap:
        from alstream.stream.kafka import KafkaStream

        return KafkaStream(kafka_bootstrap)
    from alstream.stream.log import EmbeddedLog

    return EmbeddedLog(Path(data_dir) / "log")


__all__ = ["Consumer", "Message", "Record", "Stream", "StreamUnavailable", "open_stream"]
