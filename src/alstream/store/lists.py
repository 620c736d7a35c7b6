"""A list of values bound as one parameter, whatever its length: ``column.in_(listed(...))``.

``column.in_(values)`` renders a placeholder per value, so each length is a statement of its own,
and each connection's driver keeps up to 128 prepared statements: with 10,000 values about 1 MB
each (measured with sqlite3), which grew a long-running service by hundreds of MB. Here the text is
the same for every list: SQLite reads the values from one JSON array (``json_each``), PostgreSQL
from one array (``unnest``). :func:`listed_rows` does the same for rows of several columns (one
``INSERT ... SELECT`` or ``UPDATE ... FROM`` instead of a statement per row), :func:`listed_pairs`
for ``(key, value)`` rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import BigInteger, Double, Select, String, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import TypeEngine


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
    rows = list(zip(keys, map(float, values), strict=True))
    return listed_rows({"key": String(), "value": Double()}, rows, dialect)


def listed_rows(columns: dict[str, TypeEngine], rows: Sequence[Sequence[Any]], dialect: str) -> Select:
    """A SELECT of ``rows`` (each a value per column of ``columns``: name -> type), for
    ``INSERT ... SELECT`` or ``UPDATE ... FROM``; PostgreSQL binds an array per column, SQLite one
    JSON array of the rows (its values come back as JSON gives them: booleans as 0 and 1)."""
    names = list(columns)
    if any(len(row) != len(names) for row in rows):
        raise ValueError(f"every row needs {len(names)} values: {', '.join(names)}")
    if dialect == "postgresql":
        values = list(zip(*rows, strict=True)) if rows else [() for _ in names]
        arrays = [
            bindparam(name, list(column), type_=ARRAY(kind), unique=True)
            for (name, kind), column in zip(columns.items(), values, strict=True)
        ]
        table = func.unnest(*arrays).table_valued(*names).render_derived()
        return select(*(table.c[name] for name in names))
    listed_json = orjson.dumps([list(row) for row in rows]).decode()
    table = func.json_each(bindparam("rows", listed_json, type_=String, unique=True)).table_valued("value")
    return select(*(func.json_extract(table.c.value, f"$[{i}]").label(name) for i, name in enumerate(names)))
