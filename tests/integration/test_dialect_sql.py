"""The SQL that runs is the SQL written out in `adapters/sql/dialects/`: statements are
captured as the store executes them and compared with each dialect's blocks, with only the
table name and the per-user clause put in by hand here."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import Engine, event

from adapters.sql.dialects import postgresql, sqlite
from adapters.sql.store import SqlOutboxStore
from application.ports import Attempt, NewMessage
from domain.delivery import DeliveryResult
from tests.integration.sql_stores import migrated_store

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TABLE = "Outbox_Sql7"  # mixed case: it must reach the database quoted, as written


def capture(engine: Engine) -> tuple[list[str], list[str]]:
    """(statement texts as handed to SQLAlchemy, statements as handed to the driver)."""
    texts: list[str] = []
    cursor: list[str] = []

    def before_execute(conn: Any, clause: Any, *args: Any) -> None:
        inner = getattr(clause, "element", clause)  # a TextualSelect wraps its TextClause
        if hasattr(inner, "text"):
            texts.append(inner.text)

    def before_cursor_execute(conn: Any, cur: Any, statement: str, *args: Any) -> None:
        cursor.append(statement)

    event.listen(engine, "before_execute", before_execute)
    event.listen(engine, "before_cursor_execute", before_cursor_execute)
    return texts, cursor


def run_claims_and_an_ack(store: SqlOutboxStore) -> None:
    store.enqueue([NewMessage(user_id=1, body="a"), NewMessage(user_id=2, body="b")])
    lease = T0 + timedelta(seconds=30)
    [first] = store.claim(owner="w", token="a", limit=1, now=T0, lease_until=lease)
    [_user_two] = store.claim(
        owner="w", token="b", limit=1, now=T0, lease_until=lease, per_user=True
    )
    ok = DeliveryResult(status_code=200, latency_ms=4)
    key = first.idempotency_key or ""
    attempt = Attempt(message_id=first.id, attempt=1, idempotency_key=key, started_at=T0, result=ok)
    store.ack("a", [first.mark_sent(ok, T0)], [attempt])


def expected(module: ModuleType) -> list[str]:
    per_user = module.FIRST_OF_USER.format(table=TABLE)
    claims = [
        module.CLAIM.format(table=TABLE, first_of_user=""),
        module.CLAIM.format(table=TABLE, first_of_user=per_user),
    ]
    if hasattr(module, "ACK_WITH_HISTORY"):  # one statement, one round trip
        return [*claims, module.ACK_WITH_HISTORY.format(table=TABLE)]
    return [*claims, module.ACK.format(table=TABLE), module.HISTORY.format(table=TABLE)]


@pytest.fixture
def sqlite_store(sqlite_url: str) -> Iterator[SqlOutboxStore]:
    store = migrated_store(sqlite_url, TABLE)
    yield store
    store.close()


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[SqlOutboxStore]:
    store = migrated_store(pg_url, TABLE)
    yield store
    store.close()


def test_on_sqlite_the_driver_receives_the_written_claim_ack_and_history(
    sqlite_store: SqlOutboxStore,
) -> None:
    texts, cursor = capture(sqlite_store.engine)

    run_claims_and_an_ack(sqlite_store)

    assert texts == expected(sqlite)
    # SQLite's driver gets the text itself, with its named parameters as `?`.
    assert [re.sub(r":\w+", "?", sql) for sql in expected(sqlite)] == [
        sql for sql in cursor if sql in {re.sub(r":\w+", "?", e) for e in expected(sqlite)}
    ]


@pytest.mark.postgres
def test_on_postgresql_the_store_executes_the_written_claim_ack_and_history(
    pg_store: SqlOutboxStore,
) -> None:
    texts, _ = capture(pg_store.engine)

    run_claims_and_an_ack(pg_store)

    assert texts == expected(postgresql)
