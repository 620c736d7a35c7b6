"""Service benchmark: the HTTP API, the stream, the consumer and the queue of a running alstream.

Five measurements, each against the issue's one-core targets:

* ``POST /send`` throughput: the real app under uvicorn (one worker, a subprocess pinned to one
  CPU, consumer off so only the HTTP -> stream path is measured), fed batches of 500 digits-shaped
  samples (64 features) by a keep-alive ``httpx.Client`` pinned to the other CPU, into Kafka and
  into the embedded log. Beside it, in the same run, a raw confluent-kafka ``Producer`` (the
  service's own config: acks=all, idempotence, lz4, linger 5 ms; also pinned to one CPU) sends
  the very same encoded messages, flushing after every 500 (comparable) and once at the end
  (the ceiling).
* consumer -> store throughput: samples pre-published into the embedded log and Kafka, then an
  ``Ingestor`` (pinned to one CPU) drains them into a fresh SQLite store; with a breakdown of
  poll, decode, write_batch and commit.
* ``GET /queue`` latency with 10^5 and 10^6 samples in the pool: the pool is filled in-process
  (features, the scores of a trained sgd model), then ``engine.queue(10, annotator)`` is timed
  in-process and through real HTTP against a uvicorn server whose pool was filled the same way;
  every call has a new annotator, so leases accumulate as with real people. ``GET /stats`` is
  timed on the same server.
* ``GET /health`` latency while another connection sends, again and again, the costliest batch each
  of ``/send``, ``/labels`` and ``/predict`` accepts (10,000 items), beside /health on the idle
  server: decoding and checking run off the event loop, so the other requests go on.
* label -> updated queue, with 10^5 and 10^6 samples: the digits demo plus extra samples sent
  through ``/send`` (the real path: stream, consumer, store, engine), online updates on (sgd): a
  label is POSTed to ``/labels`` and ``/health`` (the trainer's current version) and ``GET /queue``
  (the pool's scores' version) are polled until both move. ``GET /stats`` is timed on that
  server too, beside what it cost before (``Store.counts()`` and ``Store.conflicts()`` on the
  server's store; they grow with the samples and, more, with the label events).

The Kafka broker is started with ``scripts/kafka.sh`` in a temporary home (skipped with a note
when Java or the jars are missing, or with ``--no-kafka``); a first consumer group joins before
any measure (a fresh broker creates its offsets topic then). The results go to a rich table per
part, a PASS/FAIL table against the targets and ``bench/results/service.json``. The exit code
is 0 even when a target fails: this is a report.

    .venv/bin/python bench/service_bench.py             # full sizes (about 3 minutes)
    .venv/bin/python bench/service_bench.py --quick     # smaller sizes (about 1 minute)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from common import free_port, percentiles
from provenance import machine, source_info

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
ADMIN_TOKEN = "bench-admin-token-0123456789"  # the servers' configured admin token
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
KAFKA_SH = ROOT / "scripts" / "kafka.sh"
KAFKA_LIB = ROOT / ".kafka" / "lib"
BATCH = 500
N_FEATURES = 64
CLASSES = [str(d) for d in range(10)]
ONE_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
DEMO_POOL = 1437  # the digits demo's samples
LABEL_POLL_S = 0.01  # how often label -> queue polls /health and /queue (each poll costs server CPU)

# (key, what, threshold, higher is better)
TARGETS = (
    ("send_kafka", "POST /send into Kafka >= 20,000 samples/s", 20_000.0, True),
    ("consumer_sqlite", "consumer -> SQLite from the embedded log >= 20,000 samples/s", 20_000.0, True),
    ("consumer_kafka", "consumer -> SQLite from Kafka >= 20,000 samples/s", 20_000.0, True),
    ("queue_p99_1e5", "GET /queue p99 <= 20 ms at 10^5 (HTTP)", 20.0, False),
    ("queue_p99_1e6", "GET /queue p99 <= 20 ms at 10^6 (HTTP)", 20.0, False),
    ("stats_p99_1e5", "GET /stats p99 <= 20 ms at 10^5 (HTTP, store of 10^5)", 20.0, False),
    ("stats_p99_1e6", "GET /stats p99 <= 20 ms at 10^6 (HTTP, store of 10^6)", 20.0, False),
    ("label_p99_1e5", "label -> updated queue <= 1 s at 10^5 (p99, online updates)", 1000.0, False),
    ("label_p99_1e6", "label -> updated queue <= 1 s at 10^6 (p99, online updates)", 1000.0, False),
    ("health_p99_busy", "GET /health p99 <= 200 ms while the largest batches are checked", 200.0, False),
)


# --------------------------------------------------------------------------------------------
# Shared helpers


CPUS = sorted(os.sched_getaffinity(0))  # before the driver pins itself to the client CPU


def server_cpu() -> int:
    return CPUS[-1]


def client_cpu() -> int:
    return CPUS[0]


def pin(cpu: int) -> None:
    """Pin this thread (and every thread it starts later) to ``cpu``; one BLAS thread."""
    os.sched_setaffinity(0, {cpu})
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


def digits_like(n: int, seed: int) -> np.ndarray:
    """``n`` rows like scikit-learn's digits (a random digit plus noise, 0..16), float32."""
    from sklearn.datasets import load_digits

    X = load_digits().data.astype(np.float32)
    rng = np.random.default_rng(seed)
    rows = X[rng.integers(len(X), size=n)] + rng.normal(0, 1.0, size=(n, N_FEATURES)).astype(np.float32)
    return np.clip(np.rint(rows), 0, 16).astype(np.float32)


