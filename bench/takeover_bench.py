"""How long the trainer role is away when the active ``alstream trainer`` is killed (SIGKILL).

Two ``alstream trainer`` processes on one PostgreSQL (a private server, as tests/conftest.py starts
it; or ``--postgres-url``), the digits in the store; each round labels ``--labels`` more samples,
waits for the active trainer's version with them, SIGKILLs it, and measures until the standby says
it is active (``takeover_s``: the lock is free once the server sees the connection close, and the
standby asks every ``trainer_poll_s``), and until the next version with ``--labels`` more is in the
store (``next_version_s``, from the kill: the takeover, the new leader's start, one training). The
killed one is started again as the next standby. At the end the versions must be numbered 1..n, each
once. Results: a table and ``bench/results/takeover.json``.

    PYTHONPATH=src .venv/bin/python bench/takeover_bench.py
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from rich.table import Table
from sklearn.datasets import load_digits

from alstream.store import LabelRow, SampleRow, Store
from candidates_bench import database, postgres
from common import RESULTS, console, wait, write_report
from provenance import machine, source_info

ALSTREAM = Path(sys.executable).parent / "alstream"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--labels", type=int, default=20, help="new labels per round")
    parser.add_argument("--poll-s", type=float, default=2.0, help="trainer_poll_s (the default: 2)")
    parser.add_argument("--postgres-url", default=None)
    parser.add_argument("--out", type=Path, default=RESULTS / "takeover.json")
    args = parser.parse_args()
    out = console(110)
    digits = load_digits()
    X, y = digits.data.astype(np.float32), digits.target.astype(str)
    rounds = []
    with postgres(args.postgres_url) as (admin, _), tempfile.TemporaryDirectory() as home:
        url = database(admin)
        store = Store(url)
        store.create()
        store.write_batch([SampleRow(f"d-{i}", row, shard=0) for i, row in enumerate(X)], [])
        labeled = 0

        def label(n: int) -> None:
            nonlocal labeled
            store.write_batch(
                [],
                [LabelRow(f"d-{i}", y[i], "ann", False, "bench:0", i) for i in range(labeled, labeled + n)],
            )
            labeled += n

        def trained() -> bool:
            latest = store.latest_model(status=None)
            return latest is not None and latest["n_labels"] >= labeled

        env = {k: v for k, v in os.environ.items() if not k.startswith("ALSTREAM_")}
        settings = {
            "database_url": url,
            "data_dir": f"{home}/shared",
            "demo": "false",
            "retrain_after_labels": "10",
            "retrain_interval_s": "3600",
            "trainer_poll_s": str(args.poll_s),
        }
        env.update({f"ALSTREAM_{k.upper()}": v for k, v in settings.items()})
        logs: list[Path] = []

        def start() -> subprocess.Popen:
            logs.append(Path(home) / f"trainer-{len(logs)}.log")
            with logs[-1].open("wb") as log:
                return subprocess.Popen(
                    [str(ALSTREAM), "trainer", "--no-mlflow", "--orchestrator", "none"],
                    env=env,
                    cwd=home,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )

        def says(n: int, words: str) -> bool:
            return words in logs[n].read_text()

        label(40)
        procs = [start()]
        wait(lambda: says(0, "active trainer:") and trained(), 300, "the first trainer's version")
        procs.append(start())
        wait(lambda: says(1, "standby trainer"), 300, "the standby")
        active, standby = 0, 1
        for _ in range(args.rounds):
            label(args.labels)
            wait(trained, 300, "the active trainer's version")
            os.kill(procs[active].pid, signal.SIGKILL)
            killed = time.perf_counter()
            procs[active].wait()
            label(args.labels)
            wait(lambda s=standby: says(s, "active trainer:"), 300, "the takeover")
            takeover_s = time.perf_counter() - killed
            wait(trained, 300, "the new leader's version")
            rounds.append({"takeover_s": takeover_s, "next_version_s": time.perf_counter() - killed})
            procs.append(start())  # the next standby
            active, standby = standby, len(procs) - 1
            wait(lambda s=standby: says(s, "standby trainer"), 300, "the new standby")
        numbers = [int(row["version"]) for row in store.models()]
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        store.close()
    contiguous = numbers == list(range(1, len(numbers) + 1))
    table = Table(title=f"trainer takeover after SIGKILL (trainer_poll_s = {args.poll_s:g} s), PostgreSQL")
    for column in ("round", "takeover s", "next version s"):
        table.add_column(column, justify="right")
    for n, r in enumerate(rounds, 1):
        table.add_row(str(n), f"{r['takeover_s']:.2f}", f"{r['next_version_s']:.2f}")
    out.print(table)
    out.print(f"versions {numbers[0]}..{numbers[-1]}: {'contiguous, each once' if contiguous else numbers}")
    run = {"rounds": args.rounds, "labels_per_round": args.labels, "trainer_poll_s": args.poll_s}
    load = os.getloadavg()
    results = {"rounds": rounds, "versions": numbers, "contiguous": contiguous}
    write_report(
        args.out,
        {
            "benchmark": "takeover",
            "created": datetime.now(UTC).isoformat(),
            "settings": run,
            "alstream": source_info(),
            "machine": {**machine(), "load_average": load},
            "results": results,
        },
    )
    out.print(f"wrote {args.out}")
    if not contiguous:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
