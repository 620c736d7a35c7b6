"""Who is calling: bearer tokens checked against the store, and in whose name they act.

Every route but ``/health``, the page and the API docs depends on
:func:`alstream.service.routes.deps.require`, which asks the :class:`Gatekeeper`: a missing or
unknown token gets 401, a token whose role lacks the permission 403 (see :mod:`alstream.auth`).

A token also stands for a person (or a program): it may lease, release and label only in its own
name, or in the names an admin allowed it (:meth:`Caller.may_act_as`); an admin token in any name.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from operator import attrgetter
from typing import Any, Literal, NamedTuple, cast

import cachetools
from fastapi import HTTPException

from alstream import auth
from alstream.errors import InvalidInput, LastAdmin
from alstream.messages import Label, Sample
from alstream.messages.schema import is_name
from alstream.store.tokens import Tokens

CACHE_S = 2.0  # a revoked token stops working within this long


class Caller(NamedTuple):
    """Who calls: the token's key, role, name and the names it may label as (its own first)."""

    key: str
    role: str
    name: str
    annotators: tuple[str, ...]

    @property
    def any_name(self) -> bool:
        """Admins may act in anyone's name."""
        return self.role == "admin"

    def may_act_as(self, annotator: str) -> bool:
        return self.any_name or annotator in self.annotators

    def annotator(self, named: str | None) -> str:
        """The name a request acts in: the one it names (which this token must be allowed), else
        the token's own; raises 403 otherwise."""
        if named is None:
            return self.name
        if not self.may_act_as(named):
            raise HTTPException(403, self.refusal([named]))
        return named

    def own(self, samples: list[Sample], labels: list[Label]) -> tuple[list[Sample], list[Label]]:
        """Labels (and labeled samples) in this caller's name: an annotator named must be one the token
        may act as (else 403), none named is the token's name; each carries the token's key."""
        items: tuple[Label | Sample, ...] = (*labels, *samples)
        named = [x.annotator for x in items if x.annotator is not None]
        refused = [name for name in named if not self.may_act_as(name)]
        if refused:
            raise HTTPException(403, self.refusal(refused))
        if len(named) < len(labels) + sum(s.label is not None for s in samples) and not is_name(self.name):
            raise HTTPException(
                403,
                f"this token's name {self.name!r} cannot be an annotator's (a control "
                "character, or over 200 characters): name the annotator, or use a "
                "token made with a plain name",
            )

        def owned(item: Any) -> Any:
            return dataclasses.replace(item, annotator=item.annotator or self.name, token_key=self.key)

        return [owned(s) if s.label is not None else s for s in samples], [owned(label) for label in labels]

    def refusal(self, names: list[str]) -> str:
        allowed = ", ".join(repr(n) for n in self.annotators)
        asked = ", ".join(repr(n) for n in dict.fromkeys(names))
        return (
            f"this {self.role} token acts only as {allowed}, not as {asked}: leave the annotator out (it "
            "is then the token's name), or ask an admin for a token in that name"
        )


_UNCACHED: Any = object()
ASK_THE_STORE: Literal["ask the store"] = "ask the store"  # what Gatekeeper.known says it cannot tell
CONFIGURED_ADMIN = Caller("configured-admin", "admin", "admin", ("admin",))


class Gatekeeper:
    """Checks tokens: the stored ones (by key, then hash in constant time) and the configured admin token."""

    def __init__(
        self, tokens: Tokens, admin_token: str | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.tokens = tokens
        self._admin_digest = auth.hash_token(admin_token) if admin_token else None
        # stored tokens by key (None: no such active token); bounded, so unknown keys cannot grow it
        self._records: cachetools.TTLCache[str, dict | None] = cachetools.TTLCache(
            maxsize=10_000, ttl=CACHE_S, timer=clock
        )
        self._lock = threading.Lock()

    def first_start(self) -> str | None:
        """With no configured admin token and none stored: make an admin token, store its hash,
        and return it (for the caller to show once). Otherwise None."""
        if self._admin_digest is not None or self.tokens.any_active():
            return None
        return self.issue("admin", "admin (first start)")

    def issue(self, role: str, name: str, annotators: list[str] | None = None) -> str:
        """A new token with ``role`` in the name ``name`` (and ``annotators``: the other names it may
        label as); only its hash is stored, so this is the one time it is seen."""
        if role not in auth.ROLES:
            raise InvalidInput(f"unknown role {role!r}: one of {', '.join(auth.ROLES)}")
        bad = [n for n in [name, *(annotators or [])] if not is_name(n)]
        if bad:
            raise InvalidInput(
                f"names must be non-blank, without control characters, at most 200 "
                f"characters: {', '.join(map(ascii, bad[:5]))}"
            )
        token = auth.new_token()
        key = auth.token_key(token)
        assert key is not None  # a new token is well-formed
        self.tokens.add(key, name, role, auth.hash_token(token), annotators)
        return token

    def revoke(self, key: str) -> bool:
        """Revoke a stored token; False when there is none. Raises :class:`LastAdmin` for the last
        admin token unless an admin token is configured."""
        revoked = self.tokens.revoke(key, keep_an_admin=self._admin_digest is None)
        with self._lock:
            self._records.pop(key, None)  # stops working at once here (other processes: within CACHE_S)
        return revoked

    def check(self, token: str) -> Caller | None:
        """The caller a token stands for, or None when it is unknown, malformed or revoked."""
        found = self.known(token)
        if found != ASK_THE_STORE:
            return found
        key = cast(str, auth.token_key(token))  # well-formed: known() asks the store for no other
        return self._caller(token, key, self._record(key))

    def known(self, token: str) -> Caller | Literal["ask the store"] | None:
        """:meth:`check`'s answer when it needs no store (the configured admin token, a malformed
        token, a stored one looked up less than ``CACHE_S`` ago), else "ask the store": the routes
        check on the event loop, and go to the threadpool only for the store."""
        if self._admin_digest is not None and auth.matches(token, self._admin_digest):
            return CONFIGURED_ADMIN
        key = auth.token_key(token)
        if key is None:
            return None
        with self._lock:
            record = self._records.get(key, _UNCACHED)
        return ASK_THE_STORE if record is _UNCACHED else self._caller(token, key, record)

    @staticmethod
    def _caller(token: str, key: str, record: dict | None) -> Caller | None:
        if record is None or not auth.matches(token, record["digest"]):
            return None
        return Caller(key, record["role"], record["name"], tuple(record["annotators"]))

    @cachetools.cachedmethod(attrgetter("_records"), key=lambda _self, key: key, lock=attrgetter("_lock"))
    def _record(self, key: str) -> dict | None:
        """The active token named ``key``, as the store had it at most ``CACHE_S`` ago."""
        return self.tokens.find(key)


__all__ = ["ASK_THE_STORE", "CONFIGURED_ADMIN", "Caller", "Gatekeeper", "LastAdmin"]
