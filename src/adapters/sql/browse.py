"""`SqlOutboxBrowser`: the dashboard's read side on SQLAlchemy Core.

Indexes each query relies on (see migrations 0001 and 0003): counts read the partial
indexes over unfinished and dead rows plus the primary key; lists walk the primary key
(or `IX_<table>_User` for a UserID filter) backwards from a keyset cursor; the last hour
reads the history's `StartedAt` index.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, literal_column, or_, select
from sqlalchemy.engine import Connection

from adapters.sql.mapping import from_db, to_db, to_message
from adapters.sql.overview import oldest_due_age
from adapters.sql.store import SqlOutboxStore
from application import figures
from application.ports import MessageFilter, MessagePage, QueueFigures, TargetHealth
from domain.model import State

_REQUEUE_CHUNK = 500
# Literal state values, so the planners match the partial indexes' predicates.
_UNFINISHED: tuple[Any, ...] = (literal_column("1"), literal_column("2"))


class SqlOutboxBrowser:
    def __init__(self, store: SqlOutboxStore) -> None:
        self.store = store
        self.table = store.table
        self.history = store.history

    def figures(self, now: datetime) -> QueueFigures:
        start = figures.window_start(now)
        with self.store.engine.connect() as conn:
            return QueueFigures(
                counts=self._counts(conn),
                oldest_due_age_seconds=oldest_due_age(conn, self.table, now),
                activity=figures.activity(start, self._activity(conn, start)),
                latency=figures.latency(self._durations(conn, start)),
            )

    def target_health(self, now: datetime) -> list[TargetHealth]:
        start = to_db(figures.window_start(now))
        outcomes = self._attempt_outcomes(start).subquery()
        o = outcomes.c
        failed = o.outcome != literal_column("'sent'")
        query = (
            select(
                o.kind,
                func.sum(case((failed, 0), else_=1)),
                func.sum(case((failed, 1), else_=0)),
                func.max(case((failed, o.started), else_=None)),
            )
            .group_by(o.kind)
            .order_by(o.kind)
        )
        with self.store.engine.connect() as conn:
            rows = conn.execute(query).all()
            return [self._health(conn, *row) for row in rows]

    def messages(
        self,
        where: MessageFilter,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int = 50,
    ) -> MessagePage:
        t = self.table.c
        query = select(self.table).where(*self._conditions(where)).limit(limit)
        if after is not None:
            query = query.where(t.ID > after).order_by(t.ID.asc())
        else:
            query = query.where(*([] if before is None else [t.ID < before]))
            query = query.order_by(t.ID.desc())
        with self.store.engine.connect() as conn:
            rows = [to_message(r) for r in conn.execute(query).mappings()]
            rows.sort(key=lambda m: m.id, reverse=True)
            if not rows:
                return MessagePage(messages=(), newer_than=None, older_than=None)
            top, bottom = rows[0].id, rows[-1].id
            return MessagePage(
                messages=tuple(rows),
                newer_than=top if self._exists(conn, where, t.ID > top) else None,
                older_than=bottom if self._exists(conn, where, t.ID < bottom) else None,
            )

    def count_dead(self, where: MessageFilter) -> int:
        query = select(func.count()).select_from(self.table).where(*self._dead(where))
        with self.store.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def requeue_dead(self, where: MessageFilter) -> int:
        """In chunks of ids through the store's own `requeue_dead` (what `outbox retry` runs)."""
        t = self.table.c
        requeued, after = 0, 0
        while True:
            query = (
                select(t.ID)
                .where(*self._dead(where), t.ID > after)
                .order_by(t.ID)
                .limit(_REQUEUE_CHUNK)
            )
            with self.store.engine.connect() as conn:
                ids = list(conn.execute(query).scalars())
            if not ids:
                return requeued
            requeued += self.store.requeue_dead(ids)
            after = ids[-1]

    # --- queries -----------------------------------------------------------

    def _counts(self, conn: Connection) -> dict[int, int]:
        t = self.table.c
        unfinished = select(t.ToSend, func.count()).where(t.ToSend.in_(_UNFINISHED))
        counts = {int(s): int(n) for s, n in conn.execute(unfinished.group_by(t.ToSend))}
        dead = select(func.count()).select_from(self.table).where(t.ToSend == literal_column("3"))
        counts[int(State.DEAD)] = int(conn.execute(dead).scalar_one())
        total = int(conn.execute(select(func.count()).select_from(self.table)).scalar_one())
        counts[int(State.SENT)] = total - sum(counts.values())
        return {int(s): counts.get(int(s), 0) for s in State}

    def _activity(self, conn: Connection, start: datetime) -> list[tuple[datetime, str, int]]:
        outcomes = self._attempt_outcomes(to_db(start)).subquery()
        o = outcomes.c
        query = select(o.minute, o.outcome, func.count()).group_by(o.minute, o.outcome)
        return [
            (_minute(minute), str(outcome), int(n)) for minute, outcome, n in conn.execute(query)
        ]

    def _durations(self, conn: Connection, start: datetime) -> dict[int, int]:
        h = self.history.c
        query = (
            select(h.DurationMs, func.count())
            .where(h.StartedAt >= to_db(start))
            .group_by(h.DurationMs)
        )
        return {int(ms): int(n) for ms, n in conn.execute(query)}

    def _attempt_outcomes(self, start: Any) -> Select[Any]:
        """One row per attempt since `start`: its minute, outcome and message type."""
        h, t = self.history.c, self.table.c
        last_of_dead = and_(t.ToSend == literal_column("3"), t.Attempts == h.Attempt)
        outcome = case(
            (~_failed(h.HttpStatus), "sent"),
            (last_of_dead, "dead"),
            else_="retried",
        )
        return (
            select(
                _minute_of(h.StartedAt, self.store.engine.dialect.name).label("minute"),
                outcome.label("outcome"),
                func.coalesce(t.MessageType, "?").label("kind"),
                h.StartedAt.label("started"),
            )
            .select_from(self.history.outerjoin(self.table, t.ID == h.MessageID))
            .where(h.StartedAt >= start)
        )

    def _health(
        self, conn: Connection, kind: str, sent: Any, failed: Any, last_failure: Any
    ) -> TargetHealth:
        error = None
        if last_failure is not None:
            error = self._error_at(conn, last_failure)
        return TargetHealth(
            target=str(kind),
            sent_last_hour=int(sent or 0),
            failed_last_hour=int(failed or 0),
            last_failure_at=from_db(last_failure),
            last_error=error,
        )

    def _error_at(self, conn: Connection, moment: datetime) -> str | None:
        h = self.history.c
        query = (
            select(h.HttpStatus, h.Error)
            .where(h.StartedAt == moment, _failed(h.HttpStatus))
            .order_by(h.ID.desc())
            .limit(1)
        )
        row = conn.execute(query).first()
        if row is None:
            return None
        return f"HTTP {row[0]}" if row[0] is not None else str(row[1])

    def _exists(self, conn: Connection, where: MessageFilter, bound: Any) -> bool:
        t = self.table.c
        query = select(t.ID).where(*self._conditions(where), bound).limit(1)
        return conn.execute(query).first() is not None

    def _dead(self, where: MessageFilter) -> list[ColumnElement[bool]]:
        t = self.table.c
        return [*self._conditions(where), t.ToSend == literal_column("3")]

    def _conditions(self, where: MessageFilter) -> Sequence[ColumnElement[bool]]:
        t = self.table.c
        found: list[ColumnElement[bool]] = []
        if where.state is not None:
            found.append(t.ToSend == literal_column(str(int(where.state))))
            if where.state in (State.PENDING, State.IN_FLIGHT):
                found.append(t.ToSend.in_(_UNFINISHED))
        if where.message_type:
            found.append(t.MessageType == where.message_type)
        if where.user_id is not None:
            found.append(t.UserID == where.user_id)
        if where.min_id is not None:
            found.append(t.ID >= where.min_id)
        if where.max_id is not None:
            found.append(t.ID <= where.max_id)
        if where.status_text:
            found.append(t.Status.icontains(where.status_text, autoescape=True))
        return found


def _failed(status: Any) -> ColumnElement[bool]:
    ok = status.between(literal_column("200"), literal_column("299"))
    return or_(status.is_(None), ~ok)


def _minute_of(column: Any, dialect: str) -> Any:
    """The start of the minute of `column`, per dialect (no portable date_trunc)."""
    if dialect == "postgresql":
        return func.date_trunc(literal_column("'minute'"), column)
    if dialect == "mssql":
        zero: Any = literal_column("0")
        minute: Any = literal_column("minute")
        return func.dateadd(minute, func.datediff(minute, zero, column), zero)
    return func.strftime(literal_column("'%Y-%m-%d %H:%M:00'"), column)


def _minute(value: Any) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    result = from_db(moment)
    assert result is not None
    return result
