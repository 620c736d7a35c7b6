"""A list of values bound as one parameter, whatever its length: ``column.in_(listed(...))``.

``column.in_(values)`` renders a placeholder per value, so each length is a statement of its own,
and each connection's driver keeps up to 128 prepared statements: with 10,000 values about 1 MB
each (measured with sqlite3), which grew a long-running service by hundreds of MB. Here the text is
the same for every list: SQLite reads the values from one JSON array (``json_each``), PostgreSQL
from one array (``unnest``). :func:`listed_pairs` does the same for rows of two columns (one
``INSERT ... SELECT`` instead of a statement per row).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import BigInteger, Double, Select, String, bindparam, func, select
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


def listed_pairs(keys: Sequence[str], values: Sequence[float], dialect: str) -> Select:
    """A SELECT of ``(key, value)`` rows, ``keys`` beside ``values`` (floats), for ``INSERT ... SELECT``."""
    if len(keys) != len(values):
        raise ValueError(f"{len(keys)} keys but {len(values)} values")
    if dialect == "postgresql":
        floats = [float(v) for v in values]
        arrays = (
            bindparam("keys", list(keys), type_=ARRAY(String), unique=True),
            bindparam("values", floats, type_=ARRAY(Double), unique=True),
        )
        rows = func.unnest(*arrays).table_valued("key", "value").render_derived()
        return select(rows.c.key, rows.c.value)
    pairs = orjson.dumps([[k, float(v)] for k, v in zip(keys, values, strict=True)]).decode()
    rows = func.json_each(bindparam("pairs", pairs, type_=String, unique=True)).table_valued("value")
    return select(
        func.json_extract(rows.c.value, "$[0]").label("key"),
        func.json_extract(rows.c.value, "$[1]").label("value"),
    )
