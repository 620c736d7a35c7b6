"""The Kafka broker stopped for 30 s under a /send load: requests in the outage get 503 within the
publish timeout (never a hang, never a 500); once the broker is back, every sample and label that got
a 202 is in the store, and nothing is in the stream or the store twice."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pytest
from confluent_kafka import Consumer
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from alstream.service.app import create_app
from alstream.store import Store
from alstream.store.tables import labels as labels_table

from ..conftest import KafkaBroker
from .conftest import AUTH, service_settings, wait_for

OUTAGE_S = 30.0
CLIENTS = 4
SAMPLES = 50  # per request, and labels for the first LABELS of them
LABELS = 5


@dataclass(frozen=True)
class Answer:
    client: int
    samples: list[str]
    labels: list[str]
    start: float
    end: float
    status: int
    detail: str


class Load:
    """Clients posting fresh batches of samples and labels to /send until stopped; every answer kept."""

    def __init__(self, http: TestClient) -> None:
        self.http = http
        self.answers: list[Answer] = []
        self.errors: list[BaseException] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(CLIENTS)]
        for thread in self.threads:
            thread.start()

    def _run(self, client: int) -> None:
        rng = np.random.default_rng(client)
        for batch in itertools.count():
            if self.stop.is_set():
                return
            ids = [f"c{client}-{batch}-{i}" for i in range(SAMPLES)]
            features = (rng.random((SAMPLES, 64)) * 16).round(2).tolist()
            body = [{"id": sid, "features": row} for sid, row in zip(ids, features, strict=True)]
            body += [
                {"kind": "label", "id": sid, "label": str(i), "annotator": f"client-{client}"}
                for i, sid in enumerate(ids[:LABELS])
            ]
            start = time.monotonic()
            try:
                response = self.http.post("/send", json=body)
            except BaseException as error:  # pragma: no cover - reported by the main thread
                self.errors.append(error)
                return
            status, end = response.status_code, time.monotonic()
            detail = "" if status == 202 else str(response.json().get("detail", ""))
            self.answers.append(Answer(client, ids, ids[:LABELS], start, end, status, detail))
            time.sleep(0.1)

    def accepted_since(self, moment: float) -> set[int]:
        """The clients with a request sent after ``moment`` and accepted."""
        return {a.client for a in self.answers if a.start > moment and a.status == 202}

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=120)
        assert not any(t.is_alive() for t in self.threads), "a request to /send never returned"
        assert not self.errors, self.errors


def topic_keys(bootstrap: str, topic: str, expected: int) -> Counter[str]:
    """How often each key is in ``topic``, read from the start by a fresh group."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"check-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    keys: Counter[str] = Counter()
    deadline, quiet = time.monotonic() + 120, 0
    try:
        while time.monotonic() < deadline and (sum(keys.values()) < expected or quiet < 3):
            messages = consumer.consume(10_000, timeout=1.0)
            quiet = 0 if messages else quiet + 1
            keys.update(m.key().decode() for m in messages if m.error() is None)
    finally:
        consumer.close()
    return keys


@pytest.mark.timeout(600)
def test_a_broker_outage_under_load_answers_503_and_loses_nothing_accepted(
    tmp_path, request: pytest.FixtureRequest, kafka_broker: KafkaBroker
):
    settings = service_settings(
        tmp_path,
        "embedded",
        request,
        kafka_bootstrap=kafka_broker.bootstrap,
        demo=False,
        publish_timeout_s=5.0,
        send_rate_per_s=10_000.0,
        send_burst=10_000,
    )
    with TestClient(create_app(settings, track=False), headers=AUTH) as http:
        load = Load(http)
        try:
            wait_for(lambda: len(load.accepted_since(0)) == CLIENTS, what="every client accepted")
            time.sleep(3.0)
            kafka_broker.stop()
            down = time.monotonic()
            time.sleep(OUTAGE_S)
            up = time.monotonic()
            kafka_broker.start()  # the same storage: the topics and the committed offsets are kept
            back = time.monotonic()
            wait_for(
                lambda: len(load.accepted_since(back)) == CLIENTS,
                timeout=120,
                what="every client accepted again",
            )
            time.sleep(3.0)
        finally:
            load.finish()

        answers = load.answers
        assert {a.status for a in answers} <= {202, 503}, Counter(a.status for a in answers)
        in_outage = [a for a in answers if down < a.start and a.end < up]
        assert len(in_outage) >= CLIENTS  # every client waited out the publish timeout at least once
        assert {a.status for a in in_outage} == {503}
        assert all("unavailable" in a.detail for a in answers if a.status == 503)

        accepted = [sid for a in answers if a.status == 202 for sid in a.samples]
        accepted_labels = [sid for a in answers if a.status == 202 for sid in a.labels]
        sent = {sid for a in answers for sid in a.samples}
        wait_for(
            lambda: http.get("/stats").json()["store"]["samples"] >= len(accepted),
            timeout=120,
            what="the accepted samples in the store",
        )

    with Store(settings.database_url) as store:
        assert [s["id"] for s in store.get_samples(accepted)] == accepted
        assert store.counts()["samples"] <= len(sent)  # stored: all accepted, and perhaps some refused
        with store.engine.connect() as conn:
            query = select(labels_table.c.sample_id, func.count()).group_by(labels_table.c.sample_id)
            label_events = dict(conn.execute(query).all())
    assert all(label_events.get(sid) == 1 for sid in accepted_labels)
    assert set(label_events.values()) == {1}  # no label stored twice

    in_stream = topic_keys(kafka_broker.bootstrap, settings.samples_topic, len(accepted))
    assert all(in_stream[sid] == 1 for sid in accepted)  # the producer's retries made no duplicates
    assert set(in_stream.values()) == {1}
    never_sent = {sid for a in in_outage for sid in a.samples}  # no broker from their start to their end
    assert not never_sent & set(in_stream), "a refused sample was delivered later, behind the client's back"