def send_bodies(n: int, prefix: str, seed: int) -> list[bytes]:
    """JSON bodies of ``BATCH`` samples each, as a client would POST them (integer pixels)."""
    import orjson

    X = digits_like(n, seed).astype(np.int64)
    bodies = []
    for start in range(0, n, BATCH):
        items = [
            {"id": f"{prefix}-{i}", "features": X[i].tolist()} for i in range(start, min(n, start + BATCH))
        ]
        bodies.append(orjson.dumps(items))
    return bodies


def settings_for(home: Path, kafka: str | None, **overrides: Any):
    from alstream.settings import Settings

    suffix = uuid.uuid4().hex[:8]
    options: dict[str, Any] = {
        "data_dir": home / "data",
        "database_url": f"sqlite:///{home}/alstream.db",
        "demo": False,
        "kafka_bootstrap": kafka,
        "samples_topic": f"bench-samples-{suffix}",
        "labels_topic": f"bench-labels-{suffix}",
        "dead_letter_topic": f"bench-dead-{suffix}",
        "consumer_group": f"bench-{suffix}",
        "log_level": "WARNING",
    }
    access = {
        "admin_token": ADMIN_TOKEN,
        "send_rate_per_s": 1e9,
        "queue_rate_per_s": 1e9,
        "labels_rate_per_s": 1e9,
    }  # throughput, not the rate limits
    return Settings(**{**options, **access, **overrides})


def trained_engine_fill(engine: Any, n: int, seed: int = 0) -> dict[str, float]:
    """Train the engine's first model on 300 labeled digits, then add ``n`` scored samples to the pool."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    t0 = time.perf_counter()
    engine.serving = engine.trainer.train_full(
        digits.data[:300].astype(np.float32), digits.target[:300].astype(str)
    )
    X = digits_like(n, seed)
    ids = [f"pool-{i}" for i in range(n)]
    t1 = time.perf_counter()
    scores = engine.admission.score(engine.serving.model, X)
    t2 = time.perf_counter()
    engine.pool.add(ids, X, scores)
    engine.pool.set_scores(engine.pool.scores[:n], engine.trainer.current.version)
    engine._publish()  # what the engine does after scoring a model version: a snapshot, ranked
    t3 = time.perf_counter()
    return {"train_s": t1 - t0, "score_s": t2 - t1, "pool_add_and_rank_s": t3 - t2}


# --------------------------------------------------------------------------------------------
# Kafka broker


@contextlib.contextmanager
def kafka_broker(enabled: bool, console: Any) -> Iterator[tuple[str | None, str | None]]:
    """(bootstrap, None) with a broker up in a temporary home, or (None, why not)."""
    if not enabled:
        yield None, "--no-kafka"
        return
    if shutil.which("java") is None:
        yield None, "java is not installed"
        return
    if not any(KAFKA_LIB.glob("kafka_2.13-*.jar")) and shutil.which("mvn") is None:
        yield None, "no Kafka jars in .kafka/lib and no mvn"
        return
    with tempfile.TemporaryDirectory(prefix="alstream-bench-kafka-") as home:
        env = {
            **os.environ,
            "KAFKA_HOME_DIR": home,
            "KAFKA_LIB": str(KAFKA_LIB),
            "KAFKA_PORT": str(free_port()),
            "KAFKA_CONTROLLER_PORT": str(free_port()),
        }

        def run(cmd: str, timeout: float) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["bash", str(KAFKA_SH), cmd], env=env, capture_output=True, text=True, timeout=timeout
            )

        with console.status("starting the Kafka broker (scripts/kafka.sh up)"):
            started = time.perf_counter()
            up = run("up", 300)
        if up.returncode != 0:
            run("down", 120)
            yield None, f"scripts/kafka.sh up failed: {up.stderr.strip()[-300:]}"
            return
        console.print(f"Kafka broker up in {time.perf_counter() - started:.1f} s", highlight=False)
        bootstrap = up.stdout.strip().splitlines()[-1]
        try:
            with console.status("warming the group coordinator"):
                warm_group_coordinator(bootstrap)
            yield bootstrap, None
        finally:
            run("down", 120)


def warm_group_coordinator(bootstrap: str, timeout: float = 60) -> None:
    """A fresh broker creates its offsets topic when the first group joins (seconds): done here, so
    that no measure pays it (a running cluster has it long since)."""
    from confluent_kafka import Consumer

    from alstream.stream.kafka import KafkaStream

    stream = KafkaStream(bootstrap)
    stream.publish("bench-warm-up", [(None, b"{}")])
    stream.close()
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-warm-up"})
    consumer.subscribe(["bench-warm-up"])
    deadline = time.monotonic() + timeout
    while not consumer.assignment() and time.monotonic() < deadline:
        consumer.poll(0.2)
    consumer.close()


# --------------------------------------------------------------------------------------------
# Child processes (``--child NAME CONFIG_JSON``): one CPU each, results as JSON on stdout


def child_serve(cfg: dict[str, Any]) -> None:
    """The app under uvicorn, one worker, pinned; optionally with a pre-filled pool."""
    pin(cfg["cpu"])
    import logging

    from alstream.service.app import create_app
    from alstream.service.server import serve

    logging.basicConfig(level=logging.WARNING)
    settings = settings_for(Path(cfg["home"]), cfg["kafka"], **cfg.get("settings", {}))
    app = create_app(settings, consume=cfg["consume"], track=False)
    fill = int(cfg.get("fill_pool", 0))
    if fill:
        inner = app.router.lifespan_context

        @contextlib.asynccontextmanager
        async def lifespan(app_: Any):
            async with inner(app_):
                trained_engine_fill(app_.state.runtime.engine, fill)
                yield

        app.router.lifespan_context = lifespan
    serve(app, settings.model_copy(update={"host": "127.0.0.1", "port": cfg["port"]}))  # as `alstream serve`


def child_raw(cfg: dict[str, Any]) -> None:
    """A raw confluent-kafka producer sending the service's own encoded messages, pinned."""
    pin(cfg["cpu"])
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient

    from alstream.messages import Sample, encode_sample
    from alstream.stream.kafka import TopicCreator, client_config, producer_config

    X = digits_like(cfg["n"], seed=7)
    messages = [
        (f"raw-{i}".encode(), encode_sample(Sample(id=f"raw-{i}", features=X[i]))) for i in range(cfg["n"])
    ]
    config = {k: v for k, v in producer_config(cfg["kafka"], "bench-raw").items() if k != "logger"}
    TopicCreator(AdminClient(client_config(cfg["kafka"], "bench-raw-admin")), 1).ensure(
        [cfg["topic_batched"], cfg["topic_ceiling"]], 30
    )
    out = {}
    for mode, topic in (("flush_per_500", cfg["topic_batched"]), ("flush_at_end", cfg["topic_ceiling"])):
        producer = Producer(config)
        producer.produce(topic, value=b"{}", key=b"warm")
        producer.flush(30)
        errors = []

        def report(err: Any, _msg: Any, errors: list = errors) -> None:
            if err is not None:
                errors.append(str(err))

        started = time.perf_counter()
        for start in range(0, len(messages), BATCH):
            for key, value in messages[start : start + BATCH]:
                while True:
                    try:
                        producer.produce(topic, value=value, key=key, on_delivery=report)
                        producer.poll(0)
                        break
                    except BufferError:
                        producer.poll(0.05)
            if mode == "flush_per_500":
                producer.flush(30)
        left = producer.flush(60)
        elapsed = time.perf_counter() - started
        out[mode] = {
            "samples": len(messages),
            "seconds": elapsed,
            "samples_per_s": len(messages) / elapsed,
            "unflushed": left,
            "errors": len(errors),
        }
    print(json.dumps(out))


