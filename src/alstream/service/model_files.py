"""Model versions as files, so a restarted service serves at once what it served before.

A file is complete before anyone learns its name: it is written to a temporary file in the same
folder, flushed to disk, then renamed into place; the engine records the name in the store only
after that. A process killed mid-write leaves a stray temporary file (deleted on the next save),
never a half-written version under a recorded name.

Files are pickles (joblib), and loading a pickle runs code: they are read only from this folder,
by names the store recorded, never from a path a request or message names.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import joblib

from alstream.service.trainer import ModelVersion
from alstream.stream.segment import fsync_dir

SUFFIX = ".joblib"


def dump_atomically(value: object, path: Path) -> None:
    """Pickle ``value`` to ``path`` (its folder made, 0700): a temporary file in the same folder (0600),
    flushed to disk, then renamed into place; a crash leaves the old file or the new, never half of one."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=path.parent)  # 0600: the owner's only
    try:
        with os.fdopen(fd, "wb") as f:
            joblib.dump(value, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)  # the rename itself survives a power cut


class ModelFiles:
    """The folder of model version files; keeps the newest ``keep`` of them."""

    def __init__(self, folder: Path, keep: int = 20) -> None:
        self.folder = Path(folder).resolve()
        self.keep = keep

    def save(self, version: ModelVersion) -> str:
        """Write ``version`` atomically; returns its name, relative to the folder."""
        name = f"v{version.version:08d}-{version.kind}{SUFFIX}"
        dump_atomically(version, self.folder / name)
        self.prune()
        return name

    def load(self, name: str) -> ModelVersion:
        """The version saved as ``name``; raises if it is missing, unreadable or not in the folder."""
        version = joblib.load(self.path(name))
        if not isinstance(version, ModelVersion):
            raise ValueError(f"{name} holds a {type(version).__name__}, not a model version")
        return version

    def path(self, name: str) -> Path:
        """Where ``name`` is: a version file right in the folder (links resolved), else ValueError."""
        path = (self.folder / name).resolve()
        if path.parent != self.folder or not path.name.endswith(SUFFIX):
            raise ValueError(f"refusing {name!r}: model files are read only from {self.folder}")
        return path

    def prune(self) -> None:
        """Delete all but the newest ``keep`` version files, and temporary files left by a crash."""
        saved = sorted(self.folder.glob(f"v*{SUFFIX}"))  # zero-padded numbers: oldest first
        for stale in [*saved[: -self.keep], *self.folder.glob(".*.tmp")]:
            stale.unlink(missing_ok=True)
