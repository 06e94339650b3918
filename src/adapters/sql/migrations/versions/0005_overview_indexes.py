"""Indexes that bound the dashboard overview's queries (and `outbox status`'s oldest due row).

- `IX_<table>_DueAt`: unfinished rows by the moment they became due, coalesce(NextAttemptAt,
  CreatedAt), so the oldest due row is the first entry of a walk, not a read of every pending
  row. An expression index on PostgreSQL and SQLite; SQL Server indexes expressions only
  through a computed column (which would add a column to the user's table), so there the
  index is on (NextAttemptAt, CreatedAt) and the oldest due row is the earlier of two walks.
- `IX_<table>Attempts_Hour`: the history by start time, with the status and duration in the
  entry, so the last hour's chart and latency percentiles are read from one index range.
- `IX_<table>Attempts_Failed`: failed attempts only, by start time (partial, small), for the
  hour's failures and each message type's last error, which need the rest of their row.
  Not on SQL Server, whose filtered indexes take no OR: there the failures are found in the
  `_Hour` range.
- SQLite only, `IX_<table>_Rows`: the ids alone. SQLite counts a table by walking its smallest
  b-tree, which without it is the table itself, messages and all (a million rows: ~55,000
  pages against ~3,000). It is no help to any other query: each would rather read the rows
  in id order from the table. PostgreSQL's total comes from its planner's estimate on a big
  table (`SqlOutboxBrowser`), or an index-only scan of the primary key.

Neither holds a sent row of the outbox table; the claim's plans do not change.

`_Hour` leads with StartedAt, so the history's single-column `ix_<table>Attempts_StartedAt`
(retention's range) only costs a write per attempt: dropped on PostgreSQL and SQLite. On SQL
Server, where Babelfish renames indexes, an existing one is left alone.
"""

from alembic import context, op

from adapters.sql.migrate import create_missing_indexes
from adapters.sql.schema import history_name, overview_indexes

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    table = context.config.attributes["table"]
    bind = op.get_bind()
    on_table, on_history = overview_indexes(table, bind.dialect.name)
    create_missing_indexes(bind, table, on_table)
    create_missing_indexes(bind, history_name(table), on_history)
    if bind.dialect.name != "mssql":
        old = bind.dialect.identifier_preparer.quote(f"ix_{history_name(table)}_StartedAt")
        op.execute(f"DROP INDEX IF EXISTS {old}")
