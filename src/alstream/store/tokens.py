"""API tokens in the store: their public key, name, role, the names it may label as, and its hash;
never the token itself."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update

from alstream.errors import LastAdmin
from alstream.store.database import SQLITE_BEGIN
from alstream.store.rows import dump_json, load_json
from alstream.store.tables import tokens


class Tokens:
    """The ``tokens`` table. See :mod:`alstream.auth` for making and checking tokens."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, key: str, name: str, role: str, digest: str, annotators: list[str] | None = None) -> None:
        """Store a token; ``annotators``: names it may label as besides its ``name``."""
        values = {
            "key": key,
            "name": name,
            "role": role,
            "digest": digest,
            "created_at": datetime.now(UTC),
            "annotators": dump_json(annotators or None),
        }
        with self.engine.begin() as conn:
            conn.execute(insert(tokens).values(values))

    def revoke(self, key: str, *, keep_an_admin: bool = True) -> bool:
        """Revoke the token named ``key``; False when there is no such active token.

        With ``keep_an_admin``, revoking the last active admin token raises :class:`LastAdmin`
        (nobody could make or revoke tokens any more).
        """
        with self.engine.connect() as conn:
            conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
            with conn.begin():
                admins = tokens.c.role == "admin", tokens.c.revoked_at.is_(None)
                active = set(conn.execute(select(tokens.c.key).where(*admins).with_for_update()).scalars())
                if keep_an_admin and active == {key}:
                    raise LastAdmin(key)
                done = conn.execute(
                    update(tokens)
                    .where(tokens.c.key == key, tokens.c.revoked_at.is_(None))
                    .values(revoked_at=datetime.now(UTC))
                )
        return done.rowcount == 1

    def find(self, key: str) -> dict[str, Any] | None:
        """The active token named ``key`` (with its ``digest``), or None."""
        query = select(tokens).where(tokens.c.key == key, tokens.c.revoked_at.is_(None))
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else _record(row)

    def all(self) -> list[dict[str, Any]]:
        """Every token, newest first, without digests."""
        columns = [c for c in tokens.c if c.name != "digest"]
        with self.engine.connect() as conn:
            rows = conn.execute(select(*columns).order_by(tokens.c.created_at.desc())).all()
        return [_record(row) for row in rows]

    def any_active(self) -> bool:
        with self.engine.connect() as conn:
            return (
                conn.execute(select(tokens.c.key).where(tokens.c.revoked_at.is_(None)).limit(1)).first()
                is not None
            )


def _record(row: Any) -> dict[str, Any]:
    """A token row; ``annotators`` is every name it may label as, its own name first."""
    record = dict(row._mapping)
    record["annotators"] = list(dict.fromkeys([record["name"], *(load_json(record["annotators"]) or [])]))
    return record
