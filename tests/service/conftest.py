"""A running service (HTTP API, consumer, engine) on the embedded log and on Kafka."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from alstream.service.app import create_app
from alstream.settings import Settings

from ..conftest import wait_while_progressing

ADMIN_TOKEN = "test-admin-token-0123456789"  # the settings' configured admin token in these tests
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def wait_for(condition: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def service_settings(tmp_path, stream_kind: str, request: pytest.FixtureRequest, **overrides) -> Settings:
    options = {
        "data_dir": tmp_path / "data",
        "database_url": f"sqlite:///{tmp_path}/alstream.db",
        "retrain_after_labels": 10,
        "retrain_interval_s": 3600.0,
        "random_share": 0.2,
        "admin_token": ADMIN_TOKEN,
    }
    if stream_kind == "kafka":
        suffix = uuid.uuid4().hex[:8]
        options.update(
            kafka_bootstrap=request.getfixturevalue("kafka_bootstrap"),
            samples_topic=f"samples-{suffix}",
            labels_topic=f"labels-{suffix}",
            dead_letter_topic=f"dead-{suffix}",
            consumer_group=f"group-{suffix}",
        )
    return Settings(**{**options, **overrides})


@contextmanager
def demo_service(settings: Settings) -> Iterator[TestClient]:
    """The demo service (digits, 3 labels per class) on ``settings``, ready: pool loaded, first model
    trained; the client carries the admin token."""
    with TestClient(create_app(settings, track=False), headers=AUTH) as client:
        wait_for(lambda: client.get("/stats").json()["store"]["samples"] == 1437, what="the demo pool")
        wait_for(lambda: client.get("/health").json()["model_version"] is not None, what="the first model")
        yield client


def label_until_stable(client: httpx.Client, truth: Callable[[str], str], batch: int = 10) -> int:
    """Label what ``/queue`` serves as ``ann`` (by ``truth``), ``batch`` at a time, each batch trained on
    before the next, until ``/stats`` says the model has stabilised; returns the labels given. Fails if
    the queue runs dry first, or when the labels stop reaching models."""

    def stats() -> dict:
        return client.get("/stats").json()

    def trained_on() -> int:
        return stats()["learning_curve"][-1]["n_labels"]

    given = 0
    while not stats()["stopping"]["stable"]:
        answer = client.get("/queue", params={"n": batch, "annotator": "ann"})
        assert answer.status_code == 200 and "Alstream-Queue-Paused" not in answer.headers
        items = answer.json()
        assert items, f"the pool ran out after {given} labels and the model never stabilised"
        wanted = stats()["labeled"] + len(items)
        labels = [{"id": item["id"], "label": truth(item["id"]), "annotator": "ann"} for item in items]
        assert client.post("/labels", json=labels).status_code == 202
        given += len(labels)
        wait_while_progressing(
            lambda wanted=wanted: trained_on() >= wanted,
            lambda: (stats()["labeled"], trained_on()),
            what="the labels reaching a model",
        )
    return given


@pytest.fixture(params=["embedded", "kafka"])
def client(request: pytest.FixtureRequest, tmp_path) -> Iterator[TestClient]:
    """The demo service on the embedded log and on Kafka (see :func:`demo_service`)."""
    with demo_service(service_settings(tmp_path, request.param, request)) as client:
        yield client


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that lets everyone read new files (Debian's default, 022), for this process and the
    processes it starts: the modes of what alstream writes are then alstream's own doing."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """Debian's Chromium, headless, driven by Playwright (no browser download)."""
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true needs the browser tests to run, but /usr/bin/chromium is missing")
        pytest.skip("/usr/bin/chromium is missing (bash scripts/system-packages.sh)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield browser
        browser.close()
