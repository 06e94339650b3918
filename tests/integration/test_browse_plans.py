"""The dashboard's queries read indexes, never the whole outbox table (SQLite, PostgreSQL).

A table of 5,000 mostly sent rows, ANALYZEd. PostgreSQL is asked with `enable_seqscan`
off, which only proves an index path exists; SQLite's plan is the one it runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, insert, select, text

from adapters.sql.browse import SqlOutboxBrowser
from adapters.sql.store import SqlOutboxStore
from application.ports import MessageFilter
from domain.model import State
from tests.conftest import fresh_schema
from tests.integration.sql_stores import migrated_store

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LISTS = {
    "newest": MessageFilter(),
    "dead": MessageFilter(state=State.DEAD),
    "pending": MessageFilter(state=State.PENDING),
    "in flight": MessageFilter(state=State.IN_FLIGHT),
    "user": MessageFilter(user_id=7),
    "id range": MessageFilter(min_id=100, max_id=200),
}


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def browser(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SqlOutboxBrowser]:
    """One filled table per database for the whole module (the plans only read)."""
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('plans') / 'outbox.db'}"
        else:
            url = stack.enter_context(fresh_schema(request.getfixturevalue("pg_server")))
        store = migrated_store(url)
        stack.callback(store.close)
        fill(store)
        yield SqlOutboxBrowser(store)


def fill(store: SqlOutboxStore) -> None:
    def state(i: int) -> int:
        return 1 if i % 50 == 0 else (3 if i % 97 == 0 else 0)

    rows = [{"UserID": i % 500, "Message": f"m{i}", "ToSend": state(i)} for i in range(5_000)]
    with store.engine.begin() as conn:
        conn.execute(insert(store.table), rows)
        conn.execute(text("ANALYZE"))


def plan(store: SqlOutboxStore, statement: Any) -> str:
    compiled = str(statement.compile(store.engine, compile_kwargs={"literal_binds": True}))
    postgres = store.engine.dialect.name == "postgresql"
    with store.engine.connect() as conn:
        if postgres:
            conn.exec_driver_sql("SET enable_seqscan = off")
        prefix = "EXPLAIN " if postgres else "EXPLAIN QUERY PLAN "
        return "\n".join(str(row[-1]) for row in conn.exec_driver_sql(prefix + compiled))


def reads_the_whole_table(plan_text: str, table: str) -> bool:
    return f'Seq Scan on "{table}"' in plan_text or f"SCAN {table}\n" in plan_text + "\n"


@pytest.mark.parametrize("name", LISTS)
def test_each_list_page_walks_an_index_from_its_cursor(
    browser: SqlOutboxBrowser, name: str
) -> None:
    t = browser.table.c
    query = (
        select(browser.table)
        .where(*browser._conditions(LISTS[name]), t.ID < 4_000)
        .order_by(t.ID.desc())
        .limit(50)
    )

    shown = plan(browser.store, query)

    assert not reads_the_whole_table(shown, "Messages"), shown
    assert "TEMP B-TREE FOR ORDER BY" not in shown, shown  # PostgreSQL may sort a few rows


def test_the_counts_and_the_dead_count_read_indexes_only(browser: SqlOutboxBrowser) -> None:
    unfinished = select(func.count()).select_from(browser.table).where(*browser._conditions(
        MessageFilter(state=State.PENDING)))  # fmt: skip
    dead = select(func.count()).select_from(browser.table).where(*browser._dead(MessageFilter()))

    plans = [plan(browser.store, unfinished), plan(browser.store, dead)]

    assert not any(reads_the_whole_table(p, "Messages") for p in plans), plans


def test_the_hour_reads_the_history_by_its_start_time(browser: SqlOutboxBrowser) -> None:
    from adapters.sql.mapping import to_db
    from application.figures import window_start

    outcomes = browser._attempt_outcomes(to_db(window_start(NOW))).subquery()

    shown = plan(browser.store, select(outcomes.c.minute, outcomes.c.kind, func.count()).group_by(
        outcomes.c.minute, outcomes.c.kind))  # fmt: skip

    assert "StartedAt" in shown, shown
    assert not reads_the_whole_table(shown, "Messages"), shown
