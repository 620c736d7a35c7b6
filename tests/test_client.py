import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pandas as pd
import pytest

from alstream.client import file_digest, post_batch, read_messages, with_row_ids
from alstream.errors import InvalidInput


def test_csv_rows_become_samples_with_named_features_ids_and_labels(tmp_path):
    path = tmp_path / "data.csv"
    pd.DataFrame({"id": ["a", "b"], "x": [1.0, 2.0], "y": [3.0, 4.0], "label": ["cat", None]}).to_csv(
        path, index=False
    )
    messages = read_messages(path)
    assert messages == [
        {"features": {"x": 1.0, "y": 3.0}, "id": "a", "label": "cat"},
        {"features": {"x": 2.0, "y": 4.0}, "id": "b"},
    ]


def test_jsonl_lines_are_taken_as_they_are_and_bad_files_are_refused(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"kind": "label", "id": "a", "label": "cat"}\n\n{"features": [1, 2]}\n')
    assert read_messages(path) == [{"kind": "label", "id": "a", "label": "cat"}, {"features": [1, 2]}]
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(InvalidInput, match="not valid JSON"):
        read_messages(tmp_path / "bad.jsonl")
    with pytest.raises(InvalidInput, match=r"\.csv or \.jsonl"):
        read_messages(path.rename(tmp_path / "data.txt"))
    (tmp_path / "garbled.csv").write_bytes(b"a,label\n\xff\xfe,x\n")
    with pytest.raises(InvalidInput, match=r"garbled\.csv cannot be read"):
        read_messages(tmp_path / "garbled.csv")


class Script:
    """A service that answers from a script (status codes, or an exception to raise), and what it saw."""

    def __init__(self, *answers):
        self.answers, self.bodies, self.slept, self.now = list(answers), [], [], 0.0

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(request.content)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer, headers={"Retry-After": "3"} if answer == 429 else {}, json={})

    def post(self, **options) -> httpx.Response:
        client = httpx.Client(base_url="http://alstream", transport=httpx.MockTransport(self.handle))
        return post_batch(
            client, [{"id": "a", "features": [1.0]}], sleep=self.sleep, clock=lambda: self.now, **options
        )

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_batch_is_retried_as_it_was_until_the_service_takes_it():
    script = Script(503, httpx.ConnectError("refused"), 429, 502, 202)
    assert script.post().status_code == 202
    assert len(script.bodies) == 5 and len(set(script.bodies)) == 1
    assert script.slept == [0.5, 1.0, 3.0, 2.0]  # backs off, and waits as long as a 429 says


def test_refusals_come_back_at_once_and_retries_give_up_in_time():
    assert Script(422).post().status_code == 422
    script = Script(*[503] * 20)
    assert script.post(give_up_after_s=30).status_code == 503
    assert script.now <= 30 and len(script.bodies) == 7  # 0.5 + 1 + 2 + 4 + 8 + 10 s of waiting
    script = Script(*[httpx.ConnectError("refused")] * 20)
    with pytest.raises(httpx.ConnectError):
        script.post(give_up_after_s=5)
    script = Script(*[429] * 20)  # Retry-After: 3
    assert script.post(give_up_after_s=10).status_code == 429
    assert script.slept == [3.0, 3.0, 3.0] and len(script.bodies) == 4  # a fourth wait would end at 12 s


@contextmanager
def serving(*statuses: int, retry_after: str = "1") -> Iterator[tuple[str, list[float]]]:
    """A local HTTP service answering each POST with the next of ``statuses`` (the last one from then
    on), ``Retry-After: retry_after`` on a 429; its address, and when each POST came."""
    came: list[float] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            came.append(time.monotonic())
            status = statuses[min(len(came), len(statuses)) - 1]
            self.send_response(status)
            if status == 429:
                self.send_header("Retry-After", retry_after)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", came
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.timeout(30)
def test_a_service_that_answers_429_forever_is_given_up_on_in_time():
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    with serving(429) as (url, came), httpx.Client(base_url=url) as client:
        # the deadline counts the waits only: a slow machine's requests do not move it
        batch = [{"id": "a", "features": [1.0]}]
        response = post_batch(client, batch, give_up_after_s=2.5, sleep=sleep, clock=lambda: sum(slept))
    assert response.status_code == 429  # the last answer, as for a service that stays away
    assert slept == [1.0, 1.0] and len(came) == 3  # waited 1 s twice; a third wait would end past 2.5 s
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(came))


@pytest.mark.timeout(30)
def test_a_batch_refused_with_429_twice_is_sent_once_the_service_takes_it():
    with serving(429, 429, 202) as (url, came), httpx.Client(base_url=url) as client:
        response = post_batch(client, [{"id": "a", "features": [1.0]}], give_up_after_s=10)
    assert response.status_code == 202 and len(came) == 3
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(came))  # as long as Retry-After said


def test_row_ids_follow_the_file_and_the_row_never_the_batch(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"features": [1]}\n')
    (tmp_path / "b.jsonl").write_text('{"features": [2]}\n')
    digest = file_digest(tmp_path / "a.jsonl")
    assert digest == file_digest(tmp_path / "a.jsonl") != file_digest(tmp_path / "b.jsonl")
    rows = [{"features": [float(i)]} for i in range(10)] + [{"id": "kept", "features": [0.0]}]
    ids = [m["id"] for m in with_row_ids(rows, digest)]
    assert len(set(ids)) == 11 and ids[-1] == "kept"
    assert [m["id"] for m in with_row_ids(rows[:4], digest)] == ids[:4]  # the same rows, the same ids
    assert [m["id"] for m in with_row_ids(rows, file_digest(tmp_path / "b.jsonl"))] != ids
