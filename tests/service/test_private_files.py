"""What the service writes is its owner's only: data_dir, the SQLite file (and -wal, -shm), the
embedded log, the model files: folders 0700, files 0600, whatever the umask lets others read."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from .conftest import demo_service, service_settings


def modes(*roots: Path) -> dict[str, str]:
    """path -> its permission bits in octal, for each root and everything under it."""
    found = {}
    for root in roots:
        for path in [root, *root.rglob("*")]:
            found[str(path)] = oct(stat.S_IMODE(path.lstat().st_mode))
    return found


@pytest.mark.parametrize("stream_kind", ["embedded", "kafka"])
def test_data_dir_database_log_and_models_are_the_owners_only(open_umask, tmp_path, request, stream_kind):
    settings = service_settings(tmp_path, stream_kind, request)
    with demo_service(settings) as client:  # the demo stored and a first model saved
        label = {"id": "digit-5", "label": "5", "annotator": "a"}
        assert client.post("/labels", json=label).status_code == 202
        data = settings.data_dir
        database = tmp_path / "alstream.db"
        files = [database, Path(f"{database}-wal"), Path(f"{database}-shm")]
        assert all(path.exists() for path in files)  # WAL mode, while it runs
        assert list((data / "models").glob("v*.joblib"))
        if stream_kind == "embedded":
            assert list((data / "log" / "topics").glob("*/*.log"))  # topics/<topic>/<base offset>.log
            assert list((data / "log" / "groups").iterdir())
        found = modes(data, *files)
        assert {p: m for p, m in found.items() if Path(p).is_dir()} == {
            p: "0o700" for p in found if Path(p).is_dir()
        }
        assert {p: m for p, m in found.items() if not Path(p).is_dir()} == {
            p: "0o600" for p in found if not Path(p).is_dir()
        }
