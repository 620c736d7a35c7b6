"""What alstream writes is its owner's only: folders 0700, files 0600.

>>> sqlite_file("sqlite:///data/alstream.db"), sqlite_file("sqlite://"), sqlite_file("postgresql://h/db")
(PosixPath('data/alstream.db'), None, None)
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from sqlalchemy.engine import make_url

from alstream.settings import Settings


def create_private(settings: Settings) -> None:
    """Create ``data_dir`` (0700) and the SQLite database file (0600; its -wal and -shm files take its
    mode) for the owner only, where they do not exist yet. Existing ones keep their modes."""
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    database = sqlite_file(settings.database_url)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # an empty file is an empty database to SQLite
            os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def sqlite_file(database_url: str) -> Path | None:
    """The file of a SQLite URL (None: another database, in memory, or a ``file:`` URI)."""
    url = make_url(database_url)
    name = url.database or ""
    if url.get_backend_name() != "sqlite" or name in ("", ":memory:") or name.startswith("file:"):
        return None
    return Path(name).expanduser()
