"""Retries with backoff (tenacity) for transient database errors; anything else, or too many, raises."""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

import tenacity
from sqlalchemy import exc

log = logging.getLogger(__name__)
T = TypeVar("T")

_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "database is busy")


def is_transient(error: BaseException) -> bool:
    """True for errors worth retrying: SQLite lock/busy, PostgreSQL connection or serialization trouble."""
    if isinstance(error, exc.DBAPIError):
        if error.connection_invalidated:
            return True
        error = error.orig if error.orig is not None else error
    if isinstance(error, sqlite3.OperationalError):
        return any(text in str(error).lower() for text in _SQLITE_TRANSIENT)
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return False
    # psycopg maps connection failures (08), serialization/deadlock (40), resources (53),
    # operator intervention (57: admin shutdown, ...) and system errors (58) to OperationalError;
    # program limits (54: a value too large for an index) too, which no retry cures.
    return isinstance(error, psycopg.OperationalError) and not isinstance(
        error, psycopg.errors.ProgramLimitExceeded
    )


def is_bad_record(error: BaseException) -> bool:
    """True for errors a record's own values cause, which no retry cures: a value the database
    cannot hold (PostgreSQL: NUL in a text, a string too long, a number out of range), a broken
    CHECK constraint, a value the driver cannot send. A trouble of the database as a whole (full
    disk, missing table, lost connection) is not one."""
    if isinstance(error, exc.StatementError) and error.orig is not None:
        error = error.orig
    import psycopg

    record_errors = (
        sqlite3.IntegrityError,
        sqlite3.DataError,
        psycopg.DataError,
        psycopg.IntegrityError,
        psycopg.errors.ProgramLimitExceeded,
    )
    return isinstance(error, (*record_errors, ValueError, OverflowError, TypeError))


def retry(
    fn: Callable[[], T],
    *,
    attempts: int = 6,
    base_delay: float = 0.05,
    max_delay: float = 2.0,
    transient: Callable[[BaseException], bool] = is_transient,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn`` until it succeeds; retry transient errors up to ``attempts`` calls in all.

    The delay doubles from ``base_delay`` up to ``max_delay`` (with jitter). A non-transient
    error is raised at once; the last transient one is logged and re-raised after the last try.
    """
    if attempts < 1:
        raise ValueError("attempts must be >= 1")
    backoff = tenacity.wait_exponential(multiplier=base_delay, max=max_delay)

    def warn(state: tenacity.RetryCallState) -> None:
        assert state.outcome is not None  # tenacity calls it after a failed attempt
        error, delay = state.outcome.exception(), state.upcoming_sleep
        log.warning(
            "transient database error (attempt %d/%d), retrying in %.2fs: %s",
            state.attempt_number,
            attempts,
            delay,
            error,
        )

    def give_up(state: tenacity.RetryCallState) -> T:
        assert state.outcome is not None  # tenacity calls it after the last failed attempt
        log.error("giving up after %d attempts: %s", attempts, state.outcome.exception())
        return state.outcome.result()  # raises the last error

    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(transient),
        stop=tenacity.stop_after_attempt(attempts),
        wait=lambda state: backoff(state) * random.uniform(0.5, 1.0),
        sleep=sleep,
        before_sleep=warn,
        retry_error_callback=give_up,
    )(fn)
