import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(scope="session", autouse=True)
def one_blas_thread():
    """Small fits run faster on one BLAS thread than fighting over two cores."""
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="session")
def prefect_backend():
    """A real, temporary Prefect server and database for the tests that run flows."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def local_mlflow(tmp_path, monkeypatch):
    """MLflow tracking in a SQLite file under the test's own folder."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.chdir(tmp_path)
    return tmp_path
