"""Importing with Python's cycle collector paused, then what was made frozen.

Importing makes many objects, all kept for good, that the collector would walk again and again
while the imports run (a sixth to a fifth of their CPU) and at every full collection after them:
with Prefect, MLflow and scikit-learn imported, one full collection walks about 400,000 objects
(0.2 s). Frozen, they are never walked again.
"""

from __future__ import annotations

import gc
import importlib
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cycle collector off for the block, then what was made meanwhile frozen and the collector as
    it was."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def import_frozen(*modules: str) -> None:
    """Import ``modules`` with the collector paused (``collector_paused``)."""
    with collector_paused():
        for name in modules:
            importlib.import_module(name)


def preload_script(*modules: str) -> str:
    """A Dask preload (the text of a script) that imports ``modules`` with the collector paused."""
    return f"from alstream.imports import import_frozen; import_frozen(*{list(modules)!r})"
