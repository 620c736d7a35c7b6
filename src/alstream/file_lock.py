"""An exclusive flock on a small file: among the processes that use one embedded log, or one SQLite
database's trainer lock. A flock dies with its process (SIGKILL too)."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alstream.errors import StreamUnavailable

LOCK_STEP = 0.005


class FileLock:
    """An open lock file; `held` waits for the flock, `try_held` takes it only when it is free.

    A flock belongs to the open file, so threads sharing one FileLock need their own mutex."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    @classmethod
    def open(cls, path: Path) -> FileLock:
        return cls(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))

    @contextmanager
    def held(self, timeout: float) -> Iterator[None]:
        """Hold the lock, waiting up to `timeout` seconds for it (else StreamUnavailable)."""
        deadline = time.monotonic() + timeout
        while not self.take():
            if time.monotonic() >= deadline:
                raise StreamUnavailable("embedded log is locked by another writer")
            time.sleep(LOCK_STEP)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    @contextmanager
    def try_held(self) -> Iterator[bool]:
        """Hold the lock if it is free now; yields whether it is held."""
        taken = self.take()
        try:
            yield taken
        finally:
            if taken:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def take(self) -> bool:
        """Take the lock if it is free now (kept until :meth:`close`); whether it is held."""
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
