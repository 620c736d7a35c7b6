"""What the random items' audits (``alstream.store.audits``) cost the store, against the same paths
without them, in the same run.

Three parts, each on real PostgreSQL (a private server started as tests/conftest.py does, fsync and
synchronous commit off; or ``--postgres-url``) and on SQLite (a file in WAL mode, as the store opens
it):

- **leases** (``--runs backend:random_share``): ``--threads`` annotators on threads of one replica
  lease ``n=5`` through the shared queue (``SharedQueue.queue``, one transaction: the candidates'
  lease, the samples' read, the model's guesses and, for the random items among them,
  ``Audits.served``: the audit rows) and end the previous lease's items (labeled). Its peer is the
  same queue with the audit rows' insert left out. ``--phases`` phases, the two queues in turn
  (ABBA...: load that drifts weighs on both alike), each ``--leases`` leases per annotator.
  Measured: leases per second, each lease's time (p50, mean), the time in the audit write per lease
  (every lease, those without a random item at 0), the statements, transactions and connection
  checkouts per lease, and PostgreSQL's CPU per lease.
- **labels**: the trainer's label ingestion. A batch of ``--label-batches`` labels is stored (as the
  workers' consumers store them: one ``write_batch``), a ``random_share`` of them of samples served
  at random (an open audit each; ``--label-open`` more of other samples: the table as a busy stream
  keeps it), then two engines follow the store (``Engine.sync``): one scoring the audits
  (``Audits.labels_after``: the labels with the open guesses they name, one query, the last sync's
  scores written with it, in its statement on PostgreSQL and its transaction on SQLite: as the
  active trainer does), its peer not (``Store.labels_after``); in turn, ``--label-rounds`` times per
  batch size.
- **growth**: ``--growth`` guesses written over a simulated clock (``--growth-rate`` a second, in
  batches of 1,000), a quarter of them scored (labeled), the rest never labeled; ``Audits.prune()``
  (its default bound, ``MAX_OPEN``) every ``PRUNE_EVERY_S`` (60 s) of that clock, as the trainer
  prunes. Measured: the rows before and after each prune, its time, the table's size on disk.

Verdict (the limit, and why): an audit is bookkeeping for the accuracy estimate, on the paths that
serve and learn; it may add at most 10% to the DB time of the path it rides on. For a lease: the
time in the audit write against the peer's mean lease (a lease is almost all round trips), and
PostgreSQL's CPU per lease against the peer's (the server is what every replica shares; the
leases/s of the two arms are reported too, but here the client and the server share 2 cores, so
they also count the client's CPU). For a label: the time the audits add to the labels' read (the
joined read with the scores' write, against the peer's plain read), against the peer's write and
sync of the same batch. And the open guesses stay at ``MAX_OPEN`` after each
prune (at most one prune interval's writes above it before), the scored ones one per labeled
random item. On PostgreSQL each prune is followed by a ``VACUUM audits``: the stand-in for the
autovacuum that a real minute between prunes gives time for (without it, this compressed run
measures dead rows, not the table). Results: a table and ``bench/results/audits.json``.

    PYTHONPATH=src .venv/bin/python bench/audits_bench.py
    PYTHONPATH=src .venv/bin/python bench/audits_bench.py --leases 10 --phases 2 --growth 30000  # quick
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table
from sqlalchemy import Connection, event, func, select, text
from sqlalchemy import Engine as SqlEngine

from alstream.service.engine import Engine, EngineConfig
from alstream.service.featurize import StoredFeatures
from alstream.service.model_files import ModelFiles
from alstream.service.serving import QueueItem
from alstream.service.shared_queue import SharedQueue
from alstream.service.trainer import RetrainPolicy, Trainer
from alstream.service.trainer_role import PRUNE_EVERY_S
from alstream.store import LabelRow, SampleRow, Store
from alstream.store.audits import MAX_OPEN, Guess
from alstream.store.label_events import LabelEvent
from alstream.store.tables import audits, labels
from candidates_bench import database, postgres, server_cpu_s
from common import RESULTS, console, percentiles, print_verdict, table, write_report
from provenance import machine, source_info

CLASSES = [str(c) for c in range(10)]
N_FEATURES = 64
N, CAP, TOKEN_CAP, TTL_S = 5, 10, 20, 600.0
LIMIT = 0.10  # the share of a path's DB time the audits may add
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Counted:
    """Statements, transactions (commits and rollbacks) and connection checkouts on ``engine``."""

    def __init__(self, engine: SqlEngine) -> None:
        self.numbers = {"statements": 0, "transactions": 0, "checkouts": 0}
        self._lock = threading.Lock()
        event.listen(engine, "before_cursor_execute", lambda *_: self._add("statements"))
        event.listen(engine, "commit", lambda *_: self._add("transactions"))
        event.listen(engine, "rollback", lambda *_: self._add("transactions"))
        event.listen(engine.pool, "checkout", lambda *_: self._add("checkouts"))

    def _add(self, what: str) -> None:
        with self._lock:
            self.numbers[what] += 1

    def now(self) -> dict[str, int]:
        with self._lock:
            return dict(self.numbers)


def since(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in after}


class Audited(SharedQueue):
    """The replica's queue, its audit writes timed (every lease's: 0 when it served no random item)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.audit_ms: list[float] = []  # list.append is atomic: the threads share it
        self.written: list[int] = []

    def _audit(self, conn: Connection, version: int, items: list[QueueItem]) -> None:
        began = time.perf_counter()
        super()._audit(conn, version, items)
        self.audit_ms.append((time.perf_counter() - began) * 1e3)
        self.written.append(sum(1 for i in items if i.reason == "random" and i.predicted))


