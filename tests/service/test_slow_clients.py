"""No request blocks the others, against a real `alstream serve`: the largest body each route accepts
is parsed off the event loop (``/health`` keeps answering meanwhile), headers and bodies that never
finish are cut off, a slow body spends no rate budget, open connections are bounded, and oversized
or non-UTF-8 bodies get 413 and 422 on every route."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from .conftest import AUTH, wait_for
from .processes import Service

PREDICT_LIMIT = 4 * 1024 * 1024
BODY_LIMIT = 8 * 1024 * 1024


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = Service(
        tmp_path_factory.mktemp("slow"),
        header_timeout_s="1",
        body_timeout_s="3",
        max_connections="40",
        max_body_bytes=str(BODY_LIMIT),
        max_predict_bytes=str(PREDICT_LIMIT),
        send_burst="1",
        send_rate_per_s="0.001",  # one /send per token, then 429 for the rest of the test
    )
    service.start()
    try:
        yield service
    finally:
        service.kill()


def health_answers_while_checked(service: Service, path: str, body: bytes) -> tuple[bytes, int]:
    """Send ``body`` to ``path`` whole, then ask ``/health`` again and again until the answer to
    ``body`` comes: (that answer's status line, how many /health answers came before it)."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH['Authorization']}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    answered = 0
    with (
        socket.create_connection(("127.0.0.1", service.port)) as sock,
        httpx.Client(base_url=service.url) as client,
    ):
        sock.sendall(head.encode() + body)
        while not select.select([sock], [], [], 0)[0]:
            health = client.get("/health", timeout=300)
            if health.status_code == 200 and not select.select([sock], [], [], 0)[0]:
                answered += 1
        sock.settimeout(300)
        return sock.recv(64).split(b"\r\n")[0], answered


def biggest(path: str) -> bytes:
    """The costliest body to check that the route accepts: as many items as a batch may hold, each
    with as many numbers (or fields) as it may carry."""
    row = b"[" + b",".join([b"1"] * 64) + b"]"
    if path == "/predict":
        return b'{"features": [' + b",".join([row] * 10_000) + b"]}"
    if path == "/labels":
        label = orjson.dumps({"id": "x" * 200, "label": "3", "annotator": "a" * 200})
        return b"[" + b",".join([label] * 10_000) + b"]"
    items = [b'{"features": ' + row + b', "label": "3", "annotator": "ana"}'] * 9_999
    return b"[" + b",".join([*items, b'{"features": ' + row + b', "label": "nope"}']) + b"]"  # one bad: 422


@pytest.mark.parametrize("path", ["/send", "/labels", "/predict"])
def test_health_answers_while_the_largest_batch_of_a_route_is_checked(service: Service, path: str) -> None:
    status, answered = health_answers_while_checked(service, path, biggest(path))
    assert status.split()[1] in (b"200", b"202", b"404", b"422"), status
    # Decoding and checking 10,000 items takes a while; /health kept answering all that time.
    assert answered >= 3, f"/health answered {answered} times while {path} checked its batch"


def test_headers_that_never_finish_are_cut_off(service: Service) -> None:
    sockets = []
    for _ in range(30):
        sock = socket.create_connection(("127.0.0.1", service.port))
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        sockets.append(sock)
    try:
        for sock in sockets:
            sock.settimeout(30)
            answer = sock.recv(1024)  # the server ends it: a 408, then the connection closes
            assert answer.startswith(b"HTTP/1.1 408"), answer
        assert httpx.get(f"{service.url}/health").status_code == 200
    finally:
        for sock in sockets:
            sock.close()


def test_a_silent_connection_is_closed(service: Service) -> None:
    with socket.create_connection(("127.0.0.1", service.port)) as sock:
        sock.settimeout(30)
        assert sock.recv(1024).startswith(b"HTTP/1.1 408")
        assert sock.recv(1024) == b""


def test_a_body_that_trickles_in_gets_408_and_spends_no_rate_budget(service: Service) -> None:
    token = service.create_token("producer", "slow-producer")
    with socket.create_connection(("127.0.0.1", service.port)) as sock:
        head = (
            f"POST /send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n"
        )
        sock.sendall(head.encode() + b'[{"features": [')
        sock.settimeout(30)
        answer = b"".join(iter(lambda: sock.recv(4096), b""))  # until the server closes it
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"did not arrive within 3 s" in answer
    # The token may send one batch (burst 1): the body that never arrived did not use it up.
    sample = {"features": [0.0] * 64}
    sent = httpx.post(f"{service.url}/send", json=sample, headers={"Authorization": f"Bearer {token}"})
    assert sent.status_code == 202, sent.text
    again = httpx.post(f"{service.url}/send", json=sample, headers={"Authorization": f"Bearer {token}"})
    assert again.status_code == 429


def test_open_connections_are_bounded(service: Service) -> None:
    sockets = [socket.create_connection(("127.0.0.1", service.port)) for _ in range(40)]
    try:
        time.sleep(0.2)  # all accepted by the server
        answer = httpx.get(f"{service.url}/health", timeout=30)
        assert answer.status_code == 503, answer.text
    finally:
        for sock in sockets:
            sock.close()
    # Once they are gone (closed, or cut off at the header deadline), the service answers again.
    wait_for(lambda: httpx.get(f"{service.url}/health", timeout=30).status_code == 200, what="/health again")


@pytest.mark.parametrize("path", ["/predict", "/tokens", "/send", "/labels", "/queue/release"])
def test_bodies_over_the_limit_get_413_even_chunked(service: Service, path: str) -> None:
    limit = {"/predict": PREDICT_LIMIT, "/tokens": 64 * 1024, "/queue/release": 2 * 1024 * 1024}.get(
        path, BODY_LIMIT
    )

    def chunks() -> Iterator[bytes]:  # no Content-Length: the edge counts as it streams in
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    response = httpx.post(f"{service.url}{path}", content=chunks(), headers=AUTH, timeout=60)
    assert response.status_code == 413, response.text
    assert f"over the limit of {limit} bytes" in response.json()["detail"]


@pytest.mark.parametrize("path", ["/tokens", "/queue/release", "/send", "/labels", "/predict"])
def test_bodies_that_are_not_utf8_and_not_json_typed_get_a_4xx(service: Service, path: str) -> None:
    """FastAPI's own checks of a body it cannot read as text must not fail in writing their 422."""
    response = httpx.post(
        f"{service.url}{path}", content=b"\xff\xfe\x00{", headers={**AUTH, "Content-Type": "text/plain"}
    )
    assert 400 <= response.status_code < 500, response.text


def test_bodies_held_at_once_are_bounded(tmp_path: Path) -> None:
    """Clients that send bodies and never finish hold at most 8 x max_body_bytes: then 503, at once."""
    limit = 1024 * 1024
    service = Service(tmp_path, wait_for_model=False, max_body_bytes=str(limit), body_timeout_s="600")
    service.start()
    sockets = []
    try:
        for _ in range(8):  # eight bodies of almost max_body_bytes each, never finished
            sock = socket.create_connection(("127.0.0.1", service.port))
            head = (
                f"POST /send HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {limit}\r\n\r\n"
            )
            sock.sendall(head.encode() + b" " * (limit - 1024))
            sockets.append(sock)
        time.sleep(1.0)  # all read by the server
        body = b" " * (limit // 2)
        answer = httpx.post(
            f"{service.url}/send", content=body, headers={**AUTH, "Content-Type": "application/json"}
        )
        assert answer.status_code == 503, answer.text
        assert "retry soon" in answer.json()["detail"]
        for sock in sockets:
            sock.close()
        time.sleep(1.0)  # the held bodies are let go with their connections
        answer = httpx.post(f"{service.url}/send", json={"features": [0.0] * 64}, headers=AUTH)
        assert answer.status_code == 202, answer.text
    finally:
        for sock in sockets:
            sock.close()
        service.kill()


@pytest.mark.parametrize("path", ["/predict", "/tokens", "/send", "/labels", "/queue/release"])
def test_bodies_that_are_not_utf8_get_422_naming_the_byte(service: Service, path: str) -> None:
    body = b'{"features": [[1, 2]], "x": "caf\xe9"}'
    response = httpx.post(
        f"{service.url}{path}", content=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert "not UTF-8: byte 0xe9 at offset 32" in response.json()["detail"]


def test_uvicorn_errors_reach_the_service_log(service: Service) -> None:
    """An invalid HTTP request is uvicorn's to log: its warning is in alstream's output."""
    with socket.create_connection(("127.0.0.1", service.port)) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        sock.settimeout(30)
        assert sock.recv(1024).startswith(b"HTTP/1.1 400")
    log = Path(service.home / "service.log")
    wait_for(lambda: "Invalid HTTP request received" in log.read_text(), what="uvicorn's warning in the log")
