import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from sklearn.datasets import load_digits

from alstream.stream import StreamUnavailable

from .conftest import demo_service, service_settings, wait_for

DIGITS_X, DIGITS_Y = load_digits(return_X_y=True)


def _truth(sample_id: str) -> str:
    return str(DIGITS_Y[int(sample_id.removeprefix("digit-"))])


def test_send_accepts_a_batch_and_the_samples_reach_the_pool(client):
    batch = [{"id": f"new-{i}", "features": DIGITS_X[i].tolist(), "meta": {"n": i}} for i in range(20)]
    response = client.post("/send", json=batch)
    assert response.status_code == 202, response.text
    assert response.json()["ids"] == [f"new-{i}" for i in range(20)]
    wait_for(lambda: client.get("/stats").json()["pool"] == 1437 - 30 + 20, what="the new samples")


def test_send_generates_ids_and_takes_labeled_samples(client):
    response = client.post("/send", json={"features": DIGITS_X[0].tolist(), "label": "0"})
    assert response.status_code == 202
    (new_id,) = response.json()["ids"]
    assert len(new_id) == 32
    wait_for(lambda: client.get("/stats").json()["labels_per_class"]["0"] == 4, what="the labeled sample")


def test_a_batch_resent_with_its_idempotency_key_is_stored_once(client):
    batch = [{"features": DIGITS_X[i].tolist()} for i in range(5)] + [
        {"id": "mine", "features": DIGITS_X[5].tolist()}
    ]
    first = client.post("/send", json=batch, headers={"Idempotency-Key": "batch-1"})
    again = client.post("/send", json=batch, headers={"Idempotency-Key": "batch-1"})  # no answer came: resend
    other = client.post("/send", json=batch[:5], headers={"Idempotency-Key": "batch-2"})
    assert first.status_code == again.status_code == other.status_code == 202, first.text
    ids = first.json()["ids"]
    assert again.json()["ids"] == ids and ids[-1] == "mine" and len(set(ids)) == 6
    assert not set(other.json()["ids"]) & set(ids)
    stored = lambda: client.get("/stats").json()["store"]["samples"]  # noqa: E731
    wait_for(lambda: stored() >= 1437 + 6 + 5, what="the sent samples")
    time.sleep(1.0)  # the resent copies, had they new ids, would land by now
    assert stored() == 1437 + 6 + 5


@pytest.mark.parametrize("key", ["", "   ", "x" * 201])
def test_a_bad_idempotency_key_is_refused_with_why(client, key):
    response = client.post("/send", json={"features": DIGITS_X[0].tolist()}, headers={"Idempotency-Key": key})
    assert response.status_code == 422
    assert "Idempotency-Key" in response.json()["detail"]


def test_invalid_items_are_named_and_nothing_is_accepted(client):
    good = {"id": "fine", "features": DIGITS_X[0].tolist()}
    bad = {"id": "short", "features": [1.0, 2.0]}
    unknown = {"id": "x", "features": DIGITS_X[1].tolist(), "label": "cat"}
    response = client.post("/send", json=[good, bad, unknown])
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert [(e["index"], e["id"], e["field"]) for e in errors] == [
        (1, "short", "features"),
        (2, "x", "label"),
    ]
    assert "64" in errors[0]["message"]
    time_to_ingest = client.get("/stats").json()["store"]["samples"]
    assert time_to_ingest == 1437  # the valid item was not accepted either