class Unaudited(SharedQueue):
    """The peer: the same queue, no audit rows written."""

    def _audit(self, conn: Connection, version: int, items: list[QueueItem]) -> None:
        return None


def timed(call: Callable[[], Any], into: list[float]) -> Any:
    """``call()``, its time (ms) appended to ``into``."""
    began = time.perf_counter()
    try:
        return call()
    finally:
        into.append((time.perf_counter() - began) * 1e3)


class TimedEngine(Engine):
    """An engine whose label reads are timed (the labels with the open guesses, or without)."""

    def __init__(self, *args: Any, **options: Any) -> None:
        self.read_ms: list[float] = []
        super().__init__(*args, **options)

    def _labels_after(self) -> tuple[list[LabelEvent], list[Guess]]:
        return timed(super()._labels_after, self.read_ms)


@contextlib.contextmanager
def backends(args: argparse.Namespace, tmp: str) -> Iterator[Callable[[str], tuple[str, Path | None]]]:
    """A factory: a fresh database of a backend, and the PostgreSQL server's pid file (or None)."""
    with contextlib.ExitStack() as stack:
        server: tuple[str, Path | None] | None = None
        made = 0

        def make(backend: str) -> tuple[str, Path | None]:
            nonlocal server, made
            made += 1
            if backend == "sqlite":
                return f"sqlite:///{tmp}/store{made}.db", None
            server = server or stack.enter_context(postgres(args.postgres_url))
            return database(server[0]), server[1]

        yield make


def record_model(store: Store, folder: Path, rng: np.random.Generator) -> None:
    """Version 1, trained as the trainer would on random features, its file saved and recorded."""
    X = rng.random((500, N_FEATURES), dtype=np.float32)
    y = np.array(CLASSES)[rng.integers(0, len(CLASSES), len(X))]
    version = Trainer("sgd", CLASSES, RetrainPolicy()).train_full(X, y)
    path = ModelFiles(folder).save(version)
    store.record_model(kind="full", n_labels=len(y), metrics={}, status="ok", path=path, version=1)


def analyze(store: Store) -> None:
    if store.dialect == "postgresql":  # the statistics autovacuum would have gathered by now
        with store.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()


# --- leases ----------------------------------------------------------------------------------


def fill_queue(store: Store, folder: Path, args: argparse.Namespace) -> dict[str, int]:
    """Each shard's samples (features), labels of other samples, a model, the candidates."""
    rng = np.random.default_rng(0)
    per_shard = args.candidates // args.shards
    picks = per_shard // 2  # enough random picks for the boosted share too
    best = per_shard - picks
    for shard in range(args.shards):
        names = [f"s{shard}-{i}" for i in range(per_shard)]
        features = rng.random((per_shard, N_FEATURES), dtype=np.float32)
        store.add_samples(
            [SampleRow(name, row, shard=shard) for name, row in zip(names, features, strict=True)]
        )
    for start in range(0, args.labels, 10_000):
        store.add_labels(
            [
                LabelRow(f"labeled-{i}", "0", "ann", False, "labels:0", i)
                for i in range(start, min(start + 10_000, args.labels))
            ]
        )
    record_model(store, folder, rng)
    for shard in range(args.shards):
        names = [f"s{shard}-{i}" for i in range(per_shard)]
        store.candidates.publish(
            shard,
            1,
            names[:best],
            rng.random(best).tolist(),
            picks=names[best:],
            pick_scores=rng.random(picks).tolist(),
            stream=10 * per_shard,
        )
    analyze(store)
    return {"per_shard": per_shard, "best_per_shard": best, "picks_per_shard": picks}


