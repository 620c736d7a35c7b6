"""One schema migration at a time in a process.

Alembic keeps its migration context in module globals, so two migrations running at once in one
process break each other (``KeyError: 'config'``). There are two kinds: alstream's store brings its
schema up to date at start, and MLflow migrates a local tracking database (SQLite, PostgreSQL) on
first use. Both run under :data:`MIGRATING`.
"""

from __future__ import annotations

import threading

MIGRATING = threading.Lock()
