"""Alembic's environment: migrate on the connection :meth:`Store.create` hands over, in its transaction."""

from alembic import context

from alstream.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
