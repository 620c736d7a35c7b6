"""The direction of every dependency (docs/architecture.md), checked by import-linter against the
contracts in pyproject.toml: an import that breaks one fails here, naming the import and its line."""

import pkgutil
import re
import tomllib
from pathlib import Path

from importlinter.cli import lint_imports

import alstream

ROOT = Path(__file__).resolve().parents[1]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def test_the_imports_keep_every_contract():
    assert lint_imports(config_filenames=(str(ROOT / "pyproject.toml"),), no_cache=True, no_logo=True) == 0


def test_every_module_of_the_package_has_its_layer():
    [layers] = [c["layers"] for c in CONFIG["contracts"] if c["id"] == "layers"]
    placed = {name.strip() for layer in layers for name in re.split(r"[|:]", layer)}
    modules = {f"alstream.{m.name}" for m in pkgutil.iter_modules(alstream.__path__)}
    assert modules == placed
