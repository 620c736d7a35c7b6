"""Engines for SQLite (WAL, busy timeout, real transactions) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool

# Execution option naming the SQLite BEGIN mode; writers use IMMEDIATE to take the write lock up front.
SQLITE_BEGIN = "alstream_sqlite_begin"
# PostgreSQL connections a process keeps open: one for each thread of the service's threadpool
# (anyio's default, 40: every request handler may hold one) and a few for its background threads.
# With SQLAlchemy's default (5, and 10 more opened and closed again for each checkout past them)
# a busy API replica opened a new connection, a new server backend, for most requests: that tripled
# PostgreSQL's CPU per /queue. The pool opens them only as they are needed.
POOL_SIZE = 48
POOL_OVERFLOW = 16  # past POOL_SIZE at once: opened, and closed when given back
WAL_LIMIT_BYTES = 64 * 2**20  # a SQLite WAL file past this is truncated to it when it restarts


def in_autocommit(conn: Connection) -> Connection:
    """``conn``, on PostgreSQL with each statement a transaction of its own (no BEGIN, no COMMIT or
    ROLLBACK: two round trips fewer, for statements each whole alone: a read of one query); SQLite's
    as it is (a writer's BEGIN IMMEDIATE is its lock)."""
    if conn.dialect.name == "postgresql":
        conn.execution_options(isolation_level="AUTOCOMMIT")
    return conn


def normalize_url(url: str | URL) -> URL:
    """``postgresql://`` / ``postgres://`` become ``postgresql+psycopg://``."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str | URL, *, busy_timeout_ms: int = 5000) -> Engine:
    """An engine for ``url``; for SQLite the database's folder is created."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, busy_timeout_ms)
    return create_engine(parsed, pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW)


def _sqlite_engine(url: URL, busy_timeout_ms: int) -> Engine:
    database = url.database or ""
    in_memory = database in ("", ":memory:") or "mode=memory" in database
    if in_memory:
        engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # Let SQLAlchemy emit BEGIN (below) instead of sqlite3's legacy implicit transactions.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        if not in_memory:
            cursor.execute("PRAGMA journal_mode = WAL")
            # A WAL file keeps the size of its busiest stretch; this truncates it back once it restarts.
            cursor.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine
