import base64
import dataclasses
import json
import math
import time
import uuid

import jsonschema
import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alstream.messages import (
    MAX_ERRORS,
    InvalidBatch,
    InvalidMessage,
    ItemError,
    Label,
    ProjectSchema,
    Sample,
    decode_label,
    decode_sample,
    decode_samples,
    digits_feature_names,
    encode_label,
    encode_sample,
    openapi,
    parse_labels,
    parse_messages,
    parse_predict,
    parse_samples,
)
from alstream.messages.ids import ordered_id, stream_id

SCHEMA = ProjectSchema(classes=["cat", "dog", "3"], n_features=3)
NAMED = ProjectSchema(classes=["a", "b"], feature_names=["x", "y"])
TEXT = ProjectSchema(classes=["spam", "ham"], data="text", max_text_chars=20)
DIGITS = ProjectSchema.digits()


def errors_of(payload, schema=SCHEMA, parse=parse_samples) -> list[ItemError]:
    with pytest.raises(InvalidBatch) as info:
        parse(payload, schema)
    return info.value.errors


def only_error(payload, schema=SCHEMA, parse=parse_samples) -> ItemError:
    errors = errors_of(payload, schema, parse)
    assert len(errors) == 1, errors
    return errors[0]


# ------------------------------------------------------------------------ ProjectSchema


def test_digits_schema():
    assert DIGITS.classes == [str(d) for d in range(10)]
    assert DIGITS.n_features == 64
    assert DIGITS.feature_names[0] == "pixel_0_0" and DIGITS.feature_names[-1] == "pixel_7_7"
    assert digits_feature_names() == DIGITS.feature_names


def test_schema_derives_n_features_and_coerces_int_classes():
    schema = ProjectSchema(classes=[0, 1], feature_names=["x", "y", "z"])
    assert schema.n_features == 3 and schema.classes == ["0", "1"]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"classes": ["a"]}, "at least 2 classes"),
        ({"classes": ["a", "a"]}, "duplicate class"),
        ({"classes": ["a", " "]}, "non-empty"),
        ({"classes": ["a", "b"], "n_features": 0}, "greater than or equal to 1"),
        ({"classes": ["a", "b"], "n_features": 3, "feature_names": ["x"]}, "feature_names has 1"),
        ({"classes": ["a", "b"], "feature_names": ["x", "x"]}, "duplicate feature"),
        ({"classes": ["a", "b"], "data": "text", "n_features": 3}, "features' only"),
        ({"classes": ["a", "b"], "colour": "red"}, "Extra inputs"),
        ({"classes": ["a", "b"], "n_features": 10, "image_shape": (3, 3)}, "needs n_features = 9"),
        ({"classes": ["a", "b"], "n_features": 0 + 1, "image_shape": (0, 1)}, "positive"),
        ({"classes": ["a", "b"], "keys": {"c": "x"}}, "unknown classes: 'c'"),
        ({"classes": ["a", "b"], "keys": {"a": "xy"}}, "one printable character"),
        ({"classes": ["a", "b"], "keys": {"a": "x", "b": "x"}}, "same key for several classes: 'x'"),
        ({"classes": ["a", "b"], "keys": {"a": "?"}}, "the page's own"),
    ],
)
def test_schema_refuses(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        ProjectSchema(**kwargs)


@pytest.mark.parametrize(
    ("classes", "keys", "expected"),
    [
        ([str(d) for d in range(10)], None, {str(d): str(d) for d in range(10)}),  # digits: their own key
        (["cat", "dog"], None, {"cat": "1", "dog": "2"}),
        (
            [f"c{i}" for i in range(11)],
            None,
            {**{f"c{i}": str(i + 1) for i in range(9)}, "c9": "a", "c10": "b"},
        ),
        (["cat", "dog"], {"cat": "c", "dog": "d"}, {"cat": "c", "dog": "d"}),
    ],
)
def test_label_keys(classes, keys, expected):
    assert ProjectSchema(classes=classes, keys=keys).label_keys() == expected


def test_schema_is_frozen():
    with pytest.raises(ValueError):
        SCHEMA.max_batch = 3


# ------------------------------------------------------------------------------ samples


def test_valid_sample_list_features():
    [s] = parse_samples({"id": "s-1", "features": [1, 2.5, -3], "label": "cat", "meta": {"k": [1]}}, SCHEMA)
    assert s.id == "s-1" and s.label == "cat" and s.meta == {"k": [1]} and s.text is None
    assert s.features.dtype == np.float32 and s.features.tolist() == [1.0, 2.5, -3.0]
    assert not s.features.flags.writeable


def test_id_generated_when_absent_or_null():
    a, b = parse_samples([{"features": [1, 2, 3]}, {"id": None, "features": [1, 2, 3]}], SCHEMA)
    assert len(a.id) == 32 and int(a.id, 16) >= 0 and a.id != b.id


def test_generated_ids_are_uuid7_in_the_order_they_were_made():
    """Ids made later sort later (the store's index takes them at its end, not on random pages)."""
    earlier = [ordered_id() for _ in range(1000)]
    time.sleep(0.002)  # the next millisecond at least: ids of one millisecond differ in random bits
    later = [ordered_id() for _ in range(1000)]
    assert len(set(earlier + later)) == 2000
    assert max(earlier) < min(later)
    parsed = uuid.UUID(later[0])
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert abs(int(later[0][:12], 16) / 1000 - time.time()) < 60  # its first 48 bits: the time in ms


def test_stream_ids_sort_as_offsets_do():
    offsets = [0, 9, 10, 99, 100, 123_456_789]
    ids = [stream_id("samples", 2, o) for o in offsets]
    assert sorted(ids) == ids and len(set(ids)) == len(ids)
    assert stream_id("samples", 2, 5) != stream_id("samples", 3, 5) != stream_id("other", 2, 5)


def test_int_id_and_int_label_become_strings():
    [s] = parse_samples({"id": 7, "features": [1, 2, 3], "label": 3}, SCHEMA)
    assert s.id == "7" and s.label == "3"


@pytest.mark.parametrize(
    ("item_id", "needle"),
    [
        ("", "non-empty"),
        ("   ", "non-empty"),
        ("x" * 201, "too long: 201"),
        (1.5, "string"),
        (True, "boolean"),
        (2**53 + 1, "at most 9007199254740992 either way"),
        (-(2.0**60), "send it as a string"),
    ],
)
def test_bad_ids(item_id, needle):
    error = only_error({"id": item_id, "features": [1, 2, 3]})
    assert error.field == "id" and needle in error.message


def test_integral_numbers_are_integer_ids():
    batch = [{"id": 7.0, "features": [1, 2, 3]}, {"id": -(2**53), "features": [1, 2, 3]}]
    assert [s.id for s in parse_samples(batch, SCHEMA)] == ["7", str(-(2**53))]


def test_id_at_max_length_is_fine():
    assert parse_samples({"id": "x" * 200, "features": [1, 2, 3]}, SCHEMA)[0].id == "x" * 200


def test_wrong_feature_count():
    error = only_error({"id": "s-9", "features": [1, 2]})
    assert (error.index, error.id, error.field, error.message) == (
        0,
        "s-9",
        "features",
        "expected 3 numbers, got 2",
    )


def test_digits_feature_count_message():
    error = only_error({"id": "s-9", "features": [0.0] * 63}, DIGITS)
    assert error.message == "expected 64 numbers, got 63"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -math.inf])
