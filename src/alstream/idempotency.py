"""Idempotent sends: samples sent without an id get one derived from the request's key.

A client that sends a batch, gets no answer (a timeout, a 503) and sends it again with the same
``Idempotency-Key`` gets the same ids, and the store keeps each sample once. Samples that carry an
id keep it; labels always name theirs. ``/send`` passes :func:`ids_from_key` to the validation,
which names each sample sent without an id by its place; a client that writes its own bodies
(``alstream send``) uses :func:`with_ids_from_key`.

>>> ids_from_key("batch-7", scope="producer-1")(0)
'kfeb09f13b7a17284ee5aa94a-0'

>>> batch = [{"features": [1.0]}, {"id": "a", "features": [2.0]}, {"kind": "label", "id": "a", "label": "x"}]
>>> first = with_ids_from_key(batch, key="batch-7", scope="producer-1")
>>> [item.get("id") for item in first]
['kfeb09f13b7a17284ee5aa94a-0', 'a', 'a']
>>> with_ids_from_key(batch, key="batch-7", scope="producer-1") == first
True
>>> "id" in batch[0]  # the body itself is left as it was
False
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

from alstream.errors import InvalidInput

HEADER = "Idempotency-Key"
MAX_KEY_CHARS = 200


def check_key(key: str) -> str:
    """The key if it is usable, else :class:`~alstream.errors.InvalidInput` saying why.

    >>> check_key("2f1c-batch-0")
    '2f1c-batch-0'
    >>> check_key(" ")
    Traceback (most recent call last):
    ...
    alstream.errors.InvalidInput: Idempotency-Key must not be empty
    """
    if not key.strip():
        raise InvalidInput(f"{HEADER} must not be empty")
    if len(key) > MAX_KEY_CHARS:
        raise InvalidInput(f"{HEADER} is too long: {len(key)} characters, at most {MAX_KEY_CHARS}")
    if not key.isascii() or not key.isprintable():
        raise InvalidInput(f"{HEADER} must be printable ASCII")
    return key


def ids_from_key(key: str, *, scope: str = "") -> Callable[[int], str]:
    """The id of the sample at a place in a batch sent with ``key``: ``k<hash>-<index>``.

    The hash covers ``scope`` (who sends, so two producers' keys never meet) and ``key``.
    """
    prefix = "k" + hashlib.sha256(f"{scope}\x00{key}".encode()).hexdigest()[:24]
    return f"{prefix}-{{}}".format


def with_ids_from_key(payload: Any, *, key: str, scope: str = "") -> Any:
    """A copy of a decoded ``/send`` body in which each sample without an id gets its
    :func:`ids_from_key` id. Anything that is not a sample is left to validation."""
    name = ids_from_key(key, scope=scope)
    if isinstance(payload, Mapping):
        return _with_id(payload, name(0))
    if isinstance(payload, list):
        return [_with_id(item, name(index)) for index, item in enumerate(payload)]
    return payload


def _with_id(item: Any, new_id: str) -> Any:
    is_sample = isinstance(item, Mapping) and item.get("kind", "sample") in ("sample", None)
    if is_sample and item.get("id") is None:
        return {**item, "id": new_id}
    return item
