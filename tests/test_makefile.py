"""The seed's Makefile targets, run the way a user runs them: against `make prefect-server`."""

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def _wait_until_healthy(url: str, server: subprocess.Popen, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, "make prefect-server exited"
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"no Prefect server at {url} after {timeout:.0f} s")


def test_run_al_margin_sends_its_flow_to_make_prefect_server(tmp_path, free_port):
    api = f"http://127.0.0.1:{free_port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
    }
    make = ["make", "--no-print-directory", f"PREFECT_PORT={free_port}"]
    with (tmp_path / "server.log").open("w") as log:
        server = subprocess.Popen(
            [*make, "prefect-server"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_healthy(api, server)
        options = (
            "--dataset iris --iterations 2 --batch-size 5 --seeds 1 --name make-check "
            + f"--output-dir {tmp_path}"
        )
        run = subprocess.run(
            [*make, "run-al-margin", f"EXPERIMENT={options}"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        output = run.stdout + run.stderr
        assert run.returncode == 0, output
        assert "temporary server" not in output  # it used the running server, not an ephemeral one
        assert (tmp_path / "reports" / "make-check.md").exists()
        assert {p.stem for p in (tmp_path / "metrics").glob("*.csv")} == {
            "make-check-margin",
            "make-check-random",
        }

        flows = httpx.post(f"{api}/flows/filter", json={}).json()
        runs = httpx.post(f"{api}/flow_runs/filter", json={}).json()
        assert [f["name"] for f in flows] == ["active-learning"]
        assert [r["state_type"] for r in runs] == ["COMPLETED"]
        tasks = httpx.post(f"{api}/task_runs/filter", json={}).json()
        assert sum(t["name"].startswith("run ") for t in tasks) == 2  # a task a run: 2 strategies x 1 seed
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