@pytest.mark.parametrize("body", [b"", b"not json", b'{"features": [NaN]}', b"[]", b"42"])
def test_malformed_bodies_get_a_4xx_with_a_message(client, body):
    response = client.post("/send", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"]


def test_a_stream_outage_answers_503_and_accepts_nothing(client, monkeypatch):
    runtime = client.app.state.runtime

    def down(*args, **kwargs):
        raise StreamUnavailable("broker down")

    monkeypatch.setattr(runtime.stream, "publish", down)
    response = client.post("/send", json={"features": DIGITS_X[0].tolist()})
    assert response.status_code == 503
    assert "unavailable" in response.json()["detail"]


def test_a_slow_stream_does_not_hold_up_other_requests(client, monkeypatch):
    runtime = client.app.state.runtime
    publish = runtime.stream.publish
    entered, release = threading.Event(), threading.Event()
    released: list[bool] = []

    def slow(*args, **kwargs):  # the first publish waits, like a broker slow to acknowledge
        if not entered.is_set():
            entered.set()
            released.append(release.wait(30))  # False: the other requests never got through
        return publish(*args, **kwargs)

    monkeypatch.setattr(runtime.stream, "publish", slow)
    with ThreadPoolExecutor(1) as pool:
        sending = pool.submit(client.post, "/send", json={"id": "slow", "features": DIGITS_X[0].tolist()})
        assert entered.wait(30)
        health = client.get("/health")
        labels = client.post("/labels", json={"id": "digit-0", "label": "0"})  # publishes meanwhile
        release.set()
        assert sending.result().status_code == 202
    assert health.status_code == 200 and labels.status_code == 202
    assert released == [True]  # both were answered while /send still waited for the stream


def test_queue_leases_items_to_one_annotator_at_a_time(client):
    first = client.get("/queue", params={"n": 10, "annotator": "ann"}).json()
    second = client.get("/queue", params={"n": 10, "annotator": "bob"}).json()
    assert len(first) == len(second) == 10
    assert not {item["id"] for item in first} & {item["id"] for item in second}
    again = client.get("/queue", params={"n": 10, "annotator": "ann"}).json()
    assert {item["id"] for item in again} == {item["id"] for item in first}  # her lease, not new items
    more = client.get("/queue", params={"n": 10, "annotator": "ann", "fresh": True}).json()
    assert len(more) == 10 and not {item["id"] for item in more} & {item["id"] for item in first + second}


def test_queue_items_say_why_they_were_chosen(client):
    items = client.get("/queue", params={"n": 20, "annotator": "ann"}).json()
    for item in items:
        assert item["reason"] in {"uncertainty", "random"}
        assert item["model_version"] >= 1
        assert set(item["probabilities"]) == {str(c) for c in range(10)}
        assert abs(sum(item["probabilities"].values()) - 1) < 1e-6
        assert len(item["features"]) == 64
        assert item["meta"]["source"] == "sklearn digits" and item["text"] is None
    uncertain = [item["score"] for item in items if item["reason"] == "uncertainty"]
    assert uncertain == sorted(uncertain, reverse=True)


def test_released_items_go_back_to_the_queue(client):
    mine = client.get("/queue", params={"n": 5, "annotator": "ann"}).json()
    ids = [item["id"] for item in mine]
    assert client.post("/queue/release", json={"annotator": "bob", "ids": ids}).json() == {"released": 0}
    assert not {i["id"] for i in client.get("/queue", params={"n": 5, "annotator": "bob"}).json()} & set(ids)
    assert client.get("/stats").json()["leased"] == 10
    client.post("/queue/release", json={"annotator": "ann", "ids": ids})
    assert client.get("/stats").json()["leased"] == 5  # free for anyone again
    assert client.post("/queue/release", json={"annotator": "", "ids": ids}).status_code == 422


def test_project_tells_the_page_what_to_draw(client):
    project = client.get("/project").json()
    assert project["classes"] == [str(d) for d in range(10)]
    assert project["keys"]["7"] == "7" and project["image_shape"] == [8, 8]
    assert project["data"] == "features" and len(project["feature_names"]) == 64


def test_the_queue_serves_the_most_uncertain_samples_first(client):
    engine = client.app.state.runtime.engine
    items = client.get("/queue", params={"n": 5, "annotator": "solo"}).json()
    top = max(item["score"] for item in items if item["reason"] == "uncertainty")
    pool = engine.pool
    others = [p for p in pool.held() if pool.ids[p] not in {i["id"] for i in items}]
    assert top >= pool.scores[others].max() - 1e-12


def test_labels_alias_skip_and_bad_labels(client):
    item = client.get("/queue", params={"n": 2, "annotator": "ann"}).json()
    ok = client.post(
        "/labels", json={"id": item[0]["id"], "label": _truth(item[0]["id"]), "annotator": "ann"}
    )
    skip = client.post("/labels", json={"id": item[1]["id"], "skipped": True, "annotator": "ann"})
    assert ok.status_code == skip.status_code == 202
    wait_for(lambda: client.get("/stats").json()["skipped"] == 1, what="the skip")
    bad = client.post("/labels", json={"id": item[0]["id"], "label": "eleven"})
    assert bad.status_code == 422 and "eleven" in bad.json()["errors"][0]["message"]


def test_predict_models_health_and_openapi(client):
    response = client.post("/predict", json={"features": DIGITS_X[:3].tolist()})
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] >= 1 and len(body["predicted"]) == 3
    assert client.post("/predict", json={"features": [[1.0, 2.0]]}).status_code == 422
    wait_for(lambda: len(client.get("/models").json()) >= 1, what="the recorded model version")
    assert client.get("/models").json()[0]["status"] == "ok"
    assert client.get("/health").json()["status"] == "ok"
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/send", "/labels", "/queue", "/stats", "/models", "/predict", "/health"} <= set(paths)


