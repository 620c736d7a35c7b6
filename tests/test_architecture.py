"""The direction of every dependency (docs/architecture.md), checked by import-linter against the
contracts in pyproject.toml: an import that breaks one fails here, naming the import and its line."""

import os
import pkgutil
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import alstream

ROOT = Path(__file__).resolve().parents[1]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def test_the_imports_keep_every_contract():
    # In a process of its own: import-linter changes the logging of the process it runs in.
    path = os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache", str(ROOT / "pyproject.toml")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": path},
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_module_of_the_package_has_its_layer():
    [layers] = [c["layers"] for c in CONFIG["contracts"] if c["id"] == "layers"]
    placed = {name.strip() for layer in layers for name in re.split(r"[|:]", layer)}
    modules = {f"alstream.{m.name}" for m in pkgutil.iter_modules(alstream.__path__)}
    assert modules == placed
