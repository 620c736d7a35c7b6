"""The service killed (SIGKILL) while it trains a new version: started again, it serves the last
version it finished at once, with the same predictions, and never the one it was working on."""

from __future__ import annotations

import httpx
from sklearn.datasets import load_digits

from alstream.service.demo import digits_demo
from alstream.store import Store

from .conftest import AUTH, wait_for
from .processes import Service

DIGITS_X, DIGITS_Y = load_digits(return_X_y=True)
PROBE = DIGITS_X[:20].tolist()
N_LABELS = 1000  # gradient boosting takes seconds on this many: the kill lands mid-training


def test_a_service_killed_mid_retrain_serves_its_last_finished_version(tmp_path):
    service = Service(tmp_path, model="gradient_boosting", retrain_after_labels=str(N_LABELS))
    http = httpx.Client(base_url=service.url, headers=AUTH, timeout=30)
    service.start()
    try:
        saved = [(1, "ok", "v00000001-full.joblib")]
        wait_for(lambda: _models(http) == saved, what="version 1 saved")
        before = http.post("/predict", json={"features": PROBE}).json()
        assert before["model_version"] == 1
        unlabeled = [s.id for s in digits_demo()[0] if s.label is None][:N_LABELS]
        labels = [
            {"id": i, "label": str(DIGITS_Y[int(i.split("-")[1])]), "annotator": "oracle"} for i in unlabeled
        ]
        assert http.post("/labels", json=labels).status_code == 202
        wait_for(lambda: http.get("/stats").json()["training_version"] == 2, what="version 2 in training")
        service.kill()

        store = Store(service.env["ALSTREAM_DATABASE_URL"])
        try:
            assert [m["version"] for m in store.models()] == [1]  # version 2 was never finished
        finally:
            store.close()
        assert [p.name for p in (tmp_path / "data" / "models").iterdir()] == ["v00000001-full.joblib"]

        # No retrain after this restart, so that what it serves is what it restored:
        service.env["ALSTREAM_RETRAIN_AFTER_LABELS"] = "100000"
        service.start()
        assert http.get("/health").json()["model_version"] == 1
        assert http.post("/predict", json={"features": PROBE}).json() == before
        wait_for(lambda: http.get("/stats").json()["labeled"] == 30 + N_LABELS, what="the pool and labels")
        stats = http.get("/stats").json()
        assert (stats["store"]["samples"], stats["model_version"], stats["cold_start"]) == (1437, 1, False)
        items = http.get("/queue", params={"n": 10, "annotator": "ann"}).json()
        assert len(items) == 10 and {i["model_version"] for i in items} == {1}  # the pool is scored by it
    finally:
        http.close()
        if service.process is not None and service.process.poll() is None:
            service.kill()


def _models(http: httpx.Client) -> list[tuple[int, str, str | None]]:
    return [(m["version"], m["status"], m["path"]) for m in http.get("/models").json()]
