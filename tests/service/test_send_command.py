"""`alstream send` end to end: a CSV file into a running service, with a producer token."""

from __future__ import annotations

import time

import httpx
import pandas as pd
from sklearn.datasets import load_digits
from typer.testing import CliRunner

from alstream.cli import app
from alstream.messages import digits_feature_names
from alstream.store import Store

from .conftest import AUTH, wait_for
from .processes import Service


def test_a_csv_file_reaches_the_store_through_send(tmp_path):
    service = Service(tmp_path, send_rate_per_s="2", send_burst="1")  # a slow token: 429s to wait out
    service.start()
    try:
        made = httpx.post(f"{service.url}/tokens", json={"role": "producer", "name": "csv"}, headers=AUTH)
        producer = made.json()["token"]
        X, y = load_digits(return_X_y=True)
        frame = pd.DataFrame(X[:300], columns=digits_feature_names())
        frame.insert(0, "id", [f"csv-{i}" for i in range(300)])
        frame["label"] = [str(v) if i < 30 else None for i, v in enumerate(y[:300])]
        path = tmp_path / "digits.csv"
        frame.to_csv(path, index=False)

        refused = CliRunner().invoke(app, ["send", str(path), "--url", service.url])
        assert refused.exit_code == 1 and "401" in refused.output  # no token, nothing sent
        result = CliRunner().invoke(
            app, ["send", str(path), "--url", service.url, "--token", producer, "--batch-size", "100"]
        )
        assert result.exit_code == 0, result.output
        assert "sent 300 messages" in result.output

        store = Store(service.env["ALSTREAM_DATABASE_URL"])
        try:
            wait_for(
                lambda: len(store.get_samples([f"csv-{i}" for i in range(300)])) == 300, what="the samples"
            )
            labels = store.current_labels()
            assert {f"csv-{i}": labels[f"csv-{i}"][0] for i in range(30)} == {
                f"csv-{i}": str(y[i]) for i in range(30)
            }
            assert "csv-30" not in labels
        finally:
            store.close()

        # A file without ids, sent twice in other batches (as after a crash mid-way): each row is stored once.
        frame.drop(columns=["id", "label"]).iloc[:120].to_csv(no_ids := tmp_path / "no-ids.csv", index=False)
        stored = lambda: httpx.get(f"{service.url}/stats", headers=AUTH).json()["store"]["samples"]  # noqa: E731
        before = stored()  # the demo's digits and the first file
        for batch_size in ("500", "7"):
            command = [
                "send",
                str(no_ids),
                "--url",
                service.url,
                "--token",
                producer,
                "--batch-size",
                batch_size,
            ]
            result = CliRunner().invoke(app, command)
            assert result.exit_code == 0, result.output
        wait_for(lambda: stored() >= before + 120, what="the file without ids")
        time.sleep(1.0)  # copies sent the second time would land by now
        assert stored() == before + 120
    finally:
        service.process.terminate()
        service.process.wait(timeout=30)
