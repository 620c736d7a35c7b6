"""Where a core's time goes per sample on the ingest path, stage by stage, in one process.

The soak's samples (64 float features, rounded to 2 decimals, ``/send`` bodies of ``--batch``)
go through the service's own pieces in turn, one thread, no HTTP server: the body's JSON
and validation (``parse_messages`` on the body's bytes), the topic encoding (``encode_sample``), the
embedded log's append (framing and fsync), then the consumer's steps (``poll``, ``_decode``:
wire decoding and validation again, ``_write``: the store's transaction, ``commit``), and the
engine's read of what was stored (``samples_after``, as ``featurize.StoredFeatures.after``) and
the retention's scan (``first_not_due``). Each stage is timed in CPU time of this thread
(``thread_time``: fair on a shared machine) and in wall time (the fsyncs wait), and reported as
milliseconds per 10^4 samples; the load average is recorded. The garbage collector runs as in the
service (paused only in the consumer's decode): its passes land in whichever stage allocates, so a
stage that is not changed can move when another one allocates less. Not measured here: the HTTP server
(uvicorn, starlette), the pool and the model (the engine's own work), which the soak includes.

    PYTHONPATH=src .venv/bin/python bench/ingest_stages.py               # 200,000 samples
    PYTHONPATH=src .venv/bin/python bench/ingest_stages.py --samples 50000 --out /tmp/stages.json
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from common import RESULTS, write_report
from provenance import machine, source_info
from soak_bench import CLASSES, N_FEATURES, Bank

T = TypeVar("T")
PER = 10_000  # samples per reported figure


class Clock:
    """CPU and wall seconds per stage, added up over the run."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = defaultdict(float)
        self.wall: dict[str, float] = defaultdict(float)

    def time(self, stage: str, work: Callable[[], T]) -> T:
        cpu, wall = time.thread_time(), time.perf_counter()
        result = work()
        self.cpu[stage] += time.thread_time() - cpu
        self.wall[stage] += time.perf_counter() - wall
        return result

    def per(self, samples: int) -> dict[str, dict[str, float]]:
        scale = 1e3 * PER / samples
        return {s: {"cpu_ms": self.cpu[s] * scale, "wall_ms": self.wall[s] * scale} for s in self.cpu}


def run(samples: int, batch: int, home: Path) -> dict[str, dict[str, float]]:
    """Every sample through every stage; ms per 10^4 samples per stage."""
    from alstream.messages import ProjectSchema, collector, encode_sample, parse_messages
    from alstream.service.ingest import Ingestor, Topics
    from alstream.store import Store
    from alstream.stream.log import EmbeddedLog

    schema = ProjectSchema(classes=CLASSES, n_features=N_FEATURES)
    store = Store(f"sqlite:///{home}/alstream.db")
    store.create()
    stream, topics = EmbeddedLog(home / "log"), Topics()
    ingestor = Ingestor(stream, store, schema, topics, "stages")
    bank, clock = Bank(min(samples, 200_000)), Clock()
    last_seq, followed = 0, 0
    for start in range(0, samples, batch):
        body = bank.body(start, min(batch, samples - start))
        parsed, _ = clock.time(
            "http: body JSON + validate (parse_messages)", lambda b=body: parse_messages(b, schema)
        )
        messages = clock.time(
            "publish: encode_sample", lambda s=parsed: [(x.id.encode(), encode_sample(x)) for x in s]
        )
        clock.time("publish: log append + fsync", lambda m=messages: stream.publish(topics.samples, m))
        while True:
            records = clock.time("consume: poll", lambda: ingestor.consumer.poll(2000, 0))
            if not records:
                break
            with collector.paused():  # as Ingestor.step decodes
                entries, dead = clock.time(
                    "consume: decode + validate", lambda r=records: ingestor._decode(r)
                )
            assert not dead, dead[:1]
            clock.time("consume: store write_batch", lambda e=entries: ingestor._write(e))
            clock.time("consume: commit", lambda r=records: ingestor.consumer.commit(r))
        while followed < start + len(parsed):
            seqs, _, features = clock.time(
                "engine: samples_after", lambda s=last_seq: store.samples_after(s, 50_000)
            )
            last_seq, followed = int(seqs[-1]), followed + len(seqs)
            assert features.shape == (len(seqs), N_FEATURES)
    now = datetime.now(UTC)
    looked_at, scanned = 0, 0
    while looked_at < last_seq:  # retention's scan of what arrived, 20,000 seqs a query as its steps do
        upto = min(last_seq, looked_at + 20_000)
        later = clock.time(
            "retention: first_not_due", lambda s=looked_at, u=upto: store.first_not_due(s, u, now)
        )
        assert later is None  # every sample arrived before now
        looked_at, scanned = upto, scanned + upto - looked_at
    ingestor.close()
    stream.close()
    store.close()
    assert scanned == samples == followed
    return clock.per(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=5_000, help="samples per /send body (the soak's)")
    parser.add_argument("--out", type=Path, default=RESULTS / "ingest_stages.json")
    args = parser.parse_args()
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="alstream-stages-") as tmp:
        stages = run(args.samples, args.batch, Path(tmp))
    load_end = os.getloadavg()
    total_cpu = sum(s["cpu_ms"] for s in stages.values())
    print(f"ms per {PER:,} samples ({args.samples:,} samples, /send bodies of {args.batch:,}):")
    print(f"{'stage':36} {'CPU ms':>8} {'wall ms':>8} {'CPU share':>9}")
    for name, s in stages.items():
        print(f"{name:36} {s['cpu_ms']:8.1f} {s['wall_ms']:8.1f} {s['cpu_ms'] / total_cpu:9.1%}")
    print(f"{'total':36} {total_cpu:8.1f} {sum(s['wall_ms'] for s in stages.values()):8.1f}")
    print(f"CPU-bound ceiling of these stages on one core: {PER / total_cpu * 1e3:,.0f} samples/s")
    print(f"load average start {load_start}, end {load_end}")
    report: dict[str, Any] = {
        "benchmark": "ingest_stages",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": {"samples": args.samples, "batch": args.batch, "features": N_FEATURES, "per": PER},
        "alstream": source_info(),
        "machine": {**machine(), "load_average": {"start": load_start, "end": load_end}},
        "results": {
            "stages": stages,
            "total_cpu_ms": total_cpu,
            "ceiling_per_s": PER / total_cpu * 1e3,
            "numpy": np.__version__,
        },
    }
    write_report(args.out, report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
