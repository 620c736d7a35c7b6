"""Every example in a docstring of the package runs and shows what it says."""

import doctest
import importlib
import pkgutil

import pytest

import alstream

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(alstream.__path__, "alstream.")
    if not info.name.endswith("__main__")  # running it would start the command line
)


def test_the_strategies_show_examples():
    tests = doctest.DocTestFinder().find(importlib.import_module("alstream.learning.strategies"))
    assert sum(len(test.examples) for test in tests) >= 10


@pytest.mark.parametrize("name", MODULES)
def test_the_examples_run(name):
    results = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert results.failed == 0, f"{results.failed} of {results.attempted} examples in {name} failed"