def test_non_finite_features(bad):
    error = only_error({"features": [1, bad, 3]})
    assert error.field == "features" and "not finite" in error.message and "[1]" in error.message


@pytest.mark.parametrize(
    ("bad", "what"),
    [(True, "a boolean"), ("1.5", "a string"), (None, "null"), ([1], "a list"), ({}, "an object")],
)
def test_non_numbers_in_features(bad, what):
    error = only_error({"features": [1, 2, bad]})
    assert error.message == f"not numbers: [2] is {what}"


def test_out_of_range_features():
    top = float(np.finfo(np.float32).max)
    assert parse_samples({"features": [top, -top, 3.4028235e38]}, SCHEMA)[0].features[2] == np.float32(top)
    assert "float32 range" in only_error({"features": [1, 2, 1e39]}).message
    assert "out of range" in only_error({"features": [1, 2, 10**400]}).message


def test_mapping_features_in_schema_order():
    [s] = parse_samples({"features": {"y": 2, "x": 1}}, NAMED)
    assert s.features.tolist() == [1.0, 2.0]


def test_mapping_features_name_missing_and_unknown():
    error = only_error({"features": {"x": 1, "z": 3}}, NAMED)
    assert "missing 'y'" in error.message and "unknown 'z'" in error.message


def test_mapping_features_need_feature_names():
    assert "no feature_names" in only_error({"features": {"a": 1, "b": 2, "c": 3}}).message


def test_mapping_bad_value_names_the_feature():
    assert "'y' is a string" in only_error({"features": {"x": 1, "y": "2"}}, NAMED).message


def test_features_must_be_list_or_mapping():
    assert "expected a list of numbers" in only_error({"features": "1,2,3"}).message


def test_features_without_count_accept_any_nonempty_list():
    schema = ProjectSchema(classes=["a", "b"])
    assert parse_samples({"features": [1]}, schema)[0].features.tolist() == [1.0]
    assert "empty" in only_error({"features": []}, schema).message


def test_numpy_features_accepted_from_python_callers():
    [s] = parse_samples({"features": np.array([1, 2, 3], dtype=np.int64)}, SCHEMA)
    assert s.features.tolist() == [1.0, 2.0, 3.0]


def test_exactly_one_of_features_and_text():
    error = only_error({"features": [1, 2, 3], "text": "hi"})
    assert error.field == "text" and "carry features, not text" in error.message
    error = only_error({"id": "a"})
    assert error.field == "features" and error.message.startswith("missing")
    errors = errors_of({"features": [1]}, TEXT)
    assert sorted(e.field for e in errors) == ["features", "text"]


