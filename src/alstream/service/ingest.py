"""The consumer: stream records into the store, exactly once in effect.

Records are decoded and validated against the project's schema; a malformed one goes to the
dead-letter topic with the reason and never stops the loop. Each polled batch is written in one
database transaction, and the stream offsets are committed only after that commit: a crash at
any point replays at most the last batch, which the store's idempotent writes absorb.

A record that passes validation but that the database refuses (a poison record: a value the
validation let through) must not stop the stream either. When a batch fails with an error that is
not transient, it is split in halves, recursively, until each failing record is alone: the store's
refusal of that one record is its reason on the dead-letter topic, and every other record is
stored. A record that fails alone with an error that is not about its values (the disk is full, a
table is missing) is not dead-lettered: the batch is read again, as after a transient error.

The order of one step:

1. poll a batch; decode it (malformed records become dead letters);
2. write it in one transaction (transient errors: bounded retries, then the batch is read again;
   other errors: bisect, as above);
3. publish the dead letters (at least once: a crash before step 4 publishes them again);
4. commit the batch's offsets.

:meth:`Ingestor.run` (without a ``hold``) overlaps one batch's write (step 2, on the writer's
thread) with the poll and decoding of the next (step 1, on the consumer's): steps 3 and 4 of a batch
come on the consumer's thread once its write is over (while the next one is written), so batches are
stored in order, one write at a time, each committed after it is stored: a crash still replays only
what was not committed.
A revoke (in the poll, on the consumer's thread) first stores and commits the batch in flight; a
stop waits for it ``STOP_WAIT_S`` at most, and a write that fails or hangs then leaves it uncommitted.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import orjson

from alstream.messages import InvalidMessage, ProjectSchema, Sample, collector, decode_label, decode_samples
from alstream.messages.ids import stream_id
from alstream.store import LabelRow, SampleRow, Store
from alstream.store.retry import is_bad_record, is_transient
from alstream.stream import Consumer, Record, RevokeHook, Stream

log = logging.getLogger(__name__)
T = TypeVar("T")

HOLD_CHECK_S = 0.05  # while the store is behind, how often the consumer looks again
MAX_HOLD_S = 60.0  # waiting at most this long in a row (Kafka's max.poll.interval.ms is 5 minutes)
# Records a batch at most: each batch costs a transaction and an offset commit (a round trip each)
BATCH_RECORDS = 5000
# At a stop, how long the batch in flight may take to be stored: a write that hangs longer (a
# database that stopped answering) is left uncommitted, read again by whoever consumes next.
STOP_WAIT_S = 10.0
STOP_LOOK_S = 0.5  # within run, how often a wait for a write looks whether the stop came
RUN_ENDS_WITHIN_S = STOP_WAIT_S + 5.0  # after its stop, run returns within this (a join's bound)


@dataclass(frozen=True)
class Topics:
    samples: str = "alstream.samples"
    labels: str = "alstream.labels"
    dead_letter: str = "alstream.dead-letter"


@dataclass
class _Entry:
    """A decoded record and the rows it becomes (a sample that arrives with its label: two)."""

    record: Record
    samples: list[SampleRow]
    labels: list[LabelRow]


DeadLetter = tuple[bytes | None, bytes]  # key, value
_Written = tuple[int, int, list[DeadLetter]]  # a batch's write: new samples, new labels, refused records


@dataclass
class _Pending:
    """A batch handed to the writer: its records (their offsets to commit), its dead letters so far,
    and the write's outcome to come (new samples, new labels, the records the store refused)."""

    records: Sequence[Record]
    dead: list[DeadLetter]
    written: Future[_Written]


@dataclass
class IngestCounts:
    samples: int = 0
    labels: int = 0
    dead_letters: int = 0
    batches: int = 0
    held_s: float = 0.0  # time spent waiting for the store to catch up (``hold``)


