"""Who may lease, release and label in whose name; caps on leases; limits on /queue and /labels."""

from __future__ import annotations

import sys
import threading

import pytest
from fastapi.testclient import TestClient
from sklearn.datasets import load_digits
from sqlalchemy import text

from alstream.service.app import create_app

from .conftest import AUTH, demo_service, service_settings, wait_for

X, Y = load_digits(return_X_y=True)


@pytest.fixture(scope="module")
def client(tmp_path_factory, request) -> TestClient:
    settings = service_settings(tmp_path_factory.mktemp("identity"), "embedded", request)
    with TestClient(create_app(settings, track=False), headers=AUTH) as client:
        wait_for(lambda: client.get("/stats").json()["store"]["samples"] == 1437, what="the demo pool")
        yield client


def make_token(
    client: TestClient, role: str, name: str, annotators: list[str] | None = None
) -> tuple[str, str]:
    """(the token, its key), made by the admin."""
    body = {"role": role, "name": name, **({"annotators": annotators} if annotators else {})}
    made = client.post("/tokens", json=body, headers=AUTH)
    assert made.status_code == 201, made.text
    return made.json()["token"], made.json()["key"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def stored_labels(client: TestClient, sample_id: str) -> list[tuple]:
    """(annotator, label, token_key) of every label event of a sample, oldest first."""
    query = text("SELECT annotator, label, token_key FROM labels WHERE sample_id = :id ORDER BY id")
    with client.app.state.runtime.store.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query, {"id": sample_id})]


def wait_for_labels(client: TestClient, sample_id: str, n: int) -> list[tuple]:
    wait_for(lambda: len(stored_labels(client, sample_id)) >= n, what=f"{n} labels of {sample_id}")
    return stored_labels(client, sample_id)


def test_an_annotator_token_leases_releases_and_labels_only_as_itself(client):
    token, key = make_token(client, "annotator", "ann")
    me = client.get("/me", headers=bearer(token)).json()
    assert me == {"key": key, "name": "ann", "role": "annotator", "annotators": ["ann"], "any_name": False}

    refused = client.get("/queue", params={"annotator": "bob"}, headers=bearer(token))
    assert refused.status_code == 403
    assert "acts only as 'ann', not as 'bob'" in refused.json()["detail"]
    items = client.get("/queue", params={"n": 3}, headers=bearer(token)).json()  # no name: the token's
    ids = [item["id"] for item in items]
    held = client.get("/queue", params={"n": 3, "annotator": "ann"}).json()  # the admin acts as ann
    assert {item["id"] for item in held} == set(ids)

    release = {"annotator": "bob", "ids": ids}
    assert client.post("/queue/release", json=release, headers=bearer(token)).status_code == 403
    assert client.post("/queue/release", json={"ids": ids[:1]}, headers=bearer(token)).json() == {
        "released": 1
    }

    sample_id, truth = ids[1], str(Y[int(ids[1].removeprefix("digit-"))])
    as_bob = client.post(
        "/labels", json={"id": sample_id, "label": truth, "annotator": "bob"}, headers=bearer(token)
    )
    assert as_bob.status_code == 403 and "'bob'" in as_bob.json()["detail"]
    mine = [{"id": sample_id, "label": truth}, {"id": ids[2], "skipped": True, "annotator": "ann"}]
    assert client.post("/labels", json=mine, headers=bearer(token)).status_code == 202
    assert wait_for_labels(client, sample_id, 1) == [("ann", truth, key)]
    assert wait_for_labels(client, ids[2], 1) == [("ann", None, key)]


def test_a_token_may_act_in_the_names_an_admin_allowed(client):
    token, _ = make_token(client, "annotator", "desk", ["ana", "bo"])
    assert client.get("/me", headers=bearer(token)).json()["annotators"] == ["desk", "ana", "bo"]
    for name in ("desk", "ana", "bo"):
        assert (
            client.get("/queue", params={"n": 1, "annotator": name}, headers=bearer(token)).status_code == 200
        )
    assert client.get("/queue", params={"n": 1, "annotator": "eve"}, headers=bearer(token)).status_code == 403
    listed = {t["key"]: t for t in client.get("/tokens").json()}
    assert listed[token.split("_")[1]]["annotators"] == ["desk", "ana", "bo"]


