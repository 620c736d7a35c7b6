import glob
import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url
from threadpoolctl import threadpool_limits

SKIPS_FAIL = (
    "{n} test(s) skipped, reasons above: a skipped test fails the run (exit 1), since what it proves went "
    "unproved. Install what they name (bash scripts/system-packages.sh) and run them again."
)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A run that skipped any test fails: nothing is skipped silently (the reasons show with -ra)."""
    if exitstatus == pytest.ExitCode.OK and _skipped(session.config):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(wrapper=True, tryfirst=True)  # outermost: after the short summary with the reasons
def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> Iterator[None]:
    yield
    if skipped := _skipped(config):
        terminalreporter.write_line(SKIPS_FAIL.format(n=skipped), red=True, bold=True)


def _skipped(config: pytest.Config) -> int:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    return len(reporter.stats.get("skipped", [])) if reporter is not None else 0


@pytest.fixture(scope="session", autouse=True)
def one_blas_thread():
    """Small fits run faster on one BLAS thread than fighting over two cores."""
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(autouse=True)
def alstream_logging() -> Iterator[None]:
    """alstream's logger as it was before the test: a command run in-process sets it up
    (alstream.logs.configure_logging), and caplog sees only what reaches the root logger."""
    logger = logging.getLogger("alstream")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield
    logger.handlers[:], logger.propagate = handlers, propagate
    logger.setLevel(level)  # setLevel: the loggers' cached levels are cleared too


@pytest.fixture(scope="session")
def prefect_backend():
    """A real, temporary Prefect server and database for the tests that run flows."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


def start_prefect_server(home: Path, port: int | None = None):
    """A Prefect server with every service (its scheduler, triggers and actions), its home and
    database in ``home`` (started again on one, it finds what the one before left), on ``port``
    (None: a free one); its API at ``.url``."""
    from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL, PREFECT_HOME, temporary_settings

    from alstream.flows.prefect_server import start_server

    home.mkdir(exist_ok=True)
    updates = {
        PREFECT_HOME: str(home),
        PREFECT_API_DATABASE_CONNECTION_URL: f"sqlite+aiosqlite:///{home}/prefect.db",
    }
    with temporary_settings(updates=updates):
        return start_server(services=True, port=port)


@pytest.fixture
def prefect_server(tmp_path: Path):
    """A Prefect server with every service, on a database of its own (:func:`start_prefect_server`)."""
    server = start_prefect_server(tmp_path / "prefect")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def local_mlflow(tmp_path, monkeypatch):
    """MLflow tracking in a SQLite file under the test's own folder."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def wait_while_progressing(
    done: Callable[[], bool],
    progress: Callable[[], object],
    *,
    stall_s: float = 30.0,
    what: str = "the system",
    detail: Callable[[], str] = lambda: "",
    poll_s: float = 0.02,
) -> None:
    """Wait until ``done()``. Fail only when ``progress()`` (a count, a tuple of counts) has not
    changed for ``stall_s`` seconds: a system that stopped, never one that is slower than usual."""
    last, moved = progress(), time.monotonic()
    while not done():
        time.sleep(poll_s)
        now = progress()
        if now != last:
            last, moved = now, time.monotonic()
        elif time.monotonic() - moved > stall_s:
            raise AssertionError(f"{what} made no progress for {stall_s:g} s (stuck at {now}){detail()}")


REPO = Path(__file__).resolve().parents[1]
KAFKA_SH = REPO / "scripts" / "kafka.sh"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (for a server to start on, or to be refused)."""
    return _free_port()


def _missing_kafka_prerequisite() -> str | None:
    if shutil.which("java") is None:
        return "java is not installed: the Kafka broker cannot run (bash scripts/system-packages.sh)"
    has_jars = any((REPO / ".kafka" / "lib").glob("kafka_2.13-*.jar"))
    if not has_jars and shutil.which("mvn") is None:
        return "mvn is not installed and .kafka/lib has no Kafka jars (bash scripts/system-packages.sh)"
    return None


def _kafka_sh(command: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(KAFKA_SH), command], env=env, capture_output=True, text=True, timeout=timeout
    )


def _require_kafka() -> None:
    """Skips when Java is missing, except under CI=true, where that is a failure."""
    reason = _missing_kafka_prerequisite()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true needs the Kafka tests to run, but {reason}")
        pytest.skip(reason)


