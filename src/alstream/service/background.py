"""A background worker: jobs run in order on one daemon thread, off the thread that submits them.

A failing job is logged and the next one runs. Closing may wait a bounded time, so a slow
optional side effect (a tracking server that does not answer) never holds up a shutdown.

Not a ``ThreadPoolExecutor(max_workers=1)``: the interpreter joins an executor's threads at exit,
even after ``shutdown(wait=False, cancel_futures=True)``, so the job running then holds the process
up (measured, Python 3.11: a process whose executor ran an 8 s job exited after 8.1 s). Here that
job is an MLflow call: against a tracking server that refuses connections one call took 246 s,
MLflow's client retrying (mlflow 3.17, ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` = 7); one that never
answers waits out a 120 s timeout per try. Bounding the call instead (fewer retries) would lose the
runs of a server away for a minute, which today fill in once it is back.

>>> done = []
>>> worker = Worker("example")
>>> worker.submit(done.append, 1)
>>> worker.submit(done.append, 2)
>>> worker.close(timeout_s=5.0), done
(0, [1, 2])
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class Worker:
    """Runs submitted calls one after the other on a daemon thread."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[..., Any], tuple, dict] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._jobs.put((fn, args, kwargs))

    def close(self, timeout_s: float | None) -> int:
        """Finish the jobs within ``timeout_s`` (None: however long); return how many were left undone."""
        self._jobs.put(None)
        self._thread.join(timeout_s)
        if not self._thread.is_alive():
            return 0
        return self._jobs.qsize()  # the one running, less the stop marker still queued: the same count

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, args, kwargs = job
            try:
                fn(*args, **kwargs)
            except Exception:
                log.exception("background job %s failed", getattr(fn, "__name__", fn))