def child_ingest(cfg: dict[str, Any]) -> None:
    """Publish ``n`` samples (untimed), then time an Ingestor draining them into fresh SQLite."""
    pin(cfg["cpu"])
    from alstream.messages import Sample
    from alstream.service.ingest import Ingestor, Topics
    from alstream.store import Store
    from alstream.stream import open_stream

    home = Path(cfg["home"])
    settings = settings_for(home, cfg["kafka"])
    stream = open_stream(settings.kafka_bootstrap, settings.data_dir)
    topics = Topics(settings.samples_topic, settings.labels_topic, settings.dead_letter_topic)
    n = cfg["n"]
    X = digits_like(n, seed=11)
    from alstream.messages import encode_sample

    t0 = time.perf_counter()
    for start in range(0, n, 5000):
        chunk = [Sample(id=f"ing-{i}", features=X[i]) for i in range(start, min(n, start + 5000))]
        stream.publish(topics.samples, [(s.id.encode(), encode_sample(s)) for s in chunk], timeout=60)
    stream.publish(topics.labels, [])  # make sure the labels topic exists (Kafka)
    publish_s = time.perf_counter() - t0

    store = Store(settings.database_url)
    store.create()
    ingestor = Ingestor(stream, store, settings.project, topics, settings.consumer_group)
    parts = {"poll": 0.0, "decode": 0.0, "write_batch": 0.0, "commit": 0.0}

    def timed(name: str, fn: Callable) -> Callable:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                parts[name] += time.perf_counter() - start

        return wrapper

    consumer = ingestor.consumer
    consumer.poll = timed("poll", consumer.poll)
    consumer.commit = timed("commit", consumer.commit)
    ingestor._decode = timed("decode", ingestor._decode)
    store.write_batch = timed("write_batch", store.write_batch)

    started = time.perf_counter()
    first = None
    deadline = started + cfg["timeout_s"]
    while ingestor.counts.samples < n and time.perf_counter() < deadline:
        if ingestor.step() and first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    stored = store.counts()["samples"]
    ingestor.close()
    store.close()
    stream.close()
    measured_from = first if first is not None else started
    print(
        json.dumps(
            {
                "samples": n,
                "stored": stored,
                "batches": ingestor.counts.batches,
                "publish_s": publish_s,
                "seconds": end - started,
                "seconds_from_first_batch": end - measured_from,
                "samples_per_s": stored / (end - started),
                "samples_per_s_from_first_batch": stored / (end - measured_from),
                "breakdown_s": parts,
            }
        )
    )


