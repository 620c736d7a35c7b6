"""The service end to end on PostgreSQL: the digits demo, samples sent and labels given through the API,
the model learning from them, and all of it still there when the service starts again."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sklearn.datasets import load_digits

from alstream.service.app import create_app
from alstream.store import Store

from .conftest import AUTH, demo_service, service_settings, wait_for

DIGITS_X, DIGITS_Y = load_digits(return_X_y=True)
POOL = 1437  # the demo's pool; the rest of the digits are its holdout
SENT = 50


def test_the_demo_service_runs_on_postgresql(tmp_path, request, postgres_url: str):
    settings = service_settings(tmp_path, "embedded", request, database_url=postgres_url)
    with demo_service(settings) as client:
        first = client.get("/health").json()["model_version"]
        batch = [{"id": f"pg-{i}", "features": DIGITS_X[i].tolist()} for i in range(SENT)]
        assert client.post("/send", json=batch).status_code == 202
        wait_for(
            lambda: client.get("/stats").json()["store"]["samples"] == POOL + SENT, what="the sent samples"
        )

        labeled = client.get("/stats").json()["labeled"]
        given: dict[str, str] = {}
        for _ in range(3):
            items = client.get("/queue", params={"n": 10, "annotator": "ana"}).json()
            labels = [{"id": i["id"], "label": truth(i["id"]), "annotator": "ana"} for i in items]
            assert client.post("/labels", json=labels).status_code == 202
            given |= {label["id"]: label["label"] for label in labels}
        wait_for(lambda: client.get("/stats").json()["labeled"] == labeled + len(given), what="the labels")
        wait_for(lambda: client.get("/health").json()["model_version"] > first, what="a newer model")
        assert client.get("/models").json()[-1]["status"] == "ok"

    with Store(postgres_url) as store:  # the labels are PostgreSQL rows, with their annotator
        current = {sid: (label, annotator) for sid, (label, annotator, _) in store.current_labels().items()}
        assert {sid: current[sid] for sid in given} == {sid: (label, "ana") for sid, label in given.items()}
        sent = [item["id"] for item in batch]
        assert [sample["id"] for sample in store.get_samples(sent)] == sent

    with TestClient(create_app(settings, track=False), headers=AUTH) as client:  # a restart
        wait_for(
            lambda: client.get("/stats").json()["store"]["samples"] == POOL + SENT,
            what="the samples from PostgreSQL",
        )
        expected = labeled + len(given)  # the labels are read right after the samples
        wait_for(lambda: client.get("/stats").json()["labeled"] == expected, what="the labels from PG")
        wait_for(lambda: client.get("/health").json()["model_version"] is not None, what="a model")


def truth(sample_id: str) -> str:
    """The true class of a demo digit ("digit-<row>") or of a sent one ("pg-<row>")."""
    return str(DIGITS_Y[int(sample_id.rsplit("-", 1)[1])])
