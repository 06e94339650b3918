"""The store contract against SQL Server: OUTBOX_TEST_MSSQL_URL, else the Babelfish stand-in.

Each test runs in a freshly migrated table of its own name, dropped afterwards, so the
suite can share a database with anything else.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from adapters.sql.store import SqlOutboxStore
from tests.contracts.store_contract import OutboxStoreContract
from tests.integration.sql_stores import (
    drop_outbox_tables,
    migrated_store,
    unique_table,
    upstream_resend,
)

pytestmark = pytest.mark.mssql


class TestMssqlOutboxStore(OutboxStoreContract):
    @pytest.fixture
    def store(self, mssql_server: str) -> Iterator[SqlOutboxStore]:
        table = unique_table()
        store = migrated_store(mssql_server, table)
        yield store
        drop_outbox_tables(store.engine, table)
        store.close()

    def upstream_resend(self, store: Any, message_id: int) -> None:
        upstream_resend(store, message_id)
