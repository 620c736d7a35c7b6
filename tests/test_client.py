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
