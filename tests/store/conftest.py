"""Store fixtures: every test runs against SQLite (a temp file) and PostgreSQL (a throwaway server,
``postgres_admin_url`` in tests/conftest.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from sqlalchemy.engine import make_url

from alstream.store import Store

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture
def make_store(request, tmp_path) -> Iterator[Callable[[], Store]]:
    """A factory of fresh, empty, created stores of the test's backend (``create=False``: an empty
    database, no tables); all closed and dropped after."""
    backend = request.param
    stores: list[Store] = []
    databases: list[str] = []
    admin = request.getfixturevalue("postgres_admin_url") if backend == "postgresql" else None

    def make(*, create: bool = True, **options) -> Store:
        if backend == "sqlite":
            url = f"sqlite:///{tmp_path}/db{len(stores)}/store.db"
        else:
            name = f"alstream_{uuid.uuid4().hex[:12]}"
            with psycopg.connect(_libpq(admin), autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {name}")
            databases.append(name)
            url = make_url(admin).set(database=name).render_as_string(hide_password=False)
        store = Store(url, **options)
        if create:
            store.create()
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()
    if databases:
        with psycopg.connect(_libpq(admin), autocommit=True) as conn:
            for name in databases:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def store(make_store) -> Store:
    return make_store()


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses a store runs once per backend."""
    if "make_store" in metafunc.fixturenames:
        metafunc.parametrize("make_store", BACKENDS, indirect=True)
