"""Bad input through the API: each gets a 4xx naming the problem, and no valid data is lost.

The rules under test (README, "Message rules"): a batch with any bad item is refused as a whole
(422 listing each bad item), so none of its valid items is stored; a sample id repeated in a
batch stores the first (as a resend does); several labels for one id in a batch are all kept, in
order; a label for a sample not seen yet is kept until the sample arrives, which then counts as labeled.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alstream.service.app import create_app

from ..conftest import wait_while_progressing
from .conftest import AUTH, service_settings, wait_for

MAX_BATCH = 50
N_FEATURES = 64
CLASSES = [str(d) for d in range(10)]
EXAMPLES = settings(max_examples=100, deadline=None, database=None, suppress_health_check=list(HealthCheck))
_ids = itertools.count()


def new_id(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[TestClient]:
    """The digits demo with batches of at most 50, /send and /labels not rate limited; pool loaded."""
    tmp_path = tmp_path_factory.mktemp("bad-input")
    settings_ = service_settings(
        tmp_path,
        "embedded",
        request,
        project={"max_batch": MAX_BATCH},
        send_rate_per_s=1e6,
        send_burst=10**6,
        labels_rate_per_s=1e6,
        labels_burst=10**6,
    )
    with TestClient(create_app(settings_, track=False), headers=AUTH) as client:
        wait_for(lambda: client.get("/stats").json()["store"]["samples"] == 1437, what="the demo pool")
        yield client


def post(api: TestClient, path: str, body: bytes) -> Any:
    return api.post(path, content=body, headers={"content-type": "application/json"})


def sample(sample_id: str, value: float = 1.0) -> dict[str, Any]:
    return {"id": sample_id, "features": [value] * N_FEATURES}


def stored_samples(api: TestClient, ids: list[str]) -> list[str]:
    """Which of ``ids`` the store holds, once every sample sent so far is in (a marker goes last)."""
    marker = new_id("marker")
    assert api.post("/send", json=sample(marker)).status_code == 202
    store = api.app.state.runtime.store
    wait_for(lambda: store.get_samples([marker]), what="the marker sample")
    return [s["id"] for s in store.get_samples(ids)]


def caught_up(api: TestClient) -> dict:
    """/stats once the engine has followed every sample and label the store holds (markers sent by
    earlier checks included), so that a difference of two snapshots is this test's doing."""
    store, tally = api.app.state.runtime.store, api.app.state.runtime.engine.tally
    wait_while_progressing(
        lambda: tally.counts() == store.counts(), tally.counts, what="the engine catching up"
    )
    return api.get("/stats").json()


def stored_labels(api: TestClient, ids: list[str]) -> dict[str, list[tuple]]:
    """The label events the store holds for ``ids``, in order, once every label sent so far is in
    (a marker goes last, through /send: /labels takes labels of stored samples only)."""
    marker = new_id("marker")
    assert (
        api.post("/send", json={"kind": "label", "id": marker, "label": "0"}).status_code == 202
    )  # no sample
    store = api.app.state.runtime.store
    wait_for(lambda: marker in store.current_labels(), what="the marker label")
    events: dict[str, list[tuple]] = {}
    for _, sample_id, label, annotator, skipped, _ in store.labels_after(0):
        if sample_id in ids:
            events.setdefault(sample_id, []).append((label, annotator, skipped))
    return events


# ------------------------------------------------------------------------- bad items

numbers = st.floats(-1e6, 1e6, allow_nan=False)
not_numbers = st.one_of(
    st.text(max_size=5),
    st.booleans(),
    st.none(),
    st.lists(numbers, max_size=2),
    st.dictionaries(st.text(max_size=3), numbers, max_size=2),
)
not_objects = st.one_of(numbers, st.text(max_size=5), st.booleans(), st.lists(numbers, max_size=3))
fractions = numbers.filter(lambda x: not x.is_integer())
unknown_classes = st.text(min_size=1, max_size=10).filter(lambda c: c not in CLASSES)


