"""The consumer killed mid-stream (SIGKILL, a real `alstream consume` process) loses nothing and
stores nothing twice: after every restart the store holds a gapless prefix of each topic, and in the
end exactly the published samples and label events."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from alstream.messages import Label, ProjectSchema, Sample, encode_label, encode_sample
from alstream.service.ingest import Ingestor, Topics
from alstream.store import Store
from alstream.store.tables import labels as labels_table
from alstream.store.tables import samples as samples_table
from alstream.stream import Stream, open_stream

from ..conftest import wait_while_progressing
from .processes import kill_all

ALSTREAM = Path(sys.executable).parent / "alstream"
N_BEFORE = 80_000  # published before the first consumer starts
N_LIVE = 20_000  # published while the consumers run and get killed
N = N_BEFORE + N_LIVE
BATCH = 500
N_LABELS = 2_000
KILLS = 10
# On Kafka the restarted consumer takes the killed one's static member id back (group.instance.id),
# so it resumes the partitions at once instead of waiting for the dead member's session to expire.
STALL_S = 60.0  # a phase fails when nothing new is stored for this long (however slow the machine)


def digits_samples(start: int, stop: int, rng: np.random.Generator) -> list[tuple[bytes, bytes]]:
    features = (rng.random((stop - start, 64)) * 16).astype(np.float32)
    out = []
    for i, row in zip(range(start, stop), features, strict=True):
        sid = f"s-{i}"
        out.append((sid.encode(), encode_sample(Sample(id=sid, features=row))))
    return out


def publish_batches(stream: Stream, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    for start in range(0, len(messages), BATCH):
        stream.publish(topic, messages[start : start + BATCH], timeout=30.0)


class Consumers:
    """`alstream consume` subprocesses, one at a time; every one is killed when the test ends."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env, self.cwd = env, cwd
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    def start(self) -> subprocess.Popen:
        log = self.cwd / f"consumer-{len(self.procs)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(ALSTREAM), "consume"], env=self.env, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT
            )
        self.procs.append(proc)
        self.logs.append(log)
        return proc

    def check_alive(self, proc: subprocess.Popen) -> None:
        if proc.poll() is not None:
            raise AssertionError(f"the consumer exited with {proc.returncode}:\n{self.output()}")

    def output(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.logs)

    def kill_all(self) -> None:
        kill_all(self.procs)


@pytest.fixture
def consumers_cleanup() -> Iterator[list[Consumers]]:
    made: list[Consumers] = []
    try:
        yield made
    finally:
        for consumers in made:
            consumers.kill_all()


def stream_env(tmp_path: Path, kind: str, request: pytest.FixtureRequest) -> tuple[dict[str, str], dict]:
    """The consumer's environment (only our ALSTREAM_* settings) and the same settings as values."""
    suffix = uuid.uuid4().hex[:10]
    values = {
        "data_dir": tmp_path / "data",
        "database_url": f"sqlite:///{tmp_path}/alstream.db",
        "kafka_bootstrap": request.getfixturevalue("kafka_bootstrap") if kind == "kafka" else "",
        "samples_topic": f"crash-samples-{suffix}",
        "labels_topic": f"crash-labels-{suffix}",
        "dead_letter_topic": f"crash-dead-{suffix}",
        "consumer_group": f"crash-group-{suffix}",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALSTREAM_")}
    env.update({f"ALSTREAM_{k.upper()}": str(v) for k, v in values.items()})
    env["ALSTREAM_DEMO"] = "false"
    return env, values


def stored_ids(store: Store) -> tuple[list[str], int]:
    """Every stored sample id (one per row) and how many distinct ones there are."""
    with store.engine.connect() as conn:
        ids = list(conn.execute(select(samples_table.c.id)).scalars())
        distinct = conn.execute(select(func.count(func.distinct(samples_table.c.id)))).scalar_one()
    return ids, distinct


def stored_label_events(store: Store) -> list[tuple[str, str, str, int]]:
    table = labels_table.c
    cols = (table.sample_id, table.label, table.source, table.stream_offset)
    with store.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(select(*cols))]


def kill_points(rng: np.random.Generator) -> list[int]:
    """Stored-sample counts at which to kill a consumer: one at random in each tenth of the samples
    published up front, at least a fifth of a tenth apart, so each consumer stores some and dies."""
    step = N_BEFORE / KILLS
    return [int((n + rng.uniform(0.2, 1.0)) * step) for n in range(KILLS)]


