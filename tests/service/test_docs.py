"""The API docs at /docs need nothing from the internet: Swagger UI comes with the package; every
answer they document has a named shape."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .processes import Service

COMPONENTS = "#/components/schemas/"
OPEN = {"QueueItem.meta"}  # the sample's meta, as sent: any JSON object (alstream.messages.MetaValue)


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> Iterator[Service]:
    service = Service(tmp_path_factory.mktemp("docs"), wait_for_model=False)
    service.start()
    yield service
    service.process.terminate()
    service.process.wait(timeout=30)


def test_docs_reference_only_files_the_service_serves(service):
    page = httpx.get(f"{service.url}/docs")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    swagger = {"/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/static/docs.js"}
    assert swagger <= set(assets)
    for asset in assets:
        assert asset.startswith("/") and not asset.startswith("//"), asset  # same origin
        answer = httpx.get(f"{service.url}{asset}")
        assert answer.status_code == 200 and answer.content, asset
    assert "<script>" not in page.text  # nothing inline: the CSP would block it
    assert httpx.get(f"{service.url}/redoc").status_code == 404  # ReDoc would load from a CDN


def test_swagger_ui_renders_in_chromium_with_every_request_on_the_service(browser, service):
    context = browser.new_context()
    try:
        page = context.new_page()
        requests: list[str] = []
        problems: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto(f"{service.url}/docs")
        page.wait_for_selector(".swagger-ui .opblock-summary-path[data-path='/send']")
        assert "alstream" in page.inner_text(".swagger-ui .info .title")
        page.click(".opblock-summary-path[data-path='/health']")  # an operation opens, with its answers
        page.wait_for_selector(".opblock.is-open .responses-table")
        assert requests and all(url.startswith(f"{service.url}/") for url in requests), requests
        assert f"{service.url}/openapi.json" in requests
        assert not problems, problems  # no CSP violation, no script error
    finally:
        context.close()


def _named(schema: dict[str, Any], where: str) -> list[str]:
    """The components ``schema`` (a success answer's) names: itself, its items, or each of its choices."""
    if "$ref" in schema:
        return [schema["$ref"].removeprefix(COMPONENTS)]
    if schema.get("type") == "array":
        return _named(schema["items"], where)
    choices = schema.get("oneOf") or schema.get("anyOf")
    assert choices, f"{where}: an unnamed answer {schema}"
    return [name for choice in choices for name in _named(choice, where)]


def _open_parts(schemas: dict[str, Any], name: str, seen: set[str]) -> set[str]:
    """Where component ``name`` and those it names take any value (``{}``) or any keys."""
    found: set[str] = set()

    def walk(schema: Any, where: str) -> None:
        if isinstance(schema, list):
            for part in schema:
                walk(part, where)
        elif isinstance(schema, dict):
            if schema == {} or schema.get("additionalProperties") is True:
                found.add(where)
            if "$ref" in schema:
                found.update(_open_parts(schemas, schema["$ref"].removeprefix(COMPONENTS), seen))
            for key, part in schema.items():
                if key == "properties":
                    for field, value in part.items():
                        walk(value, f"{where.split('.')[0]}.{field}")
                elif key not in ("default", "examples"):
                    walk(part, where)

    if name not in seen:
        seen.add(name)
        walk(schemas[name], name)
    return found


def test_every_answer_is_a_named_schema(service):
    """Each route's success answer references named schemas (or is a list of one, or one of some),
    each an object with its properties: no untyped answer, no open object at the top; within them
    only the sample's meta takes any keys."""
    spec = httpx.get(f"{service.url}/openapi.json").json()
    schemas = spec["components"]["schemas"]
    answers, open_parts, seen = {}, set(), set()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for code, answer in operation["responses"].items():
                if not code.startswith("2") or code == "204":
                    continue
                where = f"{method.upper()} {path} {code}"
                names = _named(answer["content"]["application/json"]["schema"], where)
                for name in names:
                    named = schemas[name]
                    assert named["type"] == "object" and named["properties"], (where, name)
                    assert named.get("additionalProperties") is not True, (where, name)
                    open_parts |= _open_parts(schemas, name, seen)
                answers[f"{method.upper()} {path}"] = names
    assert answers["GET /stats"] == ["EngineStats", "ReplicaStats"]
    assert answers["GET /health"] == ["Health"] and answers["GET /models"] == ["ModelRecord"]
    assert answers["POST /queue/release"] == ["Released"] and answers["POST /predict"] == ["PredictOut"]
    assert len(answers) >= 12, answers
    assert open_parts == OPEN
