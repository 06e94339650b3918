"""The dashboard's queries read indexes, never the whole outbox table (SQLite, PostgreSQL).

A table of 5,000 mostly sent rows and a day of attempts, VACUUMed and ANALYZEd (as autovacuum
leaves an append-only history). PostgreSQL is asked with `enable_seqscan` off, which only
proves an index path exists; SQLite's plan is the one it runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select, text

from adapters.sql import last_hour
from adapters.sql.browse import SqlOutboxBrowser
from adapters.sql.mapping import to_db
from adapters.sql.overview import first_due_query
from adapters.sql.schema import due_at
from adapters.sql.store import SqlOutboxStore
from application.figures import window_start
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
    attempts = [
        {"MessageID": i + 1, "Attempt": 1, "IdempotencyKey": f"k{i}", "DurationMs": i % 90,
         "StartedAt": to_db(NOW - timedelta(seconds=17 * i)), "HttpStatus": 503 if i % 9 else 204}
        for i in range(5_000)
    ]  # fmt: skip
    with store.engine.begin() as conn:
        conn.execute(insert(store.table), rows)
        conn.execute(insert(store.history), attempts)
        conn.execute(text("ANALYZE"))
    if store.engine.dialect.name == "postgresql":
        with store.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM"))


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


def reads_the_whole_history(plan_text: str) -> bool:
    return reads_the_whole_table(plan_text, "MessagesAttempts") or (
        "SCAN MessagesAttempts" in plan_text and "(StartedAt" not in plan_text
    )


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
    start = window_start(NOW)
    outcomes = last_hour.failed_attempts(
        browser.table, browser.history, to_db(start), browser.store.engine.dialect.name
    ).subquery()
    failures = select(outcomes.c.minute, outcomes.c.kind, func.count()).group_by(
        outcomes.c.minute, outcomes.c.kind
    )

    plans = {
        name: plan(browser.store, statement)
        for name, statement in {
            "sent per minute": last_hour.sent_query(browser.history, start),
            "latency": last_hour.durations_query(browser.history, start),
            "failures": failures,
            "last error": last_hour.error_query(browser.history, to_db(NOW)),
        }.items()
    }

    for name, shown in plans.items():
        assert "StartedAt" in shown or "_Hour" in shown, (name, shown)
        assert not reads_the_whole_history(shown), (name, shown)
        assert not reads_the_whole_table(shown, "Messages"), (name, shown)
    for name in ("failures", "last error"):  # the small partial index of failed attempts
        assert "IX_MessagesAttempts_Failed" in plans[name], (name, plans[name])


def test_the_chart_and_percentiles_are_read_from_the_history_index_alone(
    browser: SqlOutboxBrowser,
) -> None:
    start = window_start(NOW)
    statements = [
        last_hour.sent_query(browser.history, start),
        last_hour.durations_query(browser.history, start),
    ]

    plans = [plan(browser.store, statement) for statement in statements]

    for shown in plans:  # status and duration are in IX_..._Hour: no row is fetched
        assert "IX_MessagesAttempts_Hour" in shown, shown
        assert "COVERING INDEX" in shown or "Index Only Scan" in shown, shown


def test_the_oldest_due_row_is_the_first_entry_of_its_index(browser: SqlOutboxBrowser) -> None:
    query = first_due_query(browser.table, NOW, due_at(browser.table))

    shown = plan(browser.store, query)

    assert "IX_Messages_DueAt" in shown, shown
    assert "TEMP B-TREE" not in shown and "Sort" not in shown, shown


def test_the_total_and_in_flight_counts_read_an_index(browser: SqlOutboxBrowser) -> None:
    in_flight = select(func.count()).select_from(browser.table).where(*browser._conditions(
        MessageFilter(state=State.IN_FLIGHT)))  # fmt: skip
    total = select(func.count()).select_from(browser.table)

    plans = [plan(browser.store, in_flight), plan(browser.store, total)]

    assert not reads_the_whole_table(plans[0], "Messages"), plans
    assert "SCAN Messages USING COVERING INDEX IX_Messages_Rows" in plans[1] or (
        "Messages_pkey" in plans[1]  # PostgreSQL's planner estimate stands in on a big table
    ), plans