class Ingestor:
    """Consumes the samples and labels topics into the store as one consumer group."""

    def __init__(
        self,
        stream: Stream,
        store: Store,
        schema: ProjectSchema,
        topics: Topics,
        group: str,
        max_message_bytes: int = 1024 * 1024,
        on_stored: Callable[[], None] | None = None,
        hold: Callable[[], bool] | None = None,
        only: str | None = None,
        on_revoke: RevokeHook | None = None,
    ) -> None:
        """``only``: consume that one of the two topics (a worker's shards are its samples partitions);
        ``on_revoke``: called when the group takes partitions away (see
        :data:`~alstream.stream.base.RevokeHook`), by every consumer this ingestor opens."""
        self.stream, self.store, self.schema, self.topics, self.group = stream, store, schema, topics, group
        self.subscribed = [only] if only else [topics.samples, topics.labels]
        self.max_message_bytes = max_message_bytes
        self.on_stored = on_stored  # called after a batch stored new rows (the engine looks at once)
        self.on_revoke = on_revoke
        self.hold = hold  # true while the store is too far behind: wait before the next batch
        self._held_since: float | None = None
        self._pending: _Pending | None = None  # the batch handed to the writer, not committed yet
        self._pipelined = False  # True within run: a step's batch is committed by the next step
        self._broken: Exception | None = None  # the failure of a batch a revoke finished
        self._stop: threading.Event | None = None  # run's: once set, a write is waited for briefly
        self.counts = IngestCounts()
        self.consumer = self._open()
        self._writer = _Writer()  # the batches' writes (once the consumer opened: else no thread)
        weakref.finalize(self, self._writer.shutdown)  # its thread ends with an ingestor never closed

    def step(self, max_records: int = BATCH_RECORDS, timeout: float = 0.2) -> int:
        """Poll one batch, store it, then commit its offsets; returns how many records it held.

        Within :meth:`run` the store writes a batch on its own thread while the next one is polled
        and decoded here: once the last batch is stored this step hands its own over, then commits
        the last one's offsets (the next step, or a revoke, commits this one's)."""
        records = self.consumer.poll(max_records, 0.0 if self._pending else timeout)
        self._raise_broken()
        if not records:
            self._finish()
            return 0
        with collector.paused():  # the batch's containers live until it is stored
            entries, dead = self._decode(records)
        stored = self._stored()  # the last batch: its offsets are committed while this one is written
        self._pending = _Pending(records, dead, self._writer.submit(lambda: self._write(entries)))
        if stored is not None:
            self._settle(*stored)
        if not self._pipelined:
            self._finish()
        return len(records)

    def _finish(self, commit: bool = True) -> None:
        """Wait until the handed-over batch is stored; publish its dead letters, then commit its
        offsets (unless ``commit`` is False: read again by whoever owns its partitions next)."""
        stored = self._stored()
        if stored is not None:
            self._settle(*stored, commit=commit)

    def _stored(self) -> tuple[_Pending, _Written] | None:
        """The handed-over batch (none is, any more) and its write's outcome, once it is over (a
        write that fails, or takes too long, raises: the batch stays uncommitted)."""
        pending, self._pending = self._pending, None
        return None if pending is None else (pending, self._outcome(pending.written))

    def _outcome(self, written: Future[_Written], timeout: float | None = None) -> _Written:
        """``written``'s result, waited for ``timeout`` at most (None: until it is over); within
        :meth:`run`, once its stop is set, ``STOP_WAIT_S`` at most (a write that hangs: TimeoutError)."""
        stop = self._stop
        if timeout is None and stop is not None:  # until the stop, then STOP_WAIT_S more
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    return written.result(STOP_LOOK_S)
            timeout = STOP_WAIT_S
        return written.result(timeout)

    def _settle(self, batch: _Pending, written: _Written, commit: bool = True) -> None:
        """After a batch is stored: its dead letters, then (``commit``) its offsets, and its counts."""
        new_samples, new_labels, refused = written
        dead = batch.dead + refused
        if dead:
            self.stream.publish(self.topics.dead_letter, dead)
        if commit:
            self.consumer.commit(batch.records)
        self.counts.samples += new_samples
        self.counts.labels += new_labels
        self.counts.dead_letters += len(dead)
        self.counts.batches += 1
        if (new_samples or new_labels) and self.on_stored is not None:
            self.on_stored()

    def _abandon(self, timeout: float | None = None) -> None:
        """Drop the handed-over batch uncommitted (read again), once its write is over (or after
        ``timeout``: the write goes on, and the next consumer writes the batch again, idempotently)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            with contextlib.suppress(Exception):
                self._outcome(pending.written, timeout)

    def _revoked(self, partitions: frozenset[tuple[str, int]], lost: bool) -> None:
        """The consumer's revoke (in its poll, on this thread): the batch in flight is stored and
        committed (not when ``lost``: the group has given them away already) before they go."""
        try:
            self._finish(commit=not lost)
        except Exception as error:  # raised from the poll, after the rebalance: the batch is read again
            self._broken = error
            self._abandon()
        if self.on_revoke is not None:
            self.on_revoke(partitions, lost)

    def _raise_broken(self) -> None:
        """Raise what failed the batch a revoke finished, if one failed."""
        error, self._broken = self._broken, None
        if error is not None:
            raise error

    def _write(self, entries: list[_Entry]) -> _Written:
        """Store ``entries`` in one transaction: (new samples, new labels, dead letters). When the
        database refuses the batch, bisect it to dead-letter only the records it refuses alone."""
        if not entries:
            return 0, 0, []
        try:
            samples = [row for entry in entries for row in entry.samples]
            labels = [row for entry in entries for row in entry.labels]
            new_samples, new_labels = self.store.write_batch(samples, labels)
            return new_samples, new_labels, []
        except Exception as error:
            if is_transient(error):  # the retries are spent: read the batch again later
                raise
            if len(entries) == 1:
                if not is_bad_record(error):  # not the record's fault: never dead-letter it for that
                    raise
                record = entries[0].record
                reason = f"the store refused it: {_first_line(error)}"
                where = f"{record.topic}:{record.partition}@{record.offset}"
                log.warning("dead-lettering %s: %s", where, reason)
                return 0, 0, [(record.key, _dead_letter(record, reason))]
            half = len(entries) // 2
            first, second = self._write(entries[:half]), self._write(entries[half:])
            return first[0] + second[0], first[1] + second[1], first[2] + second[2]

    def _decode(self, records: Sequence[Record]) -> tuple[list[_Entry], list[DeadLetter]]:
        limit = self.max_message_bytes
        fits = [r.value is None or len(r.value) <= limit for r in records]
        # The samples' features are converted for the whole batch at once; labels stay in record order.
        held = [r for r, ok in zip(records, fits, strict=True) if ok and r.topic != self.topics.labels]
        decoded = decode_samples([r.value for r in held], self.schema, lambda i: _stream_id(held[i]))
        if len(held) == len(records) and all(type(s) is Sample and s.label is None for s in decoded):
            valid = cast(list[Sample], decoded)  # all of them, as just checked
            return [  # the common batch: unlabeled samples only, all valid
                _Entry(r, [SampleRow(s.id, s.features, s.text, s.meta, r.partition)], [])
                for r, s in zip(records, valid, strict=True)
            ], []
        entries: list[_Entry] = []
        dead: list[DeadLetter] = []
        samples = iter(decoded)
        for record, ok in zip(records, fits, strict=True):
            source = f"{record.topic}:{record.partition}"
            try:
                if not ok:
                    assert record.value is not None  # too big: it has one
                    raise InvalidMessage(f"{len(record.value)} bytes, over max_message_bytes ({limit})")
                if record.topic == self.topics.labels:
                    label = decode_label(record.value, self.schema)
                    row = LabelRow(
                        label.id,
                        label.label,
                        label.annotator,
                        label.skipped,
                        source,
                        record.offset,
                        label.token_key,
                    )
                    entries.append(_Entry(record, [], [row]))
                    continue
                sample = next(samples)
                if isinstance(sample, InvalidMessage):
                    raise sample
            except InvalidMessage as error:
                dead.append((record.key, _dead_letter(record, str(error))))
                continue
            stored = SampleRow(sample.id, sample.features, sample.text, sample.meta, record.partition)
            entry = _Entry(record, [stored], [])
            if sample.label is not None:  # a sample that arrives with its label is a labeled sample
                entry.labels.append(
                    LabelRow(
                        sample.id,
                        sample.label,
                        sample.annotator,
                        False,
                        source,
                        record.offset,
                        sample.token_key,
                    )
                )
            entries.append(entry)
        return entries, dead

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set, storing each batch while the next is polled (not with a
        ``hold``: it looks at the store with each batch stored); a failing batch is retried (its
        offsets, and those of the batches after it, stay uncommitted)."""
        self._pipelined, self._stop = self.hold is None, stop
        try:
            while not stop.is_set():
                try:
                    if self._waits(stop):
                        self._finish()
                        continue
                    self.step()
                except Exception:
                    log.exception("ingest batch failed; it will be consumed again")
                    self._abandon()
                    self._reopen_until_done(stop)
            try:  # the last batch handed over: stored and committed, unless its write fails or hangs
                self._finish()
            except Exception:
                log.exception("the last batch was not stored before the stop; it will be consumed again")
        finally:
            self._abandon()
            self._pipelined, self._stop = False, None

    def _waits(self, stop: threading.Event) -> bool:
        """Wait a moment while ``hold`` says the store is behind; False when it is time to consume.
        After ``MAX_HOLD_S`` of waiting one batch goes through all the same: a Kafka consumer that
        polls nothing for five minutes is put out of its group."""
        if self.hold is None or not self.hold():
            if self._held_since is not None:
                waited = time.monotonic() - self._held_since
                log.info("the store caught up after %.1f s: consuming again", waited)
                self._held_since = None
            return False
        now = time.monotonic()
        if self._held_since is None:
            self._held_since = now
            log.warning("retention is behind (the store grows): the consumer waits until it catches up")
        if now - self._held_since >= MAX_HOLD_S:
            self._held_since = now  # one batch, then wait again
            return False
        stop.wait(HOLD_CHECK_S)
        self.counts.held_s += time.monotonic() - now
        return True

    def _reopen_until_done(self, stop: threading.Event) -> None:
        """Reopen the consumer after a failed batch; if the stream itself is down, keep trying."""
        while not stop.wait(1.0):
            try:
                self._reopen()
                return
            except Exception:
                log.exception("cannot reopen the stream consumer; trying again")

    def _open(self) -> Consumer:
        return self.stream.consumer(self.group, self.subscribed, on_revoke=self._revoked)

    def _reopen(self) -> None:
        """Start again from the committed offsets, so the failed batch is read again."""
        try:
            self.consumer.close()
        finally:
            self.consumer = self._open()

    def close(self) -> None:
        """Close the consumer; a batch still being written is waited for ``STOP_WAIT_S`` at most."""
        self._abandon(STOP_WAIT_S)
        self._writer.shutdown()
        self.consumer.close()


