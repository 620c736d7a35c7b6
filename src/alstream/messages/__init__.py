"""Messages in and out: the project's data contract, and the checks every sample and label passes.

Samples and labels reach alstream through ``POST /send``, ``POST /labels`` and Kafka topics that
any client may write. All of them go through this package, so the rules are the same everywhere:

* :mod:`~alstream.messages.schema`: the data contract, :class:`ProjectSchema`.
* :mod:`~alstream.messages.values`: the checked :class:`Sample` and :class:`Label`, and the errors.
* :mod:`~alstream.messages.contract`: the contract as pydantic models, built once per project:
  they validate every body and message (JSON bytes in Rust), and their JSON Schema is the OpenAPI.
* :mod:`~alstream.messages.parsing`: ``parse_samples`` / ``parse_labels`` / ``parse_messages``
  check a body (its JSON bytes, or one object or a list of objects decoded) and raise
  :class:`InvalidBatch` naming **every** bad item and why; nothing is half-accepted.
  ``parse_predict`` checks the rows ``/predict`` scores with the same rules for features and texts.
* :mod:`~alstream.messages.problems`: pydantic's errors in the API's words (item, field, why).
* :mod:`~alstream.messages.wire`: ``decode_sample`` / ``decode_label`` check the raw bytes of one
  stream message and raise :class:`InvalidMessage` with the reason (the consumer sends those to
  the dead-letter topic); ``encode_sample`` / ``encode_label`` write the JSON the topics carry.
* :mod:`~alstream.messages.openapi`: the models' JSON Schema, for one project: the request
  bodies of the OpenAPI document.

Rules (the README repeats them for clients):

Sample
    ``id``: optional; the caller names a sample sent without one (``default_id``): on ``/send``
    with an ``Idempotency-Key``, from the key and the sample's place (:mod:`alstream.idempotency`);
    on a stream, from the message's place (:mod:`alstream.messages.ids`); else one in time order
    (a UUIDv7 in hex) is made. A non-empty string of
    at most ``max_id_chars`` characters, not only whitespace. Integers are accepted and converted
    to their decimal string (``7`` -> ``"7"``; so ``7`` and ``"7"`` are the same id); floats and
    booleans are refused. Exactly one of ``features`` or ``text``, whichever ``schema.data``
    says. ``features``: a list of numbers (``n_features`` of them when the schema fixes a count)
    or, when the schema names its features, an object with exactly those names. Numbers are JSON
    integers or floats, finite, within float32 range; booleans and strings are not numbers.
    Features are stored as float32 in ``feature_names`` order. ``text``: a non-empty string (not
    only whitespace) of at most ``max_text_chars`` characters. ``meta``: optional JSON object of
    at most ``max_meta_bytes`` bytes once encoded, with finite numbers only. ``label``: optional,
    one of ``schema.classes``; integers are converted (``3`` -> ``"3"``). ``annotator``:
    optional non-empty string of at most 200 characters. Any other field is an error (so typos
    such as ``"featurs"`` are caught). Names -- ids, annotators, labels, class and feature names,
    ``meta`` keys at any depth -- hold no control character (C0, DEL, C1: ``\\x00``-``\\x1f``,
    ``\\x7f``-``\\x9f``); texts and ``meta`` values may (tabs, newlines), but a text holds no NUL,
    which PostgreSQL cannot store.
Label
    ``id`` (required, same rules as a sample id), then either ``label`` (one of the classes) or
    ``"skipped": true`` with no label; ``annotator`` optional. The same id may appear several
    times in one batch of labels (two annotators, or a correction): they are kept in order.
Batch
    One object or a non-empty list of at most ``max_batch`` objects. A sample id repeated in a
    batch is like a sample sent again: the first is stored, the later ones are ignored (JSON Schema
    cannot say "unique ids", and the OpenAPI document says exactly what is accepted). Errors are
    collected for all items; at most :data:`MAX_ERRORS` are listed, ``InvalidBatch.total`` counts
    them all. Errors about the batch as a whole (not a list, empty, too long) carry ``index = -1``.
``/send`` (``parse_messages``)
    Each item may carry ``"kind": "sample"`` or ``"kind": "label"``. **An item without
    ``kind`` is a sample** -- never guessed from its other fields. An item that looks like a
    label (``label``/``skipped`` but no features or text) and has no ``kind`` fails as a sample
    with a hint to add ``"kind": "label"``.
"""

from alstream.messages.parsing import parse_labels, parse_messages, parse_predict, parse_samples
from alstream.messages.problems import LABEL_FIELDS, SAMPLE_FIELDS
from alstream.messages.schema import (
    MAX_ANNOTATOR_CHARS,
    RESERVED_KEYS,
    ProjectSchema,
    digits_feature_names,
)
from alstream.messages.values import MAX_ERRORS, InvalidBatch, InvalidMessage, ItemError, Label, Sample
from alstream.messages.wire import decode_label, decode_sample, decode_samples, encode_label, encode_sample

__all__ = [
    "LABEL_FIELDS",
    "MAX_ANNOTATOR_CHARS",
    "MAX_ERRORS",
    "RESERVED_KEYS",
    "SAMPLE_FIELDS",
    "InvalidBatch",
    "InvalidMessage",
    "ItemError",
    "Label",
    "ProjectSchema",
    "Sample",
    "decode_label",
    "decode_sample",
    "decode_samples",
    "digits_feature_names",
    "encode_label",
    "encode_sample",
    "parse_labels",
    "parse_messages",
    "parse_predict",
    "parse_samples",
]
