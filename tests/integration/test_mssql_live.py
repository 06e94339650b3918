"""The store contract against SQL Server: OUTBOX_TEST_MSSQL_URL, else the Babelfish stand-in.

Each test runs in a freshly migrated table of its own name, dropped afterwards, so the
suite can share a database with anything else.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapters.sql.store import SqlOutboxStore
from tests.integration.sql_stores import (
    SqlStoreContract,
    drop_outbox_tables,
    migrated_store,
    unique_table,
)

pytestmark = pytest.mark.mssql


class TestMssqlOutboxStore(SqlStoreContract):
    @pytest.fixture
    def store(self, mssql_server: str) -> Iterator[SqlOutboxStore]:
        table = unique_table()
        store = migrated_store(mssql_server, table)
        yield store
        drop_outbox_tables(store.engine, table)
        store.close()
