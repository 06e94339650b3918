"""Alembic environment: always online, on the connection `adapters.sql.migrate` passes in."""

from alembic import context

from adapters.sql.migrate import version_table

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    version_table=version_table(context.config.attributes["table"]),
)
with context.begin_transaction():
    context.run_migrations()