def test_labeling_with_an_oracle_makes_the_model_learn(client):
    """End to end: label what the queue serves; versions advance, accuracy rises."""
    stats = client.get("/stats").json()
    first = stats["learning_curve"][0]["holdout_accuracy"]
    start_version = stats["model_version"]
    for _ in range(12):
        items = client.get("/queue", params={"n": 10, "annotator": "oracle"}).json()
        labels = [{"id": i["id"], "label": _truth(i["id"]), "annotator": "oracle"} for i in items]
        target = client.get("/stats").json()["labeled"] + len(labels)
        assert client.post("/labels", json=labels).status_code == 202
        wait_for(lambda t=target: client.get("/stats").json()["labeled"] >= t, what="the labels")
    wait_for(lambda: client.get("/stats").json()["labeled"] == 150, what="all labels")
    wait_for(lambda: not client.app.state.runtime.engine._pending, what="a model with every label")
    wait_for(  # the snapshot that /stats reads comes once the pool is re-scored by that model
        lambda: client.get("/stats").json()["learning_curve"][-1]["n_labels"] == 150,
        what="the snapshot of the model with every label",
    )
    stats = client.get("/stats").json()
    assert stats["model_version"] > start_version + 5
    curve = stats["learning_curve"]
    assert curve[-1]["n_labels"] == 150
    assert curve[-1]["holdout_accuracy"] > first + 0.05, curve
    assert stats["stream_accuracy_samples"] > 0
    assert stats["label_to_model_s"]["p50"] < 5
    assert np.isfinite(stats["stream_accuracy"])


def test_the_seed_setting_fixes_the_queue_and_the_model(tmp_path, request):
    """``seed`` drives every random choice: the same seed serves the same first queue and the same
    model's predictions; another seed, another queue."""

    def first_queue(seed: int, home: str) -> tuple[list[str], list[list[float]]]:
        settings = service_settings(tmp_path / home, "embedded", request, seed=seed)
        with demo_service(settings) as client:
            # a model on all 30 demo labels (a first one may come from those followed so far)
            engine = client.app.state.runtime.engine
            on_all = lambda: bool(engine.curve) and engine.curve[-1]["n_labels"] == 30  # noqa: E731
            wait_for(lambda: on_all() and not engine.pending(), what="a model on every demo label")
            ids = [item["id"] for item in client.get("/queue", params={"n": 30}).json()]
            proba = client.post("/predict", json={"features": [[8.0] * 64]}).json()["probabilities"]
            return ids, proba

    first, again, other = first_queue(1, "a"), first_queue(1, "b"), first_queue(2, "c")
    assert first == again
    assert first[0] != other[0]


@pytest.mark.parametrize("model", ["logreg", "random_forest", "gradient_boosting"])
def test_predict_answers_with_every_model(tmp_path, request, model):
    """Whatever the classifier returns (a Fortran-ordered array from gradient boosting), /predict answers."""
    with demo_service(service_settings(tmp_path, "embedded", request, model=model)) as client:
        response = client.post("/predict", json={"features": DIGITS_X[:20].tolist()})
        assert response.status_code == 200, response.text
        proba = np.array(response.json()["probabilities"])
        assert proba.shape == (20, 10) and np.allclose(proba.sum(axis=1), 1)
