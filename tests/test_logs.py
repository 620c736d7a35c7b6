"""alstream's own log lines: one handler, one format, on every command; libraries keep theirs."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from alstream.logs import configure_logging


def line(level: str, name: str, message: str) -> str:
    """A pattern of one line in alstream's format."""
    return rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d,\d{{3}} {level} {re.escape(name)}: {message}\n"


def test_one_handler_for_alstream_and_none_for_the_libraries(capsys):
    root_handlers = list(logging.getLogger().handlers)
    handler = configure_logging("debug")
    assert configure_logging(logging.WARNING) is handler  # called again: the same one handler
    logger = logging.getLogger("alstream")
    assert logger.handlers.count(handler) == 1 and logger.level == logging.WARNING and not logger.propagate
    assert logging.getLogger().handlers == root_handlers  # the root logger, the libraries': untouched
    logging.getLogger("alstream.service.engine").warning("version %d serves", 3)
    logging.getLogger("alstream.service.engine").info("not at WARNING")
    said = capsys.readouterr().err  # the stderr of the moment: capsys swapped it after the handler was made
    assert re.fullmatch(line("WARNING", "alstream.service.engine", "version 3 serves"), said)


def test_alstream_consume_logs_through_the_handler(tmp_path: Path):
    env = {
        **os.environ,
        "ALSTREAM_DATA_DIR": str(tmp_path / "data"),
        "ALSTREAM_LOG_LEVEL": "INFO",
        "ALSTREAM_DATABASE_URL": f"sqlite:///{tmp_path}/alstream.db",
    }
    consume = subprocess.Popen(
        [sys.executable, "-m", "alstream", "consume"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = consume.stderr.readline()  # blocks until the first line (or the end: a crash)
        assert re.fullmatch(line("INFO", "alstream.cli", "consuming .*"), first), first
        time.sleep(0.3)
        consume.send_signal(signal.SIGTERM)
        rest = consume.communicate(timeout=60)[1]
    finally:
        consume.kill()
    assert consume.returncode == 0, rest
    assert re.search(line("INFO", "alstream.cli", "stopped: 0 samples.*"), rest), rest
