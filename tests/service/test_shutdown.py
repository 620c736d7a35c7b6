"""A clean shutdown (SIGTERM) of ``alstream serve`` stops everything it started."""

from __future__ import annotations

import stat

import httpx
import psutil

from .conftest import wait_for
from .processes import Service

PREFECT_SERVER = "prefect.server.api.server:create_app"


def test_sigterm_stops_the_service_and_prefects_temporary_server(open_umask, tmp_path):
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db", "PREFECT_HOME": f"{tmp_path}/prefect"}
    service = Service(tmp_path, mlflow=True, env=env)
    service.env.pop("PREFECT_API_URL", None)  # Prefect's ephemeral mode: a temporary server of its own
    started: list[psutil.Process] = []
    try:
        service.start()  # ready: the first model, a full retrain, ran as a Prefect flow
        started = psutil.Process(service.process.pid).children(recursive=True)
        servers = [p for p in started if PREFECT_SERVER in " ".join(p.cmdline())]
        assert len(servers) == 1, [p.cmdline() for p in started]
        command = servers[0].cmdline()
        api = f"http://127.0.0.1:{command[command.index('--port') + 1]}/api"

        def completed() -> bool:  # the version serves from inside the flow: it ends a moment later
            runs = httpx.post(f"{api}/flow_runs/filter", json={}, timeout=30).json()
            return "COMPLETED" in [run["state_type"] for run in runs]

        wait_for(completed, what="the retrain's flow run completed")
        prefect_home = stat.S_IMODE((tmp_path / "prefect").stat().st_mode)  # made under the service's umask
        assert oct(prefect_home) == "0o700"
        service.process.terminate()
        service.process.wait(timeout=60)
        _, alive = psutil.wait_procs(started, timeout=30)
        assert not alive, [p.cmdline() for p in alive]  # nothing left behind, reparented to PID 1
    finally:
        if service.process and service.process.poll() is None:
            service.kill()
        for process in started:
            if process.is_running():
                process.kill()