def test_text_projects():
    [s] = parse_samples({"text": "buy now", "label": "spam"}, TEXT)
    assert s.text == "buy now" and s.features is None
    assert "too long: 21" in only_error({"text": "x" * 21}, TEXT).message
    assert "must not be empty" in only_error({"text": "  "}, TEXT).message
    assert "expected a string" in only_error({"text": 5}, TEXT).message


def test_meta_rules():
    small = ProjectSchema(classes=["a", "b"], n_features=1, max_meta_bytes=20)
    assert parse_samples({"features": [1], "meta": {"k": "v"}}, small)[0].meta == {"k": "v"}
    assert "too large" in only_error({"features": [1], "meta": {"k": "v" * 30}}, small).message
    assert "JSON object" in only_error({"features": [1], "meta": [1, 2]}, small).message
    assert "not plain JSON" in only_error({"features": [1], "meta": {"k": float("nan")}}, small).message
    assert "not plain JSON" in only_error({"features": [1], "meta": {1: "v"}}, small).message


def test_unknown_class_names_the_known_ones():
    error = only_error({"features": [1, 2, 3], "label": "cow"})
    assert error.field == "label" and "unknown class 'cow'" in error.message
    assert "'cat', 'dog', '3'" in error.message
    many = ProjectSchema(classes=[f"c{i}" for i in range(50)], n_features=1)
    message = only_error({"features": [1], "label": "zz"}, many).message
    assert "'c19'" in message and "'c20'" not in message and "(and 30 more)" in message
    assert "class name" in only_error({"features": [1, 2, 3], "label": 3.5}).message
    assert parse_samples({"features": [1, 2, 3], "label": 3.0}, SCHEMA)[0].label == "3"  # JSON's 3.0 is 3
    assert "class name" in only_error({"features": [1, 2, 3], "label": True}).message


def test_annotator_rules():
    assert parse_samples({"features": [1, 2, 3], "annotator": "ana"}, SCHEMA)[0].annotator == "ana"
    assert "too long: 201" in only_error({"features": [1, 2, 3], "annotator": "a" * 201}).message
    assert "non-empty" in only_error({"features": [1, 2, 3], "annotator": ""}).message
    assert "expected a string" in only_error({"features": [1, 2, 3], "annotator": 5}).message


CONTROLS = ["\x00", "\x07", "\n", "\x1b", "\x7f", "\x85", "\x9f"]


@pytest.mark.parametrize("char", CONTROLS)
def test_names_refuse_control_characters(char):
    """Ids, annotators, labels and meta keys end up in database keys and logs: no control characters,
    whether they come through /send, /labels or a topic."""
    bad = f"a{char}b"
    for item, field in [
        ({"id": bad, "features": [1, 2, 3]}, "id"),
        ({"features": [1, 2, 3], "annotator": bad}, "annotator"),
        ({"features": [1, 2, 3], "meta": {"ok": {"deep": [{bad: 1}]}}}, "meta"),
    ]:
        error = only_error(item)
        assert error.field == field and "control character" in error.message, error
        with pytest.raises(InvalidMessage, match="control character"):
            decode_sample(orjson.dumps(item), SCHEMA)
    error = only_error({"features": [1, 2, 3], "label": bad})  # no class name holds one
    assert error.field == "label" and "unknown class" in error.message
    for item in [{"id": bad, "label": "cat"}, {"id": "s", "label": "cat", "annotator": bad}]:
        assert "control character" in only_error(item, parse=parse_labels).message
        with pytest.raises(InvalidMessage, match="control character"):
            decode_label(orjson.dumps(item), SCHEMA)


def test_control_characters_are_named_by_their_escape_and_position():
    assert only_error({"id": "ab\x00", "features": [1, 2, 3]}).message == (
        "holds a control character (\\x00 at position 2)"
    )


