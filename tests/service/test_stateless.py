"""``alstream serve --stateless``: two API replicas (real processes) on one PostgreSQL lease from the
shards' candidates: 20 annotators asking both replicas at once never get one item twice, and between
them get every candidate, best first, shown with the newest model version; a label goes to Kafka."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_digits

from alstream.store import SampleRow, Store

from .conftest import AUTH
from .processes import Service, record_version

N = 300
ANNOTATORS = 20


@pytest.fixture
def replicas(tmp_path: Path, postgres_url: str, kafka_bootstrap: str) -> Iterator[list[Service]]:
    settings = {
        "database_url": postgres_url,
        "kafka_bootstrap": kafka_bootstrap,
        "data_dir": str(tmp_path / "shared"),  # the model files the replicas read
        "demo": "false",
        "queue_rate_per_s": "10000",  # 20 annotators share the admin token
        "queue_burst": "10000",
    }
    made = []
    for n in range(2):
        (tmp_path / f"replica-{n}").mkdir()
        made.append(Service(tmp_path / f"replica-{n}", args=("--stateless",), **settings))
    try:
        yield made
    finally:
        for replica in made:
            if replica.process is not None and replica.process.poll() is None:
                with contextlib.suppress(Exception):
                    replica.kill()


@pytest.mark.timeout(600)
def test_two_replicas_lease_every_candidate_once_to_twenty_annotators(
    replicas: list[Service], postgres_url: str, tmp_path: Path
) -> None:
    store = Store(postgres_url)
    store.create()
    digits = load_digits()
    X, y = digits.data[:N].astype(np.float32), digits.target[:N].astype(str)
    ids = [f"d-{i}" for i in range(N)]
    store.write_batch(
        [SampleRow(i, row, shard=n % 2) for n, (i, row) in enumerate(zip(ids, X, strict=True))], []
    )
    record_version(store, tmp_path / "shared" / "models", X, y, number=1)  # as the trainer would
    scores = np.linspace(1.0, 0.0, N)  # d-0 best
    for shard in range(2):  # as the workers would
        store.candidates.publish(shard, 1, ids[shard::2], scores[shard::2].tolist())
    for replica in replicas:
        replica.start()  # ready once it serves model version 1

    def annotate(n: int) -> list[dict]:
        got: list[dict] = []
        with httpx.Client(headers=AUTH, timeout=60) as client:
            for turn in range(N):
                url = replicas[(n + turn) % 2].url  # both replicas, in turns
                items = client.get(
                    f"{url}/queue", params={"n": 5, "annotator": f"ann-{n}"}
                ).raise_for_status()
                if not items.json():
                    return got
                got += items.json()
        raise AssertionError("the queue never ran dry")

    with ThreadPoolExecutor(ANNOTATORS) as pool:
        results = list(pool.map(annotate, range(ANNOTATORS)))
    served = [item for items in results for item in items]
    served_ids = [item["id"] for item in served]
    assert len(served_ids) == len(set(served_ids)), "an item leased twice"
    assert set(served_ids) == set(ids)
    for items in results:  # each lease takes the best free: hers only get worse
        assert all(a["score"] >= b["score"] for a, b in pairwise(items))
    assert {item["model_version"] for item in served} == {1}
    assert all(item["predicted"] in set(y) and item["features"] is not None for item in served)

    given_back = next(items for items in results if items)[0]  # an annotator's first item
    owner = f"ann-{next(n for n, items in enumerate(results) if items)}"
    first, second = replicas
    body = {"annotator": owner, "ids": [given_back["id"]]}
    released = httpx.post(f"{first.url}/queue/release", json=body, headers=AUTH, timeout=60)
    assert released.raise_for_status().json() == {"released": 1}
    again = httpx.get(f"{second.url}/queue", params={"n": 5, "annotator": "late"}, headers=AUTH, timeout=60)
    assert [item["id"] for item in again.raise_for_status().json()] == [given_back["id"]]
    stats = httpx.get(f"{second.url}/stats", headers=AUTH, timeout=60).raise_for_status().json()
    assert stats["stateless"] and stats["model_version"] == 1 and stats["queue"]["candidates"] == N
    label = {"id": "d-0", "label": y[0], "annotator": "ann-0"}
    assert httpx.post(f"{first.url}/labels", json=label, headers=AUTH, timeout=60).status_code == 202
    store.close()
