"""Property-based API testing: requests generated from alstream's own OpenAPI schema, valid and not
(schemathesis' positive and negative modes), sent with no token, a bad token and the admin token.
No answer may be a server error (5xx), for any operation the schema documents."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi

from alstream.service.app import create_app
from alstream.settings import Settings

from .conftest import AUTH, service_settings, wait_for

EXAMPLES = 100  # per operation and token: about 3,300 requests in all
HEADERS = {
    "no token": {},
    "bad token": {"Authorization": "Bearer als_00000000_not-a-real-token"},
    "admin token": AUTH,
}
# Every operation the schema documents, read from an app that is never started.
OPERATIONS = [
    f"{method.upper()} {path}"
    for path, methods in create_app(Settings.model_construct(), track=False).openapi()["paths"].items()
    for method in methods
]


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator:
    """The demo service in-process (embedded stream, SQLite), first model trained, and its schema.
    /send is not rate limited here, so generated bodies reach validation rather than a 429."""
    tmp_path = tmp_path_factory.mktemp("schemathesis")
    settings = service_settings(tmp_path, "embedded", request, send_rate_per_s=1e6, send_burst=10**6)
    app = create_app(settings, track=False)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)  # starts the app's lifespan
    try:
        with asgi.get_client(app) as client:
            wait_for(
                lambda: client.get("/health").json()["model_version"] is not None, what="the first model"
            )
        yield schema
    finally:
        asgi.shutdown_lifespans()  # stops the runtime: consumer, engine, store


@pytest.mark.parametrize("token", list(HEADERS))
@pytest.mark.parametrize("operation", OPERATIONS)
def test_no_request_gets_a_server_error(
    api_schema: schemathesis.BaseSchema, operation: str, token: str
) -> None:
    method, path = operation.split(" ", 1)
    endpoint = api_schema[path][method]
    cases = st.one_of(
        endpoint.as_strategy(GenerationMode.POSITIVE), endpoint.as_strategy(GenerationMode.NEGATIVE)
    )

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def no_server_error(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=HEADERS[token], checks=[not_a_server_error])

    no_server_error()
