"""Sending a user's file: its rows or lines as stream messages, posted batch by batch to ``/send``.

A sample without an id gets one made from the file's digest and its row, whatever the batch size,
so a batch posted again (after a 503, a lost connection, or the whole command run again) is stored
once.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pandas as pd
import tenacity

from alstream.errors import InvalidInput
from alstream.idempotency import with_ids_from_key

RETRYABLE = frozenset({502, 503, 504})


def read_messages(path: Path, *, label_column: str = "label", id_column: str = "id") -> list[dict[str, Any]]:
    """Messages for ``POST /send``: a CSV row becomes a sample whose features map column to value;
    a JSONL line is taken as it is."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        lines = path.read_bytes().splitlines()
        try:
            return [orjson.loads(line) for line in lines if line.strip()]
        except orjson.JSONDecodeError as error:
            raise InvalidInput(f"{path.name}: a line is not valid JSON: {error}") from None
    if path.suffix.lower() != ".csv":
        raise InvalidInput(f"{path.name}: send a .csv or .jsonl file")
    try:
        frame = pd.read_csv(path, dtype={label_column: str, id_column: str})
    except ValueError as error:  # pandas' parse errors, bytes that are not text
        raise InvalidInput(f"{path.name} cannot be read: {error}") from error
    messages = []
    features = [c for c in frame.columns if c not in (label_column, id_column)]
    for row in frame.to_dict(orient="records"):
        message: dict[str, Any] = {"features": {name: row[name] for name in features}}
        if id_column in row and pd.notna(row[id_column]):
            message["id"] = str(row[id_column])
        if label_column in row and pd.notna(row[label_column]):
            message["label"] = str(row[label_column])
        messages.append(message)
    return messages


def file_digest(path: Path) -> str:
    """A short SHA-256 of the file's bytes: the same file gives the same ids."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:20]


def with_row_ids(messages: list[dict[str, Any]], digest: str) -> list[dict[str, Any]]:
    """The messages, each sample without an id given one from ``digest`` and its row.

    >>> rows = with_row_ids([{"features": [1.0]}, {"id": "a", "features": [2.0]}], "3f2a")
    >>> rows[0]["id"] == with_row_ids([{"features": [9.0]}], "3f2a")[0]["id"], rows[1]["id"]
    (True, 'a')
    """
    return with_ids_from_key(messages, key=digest, scope="file")


def post_batch(
    client: httpx.Client,
    batch: list[dict[str, Any]],
    *,
    give_up_after_s: float = 120.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> httpx.Response:
    """POST one batch until the service answers for good (give every sample an id first).

    429: waits ``Retry-After`` (1 s if it gives no number of seconds). 502/503/504 and lost
    connections: backs off 0.5 s, 1 s, 2 s ... up to 10 s. Either for at most ``give_up_after_s``
    in all: when the next wait would end past it, returns the last answer or raises the last
    ``httpx.TransportError``. Any other answer (202, 4xx) is returned at once.
    """
    deadline = clock() + give_up_after_s

    def too_late(state: tenacity.RetryCallState) -> bool:  # the next wait would end past the deadline
        return clock() + state.upcoming_sleep > deadline

    def last(state: tenacity.RetryCallState) -> httpx.Response:
        assert state.outcome is not None  # tenacity calls it after the last attempt
        return state.outcome.result()  # the last answer, or its error

    def told(state: tenacity.RetryCallState) -> float:
        assert state.outcome is not None  # tenacity waits after an attempt
        return _retry_after(state.outcome.result())

    def post() -> httpx.Response:  # over this token's rate: wait as told
        return tenacity.Retrying(
            retry=tenacity.retry_if_result(lambda response: response.status_code == 429),
            wait=told,
            stop=too_late,
            sleep=sleep,
            retry_error_callback=last,
        )(client.post, "/send", json=batch)

    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(httpx.TransportError)
        | tenacity.retry_if_result(lambda response: response.status_code in RETRYABLE),
        wait=tenacity.wait_exponential(multiplier=0.5, max=10.0),
        stop=too_late,
        sleep=sleep,
        retry_error_callback=last,
    )(post)


def _retry_after(response: httpx.Response) -> float:
    """The seconds a 429's ``Retry-After`` asks to wait: 1 when it names none (a date, nothing)."""
    try:
        return max(0.0, float(response.headers.get("Retry-After", "1")))
    except ValueError:
        return 1.0
