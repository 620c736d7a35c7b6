"""alstream's log lines: one handler and one format for its own loggers (each module's
``logging.getLogger(__name__)``, under ``alstream``); the libraries' loggers keep their own.
Every ``alstream`` command sets it up (:mod:`alstream.cli`)."""

from __future__ import annotations

import logging
import sys

ROOT = "alstream"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Stderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a line is logged (a progress bar or a test runner
    may swap it), as :data:`logging.lastResort` does."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self):
        return sys.stderr


def configure_logging(level: int | str = logging.INFO) -> logging.Handler:
    """alstream's lines at ``level`` and above to stderr in :data:`FORMAT`, each once: they do not
    go on to the root logger, where a library (Prefect) may have put a handler of its own. Called
    again, it keeps its one handler and sets the level. Returns the handler."""
    logger = logging.getLogger(ROOT)
    handler = next((h for h in logger.handlers if isinstance(h, _Stderr)), None)
    if handler is None:
        handler = _Stderr()
        handler.setFormatter(logging.Formatter(FORMAT))
        logger.addHandler(handler)
    logger.setLevel(level.upper() if isinstance(level, str) else level)
    logger.propagate = False
    return handler


__all__ = ["FORMAT", "configure_logging"]