def test_a_producer_labels_through_send_only_in_its_own_name(client):
    token, key = make_token(client, "producer", "importer")
    labeled = {"id": "imported-1", "features": X[1].tolist(), "label": str(Y[1])}
    for item in (
        {**labeled, "annotator": "ann"},
        {"kind": "label", "id": "digit-5", "label": "5", "annotator": "x"},
    ):
        refused = client.post("/send", json=item, headers=bearer(token))
        assert refused.status_code == 403 and "acts only as 'importer'" in refused.json()["detail"]
    relabel = {"kind": "label", "id": "digit-6", "label": str(Y[6])}
    assert client.post("/send", json=[labeled, relabel], headers=bearer(token)).status_code == 202
    assert wait_for_labels(client, "imported-1", 1) == [("importer", str(Y[1]), key)]
    assert wait_for_labels(client, "digit-6", 1)[-1] == ("importer", str(Y[6]), key)


def test_admins_act_in_any_name_and_their_labels_carry_their_key(client):
    assert client.get("/me").json() == {
        "key": "configured-admin",
        "name": "admin",
        "role": "admin",
        "annotators": ["admin"],
        "any_name": True,
    }
    assert (
        client.post("/labels", json={"id": "digit-7", "label": str(Y[7]), "annotator": "zoe"}).status_code
        == 202
    )
    assert wait_for_labels(client, "digit-7", 1)[-1] == ("zoe", str(Y[7]), "configured-admin")


@pytest.mark.parametrize("route", ["/send", "/labels"])
def test_clients_cannot_say_which_token_sent_a_label(client, route):
    item = {"id": "digit-8", "label": "8", "token_key": "someone-else"}
    if route == "/send":
        item["kind"] = "label"
    refused = client.post(route, json=item)
    assert refused.status_code == 422
    assert [e["field"] for e in refused.json()["errors"]] == ["token_key"]


def test_labels_for_samples_the_store_does_not_hold_are_refused(client):
    before = client.get("/stats").json()["store"]["labels_total"]
    batch = [{"id": "digit-9", "label": str(Y[9])}] + [
        {"id": f"nowhere-{i}", "label": "1"} for i in range(9_999)
    ]
    refused = client.post("/labels", json=batch)
    assert refused.status_code == 404  # no such sample (a valid label, of nothing the service holds)
    assert "'nowhere-0'" in refused.json()["detail"] and "9989 more" in refused.json()["detail"]
    assert client.post("/labels", json=batch[:1]).status_code == 202
    wait_for(lambda: client.get("/stats").json()["store"]["labels_total"] == before + 1, what="the one label")


def test_stats_answer_while_labels_stream_in(client):
    """/stats reads the engine's snapshot while the engine thread takes in thousands of labels."""
    answers: list[int | str] = []
    done = threading.Event()

    def hammer() -> None:
        while not done.is_set():
            try:
                answers.append(client.get("/stats").status_code)
            except Exception as error:  # the test client raises what would have been a 500
                answers.append(repr(error))

    readers = [threading.Thread(target=hammer) for _ in range(4)]
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns every few bytecodes: a race shows at once
    for reader in readers:
        reader.start()
    try:
        before = client.get("/stats").json()["store"]["labels_total"]
        for batch in range(30):
            rows = range(batch * 50, batch * 50 + 50)
            sent = [
                {"id": f"race-{i}", "features": X[i % len(X)].tolist(), "label": str(Y[i % len(X)])}
                for i in rows
            ]
            assert client.post("/send", json=sent).status_code == 202
        wait_for(
            lambda: client.get("/stats").json()["store"]["labels_total"] >= before + 1500, what="the labels"
        )
    finally:
        done.set()
        for reader in readers:
            reader.join()
        sys.setswitchinterval(switch)
    assert len(answers) > 50 and set(answers) == {200}


