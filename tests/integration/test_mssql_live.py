"""The store contract against a real SQL Server, when OUTBOX_TEST_MSSQL_URL points at one.

Each test runs in a freshly migrated table of its own name, dropped afterwards, so the
suite can share a database with anything else.
"""

from __future__ import annotations

import os
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

MSSQL_URL = os.environ.get("OUTBOX_TEST_MSSQL_URL", "")

if not MSSQL_URL:
    pytest.skip(
        "OUTBOX_TEST_MSSQL_URL not set: SQL Server contract suite not run", allow_module_level=True
    )

pytestmark = pytest.mark.mssql


class TestMssqlOutboxStore(OutboxStoreContract):
    @pytest.fixture
    def store(self) -> Iterator[SqlOutboxStore]:
        table = unique_table()
        store = migrated_store(MSSQL_URL, table)
        yield store
        drop_outbox_tables(store.engine, table)
        store.close()

    def upstream_resend(self, store: Any, message_id: int) -> None:
        upstream_resend(store, message_id)
