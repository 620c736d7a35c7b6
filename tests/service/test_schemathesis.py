"""The OpenAPI document tells the truth: ``schemathesis run --checks all`` against a real `alstream
serve` (digits demo, first model trained), with the admin token, with a token that is not one, and
with none. Every check passes: no server error, every status code and header documented, every
answer matching its schema, schema-valid requests accepted and schema-violating ones refused, auth
not ignored, unsupported methods answered 405 with the right ``Allow``, and the stateful runs (a
token created, listed and revoked)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import ADMIN_TOKEN
from .processes import Service

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
EXAMPLES = {"admin token": 100, "bad token": 30, "no token": 30}  # per operation and phase (401s: few)
HEADERS = {
    "admin token": f"Authorization: Bearer {ADMIN_TOKEN}",
    "bad token": "Authorization: Bearer als_00000000_not-a-real-token",
    "no token": None,
}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """/send and /labels are not rate limited here, so generated bodies reach validation, not a 429."""
    unlimited = {
        f"{route}_{what}": "1000000"
        for route in ("send", "labels", "queue")
        for what in ("rate_per_s", "burst")
    }
    service = Service(tmp_path_factory.mktemp("schemathesis"), **unlimited)
    service.start()
    try:
        yield service
    finally:
        service.kill()


@pytest.mark.parametrize("token", list(HEADERS))
def test_schemathesis_all_checks_pass(service: Service, token: str, tmp_path: Path) -> None:
    command = [
        str(SCHEMATHESIS),
        "run",
        f"{service.url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(EXAMPLES[token]),
        "--seed",
        "1",
        "--no-color",
    ]
    if HEADERS[token]:
        command += ["-H", HEADERS[token]]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stdout[-20_000:] + result.stderr[-5_000:]
    assert "Schema Error" not in result.stdout