def bad_sample(**fields: Any) -> dict[str, Any]:
    return {"id": new_id("bad"), "features": [1.0] * N_FEATURES, **fields}


def bad_label(**fields: Any) -> dict[str, Any]:
    return {"id": new_id("bad"), "label": "3", **fields}


def features_with(at: int, value: Any) -> list:
    return [value if i == at else 1.0 for i in range(N_FEATURES)]


positions = st.integers(0, N_FEATURES - 1)
too_large = st.floats(1e39, 1e300) | st.floats(-1e300, -1e39)  # finite in JSON, beyond float32
bad_ids = st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: x != int(x)) | st.sampled_from(
    [True, [1], {"a": 1}, "", " ", "x" * 201]
)

# (a bad item, the field its error names, words its message says)
BAD_SAMPLES = st.one_of(
    st.integers(0, 200)
    .filter(lambda n: n != N_FEATURES)
    .map(lambda n: (bad_sample(features=[1.0] * n), "features", f"expected {N_FEATURES} numbers, got {n}")),
    st.tuples(positions, not_numbers).map(
        lambda t: (bad_sample(features=features_with(*t)), "features", "not numbers")
    ),
    st.tuples(positions, too_large).map(
        lambda t: (bad_sample(features=features_with(*t)), "features", "float32")
    ),
    st.just(({"features": {"pixel": 1.0}}, "features", "wrong feature names")),
    (st.text(max_size=5) | numbers | st.booleans()).map(
        lambda v: (bad_sample(features=v), "features", "expected a list of numbers")
    ),
    unknown_classes.map(lambda c: (bad_sample(label=c), "label", "unknown class")),
    bad_ids.map(lambda v: (bad_sample(id=v), "id", "")),
    not_objects.map(lambda v: (bad_sample(meta=v), "meta", "expected a JSON object")),
    st.just((bad_sample(featurs=1), "featurs", "did you mean 'features'")),
    st.just(({"text": "a text"}, "text", "this project's samples carry features, not text")),
)
BAD_LABELS = st.one_of(
    unknown_classes.map(lambda c: (bad_label(label=c), "label", "unknown class")),
    (fractions | st.booleans() | st.lists(numbers, max_size=2)).map(  # 3.0 is the class "3", as JSON says
        lambda v: (bad_label(label=v), "label", "expected a class name")
    ),
    st.just(({"id": "no-label"}, "label", 'missing: give a label, or "skipped": true')),
    st.just((bad_label(skipped=True), "label", "a skipped item carries no label")),
    (numbers | st.text(max_size=3)).map(
        lambda v: (bad_label(skipped=v), "skipped", "expected true or false")
    ),
    st.just(({"label": "3"}, "id", "missing")),
    bad_ids.map(lambda v: (bad_label(id=v), "id", "")),
    st.sampled_from(["", " ", "a" * 201, 7]).map(lambda v: (bad_label(annotator=v), "annotator", "")),
    st.just((bad_label(kind="label"), "kind", "unknown field")),
)


def assert_names_only(response: Any, index: int, field: str, words: str) -> None:
    """A 422 whose errors are all about item ``index``, one of them about ``field`` saying ``words``."""
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert {e["index"] for e in errors} == {index}
    assert any(e["field"] == field and words in e["message"] for e in errors), errors
    assert f"item {index}" in response.json()["detail"]


def test_a_bad_sample_is_named_and_its_batch_is_refused_whole(api):
    sent: list[str] = []

    @EXAMPLES
    @given(bad=BAD_SAMPLES, n_valid=st.integers(0, 5), data=st.data())
    def refused(bad: tuple[Any, str, str], n_valid: int, data: st.DataObject) -> None:
        item, field, words = bad
        batch = [sample(new_id("valid"), float(i)) for i in range(n_valid)]
        index = data.draw(st.integers(0, n_valid))
        batch.insert(index, item)
        assert_names_only(post(api, "/send", orjson.dumps(batch)), index, field, words)
        sent.extend(s["id"] for s in batch if s is not item)

    refused()
    assert stored_samples(api, sent) == []


