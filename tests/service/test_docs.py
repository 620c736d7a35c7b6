"""The API docs at /docs need nothing from the internet: Swagger UI comes with the package."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from .processes import Service


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
