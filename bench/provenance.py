"""What a benchmark ran: the alstream commit (and whether src/ differed from it), on which machine."""

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


def machine() -> dict[str, Any]:
    """The platform, Python, CPU model, logical CPUs and memory a benchmark ran on."""
    import platform

    import psutil

    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": cpu_model,
        "logical_cpus": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
    }
