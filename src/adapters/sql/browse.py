"""`SqlOutboxBrowser`: the dashboard's read side on SQLAlchemy Core.

Indexes each query relies on (see migrations 0001 and 0004): counts read the partial
indexes over unfinished and dead rows plus the primary key; lists walk the primary key (or
the partial index of the state filtered on) backwards from a keyset cursor; the last hour
reads the history's `StartedAt` index.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    func,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.engine import Connection

from adapters.sql.mapping import from_db, to_db, to_message
from adapters.sql.overview import oldest_due_age
from adapters.sql.store import SqlOutboxStore
from application import figures
from application.ports import MessageFilter, MessagePage, QueueFigures, TypeHealth
from domain.model import State

_REQUEUE_CHUNK = 500
_ESTIMATE_ABOVE = 1_000_000  # rows; below it, counting them all is cheap enough
_MEMO_SECONDS = 2.0  # one page's figures and target health share the hour's scan
# Literal state values, so the planners match the partial indexes' predicates.
_UNFINISHED: tuple[Any, ...] = (literal_column("1"), literal_column("2"))


class SqlOutboxBrowser:
    def __init__(self, store: SqlOutboxStore) -> None:
        self.store = store
        self.table = store.table
        self.history = store.history
        self._memo: tuple[datetime | None, float, list[tuple[Any, ...]]] = (None, 0.0, [])

    def figures(self, now: datetime) -> QueueFigures:
        start = figures.window_start(now)
        with self.store.engine.connect() as conn:
            hour = self._last_hour(conn, now)
            counts, estimated = self._counts(conn)
            return QueueFigures(
                counts=counts,
                sent_is_estimate=estimated,
                oldest_due_age_seconds=oldest_due_age(conn, self.table, now),
                activity=figures.activity(start, [(m, o, n) for m, o, _, n, _ in hour]),
                latency=figures.latency(self._durations(conn, start)),
            )

    def type_health(self, now: datetime) -> list[TypeHealth]:
        by_kind: dict[str, list[Any]] = {}
        with self.store.engine.connect() as conn:
            for _, outcome, kind, count, last_failure in self._last_hour(conn, now):
                if outcome == "sent":
                    continue
                totals = by_kind.setdefault(kind, [0, None])
                totals[0] += count
                if totals[1] is None or last_failure > totals[1]:
                    totals[1] = last_failure
            return [self._health(conn, kind, *by_kind[kind]) for kind in sorted(by_kind)]

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

    def _counts(self, conn: Connection) -> tuple[dict[int, int], bool]:
        """Exact counts in one statement (one snapshot), each read from an index alone:
        unfinished from IX_Due, in flight from IX_Lease, dead from IX_Dead. The total too,
        except on a big PostgreSQL table, where counting a million rows costs more than the
        whole page may: there the planner's estimate stands in for it (returns True)."""
        t = self.table.c

        def count(*where: ColumnElement[bool]) -> Any:
            return select(func.count()).select_from(self.table).where(*where).scalar_subquery()

        estimate = self._estimated_total(conn)
        total = count() if estimate is None else literal_column(str(estimate))
        row = conn.execute(
            select(
                count(t.ToSend.in_(_UNFINISHED)),
                count(t.ToSend == literal_column("2")),
                count(t.ToSend == literal_column("3")),
                total,
            )
        ).one()
        unfinished, in_flight, dead, everything = (int(n) for n in row)
        sent = max(everything - unfinished - dead, 0)
        counts = {0: sent, 1: unfinished - in_flight, 2: in_flight, 3: dead}
        return counts, estimate is not None

    def _estimated_total(self, conn: Connection) -> int | None:
        if self.store.engine.dialect.name != "postgresql":
            return None
        quoted = self.store.engine.dialect.identifier_preparer.quote(self.table.name)
        query = text("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(:name)")
        estimate = conn.execute(query, {"name": quoted}).scalar()
        return int(estimate) if estimate is not None and estimate >= _ESTIMATE_ABOVE else None

    def _last_hour(self, conn: Connection, now: datetime) -> list[tuple[Any, ...]]:
        """(minute, outcome, message type, attempts, last failure) of the hour before `now`.

        Successes are counted from the history alone; only failed attempts are joined to
        their rows (dead or retried? which type?), so a healthy hour costs one index range.
        `figures` and `type_health` for the same `now` (as the overview asks) share it.
        """
        moment, taken, rows = self._memo
        if moment == now and time.monotonic() - taken < _MEMO_SECONDS:
            return rows
        start = to_db(figures.window_start(now))
        h = self.history.c
        minute = _minute_of(h.StartedAt, self.store.engine.dialect.name).label("minute")
        sent = (
            select(minute, func.count())
            .where(h.StartedAt >= start, ~_failed(h.HttpStatus))
            .group_by(minute)
        )
        rows = [(_minute(m), "sent", None, int(n), None) for m, n in conn.execute(sent)]
        outcomes = self._attempt_outcomes(start).subquery()
        o = outcomes.c
        failed = select(o.minute, o.outcome, o.kind, func.count(), func.max(o.started)).group_by(
            o.minute, o.outcome, o.kind
        )
        rows += [
            (_minute(m), str(outcome), str(kind), int(n), last)
            for m, outcome, kind, n, last in conn.execute(failed)
        ]
        self._memo = (now, time.monotonic(), rows)
        return rows

    def _durations(self, conn: Connection, start: datetime) -> dict[int, int]:
        h = self.history.c
        query = (
            select(h.DurationMs, func.count())
            .where(h.StartedAt >= to_db(start))
            .group_by(h.DurationMs)
        )
        return {int(ms): int(n) for ms, n in conn.execute(query)}

    def _attempt_outcomes(self, start: Any) -> Select[Any]:
        """One row per failed attempt since `start`: its minute, outcome and message type."""
        h, t = self.history.c, self.table.c
        last_of_dead = and_(t.ToSend == literal_column("3"), t.Attempts == h.Attempt)
        outcome = case((last_of_dead, "dead"), else_="retried")
        return (
            select(
                _minute_of(h.StartedAt, self.store.engine.dialect.name).label("minute"),
                outcome.label("outcome"),
                func.coalesce(t.MessageType, "?").label("kind"),
                h.StartedAt.label("started"),
            )
            .select_from(self.history.outerjoin(self.table, t.ID == h.MessageID))
            .where(h.StartedAt >= start, _failed(h.HttpStatus))
        )

    def _health(self, conn: Connection, kind: str, failed: int, last_failure: Any) -> TypeHealth:
        error = None
        if last_failure is not None:
            error = self._error_at(conn, last_failure)
        return TypeHealth(
            message_type=str(kind),
            failed_last_hour=failed,
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
    # SQLite keeps SQLAlchemy datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff' text: the first
    # 16 characters are the minute, far cheaper per row than strftime.
    return func.substr(column, literal_column("1"), literal_column("16"))


def _minute(value: Any) -> datetime:
    moment = datetime.fromisoformat(f"{value}:00") if isinstance(value, str) else value
    result = from_db(moment)
    assert result is not None
    return result
