"""API tokens and roles: who may send, who may label, who may run the place.

A token is ``als_<key>_<secret>``: ``key`` names it (shown in lists, safe to log), ``secret`` is
random. Only a SHA-256 hash of the whole token is stored; a presented token is checked by
comparing hashes in constant time. Tokens are random (192 bits), so a plain hash is enough.

>>> token = new_token()
>>> key, digest = token_key(token), hash_token(token)
>>> matches(token, digest) and not matches(token + "x", digest)
True
>>> allows("annotator", "label"), allows("annotator", "send"), allows("admin", "send")
(True, False, True)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Literal

Role = Literal["producer", "annotator", "admin"]
ROLES: tuple[Role, ...] = ("producer", "annotator", "admin")

# What each role may do; admin may do everything.
PERMISSIONS: dict[str, frozenset[str]] = {
    "producer": frozenset({"send"}),
    "annotator": frozenset({"label", "read"}),
    "admin": frozenset({"send", "label", "read", "admin"}),
}

PREFIX = "als_"


def new_token() -> str:
    """A fresh random token: ``als_`` + an 8-character key + ``_`` + a 32-character secret."""
    return f"{PREFIX}{secrets.token_hex(4)}_{secrets.token_urlsafe(24)}"


def token_key(token: str) -> str | None:
    """The public key of a well-formed token, else None."""
    if not token.startswith(PREFIX):
        return None
    key, _, secret = token.removeprefix(PREFIX).partition("_")
    return key if len(key) == 8 and secret else None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def matches(token: str, digest: str) -> bool:
    """Whether ``token`` hashes to ``digest``, compared in constant time."""
    return hmac.compare_digest(hash_token(token), digest)


def allows(role: str, permission: str) -> bool:
    return permission in PERMISSIONS.get(role, frozenset())


__all__ = ["PERMISSIONS", "ROLES", "Role", "allows", "hash_token", "matches", "new_token", "token_key"]
