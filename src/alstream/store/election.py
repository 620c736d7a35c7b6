"""Electing the one process that may do something (train model versions) among all those sharing a store.

PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) taken on a connection of its
own, held as long as the process lives. When the process dies (SIGKILL too), its connection
closes, the server lets the lock go, and the next candidate to ask takes it. A host that vanishes
without closing its socket holds the lock until the server notices (its ``tcp_keepalives_*``).

SQLite (one machine): an exclusive ``flock`` on a file beside the database, which dies with the
process the same way. An in-memory database has one process: it always leads.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from sqlalchemy import Connection, Engine, func, select, text

from alstream.file_lock import FileLock

TRAINER_LOCK = 0x616C7472  # the advisory lock of the active trainer ("altr")


class Election:
    """Candidacy for one advisory lock: :meth:`try_lead` takes it if it is free; it is kept until
    :meth:`close` or the process ends."""

    def __init__(self, engine: Engine, key: int = TRAINER_LOCK, name: str = "trainer") -> None:
        self.engine, self.key, self.name = engine, key, name
        self.leading = False
        self._conn: Connection | None = None
        self._file: FileLock | None = None

    def try_lead(self) -> bool:
        """Take the lock if no one holds it; True once this process leads (it stays leading)."""
        if self.leading:
            return True
        if self.engine.dialect.name == "postgresql":
            self.leading = self._try_postgresql()
        else:
            self.leading = self._try_file()
        return self.leading

    def alive(self) -> bool:
        """Whether this process still leads: for PostgreSQL, its lock's connection still answers (a
        server restart or a cut connection ends the lock, and so the lead)."""
        if not self.leading:
            return False
        if self._conn is None:
            return True  # a file lock is never taken away
        try:
            self._conn.execute(text("SELECT 1"))
            return True
        except Exception:
            self.close()
            return False

    def _try_postgresql(self) -> bool:
        if self._conn is None:
            self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            taken = bool(self._conn.execute(select(func.pg_try_advisory_lock(self.key))).scalar_one())
        except Exception:
            self.close()  # a new connection next time
            raise
        return taken

    def _try_file(self) -> bool:
        path = lock_file(self.engine, self.name)
        if path is None:
            return True  # an in-memory database: this process is the only one
        if self._file is None:
            self._file = FileLock.open(path)
        return self._file.take()

    def close(self) -> None:
        """Let go of the lock: unlocked at once, and its PostgreSQL connection closed (not returned to
        the pool, which would keep it locked)."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                if self.leading:
                    self._conn.execute(select(func.pg_advisory_unlock(self.key)))
            with contextlib.suppress(Exception):
                self._conn.invalidate()
            self._conn = None
        self.leading = False
        if self._file is not None:
            self._file.close()
            self._file = None


def lock_file(engine: Engine, name: str) -> Path | None:
    """The lock file of ``name`` beside a SQLite database file (None: in memory)."""
    database = engine.url.database or ""
    if database in ("", ":memory:") or "mode=memory" in database:
        return None
    return Path(database).expanduser().with_name(f"{Path(database).name}.{name}.lock")
