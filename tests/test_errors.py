"""One family of errors: each is an AlstreamError, and still the builtin its callers caught."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from alstream import errors
from alstream.errors import AlstreamError, ConfigError, ConsumerBusy, InvalidInput, NoModelYet
from alstream.idempotency import check_key
from alstream.messages import InvalidBatch, InvalidMessage
from alstream.service.app import create_app
from alstream.settings import Settings, SettingsError
from alstream.stream.log import EmbeddedLog

ADMIN = "test-admin-token-0123456789"


def test_every_public_error_is_an_alstream_error():
    found = [getattr(errors, name) for name in errors.__all__]
    assert all(issubclass(error, AlstreamError) for error in found)
    assert all(issubclass(error, InvalidInput) for error in (InvalidBatch, InvalidMessage))


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (InvalidInput, ValueError),
        (InvalidBatch, ValueError),
        (InvalidMessage, ValueError),
        (ConfigError, ValueError),
        (NoModelYet, LookupError),
        (ConsumerBusy, RuntimeError),
    ],
)
def test_an_error_callers_caught_as_a_builtin_still_is_one(error, builtin):
    assert issubclass(error, builtin)


def test_the_old_names_are_the_same_classes():
    from alstream.service.security import LastAdmin as from_security
    from alstream.store.tokens import LastAdmin as from_store
    from alstream.stream import StreamUnavailable

    assert from_security is from_store is errors.LastAdmin
    assert StreamUnavailable is errors.StreamUnavailable and SettingsError is ConfigError


def test_bad_input_and_a_busy_group_raise_their_error(tmp_path: Path):
    with pytest.raises(InvalidInput, match="must be printable ASCII"):
        check_key("caf\u00e9")
    log = EmbeddedLog(tmp_path / "log")
    first = log.consumer("group", ["samples"])
    try:
        with pytest.raises(ConsumerBusy, match="already has a consumer"):
            log.consumer("group", ["samples"])
    finally:
        first.close()
        log.close()


def test_the_api_answers_no_model_yet_with_409(tmp_path: Path):
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path}/alstream.db",
        demo=False,
        admin_token=ADMIN,
    )
    headers = {"Authorization": f"Bearer {ADMIN}"}
    with TestClient(create_app(settings, consume=False, track=False), headers=headers) as client:
        response = client.post("/predict", json={"features": [[0.0] * 64]})
    assert response.status_code == 409
    assert response.json() == {"detail": "no model yet: label a few samples of every class first"}


def test_an_unknown_name_is_invalid_input():
    from alstream.names import registered

    with pytest.raises(InvalidInput, match="unknown model 'svm': choose one of logreg, sgd"):
        registered("svm", ["logreg", "sgd"], "model")
