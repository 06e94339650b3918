"""`SqlOutboxStore`: the outbox store and admin ports on SQLAlchemy Core."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from operator import itemgetter
from typing import TypeVar

from sqlalchemy import Engine, func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from adapters.sql import target_rows
from adapters.sql.deferral import deferral, resumption
from adapters.sql.mapping import (
    ack_document,
    columns_to_message,
    history_document,
    to_attempt,
    to_db,
    to_message,
)
from adapters.sql.overview import due_condition, oldest_due_age, read_overview
from adapters.sql.producer import enqueue as insert_messages
from adapters.sql.schema import history_table, outbox_table, targets_table
from adapters.sql.statements import (
    ack_statement,
    ack_with_history_statement,
    claim_statement,
    history_statement,
)
from application.ports import AckResult, Attempt, NewMessage, Overview
from domain import status
from domain.breaker import TargetHealth
from domain.idempotency import key_prefix
from domain.model import Message, State

log = logging.getLogger(__name__)
T = TypeVar("T")
# Deadlock victim / serialization failure: safe to run the whole transaction again.
_RETRYABLE_TEXT = ("1205", "database is locked")  # SQL Server deadlock victim; SQLite busy
_RETRYABLE_SQLSTATES = ("40P01", "40001")  # PostgreSQL deadlock, serialization failure
_RETRIES = 3


class SqlOutboxStore:
    def __init__(self, engine: Engine, table: str = "Messages") -> None:
        self.engine = engine
        self.table = outbox_table(table)
        self.history = history_table(table)
        self.targets = targets_table(table)
        dialect = engine.dialect.name
        self._claims = {
            per_user: claim_statement(self.table, dialect, per_user) for per_user in (False, True)
        }
        self._ack = ack_statement(self.table, dialect)
        self._history = history_statement(self.table, dialect)
        self._ack_with_history = ack_with_history_statement(self.table, dialect)
        # A transaction of one statement needs no BEGIN and COMMIT round trips around it
        # (PostgreSQL: the statement is atomic on its own; the claim and, with the history in
        # it, the ack are one statement each there).
        self._one_statement = (
            engine.execution_options(isolation_level="AUTOCOMMIT")
            if dialect == "postgresql"
            else engine
        )

    def claim(
        self,
        *,
        owner: str,
        token: str,
        limit: int,
        now: datetime,
        lease_until: datetime,
        per_user: bool = False,
    ) -> list[Message]:
        params = {
            "owner": owner,
            "token": token,
            "limit": limit,
            "now": to_db(now),
            "lease_until": to_db(lease_until),
            "key_prefix": key_prefix(token),
        }

        def run(conn: Connection) -> list[Message]:
            rows = conn.execute(self._claims[per_user], params).all()
            return [columns_to_message(row) for row in sorted(rows, key=itemgetter(0))]

        return self._transaction(run, self._one_statement)

    def ack(
        self, token: str, messages: Sequence[Message], attempts: Sequence[Attempt]
    ) -> AckResult:
        if not messages:
            return AckResult(written=0)

        document = ack_document(messages)
        if self._ack_with_history is None:
            result = self._transaction(
                lambda conn: self._ack_then_history(conn, token, document, messages, attempts)
            )
        else:
            params = {
                "batch": document,
                "token": token,
                "history": history_document(attempts),
            }
            statement = self._ack_with_history
            result = self._transaction(
                lambda conn: _result(set(conn.execute(statement, params).scalars()), messages),
                self._one_statement,
            )
        if result.refused_ids:
            log.warning(
                "lost lease: %d outcome(s) not written, rows now held by another claim: %s",
                len(result.refused_ids),
                list(result.refused_ids)[:20],
            )
        return result

    def defer(
        self, token: str, ids: Sequence[int], until: datetime, line: str | None = None
    ) -> AckResult:
        if not ids:
            return AckResult(written=0)
        statement = deferral(self.table, token, ids, until, line)

        def run(conn: Connection) -> AckResult:
            held = self._held(conn, token, list(ids))
            if held:
                conn.execute(statement.where(self.table.c.ID.in_(sorted(held))))
            return AckResult(written=len(held), refused_ids=tuple(i for i in ids if i not in held))

        return self._transaction(run)

    def resume(
        self,
        now: datetime,
        *,
        types: Sequence[str] | None,
        excluding: Sequence[str] = (),
        held_back_only: bool = False,
    ) -> int:
        statement = resumption(self.table, now, types, excluding, held_back_only)
        return self._transaction(lambda conn: conn.execute(statement).rowcount)

    def report_target(self, health: TargetHealth) -> None:
        self._transaction(lambda conn: target_rows.write(conn, self.targets, health))

    def target_health(self) -> list[TargetHealth]:
        with self.engine.connect() as conn:
            return target_rows.read(conn, self.targets)

    def renew(self, token: str, lease_until: datetime) -> int:
        t = self.table.c
        statement = (
            update(self.table)
            .where(t.LeaseToken == token, t.ToSend == 2)
            .values(LeaseUntil=to_db(lease_until))
        )
        return self._transaction(lambda conn: conn.execute(statement).rowcount)

    def prune_history(self, older_than: datetime) -> int:
        statement = self.history.delete().where(self.history.c.StartedAt < to_db(older_than))
        return self._transaction(lambda conn: conn.execute(statement).rowcount)

    def close(self) -> None:
        self.engine.dispose()

    # --- admin -------------------------------------------------------------

    def enqueue(self, messages: Sequence[NewMessage]) -> list[int]:
        return self._transaction(
            lambda conn: insert_messages(conn, messages, table=self.table.name)
        )

    def get(self, message_id: int) -> Message | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(self.table).where(self.table.c.ID == message_id))
                .mappings()
                .first()
            )
        return None if row is None else to_message(row)

    def history_of(self, message_id: int) -> list[Attempt]:
        h = self.history.c
        query = select(self.history).where(h.MessageID == message_id).order_by(h.ID)
        with self.engine.connect() as conn:
            return [to_attempt(row) for row in conn.execute(query).mappings()]

    def overview(self, now: datetime, dead_limit: int = 10) -> Overview:
        with self.engine.connect() as conn:
            return read_overview(conn, self.table, now, dead_limit)

    def oldest_due_age(self, now: datetime) -> float | None:
        with self.engine.connect() as conn:
            return oldest_due_age(conn, self.table, now)

    def unfinished(self) -> int:
        t = self.table.c
        query = select(func.count()).select_from(self.table).where(t.ToSend.in_((1, 2)))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def due(self, now: datetime) -> int:
        query = select(func.count()).select_from(self.table).where(due_condition(self.table, now))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def requeue_dead(self, ids: Sequence[int] | None) -> int:
        t = self.table.c
        statement = (
            update(self.table)
            .where(t.ToSend == int(State.DEAD))
            .values(
                ToSend=int(State.PENDING),
                Attempts=0,
                NextAttemptAt=None,
                IdempotencyKey=None,
                Status=status.requeued(),
            )
        )
        if ids is not None:
            statement = statement.where(t.ID.in_(list(ids)))
        return self._transaction(lambda conn: conn.execute(statement).rowcount)

    # --- helpers -----------------------------------------------------------

    def _held(self, conn: Connection, token: str, ids: list[int]) -> set[int]:
        """The ids still held by `token`, locked until the transaction ends."""
        t = self.table.c
        query = (
            select(t.ID)
            .where(t.ID.in_(ids), t.LeaseToken == token, t.ToSend == int(State.IN_FLIGHT))
            .order_by(t.ID)
            .with_for_update()
            .with_hint(self.table, "WITH (UPDLOCK, ROWLOCK)", "mssql")
        )
        return set(conn.execute(query).scalars())

    def _ack_then_history(
        self,
        conn: Connection,
        token: str,
        document: str,
        messages: Sequence[Message],
        attempts: Sequence[Attempt],
    ) -> AckResult:
        written = set(conn.execute(self._ack, {"batch": document, "token": token}).scalars())
        history = [a for a in attempts if a.message_id in written]
        if history:
            conn.execute(self._history, {"batch": history_document(history)})
        return _result(written, messages)

    def _transaction(self, work: Callable[[Connection], T], engine: Engine | None = None) -> T:
        for attempt in range(1, _RETRIES + 1):
            try:
                with (engine or self.engine).begin() as conn:
                    return work(conn)
            except DBAPIError as error:
                if attempt == _RETRIES or not _retryable(error):
                    raise
                log.warning("database busy (%s), retrying transaction", _short(error))
                time.sleep(0.05 * attempt)
        raise AssertionError("unreachable")


def _result(written: set[int], messages: Sequence[Message]) -> AckResult:
    refused = tuple(m.id for m in messages if m.id not in written)
    return AckResult(written=len(written), refused_ids=refused)


def _retryable(error: DBAPIError) -> bool:
    text = str(error.orig)
    sqlstate = getattr(error.orig, "sqlstate", None)
    return sqlstate in _RETRYABLE_SQLSTATES or any(marker in text for marker in _RETRYABLE_TEXT)


def _short(error: DBAPIError) -> str:
    return str(error.orig).splitlines()[0][:200]
