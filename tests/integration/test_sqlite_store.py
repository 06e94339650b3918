from collections.abc import Iterator

import pytest

from adapters.sql.store import SqlOutboxStore
from tests.integration.sql_stores import SqlStoreContract, migrated_store


class TestSqliteOutboxStore(SqlStoreContract):
    @pytest.fixture
    def store(self, sqlite_url: str) -> Iterator[SqlOutboxStore]:
        store = migrated_store(sqlite_url)
        yield store
        store.close()
