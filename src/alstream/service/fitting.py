"""Model versions made on a thread of their own, beside the engine's: trained, then scored on the pool.

Making a version is a pure function of copies (the labels, the current model) and of the pool's
features as they were handed, and most of it runs without the GIL (scikit-learn's solvers, numpy).
On the engine's thread it stalled the reading of arrivals, the labels and the queue's snapshot: a
full retrain's time grows with the labels, which are kept forever (about 0.8 s at 16,000 labels,
2.3 s at 50,000 for the default model), and the re-score of a pool of 10^6 took 0.06 s alone but
0.5 s and more beside the service's other threads (each of its thousands of numpy calls gives the
GIL up and waits to get it back). The engine's thread hands the job over and goes on; at a later
step it takes the finished one out, numbers the version, swaps its scores in (the places filled
meanwhile scored again) and publishes it, so the model versions stay that thread's alone. One job
at a time; after a full retrain, the next waits at least as long as it took (full retrains take
half of this thread at most; online updates go on meanwhile).

>>> fitting = Fitting()
>>> fitting.start(lambda: 42, "what the job was handed", rests=True)
>>> while (done := fitting.done()) is None:
...     pass
>>> done[0](), done[1], fitting.busy
(42, 'what the job was handed', False)
>>> fitting.close()
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

from alstream.service.background import Worker

T = TypeVar("T")


class Fitting(Generic[T]):
    """Runs one job at a time on its own thread; only the engine's thread calls it."""

    def __init__(self, rest: float = 1.0, finished: Callable[[], None] = lambda: None) -> None:
        """``rest``: after a job that rests and took ``t`` seconds, :meth:`rested` says no for
        ``rest * t``; ``finished()`` is called (on the fitting thread) as each job ends: wake the
        engine's."""
        self.rest, self.finished = rest, finished
        self._worker = Worker("alstream-fit")  # a daemon thread: a job never holds up an exit
        self._running: tuple[Future[T], Any, float, bool] | None = None
        self._rested_at = 0.0

    @property
    def busy(self) -> bool:
        """A job was started and not taken out by :meth:`done` yet."""
        return self._running is not None

    def rested(self) -> bool:
        """Not busy, and the last resting job's rest is over."""
        return self._running is None and time.monotonic() >= self._rested_at

    def start(self, job: Callable[[], T], handed: Any, rests: bool) -> None:
        """Run ``job()`` on the fitting thread; ``handed`` (what the engine knew then) comes back with
        it; ``rests``: the next resting job waits for its rest (:meth:`rested`)."""
        assert self._running is None, "one job at a time"
        future: Future[T] = Future()
        self._running = (future, handed, time.monotonic(), rests)
        self._worker.submit(self._run, job, future)

    def _run(self, job: Callable[[], T], future: Future[T]) -> None:
        try:
            future.set_result(job())
        except BaseException as error:  # the engine's thread sees it as it takes the job out
            future.set_exception(error)
        self.finished()

    def done(self) -> tuple[Callable[[], T], Any] | None:
        """The job started last, once finished (None before): a callable that returns its result or
        raises its error, and what was handed with it."""
        if self._running is None or not self._running[0].done():
            return None
        future, handed, started, rests = self._running
        self._running = None
        if rests:
            now = time.monotonic()
            self._rested_at = now + self.rest * (now - started)
        return future.result, handed

    def close(self) -> None:
        """Stop: a job still running finishes unseen (its labels are fitted again by the next)."""
        self._worker.close(timeout_s=0.0)
        self._running = None


__all__ = ["Fitting"]
