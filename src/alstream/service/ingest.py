"""The consumer: stream records into the store, exactly once in effect.

Records are decoded and validated against the project's schema; a malformed one goes to the
dead-letter topic with the reason and never stops the loop. Each polled batch is written in one
database transaction, and the stream offsets are committed only after that commit: a crash at
any point replays at most the last batch, which the store's idempotent writes absorb.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import re
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import orjson

from alstream.messages import InvalidMessage, ProjectSchema, Sample, decode_label, decode_samples
from alstream.store import LabelRow, SampleRow, Store
from alstream.stream import Consumer, Record, Stream

log = logging.getLogger("alstream.ingest")

# The namespace of the ids given to samples that arrive without one (a uuid5 of the record's place).
STREAM_ID_NAMESPACE = uuid.UUID("5f0c3f8e-8b4e-4d43-9a52-4f7a3c1b9d20")
_GENERATED_ID = re.compile(r"[0-9a-f]{12}4[0-9a-f]{19}")  # what decode_sample makes up: uuid4().hex


@dataclass(frozen=True)
class Topics:
    samples: str = "alstream.samples"
    labels: str = "alstream.labels"
    dead_letter: str = "alstream.dead-letter"


@dataclass
class IngestCounts:
    samples: int = 0
    labels: int = 0
    dead_letters: int = 0
    batches: int = 0


class Ingestor:
    """Consumes the samples and labels topics into the store as one consumer group."""

    def __init__(
        self, stream: Stream, store: Store, schema: ProjectSchema, topics: Topics, group: str
    ) -> None:
        self.stream, self.store, self.schema, self.topics, self.group = stream, store, schema, topics, group
        self.consumer = self._open()
        self.counts = IngestCounts()

    def step(self, max_records: int = 2000, timeout: float = 0.2) -> int:
        """Poll one batch, store it, then commit its offsets; returns how many records it held."""
        records = self.consumer.poll(max_records, timeout)
        if not records:
            return 0
        with _collector_paused():
            samples, labels, dead = self._decode(records)
        if dead:
            self.stream.publish(self.topics.dead_letter, dead)
        new_samples, new_labels = self.store.write_batch(samples, labels)
        self.consumer.commit(records)
        self.counts.samples += new_samples
        self.counts.labels += new_labels
        self.counts.dead_letters += len(dead)
        self.counts.batches += 1
        return len(records)

    def _decode(self, records: Sequence[Record]) -> tuple[list[SampleRow], list[LabelRow], list[tuple]]:
        samples: list[SampleRow] = []
        labels: list[LabelRow] = []
        dead: list[tuple[bytes | None, bytes]] = []
        # The samples' features are converted for the whole batch at once; labels stay in record order.
        values = [r.value for r in records if r.topic != self.topics.labels]
        decoded = iter(decode_samples(values, self.schema))
        for record in records:
            source = f"{record.topic}:{record.partition}"
            try:
                if record.topic == self.topics.labels:
                    label = decode_label(record.value, self.schema)
                    labels.append(LabelRow(label.id, label.label, label.annotator, label.skipped, source,
                                           record.offset, label.token_key))  # fmt: skip
                    continue
                sample = next(decoded)
                if isinstance(sample, InvalidMessage):
                    raise sample
                sample = _with_stable_id(sample, record)
            except InvalidMessage as error:
                dead.append((record.key, _dead_letter(record, str(error))))
                continue
            samples.append(SampleRow(sample.id, sample.features, sample.text, sample.meta))
            if sample.label is not None:  # a sample that arrives with its label is a labeled sample
                labels.append(LabelRow(sample.id, sample.label, sample.annotator, False, source,
                                       record.offset, sample.token_key))  # fmt: skip
        return samples, labels, dead

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; a failing batch is retried (its offsets stay uncommitted)."""
        while not stop.is_set():
            try:
                self.step()
            except Exception:
                log.exception("ingest batch failed; it will be consumed again")
                self._reopen_until_done(stop)

    def _reopen_until_done(self, stop: threading.Event) -> None:
        """Reopen the consumer after a failed batch; if the stream itself is down, keep trying."""
        while not stop.wait(1.0):
            try:
                self._reopen()
                return
            except Exception:
                log.exception("cannot reopen the stream consumer; trying again")

    def _open(self) -> Consumer:
        return self.stream.consumer(self.group, [self.topics.samples, self.topics.labels])

    def _reopen(self) -> None:
        """Start again from the committed offsets, so the failed batch is read again."""
        try:
            self.consumer.close()
        finally:
            self.consumer = self._open()

    def close(self) -> None:
        self.consumer.close()


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Decoding a batch makes ~10^4 containers that live until the batch is stored. Collecting
    (scanning) them mid-batch finds no garbage but cost a quarter of the consumer's time; they are
    freed by reference counting either way."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _with_stable_id(sample: Sample, record: Record) -> Sample:
    """A sample sent without an id gets one derived from its place in the stream, not a random one:
    a batch replayed after a crash then writes the same ids again, which the store ignores."""
    if not _GENERATED_ID.fullmatch(sample.id) or orjson.loads(record.value).get("id") is not None:
        return sample
    place = f"{record.topic}:{record.partition}:{record.offset}"
    return dataclasses.replace(sample, id=uuid.uuid5(STREAM_ID_NAMESPACE, place).hex)


def _dead_letter(record: Record, reason: str) -> bytes:
    # A Kafka record may have no value at all (a tombstone): null, not a crash of the loop.
    value = None if record.value is None else record.value.decode("utf-8", errors="replace")
    return orjson.dumps({"reason": reason, "topic": record.topic, "partition": record.partition,
                         "offset": record.offset, "value": value})  # fmt: skip