def assert_gapless_prefix(store: Store) -> tuple[int, int]:
    """Both topics have one partition, published in order, so the store must hold samples s-0..s-(k-1)
    and the label events at offsets 0..m-1: nothing skipped, nothing twice. Returns (k, m)."""
    ids, _ = stored_ids(store)
    numbers = sorted(int(sid.removeprefix("s-")) for sid in ids)
    offsets = sorted(offset for *_, offset in stored_label_events(store))
    assert numbers == list(range(len(numbers))), "stored samples skip some or repeat some"
    assert offsets == list(range(len(offsets))), "stored label events skip some or repeat some"
    return len(numbers), len(offsets)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("kind", ["embedded", "kafka"])
def test_a_consumer_killed_ten_times_mid_stream_loses_and_duplicates_nothing(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, consumers_cleanup: list[Consumers]
):
    env, values = stream_env(tmp_path, kind, request)
    rng = np.random.default_rng(7)
    labeled = rng.choice(N, size=N_LABELS, replace=False).tolist()
    classes = rng.integers(0, 10, size=N_LABELS).tolist()
    label_messages = [
        (f"s-{i}".encode(), encode_label(Label(id=f"s-{i}", label=str(c), annotator="alice")))
        for i, c in zip(labeled, classes, strict=True)
    ]
    expected_labels = {f"s-{i}": str(c) for i, c in zip(labeled, classes, strict=True)}

    stream = open_stream(values["kafka_bootstrap"] or None, values["data_dir"])
    store = Store(values["database_url"])
    store.create()
    consumers = Consumers(env, tmp_path)
    consumers_cleanup.append(consumers)
    publisher_error: list[BaseException] = []
    live = digits_samples(N_BEFORE, N, rng)
    live_labels = label_messages[N_LABELS // 2 :]
    per_batch = len(live_labels) * BATCH // N_LIVE

    def publish_live() -> None:  # samples and the other half of the labels arrive while consumers die
        try:
            for n, start in enumerate(range(0, N_LIVE, BATCH)):
                stream.publish(values["samples_topic"], live[start : start + BATCH], timeout=30.0)
                stream.publish(
                    values["labels_topic"], live_labels[n * per_batch : (n + 1) * per_batch], timeout=30.0
                )
                time.sleep(0.3)
        except BaseException as error:  # pragma: no cover - reported by the main thread
            publisher_error.append(error)

    publisher = threading.Thread(target=publish_live, daemon=True)
    try:
        publish_batches(stream, values["samples_topic"], digits_samples(0, N_BEFORE, rng))
        publish_batches(stream, values["labels_topic"], label_messages[: N_LABELS // 2])
        kills: list[tuple[int, int]] = []  # (samples, label events) stored when each consumer died
        for n, planned in enumerate(kill_points(rng)):
            proc = consumers.start()
            if n == 0:
                publisher.start()
            # A consumer that ran past the next point (a poll of the store delayed on a busy
            # machine) moves it: each one must store some before it dies.
            threshold = max(planned, kills[-1][0] + 1) if kills else planned

            def reached(proc=proc, threshold=threshold) -> bool:
                consumers.check_alive(proc)
                return store.counts()["samples"] >= threshold

            wait_while_progressing(
                reached,
                lambda: store.counts()["samples"],
                stall_s=STALL_S,
                poll_s=0.005,
                what="the consumer",
                detail=lambda: "\n" + consumers.output(),
            )
            time.sleep(rng.uniform(0.0, 0.02))  # a random moment of the poll-store-commit cycle
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            assert proc.returncode == -signal.SIGKILL
            kills.append(assert_gapless_prefix(store))
        assert len(kills) == KILLS
        stored_at_kills = [samples for samples, _ in kills]
        assert stored_at_kills == sorted(set(stored_at_kills)), kills  # each consumer stored more
        assert stored_at_kills[-1] < N, kills  # every kill landed mid-stream

        final = consumers.start()

        def everything() -> bool:
            consumers.check_alive(final)
            counts = store.counts()
            return not publisher.is_alive() and counts["samples"] >= N and counts["labels_total"] >= N_LABELS

        def stored() -> tuple[int, int]:
            counts = store.counts()
            return counts["samples"], counts["labels_total"]

        wait_while_progressing(
            everything,
            stored,
            stall_s=STALL_S,
            what="the last consumer",
            detail=lambda: "\n" + consumers.output(),
        )
        time.sleep(1.0)  # anything replayed twice would land now
        final.send_signal(signal.SIGTERM)
        assert final.wait(timeout=30) == 0, consumers.output()
    finally:
        if publisher.is_alive():
            publisher.join(timeout=60)
        consumers.kill_all()
        stream.close()
    assert not publisher_error, publisher_error

    assert assert_gapless_prefix(store) == (N, N_LABELS)
    ids, distinct = stored_ids(store)
    counts = store.counts()
    events = stored_label_events(store)
    current = store.current_labels()
    store.close()
    assert len(ids) == distinct == N
    assert counts["samples"] == N
    assert counts["labels_total"] == len(events) == N_LABELS
    assert {source for _, _, source, _ in events} == {f"{values['labels_topic']}:0"}
    assert {sid: label for sid, (label, _, _) in current.items()} == expected_labels
    assert counts["labeled"] == N_LABELS


@pytest.mark.parametrize("kind", ["embedded", "kafka"])
def test_a_batch_replayed_after_a_crash_before_the_offset_commit_is_stored_once(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
):
    """The crash window the docstring of alstream.service.ingest names: the batch is in the store,
    its offsets are not committed. Samples without an id must get the same id when replayed."""
    _, values = stream_env(tmp_path, kind, request)
    stream = open_stream(values["kafka_bootstrap"] or None, values["data_dir"])
    store = Store(values["database_url"])
    store.create()
    topics = Topics(values["samples_topic"], values["labels_topic"], values["dead_letter_topic"])
    schema = ProjectSchema.digits()
    rng = np.random.default_rng(3)
    with_ids = digits_samples(0, 50, rng)
    without_ids = [
        (None, b'{"features": %s, "label": "%d"}' % (str(row.tolist()).encode(), i % 10))
        for i, row in enumerate(rng.random((30, 64)) * 16)
    ]
    label_messages = [(None, encode_label(Label(id=f"s-{i}", label="3"))) for i in range(10)]
    try:
        stream.publish(values["samples_topic"], with_ids + without_ids)
        stream.publish(values["labels_topic"], label_messages)

        crashing = Ingestor(stream, store, schema, topics, values["consumer_group"])
        commit = crashing.consumer.commit

        def crash(records) -> None:  # dies once a batch with samples without ids is stored
            if any(r.topic == topics.samples and r.key is None for r in records):
                raise RuntimeError("killed before the offset commit")
            commit(records)

        crashing.consumer.commit = crash
        with pytest.raises(RuntimeError, match="killed"):
            for _ in range(10_000):  # until the batch with samples without ids (bounded, never timed)
                crashing.step()
        crashing.close()
        first = store.counts()
        assert first["samples"] >= 30  # the batch reached the store, its offsets did not

        woken: list[int] = []  # the engine is told when a batch stored something new, not otherwise
        ingestor = Ingestor(
            stream, store, schema, topics, values["consumer_group"], on_stored=lambda: woken.append(1)
        )
        try:
            wait_while_progressing(
                lambda: ingestor.step() == 0 and store.counts()["labels_total"] >= 40,
                lambda: store.counts()["labels_total"],
                what="the consumer",
            )
            woken.clear()
            stream.publish(values["samples_topic"], digits_samples(1_000, 1_001, rng))
            stored = lambda: store.counts()["samples"]  # noqa: E731
            wait_while_progressing(lambda: ingestor.step() >= 0 and bool(woken), stored, what="a new sample")
            for _ in range(5):
                ingestor.step(timeout=0.2)
            assert woken == [1]  # once for the new sample, not for the steps that stored nothing
        finally:
            ingestor.close()
        counts = store.counts()
        ids, distinct = stored_ids(store)
    finally:
        stream.close()
        store.close()
    assert counts["samples"] == len(ids) == distinct == 80 + 1  # and the one sent to wake the engine
    assert counts["labels_total"] == 40  # 10 on the labels topic, 30 that came with their samples
    assert {f"s-{i}" for i in range(50)} <= set(ids)
