"""No test is skipped silently: a skip says why in the summary and fails the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import _missing_kafka_prerequisite

pytest_plugins = ["pytester"]
CONFTEST = Path(__file__).with_name("conftest.py")


def test_a_skip_fails_the_run_and_says_why(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST.read_text())  # this suite's own hooks
    pytester.makepyfile(
        test_needs="import pytest\n\ndef test_ok():\n    pass\n\n"
        "def test_needs_x():\n    pytest.skip('x is missing (install x)')\n"
    )
    result = pytester.runpytest_subprocess("-ra")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "SKIPPED * x is missing (install x)",
            "1 test(s) skipped, reasons above: a skipped test fails the run (exit 1)*",
            "*1 passed, 1 skipped*",
        ]
    )


def test_a_run_without_skips_passes_and_a_failure_stays_a_failure(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(test_fine="def test_ok():\n    pass\n")
    assert pytester.runpytest_subprocess().ret == pytest.ExitCode.OK
    pytester.makepyfile(test_fine="def test_bad():\n    assert False\n")
    assert pytester.runpytest_subprocess().ret == pytest.ExitCode.TESTS_FAILED


def test_the_kafka_tests_name_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    reason = _missing_kafka_prerequisite()
    assert reason is not None and "java is not installed" in reason and "scripts/system-packages.sh" in reason