class _Writer:
    """The batches' writes, in order, on one thread of their own. A daemon thread: a write that
    hangs (a database that stopped answering) never keeps the process from exiting, as the
    standard executor's thread would (it is joined at exit)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = queue.SimpleQueue()
        threading.Thread(target=self._work, name="alstream-store", daemon=True).start()

    def submit(self, write: Callable[[], T]) -> Future[T]:
        done: Future[T] = Future()
        self._jobs.put((done, write))
        return done

    def shutdown(self) -> None:
        """The thread ends after the writes handed over so far (it is not waited for)."""
        self._jobs.put(None)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            done, write = job
            if done.set_running_or_notify_cancel():
                try:
                    done.set_result(write())
                except BaseException as error:  # the caller's to handle, as an executor's
                    done.set_exception(error)


def _stream_id(record: Record) -> str:
    """The id of a sample sent without one: its place in the stream, not random, so a batch replayed
    after a crash writes the same ids again, which the store ignores."""
    return stream_id(record.topic, record.partition, record.offset)


def _first_line(error: BaseException, limit: int = 500) -> str:
    """The database's own words (not SQLAlchemy's wrapping with the statement and its parameters)."""
    cause = getattr(error, "orig", None) or error
    line = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    return f"{type(cause).__name__}: {line[:limit]}"


def _dead_letter(record: Record, reason: str) -> bytes:
    # A Kafka record may have no value at all (a tombstone): null, not a crash of the loop.
    value = None if record.value is None else record.value.decode("utf-8", errors="replace")
    return orjson.dumps(
        {
            "reason": reason,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "value": value,
        }
    )
