from collections.abc import Iterator
from typing import Any

import pytest

from adapters.sql.store import SqlOutboxStore
from tests.contracts.store_contract import OutboxStoreContract
from tests.integration.sql_stores import migrated_store, upstream_resend


class TestSqliteOutboxStore(OutboxStoreContract):
    @pytest.fixture
    def store(self, sqlite_url: str) -> Iterator[SqlOutboxStore]:
        store = migrated_store(sqlite_url)
        yield store
        store.close()

    def upstream_resend(self, store: Any, message_id: int) -> None:
        upstream_resend(store, message_id)
