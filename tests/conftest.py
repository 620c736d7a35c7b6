import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(scope="session", autouse=True)
def one_blas_thread():
    """Small fits run faster on one BLAS thread than fighting over two cores."""
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="session")
def prefect_backend():
    """A real, temporary Prefect server and database for the tests that run flows."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def local_mlflow(tmp_path, monkeypatch):
    """MLflow tracking in a SQLite file under the test's own folder."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.chdir(tmp_path)
    return tmp_path


REPO = Path(__file__).resolve().parents[1]
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