def test_meta_values_and_texts_may_hold_control_characters_but_texts_no_nul():
    [sample] = parse_samples({"features": [1, 2, 3], "meta": {"note": "a\x00b\n"}}, SCHEMA)
    assert sample.meta == {"note": "a\x00b\n"}  # stored as JSON, where it is an escape
    [text] = parse_samples({"text": "line 1\n\tline 2\x1b"}, TEXT)
    assert text.text == "line 1\n\tline 2\x1b"
    error = only_error({"text": "ab\x00c"}, TEXT)
    assert error.field == "text" and "NUL" in error.message and "position 2" in error.message


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"classes": ["a", "b\x00"]}, "class names must not hold control characters"),
        ({"classes": ["a", "x" * 201]}, "at most 200 characters"),
        ({"classes": ["a", "b"], "feature_names": ["x", "y\n"]}, "feature names must not hold control"),
        ({"classes": ["a", "b"], "max_id_chars": 1001}, "less than or equal to 1000"),
    ],
)
def test_schema_refuses_names_the_store_cannot_keep(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        ProjectSchema(**kwargs)


def test_unknown_fields_are_refused_with_a_hint():
    error = only_error({"featurs": [1, 2, 3], "features": [1, 2, 3]})
    assert error.field == "featurs" and "did you mean 'features'" in error.message
    assert "allowed fields" in only_error({"features": [1, 2, 3], "zzz": 1}).message


def test_every_problem_of_an_item_is_listed():
    errors = errors_of({"id": "", "features": [1], "label": "cow", "oops": 1})
    assert sorted(e.field for e in errors) == ["features", "id", "label", "oops"]
    assert {e.index for e in errors} == {0}


# ------------------------------------------------------------------------------ batches


@pytest.mark.parametrize(
    ("payload", "needle"), [("x", "string"), (5, "number"), (None, "null"), ([], "empty batch")]
)
def test_bad_batches(payload, needle):
    error = only_error(payload)
    assert error.index == -1 and needle in error.message


def test_item_not_an_object():
    errors = errors_of([{"features": [1, 2, 3]}, [1, 2, 3], "x"])
    assert [(e.index, "JSON object" in e.message) for e in errors] == [(1, True), (2, True)]


def test_batch_too_long_is_one_error():
    schema = ProjectSchema(classes=["a", "b"], n_features=1, max_batch=3)
    assert len(parse_samples([{"features": [1]}] * 3, schema)) == 3
    error = only_error([{"features": "bad"}] * 4, schema)
    assert error.index == -1 and "4 items, at most 3" in error.message


def test_a_repeated_id_is_accepted_like_a_resend():
    """The store keeps the first sample of an id and ignores the later ones, in a batch as across batches."""
    batch = [
        {"id": "x", "features": [1, 2, 3]},
        {"id": 1, "features": [4, 5, 6]},
        {"id": "1", "features": [7, 8, 9]},
    ]
    assert [s.id for s in parse_samples(batch, SCHEMA)] == ["x", "1", "1"]


def test_errors_are_capped_but_counted():
    with pytest.raises(InvalidBatch) as info:
        parse_samples([{"features": [1]}] * 250, SCHEMA)
    assert len(info.value.errors) == MAX_ERRORS and info.value.total == 250
    assert info.value.to_list()[0] == {
        "index": 0,
        "id": info.value.errors[0].id,
        "field": "features",
        "message": "expected 3 numbers, got 1",
    }
    assert "250 errors in batch" in str(info.value)


def test_nothing_half_accepted():
    with pytest.raises(InvalidBatch) as info:
        parse_samples([{"id": "ok", "features": [1, 2, 3]}, {"id": "bad", "features": [1]}], SCHEMA)
    assert [(e.index, e.id) for e in info.value.errors] == [(1, "bad")]


def test_a_full_batch_of_10k_digits_samples_is_parsed():
    rng = np.random.default_rng(0)
    rows = (rng.random((10_000, 64)) * 16).tolist()
    payload = [{"id": f"s-{i}", "features": row, "label": str(i % 10)} for i, row in enumerate(rows)]
    samples = parse_samples(payload, DIGITS)
    assert len(samples) == 10_000 and samples[-1].features.shape == (64,)
    np.testing.assert_allclose(samples[5].features, np.float32(rows[5]))


# ------------------------------------------------------------------------------- labels


def test_labels():
    labels = parse_labels(
        [
            {"id": "s-1", "label": "cat", "annotator": "ana"},
            {"id": 2, "skipped": True},
            {"id": "s-1", "label": 3},
        ],
        SCHEMA,
    )
    assert labels == [
        Label("s-1", "cat", "ana", False),
        Label("2", None, None, True),
        Label("s-1", "3", None, False),
    ]


@pytest.mark.parametrize(
    ("item", "field", "needle"),
    [
        ({"label": "cat"}, "id", "required"),
        ({"id": "s"}, "label", "skipped"),
        ({"id": "s", "skipped": False}, "label", "missing"),
        ({"id": "s", "label": "cat", "skipped": True}, "label", "carries no label"),
        ({"id": "s", "skipped": "yes"}, "skipped", "true or false"),
        ({"id": "s", "skipped": 1}, "skipped", "true or false"),
        ({"id": "s", "label": "cow"}, "label", "unknown class"),
        ({"id": "s", "label": "cat", "features": [1, 2, 3]}, "features", "unknown field"),
    ],
)
def test_bad_labels(item, field, needle):
    errors = errors_of(item, parse=parse_labels)
    assert any(e.field == field and needle in e.message for e in errors), errors


# ------------------------------------------------------------------------------- /send


def test_send_mixes_samples_and_labels():
    samples, labels = parse_messages(
        [
            {"id": "a", "features": [1, 2, 3]},
            {"kind": "sample", "id": "b", "features": [1, 2, 3], "label": "dog"},
            {"kind": "label", "id": "a", "label": "cat"},
            {"kind": None, "id": "c", "features": [4, 5, 6]},
        ],
        SCHEMA,
    )
    assert [s.id for s in samples] == ["a", "b", "c"] and samples[1].label == "dog"
    assert labels == [Label("a", "cat")]


def test_send_item_without_kind_is_a_sample_with_a_hint():
    error = only_error({"id": "a", "label": "cat"}, parse=parse_messages)
    assert error.field == "features" and '"kind": "label"' in error.message


def test_send_bad_kind_and_errors_from_both_kinds():
    errors = errors_of(
        [{"kind": "lable", "id": "a"}, {"kind": "label", "id": "a"}, {"id": "b", "features": [1]}],
        parse=parse_messages,
    )
    assert [(e.index, e.field) for e in errors] == [(0, "kind"), (1, "label"), (2, "features")]
    assert (
        only_error({"id": "x", "features": [1, 2, 3], "skipped": True}, parse=parse_messages).field
        == "skipped"
    )


def test_send_takes_repeated_sample_ids():
    samples, _ = parse_messages(
        [{"id": "a", "features": [1, 2, 3]}, {"id": "a", "features": [1, 2, 4]}], SCHEMA
    )
    assert [s.id for s in samples] == ["a", "a"]


# -------------------------------------------------------------------- encode / decode


def test_round_trip_sample_and_label():
    [s] = parse_samples(
        {"id": "s", "features": [0.1, 1e-30, -3e38], "meta": {"a": None}, "label": "dog"}, SCHEMA
    )
    assert decode_sample(encode_sample(s), SCHEMA) == s
    body = orjson.loads(encode_sample(s))
    assert np.frombuffer(base64.b64decode(body["features"]), "<f4").tolist() == s.features.tolist()
    assert "text" not in body
    for label in (Label("s", "cat", "ana"), Label("s", None, None, True)):
        assert decode_label(encode_label(label), SCHEMA) == label
    [t] = parse_samples({"text": "héllo ✓", "annotator": "b", "label": "ham"}, TEXT)
    assert decode_sample(encode_sample(t), TEXT) == t


def test_the_token_key_travels_on_the_topics_but_no_client_may_send_it():
    label = Label("s", "cat", "ana", token_key="k1234567")
    assert decode_label(encode_label(label), SCHEMA) == label
    [s] = parse_samples({"id": "s", "features": [0.1, 0.2, 0.3], "label": "dog"}, SCHEMA)
    s = dataclasses.replace(s, annotator="ana", token_key="k1234567")
    assert decode_sample(encode_sample(s), SCHEMA).token_key == "k1234567"
    for parse, item in (
        (parse_labels, {"id": "s", "label": "cat", "token_key": "x"}),
        (parse_samples, {"id": "s", "features": [0.1, 0.2, 0.3], "token_key": "x"}),
        (parse_messages, {"kind": "label", "id": "s", "label": "cat", "token_key": "x"}),
    ):
        with pytest.raises(InvalidBatch) as refused:
            parse(item, SCHEMA)
        assert [e.field for e in refused.value.errors] == ["token_key"]
    with pytest.raises(InvalidMessage, match="token_key"):
        decode_label(b'{"id": "s", "label": "cat", "token_key": 7}', SCHEMA)


@pytest.mark.parametrize(
    "raw", [b"\xff\xfe", b"not json", b"{", b"", "\ud800".encode("utf-8", "surrogatepass")]
)
def test_decode_not_json(raw):
    with pytest.raises(InvalidMessage, match="not valid JSON"):
        decode_sample(raw, SCHEMA)
    with pytest.raises(InvalidMessage, match="not valid JSON"):
        decode_label(raw, SCHEMA)


def test_decode_wrong_shapes():
    with pytest.raises(InvalidMessage, match="JSON object"):
        decode_sample(b"[1, 2]", SCHEMA)
    with pytest.raises(InvalidMessage, match="empty message"):
        decode_sample(None, SCHEMA)
    with pytest.raises(InvalidMessage) as info:
        decode_sample(b'{"id": "x", "features": [1, 2]}', SCHEMA)
    assert info.value.reason == "features: expected 3 numbers, got 2"
    with pytest.raises(InvalidMessage, match="label: unknown class"):
        decode_label(b'{"id": "x", "label": "cow"}', SCHEMA)
    with pytest.raises(InvalidMessage, match="not valid JSON"):  # NaN is no JSON
        decode_sample(b'{"features": [1, 2, NaN]}', SCHEMA)
    with pytest.raises(InvalidMessage, match=r"features: not numbers: \[2\] is null"):
        decode_sample(b'{"features": [1, 2, null]}', SCHEMA)


def test_a_batch_decodes_like_each_message_alone():
    good = [
        Sample(f"s{i}", np.array([i, 0.5, -2], dtype=np.float32), label="dog" if i % 2 else None)
        for i in range(5)
    ]
    beyond_float32 = b'{"features": [1, 2, 1e39]}'  # passes the checks, fails the batch's conversion
    bad = [
        b"not json",
        None,
        b"[1]",
        b'{"features": [1, 2]}',
        beyond_float32,
        b'{"features": [1, 2, 3], "label": "cow"}',
    ]
    raws = [encode_sample(s) for s in good[:3]] + bad + [encode_sample(s) for s in good[3:]]
    decoded = decode_samples(raws, SCHEMA)
    assert [d for d in decoded if isinstance(d, Sample)] == good
    for raw, got in zip(raws, decoded, strict=True):
        try:
            expected = decode_sample(raw, SCHEMA)
        except InvalidMessage as error:
            assert isinstance(got, InvalidMessage) and got.reason == error.reason
        else:
            assert got == expected and not got.features.flags.writeable


def _packed(*values: float, dtype: str = "<f4") -> str:
    return base64.b64encode(np.array(values, dtype=dtype).tobytes()).decode()


def test_a_topic_takes_packed_features_alone_or_in_a_batch_and_says_what_is_wrong():
    good = orjson.dumps({"id": "p", "features": _packed(1, -2.5, 3e38)})
    assert decode_sample(good, SCHEMA).features.tolist() == [1, -2.5, np.float32(3e38)]
    not_base64 = "features: a string must be the base64 of little-endian float32s"
    bad = [
        (not_base64, "not base64!"),
        (not_base64, "AACAPw==é"),
        ("features: packed: 8 bytes, expected 12 (3 float32s)", _packed(1, 2)),
        ("features: packed: 24 bytes, expected 12 (3 float32s)", _packed(1, 2, 3, dtype="<f8")),
        ("features: not finite numbers: [1] is nan", _packed(1, math.nan, 3)),
        ("features: not finite numbers: [2] is inf", _packed(1, 2, math.inf)),
    ]
    raws = [orjson.dumps({"id": f"b{i}", "features": value}) for i, (_, value) in enumerate(bad)]
    for raw, (reason, _) in zip(raws, bad, strict=True):
        with pytest.raises(InvalidMessage) as refused:
            decode_sample(raw, SCHEMA)
        assert refused.value.reason == reason
    packed_batch = [orjson.dumps({"id": f"q{i}", "features": _packed(i, 0.5, -2)}) for i in range(4)]
    decoded = decode_samples(packed_batch, SCHEMA)  # all packed: the batch's fast path
    assert [d.features.tolist() for d in decoded] == [[i, 0.5, -2] for i in range(4)]
    mixed = decode_samples([*packed_batch[:2], *raws, b'{"id": "l", "features": [1, 2, 3]}'], SCHEMA)
    assert [type(d).__name__ for d in mixed] == ["Sample"] * 2 + ["InvalidMessage"] * len(raws) + ["Sample"]
    assert [d.reason for d in mixed[2:-1]] == [reason for reason, _ in bad]


def test_send_takes_features_as_numbers_only():
    with pytest.raises(InvalidBatch) as refused:
        parse_messages([{"id": "p", "features": _packed(1, 2, 3)}], SCHEMA)
    assert refused.value.errors[0].message.startswith("expected a list of numbers")


def test_sample_equality():
    a = Sample("x", np.array([1, 2], dtype=np.float32))
    assert a == Sample("x", np.array([1, 2], dtype=np.float32))
    assert a != Sample("x", np.array([1, 3], dtype=np.float32))
    assert a != Sample("x", None, "t")
    assert len({a, a}) == 1


# ----------------------------------------------------------------------- OpenAPI docs


def test_documented_examples_are_valid_messages():
    from alstream.service.openapi_document import _examples

    for project in (SCHEMA, DIGITS, TEXT):
        examples = _examples(project)
        assert parse_messages(examples["/send"][0], project)
        assert len(parse_labels(examples["/labels"], project)) == 2
        assert len(parse_predict(examples["/predict"][0], project)) == 1


# --------------------------------------------------------------------------- hypothesis

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
field_names = st.sampled_from(
    ["id", "features", "text", "meta", "label", "annotator", "kind", "skipped", "x"]
)
items = st.dictionaries(
    field_names, json_values | st.lists(st.floats() | st.integers(), min_size=3, max_size=3)
)
payloads = json_values | items | st.lists(items, max_size=5)


@given(payloads)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_random_payloads_only_raise_invalid_batch(payload):
    for parse in (parse_samples, parse_labels, parse_messages):
        try:
            parse(payload, SCHEMA)
        except InvalidBatch as exc:
            assert exc.errors and all(isinstance(e, ItemError) for e in exc.errors)


@given(st.binary(max_size=60) | payloads.map(lambda p: json.dumps(p).encode()))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_random_bytes_only_raise_invalid_message(raw):
    for decode in (decode_sample, decode_label):
        try:
            decode(raw, SCHEMA)
        except InvalidMessage as exc:
            assert exc.reason


finite32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
names = st.characters(exclude_categories=("Cc", "Cs"))  # what a name may hold: no control characters
ids = st.text(names, min_size=1, max_size=20).filter(str.strip)
optional_text = st.none() | st.text(names, min_size=1, max_size=10).filter(str.strip)
metas = st.none() | st.dictionaries(
    st.text(names, max_size=5),
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5),
    max_size=3,
)
samples_st = st.builds(
    dict,
    id=ids,
    features=st.lists(finite32, min_size=3, max_size=3),
    meta=metas,
    label=st.none() | st.sampled_from(SCHEMA.classes),
    annotator=optional_text,
)