def test_a_bad_label_is_named_and_its_batch_is_refused_whole(api):
    sent: list[str] = []

    @EXAMPLES
    @given(bad=BAD_LABELS, n_valid=st.integers(0, 5), data=st.data())
    def refused(bad: tuple[Any, str, str], n_valid: int, data: st.DataObject) -> None:
        item, field, words = bad
        batch = [{"id": new_id("valid"), "label": "3", "annotator": "hyp"} for _ in range(n_valid)]
        index = data.draw(st.integers(0, n_valid))
        batch.insert(index, item)
        assert_names_only(post(api, "/labels", orjson.dumps(batch)), index, field, words)
        sent.extend(label["id"] for label in batch if label is not item)

    refused()
    assert stored_labels(api, sent) == {}


@pytest.mark.parametrize("path", ["/send", "/labels"])
def test_a_bad_item_that_is_not_an_object_is_named(api, path):
    body = [sample("fine") if path == "/send" else {"id": "fine", "label": "1"}, 7]
    assert_names_only(post(api, path, orjson.dumps(body)), 1, "", "expected a JSON object, got a number")


# ----------------------------------------------------------------- bodies JSON refuses

NON_FINITE = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "2e308"])
NOT_UTF8 = st.sampled_from(
    [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80", b"\xf8\x88\x80\x80\x80", b"\xe2\x82"]
)


@EXAMPLES
@given(token=NON_FINITE, path=st.sampled_from(["/send", "/labels"]), n=st.integers(1, 5), data=st.data())
def test_nan_and_infinities_are_refused_by_name(api, token, path, n, data):
    """Python's json.dumps writes NaN and Infinity unless told not to; they are not JSON."""
    ids = [new_id("nan") for _ in range(n)]
    items = [sample(i) for i in ids] if path == "/send" else [{"id": i, "label": "2"} for i in ids]
    at = data.draw(st.integers(0, n - 1))
    if path == "/send":
        items[at]["features"][data.draw(st.integers(0, N_FEATURES - 1))] = 12345.5
    else:
        items[at]["annotator"] = 12345.5
    body = orjson.dumps(items).replace(b"12345.5", token.encode())
    response = post(api, path, body)
    assert response.status_code == 422
    named = (
        "NaN and Infinity are not JSON numbers" if token in ("NaN", "Infinity", "-Infinity") else "infinity"
    )
    assert named in response.json()["detail"]


@EXAMPLES
@given(bad=NOT_UTF8, path=st.sampled_from(["/send", "/labels"]), where=st.sampled_from(["id", "meta"]))
def test_bodies_that_are_not_utf8_are_refused_by_name(api, bad, path, where):
    item = sample("utf8-victim") if path == "/send" else {"id": "utf8-victim", "label": "4"}
    if where == "meta" and path == "/send":
        item["meta"] = {"note": "VICTIM"}
    else:
        item["id"] = "VICTIM"
    body = orjson.dumps([item]).replace(b"VICTIM", b"ok" + bad)
    response = post(api, path, body)
    assert response.status_code == 422
    assert f"not UTF-8: byte {bad[0]:#04x} at offset {body.index(bad)}" in response.json()["detail"]


# ------------------------------------------------------------------------ batch sizes


@pytest.mark.parametrize("path", ["/send", "/labels"])
def test_batches_are_one_to_max_batch_items(api, path):
    def batch(n: int) -> list[dict]:
        ids = [new_id("size") for _ in range(n)]
        return [sample(i) for i in ids] if path == "/send" else [{"id": i, "label": "5"} for i in ids]

    too_many = api.post(path, json=batch(MAX_BATCH + 1))
    assert too_many.status_code == 422
    assert too_many.json()["errors"] == [
        {"index": -1, "id": None, "field": "", "message": f"batch has 51 items, at most {MAX_BATCH} allowed"}
    ]
    empty = api.post(path, json=[])
    assert empty.status_code == 422 and empty.json()["errors"][0]["message"] == "empty batch"
    full = batch(MAX_BATCH)
    ids = [item["id"] for item in full]
    if path == "/labels":  # labels of stored samples only
        assert api.post("/send", json=[sample(i) for i in ids]).status_code == 202
        assert stored_samples(api, ids) == ids
    assert api.post(path, json=full).status_code == 202
    if path == "/send":
        assert stored_samples(api, ids) == ids
    else:
        assert set(stored_labels(api, ids)) == set(ids)


# --------------------------------------------------------------------- ids and labels


def test_a_sample_id_repeated_in_a_batch_stores_the_first(api):
    first, other = new_id("dup"), new_id("dup")
    batch = [sample(first), sample(other), sample(first, 2.0)]
    assert api.post("/send", json=batch).status_code == 202
    assert stored_samples(api, [first, other]) == [first, other]
    [stored] = api.app.state.runtime.store.get_samples([first])
    assert stored["features"] == [1.0] * N_FEATURES  # the first one, as for a resend


def test_several_labels_for_one_sample_in_a_batch_are_all_kept_in_order(api):
    target = new_id("twice")
    assert api.post("/send", json=sample(target)).status_code == 202
    assert stored_samples(api, [target]) == [target]
    batch = [
        {"id": target, "label": "1", "annotator": "ana"},
        {"id": target, "label": "7", "annotator": "bob"},
    ]
    assert api.post("/labels", json=batch).status_code == 202
    assert stored_labels(api, [target]) == {target: [("1", "ana", False), ("7", "bob", False)]}
    assert api.app.state.runtime.store.current_labels()[target] == ("7", "bob", False)  # the latest wins


def test_a_label_before_its_sample_is_kept_and_labels_the_sample_when_it_arrives(api):
    early = new_id("early")
    before = caught_up(api)
    label = {"id": early, "label": "6", "annotator": "ana"}
    refused = api.post("/labels", json=label)  # people label what they were shown: stored samples
    assert refused.status_code == 404 and early in refused.json()["detail"]
    assert (
        api.post("/send", json={"kind": "label", **label}).status_code == 202
    )  # a producer's may come first
    assert stored_labels(api, [early]) == {early: [("6", "ana", False)]}
    stats = api.get("/stats").json()
    assert stats["labels_per_class"]["6"] == before["labels_per_class"]["6"]  # no sample yet: not counted

    assert api.post("/send", json=sample(early)).status_code == 202
    wait_for(lambda: api.get("/stats").json()["labeled"] == before["labeled"] + 1, what="the sample labeled")
    after = caught_up(api)
    assert after["store"]["samples"] == before["store"]["samples"] + 1
    assert after["pool"] == before["pool"]  # labeled on arrival: straight to the training set
    assert after["labels_per_class"]["6"] == before["labels_per_class"]["6"] + 1


def test_a_label_may_travel_with_its_sample_in_one_batch(api):
    new = new_id("pair")
    before = caught_up(api)
    batch = [sample(new), {"kind": "label", "id": new, "label": "8", "annotator": "ana"}]
    assert api.post("/send", json=batch).json() == {"ids": [new, new], "samples": 1, "labels": 1}
    wait_for(
        lambda: api.get("/stats").json()["store"]["samples"] == before["store"]["samples"] + 1,
        what="the sample",
    )
    assert stored_labels(api, [new]) == {new: [("8", "ana", False)]}
    wait_for(lambda: api.get("/stats").json()["labeled"] == before["labeled"] + 1, what="the sample labeled")


def test_predict_refuses_ragged_rows(api):
    response = api.post("/predict", json={"features": [[], [0.0] * N_FEATURES]})
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"index": 0, "id": None, "field": "features", "message": f"expected {N_FEATURES} numbers, got 0"}
    ]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (1e308, "out of float32 range"),
        (1e39, "out of float32 range"),
        ("1", "is a string"),
        (True, "is a boolean"),
        (None, "is null"),
    ],
)
def test_predict_checks_features_as_send_does(api, value, words):
    """One validation for every route that takes features: what /send refuses, /predict refuses, by row."""
    row = [0.0] * N_FEATURES
    response = api.post("/predict", json={"features": [row, [*row[:-1], value]]})
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["index"] == 1 and error["field"] == "features" and words in error["message"], error
    send = api.post("/send", json={"features": [*row[:-1], value]})
    assert send.status_code == 422 and words in send.json()["errors"][0]["message"]


