"""Store fixtures: every test runs against SQLite (a temp file) and PostgreSQL (a throwaway server).

PostgreSQL: ``ALSTREAM_TEST_POSTGRES_URL`` (a server where the user may CREATE DATABASE) if set,
otherwise a private server started from the local binaries (``initdb``/``pg_ctl``, found on
PATH, in ``ALSTREAM_PG_BINDIR`` or under ``/usr/lib/postgresql/*/bin``). As root, the server runs
as the ``postgres`` user (or ``nobody``) through ``runuser``. Without binaries the PostgreSQL
cases skip, except when ``CI=true``, where they fail.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from alstream.store import Store

BACKENDS = ["sqlite", "postgresql"]


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A URL to the ``postgres`` database of a server this session may create databases on."""
    if url := os.environ.get("ALSTREAM_TEST_POSTGRES_URL"):
        yield url
        return
    bindir = _pg_bindir()
    if bindir is None:
        message = "PostgreSQL binaries (initdb, pg_ctl) not found: apt-get install postgresql"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    prefix, uid, gid = _as_server_user()
    root = Path(tempfile.mkdtemp(prefix="alstream-pg-"))
    if uid is not None:
        os.chown(root, uid, gid)
    data, log, port = root / "data", root / "server.log", _free_port()

    def run(*args: str) -> None:
        done = subprocess.run([*prefix, *args], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = log.read_text()[-3000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}\n{tail}")

    run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
        "--locale=C", "--no-sync")  # fmt: skip
    options = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", options, "start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def make_store(request, tmp_path) -> Iterator[Callable[[], Store]]:
    """A factory of fresh, empty, created stores of the test's backend; all closed and dropped after."""
    backend = request.param
    stores: list[Store] = []
    databases: list[str] = []
    admin = request.getfixturevalue("postgres_admin_url") if backend == "postgresql" else None

    def make(**options) -> Store:
        if backend == "sqlite":
            url = f"sqlite:///{tmp_path}/db{len(stores)}/store.db"
        else:
            name = f"alstream_{uuid.uuid4().hex[:12]}"
            with psycopg.connect(_libpq(admin), autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {name}")
            databases.append(name)
            url = make_url(admin).set(database=name).render_as_string(hide_password=False)
        store = Store(url, **options)
        store.create()
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()
    if databases:
        with psycopg.connect(_libpq(admin), autocommit=True) as conn:
            for name in databases:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def store(make_store) -> Store:
    return make_store()


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses a store runs once per backend."""
    if "make_store" in metafunc.fixturenames:
        metafunc.parametrize("make_store", BACKENDS, indirect=True)