class KafkaBroker:
    """A real single-node broker (scripts/kafka.sh) in its own home on free ports; jars come from the
    repo's cache. ``stop`` and ``start`` it at will: its storage, and so its topics, stay."""

    def __init__(self, home: Path) -> None:
        self.env = {
            **os.environ,
            "KAFKA_HOME_DIR": str(home),
            "KAFKA_LIB": str(REPO / ".kafka" / "lib"),
            "KAFKA_PORT": str(_free_port()),
            "KAFKA_CONTROLLER_PORT": str(_free_port()),
        }
        self.bootstrap = f"127.0.0.1:{self.env['KAFKA_PORT']}"

    def start(self) -> str:
        up = _kafka_sh("up", self.env, timeout=600)
        if up.returncode != 0:
            _kafka_sh("down", self.env, timeout=120)
            pytest.fail(f"scripts/kafka.sh up failed:\n{up.stdout}\n{up.stderr}")
        return up.stdout.strip().splitlines()[-1]

    def stop(self) -> None:
        down = _kafka_sh("down", self.env, timeout=120)
        assert down.returncode == 0, f"scripts/kafka.sh down failed:\n{down.stdout}\n{down.stderr}"


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The session's broker (see :class:`KafkaBroker`)."""
    _require_kafka()
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka-home"))
    try:
        yield broker.start()
    finally:
        _kafka_sh("down", broker.env, timeout=120)


@pytest.fixture
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """A started broker of the test's own, to stop and start (never the shared one)."""
    _require_kafka()
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka-own"))
    broker.start()
    try:
        yield broker
    finally:
        _kafka_sh("down", broker.env, timeout=120)


# -- PostgreSQL -------------------------------------------------------------------------------------
# ``ALSTREAM_TEST_POSTGRES_URL`` (a server where the user may CREATE DATABASE) if set, otherwise a
# private server started from the local binaries (``initdb``/``pg_ctl``, found on PATH, in
# ``ALSTREAM_PG_BINDIR`` or under ``/usr/lib/postgresql/*/bin``). As root, the server runs as the
# ``postgres`` user (or ``nobody``) through ``runuser``. Without binaries the PostgreSQL tests skip,
# except when ``CI=true``, where they fail.


def _pg_bindir() -> Path | None:
    candidates = [os.environ.get("ALSTREAM_PG_BINDIR", "")]
    if found := shutil.which("pg_ctl"):
        candidates.append(str(Path(found).resolve().parent))
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True
    )
    candidates.append("/usr/local/pgsql/bin")
    for candidate in filter(None, candidates):
        if all((Path(candidate) / tool).is_file() for tool in ("initdb", "pg_ctl")):
            return Path(candidate)
    return None


def _as_server_user() -> tuple[list[str], int | None, int | None]:
    """Command prefix, uid and gid to run the server as (initdb refuses root)."""
    if os.geteuid() != 0:
        return [], None, None
    for name in ("postgres", "nobody"):
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            continue
        return ["runuser", "-u", name, "--"], user.pw_uid, user.pw_gid
    raise RuntimeError("running as root and found neither a 'postgres' nor a 'nobody' user")


class PostgresServer:
    """A private PostgreSQL server in a temporary folder on a free port; ``stop`` and ``start`` it
    at will (the data stays), ``remove`` it for good."""

    def __init__(self, bindir: Path) -> None:
        self._bindir = bindir
        self._prefix, uid, gid = _as_server_user()
        self.root = Path(tempfile.mkdtemp(prefix="alstream-pg-"))
        if uid is not None:
            os.chown(self.root, uid, gid)
        self._data, self._log, port = self.root / "data", self.root / "server.log", _free_port()
        self.admin_url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        self._options = (
            f"-p {port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "initdb",
            "-D",
            str(self._data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run(
            [*self._prefix, str(self._bindir / tool), *args], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            tail = self._log.read_text()[-3000:] if self._log.exists() else ""
            raise RuntimeError(f"{tool} {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}\n{tail}")

    def start(self) -> None:
        data, log = str(self._data), str(self._log)
        self._run("pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "-o", self._options, "start")

    def stop(self) -> None:
        """A fast shutdown: open sessions are cut off, new connections refused."""
        self._run("pg_ctl", "-D", str(self._data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        self._run("pg_ctl", "-D", str(self._data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def _postgres_bindir() -> Path:
    """The local PostgreSQL binaries; skips (fails under CI=true) without them."""
    bindir = _pg_bindir()
    if bindir is None:
        message = "PostgreSQL binaries (initdb, pg_ctl) not found (bash scripts/system-packages.sh)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return bindir


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A URL to the ``postgres`` database of a server this session may create databases on."""
    if url := os.environ.get("ALSTREAM_TEST_POSTGRES_URL"):
        yield url
        return
    server = PostgresServer(_postgres_bindir())
    try:
        yield server.admin_url
    finally:
        server.remove()


@pytest.fixture
def postgres_server() -> Iterator[PostgresServer]:
    """A server of the test's own, to stop and start (never the shared one)."""
    server = PostgresServer(_postgres_bindir())
    try:
        yield server
    finally:
        server.remove()


def libpq_url(url: str) -> str:
    """A SQLAlchemy-style URL as libpq (psycopg.connect) takes it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def create_database(admin_url: str) -> str:
    """A fresh, empty database on the server of ``admin_url``; returns its URL."""
    name = f"alstream_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh database on the session's PostgreSQL server, dropped after the test."""
    url = create_database(postgres_admin_url)
    try:
        yield url
    finally:
        with psycopg.connect(libpq_url(postgres_admin_url), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {make_url(url).database} WITH (FORCE)")
