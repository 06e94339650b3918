"""The browser contract on SQLite, PostgreSQL and SQL Server (each test in its own table)."""

from collections.abc import Iterator

import pytest

from adapters.sql.browse import SqlOutboxBrowser
from adapters.sql.store import SqlOutboxStore
from tests.contracts.browser_contract import OutboxBrowserContract
from tests.integration.sql_stores import drop_outbox_tables, migrated_store, unique_table


class TestSqliteOutboxBrowser(OutboxBrowserContract):
    @pytest.fixture
    def store(self, sqlite_url: str) -> Iterator[SqlOutboxStore]:
        store = migrated_store(sqlite_url)
        yield store
        store.close()

    @pytest.fixture
    def browser(self, store: SqlOutboxStore) -> SqlOutboxBrowser:
        return SqlOutboxBrowser(store)


@pytest.mark.postgres
class TestPostgresOutboxBrowser(TestSqliteOutboxBrowser):
    @pytest.fixture
    def store(self, pg_url: str) -> Iterator[SqlOutboxStore]:
        store = migrated_store(pg_url)
        yield store
        store.close()


@pytest.mark.mssql
class TestMssqlOutboxBrowser(TestSqliteOutboxBrowser):
    @pytest.fixture
    def store(self, mssql_server: str) -> Iterator[SqlOutboxStore]:
        table = unique_table()
        store = migrated_store(mssql_server, table)
        yield store
        drop_outbox_tables(store.engine, table)
        store.close()
