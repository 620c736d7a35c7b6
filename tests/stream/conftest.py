"""Fixtures for the stream suite: one Kafka broker per session, and each Stream implementation."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from alstream.stream import Consumer, Record, Stream
from alstream.stream.kafka import KafkaStream
from alstream.stream.log import EmbeddedLog

REPO = Path(__file__).resolve().parents[2]
KAFKA_SH = REPO / "scripts" / "kafka.sh"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _missing_kafka_prerequisite() -> str | None:
    if shutil.which("java") is None:
        return "java is not installed: the Kafka broker cannot run"
    has_jars = any((REPO / ".kafka" / "lib").glob("kafka_2.13-*.jar"))
    if not has_jars and shutil.which("mvn") is None:
        return "mvn is not installed and .kafka/lib has no Kafka jars"
    return None


def _kafka_sh(command: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(KAFKA_SH), command], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real single-node broker on free ports in a temporary home; jars come from the repo's cache.

    Skipped when Java is missing, except under CI=true, where that is a failure."""
    reason = _missing_kafka_prerequisite()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true needs the Kafka tests to run, but {reason}")
        pytest.skip(reason)
    env = {
        **os.environ,
        "KAFKA_HOME_DIR": str(tmp_path_factory.mktemp("kafka-home")),
        "KAFKA_LIB": str(REPO / ".kafka" / "lib"),
        "KAFKA_PORT": str(_free_port()),
        "KAFKA_CONTROLLER_PORT": str(_free_port()),
    }
    up = _kafka_sh("up", env, timeout=600)
    if up.returncode != 0:
        _kafka_sh("down", env, timeout=120)
        pytest.fail(f"scripts/kafka.sh up failed:\n{up.stdout}\n{up.stderr}")
    try:
        yield up.stdout.strip().splitlines()[-1]
    finally:
        _kafka_sh("down", env, timeout=120)


@pytest.fixture(params=["embedded", "kafka"])
def stream(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stream]:
    """Each implementation of the Stream interface."""
    if request.param == "embedded":
        impl: Stream = EmbeddedLog(tmp_path / "log")
    else:
        impl = KafkaStream(request.getfixturevalue("kafka_bootstrap"))
    try:
        yield impl
    finally:
        impl.close()


@pytest.fixture
def topic() -> str:
    """A topic no other test uses (the Kafka broker lives for the whole session)."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def group() -> str:
    return f"group-{uuid.uuid4().hex[:12]}"


Drain = Callable[[Consumer, int], list[Record]]


@pytest.fixture
def drain() -> Drain:
    """Poll until `count` records came (or 30 s passed), then make sure no more arrive."""

    def _drain(consumer: Consumer, count: int) -> list[Record]:
        records: list[Record] = []
        for _ in range(60):
            if len(records) >= count:
                break
            records += consumer.poll(max_records=count - len(records), timeout=0.5)
        records += consumer.poll(timeout=0.2)
        return records

    return _drain