@given(samples_st)
def test_valid_samples_round_trip_exactly(item):
    [s] = parse_samples(item, SCHEMA)
    back = decode_sample(encode_sample(s), SCHEMA)
    assert back == s
    assert back.features.tolist() == [np.float32(v).item() for v in item["features"]]


@given(
    st.lists(finite32, min_size=3, max_size=3),
    st.integers(0, 2),
    st.sampled_from([math.nan, math.inf, -math.inf]),
)
def test_non_finite_anywhere_is_refused(values, where, bad):
    values[where] = bad
    error = only_error({"id": "s", "features": values})
    assert error.field == "features" and f"[{where}]" in error.message
    for raw in (json.dumps({"id": "s", "features": values}), orjson.dumps({"id": "s", "features": values})):
        # NaN is no JSON (json.dumps writes it anyway); orjson writes null
        with pytest.raises(InvalidMessage, match=r"not valid JSON|is null"):
            decode_sample(raw, SCHEMA)


@given(st.lists(samples_st, min_size=1, max_size=20, unique_by=lambda d: d["id"]), st.data())
def test_one_bad_item_is_the_only_one_listed(batch, data):
    bad = data.draw(st.integers(0, len(batch)))
    broken = {"features": [1.0, 2.0]} if data.draw(st.booleans()) else {"label": "cow", "features": [1, 2, 3]}
    batch = [*batch[:bad], {"id": "zz-bad-" + "9" * 5, **broken}, *batch[bad:]]
    with pytest.raises(InvalidBatch) as info:
        parse_samples(batch, SCHEMA)
    assert [e.index for e in info.value.errors] == [bad]


