"""alstream's errors: one family, each named for what a caller does with it.

Catch :class:`AlstreamError` for any of them. Those that callers once caught as a builtin
(``ValueError``, ``LookupError``, ``RuntimeError``) still are that builtin. Plain parameter checks
(a ``k`` below 1, a shape that is wrong) stay ``ValueError``, as in scikit-learn.
"""

from __future__ import annotations


class AlstreamError(Exception):
    """Every error alstream raises for a condition of its own."""


class InvalidInput(AlstreamError, ValueError):
    """Input that cannot be used (a request, a stream message, a file, a name); the message says why.
    The service answers 422 or 400."""


class ConfigError(AlstreamError, ValueError):
    """Settings that cannot be used: the message names the file (if any), each field and why."""


class StreamUnavailable(AlstreamError):
    """The stream cannot take or give messages now: try again later (the service answers 503)."""


class ConsumerBusy(AlstreamError, RuntimeError):
    """Another consumer of the same group holds the embedded log: stop it, or use another group."""


class OrchestratorUnavailable(AlstreamError, RuntimeError):
    """No Prefect server answers, or none could be started: the message says what to do instead."""


class NoModelYet(AlstreamError, LookupError):
    """No model serves yet: label a few samples of every class first (the service answers 409)."""


class ShardFenced(AlstreamError):
    """Another worker gained the shard since this one did (a newer generation): this one wrote
    nothing, and lets the shard go."""


class LastAdmin(AlstreamError):
    """Revoking this admin token would leave no admin token (the service answers 409)."""


__all__ = [
    "AlstreamError",
    "ConfigError",
    "ConsumerBusy",
    "InvalidInput",
    "LastAdmin",
    "NoModelYet",
    "OrchestratorUnavailable",
    "ShardFenced",
    "StreamUnavailable",
]
