"""Validation alone, before and after: the same bodies through the ``messages`` package of this tree
and of another revision (``--against``, default ``337a1d1``: the last with the hand-written
validator, the peer the contract must not be slower than), in alternating child processes.

Four stages, each for 10^4 digits-shaped samples (64 features) or labels, microseconds per item:

* ``/send`` body -> samples: the route's work from the raw bytes (a tree whose ``parse_messages``
  takes bytes is given them; an older one gets ``orjson.loads(body)``, as its route did);
* ``/labels`` body -> labels, the same way;
* topic, packed: 10^4 messages with features as base64 float32 -> ``decode_samples``;
* topic, numbers: the same with features as JSON numbers.

Each child runs every stage ``--rounds`` times and keeps the best CPU time of its thread (on a
loaded machine wall time mostly measures the others' work); the children alternate ``--repeats``
times and the best of all is reported, with the load average before and after. Results: a rich
table and ``bench/results/validation.json``.

    .venv/bin/python bench/validation_bench.py
    .venv/bin/python bench/validation_bench.py --against 337a1d1 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
N, FEATURES = 10_000, 64
HAND_WRITTEN = "337a1d1"  # messages/validation.py's last revision


def child(rounds: int) -> dict[str, float]:
    """Every stage in this process (its ``sys.path`` names the tree), µs per item, best of ``rounds``."""
    import numpy as np
    import orjson

    from alstream.messages import (
        InvalidBatch,
        ProjectSchema,
        Sample,
        decode_samples,
        encode_sample,
        parse_labels,
        parse_messages,
    )

    schema = ProjectSchema.digits()
    rows = (np.random.default_rng(0).random((N, FEATURES)) * 16).astype(np.float32)
    send = orjson.dumps([{"id": f"s-{i}", "features": row.tolist()} for i, row in enumerate(rows)])
    labels = orjson.dumps([{"id": f"s-{i}", "label": str(i % 10), "annotator": "ana"} for i in range(N)])
    packed = [encode_sample(Sample(id=f"s-{i}", features=row)) for i, row in enumerate(rows)]
    numbers = [orjson.dumps({"id": f"s-{i}", "features": row.tolist()}) for i, row in enumerate(rows)]

    def from_body(parse: Callable[[Any, ProjectSchema], Any]) -> Callable[[bytes], Any]:
        try:
            parse(send if parse is parse_messages else labels, schema)
        except InvalidBatch:  # an older tree: its route decoded the body first
            return lambda body: parse(orjson.loads(body), schema)
        return lambda body: parse(body, schema)

    send_parse, labels_parse = from_body(parse_messages), from_body(parse_labels)
    assert len(send_parse(send)[0]) == N and len(labels_parse(labels)) == N
    stages: dict[str, Callable[[], Any]] = {
        "/send body -> samples": lambda: send_parse(send),
        "/labels body -> labels": lambda: labels_parse(labels),
        "topic packed -> samples": lambda: decode_samples(packed, schema),
        "topic numbers -> samples": lambda: decode_samples(numbers, schema),
    }
    best = {}
    for name, work in stages.items():
        times = []
        for _ in range(rounds):
            start = time.thread_time()  # CPU time: on a loaded machine, what the work itself costs
            work()
            times.append(time.thread_time() - start)
        best[name] = min(times) / N * 1e6
    return best


def extract(revision: str, into: Path) -> Path:
    """The ``src`` folder of ``revision`` (``git archive``), under ``into``."""
    archive = subprocess.run(["git", "archive", revision, "src"], cwd=ROOT, capture_output=True, check=True)
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def run_child(src: Path, rounds: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [sys.executable, __file__, "--child", "--rounds", str(rounds)]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", default=HAND_WRITTEN, help="the revision to compare with")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each tree")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each stage in one child")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS / "validation.json")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.rounds)))
        return

    from rich.console import Console
    from rich.table import Table

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        trees = {args.against: extract(args.against, Path(tmp)), "this tree": ROOT / "src"}
        best: dict[str, dict[str, float]] = {}
        for _ in range(args.repeats):
            for name, src in trees.items():
                for stage, us in run_child(src, args.rounds).items():
                    best.setdefault(name, {})[stage] = min(us, best.get(name, {}).get(stage, float("inf")))
    load_after = os.getloadavg()
    before, after = best[args.against], best["this tree"]
    table = Table(title=f"Validation, CPU µs per item (best of {args.repeats} x {args.rounds}; N = {N:,})")
    for column in ("stage", args.against, "this tree", "after / before"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for stage in before:
        table.add_row(
            stage, f"{before[stage]:.2f}", f"{after[stage]:.2f}", f"{after[stage] / before[stage]:.2f}x"
        )
    Console().print(table)
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "against": args.against,
        "items": N,
        "features": FEATURES,
        "us_per_item": {"before": before, "after": after},
        "ratio": {stage: after[stage] / before[stage] for stage in before},
        "load_average": {"before": load_before, "after": load_after},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
