"""The write side of the transactional outbox, for Python producers.

    with engine.begin() as conn:                 # or: session.connection()
        conn.execute(orders.insert(), order)     # the business change
        enqueue(conn, [NewMessage(user_id=7, body="order placed")])

Both commit or roll back together: the message exists exactly when the order does.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import insert
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
    target = outbox_table(table)
    now = to_db(datetime.now(UTC))
    rows = [
        {
            "UserID": m.user_id,
            "Message": m.body,
            "MessageType": m.message_type,
            "ToSend": 1,
            "CreatedAt": now,
        }
        for m in messages
    ]
    statement = insert(target).returning(target.c.ID, sort_by_parameter_order=True)
    return [int(i) for i in connection.execute(statement, rows).scalars()]
