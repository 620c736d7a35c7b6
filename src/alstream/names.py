"""Names on the command line and in settings: ``Least-Confident`` finds ``least_confident``.

>>> registered(" Least-Confident ", ["entropy", "least_confident"], "strategy")
'least_confident'
"""

from __future__ import annotations

from collections.abc import Iterable

from alstream.errors import InvalidInput


def registered(name: str, names: Iterable[str], kind: str) -> str:
    """The one of ``names`` that ``name`` stands for (trimmed, lower case, ``-`` as ``_``), or an
    :class:`~alstream.errors.InvalidInput` (a ValueError) that lists them."""
    names = list(names)
    key = name.strip().lower().replace("-", "_")
    if key not in names:
        raise InvalidInput(f"unknown {kind} {name!r}: choose one of {', '.join(names)}")
    return key