def test_numeric_errors_in_a_batch_name_only_their_items():
    batch = [{"id": f"s{i}", "features": [i, i + 1, i + 2]} for i in range(8)]
    batch[5]["features"] = [1, math.nan, 3]
    batch[6]["features"] = [1, 2, 10**400]  # forces the row-by-row fallback
    batch[7]["features"] = [1e39, 2, 3]
    errors = errors_of(batch)
    assert [(e.index, e.id) for e in errors] == [(5, "s5"), (6, "s6"), (7, "s7")]
    assert "not finite" in errors[0].message and "[1]" in errors[0].message
    assert "out of range at [2]" in errors[1].message
    assert "float32 range at [0]" in errors[2].message
    good = parse_samples(batch[:5], SCHEMA)
    assert [s.features.tolist() for s in good] == [[i, i + 1, i + 2] for i in range(5)]
    assert not any(s.features.flags.writeable for s in good)


def test_errors_are_listed_in_index_order():
    batch = [
        {"id": "a", "features": [1, 2, math.inf]},
        {"id": "b", "features": [1]},
        {"id": "c", "label": "x"},
    ]
    errors = errors_of(batch)
    assert [e.index for e in errors] == [0, 1, 2, 2]


# ------------------------------------------------------- the OpenAPI schema says what is accepted


