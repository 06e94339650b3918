"""The write side of the transactional outbox, for Python producers.

    with engine.begin() as conn:                 # or: session.connection()
        conn.execute(orders.insert(), order)     # the business change
        enqueue(conn, [NewMessage(user_id=7, body="order placed")])

Both commit or roll back together: the message exists exactly when the order does.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Insert, insert, text
from sqlalchemy.engine import Connection

from adapters.sql.mapping import batch_document, to_db
from adapters.sql.schema import outbox_table
from application.ports import NewMessage


def enqueue(
    connection: Connection, messages: Sequence[NewMessage], *, table: str = "Messages"
) -> list[int]:
    """Insert rows with `ToSend = 1` on the caller's connection, inside the caller's transaction.

    Returns the new ids. Does not commit: the caller's transaction decides.
    """
    if not messages:
        return []
    rows = [_row(m, to_db(datetime.now(UTC))) for m in messages]
    if connection.dialect.name == "mssql":
        return _insert_from_document(connection, rows, table)
    statement = insert_statement(table, connection.dialect.name)
    return [int(i) for i in connection.execute(statement, rows).scalars()]


def insert_statement(table: str, dialect: str) -> Insert:
    """SQL Server gets no bare OUTPUT clause: it fails (error 334) on a table with enabled
    triggers, which adopted tables often have (`enqueue` itself uses `_MSSQL_INSERT`)."""
    if dialect == "mssql":
        return insert(outbox_table(table, implicit_returning=False))
    target = outbox_table(table)
    return insert(target).returning(target.c.ID, sort_by_parameter_order=True)


# SQL Server: all rows in one statement, read out of one JSON document (no 2,100-parameter
# limit, no executemany). IDENTITY values follow the ORDER BY of an INSERT … SELECT, so the
# ids sorted are the rows' ids in order. OUTPUT INTO a table variable works with triggers.
_MSSQL_INSERT = """
SET NOCOUNT ON;
DECLARE @new TABLE (ID BIGINT);
INSERT INTO {table} (UserID, Message, MessageType, ToSend, CreatedAt)
OUTPUT inserted.ID INTO @new (ID)
SELECT s.UserID, s.Message, s.MessageType, 1, s.CreatedAt
FROM OPENJSON(:batch) WITH (
    N INT '$.N', UserID BIGINT '$.UserID', Message NVARCHAR(MAX) '$.Message',
    MessageType NVARCHAR(400) '$.MessageType', CreatedAt DATETIME2 '$.CreatedAt'
) AS s ORDER BY s.N;
SELECT ID FROM @new ORDER BY ID;
SET NOCOUNT OFF;
"""


def _insert_from_document(
    connection: Connection, rows: list[dict[str, object]], table: str
) -> list[int]:
    document = batch_document({"N": n, **row} for n, row in enumerate(rows))
    quoted = connection.dialect.identifier_preparer.quote(table)
    result = connection.execute(text(_MSSQL_INSERT.format(table=quoted)), {"batch": document})
    return [int(i) for i in result.scalars()]


def _row(message: NewMessage, now: datetime | None) -> dict[str, object]:
    return {
        "UserID": message.user_id,
        "Message": message.body,
        "MessageType": message.message_type,
        "ToSend": 1,
        "CreatedAt": now,
    }
