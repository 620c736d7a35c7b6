"""Alembic migrations of the store's schema, run by :meth:`alstream.store.Store.create`.

``0001`` is the schema as it was before migrations existed (a database made then has no
``alembic_version`` table: it is stamped at ``0001``, then upgraded). Each later revision changes
the tables; :mod:`alstream.store.schema` holds the result.
"""

BASELINE = "0001"
