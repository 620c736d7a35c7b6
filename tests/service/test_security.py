"""Tokens, roles and limits at the HTTP edge: no one in who does not belong, bad requests refused."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient
from sklearn.datasets import load_digits
from sqlalchemy import select

from alstream import auth
from alstream.service import security
from alstream.service.app import create_app
from alstream.store.tables import tokens as tokens_table

from .conftest import ADMIN_TOKEN, AUTH, service_settings, wait_for

X = load_digits().data
SAMPLE = {"features": X[0].tolist()}
PROTECTED = [
    ("POST", "/send", SAMPLE),
    ("POST", "/labels", {"id": "digit-1", "label": "1"}),
    ("GET", "/queue", None),
    ("POST", "/queue/release", {"ids": []}),
    ("GET", "/project", None),
    ("GET", "/stats", None),
    ("GET", "/models", None),
    ("POST", "/predict", {"features": [X[0].tolist()]}),
    ("GET", "/tokens", None),
    ("POST", "/tokens", {"role": "annotator", "name": "x"}),
    ("GET", "/me", None),
]


def call(client: TestClient, method: str, path: str, body, token: str | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.request(method, path, json=body, headers=headers)


@pytest.fixture(scope="module")
def client(tmp_path_factory, request) -> TestClient:
    settings = service_settings(tmp_path_factory.mktemp("security"), "embedded", request)
    with TestClient(create_app(settings, track=False)) as client:
        wait_for(lambda: client.get("/health").json()["model_version"] is not None, what="the first model")
        yield client


def token(client: TestClient, role: str, name: str = "someone") -> str:
    return client.post("/tokens", json={"role": role, "name": name}, headers=AUTH).json()["token"]


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
def test_every_endpoint_needs_a_valid_token(client, method, path, body):
    missing = call(client, method, path, body)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in missing.json()["detail"]
    for bad in ["nonsense", "als_00000000_wrongsecret", ADMIN_TOKEN + "x"]:
        assert call(client, method, path, body, bad).status_code == 401
    assert call(client, method, path, body, ADMIN_TOKEN).status_code < 400


@pytest.mark.parametrize("path", ["/health", "/", "/static/app.js", "/static/style.css", "/openapi.json"])
def test_health_the_page_and_the_docs_need_none(client, path):
    assert client.get(path).status_code == 200


def test_each_role_does_its_own_job_only(client):
    producer, annotator = token(client, "producer"), token(client, "annotator")
    allowed = {
        producer: {"/send", "/me"},
        annotator: {"/labels", "/queue", "/queue/release", "/project", "/stats", "/predict", "/me"},
    }
    for who, paths in allowed.items():
        for method, path, body in PROTECTED:
            response = call(client, method, path, body, who)
            if path in paths:
                assert response.status_code < 400, (path, response.text)
            else:
                assert response.status_code == 403, (path, response.text)
                assert "token may not" in response.json()["detail"]


def test_tokens_are_shown_once_stored_as_hashes_and_can_be_revoked(client):
    created = client.post("/tokens", json={"role": "annotator", "name": "gil"}, headers=AUTH).json()
    secret = created["token"]
    listed = client.get("/tokens", headers=AUTH).json()
    assert {
        "key": created["key"],
        "name": "gil",
        "role": "annotator",
        "annotators": ["gil"],
        "token": None,
    } in listed
    store = client.app.state.runtime.store
    with store.engine.connect() as conn:
        rows = [tuple(map(str, row)) for row in conn.execute(select(tokens_table))]
    assert rows and not any(secret in value for row in rows for value in row)
    assert call(client, "GET", "/queue", None, secret).status_code == 200
    assert client.delete(f"/tokens/{created['key']}", headers=AUTH).status_code == 204
    wait_for(lambda: call(client, "GET", "/queue", None, secret).status_code == 401, what="the revocation")
    assert client.delete(f"/tokens/{created['key']}", headers=AUTH).status_code == 404
    assert client.post("/tokens", json={"role": "boss", "name": "x"}, headers=AUTH).status_code == 422


def test_a_token_is_never_logged(client, caplog):
    secret = token(client, "annotator")
    with caplog.at_level(logging.DEBUG):
        for method, path, body in PROTECTED:
            call(client, method, path, body, secret)
            call(client, method, path, body, secret + "typo")
    assert secret not in caplog.text


def test_first_start_makes_an_admin_token_and_prints_it_once(tmp_path, request, capsys):
    settings = service_settings(tmp_path, "embedded", request).model_copy(update={"admin_token": None})
    with TestClient(create_app(settings, track=False)) as client:
        printed = capsys.readouterr().out
        first = next(word for word in printed.split() if word.startswith("als_"))
        assert f"/#token={first}" in printed
        assert call(client, "GET", "/tokens", None, first).status_code == 200  # an admin token
    with TestClient(create_app(settings, track=False)):
        assert "als_" not in capsys.readouterr().out  # never again


def test_send_is_rate_limited_per_token(tmp_path, request):
    settings = service_settings(tmp_path, "embedded", request, send_rate_per_s=0.5, send_burst=2, demo=False)
    with TestClient(create_app(settings, track=False), headers=AUTH) as client:
        first, second = token(client, "producer", "first"), token(client, "producer", "second")
        answers = [call(client, "POST", "/send", SAMPLE, first).status_code for _ in range(3)]
        assert answers == [202, 202, 429]
        refused = call(client, "POST", "/send", SAMPLE, first)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert "retry in" in refused.json()["detail"]
        assert call(client, "POST", "/send", SAMPLE, second).status_code == 202  # its own budget


def test_bodies_over_the_limit_get_413(tmp_path, request):
    settings = service_settings(tmp_path, "embedded", request, max_body_bytes=4096, demo=False)
    with TestClient(create_app(settings, track=False), headers=AUTH) as client:
        big = [SAMPLE] * 20  # about 6 kB of JSON
        refused = client.post("/send", json=big)
        assert refused.status_code == 413 and "4096 bytes" in refused.json()["detail"]

        def chunks():  # no Content-Length: counted as it streams in
            yield b"["
            for _ in range(40):
                yield b'{"features": [' + b"1.0, " * 63 + b"1.0]},"
            yield b"{}]"

        streamed = client.post("/send", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413
        assert client.post("/send", json=SAMPLE).status_code == 202
        assert client.get("/stats").json()["store"]["samples"] <= 1  # nothing of the refused bodies


def test_cors_is_off_unless_origins_are_set(tmp_path, request, client):
    preflight = {"Origin": "http://elsewhere.example", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in client.options("/send", headers=preflight).headers
    assert "access-control-allow-origin" not in client.get("/health", headers={"Origin": "http://x"}).headers
    settings = service_settings(tmp_path, "embedded", request, cors_origins=["http://ok.example"], demo=False)
    with TestClient(create_app(settings, track=False)) as open_client:
        allowed = open_client.get("/health", headers={"Origin": "http://ok.example"})
        assert allowed.headers["access-control-allow-origin"] == "http://ok.example"
        other = open_client.get("/health", headers={"Origin": "http://elsewhere.example"})
        assert "access-control-allow-origin" not in other.headers


class CountedTokens:
    """A token table without tokens that counts its look-ups."""

    def __init__(self) -> None:
        self.finds = 0

    def find(self, key: str) -> None:
        self.finds += 1

    def revoke(self, key: str, *, keep_an_admin: bool) -> bool:
        return False


def test_a_key_is_looked_up_once_a_cache_period_and_again_once_revoked():
    now = [0.0]  # the cache's clock, moved by hand: a slow machine cannot expire it early
    tokens, unknown = CountedTokens(), auth.new_token()
    gatekeeper = security.Gatekeeper(tokens, clock=lambda: now[0])
    assert gatekeeper.check(unknown) is None and gatekeeper.check(unknown) is None
    assert tokens.finds == 1
    now[0] += security.CACHE_S + 0.1
    assert gatekeeper.check(unknown) is None and tokens.finds == 2
    gatekeeper.revoke(auth.token_key(unknown))
    assert gatekeeper.check(unknown) is None and tokens.finds == 3


def test_known_answers_without_the_store_only_what_check_would():
    now = [0.0]
    tokens, unknown, admin = CountedTokens(), auth.new_token(), auth.new_token()
    gatekeeper = security.Gatekeeper(tokens, admin, clock=lambda: now[0])
    assert gatekeeper.known(admin) is security.CONFIGURED_ADMIN
    assert gatekeeper.known("not a token") is None
    assert gatekeeper.known(unknown) == "ask the store" and tokens.finds == 0  # never the store
    assert gatekeeper.check(unknown) is None and tokens.finds == 1
    assert gatekeeper.known(unknown) is None and tokens.finds == 1  # cached: no store
    now[0] += security.CACHE_S + 0.1
    assert gatekeeper.known(unknown) == "ask the store"  # expired: the store again