def phase(
    queue: SharedQueue, name: str, args: argparse.Namespace, counted: Counted, pid_file: Path | None
) -> dict[str, Any]:
    """``args.threads`` annotators, each ``args.leases`` leases (ending the last one's items)."""
    lease_ms: list[float] = []
    leased: list[str] = []
    errors: list[str] = []
    ready = threading.Barrier(args.threads + 1)

    def annotate(i: int) -> None:
        annotator, previous = f"{name}-{i}", []
        try:
            ready.wait()
            for _ in range(args.leases):
                began = time.perf_counter()
                got = [item.id for item in queue.queue(N, annotator, token=f"key-{name}-{i}")]
                lease_ms.append((time.perf_counter() - began) * 1e3)
                leased.extend(got)
                if previous:
                    queue.store.candidates.end(previous)
                previous = got
        except BaseException as error:  # reported below
            errors.append(repr(error))

    workers = [threading.Thread(target=annotate, args=(i,)) for i in range(args.threads)]
    for worker in workers:
        worker.start()
    numbers, cpu = counted.now(), server_cpu_s(pid_file)
    began = time.perf_counter()
    ready.wait()
    for worker in workers:
        worker.join()
    wall_s = time.perf_counter() - began
    cpu = None if cpu is None else server_cpu_s(pid_file) - cpu
    if errors:
        raise RuntimeError(f"{len(errors)} annotators failed, the first: {errors[0]}")
    return {
        "wall_s": wall_s,
        "lease_ms": lease_ms,
        "leased": leased,
        "server_cpu_s": cpu,
        **since(numbers, counted.now()),
    }