def schema_accepts(body: dict, payload) -> bool:
    root = {**body, "components": {"schemas": {"MetaValue": openapi.meta_value()}}}
    return jsonschema.Draft202012Validator(root).is_valid(payload)


def parser_accepts(parse, payload, project) -> bool:
    try:
        parse(payload, project)
    except InvalidBatch:
        return False
    return True


good_samples = st.fixed_dictionaries(
    {"features": st.lists(finite32, min_size=3, max_size=3)},
    optional={
        "id": st.none() | ids | st.integers(-(2**63), 2**64 - 1),
        "meta": metas,
        "label": st.none() | st.sampled_from(["cat", "dog", "3", 3]),
        "annotator": optional_text,
        "kind": st.sampled_from(["sample", None]),
        "text": st.none(),
    },
)
good_labels = st.fixed_dictionaries(
    {"id": ids | st.integers(0, 10)},
    optional={
        "label": st.none() | st.sampled_from(["cat", 3]),
        "skipped": st.none() | st.booleans(),
        "annotator": optional_text,
    },
)
bad_values = [None, "", " ", "a\x00", "\u2003", 3, -1, 3.5, True, [], {}, "cat", "label", "sample"]
bad_values += [[1, 2, 3], [1, 2, 1e39], [1, 2, 3.4028235e38], {"x": 1}, {"a\x01": 1}, 2**70, "x" * 201]
mutations = st.dictionaries(field_names, st.sampled_from(bad_values), max_size=1)
near_valid_items = st.builds(
    lambda base, change: {**base, **change},
    good_samples | good_labels | good_labels.map(lambda label: {**label, "kind": "label"}),
    mutations,
)
near_valid = near_valid_items | st.lists(near_valid_items, max_size=3) | payloads


