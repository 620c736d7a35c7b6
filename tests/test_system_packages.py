"""scripts/system-packages.sh, which `make test` runs first: it installs what the tests drive when
it can (root and apt-get), else it stops with the exact command to run."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "system-packages.sh"
FAKE_APT = '#!/bin/bash\necho "$*" >> "${0%/*}/apt-get.calls"\n'


@pytest.fixture
def place() -> Iterator[Path]:
    """A folder anyone may read, holding a copy of the script and bin/apt-get, a fake that records
    its calls; on a PATH of only that bin/, Java, Maven, Node.js and Python are missing."""
    root = Path(tempfile.mkdtemp(prefix="alstream-syspkg-"))
    try:
        (root / "scripts").mkdir()
        shutil.copy(SCRIPT, root / "scripts")
        (root / "bin").mkdir()
        (root / "bin" / "apt-get").write_text(FAKE_APT)
        for path in [root, root / "scripts", root / "bin", root / "bin" / "apt-get"]:
            path.chmod(0o777 if path.name == "bin" else 0o755)
        yield root
    finally:
        shutil.rmtree(root)


def run(place: Path, *prefix: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": str(place / "bin"), "ALSTREAM_TEST_POSTGRES_URL": "postgresql://elsewhere/db"}
    command = [*prefix, "/bin/bash", str(place / "scripts" / "system-packages.sh")]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def expected() -> list[str]:
    chromium = [] if Path("/usr/bin/chromium").exists() else ["chromium"]
    return ["openjdk-17-jre-headless", "maven", *chromium, "nodejs", "python3-venv"]


def calls(place: Path) -> list[str]:
    recorded = place / "bin" / "apt-get.calls"
    return recorded.read_text().splitlines() if recorded.exists() else []


def test_without_root_it_stops_with_the_command_to_run(place):
    as_nobody = [shutil.which("runuser") or "runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
    done = run(place, *as_nobody)
    assert done.returncode == 1
    assert f"    sudo apt-get update && sudo apt-get install -y {' '.join(expected())}\n" in done.stderr
    assert calls(place) == []  # nothing tried


def test_as_root_it_installs_what_is_missing(place):
    if os.geteuid() != 0:  # as anyone else, the other test's case: it stops with the command
        assert run(place).returncode == 1
        return
    done = run(place)
    assert done.returncode == 0, done.stderr
    assert calls(place) == ["update -qq", f"install -y -qq {' '.join(expected())}"]


def test_without_apt_get_it_says_what_to_install(place):
    (place / "bin" / "apt-get").unlink()
    done = run(place)
    assert done.returncode == 1
    assert f"needs these system packages (Debian names): {' '.join(expected())}." in done.stderr


def test_nothing_missing_nothing_done(place):
    for tool in ("java", "mvn", "pg_ctl", "node"):
        (place / "bin" / tool).write_text("#!/bin/bash\n")
        (place / "bin" / tool).chmod(stat.S_IRWXU)
    (place / "bin" / "python3").symlink_to(Path(sys.executable).resolve())  # the interpreter itself
    if not Path("/usr/bin/chromium").exists():
        pytest.fail("/usr/bin/chromium is missing: make test installs it first (scripts/system-packages.sh)")
    done = run(place)
    assert (done.returncode, done.stdout, done.stderr, calls(place)) == (0, "", "", [])
