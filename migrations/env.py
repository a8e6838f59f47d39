"""Alembic environment: runs against the connection `bridge.infra.storage.migrate` hands in."""

from alembic import context

from bridge.infra.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
