"""The whole scale-out system as real processes: a Kafka topic of 6 partitions, PostgreSQL, 3
``alstream worker``, 2 API replicas (``alstream serve --stateless``; a third, with short leases, to
kill), an active and a standby ``alstream trainer``; 20 annotators label over both replicas.

One system, in turns: cold start to a first model; every unlabeled sample in exactly one shard and
the merged queue equal to one process's top-k; SIGKILL a worker while samples arrive (its partitions
move and are rebuilt, the queue serves meanwhile) and then the active trainer (the standby takes
over); every label stored once, no item served twice, no version twice or lost; a replica killed
with leases out, whose items come back when the leases end. Waits fail only on a stall."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
from sklearn.datasets import load_digits
from sqlalchemy import func, select

from alstream.learning.inference import score_pool
from alstream.learning.strategies import get_strategy
from alstream.messages import Sample, encode_sample
from alstream.service.model_files import ModelFiles
from alstream.store import Store
from alstream.store.tables import candidates, labels, samples
from alstream.stream.kafka import KafkaStream

from ..conftest import wait_while_progressing
from .conftest import ADMIN_TOKEN, AUTH
from .processes import Roles, Service, kill_all

PARTITIONS = 6
TOP = 40  # candidates_per_shard
STRATEGY = "margin"
ANNOTATORS = 20
SHORT_LEASE_S = 4.0  # the replica that dies leases for this long
STALL_S = 90.0  # a wait fails only when nothing moved for this long (a dead member leaves after 10 s)
TRAINED_AS_LEADER = r"active trainer.*(training version|updating to version)"  # in a trainer's log
TIE = 1e-5  # scores this close are ties: float32 scoring, whose sums differ in the last bits when the
# workers and the test multiply in other chunks (seen 9e-7 apart; a wrong version is far further)


class Members(Roles):
    """``alstream worker`` or ``alstream trainer`` processes; which of them are alive."""

    def alive(self) -> list[int]:
        return [n for n, proc in enumerate(self.procs) if proc.poll() is None]

    def owned(self, n: int) -> set[int]:
        """The shards worker ``n`` says it owns now (it must be alive)."""
        shards: set[int] = set()
        for shard, what in re.findall(r"shard (\d+): (assigned|moved)", self.text(n)):
            (shards.add if what == "assigned" else shards.discard)(int(shard))
        return shards

    def said(self, n: int, words: str) -> bool:
        return words in self.text(n)


@dataclass
class System:
    store: Store
    stream: KafkaStream
    values: dict[str, str]
    workers: Members
    trainers: Members
    replicas: list[Service]  # two that stay, then the one with short leases that dies
    X: np.ndarray = field(init=False)
    y: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        digits = load_digits()
        self.X, self.y = digits.data.astype(np.float32), digits.target.astype(str)

    @property
    def models(self) -> ModelFiles:
        return ModelFiles(Path(self.values["data_dir"]) / "models")

    def truth(self, sample_id: str) -> str:
        return str(self.y[int(sample_id.split("-")[1])])

    def publish_samples(self, prefix: str, X: np.ndarray, first: int = 0) -> None:
        """``X`` as samples ``<prefix>-<first>``, ... (the truth of ``<prefix>-<i>`` is digit ``i``'s)."""
        messages = [
            (f"{prefix}-{i}".encode(), encode_sample(Sample(id=f"{prefix}-{i}", features=row)))
            for i, row in enumerate(X, start=first)
        ]
        self.stream.publish(self.values["samples_topic"], messages, timeout=60)

    def progress(self) -> object:
        """What moves while the system works: the store's counts and the processes' logs."""
        return (
            self.store.counts(),
            self.store.candidates.counts(),
            len(self.store.models()),
            self.workers.progress(),
            self.trainers.progress(),
        )

    def starting(self) -> object:
        """:meth:`progress`, and the CPU seconds of the processes that have not logged a line yet:
        a process moves nothing else while it imports."""
        quiet = [
            p
            for role in (self.workers, self.trainers)
            for n, p in enumerate(role.procs)
            if not role.log(n).stat().st_size
        ]
        quiet += [
            r.process for r in self.replicas if r.process and not (r.home / "service.log").stat().st_size
        ]
        cpu = 0.0
        for proc in quiet:
            with contextlib.suppress(psutil.Error):
                times = psutil.Process(proc.pid).cpu_times()
                cpu += times.user + times.system
        return self.progress(), round(cpu, 1)

    def output(self) -> str:
        logs = [self.workers.output(), self.trainers.output()]
        for n, replica in enumerate(self.replicas):
            logs.append(
                f"--- replica {n}\n{(replica.home / 'service.log').read_text(errors='replace')[-3000:]}"
            )
        return "\n" + "\n".join(logs)

    def wait(
        self,
        done: Callable[[], bool],
        what: str,
        progress: Callable[[], object] | None = None,
        detail: Callable[[], str] | None = None,
    ) -> None:
        """Wait until ``done()``; fail when ``progress()`` stood still for ``STALL_S``, with ``detail()``
        and every process's log."""
        progress = progress or self.progress
        told = self.output if detail is None else lambda: f"\n{detail()}{self.output()}"
        wait_while_progressing(done, progress, stall_s=STALL_S, what=what, detail=told, poll_s=0.2)

    def ownership(self) -> list[set[int]]:
        return [self.workers.owned(n) for n in self.workers.alive()]

    def partitioned(self) -> bool:
        """The live workers own disjoint shards that together are every partition."""
        owned = self.ownership()
        return (
            all(owned)
            and sum(map(len, owned)) == PARTITIONS
            and set().union(*owned) == set(range(PARTITIONS))
        )


@pytest.fixture
def system(tmp_path: Path, postgres_url: str, kafka_bootstrap: str) -> Iterator[System]:
    suffix = uuid.uuid4().hex[:10]
    values = {
        "kafka_bootstrap": kafka_bootstrap,
        "database_url": postgres_url,
        "data_dir": str(tmp_path / "shared"),  # model files and member slots, as a shared folder
        "samples_topic": f"scale-samples-{suffix}",
        "labels_topic": f"scale-labels-{suffix}",
        "dead_letter_topic": f"scale-dead-{suffix}",
        "consumer_group": f"scale-{suffix}",
        "consumer_instance_id": f"s-{suffix}",
        "candidates_per_shard": str(TOP),
        "strategy": STRATEGY,
        # /queue serves the best only: one process's top-k (the random share: test_worker_shards)
        "random_share": "0",
        "max_pool": "100000",  # every sample of a shard stays in its pool: its top is exact
        "demo": "false",
        "retrain_after_labels": "20",
        "retrain_interval_s": "3600",
        "trainer_poll_s": "0.2",
        "admin_token": ADMIN_TOKEN,
        "queue_rate_per_s": "10000",  # 20 annotators share the admin token
        "queue_burst": "10000",
        "labels_rate_per_s": "10000",
        "labels_burst": "10000",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALSTREAM_")}
    env.update({f"ALSTREAM_{k.upper()}": v for k, v in values.items()})
    workers = Members("worker", env, tmp_path)
    trainers = Members("trainer", env, tmp_path, "--no-mlflow", "--orchestrator", "none")
    replicas = []
    for n, lease_s in enumerate(("300", "300", str(SHORT_LEASE_S))):
        home = tmp_path / f"replica-{n}"
        home.mkdir()
        # env, the system's settings, comes last: the shared data_dir (model files), the database
        replicas.append(Service(home, wait_for_model=False, args=("--stateless",), env=env, lease_s=lease_s))
    store = Store(postgres_url)
    store.create()
    stream = KafkaStream(kafka_bootstrap, partitions=PARTITIONS)
    made = System(store, stream, values, workers, trainers, replicas)
    try:
        yield made
    finally:
        kill_all([*workers.procs, *trainers.procs, *(r.process for r in replicas if r.process)])
        stream.close()
        store.close()


class Annotators:
    """``ANNOTATORS`` people, each leasing through one replica and labeling through the other (in
    turns), labeling at once what they are served; what was served, when, is kept."""

    def __init__(self, system: System, urls: list[str]) -> None:
        self.system, self.urls = system, urls
        self.served: list[str] = []
        self.labeled: list[str] = []  # the ids of the labels accepted (a 202), one a label
        self.turns: list[tuple[float, float, int]] = []  # (began, ended, items served) of each turn
        self.sent = 0  # labels accepted
        self._turn = 0
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(ANNOTATORS)

    def turn(self, n: int) -> int:
        """Each annotator leases ``n`` and labels them; returns how many items were served."""
        began, turn = time.monotonic(), self._turn
        self._turn += 1
        got = sum(self._pool.map(lambda a: self._annotate(a, turn, n), range(ANNOTATORS)))
        self.turns.append((began, time.monotonic(), got))
        return got

    def _annotate(self, annotator: int, turn: int, n: int) -> int:
        lease_at, label_at = (self.urls[(annotator + turn + k) % len(self.urls)] for k in (0, 1))
        with httpx.Client(headers=AUTH, timeout=120) as client:
            answer = client.get(f"{lease_at}/queue", params={"n": n, "annotator": f"ann-{annotator}"})
            items = answer.raise_for_status().json()
            if not items:
                return 0
            body = [
                {"id": item["id"], "label": self.system.truth(item["id"]), "annotator": f"ann-{annotator}"}
                for item in items
            ]
            assert client.post(f"{label_at}/labels", json=body).status_code == 202
        with self._lock:
            self.served += [item["id"] for item in items]
            self.labeled += [label["id"] for label in body]
            self.sent += len(body)
        return len(items)

    @contextlib.contextmanager
    def working(self, n: int = 1, pause_s: float = 0.5) -> Iterator[None]:
        """Turns on a thread of their own while the block runs."""
        stop, failed = threading.Event(), []

        def work() -> None:
            try:
                while not stop.is_set():
                    self.turn(n)
                    stop.wait(pause_s)
            except BaseException as error:
                failed.append(error)

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
        if failed:
            raise failed[0]

    def close(self) -> None:
        self._pool.shutdown()


def free_candidates(store: Store, best_only: bool = False) -> list[tuple[str, int, float, int]]:
    """(id, shard, score, version) of the candidates no one leases now (``best_only``: not the random
    picks, what /queue serves with no random share), best first."""
    now = datetime.now(UTC)
    free = candidates.c.leased_until.is_(None) | (candidates.c.leased_until <= now)
    if best_only:
        free &= candidates.c.weight.is_(None)
    columns = (candidates.c.sample_id, candidates.c.shard, candidates.c.score, candidates.c.version)
    with store.engine.connect() as conn:
        rows = conn.execute(select(*columns).where(free)).all()
    return sorted(((i, s, sc, v) for i, s, sc, v in rows), key=lambda r: (-r[2], r[0]))


def single_process_scores(system: System, version: int) -> tuple[dict[str, float], dict[str, int]]:
    """Every unlabeled sample's score under model ``version`` (its file, scored here), and each
    sample's shard; checks every sample is in exactly one shard (a partition)."""
    store = system.store
    with store.engine.connect() as conn:
        rows = conn.execute(select(samples.c.id, samples.c.shard, samples.c.features)).all()
    shard_of = {sid: shard for sid, shard, _ in rows}
    assert len(shard_of) == len(rows), "a sample stored twice"
    assert set(shard_of.values()) <= set(range(PARTITIONS)), "a sample in no shard"
    labeled = set(store.current_labels())
    ids = [sid for sid, _, _ in rows if sid not in labeled]
    X = np.array([np.frombuffer(blob, dtype="<f4") for sid, _, blob in rows if sid not in labeled])
    row = next(m for m in store.models() if int(m["version"]) == version)
    model = system.models.load(row["path"])
    assert model.version == version
    scores = score_pool(model.model, X, get_strategy(STRATEGY))
    return dict(zip(ids, scores.tolist(), strict=True)), shard_of


def check_merged_queue(system: System, version: int) -> list[str]:
    """The shards' free candidates are unlabeled samples of their own shard, scored by ``version`` as
    this process scores them; their best ``TOP`` are one process's top ``TOP`` of every unlabeled
    sample (ties aside). Returns that top, best first."""
    score, shard_of = single_process_scores(system, version)
    free = free_candidates(system.store, best_only=True)
    for sid, shard, got, v in free:
        assert sid in score, f"{sid} is labeled or unknown but a candidate"
        assert shard_of[sid] == shard, f"{sid} of shard {shard_of[sid]} published by shard {shard}"
        assert v == version, f"{sid}: a candidate of version {v}, not {version}"
        assert abs(got - score[sid]) <= TIE, f"{sid}: published {got}, scored {score[sid]} here"
    for shard in range(PARTITIONS):
        mine = sum(1 for s in shard_of.values() if s == shard)
        assert any(s == shard for _, s, _, _ in free) or not mine, f"shard {shard} published nothing"
    merged = [sid for sid, *_ in free[:TOP]]
    single = sorted(score, key=lambda i: (-score[i], i))[:TOP]
    assert np.allclose([score[i] for i in merged], [score[i] for i in single], rtol=0, atol=TIE)
    kth = score[single[-1]]
    assert {i for i in single if score[i] > kth + TIE} <= set(merged), "the merged queue misses a best one"
    return single


def settled(system: System, samples_expected: int) -> int | None:
    """The newest version, once the trainer trained on every stored label, every sample is stored,
    and every shard published that version's candidates; None before."""
    store = system.store
    counts, latest = store.counts(), store.latest_model()
    if counts["samples"] != samples_expected or latest is None:
        return None
    if latest["n_labels"] != counts["labeled"] or not system.partitioned():
        return None
    free = free_candidates(store)
    shards = {shard for _, shard, _, v in free if v == latest["version"]}
    if any(v != latest["version"] for *_, v in free) or shards != set(range(PARTITIONS)):
        return None
    return int(latest["version"])


def stored_label_ids(store: Store) -> list[str]:
    """The sample id of every label event stored (one per event: a label stored twice, twice)."""
    with store.engine.connect() as conn:
        return [sample_id for (sample_id,) in conn.execute(select(labels.c.sample_id)).all()]


def label_mismatch(store: Store, sent: list[str]) -> str:
    """Which of the labels ``sent`` the store lacks, and which it holds more often than sent."""
    stored, expected = Counter(stored_label_ids(store)), Counter(sent)
    missing, extra = sorted((expected - stored).elements()), sorted((stored - expected).elements())
    return (
        f"{len(sent)} labels sent, {stored.total()} stored; "
        f"missing ({len(missing)}): {missing}; stored twice or never sent ({len(extra)}): {extra}"
    )


def wait_labels_stored(system: System, sent: list[str]) -> None:
    """Until every label ``sent`` (accepted by a replica: in the labels topic) is in the store. A
    label goes through a worker's labels consumer, later than its 202: the trainer may have trained on
    every label stored so far, and every shard published that version, before the last ones land."""
    expected = Counter(sent)

    def arrived() -> bool:
        return not expected - Counter(stored_label_ids(system.store))

    system.wait(
        arrived,
        f"every one of the {len(sent)} labels sent stored",
        progress=lambda: label_events(system.store),  # fails only when no label landed for STALL_S
        detail=lambda: label_mismatch(system.store, sent),
    )


def wait_settled(system: System, samples_expected: int, sent: list[str], what: str) -> int:
    """:func:`settled` (and the merged queue one process's top-k), once every label ``sent`` is stored:
    the newest version is then trained on every label sent."""
    wait_labels_stored(system, sent)
    found: list[int] = []

    def done() -> bool:
        version = settled(system, samples_expected)
        if version is None:
            return False
        try:
            check_merged_queue(system, version)
        except AssertionError:
            return False  # a shard still publishing
        found.append(version)
        return True

    system.wait(done, what)
    return found[-1]


def published_since(store: Store, when: datetime) -> set[int]:
    """The shards that published free candidates after ``when``."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(candidates.c.shard, func.max(candidates.c.published_at))
            .where(candidates.c.leased_by.is_(None))
            .group_by(candidates.c.shard)
        ).all()
    return {shard for shard, at in rows if (at if at.tzinfo else at.replace(tzinfo=UTC)) > when}


def label_events(store: Store) -> tuple[int, int]:
    """Label events stored, and the samples they name."""
    with store.engine.connect() as conn:
        query = select(func.count(), func.count(labels.c.sample_id.distinct()))
        total, named = conn.execute(query.select_from(labels)).one()
    return int(total), int(named)


def versions(store: Store) -> list[int]:
    return [int(row["version"]) for row in store.models()]


@pytest.mark.timeout(900)
def test_workers_replicas_and_trainers_scale_out_and_survive_kills(system: System) -> None:
    store, X = system.store, system.X
    system.publish_samples("d", X)  # before anyone consumes: topics of 6 partitions
    system.stream.publish(system.values["labels_topic"], [], timeout=60)
    for _ in range(3):
        system.workers.start()
    for _ in range(2):
        system.trainers.start()
    for replica in system.replicas:
        replica.launch()
    system.wait(lambda: all(r.ready() for r in system.replicas), "the replicas answering", system.starting)
    system.wait(
        lambda: (
            system.partitioned()
            and store.counts()["samples"] == len(X)
            and len(free_candidates(store)) >= PARTITIONS * TOP
        ),
        "three workers sharing the partitions and publishing cold-start candidates",
        system.starting,
    )
    owned = system.ownership()
    assert len(owned) == 3 and all(len(shards) == 2 for shards in owned), owned
    stay = [r.url for r in system.replicas[:2]]
    annotators = Annotators(system, stay)
    try:
        # cold start: the shards' candidates have no model's scores yet; labels bring the first model
        for _ in range(2):
            assert annotators.turn(5) == ANNOTATORS * 5
        version = wait_settled(system, len(X), annotators.labeled, "the first model version on every shard")
        active = [n for n in system.trainers.alive() if system.trainers.said(n, "active trainer")]
        assert len(active) == 1, "not exactly one active trainer"
        assert system.trainers.said(1 - active[0], "standby trainer")

        # the merged queue, as a replica serves it, is one process's top-k
        single = check_merged_queue(system, version)
        answer = httpx.get(
            f"{stay[0]}/queue", params={"n": TOP, "annotator": "reader"}, headers=AUTH, timeout=120
        )
        served = answer.raise_for_status().json()
        scores = [item["score"] for item in served]
        assert [item["model_version"] for item in served] == [version] * TOP
        assert np.allclose(scores, sorted(scores, reverse=True), rtol=0, atol=TIE)
        score, _ = single_process_scores(system, version)
        assert np.allclose(scores, [score[i] for i in single], rtol=0, atol=TIE)
        kth = score[single[-1]]
        assert {i for i in single if score[i] > kth + TIE} <= {item["id"] for item in served}
        body = {"annotator": "reader", "ids": [item["id"] for item in served]}
        released = httpx.post(f"{stay[1]}/queue/release", json=body, headers=AUTH, timeout=120)
        assert released.raise_for_status().json() == {"released": TOP}

        # SIGKILL a worker while samples arrive, then the active trainer; the annotators go on
        more = X[:600] + np.float32(0.5)
        with annotators.working():
            system.wait(lambda: len(annotators.turns) >= 2, "the annotators at work")
            victim = system.workers.alive()[0]
            moving = system.workers.owned(victim)
            system.publish_samples("e", more[:200])
            killed_at, killed = datetime.now(UTC), time.monotonic()
            os.kill(system.workers.procs[victim].pid, signal.SIGKILL)
            system.workers.procs[victim].wait(timeout=30)
            system.publish_samples("e", more[200:], first=200)
            system.wait(
                lambda: system.partitioned() and moving <= published_since(store, killed_at),
                "the survivors owning and publishing the killed worker's shards",
            )
            took_over = time.monotonic()
            gap = [got for began, ended, got in annotators.turns if began >= killed and ended <= took_over]
            assert gap, "no turn while the shards moved"
            assert all(got == ANNOTATORS for got in gap), f"the queue ran short while shards moved: {gap}"

            leader = active[0]
            os.kill(system.trainers.procs[leader].pid, signal.SIGKILL)
            system.trainers.procs[leader].wait(timeout=30)
            standby = 1 - leader
            system.wait(
                lambda: re.search(TRAINED_AS_LEADER, system.trainers.text(standby), re.S) is not None,
                "the standby trainer taking over and training",
            )
        version = wait_settled(
            system, len(X) + len(more), annotators.labeled, "every shard on the newest version"
        )
        check_merged_queue(system, version)

        numbers = versions(store)
        assert numbers == list(range(1, len(numbers) + 1)), "a version skipped or numbered twice"
        rows = store.models()
        assert all(row["status"] == "ok" and row["path"] for row in rows), rows
        assert len(annotators.served) == len(set(annotators.served)), "an item served twice"
        total, named = label_events(store)
        assert total == annotators.sent == named, label_mismatch(store, annotators.labeled)
        assert store.counts()["labeled"] == annotators.sent
    finally:
        annotators.close()

    # a replica dies with leases out: they end, and their items come back
    dying = system.replicas[2]
    answer = httpx.get(f"{dying.url}/queue", params={"n": 8, "annotator": "lost"}, headers=AUTH, timeout=120)
    lost = {item["id"] for item in answer.raise_for_status().json()}
    assert len(lost) == 8 and lost <= set(store.candidates.held())
    dying.kill()
    answer = httpx.get(f"{stay[0]}/queue", params={"n": 8, "annotator": "other"}, headers=AUTH, timeout=120)
    assert not lost & {item["id"] for item in answer.raise_for_status().json()}, "a leased item served"
    system.wait(lambda: not lost & set(store.candidates.held()), "the dead replica's leases ending")
    answer = httpx.get(f"{stay[1]}/queue", params={"n": 8, "annotator": "late"}, headers=AUTH, timeout=120)
    assert {item["id"] for item in answer.raise_for_status().json()} == lost, "the items did not come back"
