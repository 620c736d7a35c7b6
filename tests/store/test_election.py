"""The trainer lock (store.election) on SQLite (a file lock) and PostgreSQL (an advisory lock): one
holder at a time, the next takes it once the first lets go or its connection ends."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
from sqlalchemy import text

from alstream.store import Store
from alstream.store.election import Election

from ..conftest import libpq_url


def test_one_leads_the_other_waits_until_it_lets_go(make_store: Callable[..., Store]) -> None:
    store = make_store()
    first, second = Election(store.engine), Election(store.engine)
    assert first.try_lead() and first.alive()
    assert not second.try_lead() and not second.try_lead()  # asking again does not take it
    assert not second.alive()
    assert first.try_lead()  # the leader still leads
    first.close()
    assert not first.alive()
    assert second.try_lead() and second.alive()
    assert not first.try_lead()
    second.close()


def test_a_leader_whose_connection_the_server_ends_leads_no_more(postgres_url: str) -> None:
    store = Store(postgres_url)
    leader, standby = Election(store.engine), Election(store.engine)
    assert leader.try_lead()
    assert leader._conn is not None
    pid = leader._conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with psycopg.connect(libpq_url(postgres_url), autocommit=True) as admin:
        # waits (up to a minute, never a deadline met by a healthy server) for the backend to end
        ended = admin.execute("SELECT pg_terminate_backend(%s, 60000)", (pid,)).fetchone()
        assert ended == (True,)
    assert standby.try_lead()  # the server let the lock go with the connection
    assert not leader.alive() and not leader.try_lead()
    standby.close()
    store.close()
