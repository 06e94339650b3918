"""The write side of the transactional outbox, for Python producers.

    with engine.begin() as conn:                 # or: session.connection()
        conn.execute(orders.insert(), order)     # the business change
        enqueue(conn, [NewMessage(user_id=7, body="order placed")])

Both commit or roll back together: the message exists exactly when the order does.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Insert, insert
from sqlalchemy.engine import Connection

from adapters.sql.mapping import to_db
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
    statement = insert_statement(table, connection.dialect.name)
    if connection.dialect.name == "mssql":
        return [_insert_one(connection, statement, row) for row in rows]
    return [int(i) for i in connection.execute(statement, rows).scalars()]


def insert_statement(table: str, dialect: str) -> Insert:
    """SQL Server gets no OUTPUT clause: it fails (error 334) on a table with enabled triggers,
    which adopted tables often have; the id then comes from SCOPE_IDENTITY(), row by row."""
    if dialect == "mssql":
        return insert(outbox_table(table, implicit_returning=False))
    target = outbox_table(table)
    return insert(target).returning(target.c.ID, sort_by_parameter_order=True)


def _insert_one(connection: Connection, statement: Insert, row: dict[str, object]) -> int:
    primary_key = connection.execute(statement, row).inserted_primary_key
    assert primary_key is not None
    return int(primary_key[0])


def _row(message: NewMessage, now: datetime | None) -> dict[str, object]:
    return {
        "UserID": message.user_id,
        "Message": message.body,
        "MessageType": message.message_type,
        "ToSend": 1,
        "CreatedAt": now,
    }
