"""Holding rows back without spending an attempt, and letting them go when a target recovers.

Plain SQLAlchemy Core: one set-based UPDATE each, the same on SQLite, PostgreSQL and SQL Server.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Table, Update, case, func, update

from adapters.sql.mapping import to_db
from domain.model import State
from domain.status import ASKED_TO_WAIT, WAITING, bounded


def deferral(
    table: Table, token: str, ids: Sequence[int], until: datetime, line: str | None
) -> Update:
    """Rows still held by `token` back to pending, due at `until`, the claim's attempt undone
    (the claim counted it; no request went out). The caller adds the held `ID IN (…)`."""
    t = table.c
    values: dict[str, object] = {
        "ToSend": int(State.PENDING),
        "Attempts": case((t.Attempts > 0, t.Attempts - 1), else_=0),
        "NextAttemptAt": to_db(until),
        "LeaseOwner": None,
        "LeaseUntil": None,
        "LeaseToken": None,
    }
    if line is not None:
        values["Status"] = bounded(line)
    return (
        update(table)
        .where(t.LeaseToken == token, t.ToSend == int(State.IN_FLIGHT))
        .values(**values)
    )


def resumption(
    table: Table,
    now: datetime,
    types: Sequence[str] | None,
    excluding: Sequence[str],
    held_back_only: bool,
) -> Update:
    t = table.c
    statement = update(table).where(t.ToSend == int(State.PENDING), t.NextAttemptAt > to_db(now))
    if held_back_only:  # rows `defer` wrote, not rows waiting out their own retry time
        statement = statement.where(t.Status.like(WAITING + "%"))
    # never before a Retry-After the receiver gave
    statement = statement.where(
        ~func.coalesce(t.Status, "").contains(ASKED_TO_WAIT, autoescape=True)
    )
    if types is not None:
        statement = statement.where(t.MessageType.in_(list(types)))
    elif excluding:
        statement = statement.where(t.MessageType.not_in(list(excluding)))
    return statement.values(NextAttemptAt=to_db(now))