def child_queue(cfg: dict[str, Any]) -> None:
    """engine.queue(10, annotator) in-process with a filled pool; Pool.take alone; and what a new model
    version costs before the queue serves it (re-scoring the whole pool, ranking it)."""
    pin(cfg["cpu"])
    from alstream.service.engine import Engine, EngineConfig
    from alstream.store import Store

    home = Path(cfg["home"])
    store = Store(f"sqlite:///{home}/queue.db")
    store.create()
    engine = Engine(EngineConfig(classes=CLASSES, n_features=N_FEATURES, track=False), store)
    fill = trained_engine_fill(engine, cfg["n"])
    for i in range(5):
        engine.queue(10, f"warm-{i}")
    queue_ms, take_ms, rescore_ms, rank_ms = [], [], [], []
    for i in range(cfg["calls"]):
        t0 = time.perf_counter()
        items = engine.queue(10, f"annotator-{i}")
        queue_ms.append((time.perf_counter() - t0) * 1e3)
        assert len(items) == 10
    # Leases.take alone, for annotators who have nothing leased yet.
    for i in range(min(100, cfg["calls"])):
        t0 = time.perf_counter()
        engine.leases.take(10, f"take-{i}", 300.0, 0.1)
        take_ms.append((time.perf_counter() - t0) * 1e3)
    for _ in range(5):  # a new version: the whole pool re-scored, and the snapshot that ranks it
        t0 = time.perf_counter()
        engine.rescore(engine.trainer.current)
        rescore_ms.append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        engine._publish()
        rank_ms.append((time.perf_counter() - t0) * 1e3)
    profile = None
    if cfg.get("profile"):
        import cProfile
        import io
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        for i in range(30):
            engine.queue(10, f"profiled-{i}")
        prof.disable()
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(8)
        profile = text.getvalue()
    print(
        json.dumps(
            {
                "n": cfg["n"],
                "fill": fill,
                "engine_queue": percentiles(queue_ms),
                "pool_take": percentiles(take_ms),
                "rescore_and_rank": percentiles(rescore_ms),
                "rank": percentiles(rank_ms),
                "leased_at_end": engine.leases.state()["leases"],
                "profile": profile,
            }
        )
    )


CHILDREN = {"serve": child_serve, "raw": child_raw, "ingest": child_ingest, "queue": child_queue}