def test_leases_are_capped_per_annotator_and_per_token(tmp_path, request):
    settings = service_settings(
        tmp_path, "embedded", request, max_leases_per_annotator=10, max_leases_per_token=25, queue_burst=100
    )
    with demo_service(settings) as client:  # its labels are in: none of the leased items gets labeled
        names = [f"fake-{i}" for i in range(64)]
        greedy, _ = make_token(client, "annotator", "greedy", names)
        served = [
            client.get("/queue", params={"n": 100, "annotator": name}, headers=bearer(greedy)).json()
            for name in names
        ]
        assert [len(items) for items in served] == [10, 10, 5] + [0] * 61
        again = client.get("/queue", params={"n": 100, "annotator": "fake-0"}, headers=bearer(greedy)).json()
        assert {i["id"] for i in again} == {i["id"] for i in served[0]}  # renewed, no more
        honest, _ = make_token(client, "annotator", "honest")
        assert len(client.get("/queue", params={"n": 7}, headers=bearer(honest)).json()) == 7
        assert client.get("/stats").json()["leased"] == 32


def test_queue_and_labels_are_rate_limited_per_token(tmp_path, request):
    limits = {"queue_rate_per_s": 0.5, "queue_burst": 2, "labels_rate_per_s": 0.5, "labels_burst": 2}
    settings = service_settings(tmp_path, "embedded", request, **limits)
    with TestClient(create_app(settings, track=False), headers=AUTH) as client:
        wait_for(lambda: client.get("/stats").json()["store"]["samples"] == 1437, what="the demo pool")
        first, _ = make_token(client, "annotator", "first")
        second, _ = make_token(client, "annotator", "second")
        for route, call in {
            "/queue": lambda token: client.get("/queue", params={"n": 1}, headers=bearer(token)),
            "/labels": lambda token: client.post(
                "/labels", json={"id": "digit-3", "label": "3"}, headers=bearer(token)
            ),
        }.items():
            answers = [call(first) for _ in range(3)]
            assert [a.status_code for a in answers[:2]] == [200 if route == "/queue" else 202] * 2
            refused = answers[2]
            assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1, route
            assert f"too many requests to {route}" in refused.json()["detail"]
            assert call(second).status_code < 400  # its own budget


def test_the_last_admin_token_is_not_revoked(tmp_path, request, capsys):
    settings = service_settings(tmp_path, "embedded", request, demo=False).model_copy(
        update={"admin_token": None}
    )
    with TestClient(create_app(settings, track=False)) as client:
        first = next(word for word in capsys.readouterr().out.split() if word.startswith("als_"))
        key = first.split("_")[1]
        refused = client.delete(f"/tokens/{key}", headers=bearer(first))
        assert refused.status_code == 409 and "last admin token" in refused.json()["detail"]
        second, second_key = (lambda made: (made["token"], made["key"]))(
            client.post("/tokens", json={"role": "admin", "name": "second"}, headers=bearer(first)).json()
        )
        assert client.delete(f"/tokens/{key}", headers=bearer(second)).status_code == 204
        assert client.delete(f"/tokens/{second_key}", headers=bearer(second)).status_code == 409
        assert client.get("/tokens", headers=bearer(second)).status_code == 200  # still in
    configured = service_settings(tmp_path, "embedded", request, demo=False)
    with TestClient(create_app(configured, track=False), headers=AUTH) as client:
        assert client.delete(f"/tokens/{second_key}").status_code == 204  # the configured one remains


def test_a_token_name_that_no_annotator_may_have_is_refused(client):
    """A token's name labels in its name: one with a control character would be dead-lettered later."""
    for name in ["ann\tdesk", "a" * 201, " "]:
        assert client.post("/tokens", json={"role": "annotator", "name": name}).status_code == 422, name
    gatekeeper = client.app.state.runtime.gatekeeper
    with pytest.raises(ValueError, match="without control characters"):
        gatekeeper.issue("annotator", "ok", ["bad\x00name"])