def lease_run(backend: str, share: float, url: str, pid_file: Path | None, args: argparse.Namespace) -> dict:
    print(f"leases, {backend}, random share {share:g}: filling", flush=True)
    with tempfile.TemporaryDirectory(prefix="alstream-audits-models-") as models, Store(url) as store:
        store.create()
        filled = fill_queue(store, Path(models), args)
        config = EngineConfig(
            classes=CLASSES,
            n_features=N_FEATURES,
            random_share=share,
            drift_random_share=share,
            max_leases_per_annotator=CAP,
            max_leases_per_token=TOKEN_CAP,
            track=False,
        )
        peers = {
            arm: kind(config, store, StoredFeatures(N_FEATURES), ModelFiles(Path(models)))
            for arm, kind in (("audits", Audited), ("none", Unaudited))
        }
        for queue in peers.values():  # each loads the model before the clock starts
            assert queue.serving is not None
        counted = Counted(store.engine)
        order = ["audits", "none", "none", "audits"] * (args.phases // 2)
        phases: dict[str, list[dict]] = {"audits": [], "none": []}
        print(f"leases, {backend}: {len(order)} phases of {args.threads} x {args.leases}", flush=True)
        for number, arm in enumerate(order):
            phases[arm].append(phase(peers[arm], f"p{number}{arm}", args, counted, pid_file))
        audited = peers["audits"]
        assert isinstance(audited, Audited)
        open_rows = store.audits.counts()["open"]
    arms = {arm: summarize_leases(runs) for arm, runs in phases.items()}
    every = [item for runs in phases.values() for r in runs for item in r["leased"]]
    audit_ms = float(np.mean(audited.audit_ms))
    writes = [ms for ms, n in zip(audited.audit_ms, audited.written, strict=True) if n]
    none = arms["none"]
    return {
        "backend": backend,
        "random_share": share,
        **filled,
        "arms": arms,
        "audit_ms_per_lease": audit_ms,  # every lease's share, 0 for those without a random item
        "audit_write": percentiles(writes) if writes else None,  # the leases that wrote
        "leases_that_wrote": len(writes) / len(audited.audit_ms),
        "rows_per_lease": sum(audited.written) / len(audited.written),
        "audit_rows": open_rows,
        "items_leased_twice": len(every) - len(set(every)),
        # the audit's time against the peer's whole lease, and the two arms' difference
        "audit_share_of_lease": audit_ms / none["lease"]["mean_ms"],
        "lease_mean_delta": arms["audits"]["lease"]["mean_ms"] / none["lease"]["mean_ms"] - 1,
        "leases_per_s_delta": arms["audits"]["leases_per_s"] / none["leases_per_s"] - 1,
        "server_cpu_delta": None
        if none["server_cpu_ms_per_lease"] is None
        else arms["audits"]["server_cpu_ms_per_lease"] / none["server_cpu_ms_per_lease"] - 1,
    }


def summarize_leases(runs: list[dict]) -> dict[str, Any]:
    leases = sum(len(r["lease_ms"]) for r in runs)
    wall = sum(r["wall_s"] for r in runs)
    cpu = [r["server_cpu_s"] for r in runs]
    return {
        "phases": len(runs),
        "leases": leases,
        "wall_s": wall,
        "leases_per_s": leases / wall,
        "lease": percentiles([t for r in runs for t in r["lease_ms"]]),
        **{
            f"{k}_per_lease": sum(r[k] for r in runs) / leases
            for k in ("statements", "transactions", "checkouts")
        },
        "server_cpu_ms_per_lease": None if None in cpu else sum(cpu) / leases * 1e3,
    }


# --- labels ----------------------------------------------------------------------------------


def labels_run(backend: str, url: str, args: argparse.Namespace) -> dict:
    """Labels stored in batches; an engine scoring the audits and its peer follow them in turn."""
    print(f"labels, {backend}: filling", flush=True)
    rng = np.random.default_rng(1)
    batches, rounds, share = args.label_batches, args.label_rounds, args.label_share
    n = sum(batches) * rounds
    ids = [f"l-{i}" for i in range(n)]
    random_items = rng.random(n) < share
    with Store(url) as store:
        store.create()
        for start in range(0, n, 10_000):
            chunk = range(start, min(start + 10_000, n))
            store.add_samples([SampleRow(ids[i], rng.random(N_FEATURES, dtype=np.float32)) for i in chunk])
        guesses = [(ids[i], 1, CLASSES[i % 10]) for i in np.flatnonzero(random_items)]  # served at random
        guesses += [(f"unlabeled-{i}", 1, "0") for i in range(args.label_open)]  # never labeled here
        for start in range(0, len(guesses), 1_000):
            store.audits.served(guesses[start : start + 1_000], T0)
        analyze(store)
        config = EngineConfig(classes=CLASSES, n_features=N_FEATURES, track=False)
        engines = {
            "audits": TimedEngine(config, store, audits=store.audits),
            "none": TimedEngine(config, store),
        }
        for engine in engines.values():
            engine.sync()  # the samples into its pool, before the clock starts
        counted = Counted(store.engine)
        offset, results = 0, []
        for batch in batches:
            print(f"labels, {backend}: {rounds} rounds of {batch}", flush=True)
            times: dict[str, list[float]] = {
                k: [] for k in ("write", "audits", "none", "read_audits", "read_none", "in_audits")
            }
            numbers = {"write": [], "audits": [], "none": []}
            for turn in range(rounds):
                rows = [
                    LabelRow(ids[i], CLASSES[(i + (i % 3 == 0)) % 10], "ann", False, "labels:0", i)
                    for i in range(offset, offset + batch)
                ]
                offset += batch
                before, began = counted.now(), time.perf_counter()
                store.write_batch([], rows)
                times["write"].append((time.perf_counter() - began) * 1e3)
                numbers["write"].append(since(before, counted.now()))
                for arm in ("audits", "none") if turn % 2 == 0 else ("none", "audits"):
                    engines[arm].read_ms = []
                    before, began = counted.now(), time.perf_counter()
                    _, got = engines[arm].sync()
                    times[arm].append((time.perf_counter() - began) * 1e3)
                    numbers[arm].append(since(before, counted.now()))
                    times[f"read_{arm}"].append(sum(engines[arm].read_ms))
                    assert got == batch, (arm, got, batch)
                # what the audits add: their read (the last sync's scores written in it) over the plain one
                times["in_audits"].append(times["read_audits"][-1] - times["read_none"][-1])
            results.append(summarize_labels(batch, times, numbers))
        scored = store.audits.counts()["scored"]
        with store.engine.connect() as conn:
            labeled_random = conn.execute(
                select(func.count())
                .select_from(labels)
                .join(audits, audits.c.sample_id == labels.c.sample_id)
                .where(audits.c.label_id.is_not(None))
            ).scalar_one()
        accuracy = engines["audits"].snapshot.stats.get("stream_accuracy_samples")
    return {
        "backend": backend,
        "random_share": share,
        "batches": results,
        "labels": offset,
        "random_labeled": int(random_items[:offset].sum()),
        "audits_scored": scored,
        "labels_of_scored_samples": labeled_random,
        "stream_accuracy_samples": accuracy,
    }


def summarize_labels(batch: int, times: dict[str, list[float]], numbers: dict[str, list[dict]]) -> dict:
    mean = {k: float(np.mean(v)) for k, v in times.items()}
    per_sync = {arm: {k: float(np.mean([n[k] for n in v])) for k in v[0]} for arm, v in numbers.items()}
    peer = mean["write"] + mean["none"]  # the DB work a batch of labels causes, without audits
    return {
        "batch": batch,
        "rounds": len(times["write"]),
        "write": percentiles(times["write"]),
        "sync_audits": percentiles(times["audits"]),
        "sync_none": percentiles(times["none"]),
        "read_audits": percentiles(times["read_audits"]),  # the labels with the open guesses, the scores
        "read_none": percentiles(times["read_none"]),  # the labels alone
        "in_audits": percentiles(times["in_audits"]),
        "per_label_ms": {
            "write": mean["write"] / batch,
            "sync_audits": mean["audits"] / batch,
            "sync_none": mean["none"] / batch,
            "in_audits": mean["in_audits"] / batch,
        },
        "per_sync": per_sync,
        # the time in the audits' reads and writes against the peer's write and sync
        "audit_share_of_ingest": mean["in_audits"] / peer,
        "sync_mean_delta": mean["audits"] / mean["none"] - 1,
    }


# --- growth ----------------------------------------------------------------------------------


def table_bytes(store: Store, url: str) -> int:
    with store.engine.connect() as conn:
        if store.dialect == "postgresql":
            return int(conn.execute(text("SELECT pg_total_relation_size('audits')")).scalar_one())
    return os.path.getsize(url.removeprefix("sqlite:///"))  # the whole file: audits only here


def growth_run(backend: str, url: str, args: argparse.Namespace) -> dict:
    """``args.growth`` guesses over a simulated clock, pruned every ``PRUNE_EVERY_S`` of it."""
    print(f"growth, {backend}: {args.growth:,} guesses", flush=True)
    batch, rate, keep = 1_000, args.growth_rate, args.growth_keep
    per_interval = int(rate * PRUNE_EVERY_S)
    prunes, write_s, score_s, scored_total = [], 0.0, 0.0, 0
    with Store(url) as store:
        store.create()
        audits_ = store.audits
        next_prune, max_rows = PRUNE_EVERY_S, 0
        for start in range(0, args.growth, batch):
            now = T0 + timedelta(seconds=start / rate)
            guesses = [(f"g-{i}", 1, "0") for i in range(start, min(start + batch, args.growth))]
            began = time.perf_counter()
            audits_.served(guesses, now)
            write_s += time.perf_counter() - began
            scored = [(s, i, True) for i, (s, _, _) in enumerate(guesses, start) if i % 4 == 0]
            began = time.perf_counter()
            audits_.scored(scored)  # labeled at once: the scored ones never go
            score_s += time.perf_counter() - began
            scored_total += len(scored)
            if (start + batch) / rate >= next_prune:
                next_prune += PRUNE_EVERY_S
                before = audits_.counts()
                max_rows = max(max_rows, before["open"])
                began = time.perf_counter()
                gone = audits_.prune(keep)
                took = time.perf_counter() - began
                if store.dialect == "postgresql":
                    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                        conn.exec_driver_sql("VACUUM audits")
                after = audits_.counts()
                prunes.append(
                    {
                        "written": start + len(guesses),
                        "open_before": before["open"],
                        "pruned": gone,
                        "prune_s": took,
                        "open_after": after["open"],
                        "scored": after["scored"],
                        "table_bytes": table_bytes(store, url),
                    }
                )
        final = audits_.counts()
        began = time.perf_counter()
        audits_.tallies()
        tallies_s = time.perf_counter() - began
    bound = keep + per_interval
    return {
        "backend": backend,
        "written": args.growth,
        "keep": keep,
        "rate_per_s": rate,
        "per_prune_interval": per_interval,
        "prunes": prunes,
        "open_max_before_prune": max_rows,
        "open_max_after_prune": max(p["open_after"] for p in prunes),
        "final": final,
        "scored_written": scored_total,
        "write_us_per_row": write_s / args.growth * 1e6,
        "score_us_per_row": score_s / max(scored_total, 1) * 1e6,
        "tallies_s": tallies_s,
        "bytes_per_row_at_end": prunes[-1]["table_bytes"]
        / max(1, prunes[-1]["open_after"] + prunes[-1]["scored"]),
        "bounded": all(p["open_after"] <= keep for p in prunes) and max_rows <= bound,
        "scored_kept": final["scored"] == scored_total,
    }


# --- report ----------------------------------------------------------------------------------


def lease_table(results: list[dict], args: argparse.Namespace) -> Table:
    out = Table(title=f"Leases of {N} through the shared queue, {args.threads} annotators, audits vs none")
    columns = [
        "backend",
        "share",
        "arm",
        "leases/s",
        "lease p50 ms",
        "lease mean ms",
        "audit ms/lease",
        "audit/lease",
        "stmts/lease",
        "txns/lease",
        "server CPU ms/lease",
    ]
    for column in columns:
        out.add_column(column, justify="left" if column in ("backend", "arm") else "right")
    for r in results:
        for arm in ("audits", "none"):
            a = r["arms"][arm]
            cpu = a["server_cpu_ms_per_lease"]
            out.add_row(
                r["backend"],
                f"{r['random_share']:g}",
                arm,
                f"{a['leases_per_s']:,.0f}",
                f"{a['lease']['p50_ms']:.2f}",
                f"{a['lease']['mean_ms']:.2f}",
                f"{r['audit_ms_per_lease']:.3f}" if arm == "audits" else "-",
                f"{r['audit_share_of_lease']:.1%}" if arm == "audits" else "-",
                f"{a['statements_per_lease']:.2f}",
                f"{a['transactions_per_lease']:.2f}",
                "-" if cpu is None else f"{cpu:.2f}",
            )
    return out


def labels_table(results: list[dict], _args: argparse.Namespace) -> Table:
    out = table(
        "Label ingestion (store a batch, the trainer's sync), audits scored vs none",
        [
            "backend",
            "batch",
            "write ms",
            "sync ms, audits",
            "sync ms, none",
            "read ms, audits / none",
            "in audits ms",
            "audits/ingest",
            "stmts/sync, audits",
            "stmts/sync, none",
        ],
    )
    for r in results:
        for b in r["batches"]:
            out.add_row(
                r["backend"],
                str(b["batch"]),
                f"{b['write']['mean_ms']:.2f}",
                f"{b['sync_audits']['mean_ms']:.2f}",
                f"{b['sync_none']['mean_ms']:.2f}",
                f"{b['read_audits']['mean_ms']:.2f} / {b['read_none']['mean_ms']:.2f}",
                f"{b['in_audits']['mean_ms']:.2f}",
                f"{b['audit_share_of_ingest']:.1%}",
                f"{b['per_sync']['audits']['statements']:.1f}",
                f"{b['per_sync']['none']['statements']:.1f}",
            )
    return out


def growth_table(results: list[dict], _args: argparse.Namespace) -> Table:
    out = table(
        "The audits table over a run that writes many more guesses than it keeps",
        [
            "backend",
            "written",
            "keep",
            "open max before prune",
            "open max after",
            "scored (kept)",
            "prune s (max)",
            "table MB (first prune, last)",
            "bounded",
        ],
    )
    for r in results:
        sizes = [p["table_bytes"] / 1e6 for p in r["prunes"]]
        out.add_row(
            r["backend"],
            f"{r['written']:,}",
            f"{r['keep']:,}",
            f"{r['open_max_before_prune']:,}",
            f"{r['open_max_after_prune']:,}",
            f"{r['final']['scored']:,}",
            f"{max(p['prune_s'] for p in r['prunes']):.2f}",
            f"{sizes[0]:.1f}, {sizes[-1]:.1f}",
            "yes" if r["bounded"] and r["scored_kept"] else "NO",
        )
    return out


def checks(leases: list[dict], labels_: list[dict], growth: list[dict]) -> list[dict]:
    found = []
    for r in leases:
        found.append(
            {
                "what": f"leases, {r['backend']}, share {r['random_share']:g}: audit write / lease",
                "value": r["audit_share_of_lease"],
                "limit": LIMIT,
                "passed": r["audit_share_of_lease"] <= LIMIT and r["items_leased_twice"] == 0,
            }
        )
        if r["server_cpu_delta"] is not None:
            found.append(
                {
                    "what": f"leases, {r['backend']}, share {r['random_share']:g}: server CPU added",
                    "value": r["server_cpu_delta"],
                    "limit": LIMIT,
                    "passed": r["server_cpu_delta"] <= LIMIT,
                }
            )
    for r in labels_:
        for b in r["batches"]:
            found.append(
                {
                    "what": f"labels, {r['backend']}, batch {b['batch']}: audit scoring / ingestion",
                    "value": b["audit_share_of_ingest"],
                    "limit": LIMIT,
                    "passed": b["audit_share_of_ingest"] <= LIMIT,
                }
            )
    for r in growth:
        found.append(
            {
                "what": f"growth, {r['backend']}: open guesses <= keep after each prune",
                "value": r["open_max_after_prune"],
                "limit": r["keep"],
                "passed": r["bounded"] and r["scored_kept"],
            }
        )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", default=["postgresql:0.1", "postgresql:0.3", "sqlite:0.1"])
    parser.add_argument("--candidates", type=int, default=24_000, help="over all shards (half picks)")
    parser.add_argument("--shards", type=int, default=6)
    parser.add_argument("--labels", type=int, default=20_000, help="of other samples (leases check them)")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--leases", type=int, default=40, help="per annotator and phase")
    parser.add_argument("--phases", type=int, default=4, help="per arm (even: ABBA)")
    parser.add_argument("--label-backends", nargs="*", default=["postgresql", "sqlite"])
    parser.add_argument("--label-batches", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--label-rounds", type=int, default=40)
    parser.add_argument("--label-share", type=float, default=0.1, help="labels of random items")
    parser.add_argument(
        "--label-open", type=int, default=MAX_OPEN, help="open guesses of other samples (a busy stream's)"
    )
    parser.add_argument("--growth-backends", nargs="*", default=["postgresql", "sqlite"])
    parser.add_argument("--growth", type=int, default=4 * MAX_OPEN)
    parser.add_argument("--growth-keep", type=int, default=MAX_OPEN)
    parser.add_argument("--growth-rate", type=float, default=500.0, help="guesses a simulated second")
    parser.add_argument("--postgres-url", help="a server to CREATE DATABASE on (default: a private one)")
    parser.add_argument("--out", type=Path, default=RESULTS / "audits.json")
    args = parser.parse_args()
    if args.phases % 2:
        parser.error("--phases: an even number (the arms in turn, ABBA)")
    load = {"start": os.getloadavg()}
    leases, labels_, growth = [], [], []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="alstream-audits-") as tmp, backends(args, tmp) as make:
        for run in args.runs:
            backend, share = run.split(":")
            url, pid_file = make(backend)
            leases.append(lease_run(backend, float(share), url, pid_file, args))
        for backend in args.label_backends:
            labels_.append(labels_run(backend, make(backend)[0], args))
        for backend in args.growth_backends:
            growth.append(growth_run(backend, make(backend)[0], args))
    load["end"] = os.getloadavg()
    out = console(160)
    for part, draw in ((leases, lease_table), (labels_, labels_table), (growth, growth_table)):
        if part:
            out.print(draw(part, args))
    found = checks(leases, labels_, growth)
    for check in found:
        mark = "[green]ok  " if check["passed"] else "[red]MISS"
        value, limit = check["value"], check["limit"]
        shown = (
            f"{value:.1%} (limit {limit:.0%})" if isinstance(limit, float) else f"{value:,} (limit {limit:,})"
        )
        out.print(f"{mark}[/] {check['what']}: {shown}")
    print_verdict(out, found)
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "postgres_url")}
    write_report(
        args.out,
        {
            "benchmark": "audits",
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "settings": settings,
            "lease": {"n": N, "cap": CAP, "token_cap": TOKEN_CAP, "ttl_s": TTL_S},
            "limit": LIMIT,
            "prune_every_s": PRUNE_EVERY_S,
            "alstream": source_info(),
            "machine": {**machine(), "load_average": load},
            "wall_s": time.perf_counter() - started,
            "leases": leases,
            "labels": labels_,
            "growth": growth,
            "checks": found,
        },
    )
    out.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
