"""Which alstream code a benchmark ran: the commit, and whether src/ differed from it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def source_info() -> dict[str, Any]:
    """The HEAD commit and the files under src/ that differ from it (read-only git; None without git)."""

    def git(*argv: str) -> str | None:
        try:
            done = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True)
        except OSError:
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    changed = git("status", "--porcelain", "--", "src")
    return {
        "commit": git("rev-parse", "HEAD"),
        "src_changed_since_commit": None if changed is None else changed.splitlines(),
    }