@given(near_valid)
@settings(  # no deadline: the first example builds each project's models and their JSON Schema
    max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
def test_the_openapi_bodies_accept_exactly_what_the_checks_accept(payload):
    for project in (SCHEMA, NAMED):
        assert schema_accepts(openapi.send_body(project), payload) == parser_accepts(
            parse_messages, payload, project
        ), payload
        assert schema_accepts(openapi.labels_body(project), payload) == parser_accepts(
            parse_labels, payload, project
        ), payload


# --- JSON bytes (checked as they are, in Rust) and the decoded body (in Python) give the same


def outcome(parse, payload, project):
    """What ``parse`` makes of ``payload``: ("ok", values without the ids it made) or ("refused", errors)."""
    try:
        out = parse(payload, project)
    except InvalidBatch as refused:
        return "refused", [(e.index, e.field, e.message) for e in refused.errors]
    values = [*out[0], *out[1]] if isinstance(out, tuple) else out
    return "ok", [dataclasses.replace(v, id="") if len(v.id) == 32 and v.id[12] == "7" else v for v in values]


@given(near_valid)
@settings(  # no deadline: the first example builds each project's models
    max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
def test_json_bytes_and_the_decoded_body_are_judged_alike(payload):
    try:
        raw = orjson.dumps(payload)
    except orjson.JSONEncodeError:  # an integer beyond 64 bits: no body a client can send from Python
        return
    for project in (SCHEMA, NAMED):
        for parse in (parse_messages, parse_labels, parse_samples):
            from_bytes, decoded = outcome(parse, raw, project), outcome(parse, payload, project)
            assert from_bytes[0] == decoded[0], (project, payload)
            if orjson.loads(raw) == payload:  # NaN is written null, a tuple a list
                assert from_bytes == decoded, (project, payload)


# --- a batch is judged as its items alone: the batch's conversion changes nothing


def _plain_item(i: int) -> dict:
    return {"id": f"s{i}", "features": [0.5 * i, -1, 3.25e3]}


def test_a_batch_gives_what_its_items_give_alone() -> None:
    items = [_plain_item(i) for i in range(50)] + [{"features": [1e38, 0, -1e-30], "id": "ü-" + "x" * 198}]
    batch = parse_samples(items, SCHEMA)
    assert batch == [parse_samples(item, SCHEMA)[0] for item in items]
    assert all(s.features.dtype == np.float32 and not s.features.flags.writeable for s in batch)
    assert parse_samples(orjson.dumps(items), SCHEMA) == batch
    values = [orjson.dumps(item) for item in items]
    assert decode_samples(values, SCHEMA) == [decode_sample(v, SCHEMA) for v in values] == batch


@pytest.mark.parametrize(
    "item",
    [
        {"id": "x", "features": [1.0, True, 2.0]},  # a boolean is not a number
        {"id": "x", "features": [1.0, "2", 2.0]},
        {"id": "x", "features": [1.0, None, 2.0]},
        {"id": "x", "features": [1.0, 2.0]},
        {"id": "x", "features": (1.0, 2.0, 3.0)},
        {"id": "x", "features": np.ones(3)},
        {"id": "x", "features": [1.0, 10**400, 2.0]},
        {"id": "x", "features": [1.0, 1e39, 2.0]},
        {"id": "x", "features": [1.0, math.nan, 2.0]},
        {"id": "x", "features": [1.0, math.inf, 2.0]},
        {"id": 7, "features": [1.0, 2.0, 3.0]},
        {"id": None, "features": [1.0, 2.0, 3.0]},
        {"features": [1.0, 2.0, 3.0]},
        {"id": " ", "features": [1.0, 2.0, 3.0]},
        {"id": "a\nb", "features": [1.0, 2.0, 3.0]},
        {"id": "x" * 201, "features": [1.0, 2.0, 3.0]},
        {"id": "x", "features": [1.0, 2.0, 3.0], "meta": {"a": 1}},
        {"id": "x", "features": [1.0, 2.0, 3.0], "label": "cat"},
        {"id": "x", "features": [1.0, 2.0, 3.0], "text": "hi"},
        {"id": "x", "featurs": [1.0, 2.0, 3.0]},
        {"id": "x", "features": [1.0, 2.0, 3.0], "kind": "label"},
        ["x"],
    ],
)
def test_an_unusual_item_in_a_batch_is_judged_as_alone(item) -> None:
    """Beside a plain sample, an item gets the value or the errors it gets alone (at its index)."""
    plain = parse_samples(_plain_item(1), SCHEMA)
    alone = outcome(parse_samples, [item], SCHEMA)
    batch = outcome(parse_samples, [_plain_item(1), item], SCHEMA)
    if alone[0] == "ok":
        assert batch == ("ok", plain + alone[1])
    else:
        assert batch == ("refused", [(1, field, message) for _, field, message in alone[1]])


def test_named_and_text_projects_take_batches_and_bytes_alike() -> None:
    named = [{"id": "x", "features": {"y": 2.0, "x": 1.0}}, {"id": "z", "features": [3.0, 4.0]}]
    assert [s.features.tolist() for s in parse_samples(named, NAMED)] == [[1.0, 2.0], [3.0, 4.0]]
    assert parse_samples(orjson.dumps(named), NAMED) == parse_samples(named, NAMED)
    texts = [{"id": "t", "text": "hello"}, {"id": "u", "text": "bye", "label": "ham"}]
    assert parse_samples(orjson.dumps(texts), TEXT) == parse_samples(texts, TEXT)
    assert [s.text for s in parse_samples(texts, TEXT)] == ["hello", "bye"]


def test_a_kind_of_sample_stays_on_the_plain_path_and_a_label_does_not() -> None:
    items = [{**_plain_item(i), "kind": "sample"} for i in range(3)] + [_plain_item(9)]
    samples, labels = parse_messages(items, SCHEMA)
    assert [s.id for s in samples] == ["s0", "s1", "s2", "s9"] and labels == []
    samples, labels = parse_messages([*items, {"kind": "label", "id": "s0", "label": "cat"}], SCHEMA)
    assert len(samples) == 4 and labels == [Label(id="s0", label="cat")]