def run_child(name: str, cfg: dict[str, Any], timeout: float) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", name, json.dumps(cfg)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cfg.get("home", tempfile.gettempdir()),
    )
    if done.returncode != 0:
        raise RuntimeError(f"child {name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def server(
    home: Path, kafka: str | None, *, consume: bool, fill_pool: int = 0, timeout: float = 180, **settings: Any
):
    """A uvicorn server of the app in a subprocess pinned to the server CPU; yields its base URL."""
    import httpx

    port = free_port()
    cfg = {
        "cpu": server_cpu(),
        "home": str(home),
        "kafka": kafka,
        "consume": consume,
        "port": port,
        "fill_pool": fill_pool,
        "settings": settings,
    }
    log = open(home / "server.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--child", "serve", json.dumps(cfg, default=str)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=home,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {(home / 'server.log').read_text()[-3000:]}")
            try:
                if httpx.get(url + "/health", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not answer /health in time")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


# --------------------------------------------------------------------------------------------
# The parts


def bench_send(home: Path, kafka: str | None, bodies: list[bytes], budget_s: float) -> dict[str, Any]:
    """POST the bodies (``BATCH`` samples each) for up to ``budget_s``; samples/s at the client."""
    import httpx

    with (
        server(home, kafka, consume=False) as url,
        httpx.Client(base_url=url, timeout=60, headers=AUTH) as client,
    ):
        headers = {"content-type": "application/json"}
        for body in bodies[:2]:  # warm-up: topic creation, first connection
            client.post("/send", content=body, headers=headers).raise_for_status()
        latencies, sent = [], 0
        started = time.perf_counter()
        for body in bodies[2:]:
            t0 = time.perf_counter()
            response = client.post("/send", content=body, headers=headers)
            latencies.append((time.perf_counter() - t0) * 1e3)
            response.raise_for_status()
            sent += response.json()["samples"]
            if time.perf_counter() - started > budget_s:
                break
        elapsed = time.perf_counter() - started
    return {
        "samples": sent,
        "seconds": elapsed,
        "samples_per_s": sent / elapsed,
        "request_latency": percentiles(latencies),
    }


def send_breakdown(bodies: list[bytes], home: Path) -> dict[str, float]:
    """Per-stage cost of /send's work for one batch, in-process on one CPU, microseconds per sample."""

    from alstream.messages import encode_sample, parse_messages
    from alstream.service.routes.send import Accepted
    from alstream.settings import Settings
    from alstream.stream.log import EmbeddedLog

    schema = Settings(demo=False).project
    body = bodies[0]
    per = {}

    def clock(name: str, fn: Callable[[], Any], rounds: int = 7, reps: int = 5) -> Any:
        """The best of ``rounds`` (other processes on the machine only ever add time)."""
        out = fn()
        best = float("inf")
        for _ in range(rounds):
            t0 = time.perf_counter()
            for _ in range(reps):
                out = fn()
            best = min(best, (time.perf_counter() - t0) / reps)
        per[name] = best / BATCH * 1e6
        return out

    samples, _ = clock("parse_messages (the body's bytes)", lambda: parse_messages(body, schema))
    encoded = clock("encode_sample", lambda: [(s.id.encode(), encode_sample(s)) for s in samples])
    log = EmbeddedLog(home / "breakdown-log")
    clock("embedded publish (fsync)", lambda: log.publish("t", encoded))
    log.close()
    clock(
        "Accepted response",
        lambda: Accepted(ids=[s.id for s in samples], samples=len(samples), labels=0).model_dump_json(),
    )
    per["total"] = sum(per.values())
    per["implied_samples_per_s"] = 1e6 / per["total"]
    return per


def bench_queue_http(home: Path, n: int, calls: int) -> dict[str, Any]:
    import httpx

    with (
        server(home, None, consume=False, fill_pool=n, timeout=300) as url,
        httpx.Client(base_url=url, headers=AUTH) as c,
    ):
        for i in range(5):
            c.get("/queue", params={"n": 10, "annotator": f"warm-{i}"}).raise_for_status()
        times = []
        for i in range(calls):
            t0 = time.perf_counter()
            response = c.get("/queue", params={"n": 10, "annotator": f"http-{i}"})
            times.append((time.perf_counter() - t0) * 1e3)
            response.raise_for_status()
        health = timed_gets(c, "/health", 100)
        stats = timed_gets(c, "/stats", 100)
    return {
        "n": n,
        "get_queue": percentiles(times),
        "get_health_floor": percentiles(health),
        "get_stats": percentiles(stats),
    }


def largest_bodies() -> dict[str, bytes]:
    """Per route, the costliest body it accepts to check: a full batch (10,000 items) of 64 numbers
    each (``/send``: one bad label at the end, so all is checked and nothing is published)."""
    row = b"[" + b",".join([b"1"] * N_FEATURES) + b"]"
    label = json.dumps({"id": "x" * 200, "label": "3", "annotator": "a" * 200}).encode()
    items = [b'{"features": ' + row + b', "label": "3"}'] * 9_999 + [
        b'{"features": ' + row + b', "label": "?"}'
    ]
    return {
        "/send": b"[" + b",".join(items) + b"]",
        "/labels": b"[" + b",".join([label] * 10_000) + b"]",
        "/predict": b'{"features": [' + b",".join([row] * 10_000) + b"]}",
    }


def bench_health_busy(home: Path, rounds: int) -> dict[str, Any]:
    """``GET /health`` latency while, on another connection, the largest batch each route takes is
    sent and checked ``rounds`` times in a row; beside it, /health on the idle server (the floor)."""
    import threading

    import httpx

    bodies = largest_bodies()
    out: dict[str, Any] = {}
    with server(home, None, consume=True, demo=True, timeout=300) as url, httpx.Client(base_url=url) as c:
        while c.get("/health").json()["model_version"] is None:  # /predict needs the first model
            time.sleep(0.2)
        out["idle"] = percentiles(timed_gets(c, "/health", 300))
        for path, body in bodies.items():
            statuses: list[int] = []

            def post(path: str = path, body: bytes = body, statuses: list[int] = statuses) -> None:
                headers = {**AUTH, "Content-Type": "application/json"}
                with httpx.Client(base_url=url, headers=headers, timeout=600) as big:
                    statuses.extend(big.post(path, content=body).status_code for _ in range(rounds))

            thread = threading.Thread(target=post)
            thread.start()
            times = []
            while thread.is_alive():
                t0 = time.perf_counter()
                c.get("/health").raise_for_status()
                times.append((time.perf_counter() - t0) * 1e3)
            thread.join()
            out[path] = {**percentiles(times), "body_mb": round(len(body) / 1e6, 1), "answers": statuses}
        out["all"] = {"p99_ms": max(out[path]["p99_ms"] for path in bodies)}
    return out


def timed_gets(client: Any, path: str, calls: int) -> list[float]:
    """Milliseconds of ``calls`` GETs of ``path``, one after the other."""
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        client.get(path).raise_for_status()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def bench_label(home: Path, pool: int, repeats: int) -> dict[str, Any]:
    """With ``pool`` samples (the digits demo, the rest sent through /send): label -> new model version
    (/health) and -> queue served from the new scores (/queue); and GET /stats."""
    import httpx

    from alstream.store import Store

    extra = pool - DEMO_POOL
    settings = {"demo": True, "online_updates": True, "model": "sgd", "retrain_interval_s": 3600.0}
    with (
        server(home, None, consume=True, timeout=300, **settings) as url,
        httpx.Client(base_url=url, headers=AUTH) as c,
    ):

        def wait(cond: Callable[[], bool], what: str, timeout: float = 120) -> None:
            deadline = time.monotonic() + timeout
            while not cond():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"timed out waiting for {what}")
                time.sleep(0.05)

        wait(lambda: c.get("/health").json()["model_version"] is not None, "the first model")
        headers = {"content-type": "application/json"}
        prefix = f"extra-{uuid.uuid4().hex[:6]}"
        for part, start in enumerate(range(0, extra, 50_000)):  # built as sent: 10^6 at once is GBs
            for body in send_bodies(min(50_000, extra - start), f"{prefix}-{part}", seed=5 + part):
                c.post("/send", content=body, headers=headers).raise_for_status()
        # every sample offered to the pool (the labeled ones left it for the training set)
        wait(lambda: c.get("/stats").json()["arrivals"] >= pool, "the extra samples in the pool", 900)

        def queue_version() -> int:
            return c.get("/queue", params={"n": 1, "annotator": "poller"}).json()[0]["model_version"]

        def model_version() -> int:
            return c.get("/health").json()["model_version"]

        wait(lambda: queue_version() == model_version(), "the first scores")
        stats_ms = timed_gets(c, "/stats", 100)
        with Store(f"sqlite:///{home}/alstream.db") as store:  # what /stats asked the store before
            store_ms = []
            for _ in range(20):
                t0 = time.perf_counter()
                store.counts(), len(store.conflicts())
                store_ms.append((time.perf_counter() - t0) * 1e3)
        rows = []
        for i in range(repeats):
            item = c.get("/queue", params={"n": 1, "annotator": f"labeler-{i}"}).json()[0]
            v_model, v_queue = model_version(), queue_version()
            t0 = time.perf_counter()
            label = {"id": item["id"], "label": item["predicted"] or "0", "annotator": f"labeler-{i}"}
            c.post("/labels", json=label).raise_for_status()
            t_ack = time.perf_counter()
            t_model = t_queue = None
            while t_queue is None and time.perf_counter() - t0 < 30:
                now = time.perf_counter()
                if t_model is None and model_version() > v_model:
                    t_model = now
                if queue_version() > v_queue:
                    t_queue = time.perf_counter()
                    t_model = t_model or t_queue
                time.sleep(LABEL_POLL_S)
            rows.append(
                {
                    "ack_ms": (t_ack - t0) * 1e3,
                    "model_ms": None if t_model is None else (t_model - t0) * 1e3,
                    "queue_ms": None if t_queue is None else (t_queue - t0) * 1e3,
                }
            )
        stats = c.get("/stats").json()
    curve = stats["learning_curve"]
    kinds = [p["kind"] for p in curve[-repeats:]]
    done = [r for r in rows if r["queue_ms"] is not None]
    return {
        "pool": stats["pool"],
        "store": stats["store"],
        "repeats": repeats,
        "timed_out": repeats - len(done),
        "ack": percentiles([r["ack_ms"] for r in rows]),
        "to_model_version": percentiles([r["model_ms"] for r in done]) if done else None,
        "to_updated_queue": percentiles([r["queue_ms"] for r in done]) if done else None,
        "version_kinds": {k: kinds.count(k) for k in set(kinds)},
        "engine_label_to_model_s": stats["label_to_model_s"],
        "get_stats": percentiles(stats_ms),
        "store_counts_and_conflicts": percentiles(store_ms),
        "rows": rows,
    }


# --------------------------------------------------------------------------------------------
# Report


def machine_info(load: dict[str, Any]) -> dict[str, Any]:
    names = (
        "numpy",
        "scikit-learn",
        "fastapi",
        "starlette",
        "uvicorn",
        "httpx",
        "confluent-kafka",
        "orjson",
        "SQLAlchemy",
        "pydantic",
    )
    java = shutil.which("java")
    return {
        **machine(),
        "server_cpu": server_cpu(),
        "client_cpu": client_cpu(),
        "versions": {name: version(name) for name in names},
        "librdkafka": __import__("confluent_kafka").libversion()[0],
        "java": java,
        "uvicorn_http": "h11 (httptools not installed)" if not _has("httptools") else "httptools",
        "uvicorn_loop": "asyncio (uvloop not installed)" if not _has("uvloop") else "uvloop",
        "load_average": load,
    }


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def check_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    def get(*path: str) -> float | None:
        value: Any = results
        for key in path:
            value = (value or {}).get(key)
        return value

    values = {
        "send_kafka": get("send", "kafka", "samples_per_s"),
        "consumer_sqlite": get("ingest", "embedded", "samples_per_s"),
        "consumer_kafka": get("ingest", "kafka", "samples_per_s"),
        "queue_p99_1e5": get("queue_http", "100000", "get_queue", "p99_ms"),
        "queue_p99_1e6": get("queue_http", "1000000", "get_queue", "p99_ms"),
        "stats_p99_1e5": get("label", "100000", "get_stats", "p99_ms"),
        "stats_p99_1e6": get("label", "1000000", "get_stats", "p99_ms"),
        "label_p99_1e5": get("label", "100000", "to_updated_queue", "p99_ms"),
        "label_p99_1e6": get("label", "1000000", "to_updated_queue", "p99_ms"),
        "health_p99_busy": get("health_busy", "all", "p99_ms"),
    }
    checks = []
    for key, what, threshold, higher in TARGETS:
        value = values[key]
        passed = None if value is None else (value >= threshold if higher else value <= threshold)
        checks.append({"key": key, "target": what, "threshold": threshold, "value": value, "passed": passed})
    return checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", nargs=2, metavar=("NAME", "CONFIG"), help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer calls")
    parser.add_argument("--no-kafka", action="store_true", help="skip everything that needs the broker")
    parser.add_argument("--profile", action="store_true", help="cProfile the queue at the largest pool")
    parser.add_argument("--out", type=Path, default=RESULTS / "service.json")
    args = parser.parse_args()
    for var in ONE_THREAD_VARS:
        os.environ.setdefault(var, "1")
    if args.child:
        CHILDREN[args.child[0]](json.loads(args.child[1]))
        return

    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 150)
    quick = args.quick
    sizes = {
        "send_samples": 30_000 if quick else 100_000,
        "send_budget_s": 5.0 if quick else 10.0,
        "ingest_samples": 50_000 if quick else 200_000,
        "pools": [100_000, 1_000_000] if not quick else [100_000, 300_000],
        "queue_calls": 200 if quick else 500,
        "label_pools": [20_000, 100_000] if quick else [100_000, 1_000_000],
        "label_repeats": 10 if quick else 20,
        "busy_rounds": 2 if quick else 5,
    }
    started = time.perf_counter()
    load_start = os.getloadavg()
    if load_start[0] > 0.5:
        console.print(f"[yellow]note: load average {load_start[0]:.2f} before the run: timings may be noisy")
    os.sched_setaffinity(0, {client_cpu()})  # the client side; servers and children pin themselves
    results: dict[str, Any] = {
        "send": {},
        "raw_producer": None,
        "ingest": {},
        "queue_inprocess": {},
        "queue_http": {},
        "label": {},
        "send_breakdown": None,
        "health_busy": {},
    }
    notes: list[str] = []
    with (
        tempfile.TemporaryDirectory(prefix="alstream-service-bench-") as tmp,
        kafka_broker(not args.no_kafka, console) as (bootstrap, why_not),
    ):
        tmp_path = Path(tmp)
        if bootstrap is None:
            notes.append(f"Kafka parts skipped: {why_not}")
            console.print(f"[yellow]Kafka parts skipped: {why_not}")

        def home(name: str) -> Path:
            path = tmp_path / name
            path.mkdir()
            return path

        # 1. /send throughput, and the raw producer beside it
        with console.status("building the /send bodies"):
            bodies = send_bodies(sizes["send_samples"], f"send-{uuid.uuid4().hex[:6]}", seed=1)
        for stream in ("kafka", "embedded"):
            if stream == "kafka" and bootstrap is None:
                continue
            with console.status(f"/send into {stream}"):
                results["send"][stream] = bench_send(
                    home(f"send-{stream}"),
                    bootstrap if stream == "kafka" else None,
                    bodies,
                    sizes["send_budget_s"],
                )
        if bootstrap is not None:
            with console.status("raw confluent-kafka producer"):
                sent = max(r["samples"] for r in results["send"].values())
                results["raw_producer"] = run_child(
                    "raw",
                    {
                        "cpu": server_cpu(),
                        "kafka": bootstrap,
                        "n": sent,
                        "topic_batched": f"raw-a-{uuid.uuid4().hex[:6]}",
                        "topic_ceiling": f"raw-b-{uuid.uuid4().hex[:6]}",
                    },
                    timeout=300,
                )
        with console.status("/send breakdown"):
            os.sched_setaffinity(0, {server_cpu()})
            results["send_breakdown"] = send_breakdown(bodies, home("breakdown"))
            os.sched_setaffinity(0, {client_cpu()})

        # 2. consumer -> store
        for stream in ("embedded", "kafka"):
            if stream == "kafka" and bootstrap is None:
                continue
            with console.status(f"consumer -> SQLite from {stream}"):
                results["ingest"][stream] = run_child(
                    "ingest",
                    {
                        "cpu": server_cpu(),
                        "home": str(home(f"ingest-{stream}")),
                        "n": sizes["ingest_samples"],
                        "kafka": bootstrap if stream == "kafka" else None,
                        "timeout_s": 120,
                    },
                    timeout=400,
                )

        # 3. GET /queue
        for n in sizes["pools"]:
            with console.status(f"engine.queue in-process, pool of {n:,}"):
                results["queue_inprocess"][str(n)] = run_child(
                    "queue",
                    {
                        "cpu": server_cpu(),
                        "home": str(home(f"queue-{n}")),
                        "n": n,
                        "calls": sizes["queue_calls"],
                        "profile": args.profile and n == max(sizes["pools"]),
                    },
                    timeout=400,
                )
            with console.status(f"GET /queue over HTTP, pool of {n:,}"):
                results["queue_http"][str(n)] = bench_queue_http(
                    home(f"queue-http-{n}"), n, sizes["queue_calls"]
                )

        # 4. /health while the largest batches are checked
        with console.status("GET /health while the largest batch of each route is checked"):
            results["health_busy"] = bench_health_busy(home("health-busy"), sizes["busy_rounds"])

        # 5. label -> updated queue, and GET /stats, on a store of that size
        for n in sizes["label_pools"]:
            with console.status(f"label -> updated queue, pool of {n:,} (filled through /send)"):
                results["label"][str(n)] = bench_label(home(f"label-{n}"), n, sizes["label_repeats"])

    # ---------------------------------------------------------------- tables
    table = Table(
        title=f"POST /send, batches of {BATCH} digits samples (64 features); server pinned to CPU "
        f"{server_cpu()}, client on CPU {client_cpu()}"
    )
    for name in ("path", "samples", "seconds", "samples/s", "request p50 ms", "request p99 ms"):
        table.add_column(name, justify="right" if name != "path" else "left")
    for stream, r in results["send"].items():
        lat = r["request_latency"]
        table.add_row(
            f"/send -> {stream}",
            f"{r['samples']:,}",
            f"{r['seconds']:.2f}",
            f"{r['samples_per_s']:,.0f}",
            f"{lat['p50_ms']:.1f}",
            f"{lat['p99_ms']:.1f}",
        )
    for mode, r in (results["raw_producer"] or {}).items():
        table.add_row(
            f"raw confluent-kafka, {mode}",
            f"{r['samples']:,}",
            f"{r['seconds']:.2f}",
            f"{r['samples_per_s']:,.0f}",
            "",
            "",
        )
    console.print(table)
    breakdown = results["send_breakdown"]
    table = Table(title="where /send's time goes (in-process, one CPU, per sample)")
    table.add_column("stage")
    table.add_column("us/sample", justify="right")
    for name, value in breakdown.items():
        if name != "implied_samples_per_s":
            table.add_row(name, f"{value:.1f}")
    table.add_row("=> samples/s without HTTP", f"{breakdown['implied_samples_per_s']:,.0f}")
    console.print(table)

    table = Table(title="consumer -> SQLite store (Ingestor.step, max 2,000 records, one CPU)")
    for name in (
        "from",
        "samples",
        "seconds",
        "samples/s",
        "poll s",
        "decode s",
        "write_batch s",
        "commit s",
    ):
        table.add_column(name, justify="right" if name != "from" else "left")
    for stream, r in results["ingest"].items():
        b = r["breakdown_s"]
        table.add_row(
            stream,
            f"{r['stored']:,}",
            f"{r['seconds']:.2f}",
            f"{r['samples_per_s']:,.0f}",
            *(f"{b[k]:.2f}" for k in ("poll", "decode", "write_batch", "commit")),
        )
    console.print(table)

    table = Table(title=f"GET /queue (n=10, a new annotator per call, {sizes['queue_calls']} calls), ms")
    for name in ("pool", "what", "p50", "p90", "p99", "max"):
        table.add_column(name, justify="right" if name not in ("what",) else "left")
    for n in sizes["pools"]:
        inproc, http = results["queue_inprocess"][str(n)], results["queue_http"][str(n)]
        rows = [
            ("HTTP GET /queue", http["get_queue"]),
            ("HTTP GET /health (floor)", http["get_health_floor"]),
            ("HTTP GET /stats", http["get_stats"]),
            ("engine.queue in-process", inproc["engine_queue"]),
            ("  Pool.take", inproc["pool_take"]),
            ("new version: re-score the pool + rank", inproc["rescore_and_rank"]),
            ("  the snapshot (ranks the pool)", inproc["rank"]),
        ]
        for what, p in rows:
            table.add_row(
                f"{n:,}",
                what,
                f"{p['p50_ms']:.2f}",
                f"{p['p90_ms']:.2f}",
                f"{p['p99_ms']:.2f}",
                f"{p['max_ms']:.2f}",
            )
        table.add_section()
    console.print(table)

    table = Table(
        title="label -> updated queue (embedded log, sgd online updates; pool and store filled "
        "through /send), and GET /stats on that server, ms"
    )
    for name in ("pool", "step", "p50", "p90", "p99", "max"):
        table.add_column(name, justify="right" if name != "step" else "left")
    steps = (
        ("POST /labels acknowledged", "ack"),
        ("new model version (/health)", "to_model_version"),
        ("queue served from new scores", "to_updated_queue"),
        ("HTTP GET /stats", "get_stats"),
        ("  before: Store.counts() + conflicts()", "store_counts_and_conflicts"),
    )
    for n, label in results["label"].items():
        for what, key in steps:
            if p := label[key]:
                table.add_row(
                    f"{int(n):,}",
                    what,
                    f"{p['p50_ms']:.1f}",
                    f"{p['p90_ms']:.1f}",
                    f"{p['p99_ms']:.1f}",
                    f"{p['max_ms']:.1f}",
                )
        table.add_section()
    console.print(table)
    for n, label in results["label"].items():
        console.print(
            f"pool {int(n):,}: versions {label['version_kinds']}; timed out: {label['timed_out']}; "
            f"store {label['store']}",
            highlight=False,
        )

    busy = results["health_busy"]
    table = Table(title="GET /health while another connection sends the largest batch a route takes, ms")
    for name in ("while", "body MB", "answers", "p50", "p90", "p99", "max"):
        table.add_column(name, justify="right" if name not in ("while", "answers") else "left")
    p = busy["idle"]
    table.add_row(
        "nothing (the floor)", "", "", *(f"{p[k]:.1f}" for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms"))
    )
    for path in largest_bodies():
        p = busy[path]
        table.add_row(
            f"POST {path}",
            f"{p['body_mb']}",
            ",".join(map(str, sorted(set(p["answers"])))),
            *(f"{p[k]:.1f}" for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms")),
        )
    console.print(table)

    checks = check_targets(results)
    table = Table(title="targets (one core)")
    for name in ("target", "measured", "verdict"):
        table.add_column(name)
    for c in checks:
        unit = "samples/s" if c["key"].startswith(("send", "consumer")) else "ms"
        measured = "n/a" if c["value"] is None else f"{c['value']:,.1f} {unit}"
        verdict = {True: "[bold green]PASS[/]", False: "[bold red]FAIL[/]", None: "[yellow]SKIPPED[/]"}[
            c["passed"]
        ]
        table.add_row(c["target"], measured, verdict)
    console.print(table)
    if results["queue_inprocess"].get(str(max(sizes["pools"])), {}).get("profile"):
        console.print(results["queue_inprocess"][str(max(sizes["pools"]))]["profile"], highlight=False)

    report = {
        "benchmark": "service",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.perf_counter() - started, 1),
        "quick": quick,
        "config": {
            **sizes,
            "batch": BATCH,
            "n_features": N_FEATURES,
            "data": "digits rows + N(0,1) noise, rounded to 0..16 (integers in /send bodies)",
            "send": "uvicorn, 1 worker, subprocess pinned to server_cpu, consumer off; httpx.Client "
            "keep-alive pinned to client_cpu; Kafka broker unpinned",
            "raw_producer": "confluent-kafka Producer with alstream's producer_config (acks=all, "
            "idempotence, lz4, linger 5 ms), pinned to server_cpu, same encoded messages",
            "ingest": "Ingestor.step() loop in a process pinned to server_cpu, fresh SQLite (WAL)",
            "queue": "pool filled in-process (sgd trained on 300 digits, scores of every row, ranked); "
            "n=10, a new annotator per call; HTTP client pinned to client_cpu",
            "label": "digits demo + extra samples via /send (pool and store of label_pools), embedded log, "
            f"sgd, online updates, retrain_after_labels=20, full_retrain_every=5; polling /health and "
            f"GET /queue every {LABEL_POLL_S * 1e3:.0f} ms; GET /stats 100 times before labeling, "
            "Store.counts() + conflicts() 20 times on the same store from the client",
        },
        "alstream": source_info(),
        "machine": machine_info({"start": load_start, "end": os.getloadavg()}),
        "notes": notes,
        "results": results,
        "targets": checks,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.with_name(args.out.name + ".tmp")
    partial.write_text(json.dumps(report, indent=2, default=str) + "\n")
    partial.replace(args.out)
    console.print(f"wrote {args.out} in {report['duration_s']:.0f} s")


if __name__ == "__main__":
    main()
