"""Security headers on every answer of the service: the page, its files, the docs, the API, errors."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from alstream.service.app import create_app

from .conftest import AUTH, service_settings

PROJECT = {"classes": ["cat", "dog"], "n_features": 2}
ORIGINS = ["https://cdn.example.org", "http://127.0.0.1:9999"]
REQUESTS = [  # (method, path, body, headers, the answer expected)
    ("GET", "/", None, {}, 200),
    ("GET", "/static/app.js", None, {}, 200),
    ("GET", "/docs", None, {}, 200),
    ("GET", "/docs/assets/swagger-ui.css", None, {}, 200),
    ("GET", "/openapi.json", None, {}, 200),
    ("GET", "/health", None, {}, 200),
    ("GET", "/project", None, AUTH, 200),
    ("POST", "/send", {"features": [1, 2]}, AUTH, 202),
    ("GET", "/stats", None, {}, 401),
    ("POST", "/send", {"features": [1]}, AUTH, 422),
    ("POST", "/send", "x" * 2048, {**AUTH, "Content-Type": "application/json"}, 413),
    ("GET", "/no-such-page", None, {}, 404),
    ("GET", "/redoc", None, {}, 404),  # ReDoc would load from a CDN: not served
]


@pytest.fixture(scope="module")
def client(tmp_path_factory, request) -> TestClient:
    settings = service_settings(
        tmp_path_factory.mktemp("headers"),
        "embedded",
        request,
        demo=False,
        project=PROJECT,
        image_origins=ORIGINS,
        max_body_bytes=1024,
    )
    with TestClient(create_app(settings, track=False)) as client:
        yield client


@pytest.mark.parametrize(("method", "path", "body", "headers", "status"), REQUESTS)
def test_every_answer_carries_the_security_headers(client, method, path, body, headers, status):
    options = {"content": body} if isinstance(body, str) else {"json": body}
    answer = client.request(method, path, headers=headers, **options)
    assert answer.status_code == status, answer.text
    policy = dict(part.split(" ", 1) for part in answer.headers["content-security-policy"].split("; "))
    assert policy == {
        "default-src": "'self'",
        "img-src": "'self' data: https://cdn.example.org http://127.0.0.1:9999",
        "object-src": "'none'",
        "base-uri": "'none'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["x-frame-options"] == "DENY"


def test_the_page_names_the_allowed_image_origins(client):
    page = client.get("/").text
    named = " ".join(ORIGINS)
    assert f'<meta name="alstream-image-origins" content="{named}">' in page


def test_the_page_and_every_module_it_imports_are_served_as_javascript(client):
    """A module script runs only when its type is JavaScript (nosniff: no guessing)."""
    page = client.get("/").text
    assert '<script type="module" src="/static/app.js"></script>' in page
    seen, todo = set(), ["app.js"]
    while todo:
        name = todo.pop()
        seen.add(name)
        answer = client.get(f"/static/{name}")
        assert answer.status_code == 200, name
        assert answer.headers["content-type"].split(";")[0] in {"text/javascript", "application/javascript"}
        assert answer.text.startswith("// @ts-check\n"), name
        todo += [n for n in re.findall(r'from "\./([\w-]+\.js)";', answer.text) if n not in seen]
    assert seen == {"app.js", "api.js", "keys.js", "outbox.js", "queue.js", "render.js"}


def test_the_page_files_are_revalidated_so_no_browser_mixes_two_versions(client):
    first = client.get("/static/queue.js")
    assert first.headers["cache-control"] == "no-cache"
    again = client.get("/static/queue.js", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.headers["cache-control"] == "no-cache"