def test_predict_scores_features_at_the_edge_of_float32(api):
    """Standardizing float32 features near float32's limit overflowed (a 500): it runs in float64."""
    row = [3.4e38 if i % 2 else -3.4e38 for i in range(N_FEATURES)]
    response = api.post("/predict", json={"features": [row]})
    assert response.status_code == 200, response.text
    assert abs(sum(response.json()["probabilities"][0]) - 1) < 1e-6


def test_predict_takes_at_most_max_batch_rows(api):
    limit = api.app.state.runtime.settings.project.max_batch
    response = api.post("/predict", json={"features": [[0.0] * N_FEATURES] * (limit + 1)})
    assert response.status_code == 422
    assert f"{limit + 1} rows, at most {limit} allowed" in response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/predict", b'{"features": [NaN]}'),
        ("/predict", b"-9223372036854775809"),  # beyond 64 bits
        ("/queue/release", b'{"annotator": "ana", "ids": [Infinity]}'),
        ("/tokens", b'{"role": -1e400, "name": 18446744073709551616}'),
    ],
)
def test_values_json_answers_cannot_carry_get_a_422_not_a_500(api, path, body):
    """FastAPI's own checks echo the bad input; NaN, infinities and huge integers must not break it."""
    response = post(api, path, body)
    assert response.status_code == 422
    assert response.status_code == 422
    assert response.json()["errors"][0]["message"]


