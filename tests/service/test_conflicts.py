"""Two annotators label the same item (the first one's lease ran out in between): both labels are
kept with their annotators, /stats counts the conflict, and the latest label is the one trained on."""

from __future__ import annotations

from .conftest import demo_service, service_settings, wait_for


def test_both_labels_are_kept_and_the_latest_wins_for_training(request, tmp_path):
    settings = service_settings(tmp_path, "embedded", request, lease_s=0.2, random_share=0.0)
    with demo_service(settings) as client:
        engine, store = client.app.state.runtime.engine, client.app.state.runtime.store
        before = client.get("/stats").json()

        def lease(annotator: str) -> str:
            params = {"n": 1, "annotator": annotator, "fresh": True}
            return client.get("/queue", params=params).json()[0]["id"]

        def label(annotator: str, label: str) -> None:
            body = {"id": item, "label": label, "annotator": annotator}
            assert client.post("/labels", json=body).status_code == 202

        item = lease("ann")  # the most uncertain item: bob gets it too once ann's lease ends
        wait_for(lambda: lease("bob") == item, what="ann's lease to run out")
        label("ann", "4")
        wait_for(lambda: engine.labels.get(item) == "4", what="ann's label")
        label("bob", "7")
        wait_for(
            lambda: client.get("/stats").json()["conflicts"] == before["conflicts"] + 1, what="the conflict"
        )

        events = [
            (label, annotator) for _, sid, label, annotator, _, _ in store.labels_after(0) if sid == item
        ]
        assert events == [("4", "ann"), ("7", "bob")]  # both kept, with who gave them
        assert engine.labels[item] == "7"  # the training set takes the latest label
        stats = client.get("/stats").json()
        assert stats["labeled"] == before["labeled"] + 1
        assert stats["store"]["labels_total"] == before["store"]["labels_total"] + 2
