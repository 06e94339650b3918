"""`SqlOutboxBrowser`: the dashboard's read side on SQLAlchemy Core.

Indexes each query relies on (see migrations 0001, 0004 and 0005): counts read the partial
indexes over unfinished and dead rows, and the total the primary key (SQLite: IX_<table>_Rows;
a big PostgreSQL table: the planner's estimate); the oldest due row is the first of
IX_<table>_DueAt; lists walk the primary key (or the partial index of the state filtered on)
backwards from a keyset cursor; the last hour reads a range of the history's IX_..._Hour.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, literal_column, select, text
from sqlalchemy.engine import Connection

from adapters.sql import last_hour
from adapters.sql.last_hour import Hour
from adapters.sql.mapping import from_db, to_message
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
        self._memo: tuple[datetime | None, float, Hour] = (None, 0.0, [])

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
                latency=figures.latency(last_hour.durations(conn, self.history, start)),
            )

    def type_health(self, now: datetime) -> list[TypeHealth]:
        by_kind: dict[str, list[Any]] = {}
        with self.store.engine.connect() as conn:
            for _, outcome, kind, count, last_failure in self._last_hour(conn, now):
                if outcome == "sent":
                    continue
                totals = by_kind.setdefault(str(kind), [0, None])
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

    def _last_hour(self, conn: Connection, now: datetime) -> Hour:
        """The hour before `now` (see `last_hour`). `figures` and `type_health` for the same
        `now`, as one overview page asks, share one read of it."""
        moment, taken, rows = self._memo
        if moment == now and time.monotonic() - taken < _MEMO_SECONDS:
            return rows
        rows = last_hour.last_hour(conn, self.table, self.history, figures.window_start(now))
        self._memo = (now, time.monotonic(), rows)
        return rows

    def _health(self, conn: Connection, kind: str, failed: int, last_failure: Any) -> TypeHealth:
        error = None
        if last_failure is not None:
            error = last_hour.error_at(conn, self.history, last_failure)
        return TypeHealth(
            message_type=str(kind),
            failed_last_hour=failed,
            last_failure_at=from_db(last_failure),
            last_error=error,
        )

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