def test_a_message_over_max_message_bytes_is_refused_not_dead_lettered_later(tmp_path, request):
    """What /send accepts, the consumer stores: a sample whose message would be over
    ``max_message_bytes`` gets a 422 naming it, and nothing of its batch is published."""
    settings_ = service_settings(tmp_path, "embedded", request, max_message_bytes=4096, demo=False)
    with TestClient(create_app(settings_, track=False), headers=AUTH) as client:
        small, big = sample(new_id("small")), {**sample(new_id("big")), "meta": {"note": "x" * 5000}}
        response = client.post("/send", json=[small, big])
        assert response.status_code == 422, response.text
        [error] = response.json()["errors"]
        assert error["index"] == 1 and error["id"] == big["id"]
        assert "over max_message_bytes (4096)" in error["message"]
        assert client.post("/send", json=small).status_code == 202
        store = client.app.state.runtime.store
        wait_for(lambda: store.counts()["samples"] == 1, what="the small sample")
        assert [s["id"] for s in store.get_samples([small["id"], big["id"]])] == [small["id"]]


def test_a_label_over_max_message_bytes_refuses_its_samples_too(tmp_path, request):
    """Samples and labels of one /send are checked before either is published: no 422 for a batch
    whose samples were stored anyway."""
    settings_ = service_settings(
        tmp_path, "embedded", request, max_message_bytes=1024, demo=False, project={"max_id_chars": 1000}
    )
    with TestClient(create_app(settings_, track=False), headers=AUTH) as client:
        batch = [sample("fits"), {"kind": "label", "id": "x" * 1000, "label": "3"}]
        response = client.post("/send", json=batch)
        assert response.status_code == 422 and "over max_message_bytes (1024)" in response.text
        assert client.post("/send", json=sample("marker")).status_code == 202
        store = client.app.state.runtime.store
        wait_for(lambda: store.counts()["samples"] == 1, what="the marker")
        assert [s["id"] for s in store.get_samples(["fits", "marker"])] == ["marker"]
