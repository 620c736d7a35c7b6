"""API tokens in the store: their public key, name, role and hash; never the token itself."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update

from alstream.store.schema import tokens


class Tokens:
    """The ``tokens`` table. See :mod:`alstream.auth` for making and checking tokens."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, key: str, name: str, role: str, digest: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(tokens).values(
                    key=key, name=name, role=role, digest=digest, created_at=datetime.now(UTC)
                )
            )

    def revoke(self, key: str) -> bool:
        """Revoke the token named ``key``; False when there is no such active token."""
        with self.engine.begin() as conn:
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
        return None if row is None else dict(row._mapping)

    def all(self) -> list[dict[str, Any]]:
        """Every token, newest first, without digests."""
        columns = [c for c in tokens.c if c.name != "digest"]
        with self.engine.connect() as conn:
            rows = conn.execute(select(*columns).order_by(tokens.c.created_at.desc())).all()
        return [dict(row._mapping) for row in rows]

    def any_active(self) -> bool:
        with self.engine.connect() as conn:
            return (
                conn.execute(select(tokens.c.key).where(tokens.c.revoked_at.is_(None)).limit(1)).first()
                is not None
            )
