"""A list of values bound as one parameter, whatever its length: ``column.in_(listed(...))``.

``column.in_(values)`` renders a placeholder per value, so each length is a statement of its own,
and each connection's driver keeps up to 128 prepared statements: with 10,000 values about 1 MB
each (measured with sqlite3), which grew a long-running service by hundreds of MB. Here the text is
the same for every list: SQLite reads the values from one JSON array (``json_each``), PostgreSQL
from one array (``unnest``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import BigInteger, Select, String, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY


def listed(values: Sequence[Any], dialect: str, *, integers: bool = False) -> Select:
    """A one-column SELECT of ``values`` (strings, or ``integers``), for ``IN`` / ``NOT IN``."""
    if dialect == "postgresql":
        array = bindparam(
            "listed", list(values), type_=ARRAY(BigInteger if integers else String), unique=True
        )
        return select(func.unnest(array))
    plain = [int(v) for v in values] if integers else list(values)
    table = func.json_each(bindparam("listed", orjson.dumps(plain).decode(), type_=String, unique=True))
    return select(table.table_valued("value").c.value)
