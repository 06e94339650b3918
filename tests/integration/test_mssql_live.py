"""The store contract against SQL Server: OUTBOX_TEST_MSSQL_URL, else the Babelfish stand-in.

The module migrates one table of its own name (dropped afterwards, so the suite can share a
database with anything else) and empties it before each test: creating and reflecting tables
is slow on SQL Server's catalog views, several seconds on Babelfish.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from adapters.sql.store import SqlOutboxStore
from tests.integration.sql_stores import (
    SqlStoreContract,
    drop_outbox_tables,
    migrated_store,
    unique_table,
)

pytestmark = pytest.mark.mssql


@pytest.fixture(scope="module")
def migrated(mssql_server: str) -> Iterator[SqlOutboxStore]:
    """One migrated table per module: migrating is slow on SQL Server's catalog views."""
    table = unique_table()
    store = migrated_store(mssql_server, table)
    yield store
    drop_outbox_tables(store.engine, table)
    store.close()


class TestMssqlOutboxStore(SqlStoreContract):
    @pytest.fixture
    def store(self, migrated: SqlOutboxStore) -> SqlOutboxStore:
        with migrated.engine.begin() as conn:
            for table in (migrated.table, migrated.history, migrated.targets):
                conn.execute(text(f"TRUNCATE TABLE [{table.name}]"))
        return migrated


def test_an_error_the_server_already_rolled_back_surfaces_itself_not_error_3903(
    migrated: SqlOutboxStore,
) -> None:
    with pytest.raises(DBAPIError) as raised, migrated.engine.begin() as conn:
        conn.execute(text("SELECT CAST('not a number' AS INT)"))

    assert "3903" not in str(raised.value)
    assert "not a number" in str(raised.value) or "conversion" in str(raised.value).lower()
