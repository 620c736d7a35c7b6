"""Full retrains on a thread of their own, beside the engine's.

A full retrain refits the model on every label, and labels are kept forever: its time grows with
them (about 0.8 s at 16,000 labels, 2.3 s at 50,000 for the default model). On the engine's thread
it stalls the reading of arrivals, the labels and the queue's snapshot for that long, every
``retrain_after_labels`` labels. The fit itself is a pure function of copied labels, and most of
it runs without the GIL (scikit-learn's solvers, numpy): the engine's thread hands it over and goes
on; at a later step it takes the finished fit out, numbers it and publishes it, so the model
versions stay that thread's alone. One fit at a time; after one, the next full retrain waits at
least as long as the last took (they take half of a core at most: online updates go on meanwhile).

>>> fits = FullFits()
>>> fits.start(lambda: 42, "what the fit was handed")
>>> while (done := fits.done()) is None:
...     pass
>>> done[0](), done[1], fits.busy
(42, 'what the fit was handed', False)
>>> fits.close()
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

from alstream.service.background import Worker

T = TypeVar("T")


class FullFits(Generic[T]):
    """Runs one fit at a time on its own thread; only the engine's thread calls it."""

    def __init__(self, rest: float = 1.0, finished: Callable[[], None] = lambda: None) -> None:
        """``rest``: after a fit that took ``t`` seconds, :meth:`rested` says no for ``rest * t``;
        ``finished()`` is called (on the fits' thread) as each fit ends: wake the engine's."""
        self.rest, self.finished = rest, finished
        self._worker = Worker("alstream-fit")  # a daemon thread: a fit never holds up an exit
        self._running: tuple[Future[T], Any, float] | None = None
        self._rested_at = 0.0

    @property
    def busy(self) -> bool:
        """A fit was started and not taken out by :meth:`done` yet."""
        return self._running is not None

    def rested(self) -> bool:
        """Not busy, and the last fit's rest is over: the next may start."""
        return self._running is None and time.monotonic() >= self._rested_at

    def start(self, fit: Callable[[], T], handed: Any) -> None:
        """Run ``fit()`` on the fits' thread; ``handed`` (what the engine knew then) comes back with it."""
        assert self._running is None, "one full fit at a time"
        future: Future[T] = Future()
        self._running = (future, handed, time.monotonic())
        self._worker.submit(self._run, fit, future)

    def _run(self, fit: Callable[[], T], future: Future[T]) -> None:
        try:
            future.set_result(fit())
        except BaseException as error:  # the engine's thread sees it as it takes the fit out
            future.set_exception(error)
        self.finished()

    def done(self) -> tuple[Callable[[], T], Any] | None:
        """The fit started last, once finished (None before): a callable that returns its result or
        raises its error, and what was handed with it."""
        if self._running is None or not self._running[0].done():
            return None
        future, handed, started = self._running
        self._running = None
        now = time.monotonic()
        self._rested_at = now + self.rest * (now - started)
        return future.result, handed

    def close(self) -> None:
        """Stop: a fit still running finishes unseen (its labels are fitted again by the next)."""
        self._worker.close(timeout_s=0.0)
        self._running = None


__all__ = ["FullFits"]
