"""Alembic environment: migrations run on the connection ``monitor.store.migrate`` hands over."""

from alembic import context

from monitor.store import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through monitor.store.migrate(), which passes a connection")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
