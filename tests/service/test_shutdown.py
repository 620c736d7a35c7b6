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
    service = Service(tmp_path, mlflow=True, orchestrator="prefect", env=env)
    service.env.pop("PREFECT_API_URL", None)  # Prefect's ephemeral mode: a temporary server of its own
    started: list[psutil.Process] = []
    try:
        service.start()  # ready: the first model; Prefect's temporary server starts after it, to record it

        def servers() -> list[psutil.Process]:
            children = psutil.Process(service.process.pid).children(recursive=True)
            return [p for p in children if PREFECT_SERVER in " ".join(_command(p))]

        wait_for(lambda: servers(), 120, "Prefect's temporary server")
        started = psutil.Process(service.process.pid).children(recursive=True)
        servers_ = [p for p in started if PREFECT_SERVER in " ".join(_command(p))]
        assert len(servers_) == 1, [_command(p) for p in started]
        command = servers_[0].cmdline()
        api = f"http://127.0.0.1:{command[command.index('--port') + 1]}/api"

        def completed() -> bool:  # the retrain's run is recorded once the server answers
            try:
                runs = httpx.post(f"{api}/flow_runs/filter", json={}, timeout=30).json()
            except httpx.HTTPError:  # still starting
                return False
            return "COMPLETED" in [run["state_type"] for run in runs]

        wait_for(completed, 180, "the retrain's flow run completed")
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


def _command(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:  # it ended meanwhile
        return []
