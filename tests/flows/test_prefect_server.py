"""The experiment's Prefect API: a temporary server started once, waited for as long as it lives."""

import sys

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

import alstream.flows.prefect_server as server_module
from alstream.errors import OrchestratorUnavailable
from alstream.flows.prefect_server import answers, prefect_api, start_server

# Answers /api/health like Prefect's server, on the port it is given.
FAKE_SERVER = """
import http.server, sys
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/api/health" else 404)
        self.end_headers()
        self.wfile.write(b"true")
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
"""


def fake(started: list[int]):
    def command(port: int) -> list[str]:
        started.append(port)
        return [sys.executable, "-c", FAKE_SERVER, str(port)]

    return command


def test_the_wait_is_reported_until_the_server_answers():
    waited: list[float] = []
    server = start_server(waited.append, command=fake([]), poll_s=0.01)
    try:
        assert answers(server.url)
        assert waited and waited == sorted(waited)  # seconds so far, each time it looked
    finally:
        server.stop()
    assert not server.alive()


def test_a_port_taken_meanwhile_is_given_up_for_another():
    started: list[int] = []

    def taken_once(port: int) -> list[str]:
        started.append(port)
        return [sys.executable, "-c", "raise SystemExit(3)"] if len(started) == 1 else fake([])(port)

    server = start_server(command=taken_once, poll_s=0.01)
    try:
        assert len(started) == 2 and server.url == f"http://127.0.0.1:{started[1]}/api"
    finally:
        server.stop()


def test_a_server_on_a_port_given_starts_there_and_a_taken_port_is_an_error(free_port):
    server = start_server(command=fake([]), poll_s=0.01, port=free_port)
    try:
        assert server.url == f"http://127.0.0.1:{free_port}/api" and answers(server.url)
        started: list[int] = []  # nothing is started: the server that answers there is another one
        with pytest.raises(OrchestratorUnavailable, match=f"port {free_port}: it is taken"):
            start_server(command=fake(started), port=free_port)
        assert started == []
    finally:
        server.stop()


def test_one_temporary_server_serves_every_flow_of_the_process(monkeypatch):
    started: list[int] = []
    monkeypatch.setattr(server_module, "server_command", fake(started))
    monkeypatch.setattr(server_module, "_SERVER", None)
    done: list[str] = []
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        with prefect_api(meanwhile=lambda: done.append("while it boots")) as first:
            assert PREFECT_API_URL.value() == first
        with prefect_api(meanwhile=lambda: done.append("at once")) as second:
            assert second == first
        assert PREFECT_API_URL.value() is None  # only for the block
    assert len(started) == 1 and done == ["while it boots", "at once"]
    server_module._SERVER.stop()
